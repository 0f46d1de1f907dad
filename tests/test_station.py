"""The station: several EVSEs in one process over real sockets on ::1, one store, billing
delivery through the outbox, the site limit, the operator's views and controls."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from evcc.client import EvResult, run_ev
from evcc.config import EvccConfig
from iso15118.sap import AppProtocol
from secc.backend import LocalBackend
from secc.billing.outbox import DeliveryWorker
from secc.context import SeccConfig
from secc.payment import PaymentProcessor, Settlement
from secc.records import BillingRecord
from secc.server import SeccServer, SeccServerConfig
from secc.simulated import SimulatedEVSE
from secc.station import EvseState, Station
from secc.store import Direction, OutboxState, SessionState, SessionStore

FAST = EvccConfig(
    protocols=(AppProtocol.ISO2,),
    loop_interval=0.02,
    ongoing_interval=0.05,
    precharge_interval=0.02,
    max_charge_loops=6,
    initial_soc=40.0,
    target_soc=90.0,
)


class CountingProcessor(PaymentProcessor):
    name = "payment"

    def __init__(self) -> None:
        self.settled: dict[str, BillingRecord] = {}

    async def settle(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
        duplicate = idempotency_key in self.settled
        self.settled[idempotency_key] = record
        return Settlement(reference=f"ref-{len(self.settled)}", duplicate=duplicate)


def _evse(n: int) -> SimulatedEVSE:
    return SimulatedEVSE(
        evse_id=f"DE*ABC*E000000{n}*1",
        meter_wh=10_000 * n,
        max_power=50_000,
        voltage_ramp_rate=20_000.0,
        current_ramp_rate=20_000.0,
        isolation_check_duration=0.05,
    )


@contextlib.asynccontextmanager
async def running_station(
    directory: Path, *, evses: int = 2, site_limit: float | None = None
) -> AsyncIterator[tuple[Station, CountingProcessor]]:
    store = SessionStore(directory / "secc.db")
    backend = LocalBackend(store=store, free_charging=True)
    processor = CountingProcessor()
    servers = [
        SeccServer(
            SeccServerConfig(protocol=SeccConfig(protocols=(AppProtocol.ISO2,)), tcp_port=0),
            controller=_evse(n),
            backend=backend,
            store=store,
            processor=processor,
        )
        for n in range(1, evses + 1)
    ]
    delivery = DeliveryWorker(store, {"payment": processor}, poll_interval=0.2)
    station = Station(
        servers, store=store, delivery=delivery, site_limit=site_limit, poll_interval=0.05
    )
    try:
        async with station:
            yield station, processor
    finally:
        store.close()


async def _ev(station: Station, evse_id: str, **changes: Any) -> EvResult:
    server = station.servers[evse_id]
    endpoint = server.tcp_endpoint
    assert endpoint is not None
    evse = server.controller
    assert isinstance(evse, SimulatedEVSE)
    config = dataclasses.replace(FAST, **changes)
    return await run_ev(
        config,
        endpoint.host,
        endpoint.port,
        evse_hook=lambda change: evse.set_cp_state(change.state),
    )


async def _until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_two_evses_sessions_store_timeline_and_billing(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_station(tmp_path) as (station, processor):
            status = station.status()
            assert [e.state for e in status.evses] == [EvseState.OCCUPIED] * 2  # CP B
            ids = list(station.servers)
            results = await asyncio.gather(*(_ev(station, i) for i in ids))
            assert all(r.ok for r in results), [r.reason for r in results]
            await _until(lambda: len(processor.settled) == 2)
            # session rows are bookkeeping, written by the station's writer thread
            await _until(lambda: len(station.sessions(state=SessionState.ENDED)) == 2)
            ended = station.sessions(state=SessionState.ENDED)
            assert sorted(s.evse_id for s in ended) == sorted(ids)
            one = ended[0]
            await _until(lambda: bool(station.store.timeline(one.session_id)))
            timeline = station.timeline(one.session_id)
            assert timeline[0].message == "SessionSetupReq"
            assert timeline[0].direction is Direction.RECEIVED
            assert timeline[-1].message == "SessionStopRes"
            assert [e.seq for e in timeline] == list(range(1, len(timeline) + 1))
            counts = station.status().outbox
            assert counts == {"pending": 0, "held": 0, "delivered": 2}
            delivered = station.outbox("delivered")
            assert {e.reference for e in delivered} == {"ref-1", "ref-2"}
            assert station.sessions(evse_id=ids[0])[0].evse_id == ids[0]
            metrics = station.metrics.render()
            assert "iso15118_sessions_total" in metrics

    asyncio.run(test())


def test_operator_stop_and_live_views(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_station(tmp_path, evses=1) as (station, _processor):
            evse_id = next(iter(station.servers))
            car = asyncio.create_task(_ev(station, evse_id, max_charge_loops=100_000))
            await _until(lambda: any(s.charging for s in station.live_sessions()))
            live = station.live_sessions()[0]
            assert live.evse_id == evse_id and live.protocol == "iso2"
            await _until(lambda: station.status().evses[0].state is EvseState.CHARGING)
            assert station.timeline(live.session_id)  # from memory while live
            assert await station.stop_session(live.session_id)
            assert not await station.stop_session("00")
            result = await car
            assert result.ok, result.reason
            ended = SessionState.ENDED
            await _until(lambda: getattr(station.session(live.session_id), "state", 0) is ended)
            stored = station.session(live.session_id)
            assert stored is not None and stored.state is SessionState.ENDED
            assert stored.stop_reason is not None

    asyncio.run(test())


def test_reads_after_written_see_the_queued_writes(tmp_path: Path) -> None:
    """Bookkeeping goes through the writer thread; `written()` waits for what was queued
    before it (and not for what comes later), so that the API's listings agree with its
    live view."""

    async def test() -> None:
        async with running_station(tmp_path, evses=1) as (station, _processor):
            done: list[int] = []
            station._write(lambda: (time.sleep(0.2), done.append(1)))
            station._write(lambda: done.append(2))
            await station.written()
            assert done == [1, 2]
            evse_id = next(iter(station.servers))
            car = asyncio.create_task(_ev(station, evse_id, max_charge_loops=100_000))
            await _until(lambda: any(s.charging for s in station.live_sessions()))
            (live,) = station.live_sessions()
            await station.written()
            assert [s.session_id for s in station.sessions(state=SessionState.ACTIVE)] == [
                live.session_id
            ]
            assert await station.stop_session(live.session_id)
            assert (await car).ok
        await station.written()  # closed: nothing to wait for

    asyncio.run(test())


def test_site_limit_caps_each_evse(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_station(tmp_path, evses=2, site_limit=60_000) as (station, _p):
            caps = [s.power_cap for s in station.servers.values()]
            assert sum(c or 0 for c in caps) <= 60_000
            await station.set_site_limit(None)
            assert [s.power_cap for s in station.servers.values()] == [None, None]
            await station.set_site_limit(30_000)
            assert sum(s.power_cap or 0 for s in station.servers.values()) <= 30_000
            assert station.status().site_limit_w == 30_000

    asyncio.run(test())


def test_billing_retry_releases_held_records(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_station(tmp_path, evses=1) as (station, processor):
            evse_id = next(iter(station.servers))
            result = await _ev(station, evse_id)
            assert result.ok
            await _until(lambda: len(processor.settled) == 1)
            assert station.status().outbox[OutboxState.DELIVERED.value] == 1
            assert await station.retry_billing(None) == 0  # nothing pending or held

    asyncio.run(test())


class HangingBackend(LocalBackend):
    """An operator backend that never answers the end-of-session hand-off."""

    async def session_ended(self, record: BillingRecord) -> None:
        await asyncio.Event().wait()


def test_dead_backend_does_not_hold_up_the_car(tmp_path: Path) -> None:
    async def test() -> None:
        store = SessionStore(tmp_path / "secc.db")
        server = SeccServer(
            SeccServerConfig(protocol=SeccConfig(protocols=(AppProtocol.ISO2,)), tcp_port=0),
            controller=_evse(1),
            backend=HangingBackend(store=store, free_charging=True),
            store=store,
        )
        station = Station([server], store=store, poll_interval=0.05)
        try:
            async with station:
                result = await _ev(station, next(iter(station.servers)))
                assert result.ok, result.reason  # SessionStopRes came at once
                records = store.billing_records()
                assert len(records) == 1  # committed before the answer
        finally:
            store.close()

    asyncio.run(test())


# --- a card-based site: External Identification with a prepaid card -------------------------


def test_prepaid_card_site_authorises_charges_and_refuses_at_zero(tmp_path: Path) -> None:
    from decimal import Decimal

    from evcc.config import Payment
    from secc.billing.ledger import PrepaidLedger
    from secc.tariff import Tariff

    async def test() -> None:
        store = SessionStore(tmp_path / "secc.db")
        ledger = PrepaidLedger(tmp_path / "prepaid.db")
        ledger.top_up("CARD-1", "10.00")
        ledger.top_up("CARD-2", "0.01")
        tariff = Tariff(
            id="site",
            currency="EUR",
            energy_price=Decimal("0.50"),
            time_price=Decimal("0"),
            session_fee=Decimal("1.00"),
        )
        evse = _evse(1)
        server = SeccServer(
            SeccServerConfig(
                protocol=SeccConfig(
                    protocols=(AppProtocol.ISO2,), tariff=tariff, eim_token_required=True
                ),
                tcp_port=0,
            ),
            controller=evse,
            backend=LocalBackend(store=store, allowed_id_tokens=["*"]),
            store=store,
            processor=ledger,
        )
        delivery = DeliveryWorker(store, {ledger.name: ledger}, poll_interval=0.1)
        station = Station([server], store=store, delivery=delivery, poll_interval=0.05)
        try:
            async with station:
                evse_id = evse.evse_id
                # the driver taps the card a moment after plugging in: Ongoing until then
                car = asyncio.create_task(_ev(station, evse_id, payment=Payment.EIM))
                await _until(lambda: bool(station.live_sessions()))
                await asyncio.sleep(0.2)
                assert not any(s.charging for s in station.live_sessions())
                evse.present_token("CARD-1")
                result = await car
                assert result.ok, result.reason
                await _until(lambda: store.outbox_counts()[OutboxState.DELIVERED] == 1)
                (record,) = store.billing_records()
                assert record.id_token == "CARD-1" and record.price is not None
                assert record.energy_wh > 0
                balance = ledger.balance("CARD-1").balance
                assert balance == Decimal("10.00") - record.price.total
                # the card is spent at the reader's session end; a near-empty card next
                evse.present_token("CARD-2")
                ledger.charge(
                    dataclasses.replace(record, record_id="manual", id_token="CARD-2"),
                    idempotency_key="spend-card-2",
                )
                assert ledger.balance("CARD-2").balance <= 0
                refused = await _ev(station, evse_id, payment=Payment.EIM)
                assert not refused.ok  # AuthorizationRes FAILED: no balance
                assert len(store.billing_records()) == 2  # the refused session billed nothing
                assert store.billing_records()[-1].energy_wh == 0
        finally:
            await ledger.close()
            store.close()

    asyncio.run(test())


def test_paused_sessions_are_bounded() -> None:
    from secc.server import MAX_PAUSED, remember_paused

    paused: dict[bytes, Any] = {}
    for n in range(MAX_PAUSED + 5):
        remember_paused(paused, n.to_bytes(8, "big"), f"resume {n}")  # type: ignore[arg-type]
    assert len(paused) == MAX_PAUSED
    assert next(iter(paused)) == (5).to_bytes(8, "big")  # the oldest went first
    remember_paused(paused, (5).to_bytes(8, "big"), "again")  # type: ignore[arg-type]
    assert list(paused)[-1] == (5).to_bytes(8, "big") and len(paused) == MAX_PAUSED
