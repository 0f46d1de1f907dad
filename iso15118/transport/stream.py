"""The receiving side of one V2GTP stream, sans-IO: bytes and time in, events and deadlines out.

`V2GTPStream` wraps `V2GTPReassembler` with what a connection needs beyond framing:

- **Header errors are ignored, not fatal.** ISO 15118-2 [V2G2-800] and the ISO 15118-20 rule
  that follows [V2G20-096] in §7.8.3.2 say that a V2GTP entity receiving a header with wrong
  data ("not supported payload type, wrong payload length, or not supported V2GTP version")
  shall ignore the message. The conformance tests of ISO 15118-4
  (TC_SECC_CMN_VTB_V2GTPSessionSetup_002..005: payload length 0, payload type 0x7001, version
  0xFF, inverse version 0xFF; rcuquemelle/ISO15118_4_TestEnv, TestCase/src/V2GTPSecc.cpp)
  expect no response *and* fail the SECC if it closes the TCP connection. So a bad header
  becomes a `FrameIgnored` event and the connection stays open. An EXI payload type with
  length 0 counts as a wrong payload length (no EXI message fits in 0 bytes).
  The framing is lost at that point: the bytes buffered with the bad header are discarded
  and reception resynchronises on the next chunk, which in a request/response protocol is
  the peer's next message (see `V2GTPReassembler`). A well-framed message whose payload type
  this endpoint does not accept (e.g. an SDP payload over TCP) is skipped exactly.
- **Two timers.** A *frame* timer bounds how long a started frame may take to complete (a
  peer that sends half a header and stalls); an *idle* timer bounds how long the reader waits
  for a whole message. Bytes that are ignored do not reset the idle timer, so a peer sending
  only garbage is closed after `idle_timeout`. The adapter calls `restart_idle()` when it
  starts waiting and after it sends a message, and asks `get_timer()` for the next deadline.

No I/O and no clock here: `now` is monotonic seconds from the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from iso15118.v2gtp import (
    DEFAULT_MAX_PAYLOAD_LENGTH,
    HEADER_LENGTH,
    BadVersionError,
    OversizePayloadError,
    PayloadType,
    UnknownPayloadTypeError,
    V2GTPError,
    V2GTPMessage,
    V2GTPReassembler,
)

__all__ = [
    "DEFAULT_FRAME_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "EXI_PAYLOAD_TYPES",
    "Deadline",
    "FrameIgnored",
    "IgnoreReason",
    "MessageReceived",
    "StreamEvent",
    "StreamLimits",
    "TimeoutReason",
    "V2GTPStream",
    "ignore_reason",
]

#: Longest time a started frame may take to arrive completely. The longest per-message
#: timeouts of ISO 15118-2 are 5 s (e.g. PaymentDetails, CertificateInstallation), so a frame
#: still incomplete after that is of no use to either side.
DEFAULT_FRAME_TIMEOUT: Final = 5.0
#: Longest wait for a whole message: V2G_SECC_Sequence_Timeout, 60 s ([V2G2-443]). The session
#: layer keeps the precise per-state timers; this is the transport's backstop.
DEFAULT_IDLE_TIMEOUT: Final = 60.0

#: The payload types that travel over TCP/TLS: every EXI-encoded V2G message ([V2G20-1229]).
EXI_PAYLOAD_TYPES: Final = frozenset(t for t in PayloadType if t.is_exi)


class IgnoreReason(Enum):
    """Why a received V2GTP message was ignored; `requirement` cites the check it failed."""

    BAD_VERSION = "wrong protocol version or inverse protocol version"
    UNKNOWN_PAYLOAD_TYPE = "payload type not defined by the standards"
    OVERSIZE_PAYLOAD = "payload length above the receiver's limit"
    EMPTY_PAYLOAD = "payload length 0, which cannot hold an EXI message"
    UNSUPPORTED_PAYLOAD_TYPE = "payload type not accepted on this connection"

    @property
    def requirement(self) -> str:
        return _REQUIREMENTS[self]


_REQUIREMENTS: Final = {
    IgnoreReason.BAD_VERSION: "[V2G20-090], ignored per [V2G2-800]",
    IgnoreReason.UNKNOWN_PAYLOAD_TYPE: "[V2G20-092], ignored per [V2G2-800]",
    IgnoreReason.OVERSIZE_PAYLOAD: "[V2G20-094], ignored per [V2G2-800]",
    IgnoreReason.EMPTY_PAYLOAD: "[V2G20-094], ignored per [V2G2-800]",
    IgnoreReason.UNSUPPORTED_PAYLOAD_TYPE: "[V2G20-092], ignored per [V2G2-800]",
}


def ignore_reason(error: V2GTPError) -> IgnoreReason:
    """What a header error from `V2GTPReassembler` means for the receiver: always "ignore
    the message" (the connection stays open), for the reason this returns."""
    if isinstance(error, BadVersionError):
        return IgnoreReason.BAD_VERSION
    if isinstance(error, UnknownPayloadTypeError):
        return IgnoreReason.UNKNOWN_PAYLOAD_TYPE
    if isinstance(error, OversizePayloadError):
        return IgnoreReason.OVERSIZE_PAYLOAD
    raise TypeError(f"unexpected V2GTP error {type(error).__name__}")


class TimeoutReason(Enum):
    """Which receive timer expired."""

    FRAME = "a started V2GTP frame did not complete in time"
    IDLE = "no complete V2GTP message in time"


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamLimits:
    """Receive limits of one connection. `None` disables a timer.

    - `max_payload_length`: longest accepted payload (bytes); longer ones are ignored.
    - `frame_timeout`: seconds from the first byte of a frame to its last.
    - `idle_timeout`: seconds the reader waits for a whole message.
    - `payload_types`: payload types delivered; others are skipped (default: the EXI ones).
    """

    max_payload_length: int = DEFAULT_MAX_PAYLOAD_LENGTH
    frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    payload_types: frozenset[PayloadType] = EXI_PAYLOAD_TYPES

    def __post_init__(self) -> None:
        if self.max_payload_length < 0:
            raise ValueError("max_payload_length must not be negative")
        for name in ("frame_timeout", "idle_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None")
        if not self.payload_types:
            raise ValueError("payload_types must not be empty")


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole V2GTP message with an accepted header."""

    message: V2GTPMessage


@dataclass(frozen=True, slots=True)
class FrameIgnored:
    """A message ignored as the standards require; `detail` is the check's own message."""

    reason: IgnoreReason
    detail: str
    discarded: int  # bytes thrown away with it (header included)


StreamEvent = MessageReceived | FrameIgnored


@dataclass(frozen=True, slots=True)
class Deadline:
    """When the next receive timer expires, and which one."""

    at: float
    reason: TimeoutReason


class V2GTPStream:
    """One direction of a V2GTP connection: feed received bytes, get messages and deadlines."""

    __slots__ = ("_frame_started", "_idle_since", "_reassembler", "limits")

    def __init__(self, limits: StreamLimits, now: float) -> None:
        self.limits = limits
        self._reassembler = V2GTPReassembler(max_payload_length=limits.max_payload_length)
        self._frame_started: float | None = None
        self._idle_since = now

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back (header included)."""
        return self._reassembler.buffered

    def restart_idle(self, now: float) -> None:
        """Start the idle timer anew (the adapter starts waiting, or has sent a message)."""
        self._idle_since = now

    def receive_data(self, data: bytes, now: float) -> list[StreamEvent]:
        """Feed bytes received at `now`; returns what they complete, in stream order."""
        if not data:
            return []
        before = self._reassembler.buffered
        try:
            messages = self._reassembler.feed(data)
            events = self._accept(messages)
        except V2GTPError as error:
            events = self._accept(error.messages)
            done = sum(len(m.payload) + HEADER_LENGTH for m in error.messages)
            discarded = before + len(data) - done
            events.append(FrameIgnored(ignore_reason(error), str(error), discarded))
        if any(isinstance(event, MessageReceived) for event in events):
            self._idle_since = now
        if self._reassembler.buffered == 0:
            self._frame_started = None
        elif self._frame_started is None or (before > 0 and events):
            # No frame was pending, or this chunk completed (or dropped) the pending one:
            # the bytes now buffered belong to a frame that started with this chunk.
            self._frame_started = now
        return events

    def _accept(self, messages: Iterable[V2GTPMessage]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for message in messages:
            if message.payload_type.is_exi and not message.payload:
                events.append(
                    FrameIgnored(IgnoreReason.EMPTY_PAYLOAD, "payload length 0", HEADER_LENGTH)
                )
            elif message.payload_type in self.limits.payload_types:
                events.append(MessageReceived(message))
            else:
                events.append(
                    FrameIgnored(
                        IgnoreReason.UNSUPPORTED_PAYLOAD_TYPE,
                        f"payload type {message.payload_type.name} "
                        f"(0x{message.payload_type.value:04X}) is not accepted here",
                        len(message.payload) + HEADER_LENGTH,
                    )
                )
        return events

    def get_timer(self) -> Deadline | None:
        """The earliest receive deadline, or None when no timer runs."""
        deadlines: list[Deadline] = []
        if self.limits.idle_timeout is not None:
            deadlines.append(
                Deadline(self._idle_since + self.limits.idle_timeout, TimeoutReason.IDLE)
            )
        if self._frame_started is not None and self.limits.frame_timeout is not None:
            deadlines.append(
                Deadline(self._frame_started + self.limits.frame_timeout, TimeoutReason.FRAME)
            )
        return min(deadlines, key=lambda deadline: deadline.at, default=None)

    def handle_timer(self, now: float) -> TimeoutReason | None:
        """The timer that has expired at `now`, if any (the connection is then over)."""
        deadline = self.get_timer()
        if deadline is not None and now >= deadline.at:
            return deadline.reason
        return None
