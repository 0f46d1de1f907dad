"""Network interfaces: name → index, and the IPv6 link-local address to announce and bind.

ISO 15118 runs over IPv6 link-local addresses on the interface of the PLC modem (or a veth in
tests); every socket needs the interface's index as scope ID. The addresses come from
`/proc/net/if_inet6` (Linux), which shows the addresses of the calling thread's network namespace
and their state flags. An address still in duplicate address detection (DAD) is *tentative*:
binding it fails with EADDRNOTAVAIL, so `wait_for_link_local` polls until DAD is over.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from enum import IntFlag
from ipaddress import IPv6Address
from pathlib import Path
from typing import Final

__all__ = [
    "IF_INET6",
    "AddressFlag",
    "InterfaceAddress",
    "NetifError",
    "bind_to_device",
    "interface_addresses",
    "interface_index",
    "link_local_address",
    "parse_if_inet6",
    "wait_for_link_local",
]

logger = logging.getLogger(__name__)

IF_INET6: Final = Path("/proc/net/if_inet6")


class AddressFlag(IntFlag):
    """The IFA_F_* flags of an address (linux/if_addr.h), as `/proc/net/if_inet6` shows them."""

    SECONDARY = 0x01
    NODAD = 0x02
    OPTIMISTIC = 0x04
    DADFAILED = 0x08
    HOMEADDRESS = 0x10
    DEPRECATED = 0x20
    TENTATIVE = 0x40
    PERMANENT = 0x80


class NetifError(Exception):
    """An interface that does not exist, or has no usable link-local address."""


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    """One IPv6 address of an interface."""

    interface: str
    index: int
    address: IPv6Address
    prefix_length: int
    flags: AddressFlag

    @property
    def usable(self) -> bool:
        """Bindable now: DAD has finished (or runs optimistically, RFC 4429) and did not fail."""
        if self.flags & AddressFlag.DADFAILED:
            return False
        return not self.flags & AddressFlag.TENTATIVE or bool(self.flags & AddressFlag.OPTIMISTIC)


def interface_index(name: str) -> int:
    """The interface's index (the scope ID of its link-local addresses)."""
    try:
        return socket.if_nametoindex(name)
    except OSError as exc:
        raise NetifError(f"no network interface {name!r}") from exc


def bind_to_device(sock: socket.socket, name: str) -> bool:
    """Restrict `sock` to interface `name` (SO_BINDTODEVICE), before it is bound.

    Only datagrams that arrive on that interface reach the socket, and it sends only through it.
    Returns False, after a warning, where the process lacks the privilege (CAP_NET_RAW on older
    kernels); the caller then filters by scope ID instead.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name.encode())
    except PermissionError:
        logger.warning("not permitted to bind a socket to %s; filtering by scope ID instead", name)
        return False
    return True


def parse_if_inet6(text: str) -> list[InterfaceAddress]:
    """Parse the contents of `/proc/net/if_inet6`: address, index, prefix, scope, flags, name."""
    addresses = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 6:
            continue
        raw, index, prefix, _scope, flags, name = fields
        addresses.append(
            InterfaceAddress(
                interface=name,
                index=int(index, 16),
                address=IPv6Address(bytes.fromhex(raw)),
                prefix_length=int(prefix, 16),
                flags=AddressFlag(int(flags, 16)),
            )
        )
    return addresses


def interface_addresses(name: str, *, path: Path = IF_INET6) -> list[InterfaceAddress]:
    """The IPv6 addresses of interface `name` in the current network namespace."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise NetifError(f"cannot read {path}: {exc}") from exc
    return [entry for entry in parse_if_inet6(text) if entry.interface == name]


def link_local_address(name: str, *, path: Path = IF_INET6) -> IPv6Address | None:
    """The interface's usable link-local address (a non-deprecated one first), or None."""
    candidates = [
        entry
        for entry in interface_addresses(name, path=path)
        if entry.address.is_link_local and entry.usable
    ]
    candidates.sort(key=lambda entry: bool(entry.flags & AddressFlag.DEPRECATED))
    return candidates[0].address if candidates else None


async def wait_for_link_local(
    name: str, *, timeout: float = 5.0, interval: float = 0.05, path: Path = IF_INET6
) -> IPv6Address:
    """The interface's link-local address, waiting up to `timeout` seconds for DAD to finish.

    Raises `NetifError` if the interface does not exist or no address becomes usable in time.
    """
    interface_index(name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        address = link_local_address(name, path=path)
        if address is not None:
            return address
        if loop.time() >= deadline:
            entries = interface_addresses(name, path=path)
            states = [f"{entry.address} ({entry.flags!r})" for entry in entries]
            raise NetifError(
                f"{name} has no usable IPv6 link-local address after {timeout} s: "
                f"{', '.join(states) or 'no IPv6 addresses'}"
            )
        logger.debug("waiting for a usable link-local address on %s", name)
        await asyncio.sleep(interval)
