"""The scapy layers for V2GTP and SDP (iso15118.trace.layers): building, dissecting, and the
scoped bindings to UDP 15118 and to the TCP ports that a capture's SDP responses announce."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from corpus import PCAP_DIR
from paths import require

scapy = pytest.importorskip("scapy")

from scapy.layers.inet import TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Padding, Raw  # noqa: E402
from scapy.utils import rdpcap, wrpcap  # noqa: E402

from iso15118.trace.capture import parse_capture  # noqa: E402
from iso15118.trace.layers import (  # noqa: E402
    PAYLOAD_TYPES,
    SDP_PORT,
    V2GTP,
    SDPRequest,
    SDPResponse,
    announced_ports,
    read_v2g,
    sdp_fields,
    v2g_bindings,
)
from iso15118.v2gtp import PayloadType, V2GTPMessage  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIN_CAPTURE = "dspace-group+dsV2Gshark__Wireshark__dsV2Gshark_examples__DIN_DC_DS5366_Josev.pcapng"
DIN_PORT = 55118  # announced by the capture's SDP response
EV = "fe80::1"
LINK = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # no neighbour lookup
EVSE = "fe80::2"


# --------------------------------------------------------------------------- built packets


def test_v2gtp_computes_inverse_version_and_length() -> None:
    packet = V2GTP() / SDPRequest()
    assert bytes(packet) == bytes.fromhex("01fe9000000000021000")
    exi = bytes.fromhex("809a0211")
    built = bytes(V2GTP(payload_type=PayloadType.SAP.value) / Raw(exi))
    assert built == V2GTPMessage(PayloadType.SAP, exi).pack()  # our own header agrees


def test_explicit_header_values_are_kept() -> None:
    packet = V2GTP(version=2, inverse_version=0x00, payload_type=0x8100, payload_length=99)
    assert bytes(packet) == bytes.fromhex("02008100 00000063")


def test_payload_type_names_every_type_of_the_standards() -> None:
    assert {t.value: t.name for t in PayloadType} == PAYLOAD_TYPES
    for payload_type in PayloadType:
        shown = V2GTP(payload_type=payload_type.value).sprintf("%V2GTP.payload_type%")
        assert shown == payload_type.name


def test_build_then_dissect_sdp_response() -> None:
    built = V2GTP() / SDPResponse(address=EVSE, port=55119, security=0x00, transport=0x00)
    data = bytes(built)
    assert len(data) == 8 + 20
    assert data[:8] == bytes.fromhex("01fe900100000014")
    packet = V2GTP(data)
    assert packet.payload_type == PayloadType.SDP_RESPONSE
    response = packet[SDPResponse]
    assert (response.address, response.port, response.security, response.transport) == (
        EVSE,
        55119,
        0x00,
        0x00,
    )
    fields = sdp_fields(PayloadType.SDP_RESPONSE, data[8:])
    assert fields == {"address": EVSE, "port": 55119, "security": "TLS", "transport": "TCP"}


def test_sdp_request_fields() -> None:
    fields = sdp_fields(PayloadType.SDP_REQUEST, bytes.fromhex("1000"))
    assert fields == {"security": "none", "transport": "TCP"}
    assert sdp_fields(PayloadType.SDP_REQUEST, bytes.fromhex("2011"))["security"] == "0x20"


@pytest.mark.parametrize(
    ("payload_type", "body"),
    [
        (PayloadType.SDP_REQUEST, b"\x10"),
        (PayloadType.SDP_REQUEST, b"\x10\x00\x00"),
        (PayloadType.SDP_RESPONSE, bytes(19)),
        (PayloadType.SAP, b"\x80"),
    ],
)
def test_sdp_fields_refuses_malformed_bodies(payload_type: PayloadType, body: bytes) -> None:
    with pytest.raises(ValueError):
        sdp_fields(payload_type, body)


def test_payload_length_delimits_the_message() -> None:
    first = V2GTPMessage(PayloadType.SAP, bytes.fromhex("809a0211")).pack()
    second = V2GTPMessage(PayloadType.DC_MAINSTREAM, bytes.fromhex("8004")).pack()
    packet = V2GTP(first + second)
    assert bytes(packet[Raw].load) == bytes.fromhex("809a0211")
    assert packet[Padding].load == second  # one message per dissection, the rest is padding


# --------------------------------------------------------------------------- bindings


def udp_frame(sport: int, dport: int, payload: bytes) -> bytes:
    return bytes(LINK / IPv6(src=EV, dst="ff02::1") / UDP(sport=sport, dport=dport) / payload)


def tcp_frame(sport: int, dport: int, payload: bytes) -> bytes:
    return bytes(LINK / IPv6(src=EV, dst=EVSE) / TCP(sport=sport, dport=dport) / payload)


SDP_REQUEST = bytes(V2GTP() / SDPRequest(security=0x10))
SDP_RESPONSE = bytes(V2GTP() / SDPResponse(address=EVSE, port=DIN_PORT, security=0x10))
EXI_MESSAGE = V2GTPMessage(PayloadType.SAP, bytes.fromhex("809a0211")).pack()


def bindings_state() -> list[object]:
    owners = ((UDP, "payload_guess"), (TCP, "payload_guess"), (V2GTP, "_overload_fields"))
    return [owner.__dict__.get(name) for owner, name in owners]


def test_udp_15118_is_v2gtp_only_inside_the_bindings() -> None:
    before = bindings_state()
    request = udp_frame(50000, SDP_PORT, SDP_REQUEST)
    response = udp_frame(SDP_PORT, 50000, SDP_RESPONSE)
    with v2g_bindings():
        assert Ether(request)[SDPRequest].security == 0x10
        assert Ether(response)[SDPResponse].port == DIN_PORT
        assert (UDP(sport=50000) / V2GTP()).dport == SDP_PORT  # building, too
    assert not Ether(request).haslayer(V2GTP)
    assert bindings_state() == before


def test_tcp_ports_are_bound_per_block() -> None:
    before = bindings_state()
    frame = tcp_frame(49152, DIN_PORT, EXI_MESSAGE)
    with v2g_bindings([DIN_PORT]):
        assert Ether(frame)[V2GTP].payload_length == 4
        assert Ether(tcp_frame(DIN_PORT, 49152, EXI_MESSAGE)).haslayer(V2GTP)
        assert not Ether(tcp_frame(49152, 50000, EXI_MESSAGE)).haslayer(V2GTP)
    with v2g_bindings([50000]):
        assert not Ether(frame).haslayer(V2GTP)  # the previous block's port did not leak
    assert not Ether(frame).haslayer(V2GTP)
    assert bindings_state() == before


def test_bindings_are_restored_after_an_error() -> None:
    before = bindings_state()
    with pytest.raises(RuntimeError), v2g_bindings([DIN_PORT]):
        raise RuntimeError
    assert bindings_state() == before


def test_a_segment_without_the_sync_pattern_stays_raw() -> None:
    with v2g_bindings([DIN_PORT]):
        middle = Ether(tcp_frame(49152, DIN_PORT, bytes.fromhex("17030300200102")))  # TLS
        assert not middle.haslayer(V2GTP)
        assert middle[Raw].load == bytes.fromhex("17030300200102")
        assert V2GTP(bytes.fromhex("0200800100000000")).version == 2  # explicit: dissected


def test_bound_layers_do_not_change_what_the_capture_reader_sees(tmp_path: Path) -> None:
    """With V2GTP bound, a segment carrying two messages still gives both to parse_capture."""
    two = EXI_MESSAGE + V2GTPMessage(PayloadType.SAP, bytes.fromhex("809a0222")).pack()
    frames = [
        LINK / IPv6(src=EV, dst="ff02::1") / UDP(sport=50000, dport=SDP_PORT) / SDP_REQUEST,
        LINK / IPv6(src=EVSE, dst=EV) / UDP(sport=SDP_PORT, dport=50000) / SDP_RESPONSE,
        LINK / IPv6(src=EV, dst=EVSE) / TCP(sport=49152, dport=DIN_PORT, flags="PA") / two,
    ]
    path = tmp_path / "two.pcap"
    wrpcap(str(path), frames)
    plain = parse_capture(path)
    with v2g_bindings([DIN_PORT]):
        bound = parse_capture(path)
    assert len(plain.messages) == 2
    assert bound.messages == plain.messages
    assert bound.datagrams == plain.datagrams
    assert [d.payload_type for d in plain.datagrams] == [
        PayloadType.SDP_REQUEST,
        PayloadType.SDP_RESPONSE,
    ]


# --------------------------------------------------------------------------- a real capture


@pytest.fixture(scope="module")
def din_capture() -> Path:
    return require(PCAP_DIR / DIN_CAPTURE)


def test_read_v2g_dissects_sdp_and_the_announced_port(din_capture: Path) -> None:
    before = bindings_state()
    packets = read_v2g(str(din_capture))
    assert bindings_state() == before
    assert announced_ports(packets) == {DIN_PORT}
    requests = [p[SDPRequest] for p in packets if p.haslayer(SDPRequest)]
    responses = [p[SDPResponse] for p in packets if p.haslayer(SDPResponse)]
    assert [(r.security, r.transport) for r in requests] == [(0x10, 0x00)]
    assert [(str(r.address), r.port) for r in responses] == [("fe80::664d:70ff:fe01:3bf", DIN_PORT)]
    on_tcp = [p[V2GTP] for p in packets if p.haslayer(TCP) and p.haslayer(V2GTP)]
    assert {p.payload_type for p in on_tcp} == {PayloadType.SAP}
    # Each segment of this capture carries one whole message: the same as TCP reassembly.
    capture = parse_capture(din_capture)
    assert {endpoint[1] for endpoint in capture.discovery.evse_endpoints} == {DIN_PORT}
    dissected = Counter(bytes(p.payload) for p in on_tcp)
    assert dissected == Counter(m.payload for m in capture.messages)
    assert all(p.payload_length == len(p.payload) for p in on_tcp)
    assert not any(p.haslayer(V2GTP) for p in rdpcap(str(din_capture)))  # nothing leaked


def test_importing_the_trace_package_does_not_import_scapy() -> None:
    code = "import sys, iso15118.trace; print(any(m.split('.')[0] == 'scapy' for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "False"
