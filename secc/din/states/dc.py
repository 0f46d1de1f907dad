"""CableCheckReq, PreChargeReq, WeldingDetectionReq (DIN SPEC 70121 9.4.2.3, 9.4.2.4,
9.4.3.3).

The cable check waits up to V2G_SECC_CPState_Detection_Timeout for CP state C/D after the
first request ([V2G-DC-547]), starts the insulation test once and answers Ongoing until its
result is in, at most V2G_SECC_CableCheck_Performance_Time ([V2G-DC-499], [V2G-DC-455]).
"""

from __future__ import annotations

import dataclasses

from exi_schemas import din
from secc.context import Context, Outcome, SessionData
from secc.din import convert
from secc.din.state import State
from secc.din.timing import TIMING
from secc.steps import Progress, cable_check_step, pre_charge_step

R = din.responseCodeType
P = din.EVSEProcessingType
#: SessionData.extras key: when the first CableCheckReq arrived (monotonic s)
SINCE = "din.cable_check_since"


def handle_cable_check(
    req: din.CableCheckReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    since = data.extras.get(SINCE)
    if since is None:
        since = ctx.now
        data = dataclasses.replace(data, extras={**data.extras, SINCE: since})
    step = cable_check_step(
        ctx,
        data,
        elapsed=ctx.now - since,
        cp_grace=TIMING.cp_state_detection,
        time_limit=TIMING.cable_check_timeout,
    )
    finished = step.progress is Progress.FINISHED
    response = din.CableCheckResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx, monitoring=not finished),
        EVSEProcessing=P.Finished if finished else P.Ongoing,
    )
    return Outcome(
        response=response,
        next_state=State.WAIT_PRE_CHARGE if finished else None,
        data=step.data,
        commands=step.commands,
    )


def handle_pre_charge(req: din.PreChargeReqType, ctx: Context, data: SessionData) -> Outcome[State]:
    voltage = convert.value(req.EVTargetVoltage)
    current = convert.value(req.EVTargetCurrent)
    step = pre_charge_step(voltage, current, ctx, data)
    response = din.PreChargeResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx),
        EVSEPresentVoltage=convert.volts(ctx.status.present_voltage),
    )
    return Outcome(response=response, data=step.data, commands=step.commands)


def handle_welding_detection(
    req: din.WeldingDetectionReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    response = din.WeldingDetectionResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx),
        EVSEPresentVoltage=convert.volts(ctx.status.present_voltage),
    )
    return Outcome(response=response)
