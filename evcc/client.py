"""The asyncio adapter of the EV simulator: runs an `EvSession` (or a `ReplaySession`) over
one V2GTP connection.

    result = await run_ev(config, "fe80::1", 15118, interface="eth1")
    result = await run_ev(config, None, None, interface="eth1")      # SDP discovery first

The adapter only moves bytes and time: it feeds the SECC's messages to the core with
`now=loop.time()`, sends what the core queued, re-arms one timer from `get_timer()`, and
hands ControlPilotChange events to `evse_hook` (e.g. an in-process simulated EVSE). The
connection's own idle timeout is off: the core keeps the protocol's timers (and a `Silence`
fault must be able to wait for the SECC's sequence timeout).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from evcc.config import EvccConfig
from evcc.events import ControlPilotChange, EvEvent, SessionFinished
from evcc.session import EvSession
from iso15118.sap import AppProtocol
from iso15118.sdp import Security
from iso15118.transport.connection import ConnectionOptions
from iso15118.transport.sdp_client import discover
from iso15118.transport.stream import StreamLimits
from iso15118.transport.tcp import ConnectionClosed, V2GTPConnection, open_v2gtp_connection
from iso15118.v2gtp import V2GTPReassembler

__all__ = ["EvCore", "EvResult", "EvseHook", "drive", "run_ev"]

logger = logging.getLogger("evcc.client")

EvseHook = Callable[[ControlPilotChange], Awaitable[None] | None]


class EvCore(Protocol):
    """The sans-IO API shared by `EvSession` and `ReplaySession`."""

    @property
    def finished(self) -> SessionFinished | None: ...

    def start(self, now: float) -> None: ...
    def receive_data(self, data: bytes, now: float) -> None: ...
    def next_event(self) -> EvEvent | None: ...
    def data_to_send(self) -> bytes: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def close(self, reason: str = ...) -> None: ...


@dataclass(frozen=True, slots=True)
class EvResult:
    protocol: AppProtocol | None
    ok: bool
    reason: str
    energy_wh: float
    final_soc: float
    requests_sent: int
    responses_received: int
    session_id: bytes
    paused: bool
    events: tuple[EvEvent, ...]
    #: ISO-2: the SalesTariff the car was shown (exi_schemas.iso2.SalesTariffType), if any
    sales_tariff: Any = None
    #: its PnC signature verified with the contract chain's sub-CA (None: nothing to check)
    sales_tariff_verified: bool | None = None


async def _flush(core: EvCore, connection: V2GTPConnection, framer: V2GTPReassembler) -> None:
    for message in framer.feed(core.data_to_send()):
        await connection.send(message.payload_type, message.payload)


async def _drain(core: EvCore, events: list[EvEvent], hook: EvseHook | None) -> None:
    while (event := core.next_event()) is not None:
        events.append(event)
        if hook is not None and isinstance(event, ControlPilotChange):
            pending = hook(event)
            if pending is not None:
                await pending


async def drive(
    core: EvCore, connection: V2GTPConnection, *, evse_hook: EvseHook | None = None
) -> tuple[EvEvent, ...]:
    """Run `core` over `connection` until the session finishes; close the connection."""
    loop = asyncio.get_running_loop()
    framer = V2GTPReassembler()
    events: list[EvEvent] = []
    core.start(loop.time())
    try:
        while core.finished is None:
            await _flush(core, connection, framer)
            await _drain(core, events, evse_hook)
            if core.finished is not None:
                break
            timer = core.get_timer()
            try:
                async with asyncio.timeout_at(timer):
                    message = await connection.receive()
            except TimeoutError:
                now = loop.time()
                core.handle_timer(now if timer is None else max(now, timer))
                continue
            core.receive_data(message.pack(), loop.time())
        await _flush(core, connection, framer)
    except ConnectionClosed as exc:
        core.close(f"connection closed: {exc}")
    finally:
        await _drain(core, events, evse_hook)
        await connection.close()
    return tuple(events)


async def _endpoint(
    config: EvccConfig, host: str | None, port: int | None, interface: str | None
) -> tuple[str, int]:
    if host is not None and port is not None:
        return host, port
    if interface is None:
        raise ValueError("give host and port, or an interface for SDP discovery")
    found = await discover(interface, Security.TLS if config.tls else Security.NO_TLS)
    if found.security is Security.TLS and not config.tls:
        logger.warning("the SECC at [%s]:%d wants TLS", found.address, found.port)
    return str(found.address), found.port


async def run_ev(
    config: EvccConfig,
    host: str | None,
    port: int | None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    interface: str | None = None,
    evse_hook: EvseHook | None = None,
    random: Callable[[int], bytes] = os.urandom,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> EvResult:
    """Connect (after SDP discovery on `interface` when no host is given), run one session,
    return its summary."""
    address, number = await _endpoint(config, host, port, interface)
    options = ConnectionOptions(limits=StreamLimits(idle_timeout=None))
    connection = await open_v2gtp_connection(
        address, number, interface, ssl_context, options=options
    )
    session = EvSession(config, random=random, clock=clock)
    events = await drive(session, connection, evse_hook=evse_hook)
    end = session.finished or SessionFinished(False, "not finished")
    return EvResult(
        protocol=session.protocol,
        ok=end.ok,
        reason=end.reason,
        energy_wh=session.ctx.battery.energy_wh,
        final_soc=session.ctx.battery.soc,
        requests_sent=session.requests_sent,
        responses_received=session.responses_received,
        session_id=end.session_id,
        paused=end.paused,
        events=events,
        sales_tariff=session.ctx.sales_tariff,
        sales_tariff_verified=session.ctx.sales_tariff_verified,
    )
