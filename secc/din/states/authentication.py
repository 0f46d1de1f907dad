"""ContractAuthenticationReq (DIN SPEC 70121 9.4.1.5): External Identification Means.

The backend is asked once (`Authorize`); the answer is EVSEProcessing=Ongoing until its
`AuthorizationResult` has been fed in ([V2G-DC-497]), and the request fails when that takes
longer than the Ongoing limit of `secc.din.timing`.
"""

from __future__ import annotations

import dataclasses

from exi_schemas import din
from secc.context import Context, Outcome, SessionData
from secc.din.errors import OngoingTimeoutError
from secc.din.state import State
from secc.din.timing import TIMING
from secc.records import AuthorizationRequest, IdentificationKind
from secc.steps import Progress, authorization_step

R = din.responseCodeType
#: SessionData.extras key: when the first ContractAuthenticationReq arrived (monotonic s)
SINCE = "din.authorization_since"


def handle_contract_authentication(
    req: din.ContractAuthenticationReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    request = AuthorizationRequest(
        session_id=data.session_id.hex().upper(),
        evse_id=ctx.evse_id,
        kind=IdentificationKind.EXTERNAL,
        id_token=ctx.status.id_token,
    )
    step = authorization_step(request, ctx, data)
    new = step.data
    if step.progress is Progress.FINISHED:
        return Outcome(
            response=_response(din.EVSEProcessingType.Finished),
            next_state=State.WAIT_CHARGE_PARAMETER_DISCOVERY,
            data=new,
        )
    since = data.extras.get(SINCE)
    if since is None:
        new = dataclasses.replace(new, extras={**new.extras, SINCE: ctx.now})
    elif ctx.now - since > TIMING.ongoing_timeout:
        raise OngoingTimeoutError(f"no authorization within {TIMING.ongoing_timeout:.0f} s")
    return Outcome(
        response=_response(din.EVSEProcessingType.Ongoing),
        data=new,
        commands=step.commands,
    )


def _response(processing: din.EVSEProcessingType) -> din.ContractAuthenticationResType:
    return din.ContractAuthenticationResType(ResponseCode=R.OK, EVSEProcessing=processing)
