"""Per-field metadata the generated message classes carry (`Cls._exi_fields_`)."""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    """One attribute, child element or simple content of a generated message class."""

    py: str  # attribute name on the dataclass
    key: str  # JSON/XML key: "@Name" for attributes, "#text" for simple content
    namespace: str  # of the element or attribute ("" when unqualified)
    is_list: bool  # the schema allows more than one occurrence
    kind: object  # nested class, enum class, or "int" | "str" | "bool" | "bytes"
    min_occurs: int
    max_occurs: int  # -1 for unbounded
    facet_min: int | None  # value range for integers, length range for str/bytes
    facet_max: int | None
    choice: int | None  # fields of one xs:choice (or substitution group) share a number
