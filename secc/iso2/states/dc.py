"""DC steps around the charge loop: CableCheckReq, PreChargeReq, WeldingDetectionReq
(ISO 15118-2 8.4.5.2, 8.4.5.3, 8.4.5.5)."""

from __future__ import annotations

import dataclasses

from exi_schemas import iso2
from secc.context import Context, Outcome, SessionData
from secc.iso2 import convert
from secc.iso2.state import State
from secc.iso2.timing import TIMING
from secc.steps import CableCheckFailed, Progress, cable_check_step, pre_charge_step

__all__ = [
    "CableCheckFailed",
    "handle_cable_check",
    "handle_pre_charge",
    "handle_welding_detection",
]

R = iso2.responseCodeType
P = iso2.EVSEProcessingType
#: SessionData.extras key: when the first CableCheckReq arrived (monotonic s)
SINCE = "iso2.cable_check_since"


def handle_cable_check(
    req: iso2.CableCheckReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    """CP state C/D at once (ISO 15118-4 TC_SECC_DC_VTB_CableCheck_008), `StartCableCheck`
    once, Ongoing until the isolation result (`secc.steps.cable_check_step`), which must come
    within the SECC's cable-check limit; `CableCheckFailed` (FAILED) otherwise."""
    since = data.extras.get(SINCE)
    if since is None:
        since = ctx.now
        data = dataclasses.replace(data, extras={**data.extras, SINCE: since})
    step = cable_check_step(
        ctx, data, elapsed=ctx.now - since, time_limit=TIMING.cable_check_timeout
    )
    if step.progress is Progress.FINISHED:
        return Outcome(
            response=_cable_check_response(ctx, step.data, P.Finished),
            next_state=State.WAIT_PRE_CHARGE,
        )
    return Outcome(
        response=_cable_check_response(ctx, step.data, P.Ongoing),
        data=step.data,
        commands=step.commands,
    )


def _cable_check_response(
    ctx: Context, data: SessionData, processing: iso2.EVSEProcessingType
) -> iso2.CableCheckResType:
    return iso2.CableCheckResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx, data),
        EVSEProcessing=processing,
    )


def handle_pre_charge(
    req: iso2.PreChargeReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    voltage = convert.value(req.EVTargetVoltage)
    current = convert.value(req.EVTargetCurrent)
    step = pre_charge_step(voltage, current, ctx, data)
    response = iso2.PreChargeResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx, step.data),
        EVSEPresentVoltage=convert.volts(ctx.status.present_voltage),
    )
    return Outcome(response=response, data=step.data, commands=step.commands)


def handle_welding_detection(
    req: iso2.WeldingDetectionReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    convert.require_mode(ctx, data, dc=True, request="WeldingDetectionReq")
    response = iso2.WeldingDetectionResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx, data),
        EVSEPresentVoltage=convert.volts(ctx.status.present_voltage),
    )
    return Outcome(response=response)
