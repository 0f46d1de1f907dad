"""The OpenAPI 3.1 document of the station API (`secc.api`), built once.

`openapi_document()` is the document as a dict, `openapi_json()` its JSON bytes (what
``GET /api/v1/openapi.json`` serves). Every route in `secc.api.ROUTES` is described here and
nothing else; `tests/test_api.py` checks both directions.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final

import iso15118

__all__ = ["openapi_document", "openapi_json"]

Schema = dict[str, Any]

_DATETIME: Final[Schema] = {
    "type": "string",
    "format": "date-time",
    "description": "ISO 8601 with a UTC offset",
}
_DATETIME_OR_NULL: Final[Schema] = {**_DATETIME, "type": ["string", "null"]}
_HEX: Final[Schema] = {"type": "string", "pattern": "^[0-9a-f]*$", "description": "bytes as hex"}
_DECIMAL: Final[Schema] = {
    "type": "string",
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "description": "a decimal amount in the tariff's currency",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def _string(description: str = "") -> Schema:
    return {"type": "string", **({"description": description} if description else {})}


def _number(description: str = "") -> Schema:
    return {"type": "number", **({"description": description} if description else {})}


def _object(properties: dict[str, Schema], description: str = "", *, extra: bool = True) -> Schema:
    """An object whose listed properties are all present (null where the type allows)."""
    schema: Schema = {"type": "object", "properties": properties, "required": list(properties)}
    if description:
        schema["description"] = description
    if not extra:
        schema["additionalProperties"] = False
    return schema


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _schemas() -> dict[str, Schema]:
    meter = _object(
        {
            "meter_id": _string(),
            "energy_wh": {"type": "integer", "description": "the meter's register"},
            "at": _DATETIME,
            "signature": _nullable(_HEX),
            "status": {"type": ["integer", "null"]},
        },
        "One reading of an EVSE's meter.",
    )
    return {
        "Error": _object(
            {
                "error": _string(
                    "the kind: bad_request, unauthorized, not_found, method_not_allowed, "
                    "conflict, payload_too_large, unsupported_media_type, "
                    "unprocessable_entity, internal_error"
                ),
                "detail": _string("what was wrong, for people"),
            },
            "An error.",
        ),
        "EvseState": {
            "type": "string",
            "enum": ["available", "occupied", "charging", "paused", "faulted", "unavailable"],
            "description": "occupied: a car is connected but not charging; paused: a paused "
            "session waits for its car; unavailable: the controller cannot be read",
        },
        "Evse": _object(
            {
                "evse_id": _string("the EVSEID"),
                "state": _ref("EvseState"),
                "session_id": _nullable(_string("hex SessionID of the live session")),
                "protocol": _nullable(_string("din, iso2, ...")),
                "power_w": _number(),
                "voltage_v": _number(),
                "current_a": _number(),
                "meter_wh": {"type": ["integer", "null"]},
                "session_energy_wh": _nullable(_number()),
                "max_power_w": _number("the EVSE's own limit"),
                "allocated_w": _nullable(_number("its share of the site limit")),
                "last_error": _nullable(_string()),
                "last_error_at": _DATETIME_OR_NULL,
            },
            "One EVSE now.",
        ),
        "Certificate": _object(
            {
                "name": _string("what it is for, e.g. tls"),
                "subject": _string("RFC 4514"),
                "not_after": _DATETIME,
                "days_left": _number("negative once expired"),
            },
            "A certificate the station uses, with its expiry.",
        ),
        "OutboxCounts": {
            "type": "object",
            "description": "billing deliveries by state: pending, held, delivered",
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "Status": _object(
            {
                "evses": _array(_ref("Evse")),
                "site_limit_w": _nullable(_number()),
                "certificates": _array(_ref("Certificate")),
                "outbox": _ref("OutboxCounts"),
                "started_at": _DATETIME,
                "version": _string(),
                "now": {
                    **_DATETIME,
                    "description": "when this status was taken (one is served for up to "
                    "api.status_max_age seconds)",
                },
            },
            "The station now.",
        ),
        "LiveSession": _object(
            {
                "session_id": _string("hex SessionID"),
                "evse_id": _string(),
                "protocol": _string(),
                "started_at": _DATETIME,
                "charging": {"type": "boolean"},
                "kind": {"type": ["string", "null"], "enum": ["contract", "external", None]},
                "contract_id": _nullable(_string("eMAID")),
                "id_token": _nullable(_string()),
                "energy_wh": _number(),
                "power_w": _number(),
            },
            "A session in progress.",
        ),
        "MeterReading": meter,
        "Session": _object(
            {
                "session_id": _string("hex SessionID"),
                "evse_id": _string(),
                "protocol": _string(),
                "state": {"type": "string", "enum": ["active", "paused", "ended"]},
                "started_at": _DATETIME,
                "stopped_at": _DATETIME_OR_NULL,
                "kind": {"type": ["string", "null"], "enum": ["contract", "external", None]},
                "contract_id": _nullable(_string()),
                "id_token": _nullable(_string()),
                "meter_start": _nullable(_ref("MeterReading")),
                "stop_reason": _nullable(_string("ev-stopped, evse-stopped, timeout, ...")),
                "live": {"type": "boolean", "description": "the session is in progress now"},
            },
            "A session as stored.",
        ),
        "SessionDetail": {
            "allOf": [
                _ref("Session"),
                _object(
                    {
                        "live_session": _nullable(_ref("LiveSession")),
                        "billing_records": _array(_ref("BillingRecord")),
                    }
                ),
            ],
            "description": "One session: as stored (only session_id and live if it is not "
            "stored yet), what it does now if live, its billing records.",
        },
        "TimelineEntry": _object(
            {
                "session_id": _string(),
                "seq": {"type": "integer", "minimum": 1},
                "direction": {
                    "type": "string",
                    "enum": ["rx", "tx"],
                    "description": "rx: a request from the car; tx: the response",
                },
                "message": _string("e.g. CableCheckReq"),
                "response_code": _nullable(_string()),
                "at": _DATETIME,
            }
        ),
        "Timeline": _object(
            {"session_id": _string(), "timeline": _array(_ref("TimelineEntry"))},
            "One session's messages in order.",
        ),
        "Price": _object(
            {
                "tariff_id": _string(),
                "currency": _string("ISO 4217"),
                "energy": _DECIMAL,
                "time": _DECIMAL,
                "fee": _DECIMAL,
                "total": _DECIMAL,
            }
        ),
        "SignedReceipt": _object(
            {
                "exi": _HEX,
                "schema": _string(),
                "reading": _ref("MeterReading"),
                "signature_valid": {"type": "boolean"},
                "at": _DATETIME,
            },
            "A MeteringReceiptReq the car signed, as received.",
        ),
        "BillingRecord": _object(
            {
                "record_id": _string("unique and stable: the idempotency key"),
                "session_id": _string(),
                "evse_id": _string(),
                "protocol": _string(),
                "kind": {"type": "string", "enum": ["contract", "external"]},
                "contract_id": _nullable(_string()),
                "started_at": _DATETIME,
                "stopped_at": _DATETIME,
                "meter_start": _nullable(_ref("MeterReading")),
                "meter_stop": _nullable(_ref("MeterReading")),
                "stop_reason": _string(),
                "receipts": _array(_ref("SignedReceipt")),
                "id_token": _nullable(_string()),
                "price": _nullable(_ref("Price")),
                "energy_wh": {"type": "integer", "minimum": 0},
            },
            "What the payment processor gets for one session (or paused part of one).",
        ),
        "OutboxEntry": {
            "type": "object",
            "description": "One record's delivery to one destination, with a summary of the "
            "record (amount and currency null without a tariff).",
            "properties": {
                "record_id": _string(),
                "destination": _string(),
                "state": {"type": "string", "enum": ["pending", "held", "delivered"]},
                "session_id": _string(),
                "evse_id": _string(),
                "energy_wh": {"type": "integer"},
                "amount": _nullable(_DECIMAL),
                "currency": _nullable(_string()),
                "created_at": _DATETIME,
                "attempts": {"type": "integer"},
                "last_error": _nullable(_string()),
                "next_attempt_at": _DATETIME_OR_NULL,
                "delivered_at": _DATETIME_OR_NULL,
                "held_at": _DATETIME_OR_NULL,
                "reference": _nullable(_string("the processor's reference, once delivered")),
            },
            "required": ["record_id", "destination", "state"],
        },
        "SiteLimit": _object(
            {"watts": _nullable({"type": "number", "minimum": 0, "maximum": 100_000_000})},
            "The site power limit; null: no limit.",
            extra=False,
        ),
        "StopRequested": _object({"session_id": _string(), "stop_requested": {"const": True}}),
        "Released": _object(
            {"released": {"type": "integer", "minimum": 0}},
            "How many outbox items are due for delivery again.",
        ),
    }


def _error_responses(*codes: int) -> dict[str, Any]:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        404: "NotFound",
        409: "Conflict",
        413: "PayloadTooLarge",
        415: "UnsupportedMediaType",
        422: "UnprocessableEntity",
        429: "TooManyRequests",
    }
    every = (401, 429)  # authentication, on every route
    return {str(c): {"$ref": f"#/components/responses/{names[c]}"} for c in (*every, *codes)}


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    schema = {"type": "string", "pattern": r"^[A-Za-z0-9*._:+-]{1,128}$"}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


_LIMIT = _query(
    "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "most rows"
)


def _get(op: str, summary: str, ok: dict[str, Any], *errors: int, **more: Any) -> dict[str, Any]:
    return {
        "operationId": op,
        "summary": summary,
        "responses": {"200": ok, **_error_responses(*errors)},
        **more,
    }


def _paths() -> dict[str, Any]:
    session_path = _path("session_id", "hex SessionID")
    return {
        "/api/v1/status": {
            "get": _get(
                "get_status",
                "Station status: EVSEs, site limit, certificates, billing outbox",
                _json(_ref("Status"), "the station now"),
                400,
            )
        },
        "/api/v1/evses": {
            "get": _get(
                "list_evses",
                "All EVSEs",
                _json(_object({"evses": _array(_ref("Evse"))}), "the EVSEs"),
                400,
            )
        },
        "/api/v1/evses/{evse_id}": {
            "get": _get(
                "get_evse",
                "One EVSE",
                _json(_ref("Evse"), "the EVSE"),
                400,
                404,
                parameters=[_path("evse_id", "the EVSEID")],
            )
        },
        "/api/v1/sessions": {
            "get": _get(
                "list_sessions",
                "Sessions, most recent first, filtered; live ones flagged",
                _json(_object({"sessions": _array(_ref("Session"))}), "the sessions"),
                400,
                parameters=[
                    _query(
                        "state",
                        {"type": "string", "enum": ["active", "paused", "ended"]},
                        "only sessions in this state",
                    ),
                    _query("evse_id", {"type": "string"}, "only this EVSE's"),
                    _query("contract_id", {"type": "string"}, "only this contract's (eMAID)"),
                    _query("since", _DATETIME, "started at or after"),
                    _query("until", _DATETIME, "started before"),
                    _LIMIT,
                ],
            )
        },
        "/api/v1/sessions/live": {
            "get": _get(
                "list_live_sessions",
                "Sessions in progress",
                _json(_object({"sessions": _array(_ref("LiveSession"))}), "live sessions"),
                400,
            )
        },
        "/api/v1/sessions/{session_id}": {
            "get": _get(
                "get_session",
                "One session",
                _json(_ref("SessionDetail"), "the session"),
                400,
                404,
                parameters=[session_path],
            )
        },
        "/api/v1/sessions/{session_id}/timeline": {
            "get": _get(
                "get_timeline",
                "One session's message timeline",
                _json(_ref("Timeline"), "the timeline"),
                400,
                404,
                parameters=[session_path],
            )
        },
        "/api/v1/sessions/{session_id}/stop": {
            "post": {
                "operationId": "stop_session",
                "summary": "Stop a live session (the charger ends it as the standard allows)",
                "parameters": [session_path],
                "responses": {
                    "202": _json(_ref("StopRequested"), "the stop is under way"),
                    **_error_responses(400, 404, 409),
                },
            }
        },
        "/api/v1/billing/records": {
            "get": _get(
                "list_billing_records",
                "Billing records in the order they were stored",
                _json(_object({"records": _array(_ref("BillingRecord"))}), "the records"),
                400,
                parameters=[
                    _query("session_id", {"type": "string"}, "only this session's"),
                    _query("since", _DATETIME, "stored at or after"),
                    _LIMIT,
                ],
            )
        },
        "/api/v1/billing/outbox": {
            "get": _get(
                "list_outbox",
                "The billing delivery outbox",
                _json(
                    _object(
                        {"counts": _ref("OutboxCounts"), "entries": _array(_ref("OutboxEntry"))}
                    ),
                    "counts by state and the entries",
                ),
                400,
                parameters=[
                    _query(
                        "state",
                        {"type": "string", "enum": ["pending", "held", "delivered"]},
                        "only entries in this state",
                    ),
                    _LIMIT,
                ],
            )
        },
        "/api/v1/billing/outbox/retry-all": {
            "post": {
                "operationId": "retry_all",
                "summary": "Deliver every pending and held item now",
                "responses": {
                    "200": _json(_ref("Released"), "released"),
                    **_error_responses(400),
                },
            }
        },
        "/api/v1/billing/outbox/{record_id}/retry": {
            "post": {
                "operationId": "retry_record",
                "summary": "Deliver one record now (a held one too)",
                "parameters": [_path("record_id", "the billing record's id")],
                "responses": {
                    "200": _json(
                        {"allOf": [_ref("Released"), _object({"record_id": _string()})]},
                        "released",
                    ),
                    **_error_responses(400, 404),
                },
            }
        },
        "/api/v1/site/limit": {
            "get": _get(
                "get_site_limit",
                "The site power limit",
                _json(_ref("SiteLimit"), "the limit"),
                400,
            ),
            "put": {
                "operationId": "set_site_limit",
                "summary": "Set (or, with null, lift) the site power limit; sessions follow",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SiteLimit")}},
                },
                "responses": {
                    "200": _json(_ref("SiteLimit"), "the limit now"),
                    **_error_responses(400, 413, 415, 422),
                },
            },
        },
        "/api/v1/openapi.json": {
            "get": _get(
                "get_openapi",
                "This document",
                _json({"type": "object"}, "the OpenAPI 3.1 document"),
                400,
            )
        },
        "/metrics": {
            "get": _get(
                "get_metrics",
                "Prometheus metrics (text exposition format 0.0.4)",
                {
                    "description": "the metrics",
                    "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                },
                400,
                description="Needs the token unless api.metrics_require_token is false.",
            )
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document (built on first use, then shared: do not modify it)."""
    error = _json(_ref("Error"), "")
    responses = {
        name: {**error, "description": text}
        for name, text in (
            ("BadRequest", "a bad query parameter, identifier or JSON body"),
            ("Unauthorized", "no bearer token, or not the configured one"),
            ("NotFound", "no such EVSE, session or record"),
            ("Conflict", "not possible in the current state (e.g. the session has ended)"),
            ("PayloadTooLarge", "the body is larger than api.max_body_bytes"),
            ("UnsupportedMediaType", "the body is not application/json"),
            ("UnprocessableEntity", "JSON of the wrong shape or value"),
            ("TooManyRequests", "too many wrong tokens from this address (see Retry-After)"),
        )
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ISO 15118 station API",
            "version": iso15118.__version__,
            "description": "Status, sessions, billing and site limit of one charging station "
            '(the SECC process). Errors: {"error": kind, "detail": text}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": responses,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the token of the SECC configuration (api.token)",
                }
            },
        },
    }


@functools.cache
def openapi_json() -> bytes:
    return json.dumps(openapi_document(), separators=(",", ":")).encode()
