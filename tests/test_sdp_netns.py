"""SDP over real sockets: the server in one network namespace, the client in the other.

Each test builds its own veth link (tests/netns.py); the SECC side runs as a long-lived child
process in the EVSE namespace and returns its log lines when stopped, the EV side runs in a child
in the EV namespace.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Iterator
from ipaddress import IPv6Address

import pytest
from netns import (
    NetnsControl,
    VethPair,
    requires_root,
    run_in_netns,
    start_in_netns,
    veth_pair,
    veth_pair_into,
)

from iso15118.sdp import (
    SDP_SERVER_PORT,
    Discovered,
    SdpRequest,
    SdpResponse,
    SdpTiming,
    Security,
    TlsPolicy,
    TransportProtocol,
)
from iso15118.transport.netif import interface_index
from iso15118.transport.sdp_client import SdpDiscoveryError, discover
from iso15118.transport.sdp_server import SdpServer, open_sdp_socket

pytestmark = requires_root

TLS_PORT, TCP_PORT = 64201, 64202
FAST = SdpTiming(response_wait=0.1, max_requests=5)

LogLine = tuple[str, str]  # (level, message)


@pytest.fixture
def link() -> Iterator[VethPair]:
    with veth_pair("sdp") as pair:
        yield pair


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[LogLine] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


def serve(
    control: NetnsControl,
    interfaces: list[str],
    policy: TlsPolicy,
    tls_port: int | None = TLS_PORT,
    tcp_port: int | None = TCP_PORT,
) -> list[LogLine]:
    """SECC process: one SDP server per interface until stopped; returns its log lines."""
    handler = _Lines()
    root = logging.getLogger("iso15118")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    async def main() -> None:
        servers = []
        for name in interfaces:
            server = await SdpServer.start(
                name, policy=policy, tls_port=tls_port, tcp_port=tcp_port
            )
            servers.append(server)
        control.ready([str(server.address) for server in servers])
        await asyncio.get_running_loop().run_in_executor(None, control.wait)
        for server in servers:
            await server.close()
        assert all(server.closed for server in servers)

    asyncio.run(main())
    return handler.lines


def count_requests(control: NetnsControl, interface: str) -> list[float]:
    """A silent SDP server: the arrival times of the requests it receives, answering none."""
    sock = open_sdp_socket(interface, interface_index(interface))
    sock.settimeout(0.02)
    arrivals: list[float] = []
    control.ready()
    with sock:
        while not control.stopping:
            try:
                sock.recvfrom(1500)
            except TimeoutError:
                continue
            arrivals.append(time.monotonic())
    return arrivals


def client(interface: str, security: Security, timing: SdpTiming = FAST) -> Discovered:
    return asyncio.run(discover(interface, security, timing=timing))


def timed_failure(interface: str, timing: SdpTiming) -> tuple[int, float]:
    """EV process: discovery that must fail; (requests, seconds it took)."""
    start = time.monotonic()
    try:
        asyncio.run(discover(interface, Security.TLS, timing=timing))
    except SdpDiscoveryError as exc:
        return exc.requests, time.monotonic() - start
    raise AssertionError("discovery succeeded without an SDP server")


def exchange(interface: str, datagrams: list[bytes], wait: float = 0.3) -> list[tuple[str, bytes]]:
    """EV process: multicast raw datagrams to the SDP port; every (source, datagram) answered."""
    index = interface_index(interface)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.bind(("::", 0, 0, index))
        for datagram in datagrams:
            sock.sendto(datagram, ("ff02::1", SDP_SERVER_PORT, 0, index))
        sock.settimeout(wait)
        answers: list[tuple[str, bytes]] = []
        while True:
            try:
                data, source = sock.recvfrom(1500)
            except TimeoutError:
                return answers
            answers.append((source[0].split("%")[0], data))


# --------------------------------------------------------------------------- tests


def test_discovery_finds_the_secc(link: VethPair) -> None:
    with start_in_netns(link.evse_ns, serve, [link.evse_if], TlsPolicy.ALLOWED) as server:
        assert server.info == [link.evse_address]
        tls = run_in_netns(link.ev_ns, client, link.ev_if, Security.TLS)
        plain = run_in_netns(link.ev_ns, client, link.ev_if, Security.NO_TLS)
    address = IPv6Address(link.evse_address)
    assert tls == Discovered(address, TLS_PORT, Security.TLS, TransportProtocol.TCP)
    assert plain == Discovered(address, TCP_PORT, Security.NO_TLS, TransportProtocol.TCP)
    announced = [message for level, message in server.result if level == "INFO"]
    assert any(
        "TLS request from [fe80::" in line and f"{TLS_PORT} TLS" in line for line in announced
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (TlsPolicy.REQUIRED, {Security.TLS: TLS_PORT, Security.NO_TLS: TLS_PORT}),
        (TlsPolicy.NEVER, {Security.TLS: TCP_PORT, Security.NO_TLS: TCP_PORT}),
    ],
)
def test_policy_decides_the_announced_port(
    link: VethPair, policy: TlsPolicy, expected: dict[Security, int]
) -> None:
    tls_port = TLS_PORT if policy is TlsPolicy.REQUIRED else None
    tcp_port = TCP_PORT if policy is TlsPolicy.NEVER else None
    with start_in_netns(link.evse_ns, serve, [link.evse_if], policy, tls_port, tcp_port):
        for requested, port in expected.items():
            found = run_in_netns(link.ev_ns, client, link.ev_if, requested)
            assert found.port == port
            assert found.security is (Security.TLS if port == TLS_PORT else Security.NO_TLS)


def test_client_gives_up_after_the_retries(link: VethPair) -> None:
    with start_in_netns(link.evse_ns, count_requests, link.evse_if) as listener:
        requests, elapsed = run_in_netns(link.ev_ns, timed_failure, link.ev_if, FAST)
    arrivals = listener.result
    assert requests == FAST.max_requests == len(arrivals)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap > FAST.response_wait * 0.8 for gap in gaps), gaps
    assert elapsed >= FAST.max_requests * FAST.response_wait


def test_malformed_requests_are_ignored_and_logged(link: VethPair) -> None:
    malformed = [
        b"",
        b"\x01\xfe\x90",
        bytes.fromhex("02fd9000000000020000"),  # bad version
        bytes.fromhex("01fe9000000000020500"),  # reserved security
        bytes.fromhex("01fe9001000000020000"),  # a response type
        bytes.fromhex("01fe900000000002000000"),  # trailing byte
    ]
    with start_in_netns(link.evse_ns, serve, [link.evse_if], TlsPolicy.ALLOWED) as server:
        assert run_in_netns(link.ev_ns, exchange, link.ev_if, malformed) == []
        answers = run_in_netns(
            link.ev_ns, exchange, link.ev_if, [SdpRequest(Security.TLS).encode()]
        )
    assert [(source, SdpResponse.decode(data).port) for source, data in answers] == [
        (link.evse_address, TLS_PORT)
    ]
    warnings = [message for level, message in server.result if level == "WARNING"]
    assert len(warnings) == len(malformed), warnings
    for fragment in (
        "shorter than a V2GTP header",
        "V2GTP header fails its checks",
        "reserved security value (0x05)",
        "not the expected SDP payload type",
        "datagram length does not match the header",
    ):
        assert any(fragment in line for line in warnings), fragment


def test_one_process_serves_two_interfaces(link: VethPair) -> None:
    first = link
    with veth_pair_into(first.evse_ns, "sdp") as second:
        interfaces = [first.evse_if, second.evse_if]
        with start_in_netns(first.evse_ns, serve, interfaces, TlsPolicy.ALLOWED) as server:
            assert server.info == [first.evse_address, second.evse_address]
            request = [SdpRequest(Security.TLS).encode()]
            for pair in (first, second):
                found = run_in_netns(pair.ev_ns, client, pair.ev_if, Security.NO_TLS)
                assert found.address == IPv6Address(pair.evse_address)
                assert found.port == TCP_PORT
                answers = run_in_netns(pair.ev_ns, exchange, pair.ev_if, request)
                assert [source for source, _ in answers] == [pair.evse_address]  # one, its own
                assert SdpResponse.decode(answers[0][1]).address == IPv6Address(pair.evse_address)


def reopen(interface: str) -> list[int]:
    """SECC process: start, close and start again on the same interface (the port is free)."""

    async def main() -> list[int]:
        ports = []
        for _ in range(2):
            server = await SdpServer.start(interface, policy=TlsPolicy.NEVER, tcp_port=TCP_PORT)
            ports.append(server.core.answer(SdpRequest(Security.NO_TLS)).port)
            await server.close()
            await server.close()  # twice is harmless
        return ports

    return asyncio.run(main())


def test_close_releases_the_socket(link: VethPair) -> None:
    assert run_in_netns(link.evse_ns, reopen, link.evse_if) == [TCP_PORT, TCP_PORT]
    # nothing listens any more: a request goes unanswered
    request = [SdpRequest(Security.NO_TLS).encode()]
    assert run_in_netns(link.ev_ns, exchange, link.ev_if, request, 0.1) == []
