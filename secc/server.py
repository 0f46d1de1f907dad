"""The SECC's asyncio edge: sockets, TLS, the loop clock, the EVSE controller, the backend.

`SeccServer` listens for V2GTP (TCP and/or TLS, optionally answering SDP on an interface)
and drives one `secc.session.SeccSession` per connection: it feeds each message with
`now=loop.time()` after taking an EVSE snapshot, runs the commands the session emits
(controller calls are awaited in order; backend calls run as tasks owned by the
connection, their results fed back), sends what the session queues, and re-arms one timer
from `get_timer()`. Billing records are committed to the `SessionStore` before the backend
hears of them, so a dead backend loses nothing; `billing_listeners` (the delivery worker's
wake-up) are called after that commit.

The operator's side reaches into running sessions only through the EVSE snapshot: a site
power cap (`set_power_cap`, from `secc.site`) lowers the limits and schedule every session
sees and asks ISO 15118-2 sessions to renegotiate; `stop_session` makes the snapshot ask
for a stop, which each protocol answers as its standard says.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from iso15118 import sap
from iso15118.sdp import TlsPolicy
from iso15118.transport.connection import ConnectionClosed, V2GTPConnection
from iso15118.transport.endpoint import Endpoint
from iso15118.transport.sdp_server import SdpServer
from iso15118.transport.tcp import ServerConfig, V2GTPServer
from iso15118.v2gtp import V2GTPMessage
from secc.context import ResumeState, SeccConfig
from secc.events import (
    AuthorizationResult,
    Authorize,
    CertificateKind,
    CertificateResult,
    ConnectionClosing,
    ControlEvent,
    MessageExchanged,
    RequestCertificate,
    SessionEnded,
    SessionEvent,
    SessionPaused,
    SessionStarted,
    SetContactors,
    SetTarget,
    StartCableCheck,
    StopOutput,
)
from secc.evse import EVSEController, EvseStatus
from secc.payment import PaymentProcessor
from secc.protocol import ProtocolSpec
from secc.records import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
    StopReason,
)
from secc.session import SeccSession

__all__ = ["BackendHook", "Exchange", "SeccServer", "SeccServerConfig", "default_specs"]

logger = logging.getLogger("secc.server")

#: how long a backend call may take before the SECC treats the backend as unavailable
BACKEND_TIMEOUT = 30.0
#: billing records kept in memory (`SeccServer.records`); the store has every one
RECENT_RECORDS = 100
#: paused sessions kept for their cars to resume; beyond this the oldest is forgotten (its
#: car gets a new session; the paused part is already billed)
MAX_PAUSED = 64


def remember_paused(
    paused: dict[bytes, ResumeState], session_id: bytes, resume: ResumeState
) -> None:
    """Keep `resume` for the car's return, forgetting the oldest beyond `MAX_PAUSED`."""
    paused.pop(session_id, None)
    paused[session_id] = resume
    while len(paused) > MAX_PAUSED:
        forgotten = next(iter(paused))
        del paused[forgotten]
        logger.info(
            "paused session forgotten (more than %d paused)",
            MAX_PAUSED,
            extra={"session_id": forgotten.hex().upper()},
        )


class BackendHook(Protocol):
    """What the server needs of the operator's backend (`secc.backend.Backend`)."""

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision: ...

    async def certificate_installation(self, request: Any) -> Any: ...

    async def certificate_update(self, request: Any) -> Any: ...

    async def session_ended(self, record: BillingRecord) -> None: ...


class BillingStore(Protocol):
    """What the server needs of `secc.store.SessionStore`."""

    def record_billing(self, record: BillingRecord) -> bool: ...


def default_specs() -> dict[sap.AppProtocol, ProtocolSpec]:
    """Every protocol this stack implements."""
    from secc.din.spec import SPEC as DIN
    from secc.iso2.spec import SPEC as ISO2

    return {sap.AppProtocol.ISO2: ISO2, sap.AppProtocol.DIN: DIN}


@dataclass(frozen=True, slots=True, kw_only=True)
class SeccServerConfig:
    """Where the SECC listens. `host` "::1" serves this machine (tests, the demo); on a
    charger give the PLC `interface` and its link-local address is used, with SDP."""

    protocol: SeccConfig = field(default_factory=SeccConfig)
    host: str = "::1"
    interface: str | None = None
    tcp_port: int | None = 0  # None: no plain TCP listener
    tls_port: int | None = None  # None: no TLS listener
    tls_context: Any = None  # ssl.SSLContext for the TLS listener
    sdp: bool = False
    tls_policy: TlsPolicy = TlsPolicy.ALLOWED
    max_connections: int = 4


Observer = Callable[[SessionEvent], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One request answered, as the operator sees it (timeline, metrics): `latency` is the
    seconds from the request's arrival to its response being encoded and ready to send."""

    session_id: str
    evse_id: str
    request: str
    response: str
    response_code: str
    at: datetime
    latency: float


def capped(status: EvseStatus, max_power: float | None) -> EvseStatus:
    """`status` as the sessions see it under a site cap of `max_power` W."""
    if max_power is None:
        return status
    limits = status.limits
    if max_power < limits.max_power:
        limits = replace(limits, max_power=max_power)
    schedule = tuple(
        replace(p, max_power=max_power) if p.max_power > max_power else p for p in status.schedule
    )
    return replace(status, limits=limits, schedule=schedule)


class SeccServer:
    """One charger's V2G communication: listeners, sessions, paused sessions."""

    def __init__(
        self,
        config: SeccServerConfig,
        *,
        controller: EVSEController,
        backend: BackendHook,
        store: BillingStore | None = None,
        specs: Mapping[sap.AppProtocol, ProtocolSpec] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        random: Callable[[int], bytes] = os.urandom,
        observers: tuple[Observer, ...] = (),
        processor: PaymentProcessor | None = None,
    ) -> None:
        self.config = config
        self.controller = controller
        self.backend = backend
        self.store = store
        self.specs = dict(specs or default_specs())
        self.clock = clock
        self.random = random
        self.observers = list(observers)
        self.processor = processor
        #: called with each billing record once it is committed to the store
        self.billing_listeners: list[Callable[[BillingRecord], None]] = []
        #: called with each answered request, once its response is ready to send
        self.exchange_observers: list[Callable[[Exchange], None]] = []
        self.power_cap: float | None = None
        self.drivers: dict[str, _ConnectionDriver] = {}
        self.paused: dict[bytes, ResumeState] = {}
        #: the latest billing records (the store keeps them all; this is for a quick look)
        self.records: deque[BillingRecord] = deque(maxlen=RECENT_RECORDS)
        self.live: dict[str, SeccSession] = {}
        self._servers: list[V2GTPServer] = []
        self._background: set[asyncio.Task[None]] = set()
        self._sdp: SdpServer | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        c = self.config
        if c.tcp_port is not None:
            self._servers.append(self._listener(c.tcp_port, None))
        if c.tls_port is not None:
            if c.tls_context is None:
                raise ValueError("a TLS port needs a TLS context")
            self._servers.append(self._listener(c.tls_port, c.tls_context))
        for server in self._servers:
            await server.start()
        if c.sdp:
            if c.interface is None:
                raise ValueError("SDP needs a network interface")
            self._sdp = await SdpServer.start(
                c.interface,
                tcp_port=self.tcp_endpoint.port if self.tcp_endpoint else None,
                tls_port=self.tls_endpoint.port if self.tls_endpoint else None,
                policy=c.tls_policy,
            )

    async def close(self) -> None:
        if self._sdp is not None:
            await self._sdp.close()
            self._sdp = None
        for server in self._servers:
            await server.close()
        self._servers.clear()
        if self._background:  # backend notifications still running get a moment to finish
            _done, pending = await asyncio.wait(set(self._background), timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def spawn(self, coroutine: Any) -> None:
        """Run `coroutine` beyond its connection (finished or cancelled by `close`)."""
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def __aenter__(self) -> SeccServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def tcp_endpoint(self) -> Endpoint | None:
        return self._endpoint(tls=False)

    @property
    def tls_endpoint(self) -> Endpoint | None:
        return self._endpoint(tls=True)

    def _endpoint(self, *, tls: bool) -> Endpoint | None:
        for server, is_tls in self._kinds():
            if is_tls == tls:
                return server.endpoint
        return None

    def _kinds(self) -> list[tuple[V2GTPServer, bool]]:
        out = []
        index = 0
        if self.config.tcp_port is not None and index < len(self._servers):
            out.append((self._servers[index], False))
            index += 1
        if self.config.tls_port is not None and index < len(self._servers):
            out.append((self._servers[index], True))
        return out

    def _listener(self, port: int, tls: Any) -> V2GTPServer:
        c = self.config
        server_config = ServerConfig(
            host=c.host,
            port=port,
            interface=c.interface,
            ssl=tls,
            max_connections=c.max_connections,
        )
        return V2GTPServer(self._serve, server_config)

    # --- operator controls ---------------------------------------------------------------------

    async def set_power_cap(self, max_power: float | None, *, renegotiate: bool = True) -> None:
        """Cap this EVSE at `max_power` W (None: no cap): the controller is told at once, every
        session's next answer carries the lower limit, and ISO 15118-2 sessions that already
        have a schedule are asked to renegotiate it (`renegotiate`)."""
        if max_power is not None and not max_power >= 0:
            raise ValueError(f"power cap {max_power!r} W must be a number >= 0")
        self.power_cap = max_power
        await self.controller.set_power_limit(max_power)
        if renegotiate:
            for driver in list(self.drivers.values()):
                driver.renegotiate()

    def stop_session(self, session_id: str, reason: StopReason = StopReason.EVSE_STOPPED) -> bool:
        """Ask the live session `session_id` to stop (its next answer tells the car); False
        if no such session runs here."""
        driver = self.drivers.get(session_id.upper())
        if driver is None:
            return False
        driver.stop_reason = reason
        return True

    def effective_status(self, status: EvseStatus, stop: StopReason | None = None) -> EvseStatus:
        """The controller's snapshot with the site cap and an operator stop applied."""
        status = capped(status, self.power_cap)
        if stop is not None and status.stop is None:
            status = replace(status, stop=stop)
        return status

    # --- one connection ----------------------------------------------------------------------

    async def _serve(self, connection: V2GTPConnection) -> None:
        driver = _ConnectionDriver(self, connection)
        await driver.run()


class _ConnectionDriver:
    """Moves bytes, results and timer expiries between one connection and its session."""

    def __init__(self, server: SeccServer, connection: V2GTPConnection) -> None:
        self.server = server
        self.connection = connection
        self.loop = asyncio.get_running_loop()
        self.results: asyncio.Queue[ControlEvent] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()
        self.session: SeccSession | None = None
        self.closing = False
        self.stop_reason: StopReason | None = None
        self._received_at = self.loop.time()

    async def _status(self) -> EvseStatus:
        status = await self.server.controller.status()
        return self.server.effective_status(status, self.stop_reason)

    def renegotiate(self) -> None:
        """The car was sent a schedule that no longer holds: ask it to renegotiate (ISO-2
        tells it with its next charge-loop answer; a car that has not been sent a schedule
        yet gets the present one anyway)."""
        data = None if self.session is None else self.session.data
        if self.session is not None and data is not None and data.sa_schedule_tuple_id:
            self.session.request_renegotiation()

    async def run(self) -> None:
        s = self.server
        status = await self._status()
        session = SeccSession(
            s.config.protocol,
            specs=s.specs,
            evse_id=s.controller.evse_id,
            energy_modes=s.controller.energy_modes,
            status=status,
            now=self.loop.time(),
            clock=s.clock,
            random=s.random,
            tls=self.connection.tls is not None,
            resumable=s.paused,
        )
        self.session = session
        receive: asyncio.Task[V2GTPMessage] | None = None
        result: asyncio.Task[ControlEvent] | None = None
        try:
            while not session.closed:
                receive = receive or asyncio.ensure_future(self.connection.receive())
                result = result or asyncio.ensure_future(self.results.get())
                timer = session.get_timer()
                timeout = None if timer is None else max(0.0, timer - self.loop.time())
                done, _ = await asyncio.wait(
                    {receive, result}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                now = self.loop.time()
                if result in done:
                    session.handle_event(result.result(), now)
                    result = None
                if receive in done:
                    try:
                        message = receive.result()
                    except ConnectionClosed:
                        session.connection_lost(now)
                        await self._process()
                        break
                    receive = None
                    self._received_at = now
                    session.update_status(await self._status())
                    session.receive_message(message.payload_type, message.payload, now)
                if not done:
                    session.handle_timer(now)
                await self._process()
                for out in session.messages_to_send():
                    await self.connection.send(out.payload_type, out.payload)
        finally:
            for task in (receive, result):
                if task is not None:
                    task.cancel()
            for backend_task in self.tasks:
                backend_task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            if not session.closed:
                session.connection_lost(self.loop.time())
                await self._process()
            if session.data is not None:
                s.live.pop(session.session_id, None)
                if s.drivers.get(session.session_id) is self:
                    del s.drivers[session.session_id]

    def _report_exchange(self, event: MessageExchanged) -> None:
        s = self.server
        if not s.exchange_observers:
            return
        record = Exchange(
            session_id=event.session_id,
            evse_id=s.controller.evse_id,
            request=event.request_name,
            response=event.response_name,
            response_code=event.response_code,
            at=s.clock(),
            latency=self.loop.time() - self._received_at,
        )
        for observer in s.exchange_observers:
            try:
                observer(record)
            except Exception:
                logger.exception("exchange observer failed", extra={"session_id": event.session_id})

    async def _process(self) -> None:
        session = self.session
        assert session is not None
        while (event := session.next_event()) is not None:
            for observer in self.server.observers:
                observer(event)
            await self._run(event)

    async def _run(self, event: SessionEvent) -> None:
        s = self.server
        c = s.controller
        match event:
            case StartCableCheck():
                await c.start_cable_check()
            case SetTarget(voltage, current, pre_charge):
                await c.set_target(voltage, current, pre_charge=pre_charge)
            case SetContactors(closed):
                await c.set_contactors(closed)
            case StopOutput():
                await c.stop_output()
            case Authorize(request):
                self._spawn(self._authorize(request))
            case RequestCertificate():
                self._spawn(self._certificate(event))
            case SessionStarted(session_id, _protocol, resumed):
                assert self.session is not None
                s.live[session_id] = self.session
                s.drivers[session_id] = self
                if resumed:  # joined once; afterwards the SessionID is spent
                    s.paused.pop(bytes.fromhex(session_id), None)
                await c.session_started(session_id)
            case SessionPaused(session_id, resume, record):
                remember_paused(s.paused, bytes.fromhex(session_id), resume)
                if record is not None:
                    await self._billed(record)
                await c.session_ended(session_id, StopReason.EV_PAUSED)
            case SessionEnded(record):
                await self._ended(record)
            case MessageExchanged():
                self._report_exchange(event)
            case ConnectionClosing():
                self.closing = True

    async def _ended(self, record: BillingRecord) -> None:
        await self._billed(record)
        await self.server.controller.session_ended(record.session_id, record.stop_reason)

    async def _billed(self, record: BillingRecord) -> None:
        s = self.server
        s.records.append(record)
        if s.store is not None:
            # durable before anyone hears of it: the listeners (the station marks the session
            # ended, the delivery worker wakes) run only after this commit returned
            s.store.record_billing(record)
        for listener in s.billing_listeners:
            listener(record)
        # the backend hears of it in the background: a slow or dead backend must not hold
        # up the car's SessionStopRes (the record is safe in the store and the outbox)
        s.spawn(self._notify_backend(record))

    async def _notify_backend(self, record: BillingRecord) -> None:
        try:
            async with asyncio.timeout(BACKEND_TIMEOUT):
                await self.server.backend.session_ended(record)
        except Exception:
            logger.exception(
                "backend did not take billing record %s (kept in the store)",
                record.record_id,
                extra={"session_id": record.session_id},
            )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _authorize(self, request: AuthorizationRequest) -> None:
        processor = self.server.processor
        try:
            async with asyncio.timeout(BACKEND_TIMEOUT):
                decision = await self.server.backend.authorize(request)
                if decision.accepted and processor is not None:
                    # the operator knows the contract; the processor may still refuse payment
                    payment = await processor.authorize(request)
                    if not payment.accepted:
                        decision = payment
        except Exception as exc:
            logger.warning(
                "authorization failed: %s", exc, extra={"session_id": request.session_id}
            )
            decision = AuthorizationDecision(
                status=AuthorizationStatus.UNAVAILABLE, reason=str(exc) or type(exc).__name__
            )
        await self.results.put(AuthorizationResult(decision))

    async def _ask_certificate(self, event: RequestCertificate) -> Any:
        from secc.backend import CertificateInstallationRequest, CertificateUpdateRequest

        backend = self.server.backend
        fields = {
            "session_id": event.session_id,
            "evse_id": event.evse_id,
            "body": event.request,
            "signature": event.signature,
            "exi": event.exi,
        }
        if event.kind == CertificateKind.INSTALLATION:
            return await backend.certificate_installation(CertificateInstallationRequest(**fields))
        return await backend.certificate_update(CertificateUpdateRequest(**fields))

    async def _certificate(self, event: RequestCertificate) -> None:
        try:
            async with asyncio.timeout(BACKEND_TIMEOUT):
                answer = await self._ask_certificate(event)
            result = CertificateResult(
                body=getattr(answer, "body", answer), signature=getattr(answer, "signature", None)
            )
        except Exception as exc:
            code = getattr(exc, "response_code", "FAILED")
            logger.warning(
                "certificate %s failed: %s", event.kind, exc, extra={"session_id": event.session_id}
            )
            result = CertificateResult(error_code=str(code))
        await self.results.put(result)
