"""What the car is shown and what is billed agree: the ISO-2 SalesTariff comes from the same
`Tariff` as the billing record's price (whole sessions in memory, `session_pair`), signed in
Plug & Charge, unsigned in EIM, absent in PnC without a signer and in DIN."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from secc_helpers import status
from session_pair import Clock, SessionPair, ev_config
from test_secc_iso2_support import ac_cpd, ctx, data, dc_cpd

from evcc.config import Payment, PncCredentials
from evcc.events import MessageReceived
from evcc.session import EvSession
from exi_schemas import iso2
from iso15118 import exi
from iso15118.sap import AppProtocol
from iso15118.yamlconf import ConfigError, load_yaml
from pki.create import TestPki, create_pki
from pki.profiles import Role, Standard
from pki.store import TrustStore
from pki.xmlsig import SignedMessage, verify
from secc.context import PaymentOption, SeccConfig
from secc.evse import EnergyMode, PowerLimit
from secc.iso2 import convert
from secc.iso2.states import charge_parameters
from secc.iso2.states.charge_parameters import handle_charge_parameter_discovery
from secc.provisioning import LocalProvisioning
from secc.records import BillingRecord
from secc.simulated import SimulatedEVSE
from secc.tariff import SalesTariffSigner, Tariff, TariffError, read_sales_tariff_signer

DER = serialization.Encoding.DER
TYPES = "urn:iso:15118:2:2013:MsgDataTypes"
TARIFF = Tariff(
    id="standard",
    currency="EUR",
    energy_price=Decimal("0.39"),
    time_price=Decimal("2.40"),
    session_fee=Decimal("1.00"),
)
#: 30 loops 10 s apart: a few kWh and five minutes, so every price component is non-zero
LONG_CHARGE: dict[str, Any] = {"max_charge_loops": 30, "loop_interval": 10.0}


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return create_pki(Standard.ISO2, at=Clock().wall())


def _signer(pki: TestPki, role: Role = Role.MO_SUB_CA_2) -> SalesTariffSigner:
    issued = pki[role]
    return SalesTariffSigner(issued.key, issued.certificate)  # type: ignore[arg-type]


def _pnc_pair(pki: TestPki, config: SeccConfig, **ev: Any) -> SessionPair:
    clock = Clock()
    trust = TrustStore(
        [pki[Role.MO_ROOT].certificate],
        [pki[Role.MO_SUB_CA_1].certificate, pki[Role.MO_SUB_CA_2].certificate],
    )
    credentials = PncCredentials(
        oem_provisioning_cert=pki[Role.OEM_PROVISIONING].certificate.public_bytes(DER),
        oem_provisioning_key=pki[Role.OEM_PROVISIONING].key,  # type: ignore[arg-type]
        root_certificates=(pki[Role.V2G_ROOT].certificate.public_bytes(DER),),
        install_certificate=True,
    )
    ev_conf = ev_config(payment=Payment.PNC, tls=True, pnc=credentials, **{**LONG_CHARGE, **ev})
    return SessionPair(
        ev_conf,
        SeccConfig(contract_trust=trust, tariff=config.tariff,
                   sales_tariff_signer=config.sales_tariff_signer),
        tls=True,
        clock=clock,
        provisioning=LocalProvisioning.from_test_pki(pki, clock=clock.wall),
    )  # fmt: skip


def _ev(pair: SessionPair) -> EvSession:
    assert isinstance(pair.ev, EvSession)
    return pair.ev


def _charge_parameter_responses(pair: SessionPair) -> list[Any]:
    return [
        e.message
        for e in pair.ev_events
        if isinstance(e, MessageReceived) and e.name == "ChargeParameterDiscoveryRes"
    ]


def _ev_metered_wh(pair: SessionPair) -> int:
    """The energy as the car saw it: the meter readings (MeterInfo) of the charge loop."""
    readings = [
        e.message.Body.CurrentDemandRes.MeterInfo.MeterReading
        for e in pair.ev_events
        if isinstance(e, MessageReceived) and e.name == "CurrentDemandRes"
    ]
    return int(readings[-1] - readings[0])


def _check_agreement(pair: SessionPair, record: BillingRecord) -> None:
    """The car's SalesTariff text is the billed tariff, and pricing what the car saw gives
    the record's price."""
    shown = _ev(pair).ctx.sales_tariff
    assert shown is not None
    told = Tariff.from_description(shown.SalesTariffDescription, tariff_id=TARIFF.id)
    assert told == TARIFF
    assert record.price is not None
    assert record.energy_wh == _ev_metered_wh(pair) > 0
    ev_price = told.price(_ev_metered_wh(pair), record.started_at, record.stopped_at)
    assert ev_price == record.price
    assert record.price.total == record.price.energy + record.price.time + record.price.fee
    assert record.price.fee == Decimal("1.00")
    assert record.price.energy > 0 and record.price.time > 0


# --- whole sessions ------------------------------------------------------------------------------


def test_eim_car_is_shown_the_billed_tariff_unsigned() -> None:
    pair = SessionPair(ev_config(**LONG_CHARGE), SeccConfig(tariff=TARIFF))
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    (record,) = pair.records
    _check_agreement(pair, record)
    (response,) = _charge_parameter_responses(pair)
    assert response.Header.Signature is None  # EIM: never signed
    assert _ev(pair).ctx.sales_tariff_verified is None


def test_eim_ac_session_is_priced_too() -> None:
    clock = Clock()
    evse = SimulatedEVSE(dc=False, clock=lambda: clock.now, wall_clock=clock.wall, meter_wh=10)
    pair = SessionPair(
        ev_config(energy_mode=EnergyMode.AC_THREE_PHASE_CORE, **LONG_CHARGE),
        SeccConfig(tariff=TARIFF),
        evse=evse,
        clock=clock,
    )
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    (record,) = pair.records
    shown = _ev(pair).ctx.sales_tariff
    assert Tariff.from_description(shown.SalesTariffDescription, tariff_id="standard") == TARIFF
    assert record.price == TARIFF.price(record.energy_wh, record.started_at, record.stopped_at)


def test_pnc_car_verifies_the_signed_tariff(pki: TestPki) -> None:
    pair = _pnc_pair(pki, SeccConfig(tariff=TARIFF, sales_tariff_signer=_signer(pki)))
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    (record,) = pair.records
    _check_agreement(pair, record)
    assert _ev(pair).ctx.sales_tariff_verified is True
    # and independently of the simulator: the header signature covers the SalesTariff
    (response,) = _charge_parameter_responses(pair)
    tuples = response.Body.ChargeParameterDiscoveryRes.SAScheduleList.SAScheduleTuple
    elements = {t.SalesTariff.Id: exi.Element(TYPES, "SalesTariff", t.SalesTariff) for t in tuples}
    verify(
        response.Header.Signature,
        elements,
        pki[Role.MO_SUB_CA_2].certificate.public_key(),  # type: ignore[arg-type]
        message=SignedMessage.ISO2_SALES_TARIFF,
    )


def test_pnc_car_notices_a_tariff_signed_by_someone_else(pki: TestPki) -> None:
    signer = _signer(pki, Role.CPO_SUB_CA_2)  # not the car's mobility operator
    pair = _pnc_pair(pki, SeccConfig(tariff=TARIFF, sales_tariff_signer=signer))
    finished = pair.run()
    assert finished is not None and finished.ok, finished  # the simulator charges anyway
    assert _ev(pair).ctx.sales_tariff is not None
    assert _ev(pair).ctx.sales_tariff_verified is False


def test_pnc_without_a_signer_sends_no_tariff(
    pki: TestPki, caplog: pytest.LogCaptureFixture
) -> None:
    charge_parameters._explain_unsigned.cache_clear()
    caplog.set_level(logging.WARNING, logger="secc.iso2.states.charge_parameters")
    pair = _pnc_pair(pki, SeccConfig(tariff=TARIFF), renegotiate_after_loops=2)
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    responses = _charge_parameter_responses(pair)
    assert len(responses) == 2  # the renegotiation asked again
    for response in responses:
        assert response.Header.Signature is None
        tuples = response.Body.ChargeParameterDiscoveryRes.SAScheduleList.SAScheduleTuple
        assert all(t.SalesTariff is None for t in tuples)
    assert _ev(pair).ctx.sales_tariff is None and _ev(pair).ctx.sales_tariff_verified is None
    explained = [r for r in caplog.records if "no sales_tariff_signer" in r.getMessage()]
    assert len(explained) == 1  # said once, not per message
    (record,) = pair.records
    assert record.price is not None  # billed all the same


def test_no_tariff_no_sales_tariff_no_price() -> None:
    pair = SessionPair(ev_config(max_charge_loops=3))
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    (response,) = _charge_parameter_responses(pair)
    tuples = response.Body.ChargeParameterDiscoveryRes.SAScheduleList.SAScheduleTuple
    assert all(t.SalesTariff is None for t in tuples)
    (record,) = pair.records
    assert record.price is None


def test_din_has_no_sales_tariff_but_is_priced() -> None:
    pair = SessionPair(
        ev_config(protocols=(AppProtocol.DIN,), max_charge_loops=5), SeccConfig(tariff=TARIFF)
    )
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    (response,) = _charge_parameter_responses(pair)
    schedules = response.Body.ChargeParameterDiscoveryRes.SAScheduleList
    assert all(t.SalesTariff is None for t in schedules.SAScheduleTuple)
    (record,) = pair.records
    assert record.price == TARIFF.price(record.energy_wh, record.started_at, record.stopped_at)


def _paused_and_resumed(
    first: dict[str, Any], parked: float
) -> tuple[BillingRecord, BillingRecord, datetime]:
    """A session under TARIFF paused after the EV settings `first`, parked `parked` s, then
    resumed for ten loops: its two billing records and when the resumed part began."""
    clock = Clock()
    evse = SimulatedEVSE(clock=lambda: clock.now, wall_clock=clock.wall, meter_wh=10_000)
    config = SeccConfig(tariff=TARIFF)
    pair = SessionPair(ev_config(**first), config, evse=evse, clock=clock)
    finished = pair.run()
    assert finished is not None and finished.paused, finished
    clock.now += parked
    resumed_at = clock.wall()  # the resumed part's SessionSetup follows at once
    second = SessionPair(
        ev_config(resume_session_id=finished.session_id, max_charge_loops=10, loop_interval=2.0),
        config,
        evse=evse,
        clock=clock,
        resumable=pair.paused,
    )
    again = second.run(max_time=clock.now + 600)
    assert again is not None and again.ok, again
    (part1,) = pair.records
    (part2,) = second.records
    return part1, part2, resumed_at


def test_a_paused_session_pays_the_fee_once_and_each_part_its_own_time() -> None:
    part1, part2, resumed_at = _paused_and_resumed(
        {"pause_after_loops": 10, "loop_interval": 2.0},
        parked=1800,  # half an hour, not billed
    )
    assert part1.price is not None and part2.price is not None
    assert part1.energy_wh > 0 and part2.energy_wh > 0
    assert part1.price.fee == Decimal("1.00") and part2.price.fee == Decimal("0.00")
    assert part1.price == TARIFF.price(part1.energy_wh, part1.started_at, part1.stopped_at)
    # the resumed part's record starts at its resumption, and its price bills that time
    assert part2.started_at == resumed_at > part1.stopped_at
    assert part2.price == TARIFF.price(
        part2.energy_wh, part2.started_at, part2.stopped_at, with_fee=False
    )
    assert part2.price.time < Decimal("0.10")  # seconds of charging, not the half hour


def test_the_fee_comes_with_the_first_part_that_delivers_energy() -> None:
    """A first part that delivered nothing pays no fee; the resumed part that charges does
    (the fee is due once per charging session, not lost)."""
    part1, part2, _ = _paused_and_resumed({"pause_after_loops": 1, "loop_interval": 0.0}, 600)
    assert part1.energy_wh == 0 and part1.price is not None and part1.price.total == 0
    assert part2.energy_wh > 0 and part2.price is not None
    assert part2.price.fee == Decimal("1.00")
    assert part2.price == TARIFF.price(part2.energy_wh, part2.started_at, part2.stopped_at)


# --- the SalesTariff element ---------------------------------------------------------------------


def test_sales_tariff_element_follows_iso2() -> None:
    schedule = iso2.PMaxScheduleType(
        PMaxScheduleEntry=[
            iso2.PMaxScheduleEntryType(
                RelativeTimeInterval=iso2.RelativeTimeIntervalType(start=0),
                PMax=convert.watts(50_000),
            ),
            iso2.PMaxScheduleEntryType(
                RelativeTimeInterval=iso2.RelativeTimeIntervalType(start=3600, duration=7200),
                PMax=convert.watts(20_000),
            ),
        ]
    )
    duration = convert.schedule_end(schedule)
    assert duration == 10_800
    tariff = convert.sales_tariff(TARIFF, sales_tariff_id=1, duration=duration, ident="st1")
    assert tariff.Id == "st1" and tariff.SalesTariffID == 1
    assert tariff.SalesTariffDescription == "EUR 0.39/kWh 2.40/h 1.00"
    assert tariff.NumEPriceLevels == 1
    (entry,) = tariff.SalesTariffEntry
    assert entry.RelativeTimeInterval == iso2.RelativeTimeIntervalType(start=0, duration=10_800)
    assert entry.EPriceLevel == 1
    (cost,) = entry.ConsumptionCost
    assert convert.value(cost.startValue) == 0
    assert cost.Cost == [
        iso2.CostType(
            costKind=iso2.costKindType.relativePricePercentage, amount=100, amountMultiplier=0
        )
    ]
    element = exi.Element(TYPES, "SalesTariff", tariff)
    data = exi.encode_fragment("iso2", element)
    assert exi.decode_fragment("iso2", data).value == tariff


def test_the_tariff_covers_the_schedule_whatever_max_entries() -> None:
    schedule = (PowerLimit(start=0, max_power=50_000), PowerLimit(start=600, max_power=20_000))
    config = SeccConfig(tariff=TARIFF, schedule_duration=7200)
    c = ctx(config=config, status=status(schedule=schedule))
    for max_entries in (None, 1):
        res = handle_charge_parameter_discovery(ac_cpd(max_entries=max_entries), c, data())
        (entry,) = res.response.SAScheduleList.SAScheduleTuple
        assert len(entry.PMaxSchedule.PMaxScheduleEntry) == (1 if max_entries else 2)
        (tariff_entry,) = entry.SalesTariff.SalesTariffEntry
        assert convert.schedule_end(entry.PMaxSchedule) == 7200
        assert tariff_entry.RelativeTimeInterval == iso2.RelativeTimeIntervalType(
            start=0, duration=7200
        )
        assert res.signature is None  # EIM


def test_pnc_handler_signs_and_eim_does_not(pki: TestPki) -> None:
    config = SeccConfig(tariff=TARIFF, sales_tariff_signer=_signer(pki))
    pnc = handle_charge_parameter_discovery(
        dc_cpd(), ctx(config=config), data(payment=PaymentOption.CONTRACT)
    )
    (entry,) = pnc.response.SAScheduleList.SAScheduleTuple
    assert pnc.signature is not None
    (reference,) = pnc.signature.SignedInfo.Reference
    assert "#" + entry.SalesTariff.Id == reference.URI
    verify(
        pnc.signature,
        {entry.SalesTariff.Id: exi.Element(TYPES, "SalesTariff", entry.SalesTariff)},
        pki[Role.MO_SUB_CA_2].certificate.public_key(),  # type: ignore[arg-type]
        message=SignedMessage.ISO2_SALES_TARIFF,
    )
    eim = handle_charge_parameter_discovery(
        dc_cpd(), ctx(config=config), data(payment=PaymentOption.EXTERNAL_PAYMENT)
    )
    assert eim.signature is None
    assert eim.response.SAScheduleList.SAScheduleTuple[0].SalesTariff is not None


def test_signed_response_encodes(pki: TestPki) -> None:
    """The signed ChargeParameterDiscoveryRes goes through the ISO-2 encoder and back."""
    from secc.iso2.spec import SPEC

    config = SeccConfig(tariff=TARIFF, sales_tariff_signer=_signer(pki))
    out = handle_charge_parameter_discovery(
        dc_cpd(), ctx(config=config), data(payment=PaymentOption.CONTRACT)
    )
    message = SPEC.wrap(bytes(8), out.response, out.signature)
    decoded = exi.decode("iso2", exi.encode("iso2", message))
    assert decoded.Header.Signature == out.signature
    body = decoded.Body.ChargeParameterDiscoveryRes
    assert body.SAScheduleList.SAScheduleTuple[0].SalesTariff == (
        out.response.SAScheduleList.SAScheduleTuple[0].SalesTariff
    )


def test_signer_must_match_its_certificate(pki: TestPki) -> None:
    with pytest.raises(TariffError, match="does not match"):
        SalesTariffSigner(
            pki[Role.MO_SUB_CA_2].key,  # type: ignore[arg-type]
            pki[Role.MO_SUB_CA_1].certificate,
        )
    with pytest.raises(TariffError, match="P-256"):
        SalesTariffSigner(object(), pki[Role.MO_SUB_CA_2].certificate)  # type: ignore[arg-type]


# --- the signer's configuration ----------------------------------------------------------------


def _write_signer(pki: TestPki, directory: Path, password: bytes | None) -> None:
    issued = pki[Role.MO_SUB_CA_2]
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    (directory / "mo.key").write_bytes(
        issued.key.private_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    (directory / "mo.pem").write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))


def test_yaml_signer(pki: TestPki, tmp_path: Path) -> None:
    _write_signer(pki, tmp_path, b"secret")
    (tmp_path / "mo.pass").write_text("secret\n")
    (tmp_path / "secc.yaml").write_text(
        "sales_tariff_signer:\n  private_key: mo.key\n  certificate: mo.pem\n"
        "  password_file: mo.pass\n"
    )
    section = load_yaml(tmp_path / "secc.yaml").section("sales_tariff_signer")
    signer = read_sales_tariff_signer(section)
    assert signer is not None
    assert signer.certificate == pki[Role.MO_SUB_CA_2].certificate
    (tmp_path / "empty.yaml").write_text("log_level: info\n")
    empty = load_yaml(tmp_path / "empty.yaml").section("sales_tariff_signer")
    assert read_sales_tariff_signer(empty) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  private_key: mo.key\n", "both private_key and certificate"),
        ("  private_key: mo.key\n  certificate: mo.pem\n", "private key"),  # no password
        ("  private_key: mo.key\n  certificate: mo.pem\n  password: wrong\n", "private key"),
        ("  private_key: nope.key\n  certificate: mo.pem\n  password: secret\n", "nope.key"),
        ("  private_key: mo.key\n  certificate: mo.key\n  password: secret\n", "mo.key"),
        (
            "  private_key: mo.key\n  certificate: mo.pem\n  password: a\n  password_file: b\n",
            "not both",
        ),
        ("  private_key: mo.key\n  certificate: mo.pem\n  pin: 1\n", "unknown key"),
    ],
)
def test_bad_yaml_signers(pki: TestPki, tmp_path: Path, body: str, message: str) -> None:
    _write_signer(pki, tmp_path, b"secret")
    (tmp_path / "secc.yaml").write_text("sales_tariff_signer:\n" + body)
    section = load_yaml(tmp_path / "secc.yaml").section("sales_tariff_signer")
    with pytest.raises(ConfigError, match=message):
        read_sales_tariff_signer(section)
