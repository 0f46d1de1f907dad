"""The ISO 15118-2 SECC transition table: which requests each state accepts, and who
answers them. A request missing from a state's row is a sequence error (`secc.dispatch`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from exi_schemas import iso2
from secc.context import Handler
from secc.iso2.state import State
from secc.iso2.states.certificates import (
    handle_certificate_installation,
    handle_certificate_update,
)
from secc.iso2.states.charge_parameters import handle_charge_parameter_discovery
from secc.iso2.states.charging import (
    handle_charging_status,
    handle_current_demand,
    handle_metering_receipt,
)
from secc.iso2.states.dc import handle_cable_check, handle_pre_charge, handle_welding_detection
from secc.iso2.states.discovery import (
    handle_payment_service_selection,
    handle_service_detail,
    handle_service_discovery,
)
from secc.iso2.states.payment import handle_authorization, handle_payment_details
from secc.iso2.states.power_delivery import handle_power_delivery
from secc.iso2.states.session_setup import handle_session_setup
from secc.iso2.states.session_stop import handle_session_stop

__all__ = ["TRANSITIONS"]

_STOP: Final = {iso2.SessionStopReqType: handle_session_stop}

TRANSITIONS: Final[Mapping[State, Mapping[type[Any], Handler]]] = {
    State.WAIT_SESSION_SETUP: {iso2.SessionSetupReqType: handle_session_setup},
    State.WAIT_SERVICE_DISCOVERY: {iso2.ServiceDiscoveryReqType: handle_service_discovery},
    State.WAIT_PAYMENT_SERVICE_SELECTION: {
        iso2.ServiceDetailReqType: handle_service_detail,
        iso2.PaymentServiceSelectionReqType: handle_payment_service_selection,
    },
    State.WAIT_PAYMENT_DETAILS: {
        iso2.CertificateInstallationReqType: handle_certificate_installation,
        iso2.CertificateUpdateReqType: handle_certificate_update,
        iso2.PaymentDetailsReqType: handle_payment_details,
        # a resumed Plug & Charge session whose contract was authorised before the pause
        iso2.AuthorizationReqType: handle_authorization,
    },
    State.WAIT_AUTHORIZATION: {iso2.AuthorizationReqType: handle_authorization},
    State.WAIT_CHARGE_PARAMETER_DISCOVERY: {
        iso2.ChargeParameterDiscoveryReqType: handle_charge_parameter_discovery,
        **_STOP,
    },
    State.WAIT_CABLE_CHECK: {iso2.CableCheckReqType: handle_cable_check, **_STOP},
    State.WAIT_PRE_CHARGE: {
        iso2.PreChargeReqType: handle_pre_charge,
        iso2.PowerDeliveryReqType: handle_power_delivery,
        **_STOP,
    },
    State.WAIT_POWER_DELIVERY: {
        iso2.PowerDeliveryReqType: handle_power_delivery,
        # DC renegotiation: some cars check the cable and pre-charge again after
        # ChargeParameterDiscovery (RISE-V2G does); both answer at once from the live output
        iso2.CableCheckReqType: handle_cable_check,
        iso2.PreChargeReqType: handle_pre_charge,
        **_STOP,
    },
    State.CHARGING: {
        iso2.ChargingStatusReqType: handle_charging_status,
        iso2.CurrentDemandReqType: handle_current_demand,
        iso2.MeteringReceiptReqType: handle_metering_receipt,
        iso2.PowerDeliveryReqType: handle_power_delivery,
    },
    State.WAIT_SESSION_STOP: {
        iso2.WeldingDetectionReqType: handle_welding_detection,
        iso2.MeteringReceiptReqType: handle_metering_receipt,
        **_STOP,
    },
}
