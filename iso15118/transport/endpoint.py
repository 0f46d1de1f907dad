"""IPv6 endpoints for V2G TCP/TLS: literal addresses, link-local scope from an interface name.

ISO 15118 runs over IPv6; on the charging cable both sides use link-local addresses
(`fe80::/10`), which are ambiguous without the interface they belong to. `resolve_endpoint`
turns `("fe80::1", 50000, "eth1")` or `("fe80::1%eth1", 50000)` into a socket address with
the scope ID of that interface (`socket.if_nametoindex`), and refuses a link-local address
without one. Host names are not resolved: the address comes from SDP or from configuration.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

__all__ = [
    "Endpoint",
    "EndpointError",
    "connecting_socket",
    "listening_socket",
    "resolve_endpoint",
]


class EndpointError(ValueError):
    """An address, port or interface that cannot be used, or a socket that cannot be bound."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An IPv6 socket address: address literal (no zone), port and scope ID (0: none)."""

    host: str
    port: int
    scope_id: int = 0

    def sockaddr(self) -> tuple[str, int, int, int]:
        """The 4-tuple that `socket.bind`/`connect` take for AF_INET6."""
        return (self.host, self.port, 0, self.scope_id)

    def __str__(self) -> str:
        zone = f"%{self.scope_id}" if self.scope_id else ""
        return f"[{self.host}{zone}]:{self.port}"

    @classmethod
    def from_sockaddr(cls, address: tuple[str, int, int, int] | tuple[str, int] | None) -> Endpoint:
        """From `getsockname()`/`getpeername()` of an AF_INET6 socket; `::` port 0 for None
        (asyncio's answer for a connection that was reset before it could ask)."""
        if address is None:
            return cls("::", 0)
        host = address[0].split("%", 1)[0]
        scope_id = address[3] if len(address) == 4 else 0
        return cls(host, address[1], scope_id)


def resolve_endpoint(host: str, port: int, interface: str | None = None) -> Endpoint:
    """An `Endpoint` for an IPv6 address literal, its port and (for link-local) interface.

    `host` may carry the zone itself (`fe80::1%eth1`); an `interface` that names another zone
    is an error. Raises `EndpointError` for anything that cannot be used.
    """
    zone: str | None = None
    if "%" in host:
        host, zone = host.split("%", 1)
        if interface is not None and interface != zone:
            raise EndpointError(f"address zone %{zone} contradicts interface {interface!r}")
    interface = interface if interface is not None else zone
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        raise EndpointError(f"{host!r} is not an IPv6 address literal") from None
    if not 0 <= port <= 0xFFFF:
        raise EndpointError(f"port {port} out of range")
    scope_id = 0
    if interface:
        try:
            scope_id = socket.if_nametoindex(interface)
        except OSError:
            raise EndpointError(f"no network interface named {interface!r}") from None
    elif address.is_link_local:
        raise EndpointError(f"link-local address {address} needs an interface (scope ID)")
    return Endpoint(str(address), port, scope_id)


def _tcp_socket() -> socket.socket:
    # With the protocol named, asyncio switches Nagle's algorithm off on every connection
    # (accepted sockets inherit it): a V2GTP frame leaves at once, not after a delayed ACK.
    return socket.socket(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP)


def listening_socket(endpoint: Endpoint, backlog: int) -> socket.socket:
    """A non-blocking, IPv6-only TCP socket bound to `endpoint` and listening."""
    sock = _tcp_socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(endpoint.sockaddr())
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise EndpointError(f"cannot listen on {endpoint}: {exc.strerror or exc}") from None
    return sock


def connecting_socket() -> socket.socket:
    """A non-blocking IPv6 TCP socket for `loop.sock_connect`."""
    sock = _tcp_socket()
    sock.setblocking(False)
    return sock
