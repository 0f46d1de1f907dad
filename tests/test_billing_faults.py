"""Billing delivery under faults (issue 6's "must show"):

* the payment processor down (500s, no answer, connection refused) for the length of several
  real sessions, then back: every record delivered, each applied once by the receiver;
* the charger process killed with SIGKILL at random points, while it stores records and while
  it delivers them (also between settle and mark_delivered), restarted on the same SQLite file
  many times: no committed record lost, none applied twice by the receiver.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import billing_child
from billing_receiver import Receiver, threaded_receiver
from session_pair import Clock, SessionPair, ev_config

from evcc.config import Payment
from iso15118.sap import AppProtocol
from secc.billing.backoff import Backoff
from secc.billing.outbox import DeliveryWorker
from secc.billing.webhook import WebhookProcessor
from secc.evse import EnergyMode
from secc.records import BillingRecord
from secc.records_json import billing_record_to_json
from secc.simulated import SimulatedEVSE
from secc.store import OutboxState, SessionStore

SECRET = b"fault-test-shared-secret"


async def _until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- (a) the processor down for several sessions ---------------------------------------------


def _ac_pair() -> SessionPair:
    clock = Clock()
    evse = SimulatedEVSE(dc=False, clock=lambda: clock.now, wall_clock=clock.wall, meter_wh=10)
    config = ev_config(energy_mode=EnergyMode.AC_THREE_PHASE_CORE, max_charge_loops=5)
    return SessionPair(config, evse=evse, clock=clock)


SESSIONS: list[tuple[Callable[[], SessionPair], str]] = [  # a session, how the processor is down
    (lambda: SessionPair(ev_config(max_charge_loops=5)), "fail"),
    (_ac_pair, "fail"),
    (lambda: SessionPair(ev_config(protocols=(AppProtocol.DIN,), max_charge_loops=5)), "hang"),
    (lambda: SessionPair(ev_config(max_charge_loops=3, payment=Payment.EIM)), "hang"),
    (lambda: SessionPair(ev_config(max_charge_loops=4)), "refused"),
    (lambda: SessionPair(ev_config(protocols=(AppProtocol.DIN,), max_charge_loops=3)), "refused"),
]


def test_processor_down_for_several_sessions_then_back(tmp_path: Path) -> None:
    stored: list[BillingRecord] = []

    async def scenario() -> tuple[Receiver, SessionStore]:
        receiver = Receiver(SECRET, hang_seconds=5)
        await receiver.start()
        port = receiver.port
        store = SessionStore(tmp_path / "secc.db")
        webhook = WebhookProcessor(
            url=receiver.url, secret=SECRET.decode(), timeout=0.3, connect_timeout=0.3
        )
        worker = DeliveryWorker(
            store,
            {"payment": webhook},
            backoff=Backoff(initial=0.05, maximum=0.25),
            timeout=2,
            poll_interval=0.1,
            random=random.Random(7).random,
        )
        task = asyncio.create_task(worker.run())
        serving = True
        try:
            for n, (make_pair, down) in enumerate(SESSIONS):
                if down == "refused" and serving:
                    await receiver.stop()  # nobody listens on the port any more
                    serving = False
                receiver.mode = down
                pair = make_pair()
                finished = await asyncio.to_thread(pair.run)  # the worker keeps trying
                assert finished is not None and finished.ok, finished
                for record in pair.records:
                    # the in-memory pairs draw the same SessionIDs: make each record its own
                    record = dataclasses.replace(record, record_id=f"s{n}-{record.record_id}")
                    assert store.record_billing(record)
                    stored.append(record)
                    worker.wake()  # as the server does once the record is committed
            # delivery was tried (and failed) while the processor was down; after a failure
            # the worker holds the rest of the backlog until the retry time, so not every
            # record need have had its own attempt yet
            await _until(
                lambda: any(e.attempts >= 1 for e in store.outbox_entries()),
                10,
                "a failed delivery attempt",
            )
            assert store.outbox_counts()[OutboxState.PENDING] == len(stored)
            assert receiver.applied == {}

            await receiver.start(port=port)  # back, on the same address
            receiver.mode = "ok"
            await _until(lambda: store.outbox_counts()[OutboxState.PENDING] == 0, 10, "the backlog")
        finally:
            worker.stop()
            await asyncio.wait_for(task, 5)
            await webhook.close()
            await receiver.stop()
        return receiver, store

    receiver, store = asyncio.run(scenario())
    keys = {f"{r.record_id}:payment" for r in stored}
    assert len(stored) == len(SESSIONS)
    assert set(receiver.applied) == keys
    assert receiver.applications == Counter(dict.fromkeys(keys, 1))  # each applied once
    for record in stored:
        assert receiver.applied[f"{record.record_id}:payment"] == billing_record_to_json(record)
    counts = store.outbox_counts()
    assert counts == {
        OutboxState.PENDING: 0,
        OutboxState.DELIVERED: len(stored),
        OutboxState.HELD: 0,
    }
    entries = store.outbox_entries()
    assert sum(e.attempts for e in entries) > len(entries)  # some failed before they went
    for entry in entries:
        assert entry.attempts >= 1 and entry.reference and entry.reference.startswith("inv-")
    assert receiver.bad_signatures == 0 and receiver.bad_requests == 0


# --- (b) SIGKILL loop --------------------------------------------------------------------------

KILLS = 40
ITERATION_TIMEOUT = 10.0


def _fork_server() -> Any:
    """Children forked from a server that has imported the charger code once: a restart
    costs milliseconds (not the imports), so that many kills fit in a few seconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["billing_child"])
    return context


class Child:
    """One charger process (tests/billing_child.py); its messages arrive on a pipe."""

    def __init__(self, context: Any, db: Path, url: str, prefix: str, seed: int, hold: bool):
        self.messages, child_end = context.Pipe(duplex=False)
        self.process = context.Process(
            target=billing_child.run_child,
            args=(child_end, str(db), url, SECRET.decode(), prefix, seed, hold),
            daemon=True,
        )
        self.process.start()
        child_end.close()  # ours: so that the pipe ends when the child dies
        self.committed: list[str] = []

    def _next(self, deadline: float) -> str | None:
        if not self.messages.poll(max(0.0, deadline - time.monotonic())):
            raise AssertionError("the child said nothing in time")
        try:
            line: str = self.messages.recv_bytes().decode()
        except EOFError:
            return None
        if line.startswith("COMMITTED "):
            self.committed.append(line.split()[1])
        return line

    def wait_for(self, prefix: str, count: int, deadline: float) -> None:
        """Until the `count`-th message starting with `prefix`."""
        seen = 0
        while seen < count:
            line = self._next(deadline)
            if line is None:
                raise AssertionError(f"child ended early (exit code {self.process.exitcode})")
            seen += line.startswith(prefix)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL
        self.process.join(10)
        assert self.process.exitcode == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while self._next(deadline) is not None:  # what it said before it died
            pass
        self.messages.close()
        self.process.close()


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(15118)
    context = _fork_server()
    db = tmp_path / "secc.db"
    committed: list[str] = []
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    with threaded_receiver(SECRET) as receiver:
        for k in range(KILLS):
            kind = ("anywhere", "storing", "after-settle")[k % 3]
            receiver.mode = "fail" if kind != "after-settle" and rng.random() < 0.25 else "ok"
            seed, hold = rng.randrange(2**31), kind == "after-settle"
            child = Child(context, db, receiver.url, f"k{k:02d}", seed, hold)
            deadline = time.monotonic() + ITERATION_TIMEOUT
            try:
                child.wait_for("READY", 1, deadline)
                if kind == "anywhere":  # while storing, delivering or sleeping
                    time.sleep(rng.uniform(0.0, 0.25))
                elif kind == "storing":  # just after it began a record_billing
                    child.wait_for("STORING ", rng.randint(1, 6), deadline)
                else:  # settled by the processor, not yet marked delivered
                    child.wait_for("SETTLED ", rng.randint(1, 3), deadline)
            finally:
                child.kill()
            kinds[kind] += 1
            committed += child.committed
        killing = time.monotonic() - started

        # a last, peaceful run delivers what is left (records released: due now)
        receiver.mode = "ok"
        store = SessionStore(db)
        store.check()
        store.release(at=datetime.now(UTC))
        webhook = WebhookProcessor(url=receiver.url, secret=SECRET.decode(), timeout=5)

        async def drain() -> None:
            worker = DeliveryWorker(store, {"payment": webhook}, timeout=5)
            try:
                for _ in range(20):
                    done = await worker.deliver_due(datetime.now(UTC))
                    if not done.attempts:
                        break
            finally:
                await webhook.close()

        asyncio.run(drain())
        seen = receiver.snapshot()

    records = {r.record_id: r for r in store.billing_records(limit=100_000)}
    entries = store.outbox_entries(limit=100_000)
    print(
        f"{KILLS} kills {dict(kinds)} in {killing:.1f} s; {len(committed)} records committed, "
        f"{len(records)} stored, {sum(seen['deliveries'].values())} deliveries, "
        f"{sum(seen['deliveries'].values()) - len(seen['applied'])} duplicates recognised"
    )
    assert len(committed) > KILLS  # the children did store records
    assert set(committed) <= set(records)  # nothing committed was lost
    assert len(entries) == len(records)  # every stored record has its outbox row, no other
    assert all(e.state is OutboxState.DELIVERED for e in entries)
    keys = {f"{record_id}:payment" for record_id in records}
    assert set(seen["applied"]) == keys  # delivered, and nothing that was never stored
    assert seen["applications"] == Counter(dict.fromkeys(keys, 1))  # none applied twice
    for record_id, record in records.items():
        assert seen["applied"][f"{record_id}:payment"] == billing_record_to_json(record)
    # kills between settle and mark_delivered happened: those records came again, same key
    assert sum(seen["deliveries"].values()) > len(seen["applied"])
    assert seen["bad_signatures"] == 0 and seen["bad_requests"] == 0
    store.close()
