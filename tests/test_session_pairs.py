"""Whole sessions: our SECC core against our EV simulator core, in memory, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from session_pair import Clock, SessionPair, ev_config

from evcc.config import Payment, PncCredentials
from pki.create import TestPki, create_pki
from pki.profiles import Role, Standard
from pki.store import TrustStore
from secc.context import SeccConfig
from secc.evse import EnergyMode
from secc.provisioning import LocalProvisioning
from secc.records import IdentificationKind, StopReason
from secc.simulated import SimulatedEVSE

DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return create_pki(Standard.ISO2, at=Clock().wall())


def _pnc_pair(pki: TestPki, **ev: Any) -> SessionPair:
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
    config = ev_config(payment=Payment.PNC, tls=True, max_charge_loops=5, pnc=credentials, **ev)
    return SessionPair(
        config,
        SeccConfig(contract_trust=trust),
        tls=True,
        clock=clock,
        provisioning=LocalProvisioning.from_test_pki(pki, clock=clock.wall),
    )


def _names(pair: SessionPair) -> list[str]:
    names: list[str] = []
    for name, code in pair.exchanged():
        assert code.startswith("OK"), (name, code)
        if not names or names[-1] != name:
            names.append(name)
    return names


def test_iso2_ac_eim() -> None:
    clock = Clock()
    evse = SimulatedEVSE(dc=False, clock=lambda: clock.now, wall_clock=clock.wall, meter_wh=10)
    pair = SessionPair(
        ev_config(energy_mode=EnergyMode.AC_THREE_PHASE_CORE, max_charge_loops=5),
        evse=evse,
        clock=clock,
    )
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    assert _names(pair) == [
        "SessionSetupReq",
        "ServiceDiscoveryReq",
        "PaymentServiceSelectionReq",
        "AuthorizationReq",
        "ChargeParameterDiscoveryReq",
        "PowerDeliveryReq",
        "ChargingStatusReq",
        "PowerDeliveryReq",
        "SessionStopReq",
    ]
    (record,) = pair.records
    assert record.kind is IdentificationKind.EXTERNAL
    assert record.stop_reason is StopReason.EV_STOPPED
    assert record.protocol == "iso2"


def test_iso2_dc_eim() -> None:
    pair = SessionPair(ev_config(max_charge_loops=5))
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    assert _names(pair) == [
        "SessionSetupReq",
        "ServiceDiscoveryReq",
        "PaymentServiceSelectionReq",
        "AuthorizationReq",
        "ChargeParameterDiscoveryReq",
        "CableCheckReq",
        "PreChargeReq",
        "PowerDeliveryReq",
        "CurrentDemandReq",
        "PowerDeliveryReq",
        "WeldingDetectionReq",
        "SessionStopReq",
    ]
    (record,) = pair.records
    assert record.meter_start is not None and record.meter_stop is not None
    assert record.energy_wh >= 0


def test_iso2_dc_pnc_with_certificate_installation(pki: TestPki) -> None:
    pair = _pnc_pair(pki)
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    names = _names(pair)
    assert names[:6] == [
        "SessionSetupReq",
        "ServiceDiscoveryReq",
        "PaymentServiceSelectionReq",
        "CertificateInstallationReq",
        "PaymentDetailsReq",
        "AuthorizationReq",
    ]
    assert "MeteringReceiptReq" in names
    (record,) = pair.records
    assert record.kind is IdentificationKind.CONTRACT
    assert record.contract_id is not None and record.contract_id.startswith("DE")
    (receipt,) = record.receipts
    assert receipt.signature_valid


def test_din_dc_eim() -> None:
    from iso15118.sap import AppProtocol

    pair = SessionPair(ev_config(protocols=(AppProtocol.DIN,), max_charge_loops=5))
    finished = pair.run()
    assert finished is not None and finished.ok, finished
    assert _names(pair) == [
        "SessionSetupReq",
        "ServiceDiscoveryReq",
        "ServicePaymentSelectionReq",
        "ContractAuthenticationReq",
        "ChargeParameterDiscoveryReq",
        "CableCheckReq",
        "PreChargeReq",
        "PowerDeliveryReq",
        "CurrentDemandReq",
        "PowerDeliveryReq",
        "WeldingDetectionReq",
        "SessionStopReq",
    ]
    (record,) = pair.records
    assert record.protocol == "din"
    assert record.stop_reason is StopReason.EV_STOPPED
