"""scapy layers for V2GTP and SDP, for reading captures with scapy's own tools.

    from scapy.utils import rdpcap
    from iso15118.trace.layers import SDPResponse, V2GTP, read_v2g, v2g_bindings

    packets = read_v2g("session.pcapng")      # SDP over UDP and the announced TCP ports
    with v2g_bindings():                       # or bind only UDP 15118, for a block of code
        packets = rdpcap("session.pcapng")

The headers are declared as field tables, as the standards draw them:

* `V2GTP`: version, inverse version, payload type, payload length (ISO 15118-2:2014 §7.8.3,
  ISO 15118-20:2022 Tables 12-14); the payload type names every `iso15118.v2gtp.PayloadType`,
  and building fills in the inverse version and the payload length.
* `SDPRequest` (0x9000, 2 bytes, [V2G20-141]): security, transport protocol; `SDPResponse`
  (0x9001, 20 bytes, [V2G20-153]): SECC IPv6 address, SECC port, security, transport protocol
  (ISO 15118-2:2014 and ISO 15118-20:2022 §7.10.1; the byte values in ISO 15118-20 Table 21).
  The WLAN variants of ISO 15118-20 (0x9002/0x9003, 62 and 59 bytes) stay raw bytes.

**Bindings are scoped.** scapy's `bind_layers` changes class attributes that every dissection in
the process reads. Here V2GTP is bound to UDP and TCP only inside `v2g_bindings(...)`, which
restores the previous bindings on exit and holds a lock meanwhile (two threads cannot bind
different ports at once), so the ports of one capture never leak into the next. Packets dissected
inside the block keep their layers afterwards. Bindings that other code makes on UDP or TCP
inside the block are undone with it. The V2GTP → SDP bindings are made at import time:
they concern only the classes defined here.

V2GTP is bound to UDP port 15118 (SDP, either direction) and to the TCP ports that SDP responses
announce: the SECC listens on a port it chooses, not on a fixed one.
A TCP segment that does not start with the V2GTP synchronisation pattern (the middle of a long
message, a TLS record) stays `Raw`. scapy dissects packet by packet: bytes after the first V2GTP
message of a segment become `Padding`. Use `iso15118.trace.parse_capture` for TCP reassembly.

scapy is imported when this module is; `import iso15118.trace` does not import this module.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, ClassVar, Final

import scapy.layers.inet6  # noqa: F401  (registers IPv6 with the link layers)
from scapy.config import conf
from scapy.fields import (
    ByteEnumField,
    IP6Field,
    LenField,
    ShortField,
    XByteField,
    XShortEnumField,
)
from scapy.layers.inet import TCP, UDP
from scapy.packet import Packet, bind_layers, bind_top_down
from scapy.plist import PacketList
from scapy.utils import rdpcap

from iso15118.v2gtp import INVERSE_PROTOCOL_VERSION, PROTOCOL_VERSION, PayloadType

__all__ = [
    "PAYLOAD_TYPES",
    "SDP_PORT",
    "SDP_SECURITY",
    "SDP_TRANSPORT",
    "V2GTP",
    "SDPRequest",
    "SDPResponse",
    "announced_ports",
    "read_v2g",
    "sdp_fields",
    "v2g_bindings",
]

#: V2G_UDP_SDP_SERVER, the SDP server's UDP port (ISO 15118-20 Table 20, [V2G20-149]).
SDP_PORT: Final = 15118
#: V2GTP payload type → name, for every type the standards define.
PAYLOAD_TYPES: Final[dict[int, str]] = {t.value: t.name for t in PayloadType}
#: SDP security byte (ISO 15118-20 Table 21, [V2G20-623]); other values are reserved.
SDP_SECURITY: Final[dict[int, str]] = {0x00: "TLS", 0x10: "none"}
#: SDP transport protocol byte (Table 21, [V2G20-624]; 0x10 is "reserved for UDP").
SDP_TRANSPORT: Final[dict[int, str]] = {0x00: "TCP", 0x10: "UDP"}

_SYNC_PATTERN: Final = bytes([PROTOCOL_VERSION, INVERSE_PROTOCOL_VERSION])


class V2GTP(Packet):
    """The 8-byte V2GTP header; its payload is `payload_length` bytes long."""

    name = "V2GTP"
    fields_desc: ClassVar[list[Any]] = [
        XByteField("version", PROTOCOL_VERSION),
        XByteField("inverse_version", None),  # None: version XOR 0xFF
        XShortEnumField("payload_type", PayloadType.SAP.value, PAYLOAD_TYPES),
        LenField("payload_length", None, fmt="I"),  # None: length of the payload
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kwargs: Any) -> type[Any]:
        """As the payload of another layer, dissect as V2GTP only what starts with the
        synchronisation pattern 0x01 0xFE (`V2GTP(data)` always dissects)."""
        below = kwargs.get("_underlayer")
        if below is not None and _pkt is not None and _pkt[:2] != _SYNC_PATTERN[: len(_pkt)]:
            return conf.raw_layer
        return cls

    def post_build(self, packet: bytes, payload: bytes) -> bytes:
        if self.inverse_version is None:
            packet = packet[:1] + bytes([packet[0] ^ 0xFF]) + packet[2:]
        return packet + payload

    def extract_padding(self, data: bytes) -> tuple[bytes, bytes]:
        return data[: self.payload_length], data[self.payload_length :]


class SDPRequest(Packet):
    """SDP request (payload type 0x9000), sent by the EV to UDP port 15118."""

    name = "SDP request"
    fields_desc: ClassVar[list[Any]] = [
        ByteEnumField("security", 0x10, SDP_SECURITY),
        ByteEnumField("transport", 0x00, SDP_TRANSPORT),
    ]


class SDPResponse(Packet):
    """SDP response (payload type 0x9001): where the SECC listens, and how."""

    name = "SDP response"
    fields_desc: ClassVar[list[Any]] = [
        IP6Field("address", "::"),
        ShortField("port", 0),
        ByteEnumField("security", 0x10, SDP_SECURITY),
        ByteEnumField("transport", 0x00, SDP_TRANSPORT),
    ]


bind_layers(V2GTP, SDPRequest, payload_type=PayloadType.SDP_REQUEST.value)
bind_layers(V2GTP, SDPResponse, payload_type=PayloadType.SDP_RESPONSE.value)

_SDP_LAYERS: Final[dict[PayloadType, type[Any]]] = {
    PayloadType.SDP_REQUEST: SDPRequest,
    PayloadType.SDP_RESPONSE: SDPResponse,
}


def sdp_fields(payload_type: PayloadType, payload: bytes) -> dict[str, str | int]:
    """The fields of an SDP message body (without the V2GTP header), enumerations by name.

    Raises `ValueError` for a payload type without a layer here or a body of the wrong length.
    """
    layer = _SDP_LAYERS.get(payload_type)
    if layer is None:
        raise ValueError(f"no SDP layer for payload type 0x{payload_type:04X}")
    size = len(layer())
    if len(payload) != size:
        raise ValueError(f"{layer.name} of {len(payload)} bytes, expected {size}")
    packet = layer(payload)
    fields: dict[str, str | int] = {}
    for field in packet.fields_desc:
        value = packet.getfieldval(field.name)
        names = getattr(field, "i2s", None)
        fields[field.name] = names.get(value, f"0x{value:02X}") if names else value
    return fields


# --------------------------------------------------------------------------- bindings

_LOCK: Final = threading.RLock()
_MISSING: Final = object()


@contextmanager
def v2g_bindings(tcp_ports: Iterable[int] = ()) -> Iterator[None]:
    """Within the block, scapy dissects UDP port 15118 and the given TCP ports as V2GTP.

    The bindings in force before the block are restored when it ends, even on error.
    """
    ports = sorted(set(tcp_ports))
    with _LOCK:
        saved = [(owner, name, owner.__dict__.get(name, _MISSING)) for owner, name in _STATE]
        try:
            # First in the lists, so that a port scapy binds elsewhere yields to V2GTP here.
            _bind_first(UDP, {"sport": SDP_PORT}, {"dport": SDP_PORT})
            _bind_first(TCP, *({key: port} for port in ports for key in ("sport", "dport")))
            bind_top_down(UDP, V2GTP, dport=SDP_PORT)  # building: UDP()/V2GTP() goes to 15118
            yield
        finally:
            for owner, name, value in saved:
                if value is _MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, value)


#: The class attributes that the bindings change (scapy replaces them rather than mutating).
_STATE: Final = ((UDP, "payload_guess"), (TCP, "payload_guess"), (V2GTP, "_overload_fields"))


def _bind_first(lower: Any, *conditions: dict[str, int]) -> None:
    """Like scapy's `bind_bottom_up`, but ahead of the existing bindings of `lower`."""
    lower.payload_guess = [(c, V2GTP) for c in conditions] + list(lower.payload_guess)


def announced_ports(packets: Iterable[Any]) -> frozenset[int]:
    """The TCP ports announced by the SDP responses among dissected packets."""
    return frozenset(int(p[SDPResponse].port) for p in packets if p.haslayer(SDPResponse))


def read_v2g(path: str | os.PathLike[str]) -> PacketList:
    """A capture file read with `rdpcap`, V2GTP dissected on UDP 15118 and on the TCP ports
    that the capture's own SDP responses announce (and only on those)."""
    with v2g_bindings():
        packets = rdpcap(os.fspath(path))
    ports = announced_ports(packets)
    if not ports:
        return packets
    with v2g_bindings(ports):
        return PacketList(
            [_redissect(p) if _on_ports(p, ports) else p for p in packets], name=packets.listname
        )


def _on_ports(packet: Any, ports: frozenset[int]) -> bool:
    tcp = packet.getlayer(TCP)
    return tcp is not None and (tcp.sport in ports or tcp.dport in ports)


def _redissect(packet: Any) -> Any:
    fresh = type(packet)(packet.original)
    for name in _CAPTURE_ATTRIBUTES:
        with suppress(AttributeError):  # not in every scapy version
            setattr(fresh, name, getattr(packet, name))
    return fresh


#: What rdpcap records about a packet besides its bytes.
_CAPTURE_ATTRIBUTES: Final = ("time", "wirelen", "sniffed_on", "comments", "comment")
