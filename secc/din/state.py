"""The states of a DIN SPEC 70121 SECC session, named by the request(s) awaited
(DIN SPEC 70121 9.4 message sequence; [V2G-DC-437] ... [V2G-DC-469])."""

from __future__ import annotations

from enum import Enum

__all__ = ["State"]


class State(Enum):
    WAIT_SESSION_SETUP = "wait SessionSetupReq"
    WAIT_SERVICE_DISCOVERY = "wait ServiceDiscoveryReq"
    WAIT_SERVICE_PAYMENT_SELECTION = "wait ServicePaymentSelectionReq"
    #: repeated while the answer is Ongoing
    WAIT_CONTRACT_AUTHENTICATION = "wait ContractAuthenticationReq"
    WAIT_CHARGE_PARAMETER_DISCOVERY = "wait ChargeParameterDiscoveryReq"
    #: repeated while the answer is Ongoing
    WAIT_CABLE_CHECK = "wait CableCheckReq"
    #: PreChargeReq (repeated until the car is satisfied) or PowerDeliveryReq
    WAIT_PRE_CHARGE = "wait PreChargeReq"
    #: CurrentDemandReq or PowerDeliveryReq(ReadyToChargeState=false)
    CHARGING = "charging"
    #: after PowerDelivery(false): WeldingDetectionReq, SessionStopReq
    WAIT_SESSION_STOP = "wait SessionStopReq"
