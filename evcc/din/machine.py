"""The DIN SPEC 70121 EV sequence as a table: request → (build, react).

SessionSetup → ServiceDiscovery → ServicePaymentSelection (ExternalPayment) →
ContractAuthentication* → ChargeParameterDiscovery* → [CP state C] CableCheck* → PreCharge* →
PowerDelivery(ReadyToCharge) → CurrentDemand* → PowerDelivery(not ready) [CP state B] →
WeldingDetection* → SessionStop.  (* repeated: Ongoing, voltage not reached, the loop.)
"""

from __future__ import annotations

from typing import Any

from evcc import dc, loop
from evcc.common import (
    Dialect,
    Done,
    EvContext,
    Next,
    Reaction,
    RequestSpec,
    from_physical,
    repeat,
)
from evcc.din import requests
from evcc.din.timing import DIN_TIMING
from evcc.events import ControlPilotChange
from iso15118.sap import AppProtocol
from secc.evse import ControlPilotState

__all__ = ["DIN_DIALECT"]


def session_setup(res: Any, ctx: EvContext, now: float) -> Reaction:
    ctx.evse_id = res.EVSEID.hex().upper()
    return Reaction(Next("ServiceDiscoveryReq"))


def service_discovery(res: Any, ctx: EvContext, now: float) -> Reaction:
    options = [str(o) for o in res.PaymentOptions.PaymentOption]
    if "ExternalPayment" not in options:
        return Reaction(Done(False, f"the EVSE offers no ExternalPayment ({options})"))
    ctx.charge_service_id = res.ChargeService.ServiceTag.ServiceID
    return Reaction(Next("ServicePaymentSelectionReq"))


def service_payment_selection(res: Any, ctx: EvContext, now: float) -> Reaction:
    return Reaction(Next("ContractAuthenticationReq"))


def contract_authentication(res: Any, ctx: EvContext, now: float) -> Reaction:
    if str(res.EVSEProcessing) != "Finished":
        return repeat("ContractAuthenticationReq", ctx)
    return Reaction(Next("ChargeParameterDiscoveryReq"))


def charge_parameter_discovery(res: Any, ctx: EvContext, now: float) -> Reaction:
    if str(res.EVSEProcessing) != "Finished":  # [V2G-DC-493]: ignore the values, ask again
        return repeat("ChargeParameterDiscoveryReq", ctx)
    limits = res.DC_EVSEChargeParameter
    if limits is None:
        return Reaction(Done(False, "ChargeParameterDiscoveryRes without DC_EVSEChargeParameter"))
    ctx.evse_max_voltage = from_physical(limits.EVSEMaximumVoltageLimit)
    ctx.evse_max_current = from_physical(limits.EVSEMaximumCurrentLimit)
    if limits.EVSEMaximumPowerLimit is not None:
        ctx.evse_max_power = from_physical(limits.EVSEMaximumPowerLimit)
    if res.SAScheduleList is not None and res.SAScheduleList.SAScheduleTuple:
        chosen = res.SAScheduleList.SAScheduleTuple[0]
        ctx.schedule_id = chosen.SAScheduleTupleID
        ctx.schedule = tuple(
            (e.RelativeTimeInterval.start if e.RelativeTimeInterval else 0, float(e.PMax))
            for e in chosen.PMaxSchedule.PMaxScheduleEntry
        )
    return Reaction(Next("CableCheckReq"), (ControlPilotChange(ControlPilotState.C),))


DIN_DIALECT = Dialect(
    protocol=AppProtocol.DIN,
    timing=DIN_TIMING,
    requests={
        "SessionSetupReq": RequestSpec(requests.session_setup, session_setup),
        "ServiceDiscoveryReq": RequestSpec(requests.service_discovery, service_discovery),
        "ServicePaymentSelectionReq": RequestSpec(
            requests.service_payment_selection, service_payment_selection
        ),
        "ContractAuthenticationReq": RequestSpec(
            requests.contract_authentication, contract_authentication
        ),
        "ChargeParameterDiscoveryReq": RequestSpec(
            requests.charge_parameter_discovery, charge_parameter_discovery
        ),
        "CableCheckReq": RequestSpec(requests.cable_check, dc.cable_check),
        "PreChargeReq": RequestSpec(requests.pre_charge, dc.pre_charge),
        "PowerDeliveryReq": RequestSpec(
            requests.power_delivery, loop.power_delivery(loop_request="CurrentDemandReq", dc=True)
        ),
        "CurrentDemandReq": RequestSpec(
            requests.current_demand, loop.current_demand(can_pause=False)
        ),
        "WeldingDetectionReq": RequestSpec(requests.welding_detection, dc.welding_detection),
        "SessionStopReq": RequestSpec(requests.session_stop, loop.session_stop),
    },
    wrap=requests.wrap,
    sign=lambda name, message, ctx: None,
)
