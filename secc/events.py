"""What the SECC session core emits (commands and reports) and what it is fed (results).

Commands go to the EVSE controller or the backend; the asyncio adapter runs them and feeds
the results back as control events. The core never waits for them: a request whose answer
depends on a result is answered `Ongoing` until the result has been fed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from secc.records import AuthorizationDecision, AuthorizationRequest, BillingRecord, StopReason

__all__ = [
    "AuthorizationResult",
    "Authorize",
    "CertificateKind",
    "CertificateResult",
    "Command",
    "ConnectionClosing",
    "ControlEvent",
    "MessageExchanged",
    "RequestCertificate",
    "SessionEnded",
    "SessionEvent",
    "SessionPaused",
    "SessionStarted",
    "SetContactors",
    "SetTarget",
    "StartCableCheck",
    "StopOutput",
]


# --- commands for the EVSE controller --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartCableCheck:
    """Lock the connector and run the insulation test; the result shows in the status."""


@dataclass(frozen=True, slots=True)
class SetTarget:
    voltage: float
    current: float
    pre_charge: bool = False


@dataclass(frozen=True, slots=True)
class SetContactors:
    closed: bool


@dataclass(frozen=True, slots=True)
class StopOutput:
    """Ramp the output current down to zero."""


# --- commands for the backend ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authorize:
    """Ask the backend; feed the answer back as `AuthorizationResult`."""

    request: AuthorizationRequest


class CertificateKind:
    INSTALLATION = "installation"
    UPDATE = "update"


@dataclass(frozen=True, slots=True)
class RequestCertificate:
    """Hand a CertificateInstallationReq / CertificateUpdateReq (typed, as decoded) to the
    backend; feed the answer back as `CertificateResult`."""

    kind: str  # CertificateKind
    request: Any  # iso2.CertificateInstallationReqType | iso2.CertificateUpdateReqType
    session_id: str
    evse_id: str = ""
    signature: Any = None  # the request header's Signature
    exi: bytes = b""  # the V2G_Message as received


Command: TypeAlias = (
    StartCableCheck | SetTarget | SetContactors | StopOutput | Authorize | RequestCertificate
)


# --- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session_id: str
    protocol: str
    resumed: bool


@dataclass(frozen=True, slots=True)
class MessageExchanged:
    """One request and the response sent to it (for the log and the timeline)."""

    session_id: str
    request_name: str
    response_name: str
    response_code: str
    request: Any
    response: Any


@dataclass(frozen=True, slots=True)
class SessionPaused:
    """SessionStop(Pause): the car may come back with the same SessionID; `resume` is what
    the adapter hands to the next connection's session (`SeccSession(resumable=...)`).
    Store `record` durably, as for `SessionEnded`."""

    session_id: str
    resume: Any
    #: the part of the session before the pause, billed now so that nothing is lost if the
    #: charger restarts during the pause; the resumed part gets its own record
    record: BillingRecord | None = None


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over; store `record` durably before reporting it done."""

    record: BillingRecord


@dataclass(frozen=True, slots=True)
class ConnectionClosing:
    """Close the connection once the queued data is sent [V2G2-539]."""

    reason: StopReason
    detail: str = ""


SessionEvent: TypeAlias = (
    Command | SessionStarted | MessageExchanged | SessionPaused | SessionEnded | ConnectionClosing
)


# --- control events fed in -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    decision: AuthorizationDecision


@dataclass(frozen=True, slots=True)
class CertificateResult:
    """The backend's answer: `body` (and `signature` for the header), or `error_code`."""

    body: Any = None
    signature: Any = None
    error_code: str | None = None


ControlEvent: TypeAlias = AuthorizationResult | CertificateResult
