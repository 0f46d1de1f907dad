"""The charger process of the SIGKILL test (tests/test_billing_faults.py): stores billing
records and delivers them with the outbox worker to a webhook, until it is killed.

The test starts it with `run_child` in a process forked from a multiprocessing fork server
that has imported this module already (a restart then costs milliseconds, not the imports);
by hand: ``python billing_child.py DB URL SECRET_HEX PREFIX SEED [--hold-after-settle]``.

It says, one message each: ``READY`` once running, ``STORING ID`` just before
`record_billing`, ``COMMITTED ID`` once it returned, ``SETTLED KEY`` when the processor
acknowledged a record (before the worker marks it delivered). With `hold` it waits 0.15 s
there, so that the parent can kill it between settle and mark_delivered.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

from secc.billing.backoff import Backoff
from secc.billing.outbox import DeliveryWorker
from secc.billing.webhook import WebhookProcessor
from secc.payment import PaymentProcessor, Settlement
from secc.records import BillingRecord, IdentificationKind, MeterReading, StopReason
from secc.store import SessionStore

Say = Callable[[str], None]


def print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def make_record(record_id: str, n: int) -> BillingRecord:
    start = datetime(2025, 6, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=n)
    return BillingRecord(
        record_id=record_id,
        session_id=f"{n:016x}",
        evse_id="DE*ABC*E0000001*1",
        protocol="iso2",
        kind=IdentificationKind.EXTERNAL,
        contract_id=None,
        id_token=f"RFID-{n:04d}",
        started_at=start,
        stopped_at=start + timedelta(minutes=25),
        meter_start=MeterReading(meter_id="M1", energy_wh=100_000 + n, at=start),
        meter_stop=MeterReading(
            meter_id="M1", energy_wh=100_000 + n + 1000 * (n % 7 + 1), at=start
        ),
        stop_reason=StopReason.EV_STOPPED,
    )


class Announcing(PaymentProcessor):
    """Says SETTLED when the real processor acknowledged, optionally waits after it."""

    def __init__(self, inner: PaymentProcessor, hold: float, say: Say) -> None:
        self.inner = inner
        self.name = inner.name
        self.hold = hold
        self.say = say

    async def settle(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
        settled = await self.inner.settle(record, idempotency_key=idempotency_key)
        self.say(f"SETTLED {idempotency_key}")
        if self.hold:
            await asyncio.sleep(self.hold)
        return settled


async def main(
    db: str, url: str, secret: str, prefix: str, seed: int, hold: bool, say: Say
) -> None:
    rng = random.Random(seed)
    store = SessionStore(db)
    webhook = WebhookProcessor(url=url, secret=secret, timeout=2)
    processor = Announcing(webhook, 0.15 if hold else 0, say)
    worker = DeliveryWorker(
        store,
        {processor.name: processor},
        backoff=Backoff(initial=0.05, maximum=0.3),
        timeout=3,
        poll_interval=0.05,
        random=rng.random,
    )
    task = asyncio.create_task(worker.run())
    say("READY")
    for n in range(10_000):
        record_id = f"{prefix}-{n:04d}"
        say(f"STORING {record_id}")
        store.record_billing(make_record(record_id, n))
        say(f"COMMITTED {record_id}")
        worker.wake()
        await asyncio.sleep(rng.uniform(0.0, 0.03))
    await task


def run_child(
    conn: Connection, db: str, url: str, secret: str, prefix: str, seed: int, hold: bool
) -> None:
    """The multiprocessing entry: messages go to `conn` (sent at once, no buffering)."""

    def say(line: str) -> None:
        conn.send_bytes(line.encode())

    asyncio.run(main(db, url, secret, prefix, seed, hold, say))


if __name__ == "__main__":
    db, url, secret_hex, prefix, seed = sys.argv[1:6]
    secret = bytes.fromhex(secret_hex).decode()
    hold = "--hold-after-settle" in sys.argv
    asyncio.run(main(db, url, secret, prefix, int(seed), hold, print_line))
