"""One dispatcher for every protocol: header check, table lookup, errors → FAILED codes.

The session ID check, the sequence check and the mapping of errors to response codes live
here once (style rule 6), not in each state. A request whose type the current state's row
of the transition table lacks is a sequence error [V2G2-538]; a SessionID other than the
session's is FAILED_UnknownSession [V2G2-540]; a handler's `V2GError` or `PkiError`
becomes its response code. All three end the session after the response [V2G2-539].
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pki.errors import PkiError
from pki.profiles import Standard
from secc.context import Context, Outcome, SessionData
from secc.errors import SequenceError, UnknownSessionError, V2GError
from secc.protocol import ProtocolSpec
from secc.records import StopReason

__all__ = ["DispatchResult", "NoRequestError", "dispatch"]


class NoRequestError(Exception):
    """The message carries no request we can answer (empty body, or a response type)."""


@dataclass(frozen=True, slots=True)
class DispatchResult:
    request_name: str
    request: Any
    outcome: Outcome[Any]
    new_session: SessionData | None  # set when SessionSetup assigned (or joined) a SessionID
    resumed: bool


def dispatch(
    spec: ProtocolSpec, state: Enum, message: Any, ctx: Context, data: SessionData
) -> DispatchResult:
    """Answer one decoded V2G_Message in `state`. Raises NoRequestError when the message
    cannot be answered with a typed response at all."""
    request = spec.request_of(message)
    if request is None:
        raise NoRequestError("the message body is empty")
    request_type = type(request)
    name = spec.name_of(request)
    if spec.response_type(request_type) is None:
        raise NoRequestError(f"{name} is not a request")
    try:
        # the state's row first: before SessionSetup no SessionID can match, and a request
        # the state does not take is a sequence error whatever its header says
        handler = spec.transitions.get(state, {}).get(request_type)
        if handler is None:
            raise SequenceError(f"{name} is not expected in state {state.name}")
        if request_type is not spec.session_setup and message.Header.SessionID != data.session_id:
            raise UnknownSessionError(f"SessionID {message.Header.SessionID.hex()} is unknown")
        outcome = handler(request, ctx, data)
    except V2GError as exc:
        outcome = _failed(spec, request_type, exc.wire_code, exc.stop_reason, ctx, data)
    except PkiError as exc:
        code = exc.response_code_for(Standard.ISO2)
        outcome = _failed(spec, request_type, code, StopReason.PROTOCOL_ERROR, ctx, data)
    new_session: SessionData | None = None
    resumed = False
    if (
        request_type is spec.session_setup
        and outcome.data is not None
        and outcome.terminate is None
    ):
        new_session = outcome.data
        resumed = outcome.data.resumed
    return DispatchResult(name, request, outcome, new_session, resumed)


def _failed(
    spec: ProtocolSpec,
    request_type: type[Any],
    code: str,
    reason: StopReason,
    ctx: Context,
    data: SessionData,
) -> Outcome[Any]:
    response = spec.failed_response(request_type, code, ctx, data)
    return Outcome(response=response, terminate=reason)
