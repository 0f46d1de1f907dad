"""SessionStopReq (ISO 15118-2 8.4.3.12): terminate, or pause keeping the SessionID."""

from __future__ import annotations

import dataclasses

from exi_schemas import iso2
from secc.context import Context, Outcome, SessionData
from secc.events import Command, SetContactors, StopOutput
from secc.iso2.state import State
from secc.records import StopReason

R = iso2.responseCodeType


def handle_session_stop(
    req: iso2.SessionStopReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    commands: tuple[Command, ...] = ()
    if data.charging:  # should have stopped with PowerDelivery first; be safe
        commands = (StopOutput(), SetContactors(False))
    response = iso2.SessionStopResType(ResponseCode=R.OK)
    if req.ChargingSession == iso2.chargingSessionType.Pause:
        new = dataclasses.replace(data, charging=False)
        return Outcome(response=response, data=new, pause=True, commands=commands)
    reason = data.stop_reason or StopReason.EV_STOPPED
    return Outcome(response=response, terminate=reason, commands=commands)
