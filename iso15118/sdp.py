"""SECC Discovery Protocol (SDP): the messages, the SECC's responder and the EVCC's discovery.

Sans-IO: no sockets, no clock. The asyncio adapters are `iso15118.transport.sdp_server` and
`iso15118.transport.sdp_client`.

An EVCC finds its SECC by multicasting an SDP request over UDP to the link-local all-nodes
address ff02::1, port 15118 ([V2G2-139], [V2G20-139]); the SDP server answers, from port 15118
to the address and port the request came from ([V2G20-143], [V2G20-149] to [V2G20-151]), with
the SECC's IPv6 address and the TCP port of its TCP or TLS server. Each message is one V2GTP
message in one UDP datagram:

    request  0x9000 SDPRequestPayloadID, payload length 2 ([V2G20-1254], [V2G20-141]):
             byte 1 security, byte 2 transport protocol ([V2G20-142], [V2G20-622])
    response 0x9001 SDPResponsePayloadID, payload length 20 ([V2G20-1255], [V2G20-153]):
             bytes 1-16 SECC IPv6 address, 17-18 SECC port (both big-endian, [V2G20-156]),
             byte 19 security, byte 20 transport protocol ([V2G20-154], [V2G20-155])

ISO 15118-2 defines the same messages (payload types in its Table 10, the requirements under the
same numbers, [V2G2-140] and [V2G2-152] for the payload types); DIN SPEC 70121 uses them too, with
"no transport layer security" only ([V2G-DC-618]). Security and transport protocol are encoded as
in ISO 15118-20 Table 21 ([V2G20-623], [V2G20-624]); every other value is reserved.

ISO 15118-20 additions (§7.10.1): an SDP client over PLC (ISO 15118-3) uses 0x9000/0x9001 only
([V2G20-2273] to [V2G20-2276]); over WLAN (ISO 15118-8) it uses SDPRequestWirelessPayloadID 0x9002
and SDPResponseWirelessPayloadID 0x9003 ([V2G20-2277] to [V2G20-2280], [V2G20-2286]). The wireless
request adds P2PS/PPD (2 bytes), CouplingType (1), EVID (20) and EVSEID (37) after security and
transport (62 bytes, Table 22); the wireless response adds DiagStatus (1), CouplingType (1) and
EVSEID (37) after the wired fields (59 bytes, Tables 26 and 27, [V2G20-2293], [V2G20-2294]). With
DiagStatus "ongoing" the client waits at least 250 ms and asks again ([V2G20-2288], [V2G20-4101]
to [V2G20-4103]). This module serves PLC links: it recognises the wireless payload types and
refuses them with `SdpErrorKind.WIRELESS`. ISO 15118-20 also makes TLS mandatory for its own
sessions ([V2G20-1235]), which is why an SDP server that offers -20 answers a TLS request with
TLS ([V2G20-1238]).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from ipaddress import IPv6Address
from types import MappingProxyType
from typing import Final

from iso15118.v2gtp import HEADER_LENGTH, PayloadType, V2GTPError, V2GTPHeader, V2GTPMessage

__all__ = [
    "ANSWERS",
    "REQUEST_PAYLOAD_LENGTH",
    "RESPONSE_PAYLOAD_LENGTH",
    "SDP_CLIENT_PORTS",
    "SDP_MULTICAST_ADDRESS",
    "SDP_SERVER_PORT",
    "SDP_TIMING",
    "Discovered",
    "DiscoveryFailed",
    "RequestIgnored",
    "Respond",
    "ResponseIgnored",
    "SdpClientCore",
    "SdpClientEvent",
    "SdpError",
    "SdpErrorKind",
    "SdpParameter",
    "SdpRequest",
    "SdpResponse",
    "SdpServerCore",
    "SdpServerEvent",
    "SdpTiming",
    "Security",
    "TimingEntry",
    "TlsPolicy",
    "TransportProtocol",
]

#: V2G_UDP_SDP_SERVER: the SDP server's UDP port, destination of requests and source of
#: responses (ISO 15118-20 Table 20, [V2G20-149]; ISO 15118-2 and DIN SPEC 70121 use the same).
SDP_SERVER_PORT: Final = 15118
#: V2G_UDP_SDP_CLIENT: the SDP client's source port, from the dynamic ports of IETF RFC 6335
#: (ISO 15118-20 Table 20).
SDP_CLIENT_PORTS: Final = range(49152, 65536)
#: The destination of every SDP request: link-local all-nodes ([V2G2-139], [V2G20-139]).
SDP_MULTICAST_ADDRESS: Final = IPv6Address("ff02::1")

REQUEST_PAYLOAD_LENGTH: Final = 2  # [V2G20-141]
RESPONSE_PAYLOAD_LENGTH: Final = 20  # [V2G20-153]
_WIRELESS_TYPES: Final = frozenset(
    {PayloadType.SDP_REQUEST_WIRELESS, PayloadType.SDP_RESPONSE_WIRELESS}
)


class Security(IntEnum):
    """The security byte (ISO 15118-20 Table 21; ISO 15118-2 the same). 0x01-0x0F, 0x11-0xFF
    are reserved."""

    TLS = 0x00  #: "secured with TLS"
    NO_TLS = 0x10  #: "No transport layer security"


class TransportProtocol(IntEnum):
    """The transport protocol byte (ISO 15118-20 Table 21). 0x01-0x0F, 0x11-0xFF are reserved."""

    TCP = 0x00
    #: "reserved for UDP": a named value that decodes, but no V2G message travels over UDP, so
    #: a server offers only TCP and a client refuses an answer that names UDP.
    UDP = 0x10


# --------------------------------------------------------------------------- timing table


class SdpParameter(Enum):
    """The timing and retry parameters of the SDP client."""

    RESPONSE_WAIT = "response_wait"
    MAX_REQUESTS = "max_requests"


@dataclass(frozen=True, slots=True)
class TimingEntry:
    """One row of `SDP_TIMING`: the value, its unit, where the standards require it, and how."""

    value: float
    unit: str
    requirements: tuple[str, ...]
    rule: str


#: The SDP client's timing, the only timing SDP has: the server answers at once and keeps no
#: state. ISO 15118-20 §7.10.1.7; ISO 15118-2 has the same requirements under the same numbers
#: ([V2G2-157] to [V2G2-162]); DIN SPEC 70121 the same limit of 50 requests ([V2G-DC-849]).
SDP_TIMING: Final[Mapping[SdpParameter, TimingEntry]] = MappingProxyType(
    {
        SdpParameter.RESPONSE_WAIT: TimingEntry(
            0.25,
            "s",
            ("[V2G2-159]", "[V2G20-159]", "[V2G20-160]"),
            "after each request the client waits at least this long for a response, then "
            "sends a new request and counts it",
        ),
        SdpParameter.MAX_REQUESTS: TimingEntry(
            50,
            "requests",
            ("[V2G2-161]", "[V2G20-157]", "[V2G20-161]", "[V2G20-162]", "[V2G-DC-849]"),
            "after at most this many consecutive requests without a valid response the client "
            "stops discovery and handles it like a timeout",
        ),
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SdpTiming:
    """The client's timing: the standard's values by default, smaller ones for tests."""

    response_wait: float = SDP_TIMING[SdpParameter.RESPONSE_WAIT].value
    max_requests: int = int(SDP_TIMING[SdpParameter.MAX_REQUESTS].value)

    def __post_init__(self) -> None:
        if not self.response_wait > 0:
            raise ValueError(f"response_wait must be positive, got {self.response_wait}")
        if self.max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {self.max_requests}")


# --------------------------------------------------------------------------- errors


class SdpErrorKind(Enum):
    """Why a datagram is not a usable SDP message (for the log line)."""

    TRUNCATED = "shorter than a V2GTP header"
    BAD_HEADER = "V2GTP header fails its checks"
    WIRELESS = "wireless SDP (ISO 15118-8) is not served on this link"
    WRONG_PAYLOAD_TYPE = "not the expected SDP payload type"
    BAD_PAYLOAD_LENGTH = "payload length field is not the SDP length"
    DATAGRAM_LENGTH = "datagram length does not match the header"
    RESERVED_SECURITY = "reserved security value"
    RESERVED_TRANSPORT = "reserved transport protocol value"
    INVALID_ADDRESS = "unusable SECC address"
    INVALID_PORT = "SECC port 0"
    UNSUPPORTED_TRANSPORT = "transport protocol other than TCP"
    UNSOLICITED = "response before any request was sent"


class SdpError(Exception):
    """A datagram that is not a well-formed SDP message of the expected kind: the peer's fault.

    `kind` says which check failed; a V2GTP header error is kept as `__cause__`.
    """

    def __init__(self, kind: SdpErrorKind, detail: str) -> None:
        super().__init__(kind, detail)  # args as given, so that it pickles
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"


def _unframe(datagram: bytes, expected: PayloadType, length: int) -> bytes:
    """The payload of a datagram that must hold exactly one V2GTP message of type `expected`."""
    if len(datagram) < HEADER_LENGTH:
        raise SdpError(SdpErrorKind.TRUNCATED, f"{len(datagram)} bytes")
    try:
        header = V2GTPHeader.unpack(datagram, max_payload_length=0xFFFFFFFF)
    except V2GTPError as exc:
        raise SdpError(SdpErrorKind.BAD_HEADER, str(exc)) from exc
    if header.payload_type in _WIRELESS_TYPES:
        raise SdpError(SdpErrorKind.WIRELESS, f"payload type 0x{header.payload_type:04X}")
    if header.payload_type != expected:
        raise SdpError(
            SdpErrorKind.WRONG_PAYLOAD_TYPE,
            f"0x{header.payload_type:04X}, expected 0x{expected:04X}",
        )
    if header.payload_length != length:
        raise SdpError(
            SdpErrorKind.BAD_PAYLOAD_LENGTH, f"{header.payload_length}, expected {length}"
        )
    if len(datagram) != HEADER_LENGTH + length:
        raise SdpError(
            SdpErrorKind.DATAGRAM_LENGTH,
            f"{len(datagram)} bytes, the header announces {HEADER_LENGTH + length}",
        )
    return datagram[HEADER_LENGTH:]


def _security(value: int) -> Security:
    try:
        return Security(value)
    except ValueError:
        raise SdpError(SdpErrorKind.RESERVED_SECURITY, f"0x{value:02X}") from None


def _transport(value: int) -> TransportProtocol:
    try:
        return TransportProtocol(value)
    except ValueError:
        raise SdpError(SdpErrorKind.RESERVED_TRANSPORT, f"0x{value:02X}") from None


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class SdpRequest:
    """SECC discovery request: what the EVCC asks for ([V2G20-142], [V2G20-623])."""

    security: Security
    transport: TransportProtocol = TransportProtocol.TCP

    def encode(self) -> bytes:
        """The whole datagram: V2GTP header (0x9000, length 2) and payload."""
        payload = bytes((self.security, self.transport))
        return V2GTPMessage(PayloadType.SDP_REQUEST, payload).pack()

    @classmethod
    def decode(cls, datagram: bytes) -> SdpRequest:
        """Parse one datagram; raises `SdpError` for anything but a well-formed request."""
        payload = _unframe(datagram, PayloadType.SDP_REQUEST, REQUEST_PAYLOAD_LENGTH)
        return cls(_security(payload[0]), _transport(payload[1]))


def _address_problem(address: IPv6Address) -> str | None:
    if address.is_unspecified or address.is_multicast:
        return f"{address} cannot be connected to"
    return None


@dataclass(frozen=True, slots=True)
class SdpResponse:
    """SECC discovery response: where the SECC's TCP or TLS server listens ([V2G20-154]).

    `security` and `transport` describe that port ([V2G20-624]): what the SECC offers, which
    need not be what the request asked for.
    """

    address: IPv6Address
    port: int
    security: Security
    transport: TransportProtocol = TransportProtocol.TCP

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 0xFFFF:
            raise ValueError(f"SECC port {self.port} out of range 1..65535")
        problem = _address_problem(self.address)
        if problem is not None:
            raise ValueError(problem)

    def encode(self) -> bytes:
        """The whole datagram: V2GTP header (0x9001, length 20) and payload."""
        payload = (
            self.address.packed
            + self.port.to_bytes(2, "big")
            + bytes((self.security, self.transport))
        )
        return V2GTPMessage(PayloadType.SDP_RESPONSE, payload).pack()

    @classmethod
    def decode(cls, datagram: bytes) -> SdpResponse:
        """Parse one datagram; raises `SdpError` for anything but a well-formed response."""
        payload = _unframe(datagram, PayloadType.SDP_RESPONSE, RESPONSE_PAYLOAD_LENGTH)
        address = IPv6Address(payload[:16])
        problem = _address_problem(address)
        if problem is not None:
            raise SdpError(SdpErrorKind.INVALID_ADDRESS, problem)
        port = int.from_bytes(payload[16:18], "big")
        if port == 0:
            raise SdpError(SdpErrorKind.INVALID_PORT, "port 0")
        return cls(address, port, _security(payload[18]), _transport(payload[19]))


# --------------------------------------------------------------------------- SECC side


class TlsPolicy(Enum):
    """Which servers the SECC runs and therefore what its SDP server may announce."""

    REQUIRED = "required"  #: TLS server only
    ALLOWED = "allowed"  #: TLS and TCP servers; the request chooses
    NEVER = "never"  #: TCP server only (e.g. DIN SPEC 70121 only, [V2G-DC-618])


#: The security the SDP server announces, by policy and requested security. The response's
#: security byte describes the announced port ([V2G20-624]); the EVCC then decides whether that is
#: acceptable to it. Sources:
#: - a TLS request is answered with TLS when the SECC has TLS ([V2G20-1238]; ISO 15118-4
#:   TC_SECC_CMN_VTB_SDP_002/003);
#: - a no-TLS request is answered with no TLS when the SECC allows it (TC_SECC_CMN_VTB_SDP_001);
#: - an SECC without TLS answers a TLS request with "no transport layer security"
#:   (TC_SECC_CMN_VTB_SDP_007);
#: - an SECC that requires TLS announces its TLS port even to a no-TLS request: the server
#:   replies to every request ([V2G20-144]) and can only offer what it has ([V2G20-624]).
ANSWERS: Final[Mapping[tuple[TlsPolicy, Security], Security]] = MappingProxyType(
    {
        (TlsPolicy.REQUIRED, Security.TLS): Security.TLS,
        (TlsPolicy.REQUIRED, Security.NO_TLS): Security.TLS,
        (TlsPolicy.ALLOWED, Security.TLS): Security.TLS,
        (TlsPolicy.ALLOWED, Security.NO_TLS): Security.NO_TLS,
        (TlsPolicy.NEVER, Security.TLS): Security.NO_TLS,
        (TlsPolicy.NEVER, Security.NO_TLS): Security.NO_TLS,
    }
)


@dataclass(frozen=True, slots=True)
class Respond:
    """Send `response.encode()` back to the request's source address and port."""

    request: SdpRequest
    response: SdpResponse

    @property
    def datagram(self) -> bytes:
        return self.response.encode()


@dataclass(frozen=True, slots=True)
class RequestIgnored:
    """A datagram that is not an SDP request: log it, send nothing."""

    kind: SdpErrorKind
    detail: str


SdpServerEvent = Respond | RequestIgnored


class SdpServerCore:
    """The SDP server's decisions: which datagram to answer, and with which port.

    Stateless between datagrams: every well-formed request gets a response ([V2G20-144]), only
    requests do ([V2G20-146]); anything else is ignored and described for the log. Requests for
    the reserved UDP transport are answered with TCP, the only transport an SECC offers.
    """

    __slots__ = ("address", "policy", "tcp_port", "tls_port")

    def __init__(
        self,
        policy: TlsPolicy,
        address: IPv6Address,
        tls_port: int | None,
        tcp_port: int | None,
    ) -> None:
        needs_tls = policy is not TlsPolicy.NEVER
        needs_tcp = policy is not TlsPolicy.REQUIRED
        if needs_tls and tls_port is None:
            raise ValueError(f"TLS policy {policy.value!r} needs a TLS port")
        if needs_tcp and tcp_port is None:
            raise ValueError(f"TLS policy {policy.value!r} needs a TCP port")
        self.policy = policy
        self.address = address
        self.tls_port = tls_port if needs_tls else None
        self.tcp_port = tcp_port if needs_tcp else None
        for security in Security:  # validates the address and the ports
            self.answer(SdpRequest(security))

    def answer(self, request: SdpRequest) -> SdpResponse:
        """The response to a well-formed request, by `ANSWERS`."""
        security = ANSWERS[self.policy, request.security]
        port = self.tls_port if security is Security.TLS else self.tcp_port
        assert port is not None  # guaranteed by __init__
        return SdpResponse(self.address, port, security, TransportProtocol.TCP)

    def receive_datagram(self, data: bytes) -> SdpServerEvent:
        """Decide what to do with one datagram received on the SDP port. Never raises."""
        try:
            request = SdpRequest.decode(data)
        except SdpError as exc:
            return RequestIgnored(exc.kind, exc.detail)
        return Respond(request, self.answer(request))


# --------------------------------------------------------------------------- EVCC side


@dataclass(frozen=True, slots=True)
class Discovered:
    """A valid response: connect to [address]:port with `security` (the SECC's choice)."""

    address: IPv6Address
    port: int
    security: Security
    transport: TransportProtocol


@dataclass(frozen=True, slots=True)
class DiscoveryFailed:
    """No valid response after `requests` requests ([V2G20-161]): handle as a timeout."""

    requests: int


@dataclass(frozen=True, slots=True)
class ResponseIgnored:
    """A datagram that is not a usable response; discovery goes on (log it)."""

    kind: SdpErrorKind
    detail: str


SdpClientEvent = Discovered | DiscoveryFailed | ResponseIgnored


@dataclass(slots=True)
class _ClientState:
    due: bool = True  # a request is to be sent
    deadline: float | None = None
    sent: int = 0
    done: bool = False
    events: deque[SdpClientEvent] = field(default_factory=deque)


class SdpClientCore:
    """The EVCC's SECC discovery: request, wait, repeat, until a valid response or the limit.

    Driven by `datagram_to_send(now)`, `receive_datagram(data, now)` and `handle_timer(now)`;
    `get_timer()` is the next deadline, `next_event()` the outcome. The first request is due at
    once; each request is followed by `timing.response_wait` seconds of waiting ([V2G20-159])
    and, without a valid response, by the next request ([V2G20-160]), up to
    `timing.max_requests` requests ([V2G20-161]). A datagram that is not a valid response does
    not end the wait: anything on the link may answer a multicast.
    """

    __slots__ = ("_state", "request", "timing")

    def __init__(
        self,
        security: Security,
        *,
        transport: TransportProtocol = TransportProtocol.TCP,
        timing: SdpTiming | None = None,
    ) -> None:
        self.request = SdpRequest(security, transport)
        self.timing = timing if timing is not None else SdpTiming()
        self._state = _ClientState()

    @property
    def requests_sent(self) -> int:
        return self._state.sent

    @property
    def finished(self) -> bool:
        return self._state.done

    def datagram_to_send(self, now: float) -> bytes | None:
        """The request to multicast now, if one is due; starts its response wait."""
        state = self._state
        if state.done or not state.due:
            return None
        state.due = False
        state.sent += 1
        state.deadline = now + self.timing.response_wait
        return self.request.encode()

    def get_timer(self) -> float | None:
        """When `handle_timer` must be called next, or None."""
        return self._state.deadline

    def handle_timer(self, now: float) -> None:
        """The response wait is over: a new request becomes due, or discovery fails."""
        state = self._state
        if state.done or state.deadline is None or now < state.deadline:
            return
        state.deadline = None
        if state.sent >= self.timing.max_requests:
            state.done = True
            state.events.append(DiscoveryFailed(state.sent))
        else:
            state.due = True

    def receive_datagram(self, data: bytes, now: float) -> None:
        """A datagram arrived on the client's port."""
        state = self._state
        if state.done:
            return
        try:
            if state.sent == 0:
                raise SdpError(SdpErrorKind.UNSOLICITED, f"{len(data)} bytes")
            response = SdpResponse.decode(data)
            if response.transport is not TransportProtocol.TCP:
                raise SdpError(SdpErrorKind.UNSUPPORTED_TRANSPORT, response.transport.name)
        except SdpError as exc:
            state.events.append(ResponseIgnored(exc.kind, exc.detail))
            return
        state.done, state.due, state.deadline = True, False, None
        state.events.append(
            Discovered(response.address, response.port, response.security, response.transport)
        )

    def next_event(self) -> SdpClientEvent | None:
        events = self._state.events
        return events.popleft() if events else None
