"""Extract the V2GTP messages of charging sessions from packet captures.

`read_capture(path)` reads a .pcap, .pcapng or .dump (libpcap) file with scapy, reassembles every
TCP connection per direction, splits the streams into V2GTP messages and tags each EXI payload
with the schema that decodes it. The steps are separate and mostly pure:

1. `read_frames(path)` (in `frames.py`): scapy dissects link, IP and TCP/UDP layers (the only
   scapy use); `discover(datagrams)` notes who is who from the SDP exchange.
2. `extract_messages(segments, discovery)`: TCP reassembly (order by sequence number, drop
   duplicates, trim overlaps, tolerate a capture that starts mid-stream or misses segments) and
   V2GTP framing with resynchronisation; V2G connections are recognised by content, not by port.
3. `assign_schemas(messages, decode_handshake)`: the SupportedAppProtocol handshake of each
   connection picks the schema; without a visible handshake the EXI header signature decides.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from iso15118.trace.frames import Datagram, Endpoint, IPAddress, Segment, read_frames
from iso15118.trace.schemas import (
    NAMESPACE_SCHEMAS,
    HandshakeDecoder,
    Schema,
    SchemaSource,
    decode_handshake_with_codec,
    negotiate,
    schema_for,
    signature_schema,
)
from iso15118.v2gtp import (
    HEADER_LENGTH,
    INVERSE_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    PayloadType,
    V2GTPError,
    V2GTPHeader,
    V2GTPMessage,
    V2GTPReassembler,
)

__all__ = [
    "Capture",
    "CapturedMessage",
    "Connection",
    "Datagram",
    "Direction",
    "DirectionSource",
    "Discovery",
    "Endpoint",
    "Segment",
    "StreamError",
    "StreamKind",
    "assign_schemas",
    "discover",
    "extract_messages",
    "parse_capture",
    "read_capture",
    "read_segments",
]

_SYN: Final = 0x02
_ACK: Final = 0x10
_SEQ_MOD: Final = 1 << 32
_TLS_RECORD_TYPES: Final = frozenset({0x14, 0x15, 0x16, 0x17})  # RFC 8446 §5.1 ContentType
_TLS_HEADER_LENGTH: Final = 5
_SYNC_PATTERN: Final = bytes([PROTOCOL_VERSION, INVERSE_PROTOCOL_VERSION])


class Direction(StrEnum):
    EV_TO_EVSE = "EV->EVSE"
    EVSE_TO_EV = "EVSE->EV"


class DirectionSource(StrEnum):
    """How the EV side of a connection was identified, most reliable first."""

    SDP = "sdp"  # one side is the address and port announced in an SDP response
    SYN = "syn"  # the EV is the client that opened the connection
    SDP_ADDRESS = "sdp-address"  # one side's address sent SDP requests or answered them
    FIRST_MESSAGE = "first-message"  # nothing else known: the first V2GTP sender (a guess)


class StreamKind(StrEnum):
    V2GTP = "v2gtp"
    TLS = "tls"  # starts with a TLS record; encrypted, skipped
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    """One V2GTP message of a captured TCP stream (payload without the 8-byte header)."""

    #: Capture time at which the message was complete: the latest time among its bytes and
    #: the bytes before it in the stream (TCP delivers in order).
    time: float
    connection: int  # index of the TCP connection in the capture, in order of appearance
    direction: Direction
    payload_type: PayloadType
    payload: bytes
    frame: int = 0  # 1-based number of the frame captured at `time`
    schema: Schema | None = None
    schema_source: SchemaSource | None = None


@dataclass(frozen=True, slots=True)
class StreamError:
    """Where a V2GTP stream lost its framing; extraction resumed at a later segment boundary."""

    time: float
    frame: int
    connection: int
    direction: Direction
    reason: str


@dataclass(frozen=True, slots=True)
class Connection:
    id: int
    ev: Endpoint
    evse: Endpoint
    direction_source: DirectionSource
    kind: StreamKind
    start: float = 0.0  # capture time of the first segment (the SYN if it was captured)
    start_frame: int = 0
    data_bytes: int = 0  # reassembled payload bytes, both directions
    tls_records: int = 0  # whole TLS records, both directions (StreamKind.TLS only)


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the SDP exchanges (V2GTP over UDP) of a capture tell about who is who."""

    evse_endpoints: frozenset[Endpoint] = frozenset()  # announced in SDP responses
    evse_addresses: frozenset[IPAddress] = frozenset()  # announced in or sending SDP responses
    ev_addresses: frozenset[IPAddress] = frozenset()  # sending SDP requests

    def is_ev(self, address: IPAddress) -> bool | None:
        """True if `address` is the EV's, False if it is the EVSE's, None if unknown."""
        ev, evse = address in self.ev_addresses, address in self.evse_addresses
        return None if ev == evse else ev


@dataclass(frozen=True, slots=True)
class Capture:
    messages: tuple[CapturedMessage, ...]  # V2GTP messages of all connections, in time order
    errors: tuple[StreamError, ...]
    connections: tuple[Connection, ...]  # every TCP connection that carried data
    discovery: Discovery
    datagrams: tuple[Datagram, ...] = ()  # V2GTP over UDP (SDP), in capture order
    first_time: float | None = None  # capture time of the file's first frame
    read_error: str | None = None  # why reading stopped early (damaged or truncated file)


# --------------------------------------------------------------------------- discovery


def discover(datagrams: Iterable[Datagram]) -> Discovery:
    """What the SDP requests and responses (ISO 15118-2 §7.10.1) say about who is who."""
    evse_endpoints: set[Endpoint] = set()
    evse_addresses: set[IPAddress] = set()
    ev_addresses: set[IPAddress] = set()
    for datagram in datagrams:
        body = datagram.payload
        if datagram.payload_type in (PayloadType.SDP_REQUEST, PayloadType.SDP_REQUEST_WIRELESS):
            ev_addresses.add(datagram.src[0])
        elif datagram.payload_type is PayloadType.SDP_RESPONSE and len(body) >= 18:
            announced = ipaddress.IPv6Address(body[:16])
            evse_endpoints.add((announced, int.from_bytes(body[16:18], "big")))
            evse_addresses.update((announced, datagram.src[0]))
    return Discovery(frozenset(evse_endpoints), frozenset(evse_addresses), frozenset(ev_addresses))


def read_segments(path: str | os.PathLike[str]) -> tuple[list[Segment], Discovery]:
    """All TCP segments of a capture, and what its SDP datagrams say (see `read_frames`)."""
    frames = read_frames(path)
    return list(frames.segments), discover(frames.datagrams)


# --------------------------------------------------------------------------- TCP reassembly


@dataclass(slots=True)
class _Flow:
    """One direction of a connection: its segments as captured."""

    isn: int | None = None  # sequence number of the first data byte, known from the SYN
    segments: list[Segment] = field(default_factory=list)


@dataclass(slots=True)
class _Conn:
    id: int
    first: Segment  # the first segment captured (the SYN, if it was)
    client: Endpoint | None = None  # sender of the SYN
    flows: dict[Endpoint, _Flow] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Contiguous new bytes of a flow, in sequence order."""

    data: bytes
    time: float
    frame: int
    gap_before: int  # bytes missing from the capture right before this chunk


def _group_connections(segments: Iterable[Segment]) -> list[_Conn]:
    live: dict[frozenset[Endpoint], _Conn] = {}
    connections: list[_Conn] = []
    for segment in segments:
        key = frozenset((segment.src, segment.dst))
        conn = live.get(key)
        opening = segment.flags & (_SYN | _ACK) == _SYN
        if conn is not None and opening:
            flow = conn.flows.get(segment.src)
            if flow is not None and flow.isn != (segment.seq + 1) % _SEQ_MOD:
                conn = None  # a new connection on the same address/port pair
        if conn is None:
            conn = live[key] = _Conn(len(connections), segment)
            connections.append(conn)
        flow = conn.flows.setdefault(segment.src, _Flow())
        if segment.flags & _SYN:
            flow.isn = (segment.seq + 1) % _SEQ_MOD
            if opening:
                conn.client = segment.src
        if segment.payload:
            flow.segments.append(segment)
    return connections


def _chunks(flow: _Flow) -> Iterator[_Chunk]:
    """The flow's bytes in sequence order, without duplicates; holes are reported as gaps."""
    if not flow.segments:
        return
    base = flow.isn if flow.isn is not None else flow.segments[0].seq

    def offset(segment: Segment) -> int:
        relative = (segment.seq - base) % _SEQ_MOD
        return relative - _SEQ_MOD if relative >= _SEQ_MOD // 2 else relative

    ordered = sorted(flow.segments, key=lambda s: (offset(s), s.frame))
    position = 0 if flow.isn is not None else offset(ordered[0])
    for segment in ordered:
        start = offset(segment)
        end = start + len(segment.payload)
        if end <= position:
            continue  # retransmission or duplicate
        data = segment.payload[max(position - start, 0) :]  # overlap: keep only new bytes
        yield _Chunk(data, segment.time, segment.frame, max(start - position, 0))
        position = end


@dataclass(slots=True)
class _Splitter:
    """V2GTP framing of one flow, resynchronising at segment boundaries after an error."""

    connection: int
    #: Placeholder until the connection's orientation is known.
    direction: Direction = Direction.EV_TO_EVSE
    reassembler: V2GTPReassembler = field(default_factory=V2GTPReassembler)
    in_sync: bool = False
    seen_v2gtp: bool = False
    first_bytes: bytes = b""
    data_bytes: int = 0
    #: (time, frame) of the latest segment so far: TCP delivers in order, so a message is
    #: complete once every byte up to its end was captured.
    latest: tuple[float, int] = (float("-inf"), 0)
    messages: list[CapturedMessage] = field(default_factory=list)
    errors: list[StreamError] = field(default_factory=list)

    def run(self, chunks: Iterable[_Chunk]) -> None:
        last: _Chunk | None = None
        held = b""  # out of sync: a segment too short to tell whether a header starts there
        for chunk in chunks:
            self.first_bytes = self.first_bytes or chunk.data[:HEADER_LENGTH]
            self.data_bytes += len(chunk.data)
            self.latest = max(self.latest, (chunk.time, chunk.frame))
            data = chunk.data
            if chunk.gap_before:
                held = b""
                if self.in_sync:
                    self._lose_sync(chunk, f"{chunk.gap_before} bytes missing from the capture")
            if not self.in_sync:
                data, held = held + data, b""
                if _starts_with_header(data):
                    self.in_sync = self.seen_v2gtp = True
                elif len(data) < HEADER_LENGTH and _SYNC_PATTERN.startswith(data[:2]):
                    held = data
            if self.in_sync:
                self._feed(data, chunk)
            last = chunk
        if last is not None and self.in_sync and self.reassembler.buffered:
            pending = self.reassembler.buffered
            self._error(last, f"stream ends inside a V2GTP message ({pending} bytes)")

    def _feed(self, data: bytes, chunk: _Chunk) -> None:
        try:
            completed = self.reassembler.feed(data)
        except V2GTPError as exc:
            self._emit(exc.messages)
            self._lose_sync(chunk, str(exc))
            return
        self._emit(completed)

    def _emit(self, completed: Iterable[V2GTPMessage]) -> None:
        when, frame = self.latest
        for message in completed:
            self.messages.append(
                CapturedMessage(
                    time=when,
                    connection=self.connection,
                    direction=self.direction,
                    payload_type=message.payload_type,
                    payload=message.payload,
                    frame=frame,
                )
            )

    def _lose_sync(self, chunk: _Chunk, reason: str) -> None:
        self._error(chunk, reason)
        self.in_sync = False
        self.reassembler.reset()

    def _error(self, chunk: _Chunk, reason: str) -> None:
        self.errors.append(
            StreamError(chunk.time, chunk.frame, self.connection, self.direction, reason)
        )


def _starts_with_header(data: bytes) -> bool:
    try:
        V2GTPHeader.unpack(data)
    except (ValueError, V2GTPError):
        return False
    return True


def _orient(
    conn: _Conn, discovery: Discovery, first_sender: Endpoint | None
) -> tuple[Endpoint, Endpoint, DirectionSource]:
    """(EV, EVSE, how we know) for a connection that carried data."""
    endpoints = list(conn.flows)
    if len(endpoints) == 1:  # only one direction captured: its destination is the peer
        endpoints.append(conn.flows[endpoints[0]].segments[0].dst)
    a, b = endpoints[0], endpoints[1]
    if (a in discovery.evse_endpoints) != (b in discovery.evse_endpoints):
        if a in discovery.evse_endpoints:
            return b, a, DirectionSource.SDP
        return a, b, DirectionSource.SDP
    if conn.client is not None:
        return conn.client, b if conn.client == a else a, DirectionSource.SYN
    a_is_ev, b_is_ev = discovery.is_ev(a[0]), discovery.is_ev(b[0])
    a_evidence, b_evidence = a_is_ev or b_is_ev is False, b_is_ev or a_is_ev is False
    if a_evidence != b_evidence:
        ev, evse = (a, b) if a_evidence else (b, a)
        return ev, evse, DirectionSource.SDP_ADDRESS
    if first_sender is not None and first_sender == b:
        return b, a, DirectionSource.FIRST_MESSAGE
    return a, b, DirectionSource.FIRST_MESSAGE


def extract_messages(segments: Iterable[Segment], discovery: Discovery = Discovery()) -> Capture:
    """Reassemble the TCP connections and split their V2GTP streams (no schemas yet)."""
    messages: list[CapturedMessage] = []
    errors: list[StreamError] = []
    connections: list[Connection] = []
    for conn in _group_connections(segments):
        splitters: dict[Endpoint, _Splitter] = {}
        for sender, flow in conn.flows.items():
            if flow.segments:
                splitters[sender] = _Splitter(conn.id)
                splitters[sender].run(_chunks(flow))
        if not splitters:
            continue  # no data, e.g. a refused connection attempt
        senders = [(s.messages[0].time, e) for e, s in splitters.items() if s.messages]
        first = min(senders, key=lambda pair: pair[0])[1] if senders else None
        ev, evse, source = _orient(conn, discovery, first)
        for sender, splitter in splitters.items():
            direction = Direction.EV_TO_EVSE if sender == ev else Direction.EVSE_TO_EV
            messages.extend(replace(m, direction=direction) for m in splitter.messages)
            errors.extend(replace(e, direction=direction) for e in splitter.errors)
        connections.append(_connection(conn, ev, evse, source, splitters))
    messages.sort(key=lambda m: (m.time, m.frame))
    errors.sort(key=lambda e: (e.time, e.frame))
    return Capture(tuple(messages), tuple(errors), tuple(connections), discovery)


def _connection(
    conn: _Conn,
    ev: Endpoint,
    evse: Endpoint,
    source: DirectionSource,
    splitters: Mapping[Endpoint, _Splitter],
) -> Connection:
    kind = _stream_kind(splitters.values())
    records = 0
    if kind is StreamKind.TLS:
        records = sum(_tls_records(_chunks(conn.flows[sender])) for sender in splitters)
    data = sum(s.data_bytes for s in splitters.values())
    start = conn.first
    return Connection(conn.id, ev, evse, source, kind, start.time, start.frame, data, records)


def _tls_records(chunks: Iterable[_Chunk]) -> int:
    """Whole TLS records in a flow (5-byte header: type, version, length; RFC 8446 §5.1),
    counted up to the first hole in the capture or the first bytes that are not a record."""
    buffer = bytearray()
    records = 0
    for chunk in chunks:
        if chunk.gap_before:
            break
        buffer += chunk.data
        while len(buffer) >= _TLS_HEADER_LENGTH:
            if buffer[0] not in _TLS_RECORD_TYPES or buffer[1] != 0x03:
                return records
            end = _TLS_HEADER_LENGTH + int.from_bytes(buffer[3:5], "big")
            if len(buffer) < end:
                break
            del buffer[:end]
            records += 1
    return records


def _stream_kind(splitters: Iterable[_Splitter]) -> StreamKind:
    flows = list(splitters)
    if any(s.seen_v2gtp for s in flows):
        return StreamKind.V2GTP
    starts = [s.first_bytes for s in flows if s.first_bytes]
    if starts and all(b[0] in _TLS_RECORD_TYPES and b[1:2] == b"\x03" for b in starts):
        return StreamKind.TLS
    return StreamKind.OTHER


# --------------------------------------------------------------------------- schemas


def assign_schemas(
    messages: Iterable[CapturedMessage],
    decode_handshake: HandshakeDecoder,
    namespaces: Mapping[str, Schema] = NAMESPACE_SCHEMAS,
) -> list[CapturedMessage]:
    """Tag each message with the grammar that decodes it, connection by connection.

    The SupportedAppProtocol handshake at the start of a connection (decoded with
    `decode_handshake`) picks the grammar of its later messages; a connection without a visible
    handshake falls back to the payload signature (see `iso15118.trace.schemas`). `namespaces`
    maps negotiated 0x8001 namespaces to grammars (see `schema_for`).
    """
    ordered = list(messages)
    by_connection: dict[int, list[int]] = {}
    for index, message in enumerate(ordered):
        by_connection.setdefault(message.connection, []).append(index)
    for indices in by_connection.values():
        pairs = [(ordered[i].payload_type, ordered[i].payload) for i in indices]
        outcome = negotiate(pairs, decode_handshake)
        for position, index in enumerate(indices):
            message = ordered[index]
            schema: Schema | None
            if position < outcome.handshake_messages:
                schema, source = Schema.APP_HAND, SchemaSource.HANDSHAKE
            elif outcome.concluded:
                schema, source = None, SchemaSource.HANDSHAKE
                if outcome.namespace is not None:
                    schema = schema_for(outcome.namespace, message.payload_type, namespaces)
            else:
                schema = signature_schema(message.payload_type, message.payload)
                source = SchemaSource.PAYLOAD_SIGNATURE
            ordered[index] = replace(message, schema=schema, schema_source=source)
    return ordered


# --------------------------------------------------------------------------- entry points


def parse_capture(path: str | os.PathLike[str]) -> Capture:
    """Everything `extract_messages` finds in a capture file (schemas not assigned)."""
    frames = read_frames(path)
    capture = extract_messages(frames.segments, discover(frames.datagrams))
    return replace(
        capture,
        datagrams=frames.datagrams,
        first_time=frames.first_time,
        read_error=frames.read_error,
    )


def read_capture(
    path: str | os.PathLike[str],
    decode_handshake: HandshakeDecoder = decode_handshake_with_codec,
) -> list[CapturedMessage]:
    """The V2GTP messages of a capture file, each tagged with its schema."""
    return assign_schemas(parse_capture(path).messages, decode_handshake)
