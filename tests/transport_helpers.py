"""Shared pieces of the transport tests: real EXI payloads, an echo handler, leak checks.

Every transport test runs its coroutine through `run_checked`, which checks, before the loop
ends, that no task other than the test's own is left, then that nothing needed the garbage
collector to be closed and that this process has as many file descriptors as before.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from iso15118 import exi
from iso15118.transport.connection import V2GTPConnection
from iso15118.v2gtp import PayloadType, V2GTPMessage

#: A SupportedAppProtocolReq offering ISO 15118-2 (shaped like corpus vector v056), its answer.
SAP_REQ = exi.encode(
    "appHand",
    exi.from_json(
        "appHand",
        {
            "supportedAppProtocolReq": {
                "AppProtocol": [
                    {
                        "ProtocolNamespace": "urn:iso:15118:2:2013:MsgDef",
                        "VersionNumberMajor": 2,
                        "VersionNumberMinor": 0,
                        "SchemaID": 1,
                        "Priority": 1,
                    }
                ]
            }
        },
    ),
)
SAP_RES = exi.encode(
    "appHand",
    exi.from_json(
        "appHand",
        {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 1}},
    ),
)


def frame(payload: bytes, payload_type: PayloadType = PayloadType.SAP) -> bytes:
    return V2GTPMessage(payload_type, payload).pack()


@dataclass
class Recorder:
    """Server-side handler that answers each SupportedAppProtocolReq and remembers things."""

    connections: list[V2GTPConnection] = field(default_factory=list)
    received: list[V2GTPMessage] = field(default_factory=list)
    ended: list[BaseException] = field(default_factory=list)

    async def __call__(self, conn: V2GTPConnection) -> None:
        self.connections.append(conn)
        try:
            while True:
                message = await conn.receive()
                self.received.append(message)
                request = exi.to_json(exi.decode("appHand", message.payload))
                assert "supportedAppProtocolReq" in request
                await conn.send(PayloadType.SAP, SAP_RES)
        except BaseException as exc:
            self.ended.append(exc)
            raise


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate` on the loop until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def run_checked(test: Callable[[], Awaitable[None]]) -> None:
    """Run `test()` in a fresh event loop; fail on leaked tasks or file descriptors."""

    async def main() -> None:
        await test()
        await asyncio.sleep(0)  # let closed transports release their sockets
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, f"tasks left running: {others}"

    before = open_fds()
    asyncio.run(main())
    # Contexts with a key-log file hold it open until they are collected; a socket or
    # transport that only the collector would close is a leak and warns here.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, f"closed only by the garbage collector: {unclosed}"
    after = open_fds()
    assert after == before, f"file descriptors leaked: {before} before, {after} after"


async def exchange(conn: V2GTPConnection) -> bytes:
    """Send SAP_REQ and return the answer's payload."""
    await conn.send(PayloadType.SAP, SAP_REQ)
    answer = await conn.receive()
    assert answer.payload_type is PayloadType.SAP
    return answer.payload
