"""JSON form of the neutral records (`secc.records`), for the session store and the outbox.

Conventions, stable because stored files and the payment processor read them:

* datetimes are ISO 8601 with their UTC offset (``2024-05-01T12:00:00.000000+00:00``); a naive
  datetime is refused both ways (a record without a timezone cannot be billed unambiguously);
* bytes are lower-case hex strings;
* enums are their values (``"contract"``, ``"ev-stopped"``);
* amounts (`Price`) are decimal strings (``"7.30"``), never binary floats; a record stored
  before prices existed has no ``price`` key and loads with ``price=None``;
* a billing record carries ``"format": 1`` so that a later change of shape can be told apart.

`billing_record_to_json` / `billing_record_from_json` work on plain dicts; `dumps_billing_record`
and `loads_billing_record` on text. A malformed input raises `RecordFormatError` (a ValueError).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from secc.records import (
    BillingRecord,
    IdentificationKind,
    MeterReading,
    Price,
    SignedReceipt,
    StopReason,
)

__all__ = [
    "FORMAT",
    "RecordFormatError",
    "billing_record_from_json",
    "billing_record_to_json",
    "datetime_from_json",
    "datetime_to_json",
    "dumps_billing_record",
    "loads_billing_record",
    "meter_reading_from_json",
    "meter_reading_to_json",
    "price_from_json",
    "price_to_json",
    "signed_receipt_from_json",
    "signed_receipt_to_json",
]

FORMAT = 1  # the billing record JSON format version


class RecordFormatError(ValueError):
    """Stored or received JSON that is not a record of the expected shape."""


# --- scalars --------------------------------------------------------------------------------


def datetime_to_json(value: datetime) -> str:
    """ISO 8601 with offset and microseconds; ValueError for a naive datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: records carry timezone-aware times")
    return value.isoformat(timespec="microseconds")


def datetime_from_json(text: object) -> datetime:
    if not isinstance(text, str):
        raise RecordFormatError(f"expected an ISO 8601 string, got {text!r}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise RecordFormatError(f"not an ISO 8601 datetime: {text!r}") from None
    if value.tzinfo is None:
        raise RecordFormatError(f"datetime without timezone: {text!r}")
    return value


def _bytes_to_json(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _bytes_from_json(text: object) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise RecordFormatError(f"expected a hex string, got {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise RecordFormatError(f"not a hex string: {text[:40]!r}") from None


def _field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise RecordFormatError(f"missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise RecordFormatError(f"field {name!r}: unexpected {type(value).__name__}")
    return value


def _optional(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if value is None:
        return None
    return _field(obj, name, kind)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordFormatError(f"{what}: expected an object, got {type(value).__name__}")
    return value


# --- records --------------------------------------------------------------------------------


def meter_reading_to_json(reading: MeterReading) -> dict[str, Any]:
    return {
        "meter_id": reading.meter_id,
        "energy_wh": reading.energy_wh,
        "at": datetime_to_json(reading.at),
        "signature": _bytes_to_json(reading.signature),
        "status": reading.status,
    }


def meter_reading_from_json(obj: object) -> MeterReading:
    m = _mapping(obj, "meter reading")
    return MeterReading(
        meter_id=_field(m, "meter_id", str),
        energy_wh=_field(m, "energy_wh", int),
        at=datetime_from_json(m.get("at")),
        signature=_bytes_from_json(m.get("signature")),
        status=_optional(m, "status", int),
    )


def signed_receipt_to_json(receipt: SignedReceipt) -> dict[str, Any]:
    return {
        "exi": receipt.exi.hex(),
        "schema": receipt.schema,
        "reading": meter_reading_to_json(receipt.reading),
        "signature_valid": receipt.signature_valid,
        "at": datetime_to_json(receipt.at),
    }


def signed_receipt_from_json(obj: object) -> SignedReceipt:
    m = _mapping(obj, "signed receipt")
    exi = _bytes_from_json(_field(m, "exi", str))
    assert exi is not None
    return SignedReceipt(
        exi=exi,
        schema=_field(m, "schema", str),
        reading=meter_reading_from_json(m.get("reading")),
        signature_valid=_field(m, "signature_valid", bool),
        at=datetime_from_json(m.get("at")),
    )


_AMOUNTS = ("energy", "time", "fee", "total")


def price_to_json(price: Price) -> dict[str, Any]:
    out: dict[str, Any] = {"tariff_id": price.tariff_id, "currency": price.currency}
    out.update((name, f"{getattr(price, name):f}") for name in _AMOUNTS)  # never 1E+2
    return out


def _amount(m: Mapping[str, Any], name: str) -> Decimal:
    text = _field(m, name, str)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RecordFormatError(f"price {name}: {text[:40]!r} is not a decimal amount") from None
    if not value.is_finite():
        raise RecordFormatError(f"price {name}: {text!r} is not a finite amount")
    return value


def price_from_json(obj: object) -> Price:
    m = _mapping(obj, "price")
    return Price(
        tariff_id=_field(m, "tariff_id", str),
        currency=_field(m, "currency", str),
        energy=_amount(m, "energy"),
        time=_amount(m, "time"),
        fee=_amount(m, "fee"),
        total=_amount(m, "total"),
    )


def _optional_reading(value: MeterReading | None) -> dict[str, Any] | None:
    return None if value is None else meter_reading_to_json(value)


def billing_record_to_json(record: BillingRecord) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "record_id": record.record_id,
        "session_id": record.session_id,
        "evse_id": record.evse_id,
        "protocol": record.protocol,
        "kind": record.kind.value,
        "contract_id": record.contract_id,
        "id_token": record.id_token,
        "started_at": datetime_to_json(record.started_at),
        "stopped_at": datetime_to_json(record.stopped_at),
        "meter_start": _optional_reading(record.meter_start),
        "meter_stop": _optional_reading(record.meter_stop),
        "energy_wh": record.energy_wh,  # informative; recomputed from the readings on load
        "stop_reason": record.stop_reason.value,
        "receipts": [signed_receipt_to_json(r) for r in record.receipts],
        "price": None if record.price is None else price_to_json(record.price),
    }


def _enum(cls: type[IdentificationKind] | type[StopReason], value: object) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise RecordFormatError(f"{value!r} is not a {cls.__name__}") from None


def billing_record_from_json(obj: object) -> BillingRecord:
    m = _mapping(obj, "billing record")
    if m.get("format") != FORMAT:
        raise RecordFormatError(f"billing record format {m.get('format')!r}, expected {FORMAT}")
    receipts = _field(m, "receipts", list)
    meter_start, meter_stop = m.get("meter_start"), m.get("meter_stop")
    price = m.get("price")  # absent in records stored before prices
    return BillingRecord(
        record_id=_field(m, "record_id", str),
        session_id=_field(m, "session_id", str),
        evse_id=_field(m, "evse_id", str),
        protocol=_field(m, "protocol", str),
        kind=_enum(IdentificationKind, m.get("kind")),
        contract_id=_optional(m, "contract_id", str),
        id_token=_optional(m, "id_token", str),
        started_at=datetime_from_json(m.get("started_at")),
        stopped_at=datetime_from_json(m.get("stopped_at")),
        meter_start=None if meter_start is None else meter_reading_from_json(meter_start),
        meter_stop=None if meter_stop is None else meter_reading_from_json(meter_stop),
        stop_reason=_enum(StopReason, m.get("stop_reason")),
        receipts=tuple(signed_receipt_from_json(r) for r in receipts),
        price=None if price is None else price_from_json(price),
    )


def dumps_billing_record(record: BillingRecord) -> str:
    """Compact JSON text with sorted keys (the same record always gives the same text)."""
    return json.dumps(billing_record_to_json(record), sort_keys=True, separators=(",", ":"))


def loads_billing_record(text: str | bytes) -> BillingRecord:
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordFormatError(f"billing record is not JSON: {exc}") from None
    return billing_record_from_json(obj)
