"""Find which field of a message holds a value of the wrong Python type.

Generated encoders do not test types on the fast path; when one fails on a bad value,
this walk over the field metadata names the field for the error message.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "bool": (bool,),
    "bytes": (bytes, bytearray),
}


def find_type_error(value: Any, path: str) -> str | None:
    """The first field, depth first, whose value does not fit its declared kind."""
    fields = getattr(type(value), "_exi_fields_", None)
    if fields is None:
        return None
    for f in fields:
        item = getattr(value, f.py, None)
        where = f"{path}.{f.key}"
        if item is None:
            if f.min_occurs and not f.is_list:
                return f"{where}: required value missing"
            continue
        if f.is_list:
            if not isinstance(item, list):
                return f"{where}: expected a list, got {type(item).__name__}"
            for i, x in enumerate(item):
                problem = _check(f.kind, x, f"{where}[{i}]")
                if problem:
                    return problem
        else:
            problem = _check(f.kind, item, where)
            if problem:
                return problem
    return None


def _check(kind: object, item: Any, where: str) -> str | None:
    if isinstance(kind, str):
        ok = isinstance(item, _SCALARS[kind]) and not (kind == "int" and isinstance(item, bool))
        return None if ok else f"{where}: expected {kind}, got {type(item).__name__} {item!r}"
    if isinstance(kind, type) and issubclass(kind, Enum):
        if isinstance(item, kind) or item in {m.value for m in kind}:
            return None
        return f"{where}: {item!r} is not a {kind.__name__}"
    if isinstance(kind, type) and not isinstance(item, kind):
        return f"{where}: expected {kind.__name__}, got {type(item).__name__}"
    return find_type_error(item, where)
