"""Station API status latency: GET /api/v1/status while 100 concurrent sessions charge
against the same SECC process.

    python benchmarks/api_bench.py [--evses 100] [--seconds 10] [--gap 0.01] [--clients 1]
                                   [--max-age 0.5] [--interval 0.1] [--ramp 0.05]

Three processes on this machine:

* the SECC: one `secc.station.Station` with `--evses` simulated DC EVSEs (control pilot in
  state C), each its own `SeccServer` on ::1 (TCP), one SQLite store (WAL, fsync) in a
  temporary directory, a local backend with free charging, and the station API
  (`secc.api.ApiServer`) on 127.0.0.1 with a bearer token, serving one status snapshot for up
  to `--max-age` seconds (the default configuration; 0 measures a fresh status every time);
* the cars: one EV simulator session (`evcc.client.run_ev`) per EVSE, ISO 15118-2 DC, looping
  CurrentDemandReq every `--interval` seconds (100 ms), arriving `--ramp` seconds apart;
* this one: `--clients` API clients, each on one keep-alive connection, asking for the
  status again `--gap` seconds after each answer. Latency is measured at the client, from
  sending the request to reading the whole JSON body.

It measures once with no session (idle) and once while every EVSE is charging, and prints
the median and 99th percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOKEN = "benchmark-token-0123456789"


# --- the SECC process --------------------------------------------------------------------------


async def serve(directory: Path, evses: int, max_age: float) -> None:
    from iso15118.sap import AppProtocol
    from secc.api import ApiConfig, ApiServer
    from secc.backend import LocalBackend
    from secc.context import PaymentOption, SeccConfig
    from secc.evse import ControlPilotState
    from secc.server import SeccServer, SeccServerConfig
    from secc.simulated import SimulatedEVSE
    from secc.station import Station
    from secc.store import SessionStore

    store = SessionStore(directory / "secc.db")
    backend = LocalBackend(store=store, free_charging=True)
    protocol = SeccConfig(
        protocols=(AppProtocol.ISO2,), payment_options=(PaymentOption.EXTERNAL_PAYMENT,)
    )
    servers = [
        SeccServer(
            SeccServerConfig(protocol=protocol, host="::1", tcp_port=0),
            controller=SimulatedEVSE(
                evse_id=f"DE*ABC*E{n:07d}*1",
                meter_wh=10_000 * n,
                max_power=50_000,
                isolation_check_duration=0.05,
                cp_state=ControlPilotState.C,
            ),
            backend=backend,
            store=store,
        )
        for n in range(1, evses + 1)
    ]
    station = Station(servers, store=store, version="bench")
    api = ApiServer(
        station, ApiConfig(host="127.0.0.1", port=0, token=TOKEN, status_max_age=max_age)
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        async with station, api:
            ports = [s.tcp_endpoint.port for s in servers if s.tcp_endpoint is not None]
            print("ports", api.port, *ports, flush=True)
            await reader.readline()  # quit (or end of input)
    finally:
        store.close()


# --- the cars process --------------------------------------------------------------------------


async def cars(ports: list[int], seconds: float, ramp: float, interval: float) -> None:
    from evcc.client import run_ev
    from evcc.config import EvccConfig
    from iso15118.sap import AppProtocol

    config = EvccConfig(
        protocols=(AppProtocol.ISO2,),
        initial_soc=10.0,
        target_soc=100.0,
        charge_duration=seconds,
        loop_interval=interval,
    )

    async def car(index: int, port: int) -> Any:
        await asyncio.sleep(index * ramp)  # cars arrive one after the other
        return await run_ev(config, "::1", port)

    results = await asyncio.gather(
        *(car(i, port) for i, port in enumerate(ports)), return_exceptions=True
    )
    ok = sum(1 for r in results if not isinstance(r, BaseException) and r.ok)
    for port, result in zip(ports, results, strict=True):
        if isinstance(result, BaseException) or not result.ok:
            reason = result if isinstance(result, BaseException) else result.reason
            print(f"car on port {port} failed: {reason}", file=sys.stderr, flush=True)
    print("done", ok, len(results), flush=True)


# --- the API clients ---------------------------------------------------------------------------


async def measure(url: str, seconds: float, gap: float, clients: int) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    charging: list[int] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def client() -> None:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(url, headers=headers, connector=connector) as http:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                started = time.perf_counter()
                async with http.get("/api/v1/status") as response:
                    body = await response.json()
                latencies.append(time.perf_counter() - started)
                assert response.status == 200, body
                charging.append(sum(1 for e in body["evses"] if e["state"] == "charging"))
                await asyncio.sleep(gap)

    await asyncio.gather(*(client() for _ in range(clients)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "max_ms": latencies[-1] * 1000,
        "charging_min": min(charging),
        "charging_median": statistics.median(charging),
    }


async def evse_states(url: str) -> list[str]:
    import aiohttp

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession(url, headers=headers) as http,
        http.get("/api/v1/status") as response,
    ):
        body = await response.json()
    return [e["state"] for e in body["evses"]]


async def wait_charging(url: str, count: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while (now := (states := await evse_states(url)).count("charging")) < count:
        if time.perf_counter() > deadline:
            raise SystemExit(
                f"only {now} of {count} sessions charging after {timeout:g} s: {states}"
            )
        await asyncio.sleep(0.2)


def _row(label: str, row: dict[str, Any]) -> str:
    return (
        f"{label:<22} {row['requests']:>8} {row['median_ms']:>10.2f} {row['p99_ms']:>8.2f} "
        f"{row['max_ms']:>8.2f} {row['charging_min']:>12} "
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evses", type=int, default=100, help="EVSEs, one car each")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--gap", type=float, default=0.01, help="pause between requests")
    parser.add_argument("--clients", type=int, default=1, help="concurrent API clients")
    parser.add_argument(
        "--max-age",
        type=float,
        default=0.5,
        help="api.status_max_age: seconds a status snapshot is reused (0: never)",
    )
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between a car's CurrentDemandReqs"
    )
    parser.add_argument(
        "--ramp", type=float, default=0.05, help="seconds between two cars' arrivals"
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cars", type=int, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--charge-seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the sessions' logs
    if args.serve:
        asyncio.run(serve(args.serve, args.evses, args.max_age))
        return
    if args.cars:
        asyncio.run(cars(args.cars, args.charge_seconds, args.ramp, args.interval))
        return

    with tempfile.TemporaryDirectory() as tmp:
        secc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                tmp,
                "--evses",
                str(args.evses),
                "--max-age",
                str(args.max_age),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        car_process = None
        try:
            assert secc.stdout is not None
            _, api_port, *ports = secc.stdout.readline().split()
            url = f"http://127.0.0.1:{int(api_port)}"
            print(
                f"GET /api/v1/status, {args.evses} EVSEs in one SECC process, "
                f"{args.clients} client(s), {args.gap * 1000:g} ms between requests, "
                f"{args.seconds:g} s per run; cars send CurrentDemandReq every "
                f"{args.interval * 1000:g} ms; status snapshots reused for {args.max_age:g} s"
            )
            print(
                f"{'':<22} {'requests':>8} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} "
                f"{'min charging':>12}"
            )
            asyncio.run(measure(url, 1.0, args.gap, 1))  # warm-up
            idle = asyncio.run(measure(url, args.seconds, args.gap, args.clients))
            print(_row("idle", idle))
            arrival = args.ramp * len(ports) + 30.0  # every car plugged in and charging
            charge_seconds = arrival + args.seconds + 10.0
            car_process = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--cars",
                    *ports,
                    "--charge-seconds",
                    str(charge_seconds),
                    "--ramp",
                    str(args.ramp),
                    "--interval",
                    str(args.interval),
                ],
                stdout=subprocess.PIPE,
            )
            asyncio.run(wait_charging(url, len(ports), timeout=arrival))
            busy = asyncio.run(measure(url, args.seconds, args.gap, args.clients))
            print(_row(f"{len(ports)} sessions charging", busy))
        finally:
            if car_process is not None:
                car_process.terminate()
                car_process.wait(timeout=10)
            if secc.stdin:
                secc.stdin.write(b"quit\n")
                secc.stdin.close()
            secc.wait(timeout=30)


if __name__ == "__main__":
    main()
