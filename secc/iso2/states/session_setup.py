"""SessionSetupReq → SessionSetupRes (ISO 15118-2 clause 8.4.3.2)."""

from __future__ import annotations

from exi_schemas import iso2
from secc.common import setup_session
from secc.context import Context, Outcome, SessionData
from secc.iso2.state import State

R = iso2.responseCodeType


def handle_session_setup(
    req: iso2.SessionSetupReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    result = setup_session(ctx.header_session_id, req.EVCCID, ctx, data)
    code = R.OK_OldSessionJoined if result.joined else R.OK_NewSessionEstablished
    response = iso2.SessionSetupResType(
        ResponseCode=code,
        EVSEID=ctx.evse_id,
        EVSETimeStamp=int(ctx.at.timestamp()),
    )
    return Outcome(response=response, next_state=State.WAIT_SERVICE_DISCOVERY, data=result.data)
