"""The charge loop: ChargingStatusReq (AC), CurrentDemandReq (DC), MeteringReceiptReq
(ISO 15118-2 8.4.4.2, 8.4.5.4, 8.4.3.13)."""

from __future__ import annotations

import dataclasses

from exi_schemas import iso2
from pki.xmlsig import SignatureError, SignedMessage, verify
from secc.context import Context, Outcome, PaymentOption, SessionData
from secc.errors import MeteringSignatureError, V2GError
from secc.iso2 import convert
from secc.iso2.state import State
from secc.records import MeterReading, SignedReceipt
from secc.steps import current_demand_step, limits_achieved

R = iso2.responseCodeType


def meter_info(reading: MeterReading) -> iso2.MeterInfoType:
    return iso2.MeterInfoType(
        MeterID=reading.meter_id,
        MeterReading=reading.energy_wh,
        SigMeterReading=reading.signature,
        MeterStatus=reading.status,
        TMeter=int(reading.at.timestamp()),
    )


def _loop_data(ctx: Context, data: SessionData) -> tuple[SessionData, bool]:
    """Track the meter and the stop request; say whether to ask for a receipt now
    (Plug & Charge only [V2G2-691]; once per session here, when the meter first reads)."""
    reading = ctx.status.meter
    stop = ctx.status.stop if ctx.status.stop is not None else data.stop_reason
    want = (
        ctx.config.receipt_required
        and data.payment is PaymentOption.CONTRACT
        and reading is not None
        and data.receipt_pending is None
        and not data.receipts
    )
    new = dataclasses.replace(
        data,
        meter_last=reading or data.meter_last,
        receipt_pending=reading if want else data.receipt_pending,
        stop_reason=stop,
    )
    return new, want


def handle_charging_status(
    req: iso2.ChargingStatusReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    convert.require_mode(ctx, data, dc=False, request="ChargingStatusReq")
    new, receipt = _loop_data(ctx, data)
    reading = ctx.status.meter
    response = iso2.ChargingStatusResType(
        ResponseCode=R.OK,
        EVSEID=ctx.evse_id,
        SAScheduleTupleID=data.sa_schedule_tuple_id or 1,
        EVSEMaxCurrent=convert.amps(convert.ac_max_current(ctx, data)),
        MeterInfo=meter_info(reading) if reading else None,
        ReceiptRequired=receipt if reading else None,
        AC_EVSEStatus=convert.ac_evse_status(ctx, data),
    )
    return Outcome(response=response, data=new)


def handle_current_demand(
    req: iso2.CurrentDemandReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    convert.require_mode(ctx, data, dc=True, request="CurrentDemandReq")
    status = ctx.status
    limits = status.limits
    voltage = convert.value(req.EVTargetVoltage)
    current = convert.value(req.EVTargetCurrent)
    new, receipt = _loop_data(ctx, data)
    step = current_demand_step(voltage, current, ctx, new)
    flags = limits_achieved(voltage, current, limits)
    reading = status.meter
    response = iso2.CurrentDemandResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx, data),
        EVSEPresentVoltage=convert.volts(status.present_voltage),
        EVSEPresentCurrent=convert.amps(status.present_current),
        EVSECurrentLimitAchieved=flags.current,
        EVSEVoltageLimitAchieved=flags.voltage,
        EVSEPowerLimitAchieved=flags.power,
        EVSEMaximumVoltageLimit=convert.volts(limits.max_voltage),
        EVSEMaximumCurrentLimit=convert.amps(limits.max_current),
        EVSEMaximumPowerLimit=convert.watts(limits.max_power),
        EVSEID=ctx.evse_id,
        SAScheduleTupleID=data.sa_schedule_tuple_id or 1,
        MeterInfo=meter_info(reading) if reading else None,
        ReceiptRequired=receipt if reading else None,
    )
    return Outcome(response=response, data=step.data, commands=step.commands)


def handle_metering_receipt(
    req: iso2.MeteringReceiptReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    """Check the car's signature over MeteringReceiptReq with the contract key [V2G2-?] and
    keep the receipt as received, with the reading it confirms."""
    if req.SessionID != data.session_id:
        raise V2GError("MeteringReceiptReq names another SessionID")
    pending = data.receipt_pending or data.meter_last
    valid = False
    if data.payment is PaymentOption.CONTRACT and data.contract is not None:
        signature = ctx.header_signature
        if signature is None or req.Id is None:
            raise MeteringSignatureError("MeteringReceiptReq carries no signature")
        try:
            verify(
                signature,
                {req.Id: req},
                data.contract.public_key,
                message=SignedMessage.ISO2_METERING_RECEIPT_REQ,
            )
        except SignatureError as exc:
            raise MeteringSignatureError(str(exc)) from exc
        valid = True
    info = req.MeterInfo
    reading = MeterReading(
        meter_id=info.MeterID,
        energy_wh=info.MeterReading or 0,
        at=ctx.at,
        signature=info.SigMeterReading,
        status=info.MeterStatus,
    )
    if pending is not None and reading.energy_wh != pending.energy_wh:
        raise MeteringSignatureError("the receipt confirms another meter reading than was sent")
    receipt = SignedReceipt(
        exi=ctx.raw, schema="iso2", reading=reading, signature_valid=valid, at=ctx.at
    )
    new = dataclasses.replace(data, receipts=(*data.receipts, receipt), receipt_pending=None)
    response = iso2.MeteringReceiptResType(
        ResponseCode=R.OK, **convert.status_fields(iso2.MeteringReceiptResType, ctx, new)
    )
    return Outcome(response=response, data=new)
