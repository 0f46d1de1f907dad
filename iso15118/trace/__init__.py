"""V2G traffic from packet captures (reading a capture needs the optional `scapy` dependency).

`read_capture(path)` returns the V2GTP messages of a .pcap/.pcapng/.dump file, each tagged with
the EXI schema that decodes it; `parse_capture(path)` adds the connections, the SDP datagrams and
the stream errors. `build_trace(capture)` decodes everything for `iso15118 trace` (rendered by
`iso15118.trace.render`). The scapy layers for V2GTP and SDP are in `iso15118.trace.layers`,
which this package does not import (importing it imports scapy).
"""

from iso15118.trace.capture import (
    Capture,
    CapturedMessage,
    Connection,
    Datagram,
    Direction,
    DirectionSource,
    StreamError,
    StreamKind,
    assign_schemas,
    parse_capture,
    read_capture,
)
from iso15118.trace.report import Entry, EntryKind, Summary, Trace, build_trace
from iso15118.trace.schemas import (
    HandshakeDecoder,
    Schema,
    SchemaSource,
    decode_handshake_with_codec,
)

__all__ = [
    "Capture",
    "CapturedMessage",
    "Connection",
    "Datagram",
    "Direction",
    "DirectionSource",
    "Entry",
    "EntryKind",
    "HandshakeDecoder",
    "Schema",
    "SchemaSource",
    "StreamError",
    "StreamKind",
    "Summary",
    "Trace",
    "assign_schemas",
    "build_trace",
    "decode_handshake_with_codec",
    "parse_capture",
    "read_capture",
]
