"""V2G Transfer Protocol (V2GTP) framing: the 8-byte header, the payload types, a reassembler.

Sans-IO: bytes in, messages out. The header layout and the header checks follow
ISO 15118-2:2014 §7.8.3 (payload types in its Table 10; header processing in §7.8.3.2) and
ISO 15118-20:2022 §7.8.3 (header in Tables 12 and 13, payload types in Table 14):

    byte  1        2                 3-4           5-8
          version  inverse version   payload type  payload length   (big-endian, [V2G20-085])

A receiver checks the synchronization pattern (version and inverse version) first [V2G20-090],
then the payload type [V2G20-092], then the payload length [V2G20-094]. Each EXI-encoded V2G
message travels in its own V2GTP message [V2G20-1229], so a TCP stream is a plain sequence of
header + payload records; this module splits such a stream at arbitrary chunk boundaries.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

__all__ = [
    "DEFAULT_MAX_PAYLOAD_LENGTH",
    "HEADER",
    "HEADER_LENGTH",
    "INVERSE_PROTOCOL_VERSION",
    "PROTOCOL_VERSION",
    "BadVersionError",
    "OversizePayloadError",
    "PayloadType",
    "UnknownPayloadTypeError",
    "V2GTPError",
    "V2GTPHeader",
    "V2GTPMessage",
    "V2GTPReassembler",
]

#: The header as a declared layout: protocol version (uint8), inverse protocol version (uint8),
#: payload type (uint16), payload length (uint32), network byte order.
HEADER: Final = struct.Struct(">BBHI")
HEADER_LENGTH: Final = HEADER.size  # 8

#: "0x01: V2GTP version 1" (ISO 15118-20 Table 13; the same value in ISO 15118-2).
PROTOCOL_VERSION: Final = 0x01
#: The bit-wise inverse of the protocol version, "<Protocol_Version> XOR 0xFF" (same tables).
INVERSE_PROTOCOL_VERSION: Final = PROTOCOL_VERSION ^ 0xFF

#: Default limit for a reassembled payload. The standards allow up to 2**32 - 1 bytes; a receiver
#: picks its own buffer size. The largest messages (certificate installation with a full chain)
#: are a few KiB, so 64 KiB leaves ample room while a desynchronised stream fails fast.
DEFAULT_MAX_PAYLOAD_LENGTH: Final = 64 * 1024


class PayloadType(IntEnum):
    """The V2GTP payload types defined by the standards; every other value is reserved.

    Sources: ISO 15118-2:2014 Table 10 (0x8001, 0x9000, 0x9001; DIN SPEC 70121 uses the same
    three) and ISO 15118-20:2022 Table 14 (all members). The values agree with libcbv2g
    (`exi_v2gtp.h`, `V2GTP20_*_PAYLOAD_ID`) and Josev (`ISOV20PayloadTypes`, "Table 12 of
    ISO 15118-20" in its comment). Reserved ranges: 0x8007-0x8100, 0x8105-0x8FFF, 0x9004-0x9FFF;
    0xA000-0xFFFF is for manufacturer-specific use. No 0x8100 type exists.
    """

    #: -2: "EXI encoded V2G Message"; -20: SAPPayloadID. Carries the SupportedAppProtocol
    #: handshake and every DIN SPEC 70121 and ISO 15118-2 message.
    SAP = 0x8001
    #: -20 MainstreamPayloadID: the CommonMessages schema.
    MAINSTREAM = 0x8002
    #: -20 ACMainstreamPayloadID: the AC schema.
    AC_MAINSTREAM = 0x8003
    #: -20 DCMainstreamPayloadID: the DC schema.
    DC_MAINSTREAM = 0x8004
    #: -20 ACDPMainstreamPayloadID: the ACDP (pantograph) schema.
    ACDP_MAINSTREAM = 0x8005
    #: -20 WPTMainstreamPayloadID: the WPT (wireless) schema.
    WPT_MAINSTREAM = 0x8006
    #: -20 ScheduleRenegotiationPayloadID: side stream for schedule renegotiation (§8.6.5.1).
    SCHEDULE_RENEGOTIATION = 0x8101
    #: -20 MeteringConfirmationPayloadID: side stream for MeteringConfirmationReq/Res.
    METERING_CONFIRMATION = 0x8102
    #: -20 ACDPSystemStatusPayloadID: side stream for the ACDP system status.
    ACDP_SYSTEM_STATUS = 0x8103
    #: -20 ParkingStatusPayloadID: side stream for parking status information.
    PARKING_STATUS = 0x8104
    #: -2 and -20 SDPRequestPayloadID: SDP request (UDP).
    SDP_REQUEST = 0x9000
    #: -2 and -20 SDPResponsePayloadID: SDP response (UDP).
    SDP_RESPONSE = 0x9001
    #: -20 SDPRequestWirelessPayloadID: SDP request for wireless communication.
    SDP_REQUEST_WIRELESS = 0x9002
    #: -20 SDPResponseWirelessPayloadID: SDP response for wireless communication.
    SDP_RESPONSE_WIRELESS = 0x9003

    @property
    def is_exi(self) -> bool:
        """True for EXI-encoded V2G messages (0x8001 up to 0x8FFF, [V2G20-1229])."""
        return 0x8001 <= self.value <= 0x8FFF


class V2GTPError(Exception):
    """A V2GTP header that fails the checks of §7.8.3.2: the peer broke the protocol."""

    #: Set by `V2GTPReassembler.feed()`: the messages that the same call completed before the
    #: bad header.
    messages: tuple[V2GTPMessage, ...] = ()


class BadVersionError(V2GTPError):
    """Wrong protocol version or inverse protocol version (the synchronization pattern)."""

    def __init__(self, version: int, inverse_version: int) -> None:
        self.version = version
        self.inverse_version = inverse_version
        super().__init__(
            f"V2GTP version 0x{version:02X}/0x{inverse_version:02X}, "
            f"expected 0x{PROTOCOL_VERSION:02X}/0x{INVERSE_PROTOCOL_VERSION:02X}"
        )


class UnknownPayloadTypeError(V2GTPError):
    """A payload type that the standards do not define (or that this receiver does not accept)."""

    def __init__(self, payload_type: int) -> None:
        self.payload_type = payload_type
        super().__init__(f"unknown V2GTP payload type 0x{payload_type:04X}")


class OversizePayloadError(V2GTPError):
    """A payload length above the receiver's limit."""

    def __init__(self, payload_length: int, limit: int) -> None:
        self.payload_length = payload_length
        self.limit = limit
        super().__init__(f"V2GTP payload length {payload_length} exceeds the limit of {limit}")


@dataclass(frozen=True, slots=True)
class V2GTPHeader:
    """A checked V2GTP header; the version fields are implied (always 0x01/0xFE)."""

    payload_type: PayloadType
    payload_length: int

    def __post_init__(self) -> None:
        if not 0 <= self.payload_length <= 0xFFFFFFFF:
            raise ValueError(f"payload length {self.payload_length} out of uint32 range")

    def pack(self) -> bytes:
        return HEADER.pack(
            PROTOCOL_VERSION, INVERSE_PROTOCOL_VERSION, self.payload_type, self.payload_length
        )

    @classmethod
    def unpack(
        cls, data: bytes, *, max_payload_length: int = DEFAULT_MAX_PAYLOAD_LENGTH
    ) -> V2GTPHeader:
        """Check and parse the first 8 bytes of `data`, in the order of [V2G20-090..094].

        Raises `ValueError` if fewer than 8 bytes are given (the caller's mistake) and a
        `V2GTPError` subclass for a header that fails a check.
        """
        if len(data) < HEADER_LENGTH:
            raise ValueError(f"a V2GTP header needs {HEADER_LENGTH} bytes, got {len(data)}")
        version, inverse, payload_type, length = HEADER.unpack_from(data)
        if version != PROTOCOL_VERSION or inverse != INVERSE_PROTOCOL_VERSION:
            raise BadVersionError(version, inverse)
        try:
            known_type = PayloadType(payload_type)
        except ValueError:
            raise UnknownPayloadTypeError(payload_type) from None
        if length > max_payload_length:
            raise OversizePayloadError(length, max_payload_length)
        return cls(known_type, length)


@dataclass(frozen=True, slots=True)
class V2GTPMessage:
    """One whole V2GTP message: its payload type and its payload (without the header)."""

    payload_type: PayloadType
    payload: bytes

    def pack(self) -> bytes:
        """The message on the wire: header followed by payload."""
        return V2GTPHeader(self.payload_type, len(self.payload)).pack() + self.payload


class V2GTPReassembler:
    """Splits a byte stream (e.g. one direction of a TCP connection) into V2GTP messages.

    `feed()` accepts chunks cut anywhere and returns the messages they complete. A header that
    fails a check raises a `V2GTPError`; the messages completed earlier in the same call are
    attached to the exception as `exc.messages`. After an error the buffered bytes are discarded
    (the framing is lost), so the next `feed()` must start at a message boundary.
    """

    __slots__ = ("_buffer", "_header", "max_payload_length")

    def __init__(self, *, max_payload_length: int = DEFAULT_MAX_PAYLOAD_LENGTH) -> None:
        if max_payload_length < 0:
            raise ValueError("max_payload_length must not be negative")
        self.max_payload_length = max_payload_length
        self._buffer = bytearray()
        self._header: V2GTPHeader | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole message (header included)."""
        return len(self._buffer) + (HEADER_LENGTH if self._header is not None else 0)

    def reset(self) -> None:
        """Discard any partial message, e.g. before resynchronising on a later boundary."""
        self._buffer.clear()
        self._header = None

    def feed(self, data: bytes) -> list[V2GTPMessage]:
        self._buffer += data
        messages: list[V2GTPMessage] = []
        while True:
            if self._header is None:
                if len(self._buffer) < HEADER_LENGTH:
                    return messages
                try:
                    self._header = V2GTPHeader.unpack(
                        bytes(self._buffer[:HEADER_LENGTH]),
                        max_payload_length=self.max_payload_length,
                    )
                except V2GTPError as exc:
                    self.reset()
                    exc.messages = tuple(messages)
                    raise
                del self._buffer[:HEADER_LENGTH]
            length = self._header.payload_length
            if len(self._buffer) < length:
                return messages
            messages.append(V2GTPMessage(self._header.payload_type, bytes(self._buffer[:length])))
            del self._buffer[:length]
            self._header = None
