"""ServiceDiscoveryReq and ServicePaymentSelectionReq (DIN SPEC 70121 9.4.1.3-4).

DIN offers one charge service with one DC energy transfer type and External Payment only
([V2G-DC-395]); ServiceName and ServiceScope are left out ([V2G-DC-628], [V2G-DC-629]) and
there is no ServiceList.
"""

from __future__ import annotations

import dataclasses

from exi_schemas import din
from secc.context import Context, Outcome, PaymentOption, SessionData
from secc.din import convert
from secc.din.state import State
from secc.errors import PaymentSelectionError, ServiceSelectionError, V2GError

R = din.responseCodeType
CHARGE_SERVICE_ID = 1


def handle_service_discovery(
    req: din.ServiceDiscoveryReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    mode = convert.energy_transfer_type(ctx)
    if mode is None:
        raise V2GError("this EVSE offers no DC energy transfer mode (DIN is DC only)")
    response = din.ServiceDiscoveryResType(
        ResponseCode=R.OK,
        PaymentOptions=din.PaymentOptionsType(
            PaymentOption=[din.paymentOptionType.ExternalPayment]
        ),
        ChargeService=din.ServiceChargeType(
            ServiceTag=din.ServiceTagType(
                ServiceID=CHARGE_SERVICE_ID, ServiceCategory=din.serviceCategoryType.EVCharging
            ),
            FreeService=False,
            EnergyTransferType=din.EVSESupportedEnergyTransferType(mode.value),
        ),
    )
    return Outcome(response=response, next_state=State.WAIT_SERVICE_PAYMENT_SELECTION)


def handle_service_payment_selection(
    req: din.ServicePaymentSelectionReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    if req.SelectedPaymentOption != din.paymentOptionType.ExternalPayment:
        raise PaymentSelectionError(
            f"{req.SelectedPaymentOption.value} was not offered (DIN: ExternalPayment only)"
        )
    ids = tuple(s.ServiceID for s in req.SelectedServiceList.SelectedService)
    if ids != (CHARGE_SERVICE_ID,):  # [V2G-DC-396], [V2G-DC-635]
        raise ServiceSelectionError(f"ServiceIDs {list(ids)} selected; only the charge service")
    new = dataclasses.replace(data, payment=PaymentOption.EXTERNAL_PAYMENT, services=ids)
    return Outcome(
        response=din.ServicePaymentSelectionResType(ResponseCode=R.OK),
        next_state=State.WAIT_CONTRACT_AUTHENTICATION,
        data=new,
    )
