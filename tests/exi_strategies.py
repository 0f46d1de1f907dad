"""Hypothesis strategies that build valid EXI messages from the generated metadata.

Every generated class carries `_exi_fields_` (see `iso15118.exi.fields.Field`): occurrence
bounds, facets and choice groups.  `instances(cls)` draws a random instance that respects
them; `minimal(cls)` builds the smallest valid instance deterministically.

The metadata flattens content models, so a few constraints are not recorded in it (fields that
only occur together, branches of a choice that are sequences).  `_OVERRIDES` spells those out
for the handful of (xmldsig) types that need them.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeGuard

from hypothesis import strategies as st

import exi_schemas
from iso15118 import exi
from iso15118.exi.fields import Field

# Size limits of the random messages.
SMALL_LIST = 3  # lists hold min_occurs .. max(min_occurs, 3) entries ...
FULL_LIST_CAP = 40  # ... or, now and then, exactly max_occurs entries (capped here)
FULL_LIST_ODDS = 8  # one list in this many is filled to its (capped) maximum
FULL_LIST_DEPTH = 4  # only lists this close to the root are ever filled up
UNBOUNDED_TEXT = 24  # strings and binaries without a maxLength facet: at most this long
BIG_TEXT = 300  # ... except now and then, to exercise multi-octet length prefixes


def is_message_class(kind: object) -> TypeGuard[type]:
    """A generated (complex-typed) message class."""
    return isinstance(kind, type) and hasattr(kind, "_exi_fields_")


def is_enum_class(kind: object) -> TypeGuard[type[enum.Enum]]:
    return isinstance(kind, type) and issubclass(kind, enum.Enum)


def is_abstract(cls: type) -> bool:
    """The class comes from an abstract XSD type (its docstring says so)."""
    return (cls.__doc__ or "").startswith("XSD abstract type")


# Types whose content must hold wildcard (xs:any) elements, which the codec does not support:
# xmldsig SignatureProperty is `(any##other | text)+` with only attributes as fields.
WILDCARD_CONTENT = frozenset({("exi_schemas.xmldsig", "SignaturePropertyType")})


@cache
def is_unencodable(cls: type) -> bool:
    """Needs wildcard content, itself or in a required part.  (Abstract types are fine: EXI
    has a grammar for them, and the codec encodes an element of an abstract type as is.)"""
    if (cls.__module__, cls.__name__) in WILDCARD_CONTENT:
        return True
    return any(
        f.choice is None and f.min_occurs >= 1 and _unusable_kind(f.kind) for f in fields_of(cls)
    )


def fields_of(cls: type) -> tuple[Field, ...]:
    fields: tuple[Field, ...] = getattr(cls, "_exi_fields_")  # noqa: B009 - not on `type`
    return fields


def element_of(cls: type) -> tuple[str, str] | None:
    element: tuple[str, str] | None = getattr(cls, "_exi_element_")  # noqa: B009
    return element


# --- the codec tables ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One row of a codec's DOCUMENT or FRAGMENT table."""

    schema: str
    namespace: str
    name: str
    kind: object

    @property
    def id(self) -> str:
        return f"{self.schema}:{self.name}"

    def wrap(self, value: Any) -> Any:
        """What decode returns for this element: the object itself when its class names
        the element uniquely, else an `exi.Element`."""
        if is_message_class(type(value)) and element_of(type(value)) == (self.namespace, self.name):
            return value
        return exi.Element(self.namespace, self.name, value)


def codec_module(schema: str) -> Any:
    return importlib.import_module("exi_schemas." + exi_schemas.SCHEMA_CODECS[schema])


def document_entries(schema: str) -> list[Entry]:
    return [
        Entry(schema, ns, name, kind) for ns, name, _d, _e, kind in codec_module(schema).DOCUMENT
    ]


def fragment_entries(schema: str) -> list[Entry]:
    return [
        Entry(schema, ns, name, kind) for ns, name, _d, _e, kind in codec_module(schema).FRAGMENT
    ]


def root_entries() -> list[Entry]:
    """Every document root of every schema whose kind is a concrete generated class."""
    return [
        e
        for schema in exi.SCHEMAS
        for e in document_entries(schema)
        if is_message_class(e.kind) and not is_unencodable(e.kind)
    ]


def reachable_classes(cls: type) -> Iterator[type]:
    """`cls` and every class nested in it (each once)."""
    seen: set[type] = set()
    todo = [cls]
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        yield c
        todo.extend(f.kind for f in fields_of(c) if is_message_class(f.kind))


# --- choice groups ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    number: int
    members: tuple[Field, ...]

    @property
    def repeating(self) -> bool:
        return any(f.max_occurs != 1 for f in self.members)

    def usable(self) -> tuple[Field, ...]:
        """Members that can be encoded (no required wildcard content)."""
        return tuple(f for f in self.members if not _unusable_kind(f.kind))


def _unusable_kind(kind: object) -> bool:
    return is_message_class(kind) and is_unencodable(kind)


def choices_of(cls: type) -> list[Choice]:
    groups: dict[int, list[Field]] = {}
    for f in fields_of(cls):
        if f.choice is not None:
            groups.setdefault(f.choice, []).append(f)
    return [Choice(n, tuple(fs)) for n, fs in groups.items()]


# --- scalar values ---------------------------------------------------------------------------


def int_values(lo: int | None, hi: int | None) -> st.SearchStrategy[int]:
    """Integers in [lo, hi], with the bounds (and 0) drawn often."""
    edges = [v for v in (lo, hi) if v is not None]
    if (lo is None or lo <= 0) and (hi is None or hi >= 0):
        edges.append(0)
    if lo is None and hi is None:
        edges += [2**64, -(2**64), 2**200, -(2**200) - 1]  # xs:integer has no limit
    return st.one_of(st.sampled_from(edges), st.integers(min_value=lo, max_value=hi))


def _length_range(f: Field, draw: st.DrawFn) -> tuple[int, int]:
    lo = f.facet_min or 0
    if f.facet_max is not None:
        return lo, f.facet_max
    limit = BIG_TEXT if draw(st.integers(0, 9)) == 0 else UNBOUNDED_TEXT
    return lo, max(lo, limit)


@st.composite
def text_values(draw: st.DrawFn, f: Field) -> str:
    lo, hi = _length_range(f, draw)
    if hi > lo and draw(st.integers(0, 5)) == 0:
        lo = hi  # exactly maxLength
    # Any Unicode scalar value; hypothesis never draws surrogates for text().
    return draw(st.text(min_size=lo, max_size=hi))


@st.composite
def binary_values(draw: st.DrawFn, f: Field) -> bytes:
    lo, hi = _length_range(f, draw)
    if hi > lo and draw(st.integers(0, 5)) == 0:
        lo = hi
    if hi > 64:  # hypothesis builds long binaries slowly; fill big ones from a seed
        size = draw(st.integers(lo, hi))
        seed = draw(st.binary(min_size=1, max_size=16))
        return (seed * (size // len(seed) + 1))[:size]
    return draw(st.binary(min_size=lo, max_size=hi))


def scalar_values(f: Field) -> st.SearchStrategy[Any]:
    kind = f.kind
    if is_enum_class(kind):
        return st.sampled_from(list(kind))
    if kind == "int":
        return int_values(f.facet_min, f.facet_max)
    if kind == "bool":
        return st.booleans()
    if kind == "str":
        return text_values(f)
    if kind == "bytes":
        return binary_values(f)
    raise AssertionError(f"unknown field kind {kind!r}")


# --- messages --------------------------------------------------------------------------------


def _value(draw: st.DrawFn, f: Field, depth: int) -> Any:
    if is_message_class(f.kind):
        return draw(instances(f.kind, depth + 1))
    return draw(scalar_values(f))


def _list_size(draw: st.DrawFn, lo: int, hi: int, depth: int) -> int:
    """min_occurs .. small, or now and then exactly max_occurs (capped)."""
    fillable = hi > SMALL_LIST and depth <= FULL_LIST_DEPTH
    if fillable and draw(st.integers(0, FULL_LIST_ODDS - 1)) == 0:
        return max(lo, min(hi, FULL_LIST_CAP))
    top = SMALL_LIST if hi < 0 else min(hi, SMALL_LIST)
    return draw(st.integers(lo, max(lo, top)))


def _field_value(draw: st.DrawFn, f: Field, depth: int, required: bool) -> Any:
    if not required and f.min_occurs == 0 and _unusable_kind(f.kind):
        return [] if f.is_list else None
    if f.is_list:
        lo = max(f.min_occurs, 1 if required else 0)
        n = _list_size(draw, lo, f.max_occurs, depth)
        return [_value(draw, f, depth) for _ in range(n)]
    if required or f.min_occurs >= 1 or draw(st.booleans()):
        return _value(draw, f, depth)
    return None


Override = Callable[[st.DrawFn, int], dict[str, Any]]


def _pgp_data(draw: st.DrawFn, depth: int) -> dict[str, Any]:
    # (PGPKeyID, PGPKeyPacket?) | PGPKeyPacket : at most one packet.
    packet = st.binary(max_size=8)
    if draw(st.booleans()):
        optional = draw(packet) if draw(st.booleans()) else None
        return {"PGPKeyID": draw(st.binary(max_size=8)), "PGPKeyPacket": optional}
    return {"PGPKeyID": None, "PGPKeyPacket": draw(packet)}


def _dsa_key_value(draw: st.DrawFn, depth: int) -> dict[str, Any]:
    # (P, Q)?, G?, Y, J?, (Seed, PgenCounter)?
    blob = st.binary(max_size=24)
    out: dict[str, Any] = {"Y": draw(blob)}
    for group in (("P", "Q"), ("G",), ("J",), ("Seed", "PgenCounter")):
        present = draw(st.booleans())
        for name in group:
            out[name] = draw(blob) if present else None
    return out


_OVERRIDES: dict[tuple[str, str], Override] = {
    ("exi_schemas.xmldsig", "PGPDataType"): _pgp_data,
    ("exi_schemas.xmldsig", "DSAKeyValueType"): _dsa_key_value,
}


def override_for(cls: type) -> Override | None:
    return _OVERRIDES.get((cls.__module__, cls.__name__))


@st.composite
def _instances(draw: st.DrawFn, cls: type, depth: int) -> Any:
    override = override_for(cls)
    if override is not None:
        return cls(**override(draw, depth))
    args: dict[str, Any] = {}
    in_choice: dict[str, Choice] = {}
    for choice in choices_of(cls):
        for f in choice.members:
            in_choice[f.py] = choice
    chosen: dict[int, set[str]] = {}
    for choice in choices_of(cls):
        usable = choice.usable()
        if choice.repeating:
            # Any members, at least one entry in all (a repeated xs:choice with only
            # element particles needs at least one).
            picked = draw(st.sets(st.sampled_from(usable), min_size=1))
            chosen[choice.number] = {f.py for f in picked}
        else:
            chosen[choice.number] = {draw(st.sampled_from(usable)).py}
    for f in fields_of(cls):
        group = in_choice.get(f.py)
        if group is None:
            args[f.py] = _field_value(draw, f, depth, required=False)
        elif f.py in chosen[group.number]:
            args[f.py] = _field_value(draw, f, depth, required=True)
        else:
            args[f.py] = [] if f.is_list else None
    return cls(**args)


@cache
def instances(cls: type, depth: int = 0) -> st.SearchStrategy[Any]:
    """Random valid instances of a generated class."""
    return _instances(cls, min(depth, FULL_LIST_DEPTH + 1))


def minimal(cls: type, **overrides: Any) -> Any:
    """The smallest valid instance: required fields only, lowest values, first choice."""
    args: dict[str, Any] = {}
    chosen: set[str] = set()
    for choice in choices_of(cls):
        if not any(f.py in overrides for f in choice.members):
            chosen.add(choice.usable()[0].py)
    in_choice = {f.py for c in choices_of(cls) for f in c.members}
    for f in fields_of(cls):
        if f.py in overrides:
            args[f.py] = overrides[f.py]
            continue
        required = f.py in chosen or (f.py not in in_choice and f.min_occurs >= 1)
        if not required:
            args[f.py] = [] if f.is_list else None
            continue
        value = minimal_value(f)
        args[f.py] = [value] * max(1, f.min_occurs) if f.is_list else value
    return cls(**args)


def minimal_value(f: Field) -> Any:
    kind = f.kind
    if is_message_class(kind):
        return minimal(kind)
    if is_enum_class(kind):
        return next(iter(kind))
    if kind == "int":
        if f.facet_min is not None:
            return f.facet_min
        return 0 if f.facet_max is None or f.facet_max >= 0 else f.facet_max
    if kind == "bool":
        return False
    if kind == "str":
        return "a" * (f.facet_min or 0)
    if kind == "bytes":
        return b"\x01" * (f.facet_min or 0)
    raise AssertionError(f"unknown field kind {kind!r}")
