"""The EVCC's SDP client over UDP: asyncio around `iso15118.sdp.SdpClientCore`.

`discover()` multicasts SDP requests to [ff02::1%interface]:15118 from a random port among the
dynamic ports (V2G_UDP_SDP_CLIENT, ISO 15118-20 Table 20), with the core's retry timing
(`SDP_TIMING`: at least 250 ms between requests, at most 50 requests), and returns the first valid
response or raises `SdpDiscoveryError`.

    found = await discover("eth1", Security.TLS)
    reader, writer = await open_connection(str(found.address), found.port, scope="eth1")  # e.g.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from typing import Any, assert_never, cast

from iso15118.sdp import (
    SDP_CLIENT_PORTS,
    SDP_MULTICAST_ADDRESS,
    SDP_SERVER_PORT,
    Discovered,
    DiscoveryFailed,
    ResponseIgnored,
    SdpClientCore,
    SdpClientEvent,
    SdpTiming,
    Security,
    TransportProtocol,
)
from iso15118.transport.netif import bind_to_device, interface_index, wait_for_link_local

__all__ = ["SdpDiscoveryError", "discover", "open_client_socket"]

logger = logging.getLogger(__name__)

_PORT_ATTEMPTS = 32


class SdpDiscoveryError(Exception):
    """No SDP server answered validly: the standard's timeout handling applies ([V2G20-162])."""

    def __init__(self, interface: str, requests: int) -> None:
        super().__init__(interface, requests)  # args as given, so that it pickles
        self.interface = interface
        self.requests = requests

    def __str__(self) -> str:
        return f"no valid SDP response on {self.interface} after {self.requests} requests"


def open_client_socket(
    interface: str, index: int, rng: random.Random | None = None
) -> socket.socket:
    """A non-blocking UDP socket on a random dynamic port, sending multicast via `interface`."""
    rng = rng if rng is not None else random.SystemRandom()
    for _ in range(_PORT_ATTEMPTS):
        port = rng.choice(SDP_CLIENT_PORTS)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            bind_to_device(sock, interface)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            sock.bind(("::", port, 0, 0))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        return sock
    raise OSError(errno.EADDRINUSE, f"no free UDP port for SDP after {_PORT_ATTEMPTS} attempts")


class _SdpClientProtocol(asyncio.DatagramProtocol):
    """Feeds the core, sends what it asks for, keeps one loop timer armed at its deadline."""

    def __init__(self, core: SdpClientCore, interface: str, index: int, server_port: int) -> None:
        self.core = core
        self.interface = interface
        self.index = index
        self.destination = (str(SDP_MULTICAST_ADDRESS), server_port, 0, index)
        self.loop = asyncio.get_running_loop()
        self.result: asyncio.Future[Discovered] = self.loop.create_future()
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(addr) >= 4 and addr[3] not in (0, self.index):
            return
        logger.debug("SDP %s: %d bytes from [%s]:%d", self.interface, len(data), addr[0], addr[1])
        self.core.receive_datagram(data, self.loop.time())
        self.pump()

    def error_received(self, exc: Exception) -> None:
        logger.warning("SDP %s: socket error: %s", self.interface, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_timer()

    def pump(self) -> None:
        """Send what is due, hand out the events, re-arm the timer."""
        datagram = self.core.datagram_to_send(self.loop.time())
        if datagram is not None and self.transport is not None:
            logger.debug(
                "SDP %s: request %d (%s)",
                self.interface,
                self.core.requests_sent,
                self.core.request.security.name,
            )
            self.transport.sendto(datagram, self.destination)
        while (event := self.core.next_event()) is not None:
            self._handle(event)
        self._arm(self.core.get_timer())

    def _handle(self, event: SdpClientEvent) -> None:
        match event:
            case ResponseIgnored(kind=kind, detail=detail):
                logger.warning(
                    "SDP %s: ignored datagram: %s (%s)", self.interface, kind.value, detail
                )
            case Discovered():
                if not self.result.done():
                    self.result.set_result(event)
            case DiscoveryFailed(requests=requests):
                if not self.result.done():
                    self.result.set_exception(SdpDiscoveryError(self.interface, requests))
            case _:
                assert_never(event)

    def _arm(self, timer_at: float | None) -> None:
        if self._timer is not None and timer_at != self._timer_at:
            self.cancel_timer()
        if self._timer is None and timer_at is not None:
            self._timer_at = timer_at
            self._timer = self.loop.call_at(timer_at, self._on_timer)

    def _on_timer(self) -> None:
        timer_at = self._timer_at
        self._timer = self._timer_at = None
        now = self.loop.time()
        self.core.handle_timer(now if timer_at is None else max(now, timer_at))
        self.pump()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None


async def discover(
    interface: str,
    security: Security = Security.TLS,
    *,
    transport: TransportProtocol = TransportProtocol.TCP,
    timing: SdpTiming | None = None,
    server_port: int = SDP_SERVER_PORT,
    dad_timeout: float = 5.0,
    rng: random.Random | None = None,
) -> Discovered:
    """Find the SECC on `interface`; raises `SdpDiscoveryError` when nobody answers validly.

    The returned `security` is the SECC's choice, which may differ from the one requested; the
    caller decides whether to accept it. Waits up to `dad_timeout` seconds for the interface's
    link-local address first: a request needs a source address.
    """
    index = interface_index(interface)
    await wait_for_link_local(interface, timeout=dad_timeout)
    core = SdpClientCore(security, transport=transport, timing=timing)
    sock = open_client_socket(interface, index, rng)
    loop = asyncio.get_running_loop()
    try:
        udp, protocol = await loop.create_datagram_endpoint(
            lambda: _SdpClientProtocol(core, interface, index, server_port), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    try:
        protocol.pump()
        found = await protocol.result
    finally:
        protocol.cancel_timer()
        udp.close()
    logger.info(
        "SDP %s: SECC at [%s]:%d, %s, after %d request(s)",
        interface,
        found.address,
        found.port,
        found.security.name,
        core.requests_sent,
    )
    return found
