"""SECC Discovery Protocol, sans-IO: messages, the server's answers, the client's retry timing.

The socket adapters over a real veth link are tested in test_sdp_netns.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from ipaddress import IPv6Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iso15118.sdp import (
    ANSWERS,
    SDP_TIMING,
    Discovered,
    DiscoveryFailed,
    RequestIgnored,
    Respond,
    ResponseIgnored,
    SdpClientCore,
    SdpError,
    SdpErrorKind,
    SdpParameter,
    SdpRequest,
    SdpResponse,
    SdpServerCore,
    SdpTiming,
    Security,
    TlsPolicy,
    TransportProtocol,
)
from iso15118.transport.netif import (
    AddressFlag,
    NetifError,
    link_local_address,
    parse_if_inet6,
    wait_for_link_local,
)

SECC = IPv6Address("fe80::1234:56ff:fe78:9abc")
TLS_PORT, TCP_PORT = 64109, 64110
REQ_TLS = bytes.fromhex("01fe9000000000020000")
REQ_NO_TLS = bytes.fromhex("01fe9000000000021000")
RES_TLS = (
    bytes.fromhex("01fe900100000014")
    + SECC.packed
    + TLS_PORT.to_bytes(2, "big")
    + bytes.fromhex("0000")
)


def header(payload_type: int, length: int) -> bytes:
    return bytes((0x01, 0xFE)) + payload_type.to_bytes(2, "big") + length.to_bytes(4, "big")


# --------------------------------------------------------------------------- messages


def test_request_layout() -> None:
    assert SdpRequest(Security.TLS).encode() == REQ_TLS
    assert SdpRequest(Security.NO_TLS, TransportProtocol.TCP).encode() == REQ_NO_TLS
    assert SdpRequest.decode(REQ_NO_TLS) == SdpRequest(Security.NO_TLS)


def test_response_layout() -> None:
    response = SdpResponse(SECC, TLS_PORT, Security.TLS, TransportProtocol.TCP)
    assert response.encode() == RES_TLS
    assert SdpResponse.decode(RES_TLS) == response


@pytest.mark.parametrize("security", list(Security))
@pytest.mark.parametrize("transport", list(TransportProtocol))
def test_round_trip(security: Security, transport: TransportProtocol) -> None:
    request = SdpRequest(security, transport)
    assert SdpRequest.decode(request.encode()) == request
    response = SdpResponse(SECC, 1, security, transport)
    assert SdpResponse.decode(response.encode()) == response


@pytest.mark.parametrize(
    ("datagram", "kind"),
    [
        (b"", SdpErrorKind.TRUNCATED),
        (REQ_TLS[:7], SdpErrorKind.TRUNCATED),
        (b"\x02\xfd" + REQ_TLS[2:], SdpErrorKind.BAD_HEADER),
        (b"\x01\xff" + REQ_TLS[2:], SdpErrorKind.BAD_HEADER),
        (header(0x9500, 2) + b"\x00\x00", SdpErrorKind.BAD_HEADER),
        (header(0x9002, 62) + bytes(62), SdpErrorKind.WIRELESS),
        (header(0x9001, 2) + b"\x00\x00", SdpErrorKind.WRONG_PAYLOAD_TYPE),
        (header(0x8001, 2) + b"\x00\x00", SdpErrorKind.WRONG_PAYLOAD_TYPE),
        (header(0x9000, 3) + b"\x00\x00\x00", SdpErrorKind.BAD_PAYLOAD_LENGTH),
        (header(0x9000, 0xFFFFFFFF) + b"\x00\x00", SdpErrorKind.BAD_PAYLOAD_LENGTH),
        (REQ_TLS[:9], SdpErrorKind.DATAGRAM_LENGTH),
        (REQ_TLS + b"\x00", SdpErrorKind.DATAGRAM_LENGTH),
        (header(0x9000, 2) + b"\x01\x00", SdpErrorKind.RESERVED_SECURITY),
        (header(0x9000, 2) + b"\xff\x00", SdpErrorKind.RESERVED_SECURITY),
        (header(0x9000, 2) + b"\x00\x01", SdpErrorKind.RESERVED_TRANSPORT),
        (header(0x9000, 2) + b"\x10\x11", SdpErrorKind.RESERVED_TRANSPORT),
    ],
)
def test_malformed_requests(datagram: bytes, kind: SdpErrorKind) -> None:
    with pytest.raises(SdpError) as raised:
        SdpRequest.decode(datagram)
    assert raised.value.kind is kind
    assert kind.value in str(raised.value)


@pytest.mark.parametrize(
    ("datagram", "kind"),
    [
        (REQ_TLS, SdpErrorKind.WRONG_PAYLOAD_TYPE),
        (header(0x9003, 59) + bytes(59), SdpErrorKind.WIRELESS),
        (RES_TLS[:-1], SdpErrorKind.DATAGRAM_LENGTH),
        (header(0x9001, 19) + RES_TLS[8:-1], SdpErrorKind.BAD_PAYLOAD_LENGTH),
        (header(0x9001, 20) + bytes(16) + RES_TLS[24:], SdpErrorKind.INVALID_ADDRESS),
        (
            header(0x9001, 20) + IPv6Address("ff02::1").packed + RES_TLS[24:],
            SdpErrorKind.INVALID_ADDRESS,
        ),
        (RES_TLS[:24] + b"\x00\x00" + RES_TLS[26:], SdpErrorKind.INVALID_PORT),
        (RES_TLS[:26] + b"\x20\x00", SdpErrorKind.RESERVED_SECURITY),
        (RES_TLS[:26] + b"\x00\x0f", SdpErrorKind.RESERVED_TRANSPORT),
    ],
)
def test_malformed_responses(datagram: bytes, kind: SdpErrorKind) -> None:
    with pytest.raises(SdpError) as raised:
        SdpResponse.decode(datagram)
    assert raised.value.kind is kind


def test_errors_pickle_with_their_kind() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(SdpError(SdpErrorKind.TRUNCATED, "3 bytes")))
    assert (error.kind, error.detail) == (SdpErrorKind.TRUNCATED, "3 bytes")


def test_local_misuse_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="port"):
        SdpResponse(SECC, 0, Security.TLS)
    with pytest.raises(ValueError, match="port"):
        SdpResponse(SECC, 65536, Security.TLS)
    with pytest.raises(ValueError, match="cannot be connected"):
        SdpResponse(IPv6Address("::"), 1, Security.TLS)


def decode_or_refuse(datagram: bytes) -> None:
    """Each decoder returns a message that re-encodes to the datagram, or raises `SdpError`."""
    for message_type in (SdpRequest, SdpResponse):
        try:
            message = message_type.decode(datagram)
        except SdpError:
            continue
        assert message.encode() == datagram


def _mutations(valid: bytes, length: int) -> list[bytes]:
    """Datagrams of exactly `length` bytes that start like `valid` or hold nothing sensible."""
    prefix = valid[:length]
    return [
        bytes(length),
        b"\xff" * length,
        prefix + bytes(length - len(prefix)),
        prefix + b"\x10" * (length - len(prefix)),
        bytes(b ^ 0x01 for b in prefix) + bytes(length - len(prefix)),
    ]


@pytest.mark.parametrize("length", range(31))
def test_every_length_gives_a_message_or_the_typed_error(length: int) -> None:
    server = SdpServerCore(TlsPolicy.ALLOWED, SECC, TLS_PORT, TCP_PORT)
    for datagram in _mutations(REQ_TLS, length) + _mutations(RES_TLS, length):
        decode_or_refuse(datagram)
        event = server.receive_datagram(datagram)
        valid_request = datagram in (REQ_TLS, REQ_NO_TLS)
        assert isinstance(event, Respond) == valid_request, datagram.hex()


@given(
    st.binary(max_size=64) | st.builds(bytes.__add__, st.just(REQ_TLS[:8]), st.binary(max_size=24))
)
def test_random_bytes_never_raise_anything_else(datagram: bytes) -> None:
    decode_or_refuse(datagram)
    event = SdpServerCore(TlsPolicy.REQUIRED, SECC, TLS_PORT, None).receive_datagram(datagram)
    assert isinstance(event, Respond | RequestIgnored)
    client = SdpClientCore(Security.TLS)
    client.datagram_to_send(0.0)
    client.receive_datagram(datagram, 0.1)
    assert isinstance(client.next_event(), Discovered | ResponseIgnored)


# --------------------------------------------------------------------------- server core

EXPECTED = {
    (TlsPolicy.REQUIRED, Security.TLS): (Security.TLS, TLS_PORT),
    (TlsPolicy.REQUIRED, Security.NO_TLS): (Security.TLS, TLS_PORT),
    (TlsPolicy.ALLOWED, Security.TLS): (Security.TLS, TLS_PORT),
    (TlsPolicy.ALLOWED, Security.NO_TLS): (Security.NO_TLS, TCP_PORT),
    (TlsPolicy.NEVER, Security.TLS): (Security.NO_TLS, TCP_PORT),
    (TlsPolicy.NEVER, Security.NO_TLS): (Security.NO_TLS, TCP_PORT),
}


def test_answer_table_covers_every_combination() -> None:
    assert set(ANSWERS) == {(p, s) for p in TlsPolicy for s in Security}
    assert {key: value[0] for key, value in EXPECTED.items()} == dict(ANSWERS)


@pytest.mark.parametrize(("policy", "requested"), list(EXPECTED))
@pytest.mark.parametrize("transport", list(TransportProtocol))
def test_server_answers_by_policy(
    policy: TlsPolicy, requested: Security, transport: TransportProtocol
) -> None:
    server = SdpServerCore(policy, SECC, TLS_PORT, TCP_PORT)
    event = server.receive_datagram(SdpRequest(requested, transport).encode())
    assert isinstance(event, Respond)
    security, port = EXPECTED[policy, requested]
    assert event.response == SdpResponse(SECC, port, security, TransportProtocol.TCP)
    assert SdpResponse.decode(event.datagram) == event.response
    assert event.request == SdpRequest(requested, transport)


def test_server_ignores_what_is_not_a_request() -> None:
    server = SdpServerCore(TlsPolicy.ALLOWED, SECC, TLS_PORT, TCP_PORT)
    assert server.receive_datagram(RES_TLS) == RequestIgnored(
        SdpErrorKind.WRONG_PAYLOAD_TYPE, "0x9001, expected 0x9000"
    )
    assert server.receive_datagram(b"\x01\xfe") == RequestIgnored(SdpErrorKind.TRUNCATED, "2 bytes")


@pytest.mark.parametrize(
    ("policy", "tls_port", "tcp_port", "message"),
    [
        (TlsPolicy.REQUIRED, None, TCP_PORT, "needs a TLS port"),
        (TlsPolicy.ALLOWED, TLS_PORT, None, "needs a TCP port"),
        (TlsPolicy.NEVER, TLS_PORT, None, "needs a TCP port"),
        (TlsPolicy.ALLOWED, TLS_PORT, 0, "out of range"),
        (TlsPolicy.REQUIRED, 70000, None, "out of range"),
    ],
)
def test_server_configuration_errors(
    policy: TlsPolicy, tls_port: int | None, tcp_port: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SdpServerCore(policy, SECC, tls_port, tcp_port)


def test_server_keeps_only_the_ports_its_policy_uses() -> None:
    assert SdpServerCore(TlsPolicy.NEVER, SECC, TLS_PORT, TCP_PORT).tls_port is None
    assert SdpServerCore(TlsPolicy.REQUIRED, SECC, TLS_PORT, TCP_PORT).tcp_port is None


# --------------------------------------------------------------------------- client core


def test_timing_table_holds_the_standard_values() -> None:
    wait = SDP_TIMING[SdpParameter.RESPONSE_WAIT]
    limit = SDP_TIMING[SdpParameter.MAX_REQUESTS]
    assert (wait.value, wait.unit) == (0.25, "s")
    assert (limit.value, limit.unit) == (50, "requests")
    assert "[V2G20-159]" in wait.requirements and "[V2G2-159]" in wait.requirements
    assert "[V2G20-161]" in limit.requirements and "[V2G2-161]" in limit.requirements
    assert SdpTiming() == SdpTiming(response_wait=0.25, max_requests=50)


@pytest.mark.parametrize(("wait", "limit"), [(0.0, 5), (-1.0, 5), (0.1, 0)])
def test_timing_validation(wait: float, limit: int) -> None:
    with pytest.raises(ValueError):
        SdpTiming(response_wait=wait, max_requests=limit)


def test_client_retries_with_exact_deadlines_then_fails() -> None:
    client = SdpClientCore(Security.TLS)
    now = 100.0
    assert client.get_timer() is None
    for n in range(1, 51):
        assert client.datagram_to_send(now) == REQ_TLS
        assert client.datagram_to_send(now) is None  # one request per wait
        assert client.requests_sent == n
        deadline = client.get_timer()
        assert deadline is not None
        assert deadline == pytest.approx(100.0 + 0.25 * n)
        client.handle_timer(deadline - 0.001)  # early: nothing happens
        assert client.get_timer() == deadline and client.next_event() is None
        now = deadline
        client.handle_timer(now)
    assert client.datagram_to_send(now) is None
    assert client.next_event() == DiscoveryFailed(50)
    assert client.finished and client.get_timer() is None
    assert now == pytest.approx(112.5)  # 50 requests x 250 ms


def test_client_discovers_on_a_valid_response() -> None:
    client = SdpClientCore(Security.TLS, timing=SdpTiming(response_wait=1.0, max_requests=3))
    assert client.datagram_to_send(0.0) is not None
    client.handle_timer(1.0)
    assert client.datagram_to_send(1.0) is not None
    client.receive_datagram(b"junk", 1.2)
    assert client.next_event() == ResponseIgnored(SdpErrorKind.TRUNCATED, "4 bytes")
    assert client.get_timer() == 2.0  # still waiting
    client.receive_datagram(RES_TLS, 1.5)
    assert client.next_event() == Discovered(SECC, TLS_PORT, Security.TLS, TransportProtocol.TCP)
    assert client.finished and client.get_timer() is None
    assert client.datagram_to_send(3.0) is None
    client.receive_datagram(RES_TLS, 1.6)  # late duplicates are dropped
    client.handle_timer(9.0)
    assert client.next_event() is None


def test_client_accepts_the_seccs_choice_of_security() -> None:
    client = SdpClientCore(Security.TLS)
    client.datagram_to_send(0.0)
    client.receive_datagram(SdpResponse(SECC, TCP_PORT, Security.NO_TLS).encode(), 0.1)
    event = client.next_event()
    assert isinstance(event, Discovered) and event.security is Security.NO_TLS


def test_client_refuses_udp_and_unsolicited_responses() -> None:
    client = SdpClientCore(Security.NO_TLS)
    client.receive_datagram(RES_TLS, 0.0)
    assert client.next_event() == ResponseIgnored(SdpErrorKind.UNSOLICITED, "28 bytes")
    assert client.datagram_to_send(0.0) == REQ_NO_TLS
    udp = SdpResponse(SECC, TLS_PORT, Security.TLS, TransportProtocol.UDP).encode()
    client.receive_datagram(udp, 0.1)
    assert client.next_event() == ResponseIgnored(SdpErrorKind.UNSUPPORTED_TRANSPORT, "UDP")
    assert not client.finished and client.get_timer() == 0.25


def test_client_with_small_timing() -> None:
    client = SdpClientCore(Security.TLS, timing=SdpTiming(response_wait=0.01, max_requests=2))
    assert client.datagram_to_send(5.0) is not None
    client.handle_timer(5.01)
    assert client.datagram_to_send(5.02) is not None  # sent late: the wait starts when sent
    assert client.get_timer() == pytest.approx(5.03)
    client.handle_timer(5.03)
    assert client.next_event() == DiscoveryFailed(2)


def test_core_is_sans_io() -> None:
    code = (
        "import sys; before = set(sys.modules); import iso15118.sdp; "
        "print(sorted({'asyncio', 'socket', 'ssl', 'time', 'select'} "
        "& (set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- interfaces

IF_INET6 = """\
fe800000000000000000000000000001 03 40 20 40 plc0
fe800000000000000000000000000002 03 40 20 80 plc0
fe800000000000000000000000000003 04 40 20 c8 plc1
fe800000000000000000000000000004 05 40 20 44 plc2
20010db8000000000000000000000005 03 40 00 80 plc0
00000000000000000000000000000001 01 80 10 80       lo
"""


def test_parse_if_inet6() -> None:
    entries = parse_if_inet6(IF_INET6)
    assert [(e.interface, e.index, e.prefix_length) for e in entries][:2] == [
        ("plc0", 3, 64),
        ("plc0", 3, 64),
    ]
    assert entries[0].flags == AddressFlag.TENTATIVE and not entries[0].usable
    assert entries[1].usable
    assert entries[2].flags & AddressFlag.DADFAILED and not entries[2].usable
    assert entries[3].usable  # optimistic DAD (RFC 4429)


def test_link_local_skips_tentative_and_failed(tmp_path: Path) -> None:
    path = tmp_path / "if_inet6"
    path.write_text(IF_INET6)
    assert link_local_address("plc0", path=path) == IPv6Address("fe80::2")
    assert link_local_address("plc1", path=path) is None
    assert link_local_address("lo", path=path) is None


def test_waiting_for_a_link_local_address_times_out() -> None:
    with pytest.raises(NetifError, match="no usable IPv6 link-local address"):
        asyncio.run(wait_for_link_local("lo", timeout=0.05, interval=0.01))
    with pytest.raises(NetifError, match="no network interface"):
        asyncio.run(wait_for_link_local("no-such-if0", timeout=0.05))
