"""secc.tariff: prices, the canonical tariff text, the YAML section; the price on billing
records (JSON, and as the session core computes it)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iso15118.yamlconf import ConfigError, load_yaml
from secc.records import BillingRecord, IdentificationKind, MeterReading, Price, StopReason
from secc.records_json import (
    RecordFormatError,
    billing_record_from_json,
    billing_record_to_json,
    dumps_billing_record,
    loads_billing_record,
)
from secc.tariff import (
    CURRENCY_EXPONENTS,
    DESCRIPTION_LENGTH,
    Tariff,
    TariffError,
    read_tariff_section,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
D = Decimal
STANDARD = Tariff(
    id="standard", currency="EUR", energy_price=D("0.39"), time_price=D("2.40"),
    session_fee=D("1.00"),
)  # fmt: skip


# --- prices ------------------------------------------------------------------------------------


def test_price_of_a_session() -> None:
    price = STANDARD.price(12_345, T0, T0 + timedelta(minutes=45))
    assert price == Price(
        tariff_id="standard",
        currency="EUR",
        energy=D("4.81"),  # 12.345 kWh x 0.39 = 4.81455
        time=D("1.80"),  # 0.75 h x 2.40
        fee=D("1.00"),
        total=D("7.61"),
    )
    assert price.energy + price.time + price.fee == price.total
    assert str(price.total) == "7.61"  # two decimals for EUR, as a receipt prints it


def test_components_round_half_up_to_the_minor_unit() -> None:
    tariff = Tariff(id="t", currency="EUR", energy_price=D("0.5"), time_price=D("0.09"))
    price = tariff.price(1_010, T0, T0 + timedelta(minutes=30))
    assert price.energy == D("0.51")  # 0.505 -> 0.51 (half up, not half even)
    assert price.time == D("0.05")  # 0.045 -> 0.05
    assert price.total == D("0.56")


def test_time_is_exact_to_the_microsecond() -> None:
    tariff = Tariff(id="t", currency="EUR", time_price=D("3600"))  # 1.00 per second
    price = tariff.price(1, T0, T0 + timedelta(seconds=2, microseconds=4_999))
    assert price.time == D("2.00")
    price = tariff.price(1, T0, T0 + timedelta(seconds=2, microseconds=5_000))
    assert price.time == D("2.01")  # 2.005 exactly: half up


def test_other_minor_units() -> None:
    yen = Tariff(id="jp", currency="JPY", energy_price=D("55"), session_fee=D("200"))
    assert yen.price(1_500, T0, T0).total == D("283")  # 82.5 -> 83, + 200
    dinar = Tariff(id="bh", currency="BHD", energy_price=D("0.0125"))
    assert dinar.price(1_000, T0, T0).energy == D("0.013")  # 0.0125 -> 0.013 (3 decimals)


def test_no_energy_costs_nothing() -> None:
    """The EVSE failed before delivering, or the car never drew current: no fee, no time."""
    price = STANDARD.price(0, T0, T0 + timedelta(hours=3))
    assert (price.energy, price.time, price.fee, price.total) == (D("0.00"),) * 4


def test_a_resumed_part_pays_no_fee() -> None:
    price = STANDARD.price(1_000, T0, T0 + timedelta(hours=1), with_fee=False)
    assert price.fee == D("0.00") and price.total == D("0.39") + D("2.40")


def test_duration_across_a_daylight_saving_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 2026-03-29 02:00 -> 03:00
    start = datetime(2026, 3, 29, 1, 30, tzinfo=berlin)
    stop = datetime(2026, 3, 29, 3, 30, tzinfo=berlin)  # one real hour later
    assert STANDARD.price(1_000, start, stop).time == D("2.40")


@pytest.mark.parametrize(
    ("energy", "start", "stop", "message"),
    [
        (-1, T0, T0, "whole number >= 0"),
        (1.5, T0, T0, "whole number >= 0"),
        (True, T0, T0, "whole number >= 0"),
        (1, T0.replace(tzinfo=None), T0, "timezone-aware"),
        (1, T0, "2026-05-01", "timezone-aware"),
        (1, T0, T0 - timedelta(seconds=1), "before it starts"),
    ],
)
def test_bad_price_requests(energy: object, start: object, stop: object, message: str) -> None:
    with pytest.raises(TariffError, match=message):
        STANDARD.price(energy, start, stop)  # type: ignore[arg-type]


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"currency": "EURO"}, "ISO 4217"),
        ({"currency": "eur"}, "ISO 4217"),
        ({"currency": "XYZ"}, "ISO 4217"),
        ({"energy_price": D("-0.01")}, ">= 0"),
        ({"time_price": D("NaN")}, "finite"),
        ({"session_fee": D("Infinity")}, "finite"),
        ({"energy_price": 0.39}, "must be a Decimal"),
        ({"id": ""}, "tariff id"),
        ({"id": "two words"}, "tariff id"),
        ({"id": "x" * 65}, "tariff id"),
        (
            {
                "energy_price": D("1234.56789"),
                "time_price": D("99999.123"),
                "session_fee": D("9.5"),
            },
            "32",
        ),
    ],
)
def test_bad_tariffs_are_refused(changes: dict[str, object], message: str) -> None:
    fields = {
        "id": "t", "currency": "EUR", "energy_price": D("0.39"), "time_price": D(0),
        "session_fee": D(0), **changes,
    }  # fmt: skip
    with pytest.raises(TariffError, match=message):
        Tariff(**fields)  # type: ignore[arg-type]


def test_negative_zero_is_zero() -> None:
    tariff = Tariff(id="t", currency="EUR", energy_price=D("-0"), session_fee=D("1"))
    assert not tariff.energy_price.is_signed()
    assert tariff.description == "EUR 1.00"


# --- the tariff text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tariff", "text"),
    [
        (STANDARD, "EUR 0.39/kWh 2.40/h 1.00"),
        (Tariff(id="t", currency="EUR"), "EUR 0.00"),
        (Tariff(id="t", currency="EUR", energy_price=D("0.3949")), "EUR 0.3949/kWh"),
        (Tariff(id="t", currency="EUR", time_price=D("6")), "EUR 6.00/h"),
        (Tariff(id="t", currency="JPY", energy_price=D("55"), session_fee=D("200")),
         "JPY 55/kWh 200"),
        # padded to cents it would not fit: written without trailing zeros
        (Tariff(id="t", currency="IDR", energy_price=D("2466"), time_price=D("50000"),
                session_fee=D("5000")), "IDR 2466/kWh 50000/h 5000"),
    ],
)  # fmt: skip
def test_description(tariff: Tariff, text: str) -> None:
    assert tariff.description == text
    assert len(text) <= DESCRIPTION_LENGTH
    assert Tariff.from_description(text, tariff_id=tariff.id) == tariff


@pytest.mark.parametrize(
    "text",
    [
        "",
        "EUR",
        "eur 0.39/kWh",
        "EUR 0.39 /kWh",
        "EUR  0.39/kWh",
        "EUR 2.40/h 0.39/kWh",  # not the canonical order
        "EUR 0.39/kWh 0.40/kWh",
        "EUR -1.00",
        "EUR 1e3/kWh",
        "EUR 01.00",
        "EUR 0.39/kWh 2.40/h 1.00 ",
        "XYZ 1.00",  # well formed, but no currency we know
        "EUR 0.39/kWh 2.40/h 1.00 9999999999999",  # over 32 characters
    ],
)
def test_texts_that_are_not_tariffs(text: str) -> None:
    with pytest.raises(TariffError):
        Tariff.from_description(text, tariff_id="t")


_PRICES = st.decimals(min_value=0, max_value=999, places=4, allow_nan=False)
_CURRENCIES = st.sampled_from(sorted(CURRENCY_EXPONENTS))


@st.composite
def tariffs(draw: st.DrawFn) -> Tariff:
    while True:
        try:
            return Tariff(
                id="t",
                currency=draw(_CURRENCIES),
                energy_price=draw(_PRICES),
                time_price=draw(_PRICES),
                session_fee=draw(_PRICES),
            )
        except TariffError:  # a text over 32 characters: draw again
            continue


@given(tariffs())
def test_description_round_trip(tariff: Tariff) -> None:
    text = tariff.description
    assert len(text) <= DESCRIPTION_LENGTH
    parsed = Tariff.from_description(text, tariff_id=tariff.id)
    assert parsed == tariff
    assert parsed.description == text  # canonical: one text per tariff


_ENERGY = st.integers(min_value=0, max_value=500_000)
_SECONDS = st.integers(min_value=0, max_value=48 * 3600 * 1_000_000).map(
    lambda us: timedelta(microseconds=us)
)


@given(tariffs(), _ENERGY, _ENERGY, _SECONDS, _SECONDS, st.booleans())
def test_price_is_monotone_and_adds_up(
    tariff: Tariff, e1: int, e2: int, d1: timedelta, d2: timedelta, fee: bool
) -> None:
    low_e, high_e = sorted((e1, e2))
    low_d, high_d = sorted((d1, d2))
    low = tariff.price(low_e, T0, T0 + low_d, with_fee=fee)
    high = tariff.price(high_e, T0, T0 + high_d, with_fee=fee)
    assert low.total <= high.total
    assert tariff.price(low_e, T0, T0 + high_d, with_fee=fee).total <= high.total
    for price in (low, high):
        assert price.total == price.energy + price.time + price.fee
        minor = D(1).scaleb(-tariff.exponent)
        assert price.total == price.total.quantize(minor)  # whole minor units
        assert min(price.energy, price.time, price.fee, price.total) >= 0
        exact = (
            tariff.energy_price * (high_e if price is high else low_e) / 1000
        )  # the energy component is the exact product, rounded once
        assert abs(price.energy - exact) <= minor / 2


# --- YAML --------------------------------------------------------------------------------------


def _section(tmp_path: Path, text: str) -> object:
    path = tmp_path / "secc.yaml"
    path.write_text(text)
    return load_yaml(path).section("tariff")


def test_yaml_tariff(tmp_path: Path) -> None:
    section = _section(
        tmp_path,
        "tariff:\n  id: standard\n  currency: eur\n  energy_price: 0.39\n"
        "  time_price: '2.40'\n  session_fee: 1\n",
    )
    assert read_tariff_section(section) == STANDARD  # type: ignore[arg-type]


def test_yaml_without_tariff(tmp_path: Path) -> None:
    assert read_tariff_section(_section(tmp_path, "log_level: info\n")) is None  # type: ignore[arg-type]
    assert read_tariff_section(_section(tmp_path, "tariff:\n")) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  currency: EUR\n  energy_price: 0.39\n", "id and currency"),
        ("  id: t\n  currency: EUR\n  energy_price: cheap\n", "not an amount"),
        ("  id: t\n  currency: EUR\n  energy_price: [1]\n", "energy_price"),
        ("  id: t\n  currency: EUR\n  energy_price: -1\n", ">= 0"),
        ("  id: t\n  currency: EUX\n", "ISO 4217"),
        ("  id: t\n  currency: EUR\n  vat: 19\n", "unknown key in tariff: vat"),
    ],
)
def test_bad_yaml_tariffs(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_tariff_section(_section(tmp_path, "tariff:\n" + body))  # type: ignore[arg-type]


# --- the price on billing records ---------------------------------------------------------------


def _record(price: Price | None) -> BillingRecord:
    return BillingRecord(
        record_id="r1",
        session_id="0102030405060708",
        evse_id="DE*ABC*E1",
        protocol="iso2",
        kind=IdentificationKind.EXTERNAL,
        contract_id=None,
        started_at=T0,
        stopped_at=T0 + timedelta(hours=1),
        meter_start=MeterReading(meter_id="M", energy_wh=100, at=T0),
        meter_stop=MeterReading(meter_id="M", energy_wh=10_100, at=T0 + timedelta(hours=1)),
        stop_reason=StopReason.EV_STOPPED,
        price=price,
    )


def test_price_json_round_trip() -> None:
    record = _record(STANDARD.price(10_000, T0, T0 + timedelta(hours=1)))
    obj = billing_record_to_json(record)
    assert obj["price"] == {
        "tariff_id": "standard", "currency": "EUR", "energy": "3.90", "time": "2.40",
        "fee": "1.00", "total": "7.30",
    }  # fmt: skip
    assert loads_billing_record(dumps_billing_record(record)) == record
    assert billing_record_to_json(_record(None))["price"] is None


def test_records_stored_before_prices_still_load() -> None:
    obj = billing_record_to_json(_record(None))
    del obj["price"]
    assert billing_record_from_json(obj) == _record(None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"total": 7.3}, "total"),  # a float, not a decimal string
        ({"total": "seven"}, "not a decimal"),
        ({"total": "NaN"}, "finite"),
        ({"currency": None}, "currency"),
    ],
)
def test_malformed_prices_are_refused(change: dict[str, object], message: str) -> None:
    obj = billing_record_to_json(_record(STANDARD.price(1, T0, T0)))
    obj["price"] = {**obj["price"], **change}
    with pytest.raises(RecordFormatError, match=message):
        billing_record_from_json(obj)
    obj["price"] = "7.30"
    with pytest.raises(RecordFormatError, match="price"):
        billing_record_from_json(obj)


def test_price_is_frozen() -> None:
    price = STANDARD.price(1, T0, T0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        price.total = D(0)  # type: ignore[misc]
