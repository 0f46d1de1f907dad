"""SessionStopReq (DIN SPEC 70121 9.4.1.6): the session ends after the response
([V2G-DC-451]); DIN has no pause."""

from __future__ import annotations

from exi_schemas import din
from secc.context import Context, Outcome, SessionData
from secc.din.state import State
from secc.records import StopReason
from secc.steps import stop_power_delivery

R = din.responseCodeType


def handle_session_stop(
    req: din.SessionStopType, ctx: Context, data: SessionData
) -> Outcome[State]:
    step = stop_power_delivery(ctx, data) if data.charging else None  # be safe
    return Outcome(
        response=din.SessionStopResType(ResponseCode=R.OK),
        data=step.data if step else None,
        commands=step.commands if step else (),
        terminate=data.stop_reason or StopReason.EV_STOPPED,
    )
