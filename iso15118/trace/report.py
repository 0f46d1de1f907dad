"""A decoded capture, entry by entry: what `iso15118 trace` prints.

`build_trace(capture)` turns a parsed `Capture` into time-ordered entries: every V2GTP message of
the TCP streams decoded with its schema (or the reason it could not be), the SDP datagrams, one
entry per TCP connection (for TLS: encrypted, with its record and byte counts), the places where
a stream lost its framing, and a damaged file's read error; plus a `Summary` with the counts.
Nothing here fails on a bad payload: it becomes an entry with an error.

Rendering the entries as text lines or JSON objects is in `iso15118.trace.render`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from iso15118.trace.capture import (
    Capture,
    CapturedMessage,
    Connection,
    Datagram,
    Direction,
    Endpoint,
    StreamError,
    StreamKind,
    assign_schemas,
)
from iso15118.trace.fields import summarize
from iso15118.trace.schemas import (
    NAMESPACE_SCHEMAS,
    HandshakeDecoder,
    HandshakeRequest,
    Schema,
    SchemaSource,
    decode_handshake_with_codec,
    handshake_from_json,
)
from iso15118.v2gtp import PayloadType

__all__ = ["Entry", "EntryKind", "Summary", "Trace", "build_trace", "message_entries"]

_log = logging.getLogger(__name__)


class EntryKind(StrEnum):
    MESSAGE = "message"  # a V2GTP message of a TCP stream
    SDP = "sdp"  # a V2GTP datagram over UDP (SDP request or response)
    CONNECTION = "connection"  # a TCP connection that carried data (V2GTP, TLS or other)
    STREAM_ERROR = "stream-error"  # a V2GTP stream lost its framing
    READ_ERROR = "read-error"  # the capture file is damaged or truncated


@dataclass(frozen=True, slots=True)
class Entry:
    kind: EntryKind
    time: float  # capture time (seconds since the epoch)
    frame: int  # 1-based frame number in the file
    name: str  # e.g. CurrentDemandReq, "SDP request", "TLS connection"
    direction: Direction | None = None
    connection: int | None = None
    payload_type: PayloadType | None = None
    schema: Schema | None = None
    fields: tuple[tuple[str, str], ...] = ()  # what to show first, (label, text)
    #: The content: a decoded message in the `iso15118.exi.to_json` shape, an SDP message's
    #: fields, a connection's endpoints and counts.
    document: dict[str, Any] | None = None
    payload: bytes = b""  # V2GTP payload, without the header
    error: str | None = None  # why the payload could not be decoded, or what went wrong


@dataclass(frozen=True, slots=True)
class Summary:
    messages: int = 0  # V2GTP messages in TCP streams
    decoded: int = 0  # EXI messages decoded
    by_schema: Mapping[str, int] = field(default_factory=dict)  # decoded, per schema
    undecodable: int = 0  # EXI messages whose schema is known but that failed to decode
    without_schema: int = 0  # EXI messages of a protocol we have no grammar for (no error)
    sdp: int = 0  # V2GTP datagrams (SDP)
    connections: int = 0  # TCP connections that carried data
    tls_connections: int = 0
    tls_records: int = 0
    tls_bytes: int = 0
    stream_errors: int = 0
    read_error: str | None = None

    @property
    def errors(self) -> int:
        """Undecodable payloads, broken streams and a damaged file."""
        return self.undecodable + self.stream_errors + (self.read_error is not None)


@dataclass(frozen=True, slots=True)
class Trace:
    entries: tuple[Entry, ...]  # in capture time order
    summary: Summary
    start: float  # time of the capture's first frame: the origin of relative times


def build_trace(
    capture: Capture,
    *,
    namespaces: Mapping[str, Schema] = NAMESPACE_SCHEMAS,
    decode_handshake: HandshakeDecoder = decode_handshake_with_codec,
) -> Trace:
    """Decode every V2GTP message of `capture`; `namespaces` as in `assign_schemas`."""
    messages = assign_schemas(capture.messages, decode_handshake, namespaces)
    decoder = _MessageDecoder()
    entries = [decoder.entry(m) for m in messages]
    entries += [_datagram_entry(d) for d in capture.datagrams]
    entries += [_connection_entry(c) for c in capture.connections]
    entries += [_stream_error_entry(e) for e in capture.errors]
    entries.sort(key=lambda e: (e.time, e.frame, e.kind is not EntryKind.CONNECTION))
    if capture.read_error is not None:
        last = entries[-1] if entries else None
        entries.append(
            Entry(
                EntryKind.READ_ERROR,
                last.time if last else capture.first_time or 0.0,
                last.frame if last else 0,
                "capture damaged",
                error=capture.read_error,
            )
        )
    start = capture.first_time if capture.first_time is not None else _first_time(entries)
    return Trace(tuple(entries), _summarize(capture, decoder), start)


def _stream_error_entry(error: StreamError) -> Entry:
    return Entry(
        EntryKind.STREAM_ERROR,
        error.time,
        error.frame,
        "stream error",
        error.direction,
        error.connection,
        error=error.reason,
    )


def _first_time(entries: Iterable[Entry]) -> float:
    return min((e.time for e in entries), default=0.0)


@dataclass(slots=True)
class _ConnectionState:
    session_id: str | None = None  # of the previous message
    offered: dict[int, str] = field(default_factory=dict)  # SchemaID -> namespace


@dataclass(slots=True)
class _MessageDecoder:
    """Decodes messages in time order, keeping what the next lines of a connection need."""

    states: dict[int, _ConnectionState] = field(default_factory=dict)
    decoded: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0
    without_schema: int = 0

    def entry(self, message: CapturedMessage) -> Entry:
        base = Entry(
            EntryKind.MESSAGE,
            message.time,
            message.frame,
            message.payload_type.name,
            message.direction,
            message.connection,
            message.payload_type,
            message.schema,
            payload=message.payload,
        )
        if not message.payload_type.is_exi:
            return base
        if message.schema is None:
            self.without_schema += 1
            return replace(base, name="(no grammar)", error=_NO_GRAMMAR[message.schema_source])
        try:
            document = _decode(message.schema, message.payload)
            summary = summarize(document)
        except Exception as exc:  # a codec error, or any failure: report it, keep going
            self.undecodable += 1
            _log.debug("frame %d: cannot decode", message.frame, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
            return replace(base, name="(undecodable)", error=error)
        self.decoded[message.schema.value] = self.decoded.get(message.schema.value, 0) + 1
        before, after = self._context_fields(message.connection, summary.session_id, document)
        fields = before + summary.fields + after
        return replace(base, name=summary.name, fields=fields, document=document)

    def _context_fields(
        self, connection: int, session_id: str | None, document: dict[str, Any]
    ) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        """Fields shown (before, after) the table's: the SessionID when it changes on this
        connection; the protocol a handshake response chose (by the SchemaID of the offer)."""
        state = self.states.setdefault(connection, _ConnectionState())
        before: tuple[tuple[str, str], ...] = ()
        if session_id is not None and session_id != state.session_id:
            before = (("SessionID", session_id),)
            state.session_id = session_id
        if "supportedAppProtocolReq" in document or "supportedAppProtocolRes" in document:
            handshake = handshake_from_json(document)
            if isinstance(handshake, HandshakeRequest):
                state.offered = {p.schema_id: p.namespace for p in handshake.protocols}
            elif handshake.schema_id in state.offered:
                return before, (("protocol", state.offered[handshake.schema_id]),)
        return before, ()


_NO_GRAMMAR: Final[Mapping[SchemaSource | None, str]] = {
    SchemaSource.HANDSHAKE: "no grammar for the protocol negotiated on this connection",
    SchemaSource.PAYLOAD_SIGNATURE: "no handshake captured, and the payload names no grammar",
    None: "no grammar known",
}


def _decode(schema: Schema, payload: bytes) -> dict[str, Any]:
    from iso15118 import exi

    return exi.to_json(exi.decode(schema.value, payload))


_SDP_NAMES = {
    PayloadType.SDP_REQUEST: "SDP request",
    PayloadType.SDP_RESPONSE: "SDP response",
    PayloadType.SDP_REQUEST_WIRELESS: "SDP request (wireless)",
    PayloadType.SDP_RESPONSE_WIRELESS: "SDP response (wireless)",
}
_FROM_EV = (PayloadType.SDP_REQUEST, PayloadType.SDP_REQUEST_WIRELESS)


def _datagram_entry(datagram: Datagram) -> Entry:
    kind = datagram.payload_type
    name = _SDP_NAMES.get(kind, f"{kind.name} over UDP")
    direction: Direction | None = None  # unknown for a V2GTP datagram that is not SDP
    if kind in _SDP_NAMES:
        direction = Direction.EV_TO_EVSE if kind in _FROM_EV else Direction.EVSE_TO_EV
    content: dict[str, Any] = {}
    error = None
    if kind in (PayloadType.SDP_REQUEST, PayloadType.SDP_RESPONSE):
        from iso15118.trace.layers import sdp_fields  # scapy: there since a capture was read

        try:
            content = dict(sdp_fields(kind, datagram.payload))
        except ValueError as exc:
            error = str(exc)
    content["from"] = _endpoint(datagram.src)
    return Entry(
        EntryKind.SDP,
        datagram.time,
        datagram.frame,
        name,
        direction,
        payload_type=kind,
        fields=tuple((key, str(value)) for key, value in content.items()),
        document=content,
        payload=datagram.payload,
        error=error,
    )


_CONNECTION_NAMES: Final = {
    StreamKind.V2GTP: "TCP connection",
    StreamKind.TLS: "TLS connection (encrypted)",
    StreamKind.OTHER: "TCP connection (not V2GTP)",
}


def _connection_entry(connection: Connection) -> Entry:
    content: dict[str, Any] = {
        "connection": connection.id,
        "EV": _endpoint(connection.ev),
        "EVSE": _endpoint(connection.evse),
    }
    if connection.kind is StreamKind.TLS:
        content["records"] = connection.tls_records
    if connection.kind is not StreamKind.V2GTP:
        content["bytes"] = connection.data_bytes
    return Entry(
        EntryKind.CONNECTION,
        connection.start,
        connection.start_frame,
        _CONNECTION_NAMES[connection.kind],
        connection=connection.id,
        fields=tuple((key, str(value)) for key, value in content.items()),
        document={
            **content,
            "stream": connection.kind.value,
            "oriented_by": connection.direction_source.value,
        },
    )


def _endpoint(endpoint: Endpoint) -> str:
    address, port = endpoint
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _summarize(capture: Capture, decoder: _MessageDecoder) -> Summary:
    tls = [c for c in capture.connections if c.kind is StreamKind.TLS]
    return Summary(
        messages=len(capture.messages),
        decoded=sum(decoder.decoded.values()),
        by_schema=dict(sorted(decoder.decoded.items(), key=_schema_order)),
        undecodable=decoder.undecodable,
        without_schema=decoder.without_schema,
        sdp=len(capture.datagrams),
        connections=len(capture.connections),
        tls_connections=len(tls),
        tls_records=sum(c.tls_records for c in tls),
        tls_bytes=sum(c.data_bytes for c in tls),
        stream_errors=len(capture.errors),
        read_error=capture.read_error,
    )


def _schema_order(item: tuple[str, int]) -> int:
    return list(Schema).index(Schema(item[0]))


def message_entries(trace: Trace) -> Iterator[Entry]:
    """The entries of the V2GTP messages of the TCP streams."""
    return (e for e in trace.entries if e.kind is EntryKind.MESSAGE)
