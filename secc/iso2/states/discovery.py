"""ServiceDiscoveryReq, ServiceDetailReq, PaymentServiceSelectionReq (ISO 15118-2 8.4.3.3-5)."""

from __future__ import annotations

import dataclasses
from enum import IntEnum

from exi_schemas import iso2
from secc.context import Context, Outcome, PaymentOption, SessionData
from secc.errors import (
    NoChargeServiceError,
    PaymentSelectionError,
    ServiceIdError,
    ServiceSelectionError,
)
from secc.iso2.state import State

R = iso2.responseCodeType
CHARGE_SERVICE_ID = 1  # [V2G2-421]: the charge service is ServiceID 1
CERTIFICATE_SERVICE_ID = 2  # Table 105: ServiceID 2, category ContractCertificate


class CertificateParameterSet(IntEnum):
    """The ParameterSetIDs of the ContractCertificate service (Table 106); the EV simulator
    selects by them too."""

    INSTALLATION = 1
    UPDATE = 2


CERTIFICATE_PARAMETER_SETS = {s.value: s.name.title() for s in CertificateParameterSet}


def payment_options(ctx: Context, data: SessionData) -> tuple[PaymentOption, ...]:
    """The options offered: Contract (PnC) only over TLS unless configured otherwise."""
    options = ctx.config.payment_options
    if ctx.config.pnc_requires_tls and not data.tls:
        options = tuple(o for o in options if o is not PaymentOption.CONTRACT)
    return options


def certificate_service_offered(ctx: Context, data: SessionData) -> bool:
    return ctx.config.certificate_service and PaymentOption.CONTRACT in payment_options(ctx, data)


def handle_service_discovery(
    req: iso2.ServiceDiscoveryReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    modes = [iso2.EnergyTransferModeType(m.value) for m in ctx.energy_modes]
    services = None
    if certificate_service_offered(ctx, data):
        services = iso2.ServiceListType(
            Service=[
                iso2.ServiceType(
                    ServiceID=CERTIFICATE_SERVICE_ID,
                    ServiceName="Certificate",
                    ServiceCategory=iso2.serviceCategoryType.ContractCertificate,
                    FreeService=True,
                )
            ]
        )
    response = iso2.ServiceDiscoveryResType(
        ResponseCode=R.OK,
        PaymentOptionList=iso2.PaymentOptionListType(
            PaymentOption=[iso2.paymentOptionType(o.value) for o in payment_options(ctx, data)]
        ),
        ChargeService=iso2.ChargeServiceType(
            ServiceID=CHARGE_SERVICE_ID,
            ServiceName="AC_DC_Charging",
            ServiceCategory=iso2.serviceCategoryType.EVCharging,
            FreeService=False,
            SupportedEnergyTransferMode=iso2.SupportedEnergyTransferModeType(
                EnergyTransferMode=modes
            ),
        ),
        ServiceList=services,
    )
    return Outcome(response=response, next_state=State.WAIT_PAYMENT_SERVICE_SELECTION)


def handle_service_detail(
    req: iso2.ServiceDetailReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    if req.ServiceID != CERTIFICATE_SERVICE_ID or not certificate_service_offered(ctx, data):
        raise ServiceIdError(f"no details for ServiceID {req.ServiceID}")
    sets = [
        iso2.ParameterSetType(
            ParameterSetID=set_id,
            Parameter=[iso2.ParameterType(Name="Service", stringValue=name)],
        )
        for set_id, name in CERTIFICATE_PARAMETER_SETS.items()
    ]
    response = iso2.ServiceDetailResType(
        ResponseCode=R.OK,
        ServiceID=req.ServiceID,
        ServiceParameterList=iso2.ServiceParameterListType(ParameterSet=sets),
    )
    return Outcome(response=response)


def handle_payment_service_selection(
    req: iso2.PaymentServiceSelectionReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    offered = payment_options(ctx, data)
    try:
        option = PaymentOption(req.SelectedPaymentOption.value)
    except ValueError:
        raise PaymentSelectionError(f"unknown payment option {req.SelectedPaymentOption}") from None
    if option not in offered:
        raise PaymentSelectionError(f"{option.value} was not offered")
    ids = tuple(s.ServiceID for s in req.SelectedServiceList.SelectedService)
    if CHARGE_SERVICE_ID not in ids:
        raise NoChargeServiceError("the charge service (ServiceID 1) was not selected")
    known = {CHARGE_SERVICE_ID}
    if certificate_service_offered(ctx, data):
        known.add(CERTIFICATE_SERVICE_ID)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ServiceSelectionError(f"ServiceID {unknown[0]} was not offered")
    new = dataclasses.replace(data, payment=option, services=ids)
    if option is PaymentOption.CONTRACT:
        next_state = State.WAIT_PAYMENT_DETAILS
    else:
        next_state = State.WAIT_AUTHORIZATION
    return Outcome(
        response=iso2.PaymentServiceSelectionResType(ResponseCode=R.OK),
        next_state=next_state,
        data=new,
    )
