"""Applies the configured `Fault`s to the requests the session core builds (see
`evcc.faults` for the order)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from evcc.faults import (
    BadSignature,
    CustomMutate,
    EarlyStop,
    Fault,
    MalformedExi,
    MalformedKind,
    OutOfSequence,
    Silence,
    WrongGenChallenge,
    WrongSessionId,
    matches,
)
from exi_schemas import xmldsig

__all__ = ["Injector"]


class Injector:
    """The faults of one session, asked at each step of building request `request` (its
    `occurrence`-th sending, `step`-th V2G request)."""

    __slots__ = ("_faults",)

    def __init__(self, faults: Sequence[Fault]) -> None:
        self._faults = tuple(faults)

    def _hits(self, kind: type[Any], request: str, occurrence: int) -> list[Any]:
        return [f for f in self._faults if isinstance(f, kind) and matches(f, request, occurrence)]

    def substitute(self, request: str, occurrence: int, step: int) -> str:
        """The request to build instead of `request` (itself if no fault applies)."""
        for fault in self._faults:
            if isinstance(fault, EarlyStop):
                by_step = fault.step is not None and fault.step == step
                if by_step or matches(fault, request, occurrence):
                    return "SessionStopReq"
        for hit in self._hits(OutOfSequence, request, occurrence):
            return str(hit.send)
        return request

    def before_signing(self, request: str, occurrence: int, message: Any) -> Any:
        element = getattr(getattr(message, "Body", None), request, None)
        for hit in self._hits(WrongGenChallenge, request, occurrence):
            if element is not None and hasattr(element, "GenChallenge"):
                element.GenChallenge = hit.challenge
        return self._mutate(request, occurrence, message, after_signing=False)

    def after_signing(self, request: str, occurrence: int, message: Any) -> Any:
        for hit in self._hits(BadSignature, request, occurrence):
            signature = message.Header.Signature
            if signature is not None:
                value = bytearray(signature.SignatureValue.value)
                if value:
                    index = (hit.bit // 8) % len(value)
                    value[index] ^= 1 << (hit.bit % 8)
                signature.SignatureValue = xmldsig.SignatureValueType(value=bytes(value))
        message = self._mutate(request, occurrence, message, after_signing=True)
        for hit in self._hits(WrongSessionId, request, occurrence):
            message.Header.SessionID = hit.session_id
        return message

    def _mutate(self, request: str, occurrence: int, message: Any, *, after_signing: bool) -> Any:
        for hit in self._hits(CustomMutate, request, occurrence):
            if hit.after_signing == after_signing:
                mutate: Callable[[Any], Any] = hit.mutate
                replaced = mutate(message)
                if replaced is not None:
                    message = replaced
        return message

    def payload(
        self, request: str, occurrence: int, payload: bytes, random: Callable[[int], bytes]
    ) -> bytes | None:
        """Replacement bytes for the encoded request, or None to send it as it is."""
        for hit in self._hits(MalformedExi, request, occurrence):
            if hit.kind is MalformedKind.TRUNCATED:
                return payload[: len(payload) // 2]
            return random(hit.length)
        return None

    def silences(self, request: str, occurrence: int) -> bool:
        return bool(self._hits(Silence, request, occurrence))
