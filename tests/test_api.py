"""The station API over real HTTP (aiohttp client -> `ApiServer` on 127.0.0.1, port 0) with a
fake station: every endpoint, authentication, bad input, the OpenAPI document's coverage."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from station_fakes import (
    ENDED_ID,
    EVSE_1,
    EVSE_2,
    LIVE_ID,
    RECORD_ID,
    TOKEN,
    FakeStation,
    serve,
    serve_in_thread,
)
from test_metrics import parse, sample

from iso15118.yamlconf import ConfigError, load_yaml
from secc.api import (
    ROUTES,
    ApiConfig,
    ApiConfigError,
    ApiServer,
    AuthThrottle,
    build_app,
    is_loopback,
    read_api_section,
    to_json,
)
from secc.openapi import openapi_document
from secc.store import SessionState

AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = Callable[..., Awaitable[tuple[int, Any, Any]]]


def run(test: Callable[[Client, FakeStation], Awaitable[None]], **config: Any) -> FakeStation:
    """Serve a fresh FakeStation and run `test(call, station)`; `call(method, path, ...)`
    returns (status, parsed JSON body or text, headers)."""
    station = FakeStation()

    async def main() -> None:
        async with serve(station, **config) as server, aiohttp.ClientSession() as http:

            async def call(
                method: str,
                path: str,
                *,
                headers: dict[str, str] | None = None,
                auth: bool = True,
                **kwargs: Any,
            ) -> tuple[int, Any, Any]:
                sent = {**(AUTH if auth else {}), **(headers or {})}
                async with http.request(method, server.url + path, headers=sent, **kwargs) as r:
                    body = await r.read()
                    if r.content_type == "application/json":
                        return r.status, json.loads(body), r.headers
                    return r.status, body.decode(), r.headers

            await test(call, station)

    asyncio.run(main())
    return station


def example_path(path: str) -> str:
    return (
        path.replace("{evse_id}", EVSE_1)
        .replace("{session_id}", LIVE_ID)
        .replace("{record_id}", RECORD_ID)
    )


def assert_error(status: int, body: Any, expected: int, kind: str | None = None) -> None:
    assert status == expected, body
    assert set(body) == {"error", "detail"}
    assert body["detail"]
    if kind is not None:
        assert body["error"] == kind


def assert_offset(text: str) -> None:
    assert re.search(r"T\d\d:\d\d:\d\d(\.\d+)?(\+|-)\d\d:\d\d\Z", text), text


# --------------------------------------------------------------------------- endpoints


def test_status() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, headers = await call("GET", "/api/v1/status")
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        assert headers["Cache-Control"] == "no-store"
        assert [e["state"] for e in body["evses"]] == ["charging", "faulted"]
        faulted = body["evses"][1]
        assert faulted["last_error"] == "isolation fault"
        assert_offset(faulted["last_error_at"])
        assert body["site_limit_w"] == 22_000.0
        assert body["certificates"][0]["days_left"] == 12.0
        assert_offset(body["certificates"][0]["not_after"])
        assert body["outbox"] == {"pending": 0, "held": 1, "delivered": 4}
        assert body["version"] == "0.1.0"
        assert_offset(body["now"])

    run(test)


def test_evses() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("GET", "/api/v1/evses")
        assert status == 200
        assert [e["evse_id"] for e in body["evses"]] == [EVSE_1, EVSE_2]
        status, body, _ = await call("GET", "/api/v1/evses/" + urllib.parse.quote(EVSE_2))
        assert status == 200
        assert body["state"] == "faulted"
        assert body["allocated_w"] == 11_000.0
        status, body, _ = await call("GET", "/api/v1/evses/DE*ABC*E9")
        assert_error(status, body, 404, "not_found")

    run(test)


def test_sessions_live_flagged_and_filters_passed_on() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("GET", "/api/v1/sessions")
        assert status == 200
        assert [(s["session_id"], s["live"]) for s in body["sessions"]] == [
            (LIVE_ID, True),
            (ENDED_ID, False),
        ]
        ended = body["sessions"][1]
        assert ended["state"] == "ended"
        assert ended["stop_reason"] == "ev-stopped"
        assert ended["kind"] == "external"
        query = {
            "state": "ended",
            "evse_id": EVSE_2,
            "contract_id": "DEABCC1234567X",
            "since": "2026-05-01T00:00:00Z",
            "until": "2026-05-02T00:00:00+02:00",
            "limit": "5",
        }
        status, body, _ = await call("GET", "/api/v1/sessions", params=query)
        assert status == 200
        assert [s["session_id"] for s in body["sessions"]] == [ENDED_ID]
        filters = station.calls[-1][1]
        assert filters["state"] is SessionState.ENDED
        assert filters["evse_id"] == EVSE_2
        assert filters["contract_id"] == "DEABCC1234567X"
        assert filters["since"].isoformat() == "2026-05-01T00:00:00+00:00"
        assert filters["until"].isoformat() == "2026-05-02T00:00:00+02:00"
        assert filters["limit"] == 5
        # an unencoded "+" of the offset arrives as a space: taken as the "+" it was
        status, _, _ = await call("GET", "/api/v1/sessions?since=2026-05-01T00:00:00+02:00")
        assert status == 200
        assert station.calls[-1][1]["since"].isoformat() == "2026-05-01T00:00:00+02:00"

    run(test)


def test_live_sessions() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("GET", "/api/v1/sessions/live")
        assert status == 200
        (live,) = body["sessions"]
        assert live["session_id"] == LIVE_ID
        assert live["charging"] is True
        assert live["power_w"] == 49_500.0

    run(test)


def test_one_session_live_and_past() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("GET", f"/api/v1/sessions/{LIVE_ID.lower()}")
        assert status == 200
        assert body["live"] is True
        assert body["state"] == "active"
        assert body["live_session"]["contract_id"] == "DEABCC1234567X"
        assert body["meter_start"]["energy_wh"] == 50_000
        status, body, _ = await call("GET", f"/api/v1/sessions/{ENDED_ID}")
        assert status == 200
        assert body["live"] is False
        assert body["live_session"] is None
        (record,) = body["billing_records"]
        assert record["record_id"] == RECORD_ID
        assert record["energy_wh"] == 7500
        assert record["price"]["total"] == "3.13"
        assert record["meter_stop"]["signature"] == "01ab"  # bytes as hex
        status, body, _ = await call("GET", "/api/v1/sessions/FFFFFFFFFFFFFFFF")
        assert_error(status, body, 404, "not_found")

    run(test)


def test_timeline() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("GET", f"/api/v1/sessions/{LIVE_ID}/timeline")
        assert status == 200
        assert [(e["seq"], e["direction"], e["message"]) for e in body["timeline"]] == [
            (1, "rx", "SessionSetupReq"),
            (2, "tx", "SessionSetupRes"),
        ]
        assert body["timeline"][1]["response_code"] == "OK"
        status, body, _ = await call("GET", f"/api/v1/sessions/{ENDED_ID}/timeline")
        assert status == 200
        assert body["timeline"] == []  # known session, nothing recorded
        status, body, _ = await call("GET", "/api/v1/sessions/FFFF/timeline")
        assert_error(status, body, 404)

    run(test)


def test_stop_session() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("POST", f"/api/v1/sessions/{LIVE_ID}/stop")
        assert status == 202
        assert body == {"session_id": LIVE_ID, "stop_requested": True}
        assert ("stop_session", LIVE_ID) in station.calls
        status, body, _ = await call("POST", f"/api/v1/sessions/{ENDED_ID}/stop")
        assert_error(status, body, 409, "conflict")
        assert "ended" in body["detail"]
        status, body, _ = await call("POST", "/api/v1/sessions/FFFF/stop")
        assert_error(status, body, 404)

    run(test)


def test_billing_records_and_outbox() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call(
            "GET", "/api/v1/billing/records", params={"session_id": ENDED_ID, "limit": "10"}
        )
        assert status == 200
        assert [r["record_id"] for r in body["records"]] == [RECORD_ID]
        assert body["records"][0]["stop_reason"] == "ev-stopped"
        assert_offset(body["records"][0]["started_at"])
        status, body, _ = await call("GET", "/api/v1/billing/outbox", params={"state": "held"})
        assert status == 200
        assert body["counts"]["held"] == 1
        (entry,) = body["entries"]
        assert entry["state"] == "held"
        assert entry["amount"] == "3.13"
        assert entry["last_error"] == "HTTP 422: unknown tariff"
        assert station.calls[-1] == ("outbox", {"state": "held", "limit": 100})
        status, body, _ = await call("GET", "/api/v1/billing/outbox?state=delivered")
        assert status == 200
        assert body["entries"] == []

    run(test)


def test_retry() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("POST", f"/api/v1/billing/outbox/{RECORD_ID}/retry")
        assert status == 200
        assert body == {"record_id": RECORD_ID, "released": 1}
        status, body, _ = await call("POST", f"/api/v1/billing/outbox/{RECORD_ID}/retry")
        assert_error(status, body, 404)  # nothing left to release
        station.held.update({"a", "b"})
        status, body, _ = await call("POST", "/api/v1/billing/outbox/retry-all")
        assert status == 200
        assert body == {"released": 2}
        assert station.calls[-1] == ("retry_billing", None)

    run(test)


def test_site_limit() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("GET", "/api/v1/site/limit")
        assert (status, body) == (200, {"watts": 22_000.0})
        status, body, _ = await call("PUT", "/api/v1/site/limit", json={"watts": 15_000})
        assert (status, body) == (200, {"watts": 15_000.0})
        assert station.calls[-1] == ("set_site_limit", 15_000.0)
        status, body, _ = await call("PUT", "/api/v1/site/limit", json={"watts": None})
        assert (status, body) == (200, {"watts": None})
        status, body, _ = await call("PUT", "/api/v1/site/limit", json={"watts": 0})
        assert (status, body) == (200, {"watts": 0.0})

    run(test)


def test_status_snapshots_are_reused_briefly() -> None:
    """Many clients polling the status cost the station one snapshot per status_max_age;
    a change made through the API shows at once."""
    clock = [100.0]
    station = FakeStation()

    async def main() -> None:
        app = build_app(station, token=None, status_max_age=0.5, clock=lambda: clock[0])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession(url) as http:

                async def status() -> Any:
                    async with http.get("/api/v1/status") as r:
                        assert r.status == 200
                        return await r.json()

                first = await status()
                for path in ("/api/v1/evses", f"/api/v1/evses/{EVSE_1}", "/api/v1/billing/outbox"):
                    async with http.get(path) as r:
                        assert r.status == 200
                assert await status() == first  # the same snapshot, byte for byte
                assert station.status_calls == 1
                clock[0] += 0.6
                await status()
                assert station.status_calls == 2
                async with http.put("/api/v1/site/limit", json={"watts": 1000}) as r:
                    assert r.status == 200
                assert (await status())["site_limit_w"] == 1000  # not the old snapshot
                assert station.status_calls == 3
                clock[0] -= 10  # a clock that went back: taken again
                await status()
                assert station.status_calls == 4
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_metrics_endpoint() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        station.metrics.on_session_started(EVSE_1, "iso2")
        station.metrics.on_exchange(EVSE_1, "CableCheckReq", "FAILED", 0.01)
        status, text, headers = await call("GET", "/metrics")
        assert status == 200
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(text)
        assert sample(samples, "iso15118_sessions_total", evse_id=EVSE_1, protocol="iso2") == 1
        errors = {"evse_id": EVSE_1, "message": "CableCheckReq", "code": "FAILED"}
        assert sample(samples, "iso15118_errors_total", **errors) == 1
        status, body, _ = await call("GET", "/metrics", auth=False)
        assert_error(status, body, 401)

    run(test)


def test_metrics_may_be_public() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, _, _ = await call("GET", "/metrics", auth=False)
        assert status == 200
        status, body, _ = await call("GET", "/api/v1/status", auth=False)
        assert_error(status, body, 401)  # only the metrics

    run(test, metrics_require_token=False)


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer \u00e9t\u00e9"},
    ],
    ids=["none", "wrong", "longer", "shorter", "basic", "no-scheme", "empty", "non-ascii"],
)
def test_every_route_needs_the_token(headers: dict[str, str]) -> None:
    async def test(call: Client, station: FakeStation) -> None:
        for route in ROUTES:
            path = example_path(route.path)
            status, body, response_headers = await call(
                route.method, path, auth=False, headers=headers
            )
            assert_error(status, body, 401, "unauthorized")
            assert response_headers["WWW-Authenticate"].startswith("Bearer")
            assert response_headers["Cache-Control"] == "no-store"
        # unknown routes too: nothing about the API's shape is told without the token
        status, body, _ = await call("GET", "/api/v1/nothing", auth=False, headers=headers)
        assert status == 401
        assert station.calls == []  # nothing reached the station

    run(test, max_token_failures=0)  # every wrong token from one address, on purpose


def test_bearer_scheme_is_case_insensitive() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, _, _ = await call(
            "GET", "/api/v1/status", auth=False, headers={"Authorization": f"bearer  {TOKEN}"}
        )
        assert status == 200

    run(test)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "limit=%D9%A3",  # an Arabic-Indic digit: isdigit() but not ASCII
        "state=running",
        "since=yesterday",
        "since=2026-05-01T12:00:00",  # no offset
        "until=2026-13-01T00:00:00Z",
        "since=2026-05-02T00:00:00Z&until=2026-05-01T00:00:00Z",
        "limit=5&limit=6",
        "color=blue",
        "evse_id=" + "x" * 200,
        "evse_id=a%20b",
    ],
)
def test_bad_session_parameters(query: str) -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("GET", "/api/v1/sessions?" + query)
        assert_error(status, body, 400, "bad_request")
        assert not any(name == "sessions" for name, _ in station.calls)

    run(test)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/status?verbose=1",
        "/api/v1/billing/records?since=now",
        "/api/v1/billing/records?limit=100000",
        "/api/v1/billing/outbox?state=lost",
        "/api/v1/sessions/" + "A" * 200,
        "/api/v1/sessions/a%20b/timeline",
        "/api/v1/evses/%3Cscript%3E",
    ],
)
def test_bad_parameters_elsewhere(path: str) -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, _ = await call("GET", path)
        assert_error(status, body, 400, "bad_request")

    run(test)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"watts": 5', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b'{"watts": NaN}', "application/json", 400),
        (b'{"watts": Infinity}', "application/json", 400),
        (b"", "application/json", 400),
        (b'{"watts": 5}', "text/plain", 415),
        (b'{"watts": 5}', "application/x-www-form-urlencoded", 415),
        (b'{"watts": -1}', "application/json", 422),
        (b'{"watts": 1e400}', "application/json", 422),  # parses as infinity
        (b'{"watts": 1' + b"0" * 400 + b"}", "application/json", 422),  # too large for a float
        (b'{"watts": 100000001}', "application/json", 422),
        (b'{"watts": "5000"}', "application/json", 422),
        (b'{"watts": true}', "application/json", 422),
        (b'{"watts": [5]}', "application/json", 422),
        (b'{"watt": 5}', "application/json", 422),
        (b'{"watts": 5, "extra": 1}', "application/json", 422),
        (b"[5]", "application/json", 422),
        (b"5", "application/json", 422),
    ],
)
def test_bad_site_limit_bodies(body: bytes, content_type: str, expected: int) -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, answer, _ = await call(
            "PUT", "/api/v1/site/limit", data=body, headers={"Content-Type": content_type}
        )
        assert_error(status, answer, expected)
        assert not any(name == "set_site_limit" for name, _ in station.calls)
        assert station.site_limit_w == 22_000.0

    run(test)


def test_oversized_body() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        body = b'{"watts": 5, "pad": "' + b"x" * 5000 + b'"}'
        status, answer, _ = await call(
            "PUT", "/api/v1/site/limit", data=body, headers={"Content-Type": "application/json"}
        )
        assert_error(status, answer, 413, "payload_too_large")

    run(test, max_body_bytes=1024)


def test_method_not_allowed_and_unknown_routes() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, body, headers = await call("DELETE", "/api/v1/status")
        assert_error(status, body, 405, "method_not_allowed")
        assert headers["Allow"] == "GET"
        status, body, headers = await call("POST", "/api/v1/site/limit")
        assert_error(status, body, 405)
        assert set(headers["Allow"].split(",")) == {"GET", "PUT"}
        status, body, _ = await call("GET", f"/api/v1/sessions/{LIVE_ID}/stop")
        assert_error(status, body, 405)
        status, body, _ = await call("GET", "/api/v2/status")
        assert_error(status, body, 404, "not_found")

    run(test)


def test_a_station_failure_is_a_json_500_not_a_crash() -> None:
    class Broken(FakeStation):
        def status(self) -> Any:
            raise RuntimeError("store on fire")

    station = Broken()

    async def main() -> None:
        async with serve(station) as server, aiohttp.ClientSession(headers=AUTH) as http:
            async with http.get(server.url + "/api/v1/status") as r:
                assert r.status == 500
                body = await r.json()
                assert body["error"] == "internal_error"
                assert "fire" not in body["detail"]  # internals stay in the log
            async with http.get(server.url + "/api/v1/site/limit") as r:
                assert r.status == 200  # the server is still serving

    asyncio.run(main())


@pytest.fixture(scope="module")
def shared_server() -> Any:
    """One server on a thread of its own, for the many requests of the property tests."""
    with serve_in_thread(FakeStation()) as server:
        yield server


_QUERY_VALUE = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(["100", "1", "1000", "2026-05-01T00:00:00Z", "ended", "active", ""])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(["state", "since", "until", "limit", "evse_id"]), _QUERY_VALUE)
)
def test_any_session_query_is_answered_200_or_400(
    shared_server: ApiServer, query: dict[str, str]
) -> None:
    url = f"{shared_server.url}/api/v1/sessions?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers=AUTH)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, body = response.status, json.loads(response.read())
            assert isinstance(body["sessions"], list)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read())
        assert set(body) == {"error", "detail"}
    assert status in (200, 400), (query, body)


# --------------------------------------------------------------------------- the OpenAPI document


def test_openapi_documents_every_route_and_only_those() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, document, _ = await call("GET", "/api/v1/openapi.json")
        assert status == 200
        assert document == openapi_document()

    run(test)
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    app = build_app(FakeStation(), token=TOKEN)
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert served == documented
    assert {(r.method, r.path) for r in ROUTES} == documented
    # each operation is named after its handler, and states its path parameters
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["operationId"] == route.name
        names = set(re.findall(r"\{(\w+)\}", route.path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == names, route
        assert "401" in operation["responses"]


def test_openapi_query_parameters_match_the_handlers() -> None:
    """Every query parameter a handler accepts is documented: an undocumented one is refused
    with 400, a documented one is not."""
    document = openapi_document()

    async def test(call: Client, station: FakeStation) -> None:
        for route in ROUTES:
            if route.method != "GET":
                continue
            operation = document["paths"][route.path]["get"]
            path = example_path(route.path)
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                status, body, _ = await call("GET", path, params={parameter["name"]: "zz"})
                assert status != 400 or "unknown query parameter" not in body["detail"], route
            status, body, _ = await call("GET", path, params={"undocumented": "1"})
            assert_error(status, body, 400)

    run(test)


def test_openapi_references_resolve() -> None:
    document = openapi_document()
    text = json.dumps(document)
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node: Any = document
        for part in ref.split("/"):
            node = node[part]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearer": []}]


# --------------------------------------------------------------------------- configuration


def test_no_token_on_loopback_is_open() -> None:
    async def test(call: Client, station: FakeStation) -> None:
        status, _, _ = await call("GET", "/api/v1/status", auth=False)
        assert status == 200

    run(test, token=None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.org"])
def test_no_token_on_a_public_address_refuses_to_start(host: str) -> None:
    async def main() -> None:
        server = ApiServer(FakeStation(), ApiConfig(host=host, port=0))
        with pytest.raises(ApiConfigError, match="needs a token"):
            await server.start()
        await server.close()

    asyncio.run(main())


def test_loopback() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.8.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert is_loopback("::1%lo")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("::")
    assert not is_loopback("")
    assert not is_loopback("10.0.0.1")
    assert not is_loopback("charger.local")


def test_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")

    async def test(call: Client, station: FakeStation) -> None:
        status, _, _ = await call("GET", "/api/v1/status")
        assert status == 200

    run(test, token=None, token_file=token_file)
    token_file.write_text("\n")
    with pytest.raises(ApiConfigError, match="empty"):
        ApiConfig(token_file=token_file).load_token()
    with pytest.raises(ApiConfigError, match="token_file"):
        ApiConfig(token_file=tmp_path / "missing").load_token()
    token_file.write_text("has space inside\n")
    with pytest.raises(ApiConfigError, match="only hold"):
        ApiConfig(token_file=token_file).load_token()


def test_config_checks() -> None:
    with pytest.raises(ApiConfigError, match="not both"):
        ApiConfig(token="a", token_file=Path("b"))
    with pytest.raises(ApiConfigError, match="port"):
        ApiConfig(port=70000)
    with pytest.raises(ApiConfigError, match="status_max_age"):
        ApiConfig(status_max_age=-1)
    with pytest.raises(ApiConfigError, match="empty"):
        ApiConfig(token="").load_token()
    with pytest.raises(ApiConfigError, match="max_token_failures"):
        ApiConfig(max_token_failures=-1)
    with pytest.raises(ApiConfigError, match="token_lockout_seconds"):
        ApiConfig(token_lockout_seconds=0)
    assert ApiConfig(max_token_failures=0).throttle() is None
    assert ApiConfig().host == "127.0.0.1"  # localhost unless configured otherwise


def _section(tmp_path: Path, text: str) -> ApiConfig:
    path = tmp_path / "secc.yaml"
    path.write_text(text)
    return read_api_section(load_yaml(path).section("api"))


def test_read_api_section(tmp_path: Path) -> None:
    (tmp_path / "api.token").write_text(TOKEN)
    config = _section(
        tmp_path,
        "api:\n  host: 0.0.0.0\n  port: 9090\n  token_file: api.token\n"
        "  metrics_require_token: false\n  status_max_age: 0\n"
        "  max_token_failures: 5\n  token_lockout_seconds: 300\n",
    )
    assert config.enabled
    assert (config.host, config.port) == ("0.0.0.0", 9090)
    assert config.token_file == tmp_path / "api.token"
    assert config.load_token() == TOKEN
    assert not config.metrics_require_token
    assert config.status_max_age == 0
    throttle = config.throttle()
    assert throttle is not None and (throttle.allowed, throttle.period) == (5, 300)
    assert not _section(tmp_path, "network: {}\n").enabled  # no api section: no API
    assert not _section(tmp_path, "api:\n  enabled: false\n  port: 1\n").enabled
    assert _section(tmp_path, "api:\n  enabled: true\n").host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api:\n  colour: red\n", "unknown key in api: colour"),
        ("api:\n  port: 99999\n", "api.port"),
        ("api:\n  port: eighty\n", "api.port"),
        ("api:\n  host: 0.0.0.0\n", "token"),  # no token on a public address
        ("api:\n  token: a\n  token_file: b\n", "not both"),
        ("api:\n  token_file: missing\n", "token_file"),
        ("api:\n  metrics_require_token: maybe\n", "true or false"),
    ],
)
def test_bad_api_sections(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _section(tmp_path, text)


def test_auth_throttle_counts_wrong_tokens_per_address() -> None:
    throttle = AuthThrottle(3, 60.0, max_clients=2)
    assert not throttle.failed("a", 0.0)
    assert not throttle.failed("a", 10.0)
    assert throttle.retry_after("a", 10.0) == 0
    assert not throttle.failed("a", 61.0)  # the first has expired: two in the last minute
    assert throttle.failed("a", 62.0)  # the third within 60 s: locked out
    assert throttle.retry_after("a", 62.0) == 60.0
    assert throttle.retry_after("a", 100.0) == 22.0
    assert throttle.retry_after("b", 100.0) == 0  # other addresses are not affected
    assert throttle.retry_after("a", 122.0) == 0  # over; counting starts afresh
    assert not throttle.failed("a", 123.0)
    assert not throttle.failed("a", 123.5)
    # at most max_clients addresses are remembered, the least recently failing forgotten
    throttle.failed("b", 124.0)
    throttle.failed("c", 125.0)  # a third address: "a" is forgotten
    assert not throttle.failed("a", 127.0)  # remembered, this third one would lock it out
    with pytest.raises(ValueError):
        AuthThrottle(0, 60.0)


def test_wrong_tokens_lock_the_address_out() -> None:
    """After max_token_failures wrong tokens the address gets 429 with Retry-After, whatever
    it presents (its tokens are not looked at); the lockout ends with its time."""
    clock = [1000.0]
    station = FakeStation()

    async def main() -> None:
        throttle = AuthThrottle(3, 60.0)
        app = build_app(station, token=TOKEN, clock=lambda: clock[0], throttle=throttle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        wrong = {"Authorization": "Bearer not-the-token"}
        try:
            async with aiohttp.ClientSession(url) as http:
                for _ in range(5):  # a missing token guesses nothing: not counted
                    async with http.get("/api/v1/status") as r:
                        assert r.status == 401
                for _ in range(3):
                    async with http.get("/api/v1/status", headers=wrong) as r:
                        assert r.status == 401
                for headers in (wrong, AUTH):  # locked out: even the right token
                    async with http.get("/api/v1/status", headers=headers) as r:
                        body = await r.json()
                        assert r.status == 429 and body["error"] == "too_many_requests"
                        assert r.headers["Retry-After"] == "60"
                        assert r.headers["Cache-Control"] == "no-store"
                clock[0] += 30
                async with http.get("/api/v1/status", headers=AUTH) as r:
                    assert (r.status, r.headers["Retry-After"]) == (429, "30")
                clock[0] += 30
                async with http.get("/api/v1/status", headers=AUTH) as r:
                    assert r.status == 200
                assert station.status_calls == 1  # nothing reached the station before
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_to_json_refuses_what_it_cannot_represent() -> None:
    from datetime import datetime

    with pytest.raises(ValueError, match="naive"):
        to_json(datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        to_json(object())
    assert to_json({"a": float("nan"), SessionState.ENDED: b"\x00"}) == {"a": None, "ended": "00"}


def test_to_json_of_a_billing_record_has_its_energy_every_time() -> None:
    from station_fakes import billing_record

    for _ in range(2):  # the second time through the per-type cache
        data = to_json(billing_record())
        assert data["energy_wh"] == 7500
        assert data["price"]["total"] == "3.13"


# --------------------------------------------------------------------------- end to end


def _station_parts(directory: Path, evses: int) -> tuple[Any, Any, list[Any]]:
    from iso15118.sap import AppProtocol
    from secc.backend import LocalBackend
    from secc.context import SeccConfig
    from secc.server import SeccServer, SeccServerConfig
    from secc.simulated import SimulatedEVSE
    from secc.store import SessionStore

    store = SessionStore(directory / "secc.db")
    backend = LocalBackend(store=store, free_charging=True)
    servers = [
        SeccServer(
            SeccServerConfig(
                protocol=SeccConfig(protocols=(AppProtocol.ISO2,)), host="::1", tcp_port=0
            ),
            controller=SimulatedEVSE(
                evse_id=f"DE*ABC*E000000{n}*1",
                meter_wh=10_000 * n,
                max_power=50_000,
                voltage_ramp_rate=20_000.0,
                current_ramp_rate=20_000.0,
                isolation_check_duration=0.05,
            ),
            backend=backend,
            store=store,
        )
        for n in range(1, evses + 1)
    ]
    return store, backend, servers


async def _car(station: Any, evse_id: str, **changes: Any) -> Any:
    import dataclasses

    from evcc.client import run_ev
    from evcc.config import EvccConfig
    from iso15118.sap import AppProtocol

    config = EvccConfig(
        protocols=(AppProtocol.ISO2,),
        loop_interval=0.02,
        ongoing_interval=0.05,
        precharge_interval=0.02,
        max_charge_loops=6,
        initial_soc=40.0,
        target_soc=90.0,
    )
    server = station.servers[evse_id]
    endpoint = server.tcp_endpoint
    evse = server.controller
    return await run_ev(
        dataclasses.replace(config, **changes),
        endpoint.host,
        endpoint.port,
        evse_hook=lambda change: evse.set_cp_state(change.state),
    )


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


def test_end_to_end_with_a_running_station(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real Station (two simulated EVSEs on ::1), the API on 127.0.0.1 and an EV simulator
    charging: the status shows it charging, its timeline grows, a stop over the API ends the
    session, the metrics count it, and `iso15118 status` prints it."""
    from iso15118.cli import main
    from secc.station import Station

    store, _backend, servers = _station_parts(tmp_path, evses=2)

    async def test() -> None:
        station = Station(servers, store=store, poll_interval=0.05, version="test")
        evse_id = servers[0].controller.evse_id
        async with (
            station,
            serve(station) as api,
            aiohttp.ClientSession(base_url=api.url, headers=AUTH) as http,
        ):

            async def get(path: str, **params: str) -> Any:
                async with http.get(path, params=params) as r:
                    assert r.status == 200, (path, await r.text())
                    return await r.json()

            async def evse_state() -> str:
                return str((await get(f"/api/v1/evses/{evse_id}"))["state"])

            async with http.get("/api/v1/status", headers={"Authorization": "Bearer x"}) as r:
                assert r.status == 401
            car = asyncio.create_task(_car(station, evse_id, max_charge_loops=100_000))

            async def charging() -> bool:
                return await evse_state() == "charging"

            await _until(charging)
            status = await get("/api/v1/status")
            assert status["version"] == "test"
            assert status["evses"][0]["state"] == "charging"
            (live,) = (await get("/api/v1/sessions/live"))["sessions"]
            session_id = live["session_id"]
            assert (live["evse_id"], live["protocol"], live["charging"]) == (
                evse_id,
                "iso2",
                True,
            )
            listed = await get("/api/v1/sessions", state="active")
            assert [(s["session_id"], s["live"]) for s in listed["sessions"]] == [
                (session_id, True)
            ]

            first = (await get(f"/api/v1/sessions/{session_id}/timeline"))["timeline"]
            assert first[0]["message"] == "SessionSetupReq"

            async def grown() -> bool:
                timeline = (await get(f"/api/v1/sessions/{session_id}/timeline"))["timeline"]
                return len(timeline) > len(first)

            await _until(grown)

            async with http.put("/api/v1/site/limit", json={"watts": 20_000}) as r:
                assert r.status == 200
            status = await get("/api/v1/status")
            assert status["site_limit_w"] == 20_000
            assert sum(e["allocated_w"] or 0 for e in status["evses"]) <= 20_000

            code = await asyncio.to_thread(main, ["status", "--url", api.url, "--token", TOKEN])
            out = capsys.readouterr().out
            assert code == 0
            assert "Live sessions (1):" in out
            assert any(line.startswith(evse_id) and "charging" in line for line in out.splitlines())

            async with http.post(f"/api/v1/sessions/{session_id}/stop") as r:
                assert r.status == 202, await r.text()
            result = await car
            assert result.ok, result.reason

            async def ended() -> bool:
                session = await get(f"/api/v1/sessions/{session_id}")
                return session["state"] == "ended" and not session["live"]

            await _until(ended)
            session = await get(f"/api/v1/sessions/{session_id}")
            assert session["stop_reason"] == "evse-stopped"
            (record,) = session["billing_records"]
            assert record["session_id"] == session_id

            async def stored_timeline() -> bool:
                timeline = (await get(f"/api/v1/sessions/{session_id}/timeline"))["timeline"]
                return bool(timeline) and timeline[-1]["message"] == "SessionStopRes"

            await _until(stored_timeline)  # written to the store once the session ended
            async with http.post(f"/api/v1/sessions/{session_id}/stop") as r:
                assert r.status == 409

            records = await get("/api/v1/billing/records", session_id=session_id)
            assert [r["record_id"] for r in records["records"]] == [record["record_id"]]
            outbox = await get("/api/v1/billing/outbox")
            assert sum(outbox["counts"].values()) == len(outbox["entries"]) == 1

            async with http.get("/metrics") as r:
                samples = parse(await r.text())
            assert sample(samples, "iso15118_sessions_total", evse_id=evse_id, protocol="iso2") == 1
            assert sample(samples, "iso15118_sessions_active", evse_id=evse_id) == 0
            ended_total = sample(
                samples,
                "iso15118_sessions_ended_total",
                evse_id=evse_id,
                protocol="iso2",
                stop_reason="evse-stopped",
            )
            assert ended_total == 1
            demand = {"evse_id": evse_id, "message": "CurrentDemandReq", "code": "OK"}
            assert (sample(samples, "iso15118_responses_total", **demand) or 0) >= 1
            latency = sample(
                samples, "iso15118_message_latency_seconds_count", message="CurrentDemandReq"
            )
            assert (latency or 0) >= 1
            assert sample(samples, "iso15118_site_limit_watts") == 20_000

    try:
        asyncio.run(test())
    finally:
        store.close()
