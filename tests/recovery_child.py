"""The charger process of the recovery SIGKILL loop (tests/test_recovery.py).

One `Station` with one simulated DC EVSE under a tariff, billing through the outbox to a
webhook (tests/billing_receiver.py), and an EV simulator in the same process charging car
after car over ::1, until the process is killed. With `drain` it charges nobody: it starts
(recovering what the last process left open), waits until every record is delivered and
says DRAINED.

The meter: a real meter is hardware and keeps its count when the charger process dies.
`FileMeterEVSE` keeps the simulated register in a small file the test owns, rewritten
(pwrite, no fsync: the page cache survives a killed process) at every reading *before* the
reading is reported, so the file is never below any reading the SECC saw; a restarted child
continues from it. (What the simulation counted after its last reading is lost with the
process, as if the meter had not counted it: the test's bound, "billed never above counted",
holds against the file.)

It says, one line each on the pipe it is given: ``READY`` once the station runs (recovery
done), ``STARTED SID`` (SessionStarted), ``AUTHORIZE SID``, ``MSG REQUEST SID`` for each
request answered, ``ENDING SID`` just before the server commits the session's record,
``COMMITTED RECORD_ID SID`` once committed (with `hold_commit`, also ``STORING`` and ``STORED``:
`HoldingStore`), ``SETTLED KEY`` when the processor acknowledged a record (with `hold_settle`,
it then waits 1 s before the worker marks it delivered, so that the test kills it in
between), ``EV ok|failed SID`` after each car.

Restarts are cheap: the test starts `zygote` once (it imports everything here) and asks it
for each charger process; the zygote forks it, hands the test the read end of the child's
pipe, and the kernel reaps the children (SIGCHLD ignored).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from billing_child import Announcing, Say

from evcc.battery import BatteryParams
from evcc.client import run_ev
from evcc.config import EvccConfig, Payment
from iso15118.sap import AppProtocol
from secc.backend import LocalBackend
from secc.billing.backoff import Backoff
from secc.billing.outbox import DeliveryWorker
from secc.billing.webhook import WebhookProcessor
from secc.context import SeccConfig
from secc.events import Authorize, MessageExchanged, SessionEnded, SessionEvent, SessionStarted
from secc.evse import EvseStatus
from secc.records import BillingRecord
from secc.server import SeccServer, SeccServerConfig
from secc.simulated import SimulatedEVSE
from secc.station import Station
from secc.store import OutboxState, SessionStore
from secc.tariff import Tariff

EVSE_ID = "DE*ABC*E0000001*1"
TARIFF = Tariff(
    id="kill-loop",
    currency="EUR",
    energy_price=Decimal("0.40"),
    time_price=Decimal("1.20"),
    session_fee=Decimal("0.50"),
)
CAR = EvccConfig(
    protocols=(AppProtocol.ISO2,),
    payment=Payment.EIM,
    loop_interval=0.02,
    ongoing_interval=0.03,
    precharge_interval=0.02,
    battery=BatteryParams(max_current=500.0, max_power=200_000.0),  # ~1 Wh per loop
    welding_detection_count=5,  # the stop takes a little while (for the kills there)
    initial_soc=20.0,
    target_soc=95.0,
)


class FileMeterEVSE(SimulatedEVSE):
    """A simulated EVSE whose meter register lives in `meter_file` (module docstring)."""

    def __init__(self, meter_file: str, **kw: Any) -> None:
        self._fd = os.open(meter_file, os.O_RDWR)
        self._written = int(os.pread(self._fd, 32, 0).decode().strip())
        super().__init__(meter_wh=self._written, **kw)

    def snapshot(self) -> EvseStatus:
        status = super().snapshot()
        meter = status.meter
        if meter is not None and meter.energy_wh != self._written:
            os.pwrite(self._fd, f"{meter.energy_wh:>20d}".encode(), 0)
            self._written = meter.energy_wh
        return status


def read_meter(meter_file: str | Path) -> int:
    return int(Path(meter_file).read_text().strip())


def write_meter(meter_file: str | Path, wh: int) -> None:
    Path(meter_file).write_text(f"{wh:>20d}")


class HoldingStore(SessionStore):
    """With `hold`, says STORING and STORED around each `record_billing` and blocks 0.2 s on
    each side (a slow disk), so that the test can kill the process just before a record is
    committed or just after, before the session's end is written (also during recovery)."""

    def __init__(self, path: str, *, say: Say, hold: bool) -> None:
        super().__init__(path)
        self.say = say
        self.hold = hold

    def record_billing(self, record: BillingRecord) -> bool:
        if self.hold:
            self.say(f"STORING {record.record_id} {record.session_id}")
            time.sleep(0.2)
        stored = super().record_billing(record)
        if self.hold:
            self.say(f"STORED {record.record_id} {record.session_id}")
            time.sleep(0.2)
        return stored


def announce(say: Say) -> Callable[[SessionEvent], None]:
    def observer(event: SessionEvent) -> None:
        match event:
            case SessionStarted(session_id, _protocol, _resumed):
                say(f"STARTED {session_id}")
            case Authorize(request):
                say(f"AUTHORIZE {request.session_id}")
            case MessageExchanged():
                say(f"MSG {event.request_name} {event.session_id}")
            case SessionEnded(record):
                say(f"ENDING {record.session_id}")

    return observer


async def main(options: dict[str, Any], say: Say) -> None:
    rng = random.Random(options["seed"])
    store = HoldingStore(options["db"], say=say, hold=options["hold_commit"])
    evse = FileMeterEVSE(
        options["meter"],
        evse_id=EVSE_ID,
        max_power=200_000,
        max_current=500,
        voltage_ramp_rate=50_000.0,
        current_ramp_rate=50_000.0,
        isolation_check_duration=0.02,
        id_token="CARD-0042",
    )
    webhook = WebhookProcessor(url=options["url"], secret=options["secret"], timeout=2)
    processor = Announcing(webhook, 1.0 if options["hold_settle"] else 0.0, say)
    server = SeccServer(
        SeccServerConfig(
            protocol=SeccConfig(protocols=(AppProtocol.ISO2,), tariff=TARIFF), tcp_port=0
        ),
        controller=evse,
        backend=LocalBackend(store=store, free_charging=True),
        store=store,
        observers=(announce(say),),
    )
    server.billing_listeners.append(lambda r: say(f"COMMITTED {r.record_id} {r.session_id}"))
    worker = DeliveryWorker(
        store,
        {processor.name: processor},
        backoff=Backoff(initial=0.05, maximum=0.3),
        timeout=3,
        poll_interval=0.05,
        random=rng.random,
    )
    station = Station(
        [server],
        store=store,
        delivery=worker,
        poll_interval=0.02,
        meter_save_interval=0.1,
        meter_save_wh=5,
    )
    await station.start()
    say("READY")
    try:
        if options["drain"]:
            while store.open_sessions() or any(
                store.outbox_counts()[s] for s in (OutboxState.PENDING, OutboxState.HELD)
            ):
                await asyncio.sleep(0.05)
            say("DRAINED")
            return
        endpoint = server.tcp_endpoint
        assert endpoint is not None
        while True:
            config = dataclasses.replace(CAR, max_charge_loops=rng.randint(10, 16))
            result = await run_ev(
                config,
                endpoint.host,
                endpoint.port,
                evse_hook=lambda change: evse.set_cp_state(change.state),
            )
            say(f"EV {'ok' if result.ok else 'failed'} {result.session_id}")
    finally:
        await station.close()
        await webhook.close()
        store.close()


# --- the zygote --------------------------------------------------------------------------------


def _child(options: dict[str, Any], fd: int) -> None:
    def say(line: str) -> None:
        os.write(fd, (line + "\n").encode())  # one write < PIPE_BUF: never torn by a kill

    try:
        asyncio.run(main(options, say))
    except BaseException:
        traceback.print_exc()
        say("ERROR")
        os._exit(1)
    os._exit(0)


async def warm_up() -> None:
    """One car charged at a station on a store in memory: what is built on first use (EXI
    grammars and codecs, ...) is built once here, not in every charger process."""
    store = SessionStore(":memory:")
    evse = SimulatedEVSE(evse_id=EVSE_ID, isolation_check_duration=0.0)
    server = SeccServer(
        SeccServerConfig(
            protocol=SeccConfig(protocols=(AppProtocol.ISO2,), tariff=TARIFF), tcp_port=0
        ),
        controller=evse,
        backend=LocalBackend(store=store, free_charging=True),
        store=store,
    )
    async with Station([server], store=store, poll_interval=0.02) as station:
        endpoint = station.servers[EVSE_ID].tcp_endpoint
        assert endpoint is not None
        config = dataclasses.replace(CAR, max_charge_loops=2)
        result = await run_ev(
            config,
            endpoint.host,
            endpoint.port,
            evse_hook=lambda change: evse.set_cp_state(change.state),
        )
        assert result.ok, result.reason
    store.close()


def zygote(fd: int) -> None:
    """Fork a charger process for each JSON line of options read from the socket `fd`;
    answer each with the child's PID and the read end of its pipe (SCM_RIGHTS)."""
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(name)s: %(message)s")
    asyncio.run(warm_up())
    assert threading.active_count() == 1, "fork with no other thread running"
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped by the kernel
    control = socket.socket(fileno=fd)
    lines = control.makefile("rb")
    for line in lines:
        options = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            lines.close()
            control.close()
            os.close(read_end)
            _child(options, write_end)
        os.close(write_end)
        socket.send_fds(control, [str(pid).encode()], [read_end])
        os.close(read_end)


if __name__ == "__main__":
    zygote(int(sys.argv[1]))
