"""Steps that DIN SPEC 70121 and ISO 15118-2 share, written once."""

from __future__ import annotations

import dataclasses

from secc.context import Context, SessionData

__all__ = ["SetupResult", "new_session_id", "setup_session"]

SESSION_ID_LENGTH = 8


def new_session_id(ctx: Context) -> bytes:
    """8 octets from the injected cryptographic random source, never all zero
    ([V2G2-756]: the SECC generates the SessionID; 0 means "no session")."""
    while True:
        candidate = ctx.random(SESSION_ID_LENGTH)
        if any(candidate) and candidate not in ctx.resumable:  # a paused session keeps its ID
            return candidate


@dataclasses.dataclass(frozen=True, slots=True)
class SetupResult:
    data: SessionData
    joined: bool  # OK_OldSessionJoined: a paused session resumed with its SessionID


def setup_session(requested: bytes, evcc_id: bytes, ctx: Context, data: SessionData) -> SetupResult:
    """SessionSetupReq: join the paused session whose SessionID the car sends
    ([V2G2-753]/[V2G-DC-?]: same SessionID → OK_OldSessionJoined), else start a new one
    with a fresh SessionID ([V2G2-754], [V2G2-755])."""
    resume = ctx.resumable.get(requested) if any(requested) else None
    if resume is not None and resume.data.protocol is data.protocol:
        old = resume.data
        joined = dataclasses.replace(
            old,
            tls=data.tls,
            resumed=True,
            evcc_id=evcc_id,
            gen_challenge=None,
            cable_check_started=False,
            charging=False,
            renegotiating=False,
            authorization_requested=False,
            extras={},  # per-connection timers (cable check, authorisation) start afresh
        )
        return SetupResult(joined, True)
    fresh = dataclasses.replace(
        data, session_id=new_session_id(ctx), evcc_id=evcc_id, started_at=ctx.at
    )
    return SetupResult(fresh, False)
