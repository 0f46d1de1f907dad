"""A `Trace` as lines for people, or as JSON objects, one per entry, then a summary.

Text (`text_lines`):

        18.095  EV→EVSE  SDP request                    security=none transport=TCP from=...
        49.523  EV→EVSE  CurrentDemandReq               EVTargetVoltage=468 V SoC=93 % ...
    summary: 570 V2GTP messages, 570 decoded (appHand 2, iso2 568); 0 undecodable; ...

the time in seconds since the capture's first frame, the direction, the message name and the
`iso15118.trace.fields` of the message, or the error. JSON (`json_lines`): one object per entry
with `kind` (message, sdp, connection, stream-error, read-error), time (relative) and timestamp,
frame, direction, connection, payload type, schema, message name, payload (hex), `document` (a
decoded message in the codec's JSON shape; the fields of an SDP message or a connection) and
`error` if any; the last object has `kind` "summary".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

from iso15118.trace.capture import Direction
from iso15118.trace.report import Entry, EntryKind, Summary, Trace

__all__ = ["ARROWS", "ASCII_ARROWS", "json_lines", "summary_line", "text_lines"]

#: Direction column: EV→EVSE, EVSE→EV; a connection involves both.
ARROWS: Final = {Direction.EV_TO_EVSE: "EV→EVSE", Direction.EVSE_TO_EV: "EVSE→EV", None: "EV↔EVSE"}
#: For output streams that cannot encode the arrows.
ASCII_ARROWS: Final = {
    Direction.EV_TO_EVSE: "EV->EVSE",
    Direction.EVSE_TO_EV: "EVSE->EV",
    None: "EV<>EVSE",
}

_NAME_WIDTH: Final = 30  # AC_ChargeParameterDiscoveryReq
_PAYLOAD_SHOWN: Final = 32  # bytes of an undecodable payload shown in hex


def text_lines(trace: Trace, arrows: dict[Direction | None, str] | None = None) -> Iterator[str]:
    """One line per entry, then the summary line."""
    arrows = arrows or ARROWS
    width = max(len(a) for a in arrows.values())
    for entry in trace.entries:
        when = entry.time - trace.start
        fields = " ".join(f"{label}={text}" for label, text in entry.fields)
        if entry.error is not None:
            fields = _error_text(entry, fields)
        both_ways = entry.kind is EntryKind.CONNECTION  # else no direction: a file-level entry
        arrow = arrows[entry.direction] if entry.direction or both_ways else ""
        head = f"{when:10.3f}  {arrow:<{width}}  {entry.name:<{_NAME_WIDTH}}"
        yield f"{head} {fields}".rstrip()
    yield summary_line(trace.summary)


def _error_text(entry: Entry, fields: str) -> str:
    parts = [fields] if fields else []
    if entry.kind is EntryKind.MESSAGE:
        if entry.schema is not None:
            parts.append(f"schema={entry.schema.value}")
        shown = entry.payload[:_PAYLOAD_SHOWN].hex()
        more = "..." if len(entry.payload) > _PAYLOAD_SHOWN else ""
        parts.append(f"payload={shown}{more} ({len(entry.payload)} bytes)")
    parts.append(f"error: {entry.error}")
    return " ".join(parts)


def summary_line(summary: Summary) -> str:
    schemas = ", ".join(f"{name} {count}" for name, count in summary.by_schema.items())
    parts = [
        _count(summary.messages, "V2GTP message")
        + f", {summary.decoded} decoded"
        + (f" ({schemas})" if schemas else ""),
        f"{summary.undecodable} undecodable",
        f"{summary.without_schema} without grammar",
        f"{summary.sdp} SDP",
        _count(summary.connections, "TCP connection"),
    ]
    if summary.tls_connections:
        parts.append(
            f"{summary.tls_connections} TLS (encrypted: {_count(summary.tls_records, 'record')}, "
            f"{summary.tls_bytes} bytes)"
        )
    parts.append(_count(summary.stream_errors, "stream error"))
    if summary.read_error is not None:
        parts.append("capture damaged")
    return f"summary: {'; '.join(parts)}; {_count(summary.errors, 'error')}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def json_lines(trace: Trace) -> Iterator[str]:
    """One JSON object per entry, then the summary object."""
    for entry in trace.entries:
        yield json.dumps(_entry_object(entry, trace.start), ensure_ascii=False)
    yield json.dumps(_summary_object(trace.summary), ensure_ascii=False)


def _entry_object(entry: Entry, start: float) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "kind": entry.kind.value,
        "time": round(entry.time - start, 6),
        "timestamp": entry.time,
        "frame": entry.frame,
        "direction": None if entry.direction is None else entry.direction.value,
        "connection": entry.connection,
        "payload_type": None if entry.payload_type is None else f"0x{entry.payload_type:04X}",
        "schema": None if entry.schema is None else entry.schema.value,
        "message": entry.name,
    }
    if entry.kind is EntryKind.MESSAGE or entry.kind is EntryKind.SDP:
        obj["payload"] = entry.payload.hex()
    obj["document"] = entry.document
    if entry.error is not None:
        obj["error"] = entry.error
    return obj


def _summary_object(summary: Summary) -> dict[str, Any]:
    return {
        "kind": "summary",
        "messages": summary.messages,
        "decoded": summary.decoded,
        "by_schema": dict(summary.by_schema),
        "undecodable": summary.undecodable,
        "without_schema": summary.without_schema,
        "sdp": summary.sdp,
        "connections": summary.connections,
        "tls_connections": summary.tls_connections,
        "tls_records": summary.tls_records,
        "tls_bytes": summary.tls_bytes,
        "stream_errors": summary.stream_errors,
        "read_error": summary.read_error,
        "errors": summary.errors,
    }
