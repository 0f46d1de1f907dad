"""Fault hooks for conformance tests of chargers: each a small frozen dataclass listed in
`EvccConfig.faults`. The session core applies them when it builds a request.

A fault names the request it hits by its body element (`message`, e.g. "CableCheckReq") and
which occurrence of that request (1 = the first; None = every one). Occurrences count the
requests the EV *meant* to send, before any fault changed them.

Order of application for one request: `EarlyStop` and `OutOfSequence` choose what to build;
`WrongGenChallenge` and `CustomMutate` (before signing) change the typed message; the message
is signed (PnC); `BadSignature` and `CustomMutate(after_signing=True)` change it again;
`WrongSessionId` replaces the header's SessionID; it is encoded; `MalformedExi` replaces the
bytes. `Silence` acts after the response to the request it names.

A foreign or expired contract chain needs no fault: `PncCredentials.contract_chain` is sent
as given, without any check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "BadSignature",
    "CustomMutate",
    "EarlyStop",
    "Fault",
    "MalformedExi",
    "MalformedKind",
    "OutOfSequence",
    "Silence",
    "WrongGenChallenge",
    "WrongSessionId",
    "matches",
]


def _check(message: str | None, occurrence: int | None) -> None:
    if message is not None and not message:
        raise ValueError("a fault's message must name a request, e.g. 'CableCheckReq'")
    if occurrence is not None and occurrence < 1:
        raise ValueError("occurrence counts from 1 (None: every occurrence)")


@dataclass(frozen=True, slots=True, kw_only=True)
class WrongSessionId:
    """Send `message` with `session_id` in the header instead of the assigned one."""

    message: str
    occurrence: int | None = 1
    session_id: bytes = bytes.fromhex("DEADBEEFDEADBEEF")

    def __post_init__(self) -> None:
        _check(self.message, self.occurrence)
        if not 1 <= len(self.session_id) <= 8:
            raise ValueError("a SessionID has 1 to 8 bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutOfSequence:
    """Send request `send` (built from the session's present data) instead of `message`."""

    message: str
    send: str
    occurrence: int | None = 1

    def __post_init__(self) -> None:
        _check(self.message, self.occurrence)
        _check(self.send, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class BadSignature:
    """Flip bit `bit` of the SignatureValue of a signed request (AuthorizationReq,
    MeteringReceiptReq, CertificateInstallationReq, CertificateUpdateReq)."""

    message: str = "AuthorizationReq"
    occurrence: int | None = 1
    bit: int = 0

    def __post_init__(self) -> None:
        _check(self.message, self.occurrence)
        if self.bit < 0:
            raise ValueError("bit must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """After the response to `message`, send nothing more and arm no timer: the session
    waits until the SECC gives up (its sequence timeout) and closes the connection."""

    message: str
    occurrence: int | None = 1

    def __post_init__(self) -> None:
        _check(self.message, self.occurrence)


class MalformedKind(Enum):
    GARBAGE = "garbage"  # `length` random bytes instead of the EXI document
    TRUNCATED = "truncated"  # the first half of the encoded document


@dataclass(frozen=True, slots=True, kw_only=True)
class MalformedExi:
    """Send undecodable bytes (correctly framed by V2GTP) instead of `message`."""

    message: str
    occurrence: int | None = 1
    kind: MalformedKind = MalformedKind.GARBAGE
    length: int = 16

    def __post_init__(self) -> None:
        _check(self.message, self.occurrence)
        if self.length < 1:
            raise ValueError("length must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class EarlyStop:
    """Send SessionStopReq (Terminate) instead of the `step`-th V2G request (SessionSetupReq
    is step 1) or instead of `message`."""

    message: str | None = None
    step: int | None = None
    occurrence: int | None = 1

    def __post_init__(self) -> None:
        _check(self.message, self.occurrence)
        if (self.message is None) == (self.step is None):
            raise ValueError("EarlyStop needs exactly one of message and step")
        if self.step is not None and self.step < 1:
            raise ValueError("step counts from 1 (SessionSetupReq)")


@dataclass(frozen=True, slots=True, kw_only=True)
class WrongGenChallenge:
    """Put `challenge` into AuthorizationReq instead of the one from PaymentDetailsRes (the
    signature is then made over the wrong challenge, so it verifies)."""

    message: str = "AuthorizationReq"
    occurrence: int | None = 1
    challenge: bytes = bytes(16)

    def __post_init__(self) -> None:
        _check(self.message, self.occurrence)


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomMutate:
    """Call `mutate(message)` on the typed V2G_Message of `message`; it changes the message in
    place and returns None, or returns a replacement."""

    message: str
    mutate: Callable[[Any], Any]
    occurrence: int | None = 1
    after_signing: bool = False

    def __post_init__(self) -> None:
        _check(self.message, self.occurrence)


Fault = (
    WrongSessionId
    | OutOfSequence
    | BadSignature
    | Silence
    | MalformedExi
    | EarlyStop
    | WrongGenChallenge
    | CustomMutate
)


def matches(fault: Fault, request: str, occurrence: int) -> bool:
    """Does `fault` hit the `occurrence`-th sending of `request`?"""
    if fault.message != request:
        return False
    return fault.occurrence is None or fault.occurrence == occurrence
