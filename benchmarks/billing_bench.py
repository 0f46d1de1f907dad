"""Billing throughput: records per second through the outbox to a local webhook.

    python benchmarks/billing_bench.py [--records 1000] [--runs 3]

Each run stores N billing records in a fresh SQLite store (on disk, WAL, synchronous=FULL:
one fsynced transaction per record, as the charger commits them), then one `DeliveryWorker`
delivers them with the `WebhookProcessor` to a receiver in another process on 127.0.0.1
(HMAC checked, each idempotency key applied once, as a payment processor would). Printed:
the commit cost of `record_billing` per record, the delivery rate (settle over HTTP and
`mark_delivered`, one record at a time as the worker does per destination) and the end-to-end
rate (store and deliver).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = b"benchmark-shared-secret"


# --- the receiver process ---------------------------------------------------------------------


def serve() -> None:
    from aiohttp import web

    from secc.billing.webhook import SignatureError, verify_signature

    applied: dict[str, str] = {}
    deliveries = 0

    async def billing(request: web.Request) -> web.Response:
        nonlocal deliveries
        body = await request.read()
        try:
            verify_signature(SECRET, request.headers, body, time.time())
        except SignatureError as exc:
            return web.json_response({"error": str(exc)}, status=401)
        key = request.headers["Idempotency-Key"]
        deliveries += 1
        if key in applied:
            return web.json_response({"reference": applied[key], "duplicate": True}, status=409)
        applied[key] = f"inv-{len(applied) + 1}"
        return web.json_response({"reference": applied[key]})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"applied": len(applied), "deliveries": deliveries})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/billing", billing)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the charger side ---------------------------------------------------------------------------


def make_record(n: int, run: int) -> object:
    from secc.records import BillingRecord, IdentificationKind, MeterReading, StopReason

    start = datetime(2025, 6, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=n)
    return BillingRecord(
        record_id=f"bench-{run}-{n:06d}",
        session_id=f"{n:016x}",
        evse_id="DE*ABC*E0000001*1",
        protocol="iso2",
        kind=IdentificationKind.CONTRACT,
        contract_id="DEABCC123456780",
        started_at=start,
        stopped_at=start + timedelta(minutes=40),
        meter_start=MeterReading(meter_id="M1", energy_wh=100_000, at=start),
        meter_stop=MeterReading(meter_id="M1", energy_wh=132_500, at=start),
        stop_reason=StopReason.EV_STOPPED,
    )


async def one_run(
    directory: Path, url: str, records: int, run: int
) -> tuple[list[float], float, float]:
    from secc.billing.outbox import DeliveryWorker
    from secc.billing.webhook import WebhookProcessor
    from secc.payment import PaymentProcessor, Settlement
    from secc.records import BillingRecord
    from secc.store import OutboxState, SessionStore

    class Timed(PaymentProcessor):
        """The webhook, with the time spent in settle (the HTTP exchange) summed up."""

        def __init__(self, inner: WebhookProcessor) -> None:
            self.inner, self.name, self.spent = inner, inner.name, 0.0

        async def settle(self, record: BillingRecord, *, idempotency_key: str) -> Settlement:
            started = time.perf_counter()
            try:
                return await self.inner.settle(record, idempotency_key=idempotency_key)
            finally:
                self.spent += time.perf_counter() - started

    store = SessionStore(directory / "secc.db")
    batch = [make_record(n, run) for n in range(records)]
    commits = []
    for record in batch:
        started = time.perf_counter()
        store.record_billing(record)  # type: ignore[arg-type]
        commits.append(time.perf_counter() - started)
    webhook = WebhookProcessor(url=url, secret=SECRET.decode())
    timed = Timed(webhook)
    worker = DeliveryWorker(store, {"payment": timed}, batch=500)
    started = time.perf_counter()
    while store.outbox_counts()[OutboxState.PENDING]:
        done = await worker.deliver_due(datetime.now(UTC))
        if done.failed or done.held:
            raise SystemExit(f"delivery failed: {done.attempts[-1].error}")
    delivery = time.perf_counter() - started
    await webhook.close()
    store.close()
    return commits, delivery, timed.spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    import logging

    logging.disable(logging.WARNING)
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        url = f"http://127.0.0.1:{port}/billing"
        print(f"{args.records} records per run, {args.runs} runs; receiver on 127.0.0.1:{port}")
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory() as directory:
                commits, delivery, http = asyncio.run(
                    one_run(Path(directory), url, args.records, run)
                )
            store_time = sum(commits)
            ms = sorted(c * 1000 for c in commits)
            print(
                f"run {run}: record_billing {statistics.mean(ms):.2f} ms/record "
                f"(median {statistics.median(ms):.2f}, p99 {ms[int(len(ms) * 0.99) - 1]:.2f}); "
                f"delivery {args.records / delivery:.0f} records/s "
                f"({delivery / args.records * 1000:.2f} ms/record, of which HTTP "
                f"{http / args.records * 1000:.2f}); "
                f"end to end {args.records / (store_time + delivery):.0f} records/s"
            )
        import json
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
            stats = json.load(answer)
        print(f"receiver: {stats['applied']} records applied, {stats['deliveries']} deliveries")
    finally:
        receiver.terminate()
        receiver.wait(10)


if __name__ == "__main__":
    main()
