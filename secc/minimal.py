"""The smallest valid instance of a generated message class, for FAILED responses.

After a FAILED response code the car ignores the rest of the response, but the response
must still be schema-valid, and many responses have mandatory fields (CurrentDemandRes has
eleven). `minimal(cls, **overrides)` fills every mandatory field from the class's own
`_exi_fields_` metadata (the schema's facets), so one function serves every response of
every protocol, and a new schema needs no new code.
"""

from __future__ import annotations

import enum
from functools import cache
from typing import Any

from iso15118.exi.fields import Field

__all__ = ["minimal"]


def minimal(cls: type[Any], **overrides: Any) -> Any:
    """An instance of `cls` with `overrides` set and every other mandatory field minimal."""
    values = dict(_defaults(cls))  # type: ignore[arg-type]
    values.update(overrides)
    return cls(**{k: (v() if callable(v) and k not in overrides else v) for k, v in values.items()})


@cache
def _defaults(cls: type[Any]) -> tuple[tuple[str, Any], ...]:
    out: list[tuple[str, Any]] = []
    choices: set[int] = set()
    for f in cls._exi_fields_:
        if f.min_occurs < 1:
            continue
        if f.choice is not None:
            if f.choice in choices:
                continue
            choices.add(f.choice)
        out.append((f.py, _factory(f)))
    return tuple(out)


def _factory(f: Field) -> Any:
    """A zero-argument callable making a fresh value (nested objects are mutable)."""
    kind = f.kind
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        first = next(iter(kind))
        single: Any = lambda: first  # noqa: E731
    elif isinstance(kind, type):
        nested = kind
        single = lambda: minimal(nested)  # noqa: E731
    elif kind == "int":
        low = f.facet_min if f.facet_min is not None else 0
        high = f.facet_max if f.facet_max is not None else low
        value = min(max(0, low), high)
        single = lambda: value  # noqa: E731
    elif kind == "str":
        text = "0" * (f.facet_min or 0)
        single = lambda: text  # noqa: E731
    elif kind == "bytes":
        data = bytes(f.facet_min or 0)
        single = lambda: data  # noqa: E731
    elif kind == "bool":
        single = lambda: False  # noqa: E731
    else:  # pragma: no cover - the compiler emits only these kinds
        raise TypeError(f"no minimal value for field {f.py} of kind {kind!r}")
    if f.is_list:
        count = max(1, f.min_occurs)
        return lambda: [single() for _ in range(count)]
    return single
