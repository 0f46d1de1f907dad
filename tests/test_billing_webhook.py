"""The HTTP webhook payment processor against a real local receiver (tests/billing_receiver.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from billing_receiver import Receiver
from hypothesis import given
from hypothesis import strategies as st

from secc.billing.outbox import AttemptOutcome, DeliveryWorker
from secc.billing.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    WebhookProcessor,
    sign,
    verify_signature,
)
from secc.payment import DeliveryError, RejectedRecord, Settlement
from secc.records import (
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
    CertificateHashData,
    IdentificationKind,
    MeterReading,
    StopReason,
)
from secc.records_json import billing_record_to_json
from secc.store import OutboxState, SessionStore

SECRET = b"webhook-test-secret-0123456789"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def record(n: int = 1) -> BillingRecord:
    return BillingRecord(
        record_id=f"rec-{n}",
        session_id=f"{n:016x}",
        evse_id="DE*ABC*E0000001*1",
        protocol="iso2",
        kind=IdentificationKind.CONTRACT,
        contract_id="DEABCC123456780",
        started_at=T0,
        stopped_at=T0 + timedelta(minutes=30),
        meter_start=MeterReading(meter_id="M1", energy_wh=1000, at=T0),
        meter_stop=MeterReading(meter_id="M1", energy_wh=8000, at=T0 + timedelta(minutes=30)),
        stop_reason=StopReason.EV_STOPPED,
    )


def with_receiver(
    test: Callable[[Receiver], Awaitable[None]], *, hang_seconds: float = 30.0
) -> None:
    async def scenario() -> None:
        receiver = Receiver(SECRET, hang_seconds=hang_seconds)
        await receiver.start()
        try:
            await test(receiver)
        finally:
            await receiver.stop()

    asyncio.run(scenario())


def processor(receiver: Receiver, **kw: Any) -> WebhookProcessor:
    kw.setdefault("secret", SECRET.decode())
    return WebhookProcessor(url=receiver.url, **kw)


# --- settle ---------------------------------------------------------------------------------


def test_settle_then_duplicate() -> None:
    async def test(receiver: Receiver) -> None:
        webhook = processor(receiver)
        try:
            first = await webhook.settle(record(), idempotency_key="rec-1:payment")
            again = await webhook.settle(record(), idempotency_key="rec-1:payment")
        finally:
            await webhook.close()
        assert first == Settlement(reference="inv-1")
        assert again == Settlement(reference="inv-1", duplicate=True)  # 409
        assert receiver.applied == {"rec-1:payment": billing_record_to_json(record())}
        assert receiver.deliveries["rec-1:payment"] == 2
        assert receiver.applications["rec-1:payment"] == 1
        assert receiver.bad_signatures == 0

    with_receiver(test)


def test_wrong_secret_is_refused_by_the_receiver() -> None:
    async def test(receiver: Receiver) -> None:
        webhook = processor(receiver, secret="not-the-shared-secret")
        try:
            with pytest.raises(RejectedRecord, match=r"HTTP 401.*signature does not match"):
                await webhook.settle(record(), idempotency_key="rec-1:payment")
        finally:
            await webhook.close()
        assert receiver.bad_signatures == 1 and receiver.applied == {}

    with_receiver(test)


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("fail", DeliveryError, "HTTP 500: .*processor down"),
        ("reject", RejectedRecord, "HTTP 400: .*unknown contract"),
        ("garbled", DeliveryError, "not a JSON object"),
    ],
)
def test_error_answers(mode: str, error: type[Exception], message: str) -> None:
    async def test(receiver: Receiver) -> None:
        receiver.mode = mode
        webhook = processor(receiver)
        try:
            with pytest.raises(error, match=message) as caught:
                await webhook.settle(record(), idempotency_key="rec-1:payment")
        finally:
            await webhook.close()
        if error is DeliveryError:
            assert not isinstance(caught.value, RejectedRecord)  # retried, not held

    with_receiver(test)


def test_conflict_is_a_settled_duplicate() -> None:
    async def test(receiver: Receiver) -> None:
        receiver.mode = "conflict"
        webhook = processor(receiver)
        try:
            settled = await webhook.settle(record(), idempotency_key="rec-1:payment")
        finally:
            await webhook.close()
        assert settled == Settlement(reference="old", duplicate=True)

    with_receiver(test)


def test_timeout() -> None:
    async def test(receiver: Receiver) -> None:
        receiver.mode = "hang"
        webhook = processor(receiver, timeout=0.3, connect_timeout=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(DeliveryError, match=r"no answer .* within 0\.3 s"):
                await webhook.settle(record(), idempotency_key="rec-1:payment")
        finally:
            await webhook.close()
        assert time.monotonic() - started < 10  # bounded, whatever the receiver does

    with_receiver(test, hang_seconds=10)


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nobody listens there

    async def test() -> None:
        webhook = WebhookProcessor(url=f"http://127.0.0.1:{port}/billing", secret="s")
        try:
            with pytest.raises(DeliveryError, match=r"127\.0\.0\.1") as caught:
                await webhook.settle(record(), idempotency_key="rec-1:payment")
        finally:
            await webhook.close()
        assert not isinstance(caught.value, RejectedRecord)

    asyncio.run(test())


def test_status_classes() -> None:
    """Status codes the receiver does not produce, from a tiny raw server."""

    async def test() -> None:
        status = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            body = b"" if status == 204 else b'{"reference": "r"}'
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                "Content-Type: application/json\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        webhook = WebhookProcessor(url=f"http://127.0.0.1:{port}/", secret="s")
        results: dict[int, str] = {}
        try:
            for status in (200, 201, 204, 302, 404, 408, 422, 429, 502, 503):
                try:
                    settled = await webhook.settle(record(), idempotency_key="k")
                    results[status] = f"settled {settled.reference}"
                except RejectedRecord:
                    results[status] = "held"
                except DeliveryError:
                    results[status] = "retry"
        finally:
            await webhook.close()
            server.close()
            await server.wait_closed()
        assert results == {
            200: "settled r",
            201: "settled r",
            204: "settled ",  # no content
            302: "retry",  # redirects are not followed
            404: "held",
            408: "retry",
            422: "held",
            429: "retry",
            502: "retry",
            503: "retry",
        }

    asyncio.run(test())


def test_request_shape_and_headers() -> None:
    seen: list[tuple[dict[str, str], bytes]] = []

    async def test() -> None:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            seen.append((dict(request.headers), await request.read()))
            return web.json_response({"reference": "x"})

        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "::1", 0).start()
        port = runner.addresses[0][1]
        webhook = WebhookProcessor(
            url=f"http://[::1]:{port}/hook",
            secret="s3cret",
            headers={"Authorization": "Bearer abc"},
            clock=lambda: 1_700_000_000.9,
        )
        try:
            await webhook.settle(record(), idempotency_key="rec-1:payment")
        finally:
            await webhook.close()
            await runner.cleanup()

    asyncio.run(test())
    ((headers, body),) = seen
    assert json.loads(body) == {
        "type": "billing_record",
        "idempotency_key": "rec-1:payment",
        "record": billing_record_to_json(record()),
    }
    assert headers[IDEMPOTENCY_HEADER] == "rec-1:payment"
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers["Authorization"] == "Bearer abc"
    assert headers["Content-Type"] == "application/json"
    verify_signature(b"s3cret", headers, body, now=1_700_000_100)


def test_session_is_reopened_after_close() -> None:
    async def test(receiver: Receiver) -> None:
        webhook = processor(receiver)
        await webhook.settle(record(1), idempotency_key="a")
        await webhook.close()
        await webhook.close()  # twice is fine
        await webhook.settle(record(2), idempotency_key="b")
        await webhook.close()
        assert sorted(receiver.applied) == ["a", "b"]

    with_receiver(test)


def test_worker_delivers_through_the_webhook(tmp_path: Path) -> None:
    async def test(receiver: Receiver) -> None:
        store = SessionStore(tmp_path / "db")
        for n in range(5):
            store.record_billing(record(n))
        webhook = processor(receiver)
        receiver.mode = "fail"
        worker = DeliveryWorker(store, {"payment": webhook}, timeout=5)
        failed = await worker.deliver_due(datetime.now(UTC))
        assert [a.outcome for a in failed.attempts] == [AttemptOutcome.FAILED]
        receiver.mode = "ok"
        store.release(at=datetime.now(UTC))
        done = await worker.deliver_due(datetime.now(UTC))
        await webhook.close()
        assert len(done.delivered) == 5
        assert store.outbox_counts()[OutboxState.DELIVERED] == 5
        references = {e.record_id: e.reference for e in store.outbox_entries()}
        assert sorted(references.values()) == [f"inv-{n}" for n in range(1, 6)]
        assert set(receiver.applied) == {f"rec-{n}:payment" for n in range(5)}

    with_receiver(test)


# --- authorize ------------------------------------------------------------------------------

REQUEST = AuthorizationRequest(
    session_id="00aa",
    evse_id="DE*ABC*E0000001*1",
    kind=IdentificationKind.CONTRACT,
    contract_id="DEABCC123456780",
    certificate_hash_data=(
        CertificateHashData(
            hash_algorithm="SHA256",
            issuer_name_hash=b"\x01" * 32,
            issuer_key_hash=b"\x02" * 32,
            serial_number=12345,
        ),
    ),
    contract_certificate=b"\x30\x82",
)


def test_authorize_without_url_accepts() -> None:
    async def test(receiver: Receiver) -> None:
        decision = await processor(receiver).authorize(REQUEST)
        assert decision.status is AuthorizationStatus.ACCEPTED
        assert receiver.authorize_requests == []

    with_receiver(test)


@pytest.mark.parametrize(
    ("answer", "mode", "status"),
    [
        ({"status": "accepted", "reason": "ok"}, "ok", AuthorizationStatus.ACCEPTED),
        ({"status": "rejected", "reason": "blocked"}, "ok", AuthorizationStatus.REJECTED),
        ({"status": "expired"}, "ok", AuthorizationStatus.EXPIRED),
        ({"status": "maybe"}, "ok", AuthorizationStatus.UNAVAILABLE),
        ("[1, 2]", "ok", AuthorizationStatus.UNAVAILABLE),
        ("{bad", "ok", AuthorizationStatus.UNAVAILABLE),
        (None, "fail", AuthorizationStatus.UNAVAILABLE),
        (None, "reject", AuthorizationStatus.UNAVAILABLE),
    ],
)
def test_authorize(answer: Any, mode: str, status: AuthorizationStatus) -> None:
    async def test(receiver: Receiver) -> None:
        receiver.mode = mode
        if answer is not None:
            receiver.authorize_answer = answer
        webhook = processor(receiver, authorize_url=receiver.authorize_url)
        try:
            decision = await webhook.authorize(REQUEST)
        finally:
            await webhook.close()
        assert decision.status is status, decision
        if mode == "ok":
            (sent,) = receiver.authorize_requests
            assert sent["type"] == "authorize" and sent["contract_id"] == "DEABCC123456780"
            assert sent["certificate_hash_data"][0]["serial_number"] == 12345
            assert sent["contract_certificate"] == "3082" and sent["kind"] == "contract"

    with_receiver(test)


def test_authorize_unreachable_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def test() -> None:
        webhook = WebhookProcessor(
            url=f"http://127.0.0.1:{port}/b", authorize_url=f"http://127.0.0.1:{port}/a", secret="s"
        )
        try:
            decision = await webhook.authorize(REQUEST)
        finally:
            await webhook.close()
        assert decision.status is AuthorizationStatus.UNAVAILABLE

    asyncio.run(test())


# --- configuration checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"url": "http://billing.example.com/x"}, "plain http to a remote host"),
        ({"url": "http://192.0.2.1/x"}, "plain http"),
        ({"url": "ftp://127.0.0.1/x"}, "not an http"),
        ({"url": "https:///x"}, "not an http"),
        ({"url": 5}, "must be a URL"),
        ({"url": "https://a.example/", "authorize_url": "http://a.example/"}, "authorize_url"),
        ({"url": "https://a.example/", "secret": None}, "exactly one of secret"),
        ({"url": "https://a.example/", "secret_file": "/x"}, "exactly one of secret"),
        ({"url": "https://a.example/", "secret": ""}, "secret is empty"),
        ({"url": "https://a.example/", "timeout": 0}, "timeout"),
        ({"url": "https://a.example/", "connect_timeout": "5"}, "connect_timeout"),
        ({"url": "https://a.example/", "name": ""}, "name"),
        ({"url": "https://a.example/", "headers": {"X": 1}}, "headers"),
        ({"url": "https://a.example/", "allow_insecure": "yes"}, "allow_insecure"),
        ({"url": "https://a.example/", "ca_file": "/nonexistent/ca.pem"}, "ca_file"),
    ],
)
def test_bad_configuration(kw: dict[str, Any], message: str) -> None:
    kw.setdefault("secret", "s")
    with pytest.raises(ValueError, match=message):
        WebhookProcessor(**kw)


def test_accepted_configurations(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"from-a-file\n")
    for url in ("http://127.0.0.1:9/x", "http://[::1]/x", "http://localhost/x", "https://a.b/"):
        WebhookProcessor(url=url, secret="s")
    webhook = WebhookProcessor(url="http://billing.lan/x", secret_file=secret, allow_insecure=True)
    assert webhook._secret == b"from-a-file"
    assert "from-a-file" not in repr(webhook) and "billing.lan" in repr(webhook)
    with pytest.raises(ValueError, match="secret_file"):
        WebhookProcessor(url="https://a.b/", secret_file=tmp_path / "missing")


# --- signatures -----------------------------------------------------------------------------


def test_verify_signature_refuses_what_is_wrong() -> None:
    body = b'{"a":1}'
    headers = sign(SECRET, body, 1000.0)
    verify_signature(SECRET, headers, body, 1000.0)
    verify_signature(SECRET, {k.lower(): v for k, v in headers.items()}, body, 1200.0)
    cases: list[tuple[dict[str, str], bytes, float, str]] = [
        ({}, body, 1000, "missing"),
        ({TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER]}, body, 1000, "missing"),
        (headers, body + b" ", 1000, "does not match"),
        (headers, body, 1000 + 301, "more than 300 s off"),
        (headers, body, 1000 - 301, "more than 300 s off"),
        ({**headers, TIMESTAMP_HEADER: "-5"}, body, 1000, "not Unix seconds"),
        ({**headers, TIMESTAMP_HEADER: "9" * 40}, body, 1000, "not Unix seconds"),
        ({**headers, TIMESTAMP_HEADER: "1\u00b2"}, body, 1000, "not Unix seconds"),
        ({**headers, SIGNATURE_HEADER: "md5=00"}, body, 1000, "must be sha256="),
        ({**headers, TIMESTAMP_HEADER: "1001"}, body, 1000, "does not match"),
    ]
    for bad_headers, bad_body, now, message in cases:
        with pytest.raises(SignatureError, match=message):
            verify_signature(SECRET, bad_headers, bad_body, now)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(b"other", headers, body, 1000.0)


@given(
    secret=st.binary(min_size=1, max_size=64),
    body=st.binary(max_size=512),
    now=st.integers(0, 2**36),
)
def test_sign_and_verify_round_trip(secret: bytes, body: bytes, now: int) -> None:
    verify_signature(secret, sign(secret, body, now), body, now)


# --- the billing: section -------------------------------------------------------------------


def _section(tmp_path: Path, text: str) -> Any:
    from iso15118.yamlconf import load_yaml

    path = tmp_path / "secc.yaml"
    path.write_text(text)
    return load_yaml(path).section("billing")


def test_billing_section_defaults(tmp_path: Path) -> None:
    from secc.billing.backoff import Backoff
    from secc.billing.config import build_processor, read_billing_section
    from secc.payment import FreeProcessor

    config = read_billing_section(_section(tmp_path, "data_dir: x\n"))
    assert config.processor_class == "secc.payment:FreeProcessor"
    assert config.backoff == Backoff() and config.poll_interval == 5 and config.timeout == 30
    assert isinstance(build_processor(config), FreeProcessor)


def test_billing_section_webhook(tmp_path: Path) -> None:
    from secc.billing.config import build_processor, build_worker, read_billing_section

    (tmp_path / "hook.secret").write_text("abc\n")
    config = read_billing_section(
        _section(
            tmp_path,
            """billing:
  processor:
    class: "secc.billing.webhook:WebhookProcessor"
    options: {url: "https://billing.example/records", secret_file: hook.secret, name: acme}
  retry: {initial: 1, max: 30, jitter: 0}
  poll_interval: 2
  timeout: 12.5
""",
        )
    )
    assert config.processor_options["secret_file"] == str(tmp_path / "hook.secret")
    webhook = build_processor(config)
    assert isinstance(webhook, WebhookProcessor) and webhook.name == "acme"
    assert webhook._secret == b"abc"
    worker = build_worker(config, SessionStore(":memory:"), webhook)
    assert list(worker.processors) == ["acme"] and worker.timeout == 12.5
    assert worker.poll_interval == 2 and worker.backoff.delay(10, lambda: 0.5) == 30


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("billing: {colour: red}", "unknown key in billing: colour"),
        ("billing: {retry: {initial: 0}}", "billing.retry: back-off initial"),
        ("billing: {retry: {initial: 10, max: 5}}", "billing.retry: back-off maximum"),
        ("billing: {retry: {wait: 1}}", "unknown key in billing.retry: wait"),
        ("billing: {poll_interval: 0}", "billing.poll_interval: must be > 0"),
        ("billing: {timeout: fast}", "billing.timeout: expected a number"),
        ("billing: {processor: {class: 'nope:Nope'}}", "cannot import payment processor"),
        ("billing: {processor: {class: 'secc.records:BillingRecord'}}", "not a PaymentProcessor"),
        (
            "billing: {processor: {class: 'secc.billing.webhook:WebhookProcessor', "
            "options: {url: 'http://remote.example/', secret: s}}}",
            "plain http to a remote host",
        ),
        (
            "billing: {processor: {class: 'secc.billing.webhook:WebhookProcessor', "
            "options: {colour: red}}}",
            "unexpected keyword argument",
        ),
    ],
)
def test_billing_section_errors(tmp_path: Path, text: str, message: str) -> None:
    from iso15118.yamlconf import ConfigError
    from secc.billing.config import build_processor, read_billing_section

    with pytest.raises(ConfigError, match=message) as caught:
        build_processor(read_billing_section(_section(tmp_path, text + "\n")))
    assert "billing" in caught.value.args[0]  # names the key
