"""Read a capture file: its TCP segments and its V2GTP datagrams (SDP over UDP).

The only part of the trace reader that uses scapy (imported on first use): scapy dissects the
link, IP and transport layers; everything above them (TCP reassembly, V2GTP framing) is ours.
Frames without TCP or UDP over IPv6/IPv4 are skipped; UDP datagrams are kept only if they hold a
valid V2GTP header (which SDP messages do, ISO 15118-2 §7.10.1).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import struct
from dataclasses import dataclass
from typing import Any

from iso15118.v2gtp import HEADER_LENGTH, PayloadType, V2GTPError, V2GTPHeader

__all__ = ["Datagram", "Endpoint", "Frames", "IPAddress", "Segment", "read_frames"]

_log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: An (address, port) pair.
Endpoint = tuple[IPAddress, int]


@dataclass(frozen=True, slots=True)
class Segment:
    """One captured TCP segment (possibly empty, e.g. a pure ACK or a SYN)."""

    frame: int  # 1-based frame number in the capture file
    time: float
    src: Endpoint
    dst: Endpoint
    seq: int
    flags: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Datagram:
    """One V2GTP message carried over UDP (in practice SDP), payload without the header."""

    frame: int
    time: float
    src: Endpoint
    dst: Endpoint
    payload_type: PayloadType
    payload: bytes  # cut at the header's payload length (shorter if the datagram is)


@dataclass(frozen=True, slots=True)
class Frames:
    """What a capture file holds for the trace reader."""

    segments: tuple[Segment, ...]
    datagrams: tuple[Datagram, ...]
    first_time: float | None  # capture time of the first frame (of any kind); None if empty
    #: Why reading stopped before the end of the file (a damaged or truncated capture), if it
    #: did; everything before that point is in `segments` and `datagrams`.
    read_error: str | None = None


def read_frames(path: str | os.PathLike[str]) -> Frames:
    """The TCP segments and V2GTP datagrams of a .pcap, .pcapng or .dump (libpcap) file.

    A file that cannot be opened or is not a capture raises (`OSError`, or scapy's
    `Scapy_Exception`); damage after the file header ends the reading with `read_error` set.
    """
    from scapy.error import Scapy_Exception
    from scapy.utils import PcapReader

    reader = _FrameReader()
    with PcapReader(os.fspath(path)) as packets:
        frame = 0
        try:
            for frame, packet in enumerate(packets, start=1):
                reader.add(frame, packet)
        except (EOFError, ValueError, struct.error, OSError, Scapy_Exception) as exc:
            detail = str(exc) or type(exc).__name__
            error = f"capture unreadable after frame {frame}: {detail}"
            _log.debug("%s: %s", path, error)
            return reader.build(error)
    return reader.build(None)


class _FrameReader:
    """Collects segments and datagrams from dissected scapy packets."""

    def __init__(self) -> None:
        from scapy.layers.inet import IP, TCP, UDP
        from scapy.layers.inet6 import IPv6

        self._ip_types = (IPv6, IP)
        self._tcp, self._udp = TCP, UDP
        self._addresses: dict[str, IPAddress] = {}
        self.first_time: float | None = None
        self.segments: list[Segment] = []
        self.datagrams: list[Datagram] = []

    def build(self, read_error: str | None) -> Frames:
        return Frames(tuple(self.segments), tuple(self.datagrams), self.first_time, read_error)

    def _address(self, text: str) -> IPAddress:
        found = self._addresses.get(text)
        if found is None:
            found = self._addresses[text] = ipaddress.ip_address(text)
        return found

    def add(self, frame: int, packet: Any) -> None:
        when = float(packet.time)
        if self.first_time is None:
            self.first_time = when
        transport = packet.getlayer(self._tcp)
        if transport is None:
            transport = packet.getlayer(self._udp)
            if transport is None:
                return
        ip = transport.underlayer  # IPv6 or IPv4, possibly behind extension headers
        while ip is not None and not isinstance(ip, self._ip_types):
            ip = ip.underlayer
        if ip is None:
            return
        src = (self._address(ip.src), int(transport.sport))
        dst = (self._address(ip.dst), int(transport.dport))
        payload = _transport_payload(transport.payload)
        if isinstance(transport, self._udp):
            self._add_datagram(frame, when, src, dst, payload)
            return
        segment = Segment(frame, when, src, dst, int(transport.seq), int(transport.flags), payload)
        self.segments.append(segment)

    def _add_datagram(
        self, frame: int, when: float, src: Endpoint, dst: Endpoint, data: bytes
    ) -> None:
        try:
            header = V2GTPHeader.unpack(data)
        except (ValueError, V2GTPError):
            return
        body = data[HEADER_LENGTH : HEADER_LENGTH + header.payload_length]
        self.datagrams.append(Datagram(frame, when, src, dst, header.payload_type, body))


def _transport_payload(data: Any) -> bytes:
    """The bytes above TCP or UDP, without link-layer padding."""
    from scapy.packet import NoPayload, Padding, Raw

    if isinstance(data, NoPayload | Padding):  # (Padding is a subclass of Raw)
        return b""
    if isinstance(data, Raw):  # the usual case; trailing padding is a separate layer
        return bytes(data.load)
    # Some scapy layer is bound to this port (e.g. iso15118.trace.layers): the bytes it was
    # dissected from are exactly the transport payload, however that layer splits them.
    return bytes(data.original)
