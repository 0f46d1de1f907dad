"""The ISO 15118-2 EV sequence as a table: request → (build, react).

SessionSetup → ServiceDiscovery → [ServiceDetail*] → PaymentServiceSelection →
  PnC: [CertificateInstallation | CertificateUpdate] → PaymentDetails → Authorization (signed)*
  EIM: Authorization*
→ ChargeParameterDiscovery* →
  DC: [CP state C] CableCheck* → PreCharge* → PowerDelivery(Start) → CurrentDemand*
  AC: PowerDelivery(Start) [CP state C] → ChargingStatus*
  (MeteringReceipt whenever a loop response sets ReceiptRequired;
   PowerDelivery(Renegotiate) → ChargeParameterDiscovery → PowerDelivery(Start) on
   ReNegotiation or EV-initiated renegotiation)
→ PowerDelivery(Stop) [CP state B] → DC: WeldingDetection* → SessionStop(Terminate | Pause).

A resumed session (SessionSetupRes OK_OldSessionJoined after SessionSetupReq with the paused
SessionID) skips ServiceDetail, CertificateInstallation/Update and PaymentDetails and sends
an unsigned AuthorizationReq (no new GenChallenge was exchanged).
"""

from __future__ import annotations

import logging
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from evcc import dc, loop
from evcc.common import (
    ChargeProgress,
    Dialect,
    Done,
    EvContext,
    Next,
    Reaction,
    RequestSpec,
    from_physical,
    repeat,
)
from evcc.events import ControlPilotChange
from evcc.iso2 import pnc, requests
from evcc.iso2.timing import ISO2_TIMING
from iso15118 import exi
from iso15118.sap import AppProtocol
from pki.xmlsig import SignatureError, SignedMessage, verify
from secc.evse import ControlPilotState
from secc.iso2.states.discovery import CertificateParameterSet

__all__ = ["ISO2_DIALECT"]

logger = logging.getLogger("evcc.iso2")
_TYPES = "urn:iso:15118:2:2013:MsgDataTypes"


def session_setup(res: Any, ctx: EvContext, now: float) -> Reaction:
    ctx.evse_id = res.EVSEID
    ctx.resumed = str(res.ResponseCode) == "OK_OldSessionJoined"
    return Reaction(Next("ServiceDiscoveryReq"))


def service_discovery(res: Any, ctx: EvContext, now: float) -> Reaction:
    options = [str(o) for o in res.PaymentOptionList.PaymentOption]
    if ctx.config.payment.value not in options:
        return Reaction(Done(False, f"the EVSE does not offer {ctx.config.payment.value}"))
    modes = [str(m) for m in res.ChargeService.SupportedEnergyTransferMode.EnergyTransferMode]
    if ctx.config.energy_mode.value not in modes:
        return Reaction(Done(False, f"the EVSE does not offer {ctx.config.energy_mode.value}"))
    ctx.charge_service_id = res.ChargeService.ServiceID
    services = res.ServiceList.Service if res.ServiceList is not None else []
    action = pnc.certificate_action(ctx)
    for service in services:
        if str(service.ServiceCategory) == "ContractCertificate" and action is not None:
            ctx.certificate_service = (service.ServiceID, action)
    if ctx.config.request_service_detail and not ctx.resumed:
        ctx.detail_queue = [s.ServiceID for s in services] or [ctx.charge_service_id]
        return Reaction(Next("ServiceDetailReq"))
    return Reaction(Next("PaymentServiceSelectionReq"))


def service_detail(res: Any, ctx: EvContext, now: float) -> Reaction:
    if ctx.detail_queue:
        ctx.detail_queue.pop(0)
    if ctx.detail_queue:
        return Reaction(Next("ServiceDetailReq"))
    return Reaction(Next("PaymentServiceSelectionReq"))


def payment_service_selection(res: Any, ctx: EvContext, now: float) -> Reaction:
    credentials = ctx.config.pnc
    if ctx.config.payment.value != "Contract" or credentials is None or ctx.resumed:
        return Reaction(Next("AuthorizationReq"))
    if credentials.needs_installation:
        return Reaction(Next("CertificateInstallationReq"))
    update = CertificateParameterSet.UPDATE
    if ctx.certificate_service is not None and ctx.certificate_service[1] == update:
        return Reaction(Next("CertificateUpdateReq"))
    return Reaction(Next("PaymentDetailsReq"))


def authorization(res: Any, ctx: EvContext, now: float) -> Reaction:
    if str(res.EVSEProcessing) != "Finished":
        return repeat("AuthorizationReq", ctx)
    return Reaction(Next("ChargeParameterDiscoveryReq"))


def _take_limits(res: Any, ctx: EvContext) -> None:
    if res.AC_EVSEChargeParameter is not None:
        ac = res.AC_EVSEChargeParameter
        ctx.evse_nominal_voltage = from_physical(ac.EVSENominalVoltage)
        ctx.evse_max_current = from_physical(ac.EVSEMaxCurrent)
    if res.DC_EVSEChargeParameter is not None:
        limits = res.DC_EVSEChargeParameter
        ctx.evse_max_voltage = from_physical(limits.EVSEMaximumVoltageLimit)
        ctx.evse_max_current = from_physical(limits.EVSEMaximumCurrentLimit)
        ctx.evse_max_power = from_physical(limits.EVSEMaximumPowerLimit)
    if res.SAScheduleList is not None and res.SAScheduleList.SAScheduleTuple:
        chosen = res.SAScheduleList.SAScheduleTuple[0]
        ctx.schedule_id = chosen.SAScheduleTupleID
        ctx.schedule = tuple(
            (
                e.RelativeTimeInterval.start if e.RelativeTimeInterval else 0,
                from_physical(e.PMax),
            )
            for e in chosen.PMaxSchedule.PMaxScheduleEntry
        )
        ctx.sales_tariff = chosen.SalesTariff
        ctx.sales_tariff_verified = _check_sales_tariffs(res.SAScheduleList, ctx)


def _check_sales_tariffs(schedules: Any, ctx: EvContext) -> bool | None:
    """Plug & Charge: do the SalesTariffs verify with the header signature and the public key
    of the contract certificate's issuer (the first sub-CA of the contract chain)? None when
    nothing is to be checked (no SalesTariff, or an EIM session)."""
    tariffs = {
        t.SalesTariff.Id: exi.Element(_TYPES, "SalesTariff", t.SalesTariff)
        for t in schedules.SAScheduleTuple
        if t.SalesTariff is not None
    }
    if not tariffs or ctx.config.payment.value != "Contract":
        return None
    signature = getattr(ctx.response_header, "Signature", None)
    if signature is None or len(ctx.contract_chain) < 2 or None in tariffs:
        logger.warning("SalesTariff without a signature the EV can check")
        return False
    try:
        issuer = x509.load_der_x509_certificate(ctx.contract_chain[1]).public_key()
        if not isinstance(issuer, ec.EllipticCurvePublicKey):
            return False
        verify(signature, tariffs, issuer, message=SignedMessage.ISO2_SALES_TARIFF)
    except (SignatureError, ValueError) as exc:
        logger.warning("SalesTariff signature does not verify: %s", exc)
        return False
    return True


def _evse_stopping(res: Any) -> bool:
    """Does the EVSEStatus in ChargeParameterDiscoveryRes ask the car to stop?"""
    if res.DC_EVSEChargeParameter is not None:
        status = res.DC_EVSEChargeParameter.DC_EVSEStatus
        halted = dc.evse_halted(status) is not None
        return halted or str(status.EVSENotification) == "StopCharging"
    if res.AC_EVSEChargeParameter is not None:
        return str(res.AC_EVSEChargeParameter.AC_EVSEStatus.EVSENotification) == "StopCharging"
    return False


def charge_parameter_discovery(res: Any, ctx: EvContext, now: float) -> Reaction:
    if str(res.EVSEProcessing) != "Finished":
        return repeat("ChargeParameterDiscoveryReq", ctx)
    _take_limits(res, ctx)
    renegotiating = ctx.charge_progress is ChargeProgress.RENEGOTIATE
    if renegotiating and _evse_stopping(res):
        # an operator (or the EVSE) stopped the session while it renegotiated: the car
        # ends it with PowerDelivery(Stop) as EVSENotification StopCharging asks, instead
        # of starting again
        ctx.stop_reason = "the EVSE asked to stop"
        ctx.charge_progress = ChargeProgress.STOP
        return Reaction(Next("PowerDeliveryReq"))
    ctx.charge_progress = ChargeProgress.START
    if ctx.config.energy_mode.is_dc and not renegotiating:
        return Reaction(Next("CableCheckReq"), (ControlPilotChange(ControlPilotState.C),))
    return Reaction(Next("PowerDeliveryReq"))


_POWER_DELIVERY_DC = loop.power_delivery(loop_request="CurrentDemandReq", dc=True)
_POWER_DELIVERY_AC = loop.power_delivery(loop_request="ChargingStatusReq", dc=False)


def _power_delivery(res: Any, ctx: EvContext, now: float) -> Reaction:
    dc_mode = ctx.config.energy_mode.is_dc
    return (_POWER_DELIVERY_DC if dc_mode else _POWER_DELIVERY_AC)(res, ctx, now)


def _spec(build: Any, react: Any) -> RequestSpec:
    return RequestSpec(build, react)


ISO2_DIALECT = Dialect(
    protocol=AppProtocol.ISO2,
    timing=ISO2_TIMING,
    requests={
        "SessionSetupReq": _spec(requests.session_setup, session_setup),
        "ServiceDiscoveryReq": _spec(requests.service_discovery, service_discovery),
        "ServiceDetailReq": _spec(requests.service_detail, service_detail),
        "PaymentServiceSelectionReq": _spec(
            requests.payment_service_selection, payment_service_selection
        ),
        "CertificateInstallationReq": _spec(
            pnc.certificate_installation_request, pnc.certificate_installation
        ),
        "CertificateUpdateReq": _spec(pnc.certificate_update_request, pnc.certificate_update),
        "PaymentDetailsReq": _spec(pnc.payment_details_request, pnc.payment_details),
        "AuthorizationReq": _spec(requests.authorization, authorization),
        "ChargeParameterDiscoveryReq": _spec(
            requests.charge_parameter_discovery, charge_parameter_discovery
        ),
        "CableCheckReq": _spec(requests.cable_check, dc.cable_check),
        "PreChargeReq": _spec(requests.pre_charge, dc.pre_charge),
        "PowerDeliveryReq": _spec(requests.power_delivery, _power_delivery),
        "CurrentDemandReq": _spec(requests.current_demand, loop.current_demand(can_pause=True)),
        "ChargingStatusReq": _spec(requests.charging_status, loop.charging_status),
        "MeteringReceiptReq": _spec(requests.metering_receipt, loop.metering_receipt),
        "WeldingDetectionReq": _spec(requests.welding_detection, dc.welding_detection),
        "SessionStopReq": _spec(requests.session_stop, loop.session_stop),
    },
    wrap=requests.wrap,
    sign=pnc.sign_request,
)
