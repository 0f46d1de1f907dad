"""A payment processor's webhook endpoint for tests: checks the signature, applies each
idempotency key once, counts every delivery.

`Receiver` runs in the caller's event loop (`await start()` / `await stop()`);
`ThreadedReceiver` runs one in a thread of its own, for tests whose event loop is elsewhere
or that drive other processes. `mode` makes it misbehave:

    ok        200 {"reference": ...}; a key seen before: 409 {"reference": ..., "duplicate": true}
    fail      500
    hang      no answer until `stop()` (or `hang_seconds`)
    conflict  409 for everything
    reject    400 for everything
    garbled   200 with a body that is not JSON
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from aiohttp import web

from secc.billing.webhook import IDEMPOTENCY_HEADER, SignatureError, verify_signature
from secc.records_json import RecordFormatError, billing_record_from_json

MODES = ("ok", "fail", "hang", "conflict", "reject", "garbled")


class Receiver:
    def __init__(self, secret: bytes, *, hang_seconds: float = 30.0) -> None:
        self.secret = secret
        self.mode = "ok"
        self.hang_seconds = hang_seconds
        self.lock = threading.Lock()  # the counters are read from other threads
        self.applied: dict[str, dict[str, Any]] = {}  # idempotency key -> record JSON
        self.references: dict[str, str] = {}
        self.applications: Counter[str] = Counter()  # how often a key was applied (must be 1)
        self.deliveries: Counter[str] = Counter()  # every well-signed settle, by key
        self.bad_signatures = 0
        self.bad_requests = 0
        self.authorize_answer: dict[str, Any] | str = {"status": "accepted", "reason": "ok"}
        self.authorize_requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._released: asyncio.Event | None = None
        self.base_url = ""

    # --- what the tests read ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.base_url}/billing"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "applied": dict(self.applied),
                "applications": Counter(self.applications),
                "deliveries": Counter(self.deliveries),
                "bad_signatures": self.bad_signatures,
                "bad_requests": self.bad_requests,
            }

    @property
    def duplicates(self) -> int:
        """Deliveries of a key that had been applied before (recognised, not applied)."""
        with self.lock:
            return sum(self.deliveries.values()) - sum(self.applications.values())

    # --- serving ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on `port` (0: any free one; give the old port to come back after `stop`)."""
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_post("/billing", self._billing)
        app.router.add_post("/authorize", self._authorize)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        address = self._runner.addresses[0]
        self.base_url = f"http://{host}:{address[1]}"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        if self._released is not None:
            self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _signed_json(self, request: web.Request) -> dict[str, Any] | web.Response:
        body = await request.read()
        try:
            verify_signature(self.secret, request.headers, body, time.time())
        except SignatureError as exc:
            with self.lock:
                self.bad_signatures += 1
            return web.json_response({"error": str(exc)}, status=401)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            with self.lock:
                self.bad_requests += 1
            return web.json_response({"error": "not a JSON object"}, status=400)
        return payload

    async def _misbehave(self) -> web.Response | None:
        match self.mode:
            case "fail":
                return web.json_response({"error": "processor down"}, status=500)
            case "hang":
                assert self._released is not None
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), self.hang_seconds)
                return web.json_response({"error": "too late"}, status=503)
            case "conflict":
                return web.json_response({"reference": "old"}, status=409)
            case "reject":
                return web.json_response({"error": "unknown contract"}, status=400)
            case "garbled":
                return web.Response(text="<html>oops", status=200)
        return None

    async def _billing(self, request: web.Request) -> web.Response:
        payload = await self._signed_json(request)
        if isinstance(payload, web.Response):
            return payload
        answer = await self._misbehave()
        if answer is not None:
            return answer
        key = payload.get("idempotency_key")
        try:
            if payload.get("type") != "billing_record" or not isinstance(key, str):
                raise RecordFormatError("not a billing record delivery")
            if request.headers.get(IDEMPOTENCY_HEADER) != key:
                raise RecordFormatError("Idempotency-Key header differs from the body's key")
            billing_record_from_json(payload.get("record"))
        except RecordFormatError as exc:
            with self.lock:
                self.bad_requests += 1
            return web.json_response({"error": str(exc)}, status=400)
        with self.lock:
            self.deliveries[key] += 1
            if key in self.applied:
                return web.json_response(
                    {"reference": self.references[key], "duplicate": True}, status=409
                )
            self.applied[key] = payload["record"]
            self.applications[key] += 1
            reference = self.references[key] = f"inv-{len(self.applied)}"
        return web.json_response({"reference": reference})

    async def _authorize(self, request: web.Request) -> web.Response:
        payload = await self._signed_json(request)
        if isinstance(payload, web.Response):
            return payload
        answer = await self._misbehave()
        if answer is not None:
            return answer
        with self.lock:
            self.authorize_requests.append(payload)
        if isinstance(self.authorize_answer, str):
            return web.Response(text=self.authorize_answer)
        return web.json_response(self.authorize_answer)


class ThreadedReceiver(Receiver):
    """A `Receiver` serving from its own thread and event loop."""

    def __init__(self, secret: bytes, **kw: Any) -> None:
        super().__init__(secret, **kw)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start_thread(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(10)

    def stop_thread(self) -> None:
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def threaded_receiver(secret: bytes, **kw: Any) -> Iterator[ThreadedReceiver]:
    receiver = ThreadedReceiver(secret, **kw)
    receiver.start_thread()
    try:
        yield receiver
    finally:
        receiver.stop_thread()
