"""Crash recovery (secc/recovery.py): the sessions a killed charger left open are billed on
restart up to the last meter reading known, once, and closed.

* the pure core (`plan`): same meter, meter replaced, meter lower, no identification, the
  tariff, a resumed part, a part billed already, a paused session;
* the store: migration v2 -> v3 of a v2 file, the parts of a resumed session, `recover`
  killed between the record and the session's end;
* a station charging a car, abandoned while it charges (its event loop stops dead, as the
  process would under kill -9), and a new station on the same SQLite file;
* the SIGKILL loop (issue 6): a charger process (tests/recovery_child.py) charging car after
  car, killed at random points of the session and of delivery many times, restarted on the
  same file each time: every session billed once, every record delivered and applied once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import recovery_child
from billing_receiver import threaded_receiver
from hypothesis import given
from hypothesis import strategies as st
from test_station import FAST, CountingProcessor

from evcc.client import run_ev
from evcc.config import Payment
from iso15118.sap import AppProtocol
from secc.backend import LocalBackend
from secc.billing.outbox import DeliveryWorker
from secc.context import SeccConfig
from secc.records import BillingRecord, IdentificationKind, MeterReading, StopReason
from secc.records_json import billing_record_to_json, meter_reading_to_json
from secc.recovery import EvseNow, plan, record_id, recover
from secc.server import SeccServer, SeccServerConfig
from secc.simulated import SimulatedEVSE
from secc.station import Station
from secc.store import (
    MIGRATIONS,
    OpenSession,
    OutboxState,
    SessionState,
    SessionStore,
    StoredSession,
)
from secc.tariff import Tariff

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SID = "0123456789ABCDEF"
TARIFF = Tariff(
    id="t1",
    currency="EUR",
    energy_price=Decimal("0.40"),
    time_price=Decimal("1.20"),
    session_fee=Decimal("0.50"),
)


def reading(wh: int, minutes: float, meter: str = "M1") -> MeterReading:
    return MeterReading(meter_id=meter, energy_wh=wh, at=T0 + timedelta(minutes=minutes))


def open_session(
    *,
    meter_start: MeterReading | None = None,
    meter_last: MeterReading | None = None,
    state: SessionState = SessionState.ACTIVE,
    kind: IdentificationKind | None = None,
    contract_id: str | None = None,
    id_token: str | None = None,
    parts: int = 1,
    part_started_at: datetime | None = None,
    part_meter_start: MeterReading | None = None,
    stopped_at: datetime | None = None,
) -> OpenSession:
    session = StoredSession(
        session_id=SID,
        evse_id="DE*ABC*E0000001*1",
        protocol="iso2",
        state=state,
        started_at=T0,
        stopped_at=stopped_at,
        kind=kind,
        contract_id=contract_id,
        id_token=id_token,
        meter_start=meter_start,
        stop_reason=StopReason.EV_PAUSED if state is SessionState.PAUSED else None,
    )
    return OpenSession(
        session=session,
        parts=parts,
        part_started_at=part_started_at or T0,
        part_meter_start=part_meter_start if parts > 1 else meter_start,
        meter_last=meter_last,
    )


def billed(stop_reason: StopReason, *, stopped: float = 30, n: int = 0) -> BillingRecord:
    return BillingRecord(
        record_id=f"r{n}",
        session_id=SID,
        evse_id="DE*ABC*E0000001*1",
        protocol="iso2",
        kind=IdentificationKind.EXTERNAL,
        contract_id=None,
        started_at=T0,
        stopped_at=T0 + timedelta(minutes=stopped),
        meter_start=reading(1000, 0),
        meter_stop=reading(2000, stopped),
        stop_reason=stop_reason,
    )


# --- the pure core -----------------------------------------------------------------------------


def test_same_meter_bills_up_to_the_present_reading() -> None:
    item = open_session(meter_start=reading(1000, 0), meter_last=reading(5000, 20))
    evse = EvseNow(tariff=TARIFF, meter=reading(5400, 90))  # it kept counting a little
    closing = plan(item, billed=[], evse=evse)
    record = closing.record
    assert record is not None
    assert closing.reason is StopReason.EVSE_RESTARTED and closing.ended_at == record.stopped_at
    assert record.meter_stop == reading(5400, 90) and record.energy_wh == 4400
    assert record.stopped_at == T0 + timedelta(minutes=90)
    assert record.stop_reason is StopReason.EVSE_RESTARTED
    assert record.record_id == record_id(SID, 1)
    assert record.price == TARIFF.price(4400, T0, T0 + timedelta(minutes=90))
    assert record.price is not None and record.price.fee == Decimal("0.50")


def test_meter_replaced_bills_up_to_the_persisted_reading() -> None:
    item = open_session(meter_start=reading(1000, 0), meter_last=reading(5000, 20))
    evse = EvseNow(tariff=None, meter=reading(99_000, 90, meter="M2"))
    record = plan(item, billed=[], evse=evse).record
    assert record is not None
    assert record.meter_stop == reading(5000, 20) and record.energy_wh == 4000
    assert record.stopped_at == T0 + timedelta(minutes=20)
    assert record.price is None  # no tariff configured: no price


@pytest.mark.parametrize("present", [reading(4000, 90), reading(5000, 90), None])
def test_meter_lower_or_equal_or_unreadable_bills_up_to_the_persisted_reading(
    present: MeterReading | None,
) -> None:
    item = open_session(meter_start=reading(1000, 0), meter_last=reading(5000, 20))
    record = plan(item, billed=[], evse=EvseNow(tariff=TARIFF, meter=present)).record
    assert record is not None
    assert record.meter_stop == reading(5000, 20)  # equal: the earlier time of the two
    assert record.price == TARIFF.price(4000, T0, T0 + timedelta(minutes=20))


def test_no_persisted_reading_uses_the_present_one_or_bills_nothing() -> None:
    item = open_session(meter_start=reading(1000, 0))
    record = plan(item, billed=[], evse=EvseNow(tariff=TARIFF, meter=None)).record
    assert record is not None and record.energy_wh == 0
    assert record.price is not None and record.price.total == 0  # nothing delivered: free
    present = reading(1500, 3)
    record = plan(item, billed=[], evse=EvseNow(tariff=TARIFF, meter=present)).record
    assert record is not None and record.energy_wh == 500
    # no meter at the session's start: nothing to bill from (as a session's own record)
    item = open_session(meter_start=None, meter_last=reading(5000, 20))
    record = plan(item, billed=[], evse=EvseNow(tariff=TARIFF, meter=present)).record
    assert record is not None and record.meter_stop is None and record.energy_wh == 0
    assert record.stopped_at == T0 + timedelta(minutes=20)


def test_identification_as_known() -> None:
    bare = plan(open_session(meter_start=reading(0, 0)), billed=[], evse=None).record
    assert bare is not None  # killed before the car was identified: still billed (0 Wh)
    assert bare.kind is IdentificationKind.EXTERNAL
    assert bare.contract_id is None and bare.id_token is None and bare.price is None
    item = open_session(
        meter_start=reading(0, 0),
        kind=IdentificationKind.CONTRACT,
        contract_id="DEABCC12345678",
    )
    record = plan(item, billed=[], evse=None).record
    assert record is not None
    assert record.kind is IdentificationKind.CONTRACT and record.contract_id == "DEABCC12345678"
    item = open_session(
        meter_start=reading(0, 0), kind=IdentificationKind.EXTERNAL, id_token="CARD-9"
    )
    record = plan(item, billed=[], evse=None).record
    assert record is not None and record.id_token == "CARD-9"


def test_resumed_part_is_billed_from_its_resumption_without_the_fee() -> None:
    item = open_session(
        meter_start=reading(1000, 0),
        parts=2,
        part_started_at=T0 + timedelta(minutes=40),
        part_meter_start=reading(2000, 40),
        meter_last=reading(2600, 50),
    )
    evse = EvseNow(tariff=TARIFF, meter=None)
    first = billed(StopReason.EV_PAUSED)
    first = dataclasses.replace(
        first, price=TARIFF.price(first.energy_wh, first.started_at, first.stopped_at)
    )
    assert first.price is not None and first.price.charged_fee
    closing = plan(item, billed=[first], evse=evse)
    record = closing.record
    assert record is not None
    assert record.record_id == record_id(SID, 2) != record_id(SID, 1)
    assert record.started_at == T0 + timedelta(minutes=40) and record.energy_wh == 600
    assert record.price == TARIFF.price(
        600, T0 + timedelta(minutes=40), T0 + timedelta(minutes=50), with_fee=False
    )
    # a first part that paid no fee (it delivered nothing): the recovered part pays it
    unpaid = dataclasses.replace(first, meter_stop=first.meter_start, price=None)
    closing = plan(item, billed=[unpaid], evse=evse)
    assert closing.record is not None and closing.record.price is not None
    assert closing.record.price.charged_fee


def test_a_part_billed_already_gets_no_second_record() -> None:
    # killed between committing the record and writing the session's end
    item = open_session(meter_start=reading(1000, 0), meter_last=reading(1900, 25))
    closing = plan(item, billed=[billed(StopReason.EV_STOPPED)], evse=None)
    assert closing.record is None
    assert closing.reason is StopReason.EV_STOPPED
    assert closing.ended_at == T0 + timedelta(minutes=30)
    # the pause's record committed, the pause not written: the car cannot resume now
    closing = plan(item, billed=[billed(StopReason.EV_PAUSED)], evse=None)
    assert closing.record is None and closing.reason is StopReason.EVSE_RESTARTED


def test_paused_session_is_only_closed() -> None:
    paused_at = T0 + timedelta(minutes=30)
    item = open_session(
        meter_start=reading(1000, 0), state=SessionState.PAUSED, stopped_at=paused_at
    )
    evse = EvseNow(tariff=TARIFF, meter=reading(9000, 90))
    closing = plan(item, billed=[billed(StopReason.EV_PAUSED)], evse=evse)
    assert closing.record is None
    assert closing.reason is StopReason.EVSE_RESTARTED and closing.ended_at == paused_at


def test_record_id_is_stable() -> None:
    assert record_id(SID, 1) == record_id(SID.lower(), 1)
    assert len(record_id(SID, 1)) == 32 and int(record_id(SID, 1), 16) >= 0
    assert record_id(SID, 1) != record_id("0123456789ABCDEE", 1)


def test_a_naive_present_reading_is_not_trusted() -> None:
    item = open_session(meter_start=reading(1000, 0), meter_last=reading(2000, 10))
    naive = MeterReading(meter_id="M1", energy_wh=9000, at=datetime(2025, 6, 1, 9, 0))
    record = plan(item, billed=[], evse=EvseNow(tariff=TARIFF, meter=naive)).record
    assert record is not None and record.meter_stop == reading(2000, 10)


readings = st.builds(
    MeterReading,
    meter_id=st.sampled_from(["M1", "M2"]),
    energy_wh=st.integers(0, 10**9),
    at=st.datetimes(
        min_value=datetime(2025, 6, 1, 8, 0), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
    ),
)


@given(start=readings, last=st.none() | readings, present=st.none() | readings)
def test_the_stop_is_a_known_reading_of_the_same_meter_never_below_the_start(
    start: MeterReading, last: MeterReading | None, present: MeterReading | None
) -> None:
    item = open_session(meter_start=start, meter_last=last)
    item = dataclasses.replace(item, part_started_at=min(start.at, T0))
    record = plan(item, billed=[], evse=EvseNow(tariff=TARIFF, meter=present)).record
    assert record is not None and record.meter_stop is not None
    assert record.meter_stop in (start, last, present)
    assert record.meter_stop.meter_id == start.meter_id
    assert record.meter_stop.energy_wh >= start.energy_wh
    known = [r.energy_wh for r in (start, last, present) if r and r.meter_id == start.meter_id]
    assert record.meter_stop.energy_wh == max(known)
    assert record.stopped_at >= record.started_at and record.price is not None


# --- the store ---------------------------------------------------------------------------------


def test_store_migrates_a_v2_file_to_v3(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with SessionStore(path, migrations=MIGRATIONS[:2]) as old:
        assert old.schema_version == 2
    db = sqlite3.connect(path)  # rows as a v2 program wrote them
    with db:
        start = json.dumps(meter_reading_to_json(reading(7, 0)))
        db.execute(
            """INSERT INTO sessions (session_id, evse_id, protocol, state, started_at,
                   meter_start) VALUES (?, 'E1', 'iso2', 'active', ?, ?)""",
            (SID, T0.isoformat(timespec="microseconds"), start),
        )
        db.execute(
            """INSERT INTO sessions (session_id, evse_id, protocol, state, started_at,
                   stopped_at, stop_reason) VALUES ('AA', 'E1', 'din', 'ended', ?, ?, ?)""",
            (T0.isoformat(timespec="microseconds"),) * 2 + ("ev-stopped",),
        )
    db.close()
    with SessionStore(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 3
        (item,) = store.open_sessions()  # "AA" ended
        assert item.session.session_id == SID and item.parts == 1
        assert item.part_started_at == T0 and item.part_meter_start == reading(7, 0)
        assert item.meter_last is None
        assert store.session_meter(SID, reading(70, 5))
        assert not store.session_meter("AA", reading(70, 5))  # ended: not updated
        assert not store.session_meter("BB", reading(70, 5))  # unknown
        assert store.open_sessions()[0].meter_last == reading(70, 5)


def test_store_counts_the_parts_of_a_resumed_session(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "s.db") as store:
        store.session_started(SID, evse_id="E1", protocol="iso2", at=T0, meter_start=reading(1, 0))
        store.session_meter(SID, reading(50, 10))
        store.session_paused(SID, at=T0 + timedelta(minutes=10))
        (paused,) = store.open_sessions()
        assert paused.session.state is SessionState.PAUSED and paused.parts == 1
        resumed_at = T0 + timedelta(minutes=15)
        store.session_started(
            SID, evse_id="E1", protocol="iso2", at=resumed_at, meter_start=reading(52, 15)
        )
        (item,) = store.open_sessions()
        assert item.parts == 2 and item.part_started_at == resumed_at
        assert item.part_meter_start == reading(52, 15) and item.meter_last is None
        assert item.session.started_at == T0 and item.session.meter_start == reading(1, 0)


class KilledOnce:
    """A store whose first `session_ended` dies (the process killed after the record)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.killed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def session_ended(self, session_id: str, *, at: datetime, reason: StopReason) -> None:
        if not self.killed:
            self.killed = True
            raise SystemExit("killed")
        self.store.session_ended(session_id, at=at, reason=reason)


def test_recover_killed_between_record_and_end_bills_once(tmp_path: Path) -> None:
    evses = {"E1": EvseNow(tariff=TARIFF, meter=reading(3000, 60))}
    with SessionStore(tmp_path / "s.db") as store:
        store.session_started(SID, evse_id="E1", protocol="iso2", at=T0, meter_start=reading(1, 0))
        store.session_identified(SID, kind=IdentificationKind.EXTERNAL, id_token="CARD-1")
        store.session_meter(SID, reading(2000, 30))
        store.session_started("OLD", evse_id="E1", protocol="iso2", at=T0 - timedelta(hours=1))
        store.session_meter("OLD", reading(0, -50))
        with pytest.raises(SystemExit):
            recover(KilledOnce(store), evses)
        assert len(store.billing_records()) == 1  # the older session's, then killed
        done = recover(store, evses)
        assert [c.session_id for c in done] == ["OLD", SID]
        assert recover(store, evses) == []  # nothing open any more
        records = {r.session_id: r for r in store.billing_records()}
        assert len(store.billing_records()) == 2
        # the present reading belongs to the newest open session of the EVSE only
        assert records["OLD"].meter_stop is None  # no start reading: nothing to bill
        ours = records[SID]
        assert ours.meter_stop == reading(3000, 60) and ours.id_token == "CARD-1"
        assert store.outbox_counts()[OutboxState.PENDING] == 2
        ended = store.session(SID)
        assert ended is not None and ended.state is SessionState.ENDED
        assert ended.stop_reason is StopReason.EVSE_RESTARTED
        assert ended.stopped_at == T0 + timedelta(minutes=60)


# --- a station abandoned while a car charges -------------------------------------------------


def _station(db: Path, meter_wh: int) -> tuple[Station, SimulatedEVSE, CountingProcessor]:
    store = SessionStore(db)
    evse = SimulatedEVSE(
        evse_id="DE*ABC*E0000001*1",
        meter_wh=meter_wh,
        max_power=150_000,
        max_current=400,
        voltage_ramp_rate=20_000.0,
        current_ramp_rate=20_000.0,
        isolation_check_duration=0.02,
        id_token="CARD-7",
    )
    processor = CountingProcessor()
    server = SeccServer(
        SeccServerConfig(
            protocol=SeccConfig(protocols=(AppProtocol.ISO2,), tariff=TARIFF), tcp_port=0
        ),
        controller=evse,
        backend=LocalBackend(store=store, free_charging=True),
        store=store,
        processor=processor,
    )
    delivery = DeliveryWorker(store, {"payment": processor}, poll_interval=0.05)
    station = Station(
        [server],
        store=store,
        delivery=delivery,
        poll_interval=0.02,
        meter_save_interval=10.0,
        meter_save_wh=10,
    )
    return station, evse, processor


def test_station_abandoned_while_charging_is_billed_by_the_next(tmp_path: Path) -> None:
    db = tmp_path / "secc.db"
    first, evse, _ = _station(db, meter_wh=1_000_000)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def charge() -> None:
        await first.start()
        endpoint = first.servers[evse.evse_id].tcp_endpoint
        assert endpoint is not None
        config = dataclasses.replace(FAST, payment=Payment.EIM, max_charge_loops=None)
        await run_ev(
            config,
            endpoint.host,
            endpoint.port,
            evse_hook=lambda change: evse.set_cp_state(change.state),
        )

    car = asyncio.run_coroutine_threadsafe(charge(), loop)
    try:
        deadline = time.monotonic() + 10
        while True:  # until a reading well into the charge is persisted
            assert time.monotonic() < deadline, "no meter reading persisted"
            assert not car.done(), car
            opened = first.store.open_sessions()
            last = opened[0].meter_last if opened else None
            if last is not None and last.energy_wh >= 1_000_030:
                break
            time.sleep(0.01)
        # the "kill": the first station's loop stops dead, nothing of it runs any more
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        assert not thread.is_alive() and not car.done()
    finally:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
    (item,) = first.store.open_sessions()
    assert item.session.id_token == "CARD-7"  # identified when the backend was asked
    assert item.meter_last is not None and item.session.meter_start is not None
    meter_now = int(evse.energy_wh)  # the meter is hardware: it read this when restarted

    ended: list[tuple[float, float]] = []  # the metrics of each restart

    async def restart(meter_wh: int) -> tuple[list[BillingRecord], dict[str, BillingRecord]]:
        station, _evse, processor = _station(db, meter_wh)
        async with station:
            deadline = time.monotonic() + 5
            while station.store.outbox_counts()[OutboxState.PENDING]:
                assert time.monotonic() < deadline, "recovered record not delivered"
                await asyncio.sleep(0.02)
            records = station.store.billing_records()
            assert station.store.open_sessions() == []
            metrics = station.metrics
            ended.append(
                (
                    metrics.sessions_ended.value(evse.evse_id, "iso2", "evse-restarted"),
                    metrics.energy.value(evse.evse_id),
                )
            )
        station.store.close()
        return records, processor.settled

    records, settled = asyncio.run(restart(meter_now))
    (record,) = records
    assert ended == [(1, record.energy_wh)]  # the recovered session in the new metrics
    assert record.session_id == item.session.session_id
    assert record.record_id == record_id(record.session_id, 1)
    assert record.stop_reason is StopReason.EVSE_RESTARTED
    assert record.meter_start == item.session.meter_start
    assert record.meter_stop is not None and record.meter_stop.energy_wh == meter_now
    assert record.meter_stop.energy_wh >= item.meter_last.energy_wh
    assert record.energy_wh == meter_now - item.session.meter_start.energy_wh > 0
    assert record.id_token == "CARD-7" and record.kind is IdentificationKind.EXTERNAL
    assert record.price == TARIFF.price(record.energy_wh, record.started_at, record.stopped_at)
    assert list(settled.values()) == [record]
    # a second start recovers nothing more
    records, settled = asyncio.run(restart(meter_now))
    assert records == [record] and settled == {}
    assert ended[1] == (0, 0)
    first.store.close()
    _bury(loop)


def _bury(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the abandoned loop still holds (its store is closed: nothing it does now
    reaches the file) and close it, so that nothing is left to the garbage collector."""

    async def cancel_all() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    loop.run_until_complete(cancel_all())
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


# --- the SIGKILL loop ----------------------------------------------------------------------------

SECRET = b"recovery-test-shared-secret"
TESTS = Path(__file__).resolve().parent
KINDS = ("setup", "authorize", "charging", "stop", "commit", "settle", "anywhere")
KILLS = 28
ITERATION_TIMEOUT = 15.0
METER_START = 1_000_000


class Child:
    """One charger process (tests/recovery_child.py): its PID and the pipe it speaks on."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self.buffer = b""
        self.lines: list[str] = []
        self.said: list[str] = []  # everything, in order
        self.eof = False

    def _next(self, deadline: float) -> str | None:
        while not self.lines:
            if self.eof:
                return None
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"the child said nothing in time (last: {self.said[-3:]})")
            data = os.read(self.fd, 65536)
            if not data:
                self.eof = True
                continue
            *complete, self.buffer = (self.buffer + data).split(b"\n")
            self.lines += [line.decode() for line in complete]
        line = self.lines.pop(0)
        self.said.append(line)
        return line

    def wait_for(self, prefix: str, count: int, deadline: float) -> None:
        """Until the `count`-th line starting with `prefix`."""
        seen = 0
        while seen < count:
            line = self._next(deadline)
            if line is None or line == "ERROR":
                raise AssertionError(f"the child ended early: {self.said[-5:]}")
            seen += line.startswith(prefix)

    def kill(self) -> None:
        """SIGKILL; read what it said until the pipe ends (its only writer is gone: dead)."""
        os.kill(self.pid, signal.SIGKILL)
        self.finish()

    def finish(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._next(deadline) is not None:
            pass
        os.close(self.fd)

    def words(self, prefix: str, index: int) -> list[str]:
        return [line.split()[index] for line in self.said if line.startswith(prefix)]


class Zygote:
    """`recovery_child.zygote` in a process of its own: it has imported the charger code
    once, and forks a charger for each `fork` (milliseconds, not the imports)."""

    def __init__(self, log: Path) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TESTS), str(TESTS.parent), env.get("PYTHONPATH")) if p
        )
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "recovery_child.py"), str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        theirs.close()
        self.control = ours
        self.control.settimeout(60)  # the first answer waits for the imports

    def fork(self, **options: Any) -> Child:
        self.control.sendall(json.dumps(options).encode() + b"\n")
        message, fds, _flags, _address = socket.recv_fds(self.control, 64, 1)
        assert message and len(fds) == 1, "the zygote did not fork"
        return Child(int(message), fds[0])

    def close(self) -> None:
        self.control.close()  # the zygote's loop ends
        self.process.wait(10)
        self.log.close()


def _kill_at(kind: str, child: Child, rng: random.Random, deadline: float) -> None:
    """Wait for the point of the session (or of delivery) `kind` names, then SIGKILL."""
    if kind != "commit" or rng.random() < 0.5:  # else perhaps during recovery, if any
        child.wait_for("READY", 1, deadline)
    match kind:
        case "setup":  # SessionSetup answered, the session's row may not be written yet
            child.wait_for("STARTED ", rng.randint(1, 2), deadline)
            time.sleep(rng.uniform(0, 0.005))
        case "authorize":  # the backend is being asked
            child.wait_for("AUTHORIZE ", rng.randint(1, 2), deadline)
            time.sleep(rng.uniform(0, 0.01))
        case "charging":  # energy flows
            child.wait_for("MSG CurrentDemandReq ", rng.randint(5, 9), deadline)
            time.sleep(rng.uniform(0, 0.03))
        case "stop":  # PowerDelivery(Stop) answered: welding detection, SessionStop
            child.wait_for("MSG PowerDeliveryReq ", 2, deadline)
            time.sleep(rng.uniform(0, 0.06))
        case "commit":  # just before a record is committed, or after it (not yet the end)
            child.wait_for(rng.choice(("STORING ", "STORED ")), 1, deadline)
        case "settle":  # the processor applied a record; not yet marked delivered
            child.wait_for("SETTLED ", 1, deadline)
        case _:  # anywhere
            time.sleep(rng.uniform(0, 0.8))
    child.kill()


def test_sigkill_during_sessions_bills_every_session_once(tmp_path: Path) -> None:
    """Issue 6: the charger killed (SIGKILL) at random points of sessions and of delivery,
    restarted on the same SQLite file, many times; then a peaceful run. Every session the
    store saw start has exactly one record (its own or a recovered one), every record is
    delivered and applied once by the receiver, the receiver holds nothing the store does
    not, and the energy billed never exceeds what the meter counted."""
    rng = random.Random(6)
    db = tmp_path / "secc.db"
    meter = tmp_path / "meter"
    recovery_child.write_meter(meter, METER_START)
    zygote = Zygote(tmp_path / "children.log")
    committed: list[str] = []
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    options = {"db": str(db), "meter": str(meter), "secret": SECRET.decode()}
    try:
        with threaded_receiver(SECRET) as receiver:
            for k in range(KILLS):
                kind = KINDS[k % len(KINDS)]
                receiver.mode = "fail" if kind != "settle" and rng.random() < 0.2 else "ok"
                child = zygote.fork(
                    **options,
                    url=receiver.url,
                    seed=rng.randrange(2**31),
                    hold_settle=kind == "settle",
                    hold_commit=kind == "commit",
                    drain=False,
                )
                try:
                    _kill_at(kind, child, rng, time.monotonic() + ITERATION_TIMEOUT)
                finally:
                    if not child.eof:
                        child.kill()
                kinds[kind] += 1
                committed += child.words("COMMITTED ", 1)
            killing = time.monotonic() - started

            receiver.mode = "ok"  # a last, peaceful run recovers and delivers what is left
            child = zygote.fork(
                **options,
                url=receiver.url,
                seed=0,
                hold_settle=False,
                hold_commit=False,
                drain=True,
            )
            child.wait_for("DRAINED", 1, time.monotonic() + 30)
            child.finish()
            seen = receiver.snapshot()
    finally:
        zygote.close()
    log = (tmp_path / "children.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]

    with SessionStore(db) as store:
        store.check()
        sessions = store.sessions(limit=100_000)
        records = store.billing_records(limit=100_000)
        entries = store.outbox_entries(limit=100_000)
    by_id = {r.record_id: r for r in records}
    recovered = [r for r in records if r.stop_reason is StopReason.EVSE_RESTARTED]
    counted = recovery_child.read_meter(meter) - METER_START
    billed_wh = sum(r.energy_wh for r in records)
    duplicates = sum(seen["deliveries"].values()) - len(seen["applied"])
    print(
        f"{KILLS} kills {dict(kinds)} in {killing:.1f} s: {len(sessions)} sessions, "
        f"{len(records)} records ({len(recovered)} recovered, "
        f"{sum(r.energy_wh > 0 for r in recovered)} with energy), {len(committed)} committed "
        f"by the sessions; {sum(seen['deliveries'].values())} deliveries, {duplicates} "
        f"duplicates recognised; {billed_wh} Wh billed of {counted} Wh counted"
    )

    # every session the store saw start: ended, with exactly one record
    per_session = Counter(r.session_id for r in records)
    assert len(sessions) >= KILLS // 2  # (a kill "anywhere" may come before any session)
    assert all(s.state is SessionState.ENDED for s in sessions)
    assert {s.session_id: per_session[s.session_id] for s in sessions} == {
        s.session_id: 1 for s in sessions
    }
    assert set(committed) <= set(by_id)  # nothing a session committed was lost
    assert len(by_id) == len(records)
    # sessions killed while charging were billed on restart, with their energy
    assert recovered and any(r.energy_wh > 0 and r.id_token == "CARD-0042" for r in recovered)
    for record in recovered:
        assert record.record_id == record_id(record.session_id, 1)
    for record in records:  # the tariff, as the session itself would have priced it
        stopped_at = max(record.started_at, record.stopped_at)
        assert record.price == recovery_child.TARIFF.price(
            record.energy_wh, record.started_at, stopped_at
        )

    # delivered, each applied once; the receiver holds nothing the store does not
    assert len(entries) == len(records)
    assert all(e.state is OutboxState.DELIVERED for e in entries)
    keys = {f"{record_id}:payment" for record_id in by_id}
    assert set(seen["applied"]) == keys
    assert seen["applications"] == Counter(dict.fromkeys(keys, 1))
    for record_id_, record in by_id.items():
        assert seen["applied"][f"{record_id_}:payment"] == billing_record_to_json(record)
    assert duplicates > 0  # kills between settle and mark_delivered: sent again, recognised
    assert seen["bad_signatures"] == 0 and seen["bad_requests"] == 0

    # the energy billed: meter intervals that never overlap, within what the meter counted
    intervals = sorted(
        (r.meter_start.energy_wh, r.meter_stop.energy_wh)
        for r in records
        if r.meter_start is not None and r.meter_stop is not None and r.energy_wh > 0
    )
    assert intervals and intervals[0][0] >= METER_START
    for before, after in pairwise(intervals):
        assert after[0] >= before[1], (before, after)
    assert intervals[-1][1] <= METER_START + counted
    assert 0 < billed_wh <= counted
