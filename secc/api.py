"""The station API: HTTP + JSON for operators (status, sessions, billing, site limit, metrics).

`ApiServer(station, config)` serves a `secc.station.Station` with aiohttp (the only asyncio
here is this edge). Every route is listed in `ROUTES` and described in the OpenAPI document
(`secc.openapi`, served at ``/api/v1/openapi.json``).

Security:

* it binds to 127.0.0.1 unless configured otherwise;
* every request (``/metrics`` too, unless ``metrics_require_token`` is false) needs
  ``Authorization: Bearer <token>``, compared in constant time; without a configured token
  the API only starts on a loopback address (and then anyone on the machine may use it), and
  refuses to start on any other;
* an address that presents `max_token_failures` wrong tokens within `token_lockout_seconds`
  is refused (429, ``Retry-After``) for that long without its token being looked at
  (`AuthThrottle`): guessing a token costs minutes per handful of tries;
* request bodies are limited (`ApiConfig.max_body_bytes`); JSON bodies must say so
  (``Content-Type: application/json``).

Errors are JSON: ``{"error": "<kind>", "detail": "<what was wrong>"}`` with 400 (bad query
parameter, bad JSON), 401 (no or wrong token), 404, 405, 409 (e.g. stopping an ended
session), 413 (body too large), 415 (not JSON), 422 (JSON of the wrong shape or value), 429
(too many wrong tokens from the address).

JSON conventions (as `secc.records_json`): datetimes ISO 8601 with their offset, bytes as
lower-case hex, enums as their values, decimal amounts as strings.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web

from iso15118.yamlconf import ConfigError, Section
from secc.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from secc.records import BillingRecord
from secc.store import SessionState

__all__ = [
    "MAX_SITE_LIMIT_W",
    "ROUTES",
    "ApiConfig",
    "ApiConfigError",
    "ApiServer",
    "AuthThrottle",
    "Route",
    "StationApi",
    "build_app",
    "is_loopback",
    "read_api_section",
    "to_json",
]

logger = logging.getLogger("secc.api")

#: the largest site limit the API accepts (100 MW: no site has more; a typo has)
MAX_SITE_LIMIT_W: Final = 100_000_000.0
MAX_LIMIT: Final = 1000  # the most rows one listing returns
DEFAULT_LIMIT: Final = 100
OUTBOX_STATES: Final = ("pending", "held", "delivered")
_ID = re.compile(r"[A-Za-z0-9*._:+-]{1,128}\Z")
#: RFC 6750 b64token
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*\Z")
_JSON_TYPES: Final = ("application/json",)


class ApiConfigError(ConfigError):
    """The API cannot start as configured (e.g. no token on a public address)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """Where the API listens and the token it wants. `token` or `token_file` (whose first
    line is the token), not both; neither: no authentication, allowed on loopback only."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    token_file: Path | None = None
    metrics_require_token: bool = True
    max_body_bytes: int = 16 * 1024
    #: seconds one status snapshot of the station is served (0: a fresh one every time)
    status_max_age: float = 0.5
    #: wrong tokens one address may present within `token_lockout_seconds` before it is
    #: refused for that long (0: never refused)
    max_token_failures: int = 10
    token_lockout_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ApiConfigError(f"api.port: {self.port} is outside 0..65535")
        if self.token is not None and self.token_file is not None:
            raise ApiConfigError("api: give token or token_file, not both")
        if self.max_body_bytes < 64:
            raise ApiConfigError("api.max_body_bytes: at least 64")
        if not 0 <= self.status_max_age <= 60:
            raise ApiConfigError("api.status_max_age: 0..60 seconds")
        if self.max_token_failures < 0:
            raise ApiConfigError("api.max_token_failures: 0 or more")
        if not 1 <= self.token_lockout_seconds <= 86400:
            raise ApiConfigError("api.token_lockout_seconds: 1..86400")

    def throttle(self) -> AuthThrottle | None:
        """The throttle of wrong tokens this configuration asks for (None: none)."""
        if not self.max_token_failures:
            return None
        return AuthThrottle(self.max_token_failures, self.token_lockout_seconds)

    def load_token(self) -> str | None:
        """The configured token (read from `token_file` now), checked; None if none is set."""
        token = self.token
        if self.token_file is not None:
            try:
                text = self.token_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise ApiConfigError(f"api.token_file {self.token_file}: {reason}") from None
            token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if token is None:
            return None
        if not token:
            raise ApiConfigError("api: the token is empty")
        if not _TOKEN.match(token):
            raise ApiConfigError(
                "api: the token may only hold letters, digits and -._~+/ (then = padding)"
            )
        return token


def read_api_section(section: Section) -> ApiConfig:
    """The ``api:`` section of the SECC's YAML file (consumes it: unknown keys are errors).

    Keys: enabled (default: true if the section has any key), host, port, token, token_file
    (relative to the file), metrics_require_token, max_body_bytes, status_max_age,
    max_token_failures, token_lockout_seconds. The token file is read now, so that a missing
    or empty file is reported with the configuration.
    """
    keys = (
        "host",
        "port",
        "token",
        "token_file",
        "metrics_require_token",
        "max_body_bytes",
        "status_max_age",
        "max_token_failures",
        "token_lockout_seconds",
    )
    enabled = section.boolean("enabled", any(section.has(k) for k in keys))
    config = ApiConfig(
        enabled=enabled,
        host=section.string("host", "127.0.0.1") or "127.0.0.1",
        port=section.integer("port", 8080, low=0, high=65535) or 0,
        token=section.string("token"),
        token_file=section.path("token_file"),
        metrics_require_token=section.boolean("metrics_require_token", True),
        max_body_bytes=section.integer("max_body_bytes", 16 * 1024, low=64, high=1 << 20)
        or 16 * 1024,
        status_max_age=section.number("status_max_age", 0.5),
        max_token_failures=section.integer("max_token_failures", 10, low=0, high=1000) or 0,
        token_lockout_seconds=section.number("token_lockout_seconds", 60.0),
    )
    section.done()
    if enabled:
        token = config.load_token()
        if token is None and not is_loopback(config.host):
            raise ApiConfigError(
                f"api: a token (token or token_file) is needed to listen on {config.host}"
            )
    return config


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; False for wildcards and the rest."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class StationApi(Protocol):
    """What the API needs of `secc.station.Station`. The views are dataclasses (`EvseView`,
    `StationStatus`, `LiveSession`, `StoredSession`, `TimelineEntry`, `OutboxEntry`, ...);
    the API serialises them field by field (`to_json`)."""

    @property
    def metrics(self) -> Any: ...  # secc.metrics.Metrics: render() -> str

    @property
    def site_limit_w(self) -> float | None: ...

    def status(self) -> Any: ...

    def live_sessions(self) -> Sequence[Any]: ...

    def sessions(
        self,
        *,
        state: SessionState | None = None,
        evse_id: str | None = None,
        contract_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> Sequence[Any]: ...

    def session(self, session_id: str) -> Any | None: ...

    def timeline(self, session_id: str) -> Sequence[Any]: ...

    async def written(self) -> None: ...  # the sessions' writes queued so far are stored

    def billing_records(
        self, *, session_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> Sequence[BillingRecord]: ...

    def outbox(self, state: str | None = None, limit: int = 100) -> Sequence[Any]: ...

    async def stop_session(self, session_id: str) -> bool: ...

    async def set_site_limit(self, watts: float | None) -> None: ...

    async def retry_billing(self, record_id: str | None) -> int: ...


# --- JSON -------------------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """A view (dataclasses, enums, datetimes, bytes, decimals, mappings, sequences) as JSON
    data. Naive datetimes are refused (ValueError); non-finite floats become null."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is BillingRecord:
        return _dataclass_json(value) | {"energy_wh": value.energy_wh}
    if kind in _FIELDS:  # a dataclass seen before
        return _dataclass_json(value)
    if isinstance(value, bool | int | str):  # subclasses (IntEnum, StrEnum: their values)
        return to_json(value.value) if isinstance(value, enum.Enum) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} in an API view")
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_json(value)
    if isinstance(value, Mapping):
        return {_key(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot put a {type(value).__name__} into the API's JSON")


_FIELDS: dict[type, tuple[str, ...]] = {}  # field names per dataclass, looked up once


def _dataclass_json(value: Any) -> dict[str, Any]:
    kind = type(value)
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    return {name: to_json(getattr(value, name)) for name in names}


def _key(key: Any) -> str:
    return str(key.value) if isinstance(key, enum.Enum) else str(key)


def _response(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return web.Response(
        body=body.encode(), status=status, content_type="application/json", charset="utf-8"
    )


class ApiError(Exception):
    """A request the API refuses: `status`, a short `kind` and a `detail` for people."""

    KINDS: Final = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        422: "unprocessable_entity",
        429: "too_many_requests",
        500: "internal_error",
    }

    def __init__(self, status: int, detail: str, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.kind = self.KINDS.get(status, "error")
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        response = _response({"error": self.kind, "detail": self.detail}, self.status)
        response.headers.update(self.headers)
        return response


# --- parameters -------------------------------------------------------------------------------


def _query(request: web.Request, allowed: Sequence[str]) -> dict[str, str]:
    """The query parameters, each at most once and each one of `allowed`."""
    out: dict[str, str] = {}
    for name, value in request.query.items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise ApiError(400, f"unknown query parameter {name!r} (known: {known})")
        if name in out:
            raise ApiError(400, f"query parameter {name!r} given more than once")
        out[name] = value
    return out


def _limit(params: Mapping[str, str]) -> int:
    text = params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number 1..{MAX_LIMIT}, got {text!r}")
    return int(text)


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    text = params.get(name)
    if text is None:
        return None
    if "T" in text:  # an unencoded "+" of the offset arrives as a space
        text = text.replace(" ", "+")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            400, f"{name} must be an ISO 8601 date and time, e.g. 2026-05-01T12:00:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ApiError(400, f"{name} needs a UTC offset (e.g. Z or +02:00)")
    return value


def _identifier(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        raise ApiError(400, f"{name} {value[:40]!r} is not a valid identifier")
    return value


def _optional_identifier(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not _ID.match(value):
        raise ApiError(400, f"{name} {value[:40]!r} is not a valid identifier")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


async def _json_body(request: web.Request) -> Any:
    if request.content_type not in _JSON_TYPES:
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    body = await request.read()  # aiohttp refuses more than client_max_size (413)
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


# --- routes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    name: str  # the handler, and the OpenAPI operationId


#: every route the API serves (the OpenAPI document describes exactly these)
ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/api/v1/status", "get_status"),
    Route("GET", "/api/v1/evses", "list_evses"),
    Route("GET", "/api/v1/evses/{evse_id}", "get_evse"),
    Route("GET", "/api/v1/sessions", "list_sessions"),
    Route("GET", "/api/v1/sessions/live", "list_live_sessions"),
    Route("GET", "/api/v1/sessions/{session_id}", "get_session"),
    Route("GET", "/api/v1/sessions/{session_id}/timeline", "get_timeline"),
    Route("POST", "/api/v1/sessions/{session_id}/stop", "stop_session"),
    Route("GET", "/api/v1/billing/records", "list_billing_records"),
    Route("GET", "/api/v1/billing/outbox", "list_outbox"),
    Route("POST", "/api/v1/billing/outbox/retry-all", "retry_all"),
    Route("POST", "/api/v1/billing/outbox/{record_id}/retry", "retry_record"),
    Route("GET", "/api/v1/site/limit", "get_site_limit"),
    Route("PUT", "/api/v1/site/limit", "set_site_limit"),
    Route("GET", "/api/v1/openapi.json", "get_openapi"),
    Route("GET", "/metrics", "get_metrics"),
)


class _Handlers:
    """The route handlers, bound to one station."""

    def __init__(
        self,
        station: StationApi,
        *,
        status_max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.station = station
        self._openapi: bytes | None = None
        self._max_age = status_max_age
        self._clock = clock
        self._snapshot: tuple[float, Any, bytes | None] | None = None  # (taken, status, JSON)

    def _status(self) -> tuple[Any, bytes | None]:
        """The station's status, taken again once older than `status_max_age` seconds, so
        that clients polling the status cannot starve the V2G sessions of the same loop."""
        now = self._clock()
        snapshot = self._snapshot
        if snapshot is None or not 0 <= now - snapshot[0] < self._max_age:
            snapshot = self._snapshot = (now, self.station.status(), None)
        return snapshot[1], snapshot[2]

    def _changed(self) -> None:
        self._snapshot = None  # the next status shows what was just changed

    async def get_status(self, request: web.Request) -> web.Response:
        _query(request, ())
        status, body = self._status()
        if body is None:
            data = to_json(status)
            data["now"] = datetime.now(UTC).isoformat()
            body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
            if self._snapshot is not None and self._snapshot[1] is status:
                self._snapshot = (self._snapshot[0], status, body)
        return web.Response(body=body, content_type="application/json", charset="utf-8")

    def _evses(self) -> list[Any]:
        return list(self._status()[0].evses)

    async def list_evses(self, request: web.Request) -> web.Response:
        _query(request, ())
        return _response({"evses": to_json(self._evses())})

    async def get_evse(self, request: web.Request) -> web.Response:
        _query(request, ())
        evse_id = _identifier(request, "evse_id")
        for evse in self._evses():
            if evse.evse_id == evse_id:
                return _response(to_json(evse))
        raise ApiError(404, f"no EVSE {evse_id}")

    def _live(self) -> dict[str, Any]:
        return {s.session_id.upper(): s for s in self.station.live_sessions()}

    async def list_sessions(self, request: web.Request) -> web.Response:
        params = _query(request, ("state", "evse_id", "contract_id", "since", "until", "limit"))
        state = None
        if "state" in params:
            try:
                state = SessionState(params["state"])
            except ValueError:
                known = ", ".join(s.value for s in SessionState)
                raise ApiError(400, f"state must be one of {known}") from None
        since, until = _time(params, "since"), _time(params, "until")
        if since is not None and until is not None and until < since:
            raise ApiError(400, "until is before since")
        await self.station.written()  # a session listed live is listed here too
        rows = self.station.sessions(
            state=state,
            evse_id=_optional_identifier(params, "evse_id"),
            contract_id=_optional_identifier(params, "contract_id"),
            since=since,
            until=until,
            limit=_limit(params),
        )
        live = self._live()
        sessions = [to_json(r) | {"live": r.session_id.upper() in live} for r in rows]
        return _response({"sessions": sessions})

    async def list_live_sessions(self, request: web.Request) -> web.Response:
        _query(request, ())
        return _response({"sessions": to_json(list(self.station.live_sessions()))})

    async def get_session(self, request: web.Request) -> web.Response:
        _query(request, ())
        session_id = _identifier(request, "session_id")
        await self.station.written()
        stored = self.station.session(session_id)
        live = self._live().get(session_id.upper())
        if stored is None and live is None:
            raise ApiError(404, f"no session {session_id}")
        data: dict[str, Any] = {"session_id": session_id} if stored is None else to_json(stored)
        data["live"] = live is not None
        data["live_session"] = None if live is None else to_json(live)
        data["billing_records"] = to_json(
            list(self.station.billing_records(session_id=session_id, limit=MAX_LIMIT))
        )
        return _response(data)

    async def get_timeline(self, request: web.Request) -> web.Response:
        _query(request, ())
        session_id = _identifier(request, "session_id")
        await self.station.written()  # an ended session's timeline is stored at its end
        entries = list(self.station.timeline(session_id))
        known = entries or self.station.session(session_id) or session_id.upper() in self._live()
        if not known:
            raise ApiError(404, f"no session {session_id}")
        return _response({"session_id": session_id, "timeline": to_json(entries)})

    async def stop_session(self, request: web.Request) -> web.Response:
        _query(request, ())
        session_id = _identifier(request, "session_id")
        if await self.station.stop_session(session_id):
            self._changed()
            logger.info("operator stop via the API", extra={"session_id": session_id})
            return _response({"session_id": session_id, "stop_requested": True}, 202)
        stored = self.station.session(session_id)
        if stored is None:
            raise ApiError(404, f"no live session {session_id}")
        state = to_json(getattr(stored, "state", "ended"))
        raise ApiError(409, f"session {session_id} is not live (it is {state})")

    async def list_billing_records(self, request: web.Request) -> web.Response:
        params = _query(request, ("session_id", "since", "limit"))
        records = self.station.billing_records(
            session_id=_optional_identifier(params, "session_id"),
            since=_time(params, "since"),
            limit=_limit(params),
        )
        return _response({"records": to_json(list(records))})

    async def list_outbox(self, request: web.Request) -> web.Response:
        params = _query(request, ("state", "limit"))
        state = params.get("state")
        if state is not None and state not in OUTBOX_STATES:
            raise ApiError(400, f"state must be one of {', '.join(OUTBOX_STATES)}")
        entries = self.station.outbox(state, limit=_limit(params))
        counts = to_json(self._status()[0].outbox)
        return _response({"counts": counts, "entries": to_json(list(entries))})

    async def retry_all(self, request: web.Request) -> web.Response:
        _query(request, ())
        released = await self.station.retry_billing(None)
        self._changed()
        logger.info("operator released %d outbox item(s) via the API", released)
        return _response({"released": released})

    async def retry_record(self, request: web.Request) -> web.Response:
        _query(request, ())
        record_id = _identifier(request, "record_id")
        released = await self.station.retry_billing(record_id)
        self._changed()
        if released == 0:
            raise ApiError(404, f"no pending or held outbox item for record {record_id}")
        logger.info("operator released record %s via the API", record_id)
        return _response({"record_id": record_id, "released": released})

    async def get_site_limit(self, request: web.Request) -> web.Response:
        _query(request, ())
        return _response({"watts": to_json(self.station.site_limit_w)})

    async def set_site_limit(self, request: web.Request) -> web.Response:
        _query(request, ())
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) != {"watts"}:
            raise ApiError(422, 'the body must be {"watts": <number or null>}')
        watts = body["watts"]
        if watts is not None:
            if isinstance(watts, bool) or not isinstance(watts, int | float):
                raise ApiError(422, "watts must be a number or null")
            try:
                watts = float(watts)
            except OverflowError:
                raise ApiError(422, "watts is too large") from None
            if not (math.isfinite(watts) and 0 <= watts <= MAX_SITE_LIMIT_W):
                raise ApiError(422, f"watts must be 0..{MAX_SITE_LIMIT_W:.0f} or null")
        try:
            await self.station.set_site_limit(watts)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        finally:
            self._changed()
        logger.info("site limit set to %s W via the API", watts)
        return _response({"watts": to_json(self.station.site_limit_w)})

    async def get_openapi(self, request: web.Request) -> web.Response:
        _query(request, ())
        if self._openapi is None:
            from secc.openapi import openapi_json

            self._openapi = openapi_json()
        return web.Response(body=self._openapi, content_type="application/json", charset="utf-8")

    async def get_metrics(self, request: web.Request) -> web.Response:
        _query(request, ())
        text: str = self.station.metrics.render()
        return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


# --- the application --------------------------------------------------------------------------

_Next = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _errors_and_logging() -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: _Next) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:  # routing (404, 405), body too large (413)
            detail = {
                404: f"no route {request.path}",
                405: f"{request.method} is not allowed on {request.path}",
                413: "the request body is too large",
            }.get(exc.status, exc.reason)
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            response = ApiError(exc.status, detail, headers=headers).response()
        except Exception:
            logger.exception("API request %s %s failed", request.method, request.path)
            response = ApiError(500, "internal error (see the SECC's log)").response()
        # what the API says (contract IDs, tokens of cards) is kept by no cache on the way
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        elapsed_ms = (time.perf_counter() - started) * 1000
        level = logging.DEBUG if request.method == "GET" and response.status < 400 else logging.INFO
        if response.status == 401:
            level = logging.WARNING
        logger.log(
            level,
            "%s %s %d (%.1f ms) from %s",
            request.method,
            request.path,
            response.status,
            elapsed_ms,
            request.remote,
        )
        return response

    return middleware


@dataclass(slots=True)
class _Failures:
    times: deque[float]
    locked_until: float = 0.0


class AuthThrottle:
    """Wrong bearer tokens per client address; sans-IO (the caller passes the time).

    After `allowed` wrong tokens within `period` seconds an address is locked out for
    `period` seconds: its requests are refused without their token being compared, so that
    it learns nothing from them. A missing token is not counted (it guesses nothing). At
    most `max_clients` addresses are remembered, the least recently failing forgotten first.
    """

    def __init__(self, allowed: int, period: float, *, max_clients: int = 4096) -> None:
        if allowed < 1 or period <= 0 or max_clients < 1:
            raise ValueError("allowed, period and max_clients must be positive")
        self.allowed = allowed
        self.period = period
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, client: str, now: float) -> float:
        """Seconds `client` is still locked out at `now` (0: not locked out)."""
        entry = self._clients.get(client)
        if entry is None or entry.locked_until <= now:
            return 0.0
        return entry.locked_until - now

    def failed(self, client: str, now: float) -> bool:
        """Count a wrong token from `client` at `now`; True if this one locks it out."""
        entry = self._clients.get(client)
        if entry is None:
            entry = self._clients[client] = _Failures(deque())
            if len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        times = entry.times
        while times and times[0] <= now - self.period:
            times.popleft()
        times.append(now)
        if len(times) < self.allowed:
            return False
        times.clear()
        entry.locked_until = now + self.period
        return True


def _authentication(
    token: str | None,
    *,
    metrics_public: bool,
    throttle: AuthThrottle | None,
    clock: Callable[[], float],
) -> Any:
    # compared as digests: the time taken tells nothing of the token's content or length
    expected = None if token is None else hashlib.sha256(token.encode()).digest()

    @web.middleware
    async def middleware(request: web.Request, handler: _Next) -> web.StreamResponse:
        if expected is None or (metrics_public and request.path == "/metrics"):
            return await handler(request)
        client = request.remote or "unknown"
        wait = throttle.retry_after(client, clock()) if throttle is not None else 0.0
        if wait:
            seconds = math.ceil(wait)
            raise ApiError(
                429,
                f"too many wrong tokens from {client}: try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        given = request.headers.get("Authorization")
        if given is None:
            raise ApiError(
                401,
                "this API needs Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="iso15118"'},
            )
        scheme, _, credentials = given.strip().partition(" ")
        presented = hashlib.sha256(credentials.strip().encode(errors="replace")).digest()
        valid = hmac.compare_digest(presented, expected)  # always compared, whatever the scheme
        if not valid or scheme.lower() != "bearer":
            if throttle is not None and throttle.failed(client, clock()):
                logger.warning(
                    "station API: %d wrong tokens from %s; refused for %.0f s",
                    throttle.allowed,
                    client,
                    throttle.period,
                )
            raise ApiError(
                401,
                "the bearer token is not valid",
                headers={"WWW-Authenticate": 'Bearer realm="iso15118", error="invalid_token"'},
            )
        return await handler(request)

    return middleware


def build_app(
    station: StationApi,
    *,
    token: str | None,
    metrics_public: bool = False,
    max_body: int = 16384,
    status_max_age: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    throttle: AuthThrottle | None = None,
) -> web.Application:
    """The aiohttp application for `station` (`token` None: no authentication; status
    snapshots reused for `status_max_age` seconds of `clock`; wrong tokens counted by
    `throttle`, if any, on the same clock)."""
    authentication = _authentication(
        token, metrics_public=metrics_public, throttle=throttle, clock=clock
    )
    app = web.Application(
        middlewares=[_errors_and_logging(), authentication],
        client_max_size=max_body,
    )
    handlers = _Handlers(station, status_max_age=status_max_age, clock=clock)
    for route in ROUTES:
        handler = getattr(handlers, route.name)
        app.router.add_route(route.method, route.path, handler, name=route.name)
    return app


class ApiServer:
    """Serve `station` over HTTP as `config` says; `port` is the bound port once started."""

    def __init__(self, station: StationApi, config: ApiConfig) -> None:
        self.station = station
        self.config = config
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        config = self.config
        token = config.load_token()
        if token is None:
            if not is_loopback(config.host):
                raise ApiConfigError(
                    f"the station API needs a token to listen on {config.host!r} "
                    "(api.token or api.token_file)"
                )
            logger.warning(
                "station API without a token on %s: anyone on this machine may use it",
                config.host,
            )
        app = build_app(
            self.station,
            token=token,
            metrics_public=not config.metrics_require_token,
            max_body=config.max_body_bytes,
            status_max_age=config.status_max_age,
            throttle=config.throttle(),
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        logger.info("station API listening on %s", self.url)

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:8080``) once started."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
