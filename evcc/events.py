"""What the EV session core reports to its user (`EvSession.next_event()`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from iso15118.sap import AppProtocol
from secc.evse import ControlPilotState

__all__ = [
    "ChargingUpdate",
    "ContractInstalled",
    "ContractUpdated",
    "ControlPilotChange",
    "EvEvent",
    "MessageReceived",
    "MessageSent",
    "ProtocolNegotiated",
    "SessionFinished",
]


@dataclass(frozen=True, slots=True)
class MessageSent:
    """A request went out. `name` is the body element (e.g. "CableCheckReq", or
    "supportedAppProtocolReq"); `message` the typed document as encoded (None when a fault
    replaced the bytes by something that is not a message)."""

    name: str
    message: Any


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A response came in, decoded; `response_code` is its ResponseCode token."""

    name: str
    message: Any
    response_code: str | None


@dataclass(frozen=True, slots=True)
class ProtocolNegotiated:
    protocol: AppProtocol
    schema_id: int


@dataclass(frozen=True, slots=True)
class ControlPilotChange:
    """The EV switches its control pilot state (B: connected, C: ready to take power).
    The adapter forwards it to the (simulated) EVSE."""

    state: ControlPilotState


@dataclass(frozen=True, slots=True)
class ChargingUpdate:
    """After each charge-loop response (CurrentDemandRes / ChargingStatusRes)."""

    soc: float
    energy_wh: float
    present_voltage: float
    present_current: float
    target_voltage: float
    target_current: float
    loop: int


@dataclass(frozen=True, slots=True)
class ContractInstalled:
    """CertificateInstallationRes was verified and the contract key unwrapped; the session
    goes on with the new contract (`contract_chain`, contract certificate first, DER) and
    its key. Events compare by eMAID."""

    emaid: str
    contract_chain: tuple[bytes, ...] = field(default=(), compare=False, repr=False)
    contract_key: ec.EllipticCurvePrivateKey | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ContractUpdated:
    """CertificateUpdateRes was verified and the new contract key unwrapped with the old one;
    the session goes on with the new contract and its key (as for ContractInstalled)."""

    emaid: str
    contract_chain: tuple[bytes, ...] = field(default=(), compare=False, repr=False)
    contract_key: ec.EllipticCurvePrivateKey | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SessionFinished:
    """The session is over. `ok` False on a FAILED response code, a timeout, a protocol
    error or a lost connection; `reason` says which. `paused` after SessionStop(Pause):
    `session_id` is then the one to resume with."""

    ok: bool
    reason: str
    session_id: bytes = b""
    paused: bool = False


EvEvent = (
    MessageSent
    | MessageReceived
    | ProtocolNegotiated
    | ControlPilotChange
    | ChargingUpdate
    | ContractInstalled
    | ContractUpdated
    | SessionFinished
)
