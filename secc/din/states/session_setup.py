"""SessionSetupReq → SessionSetupRes (DIN SPEC 70121 9.4.1.2; [V2G-DC-393], [V2G-DC-438])."""

from __future__ import annotations

from exi_schemas import din
from secc.common import setup_session
from secc.context import Context, Outcome, SessionData
from secc.din import convert
from secc.din.state import State

R = din.responseCodeType


def handle_session_setup(
    req: din.SessionSetupReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    result = setup_session(ctx.header_session_id, req.EVCCID, ctx, data)
    code = R.OK_OldSessionJoined if result.joined else R.OK_NewSessionEstablished
    response = din.SessionSetupResType(
        ResponseCode=code,
        EVSEID=convert.evse_id_bytes(ctx.evse_id),
        DateTimeNow=int(ctx.at.timestamp()),
    )
    return Outcome(response=response, next_state=State.WAIT_SERVICE_DISCOVERY, data=result.data)
