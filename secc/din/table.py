"""The DIN SPEC 70121 SECC transition table: which requests each state accepts, and who
answers them ([V2G-DC-437] ... [V2G-DC-469]). A request missing from a state's row is a
sequence error, FAILED_SequenceError ([V2G-DC-390], `secc.dispatch`). SessionStopReq is
accepted in every state before the power transfer and after it, not while charging: the car
ends the charge loop with PowerDeliveryReq(ReadyToChargeState=false) first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from exi_schemas import din
from secc.context import Handler
from secc.din.state import State
from secc.din.states.authentication import handle_contract_authentication
from secc.din.states.charge_parameters import handle_charge_parameter_discovery
from secc.din.states.charging import handle_current_demand
from secc.din.states.dc import handle_cable_check, handle_pre_charge, handle_welding_detection
from secc.din.states.discovery import handle_service_discovery, handle_service_payment_selection
from secc.din.states.power_delivery import handle_power_delivery
from secc.din.states.session_setup import handle_session_setup
from secc.din.states.session_stop import handle_session_stop

__all__ = ["TRANSITIONS"]

_STOP: Final = {din.SessionStopType: handle_session_stop}

TRANSITIONS: Final[Mapping[State, Mapping[type[Any], Handler]]] = {
    State.WAIT_SESSION_SETUP: {din.SessionSetupReqType: handle_session_setup},
    State.WAIT_SERVICE_DISCOVERY: {
        din.ServiceDiscoveryReqType: handle_service_discovery,
        **_STOP,
    },
    State.WAIT_SERVICE_PAYMENT_SELECTION: {
        din.ServicePaymentSelectionReqType: handle_service_payment_selection,
        **_STOP,
    },
    State.WAIT_CONTRACT_AUTHENTICATION: {
        din.ContractAuthenticationReqType: handle_contract_authentication,
        **_STOP,
    },
    State.WAIT_CHARGE_PARAMETER_DISCOVERY: {
        din.ChargeParameterDiscoveryReqType: handle_charge_parameter_discovery,
        **_STOP,
    },
    State.WAIT_CABLE_CHECK: {din.CableCheckReqType: handle_cable_check, **_STOP},
    State.WAIT_PRE_CHARGE: {
        din.PreChargeReqType: handle_pre_charge,
        din.PowerDeliveryReqType: handle_power_delivery,
        **_STOP,
    },
    State.CHARGING: {
        din.CurrentDemandReqType: handle_current_demand,
        din.PowerDeliveryReqType: handle_power_delivery,
    },
    State.WAIT_SESSION_STOP: {
        din.WeldingDetectionReqType: handle_welding_detection,
        **_STOP,
    },
}
