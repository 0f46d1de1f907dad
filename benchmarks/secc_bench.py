"""CurrentDemand request-to-response latency over TLS against one SECC process, with 1, 10
and 100 concurrent sessions, and the SECC's memory per session.

    python benchmarks/secc_bench.py [--sessions 1 10 100] [--seconds 6] [--interval 0.1]

The SECC runs in its own process (TLS on ::1, a simulated DC EVSE whose control pilot is
in state C, a local backend with free charging). The cars are EV simulator cores in this
process, each on its own TLS connection, looping CurrentDemandReq every `--interval`
seconds (real cars: 50-250 ms). Latency is measured at the car: from writing the request
to reading the whole response. Memory per session is the growth of the SECC process's
resident set while the sessions are in their charge loops, divided by their number.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- the SECC process ------------------------------------------------------------------------


async def serve(directory: Path) -> None:
    from iso15118.transport.tls import CertificateChain, Iso2ServerConfig, iso2_server_context
    from secc.backend import LocalBackend
    from secc.context import PaymentOption, SeccConfig
    from secc.evse import ControlPilotState
    from secc.server import SeccServer, SeccServerConfig
    from secc.simulated import SimulatedEVSE
    from secc.store import SessionStore

    context = iso2_server_context(
        Iso2ServerConfig(
            chain=CertificateChain(
                certificates=(directory / "chains" / "secc.pem",),
                private_key=directory / "keys" / "secc.key.pem",
            )
        )
    )
    evse = SimulatedEVSE(isolation_check_duration=0.05)
    evse.set_cp_state(ControlPilotState.C)
    evse.set_cp_state = lambda state: None  # type: ignore[method-assign]  # cars share it
    store = SessionStore(":memory:")
    server = SeccServer(
        SeccServerConfig(
            protocol=SeccConfig(payment_options=(PaymentOption.EXTERNAL_PAYMENT,)),
            host="::1",
            tcp_port=None,
            tls_port=0,
            tls_context=context,
            max_connections=256,
        ),
        controller=evse,
        backend=LocalBackend(store=store, free_charging=True),
        store=store,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with server:
        endpoint = server.tls_endpoint
        assert endpoint is not None
        print(f"port {endpoint.port}", flush=True)
        while line := (await reader.readline()).decode().strip():
            if line == "rss":
                print(f"rss {rss_kib()} {len(server.live)}", flush=True)
            elif line == "mem":
                import tracemalloc

                traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
                print(f"mem {traced} {len(server.live)}", flush=True)
            elif line == "quit":
                break


# --- the cars --------------------------------------------------------------------------------


async def car(port: int, context: Any, seconds: float, interval: float, out: list[float]) -> bool:
    from evcc.config import EvccConfig
    from evcc.events import MessageReceived, MessageSent, SessionFinished
    from evcc.session import EvSession
    from iso15118.sap import AppProtocol

    config = EvccConfig(
        protocols=(AppProtocol.ISO2,),
        initial_soc=10.0,
        target_soc=100.0,
        charge_duration=seconds,
        loop_interval=interval,
    )
    session = EvSession(config, random=os.urandom, clock=lambda: datetime.now(UTC))
    tls: dict[str, Any] = {"ssl": context, "server_hostname": ""} if context else {}
    reader, writer = await asyncio.open_connection("::1", port, **tls)
    loop = asyncio.get_running_loop()
    session.start(loop.time())
    sent_at: float | None = None
    received_at = 0.0
    ok = False
    try:
        while True:
            data = session.data_to_send()
            while (event := session.next_event()) is not None:
                if isinstance(event, MessageSent) and event.name == "CurrentDemandReq":
                    sent_at = time.perf_counter()
                elif isinstance(event, MessageReceived) and event.name == "CurrentDemandRes":
                    if sent_at is not None:
                        out.append(received_at - sent_at)
                        sent_at = None
                elif isinstance(event, SessionFinished):
                    return event.ok
            if data:
                writer.write(data)
            timer = session.get_timer()
            timeout = None if timer is None else max(0.0, timer - loop.time())
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                session.handle_timer(loop.time())
                continue
            received_at = time.perf_counter()
            if not chunk:
                session.close()
                continue
            session.receive_data(chunk, loop.time())
    finally:
        writer.close()
    return ok


async def measure(
    port: int, context: Any, count: int, seconds: float, interval: float, secc: Any
) -> dict[str, float]:
    latencies: list[float] = []
    before, _, before_alloc = _query(secc)
    tasks = [
        asyncio.ensure_future(car(port, context, seconds, interval, latencies))
        for _ in range(count)
    ]
    await asyncio.sleep(min(seconds * 0.75, 1.0 + seconds / 2))
    during, live, during_alloc = _query(secc)
    results = await asyncio.gather(*tasks)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {
        "sessions": count,
        "ok": sum(results),
        "live": int(live),
        "samples": len(latencies),
        "median_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": p99 * 1000,
        "rss_per_session_kib": (during - before) / max(1, live),
        "alloc_per_session_kib": (during_alloc - before_alloc) / 1024 / max(1, live),
    }


def _query(secc: Any) -> tuple[int, int, int]:
    """(resident KiB, live sessions, bytes traced by tracemalloc) of the SECC process."""
    secc.stdin.write(b"rss\nmem\n")
    secc.stdin.flush()
    _, rss, live = secc.stdout.readline().split()
    _, traced, _ = secc.stdout.readline().split()
    return int(rss), int(live), int(traced)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--memory-sessions", type=int, default=100)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the cars' and the SECC's session logs
    if args.serve:
        if args.trace_memory:
            import tracemalloc

            tracemalloc.start()
        asyncio.run(serve(args.serve))
        return
    from iso15118.transport.tls import Iso2ClientConfig, iso2_client_context
    from pki.create import create_pki, write_pki
    from pki.profiles import Standard

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_pki(create_pki(Standard.ISO2, at=datetime.now(UTC)), directory)
        context = iso2_client_context(
            Iso2ClientConfig(trust_anchors=(directory / "trust" / "v2g-root.pem",))
        )
        print(
            f"CurrentDemand over TLS, one SECC process, every {args.interval * 1000:.0f} ms "
            f"per car, {args.seconds:g} s per run"
        )
        print(f"{'sessions':>8} {'completed':>9} {'samples':>8} {'median ms':>10} {'p99 ms':>8}")
        secc, port = _start(directory)
        try:
            asyncio.run(measure(port, context, 1, 1.0, args.interval, secc))  # warm-up
            for count in args.sessions:
                row = asyncio.run(measure(port, context, count, args.seconds, args.interval, secc))
                print(
                    f"{row['sessions']:>8} {row['ok']:>9} {row['samples']:>8} "
                    f"{row['median_ms']:>10.2f} {row['p99_ms']:>8.2f}"
                )
        finally:
            _stop(secc)
        secc, port = _start(directory, "--trace-memory")
        try:
            asyncio.run(measure(port, context, 1, 1.0, args.interval, secc))  # warm-up
            # tracemalloc slows the SECC down; a slower loop keeps the cars within their
            # 0.25 s CurrentDemand timeout (memory per session does not depend on the rate)
            count = args.memory_sessions
            row = asyncio.run(measure(port, context, count, args.seconds, 1.0, secc))
            print(
                f"memory: {row['live']} live sessions; per session "
                f"{row['alloc_per_session_kib']:.0f} KiB allocated by Python (tracemalloc), "
                f"resident set +{row['rss_per_session_kib']:.0f} KiB"
            )
        finally:
            _stop(secc)


def _start(directory: Path, *extra: str) -> tuple[Any, int]:
    secc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(directory), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert secc.stdout is not None
    return secc, int(secc.stdout.readline().split()[1])


def _stop(secc: Any) -> None:
    if secc.stdin:
        secc.stdin.write(b"quit\n")
        secc.stdin.close()
    secc.wait(timeout=10)


if __name__ == "__main__":
    main()
