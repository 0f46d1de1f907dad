"""V2GTP framing (iso15118.v2gtp) and V2G extraction from packet captures (iso15118.trace).

Three layers: the reassembler and header on hand-made bytes; TCP reassembly, orientation and
schema selection on hand-made segments with a fake handshake decoder; and the whole corpus of
real captures (marked slow) against its MANIFEST.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from corpus import (
    PCAP_DIR,
    ManifestEntry,
    corpus_messages,
    handshake_vectors,
    iter_corpus_payloads,
    load_captures,
    manifest_entries,
)
from hypothesis import given
from hypothesis import strategies as st

from iso15118.trace.capture import (
    Capture,
    CapturedMessage,
    Direction,
    DirectionSource,
    Discovery,
    Endpoint,
    Segment,
    StreamKind,
    assign_schemas,
    extract_messages,
    parse_capture,
    read_capture,
)
from iso15118.trace.schemas import (
    AppProtocol,
    HandshakeRequest,
    HandshakeResponse,
    SchemaSource,
    decode_handshake_with_codec,
    handshake_from_json,
    negotiate,
)
from iso15118.v2gtp import (
    HEADER,
    HEADER_LENGTH,
    BadVersionError,
    OversizePayloadError,
    PayloadType,
    UnknownPayloadTypeError,
    V2GTPError,
    V2GTPHeader,
    V2GTPMessage,
    V2GTPReassembler,
)

DIN_NS = "urn:din:70121:2012:MsgDef"
ISO2_NS = "urn:iso:15118:2:2013:MsgDef"
TESLA_NS = "urn:tesla:din:2018:MsgDef"
ISO20_DC_NS = "urn:iso:std:iso:15118:-20:DC"


def frame(payload_type: int, payload: bytes) -> bytes:
    return HEADER.pack(0x01, 0xFE, payload_type, len(payload)) + payload


# --------------------------------------------------------------------------- V2GTP header


def test_header_layout_is_8_bytes_big_endian() -> None:
    assert HEADER_LENGTH == 8
    header = V2GTPHeader(PayloadType.SAP, 0x01020304)
    assert header.pack() == bytes.fromhex("01fe800101020304")
    assert V2GTPHeader.unpack(header.pack(), max_payload_length=2**32 - 1) == header


def test_payload_types_are_those_of_the_standards() -> None:
    assert {t.value for t in PayloadType} == {
        0x8001, 0x8002, 0x8003, 0x8004, 0x8005, 0x8006,
        0x8101, 0x8102, 0x8103, 0x8104,
        0x9000, 0x9001, 0x9002, 0x9003,
    }  # fmt: skip
    assert [t for t in PayloadType if t.is_exi] == [t for t in PayloadType if t < 0x9000]


def test_header_checks_version_before_type_before_length() -> None:
    with pytest.raises(BadVersionError):
        V2GTPHeader.unpack(HEADER.pack(0x02, 0xFE, 0x1234, 2**32 - 1))
    with pytest.raises(UnknownPayloadTypeError):
        V2GTPHeader.unpack(HEADER.pack(0x01, 0xFE, 0x1234, 2**32 - 1))
    with pytest.raises(ValueError):
        V2GTPHeader.unpack(b"\x01\xfe\x80\x01")


# --------------------------------------------------------------------------- reassembler

TWO_MESSAGES = frame(0x8001, bytes.fromhex("809a0211")) + frame(0x8002, bytes(range(40)))
EXPECTED = [
    V2GTPMessage(PayloadType.SAP, bytes.fromhex("809a0211")),
    V2GTPMessage(PayloadType.MAINSTREAM, bytes(range(40))),
]


@pytest.mark.parametrize("cut", range(len(TWO_MESSAGES) + 1))
def test_reassembler_split_at_every_byte_boundary(cut: int) -> None:
    reassembler = V2GTPReassembler()
    messages = reassembler.feed(TWO_MESSAGES[:cut]) + reassembler.feed(TWO_MESSAGES[cut:])
    assert messages == EXPECTED
    assert reassembler.buffered == 0


def test_reassembler_byte_by_byte() -> None:
    reassembler = V2GTPReassembler()
    messages = [m for byte in TWO_MESSAGES for m in reassembler.feed(bytes([byte]))]
    assert messages == EXPECTED


@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
)
def test_reassembler_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(0x8001, p) for p in payloads)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    reassembler = V2GTPReassembler()
    messages = [m for a, b in itertools.pairwise(bounds) for m in reassembler.feed(stream[a:b])]
    assert [m.payload for m in messages] == payloads
    assert b"".join(m.pack() for m in messages) == stream


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (HEADER.pack(0x02, 0xFE, 0x8001, 4), BadVersionError),  # bad version
        (HEADER.pack(0x01, 0xFF, 0x8001, 4), BadVersionError),  # bad inverse version
        (HEADER.pack(0x01, 0xFE, 0x8100, 4), UnknownPayloadTypeError),  # reserved type
        (HEADER.pack(0x01, 0xFE, 0xA000, 4), UnknownPayloadTypeError),  # manufacturer type
        (HEADER.pack(0x01, 0xFE, 0x8001, 1025), OversizePayloadError),  # over the limit
    ],
)
def test_reassembler_rejects_bad_header(header: bytes, error: type[V2GTPError]) -> None:
    reassembler = V2GTPReassembler(max_payload_length=1024)
    good = frame(0x8001, b"\x80\x9a")
    with pytest.raises(error) as raised:
        reassembler.feed(good + header + b"\x00" * 4)
    assert raised.value.messages == (V2GTPMessage(PayloadType.SAP, b"\x80\x9a"),)
    assert reassembler.buffered == 0  # the lost framing is discarded ...
    assert reassembler.feed(good) == [V2GTPMessage(PayloadType.SAP, b"\x80\x9a")]  # ... resync


def test_reassembler_accepts_payload_at_the_limit() -> None:
    reassembler = V2GTPReassembler(max_payload_length=16)
    assert reassembler.feed(frame(0x8001, bytes(16)))[0].payload == bytes(16)


@pytest.mark.parametrize("module", ["iso15118.v2gtp", "iso15118.trace"])
def test_importing_is_sans_io(module: str) -> None:
    """No I/O modules at import time (the trace package loads scapy only to read a file)."""
    code = (
        f"import sys; before = set(sys.modules); import {module}; "
        "print(sorted({'asyncio', 'socket', 'ssl', 'time', 'scapy'} & (set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- TCP extraction

EV: Endpoint = (ipaddress.IPv6Address("fe80::1"), 50000)
EVSE: Endpoint = (ipaddress.IPv6Address("fe80::2"), 61000)
SYN, SYN_ACK, ACK, PSH_ACK = 0x02, 0x12, 0x10, 0x18
REQ = frame(0x8001, bytes.fromhex("809a021000"))
RES = frame(0x8001, bytes.fromhex("809a02110000"))


class Wire:
    """Builds the segments of one TCP connection as a capture would show them."""

    def __init__(self, ev_isn: int = 1000, evse_isn: int = 5000) -> None:
        self.segments: list[Segment] = []
        self.next = {EV: ev_isn, EVSE: evse_isn}

    def add(
        self, src: Endpoint, data: bytes = b"", flags: int = PSH_ACK, seq: int | None = None
    ) -> None:
        dst = EVSE if src == EV else EV
        seq = self.next[src] if seq is None else seq
        n = len(self.segments) + 1
        self.segments.append(Segment(n, float(n), src, dst, seq % 2**32, flags, data))
        self.next[src] = (seq + len(data) + (1 if flags & SYN else 0)) % 2**32

    def handshake(self) -> Wire:
        self.add(EV, flags=SYN)
        self.add(EVSE, flags=SYN_ACK)
        self.add(EV, flags=ACK)
        return self

    def extract(self, discovery: Discovery | None = None) -> Capture:
        return extract_messages(self.segments, discovery or Discovery())


def payloads(capture: Capture) -> list[tuple[Direction, bytes]]:
    return [(m.direction, m.payload) for m in capture.messages]


def test_simple_exchange_with_syn() -> None:
    wire = Wire().handshake()
    wire.add(EV, REQ)
    wire.add(EVSE, RES)
    capture = wire.extract()
    assert payloads(capture) == [
        (Direction.EV_TO_EVSE, REQ[8:]),
        (Direction.EVSE_TO_EV, RES[8:]),
    ]
    (connection,) = capture.connections
    assert (connection.ev, connection.evse) == (EV, EVSE)
    assert connection.direction_source is DirectionSource.SYN
    assert connection.kind is StreamKind.V2GTP
    assert capture.errors == ()
    assert [m.frame for m in capture.messages] == [4, 5]


def test_retransmission_and_duplicate_are_dropped() -> None:
    wire = Wire().handshake()
    wire.add(EV, REQ)
    wire.add(EV, REQ, seq=1001)  # retransmission
    wire.add(EV, REQ[:10], seq=1001)  # partial retransmission
    wire.add(EVSE, RES)
    assert payloads(wire.extract()) == [
        (Direction.EV_TO_EVSE, REQ[8:]),
        (Direction.EVSE_TO_EV, RES[8:]),
    ]


def test_overlapping_and_out_of_order_segments() -> None:
    stream = REQ + REQ + REQ
    wire = Wire().handshake()
    wire.add(EV, stream[20:], seq=1001 + 20)  # arrives first
    wire.add(EV, stream[:12], seq=1001)
    wire.add(EV, stream[5:25], seq=1001 + 5)  # overlaps both
    capture = wire.extract()
    assert [m.payload for m in capture.messages] == [REQ[8:]] * 3
    assert capture.errors == ()
    # a message is stamped with the time of the latest segment that carries part of it
    assert [m.time for m in capture.messages] == [6.0, 6.0, 6.0]


def test_several_messages_in_one_segment_and_one_message_in_several() -> None:
    wire = Wire().handshake()
    wire.add(EV, REQ + REQ + RES[:3])
    wire.add(EV, RES[3:9])
    wire.add(EV, RES[9:])
    capture = wire.extract()
    assert [m.payload for m in capture.messages] == [REQ[8:], REQ[8:], RES[8:]]
    assert [m.frame for m in capture.messages] == [4, 4, 6]


def test_capture_starting_mid_stream_resyncs_at_a_segment_with_a_header() -> None:
    wire = Wire()  # no SYN seen
    wire.add(EVSE, RES[5:])  # tail of a message whose start was not captured
    wire.add(EV, REQ)
    wire.add(EVSE, RES)
    capture = wire.extract()
    assert payloads(capture) == [
        (Direction.EV_TO_EVSE, REQ[8:]),
        (Direction.EVSE_TO_EV, RES[8:]),
    ]
    assert capture.errors == ()  # nothing was lost after the stream was first in sync
    assert capture.connections[0].direction_source is DirectionSource.FIRST_MESSAGE


def test_sequence_number_wraparound_and_header_split_over_segments() -> None:
    wire = Wire(ev_isn=2**32 - 12).handshake()
    wire.add(EV, REQ[:6])
    wire.add(EV, REQ[6:] + REQ)
    assert [m.payload for m in wire.extract().messages] == [REQ[8:]] * 2


def test_out_of_sync_header_split_over_segments() -> None:
    wire = Wire()
    wire.add(EV, b"\x01")
    wire.add(EV, REQ[1:5])
    wire.add(EV, REQ[5:])
    capture = wire.extract()
    assert [m.payload for m in capture.messages] == [REQ[8:]]
    assert capture.messages[0].frame == 3


def test_segment_missing_from_capture_is_an_error_and_extraction_resyncs() -> None:
    wire = Wire().handshake()
    wire.add(EV, REQ)
    wire.add(EV, REQ[:7])
    wire.next[EV] += 20  # the rest of that message and the next one were not captured
    wire.add(EV, REQ[10:])
    wire.add(EV, REQ)
    capture = wire.extract()
    assert [m.payload for m in capture.messages] == [REQ[8:], REQ[8:]]
    (error,) = capture.errors
    assert (error.frame, error.direction) == (6, Direction.EV_TO_EVSE)
    assert "20 bytes missing" in error.reason


def test_bad_header_is_an_error_and_extraction_resyncs() -> None:
    wire = Wire().handshake()
    wire.add(EV, REQ + b"\x02\xfd\x80\x01\x00\x00\x00\x02xx")
    wire.add(EV, b"garbage without a header")
    wire.add(EV, REQ)
    capture = wire.extract()
    assert [m.payload for m in capture.messages] == [REQ[8:], REQ[8:]]
    (error,) = capture.errors
    assert error.frame == 4 and "version" in error.reason


def test_stream_ending_inside_a_message_is_an_error() -> None:
    wire = Wire().handshake()
    wire.add(EV, REQ + RES[:10])
    capture = wire.extract()
    assert [m.payload for m in capture.messages] == [REQ[8:]]
    assert "ends inside" in capture.errors[0].reason


def test_tls_stream_is_skipped() -> None:
    wire = Wire().handshake()
    wire.add(EV, bytes.fromhex("160303007a") + bytes(122))
    wire.add(EVSE, bytes.fromhex("1603030059") + bytes(89))
    capture = wire.extract()
    assert capture.messages == ()
    assert capture.connections[0].kind is StreamKind.TLS


def test_sdp_response_decides_orientation_over_a_missing_syn() -> None:
    wire = Wire()
    wire.add(EVSE, RES)  # first message seen comes from the EVSE
    wire.add(EV, REQ)
    discovery = Discovery(evse_endpoints=frozenset({EVSE}))
    capture = wire.extract(discovery)
    assert payloads(capture)[0] == (Direction.EVSE_TO_EV, RES[8:])
    assert capture.connections[0].direction_source is DirectionSource.SDP
    by_address = Discovery(ev_addresses=frozenset({EV[0]}))
    assert wire.extract(by_address).connections[0].direction_source is DirectionSource.SDP_ADDRESS
    assert payloads(wire.extract(by_address))[0] == (Direction.EVSE_TO_EV, RES[8:])


def test_new_syn_on_the_same_ports_is_a_new_connection() -> None:
    wire = Wire().handshake()
    wire.add(EV, REQ)
    wire.next = {EV: 90000, EVSE: 70000}
    wire.handshake()
    wire.add(EV, REQ)
    capture = wire.extract()
    assert [m.connection for m in capture.messages] == [0, 1]


# --------------------------------------------------------------------------- capture files


@pytest.mark.parametrize("suffix", [".pcap", ".pcapng", ".dump"])
def test_read_capture_file(tmp_path: Path, suffix: str) -> None:
    """scapy reads the file; SDP orients the connection; VLAN, IPv6 extension headers,
    Ethernet padding and non-IP frames are handled."""
    scapy_utils = pytest.importorskip("scapy.utils")
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.packet import Raw

    ev, evse = ("fe80::1", 50000), ("fe80::2", 61000)

    def eth(ether_type: int | None = None) -> Ether:  # explicit MACs: no address resolution
        ether = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        if ether_type is not None:
            ether.type = ether_type
        return ether

    sdp_response = frame(0x9001, ipaddress.IPv6Address(evse[0]).packed + b"\xee\x48\x10\x00")
    evse_seq, ev_seq = 7000, 3000
    packets = [
        eth(0x88E1) / Raw(b"\x01\x60\x00" + bytes(43)),  # HomePlug, not IP
        eth()
        / IPv6(src=ev[0], dst="ff02::1")
        / UDP(sport=50001, dport=15118)
        / Raw(frame(0x9000, b"\x10\x00")),
        eth() / IPv6(src=evse[0], dst=ev[0]) / UDP(sport=15118, dport=50001) / Raw(sdp_response),
        # the capture misses the SYN; the EVSE's answer is the first V2GTP message seen
        eth()
        / Dot1Q(vlan=3)
        / IPv6(src=evse[0], dst=ev[0])
        / TCP(sport=evse[1], dport=ev[1], seq=evse_seq, flags="PA")
        / Raw(RES),
        eth()
        / IPv6(src=ev[0], dst=evse[0])
        / IPv6ExtHdrHopByHop()
        / TCP(sport=ev[1], dport=evse[1], seq=ev_seq, flags="PA")
        / Raw(REQ),
        Ether(bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="A")) + bytes(6)),
    ]
    for number, packet in enumerate(packets):
        packet.time = 100.0 + number
    path = tmp_path / f"session{suffix}"
    if suffix == ".pcapng":
        scapy_utils.wrpcapng(str(path), packets)
    else:
        scapy_utils.wrpcap(str(path), packets)
    messages = read_capture(path, fake_decoder)
    assert [(m.direction, m.payload, m.frame, m.time) for m in messages] == [
        (Direction.EVSE_TO_EV, RES[8:], 4, 103.0),
        (Direction.EV_TO_EVSE, REQ[8:], 5, 104.0),
    ]
    assert {(m.schema, m.schema_source) for m in messages} == {
        ("din", SchemaSource.PAYLOAD_SIGNATURE)
    }
    capture = parse_capture(path)
    assert capture.connections[0].direction_source is DirectionSource.SDP
    assert capture.discovery.ev_addresses == {ipaddress.IPv6Address(ev[0])}
    assert len(capture.connections) == 1  # the IPv4 connection carried no data


# --------------------------------------------------------------------------- schemas

HANDSHAKES: dict[bytes, HandshakeRequest | HandshakeResponse] = {}


def handshake(message: HandshakeRequest | HandshakeResponse) -> bytes:
    """A made-up appHand payload that `fake_decoder` maps back to `message`."""
    second = 0x00 if isinstance(message, HandshakeRequest) else 0x40
    payload = bytes([0x80, second, len(HANDSHAKES)])
    HANDSHAKES[payload] = message
    return payload


def fake_decoder(payload: bytes) -> HandshakeRequest | HandshakeResponse | None:
    return HANDSHAKES.get(payload)


def offer(*entries: tuple[str, int]) -> HandshakeRequest:
    return HandshakeRequest(
        tuple(AppProtocol(ns, 2, 0, schema_id, i + 1) for i, (ns, schema_id) in enumerate(entries))
    )


def msg(payload: bytes, payload_type: int = 0x8001, connection: int = 0) -> CapturedMessage:
    direction = Direction.EV_TO_EVSE if payload[:2] != b"\x80\x40" else Direction.EVSE_TO_EV
    return CapturedMessage(0.0, connection, direction, PayloadType(payload_type), payload)


def schemas(messages: list[CapturedMessage]) -> list[tuple[str | None, str | None]]:
    result = assign_schemas(messages, fake_decoder)
    return [(m.schema, m.schema_source) for m in result]


HS, SIG = SchemaSource.HANDSHAKE, SchemaSource.PAYLOAD_SIGNATURE
DIN_MSG, ISO2_MSG = b"\x80\x9a\x02\x00", b"\x80\x98\x02\x00"


def test_negotiated_namespace_is_the_offer_with_the_response_schema_id() -> None:
    request = handshake(offer((ISO2_NS, 10), (DIN_NS, 20), (TESLA_NS, 30)))
    response = handshake(HandshakeResponse("OK_SuccessfulNegotiation", 20))
    messages = [msg(request), msg(response), msg(DIN_MSG), msg(DIN_MSG)]
    assert schemas(messages) == [("appHand", HS), ("appHand", HS), ("din", HS), ("din", HS)]


def test_vendor_namespace_gives_no_schema() -> None:
    request = handshake(offer((TESLA_NS, 1), (DIN_NS, 2)))
    response = handshake(HandshakeResponse("OK_SuccessfulNegotiation", 1))
    assert schemas([msg(request), msg(response), msg(DIN_MSG)])[2] == (None, HS)


def test_failed_negotiation_gives_no_schema() -> None:
    request = handshake(offer((ISO2_NS, 1)))
    response = handshake(HandshakeResponse("Failed_NoNegotiation"))
    assert schemas([msg(request), msg(response), msg(ISO2_MSG)])[2] == (None, HS)


def test_iso20_payload_type_picks_the_grammar() -> None:
    request = handshake(offer((DIN_NS, 1), (ISO20_DC_NS, 2)))
    response = handshake(HandshakeResponse("OK_SuccessfulNegotiation", 2))
    messages = [msg(request), msg(response), msg(b"\x80\x8c", 0x8002), msg(b"\x80\x04", 0x8004)]
    assert [s for s, _ in schemas(messages)] == ["appHand", "appHand", "iso20-common", "iso20-dc"]


def test_without_handshake_the_payload_signature_decides() -> None:
    messages = [
        msg(DIN_MSG),
        msg(ISO2_MSG, connection=1),
        msg(b"\x80\x04", 0x8004, connection=2),
        msg(b"\x80\x11", connection=3),
    ]
    assert schemas(messages) == [("din", SIG), ("iso2", SIG), ("iso20-dc", SIG), (None, SIG)]


def test_connections_negotiate_independently() -> None:
    request = handshake(offer((DIN_NS, 1), (ISO2_NS, 2)))
    iso2 = handshake(HandshakeResponse("OK_SuccessfulNegotiation", 2))
    messages = [msg(request, connection=5), msg(DIN_MSG, connection=6), msg(iso2, connection=5)]
    messages.append(msg(ISO2_MSG, connection=5))
    assert schemas(messages) == [("appHand", HS), ("din", SIG), ("appHand", HS), ("iso2", HS)]


def test_negotiate_stops_at_the_first_non_handshake_message() -> None:
    request = handshake(offer((DIN_NS, 1)))
    outcome = negotiate([(PayloadType.SAP, request), (PayloadType.SAP, DIN_MSG)], fake_decoder)
    assert (outcome.handshake_messages, outcome.concluded, outcome.namespace) == (1, False, None)


def test_handshake_from_json() -> None:
    request = {
        "supportedAppProtocolReq": {
            "AppProtocol": [
                {
                    "ProtocolNamespace": DIN_NS,
                    "VersionNumberMajor": 2,
                    "VersionNumberMinor": 0,
                    "SchemaID": 1,
                    "Priority": 1,
                }
            ]
        }
    }
    assert handshake_from_json(request) == HandshakeRequest((AppProtocol(DIN_NS, 2, 0, 1, 1),))
    response = {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation"}}
    assert handshake_from_json(response) == HandshakeResponse("OK_SuccessfulNegotiation", None)


@pytest.mark.parametrize(("vector_id", "payload", "expected"), handshake_vectors())
def test_default_handshake_decoder_uses_the_codec(
    vector_id: str, payload: bytes, expected: HandshakeRequest | HandshakeResponse
) -> None:
    pytest.importorskip("exi_schemas.apphand")
    assert decode_handshake_with_codec(payload) == expected
    assert decode_handshake_with_codec(DIN_MSG) is None  # not a handshake message


# --------------------------------------------------------------------------- the corpus

ENTRIES = manifest_entries()
needs_corpus = pytest.mark.skipif(not ENTRIES, reason=f"no capture corpus in {PCAP_DIR}")


@pytest.fixture(scope="session")
def captures() -> Mapping[str, Capture]:
    """All corpus captures, parsed once per session (see tests/corpus.py)."""
    pytest.importorskip("scapy")
    started = time.perf_counter()
    loaded = load_captures()
    print(f"\nparsed {len(loaded)} captures in {time.perf_counter() - started:.1f} s")
    return loaded


@pytest.fixture(scope="session")
def with_schemas(captures: Mapping[str, Capture]) -> Mapping[str, list[CapturedMessage]]:
    """All corpus messages tagged by the real codec's handshake decoding."""
    pytest.importorskip("exi_schemas.apphand")
    return corpus_messages()  # from the same cached captures


@pytest.mark.slow
@needs_corpus
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.file for e in ENTRIES])
def test_capture_has_the_manifest_message_count(
    captures: Mapping[str, Capture], entry: ManifestEntry
) -> None:
    capture = captures[entry.file]
    assert sum(m.payload_type.is_exi for m in capture.messages) == entry.exi_messages
    assert capture.errors == ()


@pytest.mark.slow
@needs_corpus
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.file for e in ENTRIES])
def test_capture_has_the_manifest_schema_counts(
    with_schemas: Mapping[str, list[CapturedMessage]], entry: ManifestEntry
) -> None:
    counts = collections.Counter(m.schema for m in with_schemas[entry.file])
    assert dict(counts) == dict(entry.by_schema)


@pytest.mark.slow
@needs_corpus
def test_corpus_has_12853_distinct_payloads(captures: Mapping[str, Capture]) -> None:
    distinct = {m.payload for c in captures.values() for m in c.messages if m.payload_type.is_exi}
    assert len(distinct) == 12_853


@pytest.mark.slow
@needs_corpus
def test_corpus_has_12853_distinct_schema_payload_pairs(
    with_schemas: Mapping[str, list[CapturedMessage]],
) -> None:
    pairs = {(m.schema, m.payload) for messages in with_schemas.values() for m in messages}
    assert len(pairs) == 12_853
    swept = list(iter_corpus_payloads())
    assert len(swept) == 12_853
    assert len({payload for _, payload, _ in swept}) == 12_853


@pytest.mark.slow
@needs_corpus
def test_corpus_orientation(captures: Mapping[str, Capture]) -> None:
    """Every handshake request goes EV->EVSE, every response EVSE->EV (appHand signatures)."""
    for name, capture in captures.items():
        for message in capture.messages:
            if message.payload[:2] == b"\x80\x00":  # supportedAppProtocolReq
                assert message.direction is Direction.EV_TO_EVSE, (name, message.frame)
            if message.payload[:2] == b"\x80\x40":  # supportedAppProtocolRes
                assert message.direction is Direction.EVSE_TO_EV, (name, message.frame)
        kinds = {c.kind for c in capture.connections}
        assert StreamKind.V2GTP in kinds or not capture.messages
