"""The SECC's SDP server over UDP: asyncio around `iso15118.sdp.SdpServerCore`.

One `SdpServer` serves one interface (one PLC modem): a UDP socket bound to port 15118
(V2G_UDP_SDP_SERVER) and to the interface (SO_BINDTODEVICE), joined to ff02::1 on that
interface only, answering each request from port 15118 to the request's source ([V2G20-149] to
[V2G20-151]) with the interface's own link-local address and the configured TLS or TCP port. The
sockets set SO_REUSEADDR and SO_REUSEPORT, so several servers (one per interface) run in one
process, or beside another SDP responder, each seeing only its own interface's datagrams.

    server = await SdpServer.start("eth1", policy=TlsPolicy.ALLOWED, tls_port=64110, tcp_port=64111)
    ...
    await server.close()
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from ipaddress import IPv6Address
from typing import Any, Final, assert_never, cast

from iso15118.sdp import (
    SDP_MULTICAST_ADDRESS,
    SDP_SERVER_PORT,
    RequestIgnored,
    Respond,
    SdpServerCore,
    TlsPolicy,
)
from iso15118.transport.netif import bind_to_device, interface_index, wait_for_link_local

__all__ = ["SdpServer", "open_sdp_socket"]

logger = logging.getLogger(__name__)

#: linux/in6.h; 0 delivers to the socket only the multicast groups that the socket joined. The
#: socket module does not export it.
IPV6_MULTICAST_ALL: Final = 29


def open_sdp_socket(interface: str, index: int, port: int = SDP_SERVER_PORT) -> socket.socket:
    """A non-blocking UDP socket on [::]:`port`, restricted to the interface, in ff02::1 there."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        bind_to_device(sock, interface)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        except OSError:  # kernels before 4.20: the scope check in the protocol still applies
            logger.debug("IPV6_MULTICAST_ALL not supported")
        sock.bind(("::", port, 0, 0))
        # struct ipv6_mreq: the group, then the interface index in host byte order.
        membership = SDP_MULTICAST_ADDRESS.packed + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _SdpServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, core: SdpServerCore, interface: str, index: int) -> None:
        self.core = core
        self.interface = interface
        self.index = index
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(addr) >= 4 and addr[3] not in (0, self.index):
            logger.debug("SDP %s: datagram from %s via another interface", self.interface, addr)
            return
        event = self.core.receive_datagram(data)
        match event:
            case Respond(request=request, response=response):
                assert self.transport is not None
                self.transport.sendto(event.datagram, addr)
                logger.info(
                    "SDP %s: %s request from [%s]:%d, announced [%s]:%d %s",
                    self.interface,
                    request.security.name,
                    addr[0],
                    addr[1],
                    response.address,
                    response.port,
                    response.security.name,
                )
            case RequestIgnored(kind=kind, detail=detail):
                logger.warning(
                    "SDP %s: ignored %d-byte datagram from [%s]:%d: %s (%s)",
                    self.interface,
                    len(data),
                    addr[0],
                    addr[1],
                    kind.value,
                    detail,
                )
            case _:
                assert_never(event)

    def error_received(self, exc: Exception) -> None:
        logger.warning("SDP %s: socket error: %s", self.interface, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class SdpServer:
    """A running SDP server on one interface; create it with `start()`, end it with `close()`."""

    def __init__(
        self,
        interface: str,
        index: int,
        core: SdpServerCore,
        transport: asyncio.DatagramTransport,
        protocol: _SdpServerProtocol,
    ) -> None:
        self.interface = interface
        self.index = index
        self.core = core
        self._transport = transport
        self._protocol = protocol

    @classmethod
    async def start(
        cls,
        interface: str,
        *,
        policy: TlsPolicy,
        tls_port: int | None = None,
        tcp_port: int | None = None,
        address: IPv6Address | None = None,
        port: int = SDP_SERVER_PORT,
        dad_timeout: float = 5.0,
    ) -> SdpServer:
        """Serve SDP on `interface`, announcing `address` (default: its link-local address,
        waiting up to `dad_timeout` seconds for DAD) with the ports `policy` needs."""
        index = interface_index(interface)
        if address is None:
            address = await wait_for_link_local(interface, timeout=dad_timeout)
        core = SdpServerCore(policy, address, tls_port, tcp_port)
        sock = open_sdp_socket(interface, index, port)
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _SdpServerProtocol(core, interface, index), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        logger.info(
            "SDP server on %s (index %d, UDP %d): [%s] TLS port %s, TCP port %s, TLS %s",
            interface,
            index,
            port,
            address,
            core.tls_port,
            core.tcp_port,
            policy.value,
        )
        return cls(interface, index, core, transport, protocol)

    @property
    def address(self) -> IPv6Address:
        """The link-local address this server announces."""
        return self.core.address

    @property
    def closed(self) -> bool:
        return self._protocol.closed.done()

    async def close(self) -> None:
        """Stop answering and release the socket; safe to call twice."""
        self._transport.close()
        await self._protocol.closed
        logger.info("SDP server on %s closed", self.interface)

    async def __aenter__(self) -> SdpServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
