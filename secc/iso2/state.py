"""The states of an ISO 15118-2 SECC session, named by the request(s) awaited."""

from __future__ import annotations

from enum import Enum

__all__ = ["State"]


class State(Enum):
    WAIT_SESSION_SETUP = "wait SessionSetupReq"
    WAIT_SERVICE_DISCOVERY = "wait ServiceDiscoveryReq"
    #: ServiceDetailReq (repeatable) or PaymentServiceSelectionReq
    WAIT_PAYMENT_SERVICE_SELECTION = "wait PaymentServiceSelectionReq"
    #: PnC: CertificateInstallationReq / CertificateUpdateReq / PaymentDetailsReq;
    #: EIM: AuthorizationReq
    WAIT_PAYMENT_DETAILS = "wait PaymentDetailsReq"
    WAIT_AUTHORIZATION = "wait AuthorizationReq"
    WAIT_CHARGE_PARAMETER_DISCOVERY = "wait ChargeParameterDiscoveryReq"
    WAIT_CABLE_CHECK = "wait CableCheckReq"  # DC
    WAIT_PRE_CHARGE = "wait PreChargeReq"  # DC
    WAIT_POWER_DELIVERY = "wait PowerDeliveryReq"
    #: AC: ChargingStatusReq, DC: CurrentDemandReq; MeteringReceiptReq; PowerDeliveryReq
    CHARGING = "charging"
    #: after PowerDelivery(Stop): DC WeldingDetectionReq, SessionStopReq
    WAIT_SESSION_STOP = "wait SessionStopReq"
