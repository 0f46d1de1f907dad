"""One charging station: several EVSEs in one process, their store, billing and site limit.

A `Station` owns one `secc.server.SeccServer` per EVSE (each with its controller and its own
listeners), the `secc.store.SessionStore` they share, the billing delivery worker
(`secc.billing.outbox.DeliveryWorker`, woken after each billing record is committed), the
site power limit shared among the EVSEs by `secc.site.allocate`, and the metrics the station
API serves. It is the one object the operator's side talks to: the HTTP API (`secc.api`) and
`iso15118 status` read and steer the station only through the methods below.

What it records, per EVSE and session:

* sessions in the store (started, identified, paused, ended) and each session's message
  timeline: kept in memory while the session runs and written to the store in one
  transaction when it ends (a per-message fsync would cost the charge loop its latency).
  These bookkeeping writes go, in order, through one writer in a worker thread, so their
  fsyncs never stall the event loop; billing records are not bookkeeping: the server
  commits each before the car's SessionStopRes;
* the last error of each EVSE (a FAILED response code, a fault stop, a controller fault);
* for crash recovery: who is charging as soon as the backend is asked (the Authorize
  command), and each live session's latest meter reading, persisted from the controller
  polls every `meter_save_interval` seconds or `meter_save_wh` Wh, whichever comes first.
  `start` first closes the sessions a previous process left open (`secc.recovery`),
  billing them up to the last reading known, before the servers listen;
* metrics: sessions, energy, responses by code, message latency, power, outbox state.

Site allocation runs whenever demand changes (a session starts or ends, a car states its
limits in ChargeParameterDiscovery), when the limit changes, and every `rebalance_interval`
seconds (departure times move on). Decreases are applied before increases so that the
EVSEs' caps never add up to more than the limit while a change is applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from functools import partial
from typing import Any, Protocol

from secc.context import SessionData
from secc.events import (
    Authorize,
    SessionEnded,
    SessionEvent,
    SessionPaused,
    SessionStarted,
)
from secc.evse import ControlPilotState, EvseStatus, IsolationStatus
from secc.records import BillingRecord, MeterReading, StopReason
from secc.recovery import EvseNow, recover
from secc.server import Exchange, SeccServer
from secc.site import Demand, allocate, apply_order, renegotiation_needed, session_demand
from secc.store import (
    Direction,
    OutboxEntry,
    OutboxState,
    SessionState,
    SessionStore,
    StoredSession,
    TimelineEntry,
)

__all__ = [
    "CertificateView",
    "EvseState",
    "EvseView",
    "LiveSession",
    "Station",
    "StationStatus",
]

logger = logging.getLogger("secc.station")

#: the timeline kept in memory for one live session (the oldest entries drop out beyond it)
TIMELINE_LIMIT = 2000
FAULT_STOPS = frozenset({StopReason.EVSE_FAULT, StopReason.PROTOCOL_ERROR, StopReason.TIMEOUT})


class EvseState(Enum):
    AVAILABLE = "available"  # no car
    OCCUPIED = "occupied"  # a car is connected, not (yet) charging
    CHARGING = "charging"
    PAUSED = "paused"  # a paused session waits for its car to come back
    FAULTED = "faulted"
    UNAVAILABLE = "unavailable"  # the controller cannot be read


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseView:
    evse_id: str
    state: EvseState
    session_id: str | None
    protocol: str | None
    power_w: float
    voltage_v: float
    current_a: float
    meter_wh: int | None
    session_energy_wh: float | None
    max_power_w: float
    allocated_w: float | None
    last_error: str | None
    last_error_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateView:
    name: str  # what it is for, e.g. "tls" or "contract-root"
    subject: str
    not_after: datetime
    days_left: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StationStatus:
    evses: tuple[EvseView, ...]
    site_limit_w: float | None
    certificates: tuple[CertificateView, ...]
    outbox: Mapping[str, int]
    started_at: datetime
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveSession:
    session_id: str
    evse_id: str
    protocol: str
    started_at: datetime
    charging: bool
    kind: str | None
    contract_id: str | None
    id_token: str | None
    energy_wh: float
    power_w: float


class Delivery(Protocol):
    """What the station needs of `secc.billing.outbox.DeliveryWorker`."""

    observers: list[Callable[[Any], None]]

    def wake(self) -> None: ...

    async def run(self) -> None: ...


class Metrics(Protocol):
    """What the station feeds (`secc.metrics.Metrics`)."""

    def on_session_started(self, evse_id: str, protocol: str) -> None: ...

    def on_session_ended(
        self, evse_id: str, protocol: str, stop_reason: str, energy_wh: float
    ) -> None: ...

    def on_exchange(
        self, evse_id: str, request: str, response_code: str, latency_s: float
    ) -> None: ...

    def set_evse(self, evse_id: str, state: str, power_w: float) -> None: ...

    def set_site_limit(self, watts: float | None) -> None: ...

    def set_outbox(self, counts: Mapping[str, int]) -> None: ...

    def on_delivery(self, destination: str, outcome: str) -> None: ...

    def render(self) -> str: ...


@dataclass(slots=True)
class _Unit:
    """One EVSE of the station and what the station knows about it."""

    server: SeccServer
    status: EvseStatus | None = None  # the controller's last snapshot, uncapped
    readable: bool = True
    last_error: str | None = None
    last_error_at: datetime | None = None
    allocated: float | None = None
    timelines: dict[str, deque[TimelineEntry]] = field(default_factory=dict)
    #: crash recovery: per live session, when and what meter reading was last persisted
    meters_saved: dict[str, tuple[datetime, MeterReading]] = field(default_factory=dict)
    last_stop: MeterReading | None = None  # the last billed meter_stop (a floor for the next)
    #: by record ID: the write that closes the session, queued once the record is committed
    after_commit: dict[str, Callable[[], object]] = field(default_factory=dict)

    @property
    def evse_id(self) -> str:
        return self.server.controller.evse_id


def _default_metrics(version: str, started_at: datetime) -> Metrics:
    from secc.metrics import Metrics as Registry

    registry: Metrics = Registry(version=version, started_at=started_at.timestamp())
    return registry


class Station:
    """Several EVSEs, one store, one billing delivery, one site limit (module docstring)."""

    def __init__(
        self,
        servers: Sequence[SeccServer],
        *,
        store: SessionStore,
        delivery: Delivery | None = None,
        site_limit: float | None = None,
        metrics: Metrics | None = None,
        certificates: Sequence[tuple[str, Any]] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_interval: float = 0.5,
        rebalance_interval: float = 5.0,
        version: str = "",
        meter_save_interval: float = 10.0,
        meter_save_wh: int = 100,
    ) -> None:
        ids = [s.controller.evse_id for s in servers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"EVSEIDs must be unique in a station: {ids}")
        if not servers:
            raise ValueError("a station needs at least one EVSE")
        self.store = store
        self.delivery = delivery
        self.clock = clock
        self.poll_interval = poll_interval
        self.rebalance_interval = rebalance_interval
        self.version = version
        self.meter_save_interval = meter_save_interval
        self.meter_save_wh = meter_save_wh
        self.started_at = clock()
        self.metrics: Metrics = metrics or _default_metrics(version, self.started_at)
        self._site_limit = _checked_limit(site_limit)
        self._certificates = tuple(certificates)  # (name, cryptography x509.Certificate)
        self._units = {s.controller.evse_id: _Unit(s) for s in servers}
        self._tasks: list[asyncio.Task[None]] = []
        self._rebalance = asyncio.Event()
        self._lock = asyncio.Lock()
        self._writes: asyncio.Queue[Callable[[], object]] | None = None
        for unit in self._units.values():
            self._attach(unit)
        if delivery is not None:
            delivery.observers.append(
                lambda a: self.metrics.on_delivery(a.destination, a.outcome.value)
            )

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._writes = asyncio.Queue()
        self._tasks.append(asyncio.create_task(self._writer()))
        for unit in self._units.values():
            await self._poll(unit)
        await self._recover()
        await self.rebalance()
        for unit in self._units.values():
            await unit.server.start()
        self._tasks.append(asyncio.create_task(self._poller()))
        self._tasks.append(asyncio.create_task(self._balancer()))
        if self.delivery is not None:
            self._tasks.append(asyncio.create_task(self.delivery.run()))
        self.metrics.set_site_limit(self._site_limit)

    async def close(self) -> None:
        for unit in self._units.values():
            await unit.server.close()
        if self._writes is not None:  # what the sessions left to write goes to the store
            try:
                async with asyncio.timeout(10):
                    await self._writes.join()
            except TimeoutError:
                logger.error("station bookkeeping not all written at close")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._writes = None  # from now on a write is made at once

    async def __aenter__(self) -> Station:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def servers(self) -> dict[str, SeccServer]:
        return {evse_id: unit.server for evse_id, unit in self._units.items()}

    # --- reading -----------------------------------------------------------------------------

    def status(self) -> StationStatus:
        counts = self._outbox_counts()
        return StationStatus(
            evses=tuple(self._view(unit) for unit in self._units.values()),
            site_limit_w=self._site_limit,
            certificates=self._certificate_views(),
            outbox=counts,
            started_at=self.started_at,
            version=self.version,
        )

    def evse(self, evse_id: str) -> EvseView | None:
        unit = self._units.get(evse_id)
        return None if unit is None else self._view(unit)

    def live_sessions(self) -> list[LiveSession]:
        out = []
        for unit in self._units.values():
            for session_id, session in unit.server.live.items():
                data = session.data
                if data is None:
                    continue
                status = unit.status
                energy = _session_energy(status, data) or 0.0
                authorization = data.authorization
                out.append(
                    LiveSession(
                        session_id=session_id,
                        evse_id=unit.evse_id,
                        protocol=data.protocol.schema,
                        started_at=data.started_at,
                        charging=data.charging,
                        kind=(
                            None
                            if authorization is None
                            else ("contract" if data.contract else "external")
                        ),
                        contract_id=data.contract.emaid if data.contract else None,
                        id_token=data.id_token,
                        energy_wh=energy,
                        power_w=_power(status) if data.charging else 0.0,
                    )
                )
        return out

    def sessions(
        self,
        *,
        state: SessionState | None = None,
        evse_id: str | None = None,
        contract_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredSession]:
        """Sessions from the store, most recent first, filtered (started in [since, until))."""
        return self.store.sessions(
            state=state,
            evse_id=evse_id,
            contract_id=contract_id,
            since=since,
            until=until,
            limit=limit,
        )

    def session(self, session_id: str) -> StoredSession | None:
        return self.store.session(session_id.upper())

    def timeline(self, session_id: str) -> list[TimelineEntry]:
        key = session_id.upper()
        for unit in self._units.values():
            live = unit.timelines.get(key)
            if live is not None:
                return list(live)
        return self.store.timeline(key)

    def billing_records(
        self, *, session_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[BillingRecord]:
        return self.store.billing_records(
            session_id=None if session_id is None else session_id.upper(), since=since, limit=limit
        )

    def outbox(self, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Outbox items, newest first (`state`: "pending", "held", "delivered" or None)."""
        wanted = None if state is None else OutboxState(state)
        return self.store.outbox_entries(wanted, newest_first=True, limit=limit)

    # --- steering ----------------------------------------------------------------------------

    async def stop_session(self, session_id: str) -> bool:
        for unit in self._units.values():
            if unit.server.stop_session(session_id):
                logger.info("operator stop requested", extra={"session_id": session_id.upper()})
                return True
        return False

    @property
    def site_limit_w(self) -> float | None:
        return self._site_limit

    async def set_site_limit(self, watts: float | None) -> None:
        self._site_limit = _checked_limit(watts)
        logger.info("site limit set to %s W", watts)
        self.metrics.set_site_limit(self._site_limit)
        await self.rebalance()

    async def retry_billing(self, record_id: str | None) -> int:
        released = self.store.release(at=self.clock(), record_id=record_id)
        if self.delivery is not None:
            self.delivery.wake()
        return released

    # --- site allocation ---------------------------------------------------------------------

    async def rebalance(self) -> None:
        """Share the site limit among the EVSEs now (`secc.site.allocate`); apply decreases
        first; ask cars to renegotiate only when their change is worth it."""
        if self._site_limit is None and all(u.allocated is None for u in self._units.values()):
            return
        async with self._lock:
            changes: list[tuple[str, float | None]]
            if self._site_limit is None:  # the limit was lifted: every cap goes
                changes = [(evse_id, None) for evse_id in self._units]
            else:
                demands = [self._demand(unit) for unit in self._units.values()]
                current = {evse_id: unit.allocated for evse_id, unit in self._units.items()}
                changes = list(apply_order(current, allocate(self._site_limit, demands)))
            for evse_id, cap in changes:
                unit = self._units[evse_id]
                if unit.allocated == cap:
                    continue
                unit.allocated = cap
                await unit.server.set_power_cap(cap, renegotiate=self._worth_it(unit, cap))

    @staticmethod
    def _worth_it(unit: _Unit, cap: float | None) -> bool:
        """Whether the car on `unit` should get a new schedule for `cap`: measured against
        the PMax it was last sent (ChargeParameterDiscovery), not our last allocation."""
        for session in unit.server.live.values():
            data = session.data
            if data is None or not data.offered_schedule:
                continue
            sent = data.offered_schedule[0].max_power
            if cap is None:
                return True
            return renegotiation_needed(sent, cap, ev_max_power=data.ev_max_power)
        return False

    def _demand(self, unit: _Unit) -> Demand:
        status = unit.status
        max_power = status.limits.max_power if status is not None else 0.0
        live = [s.data for s in unit.server.live.values() if s.data is not None]
        if not live:
            return Demand(evse_id=unit.evse_id, evse_max_power=max_power)
        data = live[0]
        # the car's departure time and energy request count from its last
        # ChargeParameterDiscovery (a renegotiation restates them)
        delivered = 0.0
        meter = None if status is None or status.meter is None else status.meter.energy_wh
        if data.discovery_meter_wh is not None and meter is not None:
            delivered = float(meter - data.discovery_meter_wh)
        since = data.discovery_at or data.started_at
        return session_demand(
            evse_id=unit.evse_id,
            evse_max_power=max_power,
            ev_max_power=data.ev_max_power,
            departure_time=data.departure_time,
            energy_request=data.energy_request,
            elapsed=(self.clock() - since).total_seconds(),
            delivered=delivered,
        )

    async def _balancer(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.rebalance_interval):
                    await self._rebalance.wait()
            except TimeoutError:
                pass
            self._rebalance.clear()
            try:
                await self.rebalance()
            except Exception:
                logger.exception("site allocation failed")

    # --- what the servers report -------------------------------------------------------------

    def _attach(self, unit: _Unit) -> None:
        server = unit.server
        server.observers.append(lambda event: self._on_event(unit, event))
        server.exchange_observers.append(lambda exchange: self._on_exchange(unit, exchange))
        server.billing_listeners.append(lambda record: self._committed(unit, record))
        if self.delivery is not None:
            delivery = self.delivery
            server.billing_listeners.append(lambda _record: delivery.wake())

    def _on_event(self, unit: _Unit, event: SessionEvent) -> None:
        try:
            match event:
                case SessionStarted(session_id, protocol, resumed):
                    unit.timelines[session_id] = deque(maxlen=TIMELINE_LIMIT)
                    self._write(
                        partial(
                            self.store.session_started,
                            session_id,
                            evse_id=unit.evse_id,
                            protocol=protocol,
                            at=self.clock(),
                            meter_start=self._start_reading(unit),
                        )
                    )
                    if not resumed:
                        self.metrics.on_session_started(unit.evse_id, protocol)
                    self._rebalance.set()
                case Authorize(request):  # known now, in case the process dies before the end
                    self._write(
                        partial(
                            self.store.session_identified,
                            request.session_id,
                            kind=request.kind,
                            contract_id=request.contract_id,
                            id_token=request.id_token,
                        )
                    )
                # the session is marked paused or ended only once its record is committed
                # (`_committed`): a kill in between leaves it open, and recovery finds it
                case SessionPaused(session_id, _resume, record):
                    closing = partial(self.store.session_paused, session_id, at=self.clock())
                    if record is None:
                        self._write(closing)
                    else:
                        unit.after_commit[record.record_id] = closing
                    self._finish(unit, session_id, record)
                case SessionEnded(record):
                    unit.after_commit[record.record_id] = partial(
                        self.store.session_ended,
                        record.session_id,
                        at=record.stopped_at,
                        reason=record.stop_reason,
                    )
                    if record.stop_reason in FAULT_STOPS and unit.last_error is None:
                        self._error(unit, f"session ended: {record.stop_reason.value}")
                    self._finish(unit, record.session_id, record)
        except Exception:
            logger.exception("station bookkeeping failed for %s", type(event).__name__)

    def _committed(self, unit: _Unit, record: BillingRecord) -> None:
        closing = unit.after_commit.pop(record.record_id, None)
        if closing is not None:
            self._write(closing)

    def _finish(self, unit: _Unit, session_id: str, record: BillingRecord | None) -> None:
        unit.meters_saved.pop(session_id, None)
        if record is not None:
            if record.meter_stop is not None:
                unit.last_stop = record.meter_stop
            if record.kind is not None:
                self._write(
                    partial(
                        self.store.session_identified,
                        session_id,
                        kind=record.kind,
                        contract_id=record.contract_id,
                        id_token=record.id_token,
                    )
                )
            self.metrics.on_session_ended(
                unit.evse_id, record.protocol, record.stop_reason.value, float(record.energy_wh)
            )
        timeline = unit.timelines.pop(session_id, None)
        if timeline:
            self._write(partial(self.store.add_timeline_entries, list(timeline)))
        self._rebalance.set()

    async def written(self) -> None:
        """Wait until the bookkeeping writes queued so far (sessions started, identified,
        ended; timelines) are in the store, so that a read after it sees them: what the API
        lists agrees with what it shows live. Gives up after 5 s (the store is stuck)."""
        queue = self._writes
        if queue is None:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        queue.put_nowait(lambda: loop.call_soon_threadsafe(settle))
        try:
            async with asyncio.timeout(5):
                await done
        except TimeoutError:
            logger.warning("station bookkeeping is behind: a read may miss the latest writes")

    def _write(self, write: Callable[[], object]) -> None:
        """Queue one bookkeeping write (run at once when the station is not started)."""
        if self._writes is None:
            write()
        else:
            self._writes.put_nowait(write)

    async def _writer(self) -> None:
        queue = self._writes
        assert queue is not None
        while True:
            write = await queue.get()
            try:
                await asyncio.to_thread(write)
            except Exception:
                logger.exception("station bookkeeping not stored")
            finally:
                queue.task_done()

    def _on_exchange(self, unit: _Unit, exchange: Exchange) -> None:
        timeline = unit.timelines.get(exchange.session_id)
        if timeline is None:  # SupportedAppProtocol before SessionSetup, or a late answer
            timeline = unit.timelines.setdefault(exchange.session_id, deque(maxlen=TIMELINE_LIMIT))
        seq = len(timeline) + 1
        timeline.append(
            TimelineEntry(
                session_id=exchange.session_id,
                seq=seq,
                direction=Direction.RECEIVED,
                message=exchange.request,
                response_code=None,
                at=exchange.at,
            )
        )
        timeline.append(
            TimelineEntry(
                session_id=exchange.session_id,
                seq=seq + 1,
                direction=Direction.SENT,
                message=exchange.response,
                response_code=exchange.response_code,
                at=exchange.at,
            )
        )
        self.metrics.on_exchange(
            unit.evse_id, exchange.request, exchange.response_code, exchange.latency
        )
        if exchange.response_code.startswith("FAILED"):
            self._error(unit, f"{exchange.request}: {exchange.response_code}")
        if exchange.request == "ChargeParameterDiscoveryReq":
            self._rebalance.set()  # the car's limits are known now

    def _error(self, unit: _Unit, text: str) -> None:
        unit.last_error = text
        unit.last_error_at = self.clock()

    # --- polling the controllers -------------------------------------------------------------

    async def _poller(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            for unit in self._units.values():
                await self._poll(unit)
            self.metrics.set_outbox(self._outbox_counts())

    async def _poll(self, unit: _Unit) -> None:
        try:
            status = await unit.server.controller.status()
        except Exception as exc:
            if unit.readable:
                logger.warning("EVSE %s cannot be read: %s", unit.evse_id, exc)
                self._error(unit, f"controller: {exc}")
            unit.readable = False
            return
        unit.readable = True
        fault = _fault(status)
        if fault is not None and (unit.status is None or _fault(unit.status) != fault):
            self._error(unit, fault)
        unit.status = status
        if status.meter is not None and unit.server.live:
            self._save_meter(unit, status.meter)
        view = self._view(unit)
        self.metrics.set_evse(unit.evse_id, view.state.value, view.power_w)

    # --- crash recovery ----------------------------------------------------------------------

    async def _recover(self) -> None:
        """Bill and close the sessions a previous process left open (`secc.recovery`), with
        each EVSE's present meter reading (just polled) and tariff."""
        evses = {
            evse_id: EvseNow(
                tariff=unit.server.config.protocol.tariff,
                meter=None if unit.status is None else unit.status.meter,
            )
            for evse_id, unit in self._units.items()
        }
        try:
            closed = await asyncio.to_thread(recover, self.store, evses)
        except Exception:  # the sessions stay open: the next start tries again
            logger.exception("recovery of the sessions left open failed")
            return
        for closing in closed:  # counted as this process's ends, as the records it billed
            record = closing.record
            if record is not None:
                self.metrics.on_session_ended(
                    record.evse_id,
                    record.protocol,
                    record.stop_reason.value,
                    float(record.energy_wh),
                )
        if any(c.record is not None for c in closed) and self.delivery is not None:
            self.delivery.wake()

    def _start_reading(self, unit: _Unit) -> MeterReading | None:
        """The meter reading a new session starts from: the last poll's, but never below the
        previous session's billed stop (the poll may predate it)."""
        reading = None if unit.status is None else unit.status.meter
        floor = unit.last_stop
        if reading is None or floor is None or floor.meter_id != reading.meter_id:
            return reading
        return floor if floor.energy_wh > reading.energy_wh else reading

    def _save_meter(self, unit: _Unit, reading: MeterReading) -> None:
        """Persist the live sessions' latest reading when it moved `meter_save_wh` or
        `meter_save_interval` passed since the last one persisted."""
        now = self.clock()
        for session_id in unit.server.live:
            saved = unit.meters_saved.get(session_id)
            if saved is not None:
                at, last = saved
                moved = reading.meter_id != last.meter_id or (
                    reading.energy_wh - last.energy_wh >= self.meter_save_wh
                )
                if not moved and (now - at).total_seconds() < self.meter_save_interval:
                    continue
            unit.meters_saved[session_id] = (now, reading)
            self._write(partial(self.store.session_meter, session_id, reading))

    def _view(self, unit: _Unit) -> EvseView:
        status = unit.status
        live = [(sid, s) for sid, s in unit.server.live.items() if s.data is not None]
        session_id, session = live[0] if live else (None, None)
        data = None if session is None else session.data
        if not unit.readable or status is None:
            state = EvseState.UNAVAILABLE
        elif _fault(status) is not None:
            state = EvseState.FAULTED
        elif data is not None and data.charging:
            state = EvseState.CHARGING
        elif data is not None or status.cp_state in (ControlPilotState.C, ControlPilotState.D):
            state = EvseState.OCCUPIED
        elif unit.server.paused:
            state = EvseState.PAUSED
        elif status.cp_state is ControlPilotState.B:
            state = EvseState.OCCUPIED
        else:
            state = EvseState.AVAILABLE
        meter = None if status is None or status.meter is None else status.meter.energy_wh
        energy = None if data is None else _session_energy(status, data)
        return EvseView(
            evse_id=unit.evse_id,
            state=state,
            session_id=session_id,
            protocol=None if data is None else data.protocol.schema,
            power_w=_power(status),
            voltage_v=0.0 if status is None else status.present_voltage,
            current_a=0.0 if status is None else status.present_current,
            meter_wh=meter,
            session_energy_wh=energy,
            max_power_w=0.0 if status is None else status.limits.max_power,
            allocated_w=unit.allocated,
            last_error=unit.last_error,
            last_error_at=unit.last_error_at,
        )

    def _certificate_views(self) -> tuple[CertificateView, ...]:
        now = self.clock()
        out = []
        for name, certificate in self._certificates:
            not_after = certificate.not_valid_after_utc
            out.append(
                CertificateView(
                    name=name,
                    subject=certificate.subject.rfc4514_string(),
                    not_after=not_after,
                    days_left=(not_after - now).total_seconds() / 86400,
                )
            )
        return tuple(out)

    def _outbox_counts(self) -> dict[str, int]:
        counter = self.store.outbox_counts
        try:
            return {state.value: count for state, count in counter().items()}
        except Exception:
            logger.exception("outbox counts unavailable")
            return {}


def _session_energy(status: EvseStatus | None, data: SessionData) -> float | None:
    """Wh the session has drawn so far (None before its meter start or without a reading)."""
    if data.meter_start is None or status is None or status.meter is None:
        return None
    return float(max(0, status.meter.energy_wh - data.meter_start.energy_wh))


def _power(status: EvseStatus | None) -> float:
    if status is None:
        return 0.0
    return status.present_voltage * status.present_current


def _fault(status: EvseStatus) -> str | None:
    if status.emergency_shutdown:
        return "emergency shutdown"
    if status.malfunction:
        return "malfunction"
    if status.isolation is IsolationStatus.FAULT:
        return "isolation fault"
    if status.cp_state in (ControlPilotState.E, ControlPilotState.F):
        return f"control pilot state {status.cp_state.value}"
    return None


def _checked_limit(watts: float | None) -> float | None:
    if watts is None:
        return None
    value = float(watts)
    if not (value >= 0 and value < float("inf")):
        raise ValueError(f"site limit {watts!r} W must be a finite number >= 0")
    return value
