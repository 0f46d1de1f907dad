"""Builders shared by the ISO 15118-2 SECC tests (requests, contexts, a test PKI, session
drivers). No tests here; the test modules import it by name (tests/ is on sys.path)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from secc_helpers import T0, Harness, counter_random, status

from exi_schemas import iso2, xmldsig
from iso15118 import sap
from pki.create import TestPki, create_pki
from pki.emaid import emaid_from_certificate
from pki.profiles import Role, Standard
from pki.store import TrustStore
from pki.xmlsig import SignedMessage, sign
from secc.context import Context, PaymentOption, SeccConfig, SessionData
from secc.events import AuthorizationResult, MessageExchanged, SessionEvent
from secc.evse import ControlPilotState, EnergyMode, IsolationStatus
from secc.iso2 import convert
from secc.records import AuthorizationDecision, AuthorizationStatus

SID = bytes.fromhex("0A0B0C0D0E0F1011")
EVCCID = bytes.fromhex("020000000001")
EVSE_ID = "DE*ABC*E0000001*1"
DC = (EnergyMode.DC_EXTENDED, EnergyMode.AC_THREE_PHASE_CORE)
AC = (EnergyMode.AC_THREE_PHASE_CORE,)


# --- pure handler inputs ----------------------------------------------------------------------


def ctx(
    *,
    config: SeccConfig | None = None,
    modes: tuple[EnergyMode, ...] = DC,
    **changes: Any,
) -> Context:
    """A Context at T0 with the helpers' EVSE status (CP state B, meter 1000 Wh)."""
    base = Context(
        config=config or SeccConfig(),
        evse_id=EVSE_ID,
        energy_modes=modes,
        status=status(),
        now=0.0,
        at=T0,
        random=counter_random(),
        header_session_id=SID,
    )
    return dataclasses.replace(base, **changes)


def data(**changes: Any) -> SessionData:
    base = SessionData(
        session_id=SID, protocol=sap.AppProtocol.ISO2, tls=False, started_at=T0, evcc_id=EVCCID
    )
    return dataclasses.replace(base, **changes)


def accepted() -> AuthorizationResult:
    return AuthorizationResult(AuthorizationDecision(status=AuthorizationStatus.ACCEPTED))


def refused() -> AuthorizationResult:
    return AuthorizationResult(
        AuthorizationDecision(status=AuthorizationStatus.REJECTED, reason="blocked")
    )


# --- requests ---------------------------------------------------------------------------------


def selection(
    option: PaymentOption = PaymentOption.EXTERNAL_PAYMENT, services: tuple[int, ...] = (1,)
) -> iso2.PaymentServiceSelectionReqType:
    return iso2.PaymentServiceSelectionReqType(
        SelectedPaymentOption=iso2.paymentOptionType(option.value),
        SelectedServiceList=iso2.SelectedServiceListType(
            SelectedService=[iso2.SelectedServiceType(ServiceID=i) for i in services]
        ),
    )


def dc_ev_status(ready: bool = True) -> iso2.DC_EVStatusType:
    return iso2.DC_EVStatusType(
        EVReady=ready, EVErrorCode=iso2.DC_EVErrorCodeType.NO_ERROR, EVRESSSOC=40
    )


def ac_cpd(
    mode: iso2.EnergyTransferModeType = iso2.EnergyTransferModeType.AC_three_phase_core,
    max_entries: int | None = None,
) -> iso2.ChargeParameterDiscoveryReqType:
    return iso2.ChargeParameterDiscoveryReqType(
        MaxEntriesSAScheduleTuple=max_entries,
        RequestedEnergyTransferMode=mode,
        AC_EVChargeParameter=iso2.AC_EVChargeParameterType(
            EAmount=convert.physical(20_000, iso2.unitSymbolType.Wh),
            EVMaxVoltage=convert.volts(400),
            EVMaxCurrent=convert.amps(32),
            EVMinCurrent=convert.amps(6),
        ),
    )


def dc_cpd(
    max_voltage: float = 450,
    *,
    mode: iso2.EnergyTransferModeType = iso2.EnergyTransferModeType.DC_extended,
    with_parameter: bool = True,
) -> iso2.ChargeParameterDiscoveryReqType:
    parameter = iso2.DC_EVChargeParameterType(
        DC_EVStatus=dc_ev_status(),
        EVMaximumCurrentLimit=convert.amps(125),
        EVMaximumPowerLimit=convert.watts(50_000),
        EVMaximumVoltageLimit=convert.volts(max_voltage),
    )
    return iso2.ChargeParameterDiscoveryReqType(
        RequestedEnergyTransferMode=mode,
        DC_EVChargeParameter=parameter if with_parameter else None,
    )


def power_delivery(
    progress: iso2.chargeProgressType = iso2.chargeProgressType.Start,
    *,
    tuple_id: int = 1,
    profile: list[tuple[int, float]] | None = None,
) -> iso2.PowerDeliveryReqType:
    charging_profile = None
    if profile is not None:
        charging_profile = iso2.ChargingProfileType(
            ProfileEntry=[
                iso2.ProfileEntryType(
                    ChargingProfileEntryStart=start,
                    ChargingProfileEntryMaxPower=convert.watts(power),
                )
                for start, power in profile
            ]
        )
    return iso2.PowerDeliveryReqType(
        ChargeProgress=progress, SAScheduleTupleID=tuple_id, ChargingProfile=charging_profile
    )


def cable_check() -> iso2.CableCheckReqType:
    return iso2.CableCheckReqType(DC_EVStatus=dc_ev_status())


def pre_charge(voltage: float = 380, current: float = 2) -> iso2.PreChargeReqType:
    return iso2.PreChargeReqType(
        DC_EVStatus=dc_ev_status(),
        EVTargetVoltage=convert.volts(voltage),
        EVTargetCurrent=convert.amps(current),
    )


def current_demand(voltage: float = 400, current: float = 100) -> iso2.CurrentDemandReqType:
    return iso2.CurrentDemandReqType(
        DC_EVStatus=dc_ev_status(),
        EVTargetCurrent=convert.amps(current),
        ChargingComplete=False,
        EVTargetVoltage=convert.volts(voltage),
    )


def session_stop(pause: bool = False) -> iso2.SessionStopReqType:
    kind = iso2.chargingSessionType.Pause if pause else iso2.chargingSessionType.Terminate
    return iso2.SessionStopReqType(ChargingSession=kind)


def metering_receipt(session_id: bytes, energy_wh: int = 1000) -> iso2.MeteringReceiptReqType:
    return iso2.MeteringReceiptReqType(
        Id="ID1",
        SessionID=session_id,
        SAScheduleTupleID=1,
        MeterInfo=iso2.MeterInfoType(MeterID="M1", MeterReading=energy_wh),
    )


# --- events -----------------------------------------------------------------------------------


def exchanged(events: list[SessionEvent]) -> list[tuple[str, str]]:
    """(request name, response code) of every MessageExchanged event, in order."""
    return [(e.request_name, e.response_code) for e in events if isinstance(e, MessageExchanged)]


def of_type(events: list[SessionEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


# --- session drivers (Harness) ----------------------------------------------------------------


def setup(h: Harness, *, session_id: bytes | None = None) -> Any:
    h.handshake([sap.AppProtocol.ISO2])
    return h.send(iso2.SessionSetupReqType(EVCCID=EVCCID), session_id=session_id)


def authorized_eim(h: Harness, *, session_id: bytes | None = None) -> None:
    """Handshake .. AuthorizationReq(Finished) with External Identification Means."""
    setup(h, session_id=session_id)
    h.send(iso2.ServiceDiscoveryReqType())
    h.send(selection())
    assert h.send(iso2.AuthorizationReqType()).EVSEProcessing == iso2.EVSEProcessingType.Ongoing
    h.session.handle_event(accepted(), h.now)
    assert h.send(iso2.AuthorizationReqType()).EVSEProcessing == iso2.EVSEProcessingType.Finished


def ac_charging(h: Harness) -> None:
    """An AC EIM session up to the charge loop (PowerDelivery Start answered OK)."""
    authorized_eim(h)
    assert h.send(ac_cpd()).ResponseCode == iso2.responseCodeType.OK
    h.set_status(cp_state=ControlPilotState.C)
    assert h.send(power_delivery()).ResponseCode == iso2.responseCodeType.OK


def dc_charging(h: Harness) -> None:
    """A DC EIM session up to the charge loop, through CableCheck and PreCharge."""
    authorized_eim(h)
    assert h.send(dc_cpd()).ResponseCode == iso2.responseCodeType.OK
    h.set_status(cp_state=ControlPilotState.C)
    assert h.send(cable_check()).EVSEProcessing == iso2.EVSEProcessingType.Ongoing
    h.set_status(isolation=IsolationStatus.VALID)
    assert h.send(cable_check()).EVSEProcessing == iso2.EVSEProcessingType.Finished
    assert h.send(pre_charge()).ResponseCode == iso2.responseCodeType.OK
    assert h.send(power_delivery()).ResponseCode == iso2.responseCodeType.OK


# --- Plug & Charge ----------------------------------------------------------------------------


@cache
def pki_for(kind: str = "good") -> TestPki:
    """ "good": valid at T0; "foreign": another PKI valid at T0; "expired": issued 800
    days before T0 (its contract and sub-CAs have expired by T0)."""
    if kind == "expired":
        return create_pki(Standard.ISO2, at=T0 - timedelta(days=800))
    return create_pki(Standard.ISO2, at=T0)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def contract_chain(pki: TestPki) -> iso2.CertificateChainType:
    leaf, *subs = pki.chain(Role.CONTRACT)
    return iso2.CertificateChainType(
        Certificate=der(leaf),
        SubCertificates=iso2.SubCertificatesType(Certificate=[der(c) for c in subs]),
    )


def emaid_of(pki: TestPki) -> str:
    return emaid_from_certificate(pki[Role.CONTRACT].certificate).normalised


def contract_key(pki: TestPki) -> ec.EllipticCurvePrivateKey:
    key = pki[Role.CONTRACT].key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def payment_details(pki: TestPki, emaid: str | None = None) -> iso2.PaymentDetailsReqType:
    return iso2.PaymentDetailsReqType(
        eMAID=emaid or emaid_of(pki_for()), ContractSignatureCertChain=contract_chain(pki)
    )


def signed_authorization(
    challenge: bytes, pki: TestPki | None = None
) -> tuple[iso2.AuthorizationReqType, xmldsig.SignatureType]:
    req = iso2.AuthorizationReqType(Id="ID1", GenChallenge=challenge)
    key = contract_key(pki or pki_for())
    return req, sign([("ID1", req)], key, message=SignedMessage.ISO2_AUTHORIZATION_REQ)


def signed_receipt(
    session_id: bytes, energy_wh: int = 1000, pki: TestPki | None = None
) -> tuple[iso2.MeteringReceiptReqType, xmldsig.SignatureType]:
    req = metering_receipt(session_id, energy_wh)
    key = contract_key(pki or pki_for())
    return req, sign([("ID1", req)], key, message=SignedMessage.ISO2_METERING_RECEIPT_REQ)


def trust() -> TrustStore:
    """The good PKI's roots, and the expired PKI's (whose roots are still valid at T0)."""
    return TrustStore([*pki_for().roots(), *pki_for("expired").roots()])


def pnc_harness(*, resumable: Any = None, **options: Any) -> Harness:
    config = SeccConfig(contract_trust=trust(), **options)
    return Harness(tls=True, config=config, resumable=resumable)


def pnc_to_payment_details(h: Harness) -> None:
    setup(h)
    h.send(iso2.ServiceDiscoveryReqType())
    assert h.send(selection(PaymentOption.CONTRACT)).ResponseCode == iso2.responseCodeType.OK
