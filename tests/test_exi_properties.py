"""Property tests of the EXI codec over messages built from the generated metadata.

* Every document root of every schema: decode(encode(m)) == m, encode(decode(x)) == x, and
  from_json(to_json(m)) == m (through real JSON text).
* The signed elements as EXI fragments (what XML signatures digest).
* Every list with a bounded maxOccurs, filled to exactly maxOccurs, round-trips; one more
  entry is refused.
* Invalid messages (facets, occurrences, choices, Python types) raise ExiEncodeError that
  names the offending field; minLength is enforced only with strict=True.

The messages come from `exi_strategies` (see there for the size limits).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from exi_strategies import (
    Choice,
    Entry,
    choices_of,
    document_entries,
    fields_of,
    fragment_entries,
    instances,
    is_enum_class,
    is_message_class,
    is_unencodable,
    minimal,
    minimal_value,
    override_for,
    reachable_classes,
    root_entries,
    scalar_values,
)
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from exi_schemas import iso2, xmldsig
from iso15118 import exi
from iso15118.exi.fields import Field

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

ROOTS = root_entries()


def _round_trip(entry: Entry, message: Any, *, fragment: bool = False) -> bytes:
    encode = exi.encode_fragment if fragment else exi.encode
    decode = exi.decode_fragment if fragment else exi.decode
    data = encode(entry.schema, message)
    assert data[0] == 0x80
    decoded = decode(entry.schema, data)
    assert decoded == message
    assert encode(entry.schema, decoded) == data
    return data


# --- 1. documents --------------------------------------------------------------------------


def test_every_schema_has_roots() -> None:
    covered = {schema: sum(e.schema == schema for e in ROOTS) for schema in exi.SCHEMAS}
    assert all(covered.values()), covered
    # Only the xmldsig SignatureProperty/SignatureProperties elements are left out: their
    # content is xs:any, which the codec does not support.
    for schema in exi.SCHEMAS:
        left_out = {
            e.name for e in document_entries(schema) if is_message_class(e.kind) and e not in ROOTS
        }
        assert left_out <= {"SignatureProperty", "SignatureProperties"}, (schema, left_out)


@pytest.mark.parametrize("entry", ROOTS, ids=lambda e: e.id)
@SETTINGS
@given(data=st.data())
def test_document_round_trip(entry: Entry, data: st.DataObject) -> None:
    message = entry.wrap(data.draw(instances(entry.kind), label="message"))
    _round_trip(entry, message)
    as_json = exi.to_json(message)
    assert exi.from_json(entry.schema, json.loads(json.dumps(as_json))) == message


SIMPLE_ROOTS = {
    schema: simple
    for schema in exi.SCHEMAS
    if (simple := [e for e in document_entries(schema) if not is_message_class(e.kind)])
}


@pytest.mark.parametrize("schema", SIMPLE_ROOTS)
@SETTINGS
@given(data=st.data())
def test_simple_typed_roots_round_trip(schema: str, data: st.DataObject) -> None:
    """Global elements of a simple type (KeyName, MgmtData, DigestValue) come back as
    exi.Element."""
    simple = SIMPLE_ROOTS[schema]
    entry = data.draw(st.sampled_from(simple), label="element")
    value = data.draw(_simple_values(entry.kind), label="value")
    message = entry.wrap(value)
    assert isinstance(message, exi.Element)
    _round_trip(entry, message)


def _simple_values(kind: object) -> st.SearchStrategy[Any]:
    # The facets of a simple-typed global element are not recorded: stay unconstrained but small.
    return scalar_values(Field("value", "#text", "", False, kind, 1, 1, None, 16, None))


# --- 1b. signed elements as fragments ------------------------------------------------------

SIGNED = {
    "iso2": [
        "AuthorizationReq",
        "MeteringReceiptReq",
        "CertificateInstallationReq",
        "CertificateUpdateReq",
        "ContractSignatureCertChain",
        "ContractSignatureEncryptedPrivateKey",
        "DHpublickey",
        "eMAID",
        "SalesTariff",
    ],
    "xmldsig": ["SignedInfo"],
    "iso20-common": [
        "PnC_AReqAuthorizationMode",
        "CertificateInstallationReq",
        "SignedInstallationData",
        "MeteringConfirmationReq",
        "AbsolutePriceSchedule",
    ],
}


def _signed_entries() -> list[Entry]:
    out = []
    for schema, names in SIGNED.items():
        for name in names:
            matches = [e for e in fragment_entries(schema) if e.name == name]
            assert len(matches) == 1, (schema, name, matches)
            out.append(matches[0])
    return out


SIGNED_ENTRIES = _signed_entries()


@pytest.mark.parametrize("entry", SIGNED_ENTRIES, ids=lambda e: e.id)
@SETTINGS
@given(data=st.data())
def test_signed_fragment_round_trip(entry: Entry, data: st.DataObject) -> None:
    value = data.draw(instances(entry.kind), label="value")
    message = entry.wrap(value)
    # A class that names exactly this element comes back as itself, otherwise as an Element.
    plain = getattr(type(value), "_exi_element_", None) == (entry.namespace, entry.name)
    assert isinstance(message, exi.Element) != plain
    _round_trip(entry, message, fragment=True)
    assert exi.from_json_fragment(entry.schema, exi.to_json(message)) == message


# --- 1c. lists filled to their schema maxOccurs ---------------------------------------------


@dataclass(frozen=True)
class Target:
    """A class with an element to encode it through (a document root if there is one)."""

    entry: Entry
    cls: type
    document: bool

    @property
    def id(self) -> str:
        return f"{self.entry.schema}:{self.cls.__name__}"

    def encode(self, value: Any, *, strict: bool = True) -> bytes:
        encode = exi.encode if self.document else exi.encode_fragment
        return encode(self.entry.schema, self.entry.wrap(value), strict=strict)

    def decode(self, data: bytes) -> Any:
        decode = exi.decode if self.document else exi.decode_fragment
        message = decode(self.entry.schema, data)
        return message.value if isinstance(message, exi.Element) else message


@cache
def targets(schema: str) -> tuple[Target, ...]:
    """Every encodable class of a schema's codec, once, with an element to encode it as."""
    home: dict[type, Target] = {}
    for document, entries in ((True, document_entries(schema)), (False, fragment_entries(schema))):
        for e in entries:
            if is_message_class(e.kind) and not is_unencodable(e.kind):
                home.setdefault(e.kind, Target(e, e.kind, document))
    seen = {
        c
        for e in fragment_entries(schema)
        if is_message_class(e.kind)
        for c in reachable_classes(e.kind)
    }
    missing = {c.__name__ for c in seen - set(home) if not is_unencodable(c)}
    assert not missing, f"{schema}: no element to encode {sorted(missing)} with"
    return tuple(t for t in home.values() if override_for(t.cls) is None)


def all_targets() -> Iterator[Target]:
    for schema in exi.SCHEMAS:
        yield from targets(schema)


def _bounded_lists() -> list[tuple[Target, Field]]:
    return [
        (t, f)
        for t in all_targets()
        for f in fields_of(t.cls)
        if f.is_list and f.max_occurs > 1 and f.choice is None
    ]


BOUNDED_LISTS = _bounded_lists()


def test_bounded_lists_found() -> None:
    found = {(t.entry.schema, t.cls.__name__, f.py): f.max_occurs for t, f in BOUNDED_LISTS}
    assert found[("iso2", "SAScheduleListType", "SAScheduleTuple")] == 3
    assert found[("iso2", "ChargingProfileType", "ProfileEntry")] == 24
    assert found[("iso2", "SupportedEnergyTransferModeType", "EnergyTransferMode")] == 6
    assert found[("iso2", "SubCertificatesType", "Certificate")] == 4
    assert found[("iso2", "PMaxScheduleType", "PMaxScheduleEntry")] == 1024
    assert len(found) >= 50


def _entries(data: st.DataObject, f: Field, count: int) -> list[Any]:
    """`count` list entries, cycling through a few random ones (hypothesis cannot draw 1024)."""
    entry = instances(f.kind, 5) if is_message_class(f.kind) else scalar_values(f)
    pool = data.draw(st.lists(entry, min_size=1, max_size=3), label="entries")
    return [pool[i % len(pool)] for i in range(count)]


@pytest.mark.parametrize(
    "target,field", BOUNDED_LISTS, ids=[f"{t.id}.{f.py}" for t, f in BOUNDED_LISTS]
)
@settings(SETTINGS, max_examples=3)
@given(data=st.data())
def test_list_filled_to_max_occurs(target: Target, field: Field, data: st.DataObject) -> None:
    value = data.draw(instances(target.cls, 5), label="value")
    setattr(value, field.py, _entries(data, field, field.max_occurs))
    encoded = target.encode(value)
    assert target.decode(encoded) == value
    assert target.encode(target.decode(encoded)) == encoded
    # one more entry is refused
    setattr(value, field.py, [*getattr(value, field.py), getattr(value, field.py)[0]])
    with pytest.raises(exi.ExiEncodeError, match=field.py):
        target.encode(value)


def test_iso2_full_schedules_in_a_document() -> None:
    """ChargeParameterDiscoveryRes with 3 SAScheduleTuples, each with 1024 PMaxScheduleEntry
    and a SalesTariff of 1024 entries of 3 ConsumptionCost of 3 Cost (all at maxOccurs)."""
    cost = minimal(iso2.CostType, amount=7, amountMultiplier=-3)
    watts = iso2.PhysicalValueType(Multiplier=3, Unit=iso2.unitSymbolType.W, Value=-1)
    consumption = minimal(iso2.ConsumptionCostType, startValue=watts, Cost=[cost] * 3)
    interval = minimal(iso2.RelativeTimeIntervalType, start=5, duration=10)
    entry = minimal(
        iso2.SalesTariffEntryType,
        RelativeTimeInterval=interval,
        ConsumptionCost=[consumption] * 3,
    )
    tariff = minimal(iso2.SalesTariffType, Id="t", SalesTariffEntry=[entry] * 1024)
    pmax = minimal(
        iso2.PMaxScheduleEntryType,
        RelativeTimeInterval=interval,
        PMax=watts,
    )
    tuples = [
        minimal(
            iso2.SAScheduleTupleType,
            SAScheduleTupleID=i + 1,
            PMaxSchedule=minimal(iso2.PMaxScheduleType, PMaxScheduleEntry=[pmax] * 1024),
            SalesTariff=tariff,
        )
        for i in range(3)
    ]
    res = minimal(
        iso2.ChargeParameterDiscoveryResType,
        SAScheduleList=iso2.SAScheduleListType(SAScheduleTuple=tuples),
        DC_EVSEChargeParameter=minimal(iso2.DC_EVSEChargeParameterType),
    )
    message = minimal(
        iso2.V2G_Message, Body=minimal(iso2.BodyType, ChargeParameterDiscoveryRes=res)
    )
    data = exi.encode("iso2", message)
    assert exi.decode("iso2", data) == message
    assert exi.encode("iso2", exi.decode("iso2", data)) == data


# --- 2. invalid messages --------------------------------------------------------------------


def _choose(cls: type, f: Field, value: Any) -> Any:
    """The minimal instance of `cls` with `f` set to `value` (the chosen member of its
    choice, if it is in one)."""
    return minimal(cls, **{f.py: value})


def _names(target: Target, f: Field, message: str) -> bool:
    """The error message names the field (simple content, which has no name of its own, as
    `#text` or by its type)."""
    if f.key == "#text":
        return "#text" in message or target.cls.__name__ in message
    return f.py in message or f.key.lstrip("@") in message


@dataclass
class Outcome:
    """Failures collected over a sweep of many (class, field, bad value) cases."""

    checked: int = 0
    failures: list[str] = field(default_factory=list)

    def expect_error(
        self, target: Target, f: Field, value: Any, what: str, *, named: bool = True
    ) -> None:
        self.checked += 1
        where = f"{target.id}.{f.py} {what}"
        try:
            target.encode(value)
        except exi.ExiEncodeError as exc:
            if named and not _names(target, f, str(exc)):
                self.failures.append(f"{where}: error does not name the field: {exc}")
        except Exception as exc:  # anything but ExiEncodeError is a failure
            self.failures.append(f"{where}: {type(exc).__name__}: {exc}")
        else:
            self.failures.append(f"{where}: encoded without error")

    def add(self, other: Outcome) -> None:
        self.checked += other.checked
        self.failures += other.failures

    def check(self) -> None:
        if not self.checked:
            pytest.skip("no field of this kind in this schema")
        assert not self.failures, f"{len(self.failures)} failures:\n" + "\n".join(
            self.failures[:40]
        )


Cases = Callable[[Target, Field], Iterator[tuple[str, Any]]]


def _sweep(schema: str, cases: Cases, *, named: bool = True) -> Outcome:
    outcome = Outcome()
    for target in targets(schema):
        target.encode(minimal(target.cls))  # the baseline is valid
        for f in fields_of(target.cls):
            for what, value in cases(target, f):
                outcome.expect_error(target, f, value, what, named=named)
    return outcome


def _sweep_all(cases: Cases, *, named: bool = True) -> Outcome:
    outcome = Outcome()
    for schema in exi.SCHEMAS:
        outcome.add(_sweep(schema, cases, named=named))
    return outcome


def _as_field_value(f: Field, item: Any) -> Any:
    return [item] * max(1, f.min_occurs) if f.is_list else item


def _out_of_range(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    if f.kind == "int":
        if f.facet_min is not None:
            yield "below", _choose(target.cls, f, _as_field_value(f, f.facet_min - 1))
        if f.facet_max is not None:
            yield "above", _choose(target.cls, f, _as_field_value(f, f.facet_max + 1))


def _too_long(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    if f.kind in ("str", "bytes") and f.facet_max is not None:
        unit: Any = "é" if f.kind == "str" else b"\xff"
        yield "too long", _choose(target.cls, f, _as_field_value(f, unit * (f.facet_max + 1)))


def _missing(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    if f.choice is None and f.min_occurs >= 1:
        yield "missing", minimal(target.cls, **{f.py: [] if f.is_list else None})


def _too_many(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    if f.is_list and f.max_occurs > 0 and f.choice is None:
        yield "too many", minimal(target.cls, **{f.py: [minimal_value(f)] * (f.max_occurs + 1)})


def _choice_conflicts(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    for choice in choices_of(target.cls):
        if choice.repeating or f not in choice.members or _unusable(choice, f):
            continue
        for other in choice.usable():
            if other is not f:
                both = {f.py: minimal_value(f), other.py: minimal_value(other)}
                yield f"with {other.py}", minimal(target.cls, **both)


def _unusable(choice: Choice, f: Field) -> bool:
    return f not in choice.usable() or len(choice.usable()) < 2


_WRONG_SCALARS: dict[str, tuple[Any, ...]] = {
    "int": ("1", 1.5, b"\x01"),
    "str": (5, b"abc"),
    "bytes": ("abc", 5),
}


def _wrong_scalar_type(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    bad: tuple[Any, ...] = ()
    if isinstance(f.kind, str):
        bad = _WRONG_SCALARS.get(f.kind, ())
    elif is_enum_class(f.kind):
        bad = ("NotAToken", 3)
    for value in bad:
        yield f"= {value!r}", _choose(target.cls, f, _as_field_value(f, value))


def _non_bool(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    if f.kind == "bool":
        for value in ("false", 0.5, b"", 2):
            yield f"= {value!r}", _choose(target.cls, f, _as_field_value(f, value))


def _wrong_object(target: Target, f: Field, *, content: bool) -> Iterator[tuple[str, Any]]:
    if is_message_class(f.kind) and bool(fields_of(f.kind)) == content:
        for value in (7, "text", xmldsig.KeyValueType()):
            if type(value) is not f.kind:
                yield f"= {value!r}", _choose(target.cls, f, _as_field_value(f, value))


def _wrong_object_with_content(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    return _wrong_object(target, f, content=True)


def _wrong_object_without_content(target: Target, f: Field) -> Iterator[tuple[str, Any]]:
    return _wrong_object(target, f, content=False)


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_integer_out_of_range_rejected(schema: str) -> None:
    _sweep(schema, _out_of_range).check()


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_too_long_rejected(schema: str) -> None:
    _sweep(schema, _too_long).check()


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_missing_required_field_rejected(schema: str) -> None:
    _sweep(schema, _missing).check()


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_too_many_entries_rejected(schema: str) -> None:
    _sweep(schema, _too_many).check()


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_two_members_of_a_choice_rejected(schema: str) -> None:
    _sweep(schema, _choice_conflicts).check()


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_wrong_python_type_rejected(schema: str) -> None:
    """str where int is expected (and the like) raises ExiEncodeError naming the field."""
    _sweep(schema, _wrong_scalar_type).check()


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_non_bool_for_bool_rejected(schema: str) -> None:
    """'false', 0.5, b'' or 2 for a boolean is refused, not written as its truth value."""
    _sweep(schema, _non_bool).check()


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_wrong_object_for_nested_type_rejected(schema: str) -> None:
    """An object of the wrong class for a nested message (a type with content) raises."""
    _sweep(schema, _wrong_object_with_content, named=False).check()


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_wrong_object_for_empty_type_rejected(schema: str) -> None:
    """The same for a type without content (e.g. Body.ChargingStatusReq = 42)."""
    _sweep(schema, _wrong_object_without_content, named=False).check()


def _min_length_fields() -> list[tuple[Target, Field]]:
    return [
        (t, f)
        for t in all_targets()
        for f in fields_of(t.cls)
        if f.kind in ("str", "bytes") and f.facet_min
    ]


MIN_LENGTH_FIELDS = _min_length_fields()


@pytest.mark.parametrize(
    "target,field", MIN_LENGTH_FIELDS, ids=[f"{t.id}.{f.py}" for t, f in MIN_LENGTH_FIELDS]
)
def test_shorter_than_min_length(target: Target, field: Field) -> None:
    """Refused with strict=True; with strict=False encoded as is and decoded back."""
    assert field.facet_min is not None
    unit: Any = "a" if field.kind == "str" else b"\x00"
    for length in (0, field.facet_min - 1):
        value = _choose(target.cls, field, _as_field_value(field, unit * length))
        with pytest.raises(exi.ExiEncodeError, match=field.py):
            target.encode(value)
        data = target.encode(value, strict=False)
        assert target.decode(data) == value
        assert target.encode(target.decode(data), strict=False) == data


def test_min_length_fields_found() -> None:
    names = {(t.entry.schema, t.cls.__name__, f.py) for t, f in MIN_LENGTH_FIELDS}
    assert ("iso2", "ChargingStatusResType", "EVSEID") in names


# --- 2b. invalid values deep inside random documents ----------------------------------------


def _objects(value: Any) -> Iterator[Any]:
    """`value` and every message object nested in it."""
    yield value
    for f in fields_of(type(value)):
        item = getattr(value, f.py)
        if is_message_class(f.kind):
            for x in item if f.is_list else [] if item is None else [item]:
                yield from _objects(x)


@dataclass(frozen=True)
class Corruption:
    obj: Any
    field: Field
    value: Any
    what: str


def _corruptions(obj: Any) -> Iterator[Corruption]:
    cls = type(obj)
    for f in fields_of(cls):
        current = getattr(obj, f.py)
        present = current not in (None, [])
        if f.kind == "int" and present:
            for bound, step in ((f.facet_min, -1), (f.facet_max, 1)):
                if bound is not None:
                    bad = bound + step
                    yield Corruption(obj, f, [bad] * len(current) if f.is_list else bad, "range")
        if f.kind in ("str", "bytes") and present and f.facet_max is not None:
            unit: Any = "x" if f.kind == "str" else b"x"
            bad = unit * (f.facet_max + 1)
            yield Corruption(obj, f, [bad] * len(current) if f.is_list else bad, "length")
        if f.choice is None and f.min_occurs >= 1:
            yield Corruption(obj, f, [] if f.is_list else None, "missing")
        if f.is_list and f.max_occurs > 0 and f.choice is None and present:
            grown = (current * (f.max_occurs + 1))[: f.max_occurs + 1]
            yield Corruption(obj, f, grown, "occurrences")
        if f.kind == "int" and present and not f.is_list:
            yield Corruption(obj, f, str(current), "type")
    for choice in choices_of(cls):
        if choice.repeating:
            continue
        unset = [f for f in choice.usable() if getattr(obj, f.py) in (None, [])]
        if len(unset) < len(choice.usable()):  # one member is set: add a second one
            for f in unset:
                yield Corruption(obj, f, minimal_value(f), "choice")


@pytest.mark.parametrize("schema", exi.SCHEMAS)
@settings(SETTINGS, max_examples=40)
@given(data=st.data())
def test_invalid_value_inside_a_document_rejected(schema: str, data: st.DataObject) -> None:
    entry = data.draw(st.sampled_from([e for e in ROOTS if e.schema == schema]), label="root")
    value = data.draw(instances(entry.kind), label="message")
    candidates = [c for obj in _objects(value) for c in _corruptions(obj)]
    assume(candidates)
    bad = data.draw(st.sampled_from(candidates), label="corruption")
    note(f"{type(bad.obj).__name__}.{bad.field.py} := {bad.value!r:.200} ({bad.what})")
    setattr(bad.obj, bad.field.py, bad.value)
    with pytest.raises(exi.ExiEncodeError) as info:
        exi.encode(schema, entry.wrap(value))
    message = str(info.value)
    if bad.field.key == "#text":
        assert "#text" in message or type(bad.obj).__name__ in message
    else:
        assert bad.field.py in message or bad.field.key.lstrip("@") in message


# --- xs:any content ------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", [None, "i"], ids=["without Id", "with Id"])
@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_signature_property_needs_wildcard_content(schema: str, identifier: str | None) -> None:
    """SignatureProperty holds only xs:any content, which the codec does not support: it
    refuses to encode rather than write a stream it cannot read."""
    message = xmldsig.SignaturePropertyType(Id=identifier, Target="#t")
    with pytest.raises(exi.ExiEncodeError):
        exi.encode(schema, message)
