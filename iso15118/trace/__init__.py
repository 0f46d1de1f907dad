"""V2G traffic from packet captures (reading a capture needs the optional `scapy` dependency).

`read_capture(path)` returns the V2GTP messages of a .pcap/.pcapng/.dump file, each tagged with
the EXI schema that decodes it; `parse_capture(path)` adds the connections and stream errors.
"""

from iso15118.trace.capture import (
    Capture,
    CapturedMessage,
    Connection,
    Direction,
    DirectionSource,
    StreamError,
    StreamKind,
    assign_schemas,
    parse_capture,
    read_capture,
)
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
    "Direction",
    "DirectionSource",
    "HandshakeDecoder",
    "Schema",
    "SchemaSource",
    "StreamError",
    "StreamKind",
    "assign_schemas",
    "decode_handshake_with_codec",
    "parse_capture",
    "read_capture",
]
