"""Billing delivery: the back-off, the store's outbox states (schema v2) and the worker, with
fake processors and a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secc.billing.backoff import Backoff
from secc.billing.outbox import AttemptOutcome, DeliveryWorker
from secc.payment import (
    DeliveryError,
    PaymentProcessor,
    RejectedRecord,
    Settlement,
    idempotency_key,
)
from secc.records import BillingRecord, IdentificationKind, MeterReading, Price, StopReason
from secc.store import MIGRATIONS, SCHEMA_VERSION, OutboxState, SessionStore, StoreError

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def record(n: int, *, wh: int = 5000, price: Price | None = None) -> BillingRecord:
    return BillingRecord(
        record_id=f"rec-{n:04d}",
        session_id=f"{n:016x}",
        evse_id="DE*ABC*E0000001*1",
        protocol="iso2",
        kind=IdentificationKind.CONTRACT,
        contract_id="DEABCC123456780",
        started_at=T0,
        stopped_at=T0 + timedelta(minutes=30),
        meter_start=MeterReading(meter_id="M1", energy_wh=1000, at=T0),
        meter_stop=MeterReading(meter_id="M1", energy_wh=1000 + wh, at=T0 + timedelta(minutes=30)),
        stop_reason=StopReason.EV_STOPPED,
        price=price,
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeProcessor(PaymentProcessor):
    """Settles or fails as `mode` says: up, down, reject, hang, crash, garbage."""

    def __init__(self, name: str = "payment", mode: str = "up") -> None:
        self.name = name
        self.mode = mode
        self.calls: list[str] = []  # idempotency keys, in call order
        self.settled: dict[str, BillingRecord] = {}
        self.on_settle: Callable[[str], None] | None = None

    async def settle(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
        self.calls.append(idempotency_key)
        if self.on_settle is not None:
            self.on_settle(idempotency_key)
        match self.mode:
            case "down":
                raise DeliveryError("connection refused")
            case "reject":
                raise RejectedRecord("HTTP 400: no such contract")
            case "hang":
                await asyncio.sleep(60)
            case "crash":
                raise RuntimeError("bug in the processor")
            case "garbage":
                return "ok"  # type: ignore[return-value]
        duplicate = idempotency_key in self.settled
        self.settled.setdefault(idempotency_key, record)
        return Settlement(reference=f"ref-{record.record_id}", duplicate=duplicate)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SessionStore:
    return SessionStore(tmp_path / "secc.db", clock=clock)


def worker(store: SessionStore, clock: Clock, *processors: PaymentProcessor, **kw: Any) -> Any:
    kw.setdefault("random", lambda: 0.0)
    return DeliveryWorker(store, {p.name: p for p in processors}, clock=clock, **kw)


# --- back-off -------------------------------------------------------------------------------


def test_backoff_doubles_to_the_cap() -> None:
    backoff = Backoff(initial=2, maximum=600, jitter=0)
    delays = [backoff.delay(n, lambda: 0.5) for n in range(0, 13)]
    assert delays == [0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]
    assert backoff.delay(10**6, lambda: 0.5) == 600  # no overflow


def test_backoff_jitter_only_shortens() -> None:
    backoff = Backoff(initial=10, maximum=100, jitter=0.2)
    assert backoff.delay(1, lambda: 0.0) == 10
    assert backoff.delay(1, lambda: 0.999999) == pytest.approx(8, abs=1e-4)
    assert backoff.delay(5, lambda: 0.5) == pytest.approx(90)


@pytest.mark.parametrize(
    "kw",
    [
        {"initial": 0},
        {"initial": -1},
        {"initial": 10, "maximum": 5},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"initial": float("nan")},
        {"maximum": float("inf")},
    ],
)
def test_backoff_refuses_bad_parameters(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="back-off"):
        Backoff(**kw)


@given(
    initial=st.floats(0.001, 100),
    extra=st.floats(0, 10_000),
    factor=st.floats(1, 10),
    jitter=st.floats(0, 1),
    failures=st.integers(-5, 5000),
    u=st.floats(0, 1),
)
def test_backoff_properties(
    initial: float, extra: float, factor: float, jitter: float, failures: int, u: float
) -> None:
    backoff = Backoff(initial=initial, maximum=initial + extra, factor=factor, jitter=jitter)
    delay = backoff.delay(failures, lambda: u)
    base = backoff.base(failures)
    assert 0 <= delay <= backoff.maximum
    assert delay >= base * (1 - jitter) - 1e-9
    if failures >= 1:
        assert base >= initial - 1e-9
        assert backoff.base(failures + 1) >= base


# --- store v2 -------------------------------------------------------------------------------


def test_store_outbox_states(store: SessionStore, clock: Clock) -> None:
    for n in range(3):
        store.record_billing(record(n))
    assert store.outbox_counts() == {
        OutboxState.PENDING: 3,
        OutboxState.DELIVERED: 0,
        OutboxState.HELD: 0,
    }
    assert store.next_due() == T0
    assert store.pending_destinations() == ["payment"]

    store.mark_delivered("rec-0000", "payment", at=T0 + timedelta(seconds=1), reference="inv-7")
    store.mark_held("rec-0001", "payment", error="HTTP 400", at=T0 + timedelta(seconds=2))
    store.mark_failed("rec-0002", "payment", error="down", retry_at=T0 + timedelta(minutes=5))
    assert store.next_due() == T0 + timedelta(minutes=5)
    assert store.pending_outbox(T0 + timedelta(hours=1)) != []
    assert [i.record_id for i in store.pending_outbox(T0 + timedelta(hours=1))] == ["rec-0002"]
    assert store.outbox_counts() == {
        OutboxState.PENDING: 1,
        OutboxState.DELIVERED: 1,
        OutboxState.HELD: 1,
    }
    delivered, held, pending = store.outbox_entries()
    assert delivered.state is OutboxState.DELIVERED and delivered.reference == "inv-7"
    assert delivered.delivered_at == T0 + timedelta(seconds=1) and delivered.attempts == 1
    assert delivered.next_attempt_at is None
    assert held.state is OutboxState.HELD and held.last_error == "HTTP 400"
    assert held.held_at == T0 + timedelta(seconds=2)
    assert pending.next_attempt_at == T0 + timedelta(minutes=5) and pending.last_error == "down"
    assert pending.energy_wh == 5000 and pending.session_id == f"{2:016x}"
    assert pending.contract_id == "DEABCC123456780" and pending.evse_id == "DE*ABC*E0000001*1"
    assert [e.record_id for e in store.outbox_entries(OutboxState.HELD)] == ["rec-0001"]
    assert [e.record_id for e in store.outbox_entries(newest_first=True)] == [
        "rec-0002",
        "rec-0001",
        "rec-0000",
    ]
    assert [e.record_id for e in store.outbox_entries(limit=1)] == ["rec-0000"]

    # nothing is marked twice, a held item is not delivered, failed or handed out
    with pytest.raises(KeyError):
        store.mark_delivered("rec-0000", "payment", at=T0)
    with pytest.raises(KeyError):
        store.mark_failed("rec-0001", "payment", error="x", retry_at=T0)
    with pytest.raises(KeyError):
        store.mark_held("rec-0000", "payment", error="x", at=T0)


def test_store_release_one_or_all(store: SessionStore) -> None:
    for n in range(4):
        store.record_billing(record(n))
    store.mark_held("rec-0000", "payment", error="refused", at=T0)
    store.mark_held("rec-0001", "payment", error="refused", at=T0)
    store.mark_failed("rec-0002", "payment", error="down", retry_at=T0 + timedelta(hours=1))
    store.mark_delivered("rec-0003", "payment", at=T0)
    later = T0 + timedelta(minutes=1)
    assert store.release(at=later, record_id="rec-0000") == 1
    assert store.release(at=later, record_id="rec-0003") == 0  # delivered stays delivered
    assert store.release(at=later, record_id="nope") == 0
    assert [i.record_id for i in store.pending_outbox(later)] == ["rec-0000"]
    assert store.release(at=later) == 3  # rec-0000 again, rec-0001, rec-0002
    assert [i.record_id for i in store.pending_outbox(later)] == [
        "rec-0000",
        "rec-0001",
        "rec-0002",
    ]
    entry = store.outbox_entries(record_id="rec-0001")[0]
    assert entry.state is OutboxState.PENDING and entry.held_at is None
    assert entry.last_error == "refused" and entry.attempts == 1  # history kept
    assert store.outbox_counts()[OutboxState.DELIVERED] == 1


def test_store_due_after_and_destinations(tmp_path: Path, clock: Clock) -> None:
    store = SessionStore(tmp_path / "db", destinations=("payment", "ledger"), clock=clock)
    store.record_billing(record(0))
    clock.advance(10)
    store.record_billing(record(1))
    assert store.pending_destinations() == ["ledger", "payment"]
    now = T0 + timedelta(minutes=1)
    after = T0 + timedelta(seconds=5)
    due = store.pending_outbox(now, destination="payment", after=after)
    assert [i.record_id for i in due] == ["rec-0001"]
    assert store.next_due(destination="payment", after=after) == T0 + timedelta(seconds=10)
    assert store.next_due(destination="ledger") == T0
    assert store.outbox_counts(destination="ledger")[OutboxState.PENDING] == 2


def test_store_summary_has_the_amount_when_priced(store: SessionStore) -> None:
    price = Price(
        tariff_id="T1",
        currency="EUR",
        energy=Decimal("1.75"),
        time=Decimal("0.50"),
        fee=Decimal("0.25"),
        total=Decimal("2.50"),
    )
    store.record_billing(record(1, price=price))
    store.record_billing(record(2))
    priced, free = store.outbox_entries()
    stored = store.billing_record("rec-0001")
    assert stored is not None
    if stored.price is not None:  # the JSON form carries the price
        assert (priced.amount, priced.currency) == (Decimal("2.50"), "EUR")
    else:
        assert priced.amount is None
    assert free.amount is None and free.currency is None


def test_migration_from_a_v1_file(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "v1.db"
    old = SessionStore(path, clock=clock, migrations=MIGRATIONS[:1])
    assert old.schema_version == 1
    for n in range(3):
        old.record_billing(record(n))
    old.close()
    raw = sqlite3.connect(path)  # what a v1 program's mark_delivered wrote
    raw.execute(
        "UPDATE outbox SET delivered_at=?, attempts=1 WHERE record_id='rec-0001'",
        (T0.isoformat(timespec="microseconds"),),
    )
    raw.commit()
    raw.close()

    store = SessionStore(path, clock=clock)
    assert store.schema_version == SCHEMA_VERSION >= 2  # v1 -> the latest
    states = {e.record_id: e.state for e in store.outbox_entries()}
    assert states == {
        "rec-0000": OutboxState.PENDING,
        "rec-0001": OutboxState.DELIVERED,
        "rec-0002": OutboxState.PENDING,
    }
    assert [i.record_id for i in store.pending_outbox(T0)] == ["rec-0000", "rec-0002"]
    store.mark_held("rec-0000", "payment", error="x", at=T0)
    store.close()
    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):  # the CHECK constraint of the new column
        raw.execute("UPDATE outbox SET state='lost'")


def test_record_billing_still_one_transaction(tmp_path: Path, clock: Clock) -> None:
    store = SessionStore(tmp_path / "db", destinations=("payment", "payment"), clock=clock)
    with pytest.raises(StoreError):  # the second outbox row collides: nothing is kept
        store.record_billing(record(1))
    assert store.billing_record("rec-0001") is None
    assert store.outbox_entries() == []


# --- the worker -----------------------------------------------------------------------------


def test_delivers_oldest_first_with_idempotency_keys(store: SessionStore, clock: Clock) -> None:
    for n in (3, 1, 2):
        store.record_billing(record(n))
        clock.advance(1)
    processor = FakeProcessor()
    done = run(worker(store, clock, processor).deliver_due(clock()))
    assert processor.calls == ["rec-0003:payment", "rec-0001:payment", "rec-0002:payment"]
    assert [a.outcome for a in done.attempts] == [AttemptOutcome.DELIVERED] * 3
    assert all(a.marked for a in done.attempts)
    assert store.outbox_counts()[OutboxState.DELIVERED] == 3
    assert store.outbox_entries(record_id="rec-0003")[0].reference == "ref-rec-0003"
    assert processor.calls[0] == idempotency_key(record(3), "payment")


def test_processor_down_then_up(store: SessionStore, clock: Clock) -> None:
    for n in range(3):
        store.record_billing(record(n))
    processor = FakeProcessor(mode="down")
    w = worker(store, clock, processor, backoff=Backoff(initial=2, maximum=60, jitter=0))

    first = run(w.deliver_due(clock()))
    # one probe, then the destination pauses: the other due items are not hammered
    assert [(a.record_id, a.outcome) for a in first.attempts] == [
        ("rec-0000", AttemptOutcome.FAILED)
    ]
    assert first.attempts[0].retry_at == T0 + timedelta(seconds=2)
    assert first.attempts[0].error == "connection refused"
    assert w.next_due(clock()) == T0 + timedelta(seconds=2)
    assert run(w.deliver_due(clock())).attempts == ()  # paused

    clock.advance(1)
    store.record_billing(record(9))  # a new session's record is still tried at once
    new = run(w.deliver_due(clock()))
    assert [a.record_id for a in new.attempts] == ["rec-0009"]

    clock.advance(5)  # the pause is over: the oldest due item is probed next
    probe = run(w.deliver_due(clock()))
    assert [a.record_id for a in probe.attempts] == ["rec-0001"]

    processor.mode = "up"
    clock.advance(60)
    done = run(w.deliver_due(clock()))
    assert sorted(a.record_id for a in done.delivered) == [
        "rec-0000",
        "rec-0001",
        "rec-0002",
        "rec-0009",
    ]
    assert store.outbox_counts()[OutboxState.PENDING] == 0
    assert sorted(processor.settled) == sorted(f"rec-{n:04d}:payment" for n in (0, 1, 2, 9))
    # each key was sent until it was settled once; attempts are counted per item
    assert store.outbox_entries(record_id="rec-0000")[0].attempts == 2
    assert w.next_due(clock()) is None


def test_backoff_grows_per_item(store: SessionStore, clock: Clock) -> None:
    store.record_billing(record(1))
    processor = FakeProcessor(mode="down")
    w = worker(store, clock, processor, backoff=Backoff(initial=2, maximum=10, jitter=0))
    waits = []
    for _ in range(5):
        (attempt,) = run(w.deliver_due(clock())).attempts
        assert attempt.retry_at is not None
        waits.append((attempt.retry_at - clock()).total_seconds())
        clock.now = attempt.retry_at
    assert waits == [2, 4, 8, 10, 10]


def test_rejected_record_is_held_and_released(store: SessionStore, clock: Clock) -> None:
    store.record_billing(record(1))
    store.record_billing(record(2))
    processor = FakeProcessor(mode="reject")
    w = worker(store, clock, processor)
    done = run(w.deliver_due(clock()))
    assert [a.outcome for a in done.attempts] == [AttemptOutcome.HELD] * 2  # no pause
    assert done.held[0].error == "rejected: HTTP 400: no such contract"
    assert w.next_due(clock()) is None
    assert run(w.deliver_due(clock() + timedelta(days=1))).attempts == ()
    assert store.outbox_counts()[OutboxState.HELD] == 2

    processor.mode = "up"  # the operator fixed the contract and releases one record
    assert store.release(at=clock(), record_id="rec-0002") == 1
    done = run(w.deliver_due(clock()))
    assert [a.record_id for a in done.delivered] == ["rec-0002"]
    assert store.outbox_counts()[OutboxState.HELD] == 1


def test_timeout_is_a_failure(store: SessionStore, clock: Clock) -> None:
    store.record_billing(record(1))
    w = worker(store, clock, FakeProcessor(mode="hang"), timeout=0.05)
    (attempt,) = run(w.deliver_due(clock())).attempts
    assert attempt.outcome is AttemptOutcome.FAILED
    assert attempt.error == "no answer within 0.05 s"
    assert store.outbox_entries()[0].last_error == "no answer within 0.05 s"


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("crash", "RuntimeError: bug in the processor"),
        ("garbage", "FakeProcessor.settle returned str, not a Settlement"),
    ],
)
def test_a_broken_processor_is_a_failure(
    store: SessionStore, clock: Clock, mode: str, error: str
) -> None:
    store.record_billing(record(1))
    (attempt,) = run(worker(store, clock, FakeProcessor(mode=mode)).deliver_due(clock())).attempts
    assert attempt.outcome is AttemptOutcome.FAILED and attempt.error == error


def test_destination_without_processor_stays_pending(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionStore(tmp_path / "db", destinations=("payment", "ledger"), clock=clock)
    store.record_billing(record(1))
    store.record_billing(record(2))
    w = worker(store, clock, FakeProcessor())
    with caplog.at_level(logging.WARNING, logger="secc.billing.outbox"):
        first = run(w.deliver_due(clock()))
        second = run(w.deliver_due(clock()))
    assert len(first.delivered) == 2 and first.unserved == ("ledger",)
    assert second.attempts == () and second.unserved == ("ledger",)
    assert store.outbox_counts(destination="ledger")[OutboxState.PENDING] == 2
    assert sum("'ledger'" in r.getMessage() for r in caplog.records) == 1  # logged once
    assert w.next_due(clock()) is None  # nothing the worker can do


def test_destinations_are_delivered_independently(tmp_path: Path, clock: Clock) -> None:
    store = SessionStore(tmp_path / "db", destinations=("payment", "ledger"), clock=clock)
    store.record_billing(record(1))
    payment, ledger = FakeProcessor("payment", mode="down"), FakeProcessor("ledger")
    done = run(worker(store, clock, payment, ledger).deliver_due(clock()))
    outcomes = {a.destination: a.outcome for a in done.attempts}
    assert outcomes == {"payment": AttemptOutcome.FAILED, "ledger": AttemptOutcome.DELIVERED}


def test_crash_between_settle_and_mark_redelivers_with_the_same_key(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "db"
    store = SessionStore(path, clock=clock)
    store.record_billing(record(1))

    class CrashingStore:
        """The store as seen by a process that dies right after settle returned."""

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def mark_delivered(self, *args: Any, **kw: Any) -> None:
            raise StoreError("disk I/O error")

    processor = FakeProcessor()
    crashing = DeliveryWorker(CrashingStore(), {"payment": processor}, clock=clock)
    with pytest.raises(StoreError):
        run(crashing.deliver_due(clock()))
    store.close()

    reopened = SessionStore(path, clock=clock)
    done = run(worker(reopened, clock, processor).deliver_due(clock()))
    assert processor.calls == ["rec-0001:payment", "rec-0001:payment"]
    assert done.delivered[0].duplicate  # the processor recognised the key
    assert len(processor.settled) == 1
    assert reopened.outbox_counts()[OutboxState.DELIVERED] == 1


def test_item_marked_by_another_process_meanwhile(store: SessionStore, clock: Clock) -> None:
    store.record_billing(record(1))
    processor = FakeProcessor()
    # `iso15118 billing retry --deliver` in another process delivered it during our call
    processor.on_settle = lambda key: store.mark_delivered("rec-0001", "payment", at=clock())
    (attempt,) = run(worker(store, clock, processor).deliver_due(clock())).attempts
    assert attempt.outcome is AttemptOutcome.DELIVERED and not attempt.marked
    assert store.outbox_counts()[OutboxState.DELIVERED] == 1


def test_run_wakes_up_for_a_new_record_and_stops(store: SessionStore, clock: Clock) -> None:
    processor = FakeProcessor()
    w = worker(store, clock, processor, poll_interval=60)

    async def scenario() -> None:
        task = asyncio.create_task(w.run())
        await asyncio.sleep(0.01)
        assert processor.calls == []
        store.record_billing(record(1))
        w.wake()  # as the server does after storing; the 60 s poll would be far too late
        for _ in range(200):
            if processor.calls:
                break
            await asyncio.sleep(0.01)
        assert processor.calls == ["rec-0001:payment"]
        w.stop()
        await asyncio.wait_for(task, 2)

    run(scenario())
    assert store.outbox_counts()[OutboxState.DELIVERED] == 1


def test_run_sleeps_until_due_and_survives_a_store_error(
    store: SessionStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store.record_billing(record(1))
    processor = FakeProcessor(mode="down")
    w = worker(store, clock, processor, poll_interval=30)
    run(w.deliver_due(clock()))
    assert w.sleep_time(clock()) == 2  # until the retry, not the poll interval
    assert w.sleep_time(clock() + timedelta(seconds=1)) == 1
    assert w.sleep_time(clock() + timedelta(seconds=5)) == 0
    assert w.sleep_time(clock() + timedelta(seconds=5), idle=True) == 30  # no spinning

    broken = DeliveryWorker(
        type("Broken", (), {"pending_destinations": lambda self: 1 / 0})(),  # type: ignore[arg-type]
        {"payment": processor},
        clock=clock,
        poll_interval=0.01,
    )

    async def scenario() -> None:
        task = asyncio.create_task(broken.run())
        await asyncio.sleep(0.05)
        broken.stop()
        await asyncio.wait_for(task, 2)

    with caplog.at_level(logging.ERROR, logger="secc.billing.outbox"):
        run(scenario())
    assert any("delivery pass failed" in r.getMessage() for r in caplog.records)


def test_run_can_be_cancelled(store: SessionStore, clock: Clock) -> None:
    store.record_billing(record(1))
    w = worker(store, clock, FakeProcessor(mode="hang"), timeout=30)

    async def scenario() -> None:
        task = asyncio.create_task(w.run())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    (entry,) = store.outbox_entries()
    assert entry.state is OutboxState.PENDING and entry.attempts == 0  # tried again later


def test_worker_refuses_bad_settings(store: SessionStore) -> None:
    with pytest.raises(ValueError):
        DeliveryWorker(store, {}, timeout=0)
    with pytest.raises(ValueError):
        DeliveryWorker(store, {}, poll_interval=-1)


def test_records_keep_their_content_through_delivery(store: SessionStore, clock: Clock) -> None:
    original = dataclasses.replace(record(1), id_token="RFID-1234", contract_id=None)
    store.record_billing(original)
    processor = FakeProcessor()
    run(worker(store, clock, processor).deliver_due(clock()))
    assert processor.settled["rec-0001:payment"] == original


# --- property: whatever the processor does, each record is settled once in the end ---------

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("store"), st.integers(0, 3)),
        st.tuples(st.just("mode"), st.sampled_from(["up", "down", "reject", "crash"])),
        st.tuples(st.just("advance"), st.integers(0, 700)),
        st.tuples(st.just("release"), st.integers(0, 0)),
        st.tuples(st.just("pass"), st.integers(0, 0)),
    ),
    max_size=40,
)


@given(steps=STEPS)
def test_every_record_is_settled_exactly_once_in_the_end(steps: list[tuple[str, int]]) -> None:
    clock = Clock()
    store = SessionStore(":memory:", clock=clock)
    processor = FakeProcessor()
    successes: Counter[str] = Counter()
    original = processor.settle

    async def counting(record: BillingRecord, *, idempotency_key: str) -> Settlement:
        settled = await original(record, idempotency_key=idempotency_key)
        successes[idempotency_key] += 1
        return settled

    processor.settle = counting  # type: ignore[method-assign]
    w = worker(store, clock, processor, random=lambda: 0.5)
    stored = 0

    async def scenario() -> None:
        nonlocal stored
        for step, value in steps:
            if step == "store":
                for _ in range(value):
                    store.record_billing(record(stored))
                    stored += 1
            elif step == "mode":
                processor.mode = value  # type: ignore[assignment]
            elif step == "advance":
                clock.advance(value)
            elif step == "release":
                store.release(at=clock())
            else:
                done = await w.deliver_due(clock())
                assert all(a.marked for a in done.attempts)
            counts = store.outbox_counts()
            assert sum(counts.values()) == stored  # one row per record, always
        processor.mode = "up"  # the processor is back, the operator releases what is held
        store.release(at=clock())
        for _ in range(stored + 2):
            clock.advance(700)
            await w.deliver_due(clock())

    run(scenario())
    assert store.outbox_counts()[OutboxState.DELIVERED] == stored
    assert successes == Counter({f"rec-{n:04d}:payment": 1 for n in range(stored)})
    store.close()
