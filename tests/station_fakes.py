"""A fake `secc.station.Station` for the station API tests, and serving helpers.

The views are the station's own (`EvseView`, `StationStatus`, `LiveSession`), and the
stored rows the store's. Calls that steer the station are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from secc.api import ApiConfig, ApiServer
from secc.metrics import Metrics
from secc.records import BillingRecord, IdentificationKind, MeterReading, Price, StopReason
from secc.station import CertificateView, EvseState, EvseView, LiveSession, StationStatus
from secc.store import (
    Direction,
    OutboxEntry,
    OutboxState,
    SessionState,
    StoredSession,
    TimelineEntry,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-token_for.tests~1"
LIVE_ID = "0A1B2C3D4E5F6071"
ENDED_ID = "1122334455667788"
RECORD_ID = "rec-1122334455667788-1"
EVSE_1 = "DE*ABC*E0000001*1"
EVSE_2 = "DE*ABC*E0000001*2"


def billing_record() -> BillingRecord:
    return BillingRecord(
        record_id=RECORD_ID,
        session_id=ENDED_ID,
        evse_id=EVSE_2,
        protocol="din",
        kind=IdentificationKind.EXTERNAL,
        contract_id=None,
        id_token="04A1B2C3",
        started_at=T0 - timedelta(hours=2),
        stopped_at=T0 - timedelta(hours=1),
        meter_start=MeterReading(meter_id="M2", energy_wh=1000, at=T0 - timedelta(hours=2)),
        meter_stop=MeterReading(
            meter_id="M2", energy_wh=8500, at=T0 - timedelta(hours=1), signature=b"\x01\xab"
        ),
        stop_reason=StopReason.EV_STOPPED,
        price=Price(
            tariff_id="T1",
            currency="EUR",
            energy=Decimal("2.63"),
            time=Decimal("0.00"),
            fee=Decimal("0.50"),
            total=Decimal("3.13"),
        ),
    )


def outbox_entry(state: OutboxState = OutboxState.HELD) -> OutboxEntry:
    return OutboxEntry(
        record_id=RECORD_ID,
        destination="payment",
        state=state,
        session_id=ENDED_ID,
        evse_id=EVSE_2,
        protocol="din",
        kind=IdentificationKind.EXTERNAL,
        contract_id=None,
        id_token="04A1B2C3",
        energy_wh=7500,
        amount=Decimal("3.13"),
        currency="EUR",
        created_at=T0 - timedelta(hours=1),
        attempts=3,
        last_error="HTTP 422: unknown tariff",
        next_attempt_at=None,
        delivered_at=None,
        held_at=T0 - timedelta(minutes=50),
        reference=None,
    )


@dataclass
class FakeStation:
    """Two EVSEs: one charging a live PnC session, one available with a past session."""

    site_limit_w: float | None = 22_000.0
    metrics: Metrics = field(default_factory=lambda: Metrics(version="0.1.0"))
    calls: list[tuple[str, Any]] = field(default_factory=list)
    live: list[LiveSession] = field(default_factory=list)
    stored: dict[str, StoredSession] = field(default_factory=dict)
    timelines: dict[str, list[TimelineEntry]] = field(default_factory=dict)
    records: list[BillingRecord] = field(default_factory=list)
    entries: list[OutboxEntry] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    status_calls: int = 0

    def __post_init__(self) -> None:
        self.live.append(
            LiveSession(
                session_id=LIVE_ID,
                evse_id=EVSE_1,
                protocol="iso2",
                started_at=T0,
                charging=True,
                kind="contract",
                contract_id="DEABCC1234567X",
                id_token=None,
                energy_wh=1520.0,
                power_w=49_500.0,
            )
        )
        self.stored[LIVE_ID] = StoredSession(
            session_id=LIVE_ID,
            evse_id=EVSE_1,
            protocol="iso2",
            state=SessionState.ACTIVE,
            started_at=T0,
            stopped_at=None,
            kind=None,
            contract_id=None,
            id_token=None,
            meter_start=MeterReading(meter_id="M1", energy_wh=50_000, at=T0),
            stop_reason=None,
        )
        self.stored[ENDED_ID] = StoredSession(
            session_id=ENDED_ID,
            evse_id=EVSE_2,
            protocol="din",
            state=SessionState.ENDED,
            started_at=T0 - timedelta(hours=2),
            stopped_at=T0 - timedelta(hours=1),
            kind=IdentificationKind.EXTERNAL,
            contract_id=None,
            id_token="04A1B2C3",
            meter_start=None,
            stop_reason=StopReason.EV_STOPPED,
        )
        self.timelines[LIVE_ID] = [
            TimelineEntry(
                session_id=LIVE_ID,
                seq=i + 1,
                direction=Direction.RECEIVED if i % 2 == 0 else Direction.SENT,
                message=name,
                response_code=None if i % 2 == 0 else "OK",
                at=T0 + timedelta(seconds=i),
            )
            for i, name in enumerate(("SessionSetupReq", "SessionSetupRes"))
        ]
        self.records.append(billing_record())
        self.entries.append(outbox_entry())
        self.held.add(RECORD_ID)

    def status(self) -> StationStatus:
        self.status_calls += 1
        return StationStatus(
            evses=(
                EvseView(
                    evse_id=EVSE_1,
                    state=EvseState.CHARGING,
                    session_id=LIVE_ID,
                    protocol="iso2",
                    power_w=49_500.0,
                    voltage_v=450.0,
                    current_a=110.0,
                    meter_wh=51_520,
                    session_energy_wh=1520.0,
                    max_power_w=50_000.0,
                    allocated_w=11_000.0,
                    last_error=None,
                    last_error_at=None,
                ),
                EvseView(
                    evse_id=EVSE_2,
                    state=EvseState.FAULTED,
                    session_id=None,
                    protocol=None,
                    power_w=0.0,
                    voltage_v=0.0,
                    current_a=0.0,
                    meter_wh=8500,
                    session_energy_wh=None,
                    max_power_w=22_000.0,
                    allocated_w=11_000.0,
                    last_error="isolation fault",
                    last_error_at=T0 - timedelta(minutes=5),
                ),
            ),
            site_limit_w=self.site_limit_w,
            certificates=(
                CertificateView(
                    name="tls",
                    subject="CN=SECC,O=Example",
                    not_after=T0 + timedelta(days=12),
                    days_left=12.0,
                ),
            ),
            outbox={"pending": 0, "held": len(self.held), "delivered": 4},
            started_at=T0 - timedelta(days=1),
            version="0.1.0",
        )

    def live_sessions(self) -> list[LiveSession]:
        return list(self.live)

    def sessions(self, **filters: Any) -> list[StoredSession]:
        self.calls.append(("sessions", filters))
        rows = sorted(self.stored.values(), key=lambda s: s.started_at, reverse=True)
        state = filters.get("state")
        if state is not None:
            rows = [r for r in rows if r.state is state]
        if filters.get("evse_id") is not None:
            rows = [r for r in rows if r.evse_id == filters["evse_id"]]
        return rows[: filters.get("limit", 100)]

    def session(self, session_id: str) -> StoredSession | None:
        return self.stored.get(session_id.upper())

    def timeline(self, session_id: str) -> list[TimelineEntry]:
        return list(self.timelines.get(session_id.upper(), []))

    def billing_records(
        self, *, session_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[BillingRecord]:
        self.calls.append(("billing_records", {"session_id": session_id, "since": since}))
        rows = [r for r in self.records if session_id is None or r.session_id == session_id]
        return rows[:limit]

    def outbox(self, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        self.calls.append(("outbox", {"state": state, "limit": limit}))
        return [e for e in self.entries if state is None or e.state.value == state][:limit]

    async def written(self) -> None:
        return None

    async def stop_session(self, session_id: str) -> bool:
        self.calls.append(("stop_session", session_id))
        return any(s.session_id == session_id.upper() for s in self.live)

    async def set_site_limit(self, watts: float | None) -> None:
        self.calls.append(("set_site_limit", watts))
        self.site_limit_w = watts

    async def retry_billing(self, record_id: str | None) -> int:
        self.calls.append(("retry_billing", record_id))
        if record_id is None:
            released = len(self.held)
            self.held.clear()
            return released
        if record_id in self.held:
            self.held.discard(record_id)
            return 1
        return 0


@contextlib.asynccontextmanager
async def serve(station: Any, **config: Any) -> AsyncIterator[ApiServer]:
    """An `ApiServer` for `station` on 127.0.0.1, a free port, with `TOKEN` by default."""
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "token": TOKEN, **config}
    server = ApiServer(station, ApiConfig(**settings))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@contextlib.contextmanager
def serve_in_thread(station: Any, **config: Any) -> Iterator[ApiServer]:
    """`serve` on an event loop of its own thread (for blocking clients such as the CLI)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        try:
            async with serve(station, **config) as server:
                box["server"] = server
                started.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    if "error" in box:
        raise box["error"]
    try:
        yield box["server"]
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        loop.close()
