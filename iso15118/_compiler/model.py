"""The Python view of the schemas: which module, class and field each XSD component becomes."""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .xsd import (
    UNBOUNDED,
    ComplexType,
    ElementDecl,
    ModelGroup,
    Particle,
    QName,
    SchemaError,
    SchemaSet,
    SimpleType,
    Wildcard,
)

XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"

# schema name (the API's) -> (root XSD below the schemas folder, codec module)
SCHEMA_SETS: dict[str, tuple[str, str]] = {
    "xmldsig": ("iso15118-2/xmldsig-core-schema.xsd", "codec_xmldsig"),
    "appHand": ("app_protocol/V2G_CI_AppProtocol.xsd", "codec_apphand"),
    "din": ("din70121/V2G_CI_MsgDef.xsd", "codec_din"),
    "iso2": ("iso15118-2/V2G_CI_MsgDef.xsd", "codec_iso2"),
    "iso20-common": ("iso15118-20/V2G_CI_CommonMessages.xsd", "codec_iso20_common"),
    "iso20-ac": ("iso15118-20/V2G_CI_AC.xsd", "codec_iso20_ac"),
    "iso20-dc": ("iso15118-20/V2G_CI_DC.xsd", "codec_iso20_dc"),
    "iso20-wpt": ("iso15118-20/V2G_CI_WPT.xsd", "codec_iso20_wpt"),
    "iso20-acdp": ("iso15118-20/V2G_CI_ACDP.xsd", "codec_iso20_acdp"),
}


def module_of(namespace: str) -> str:
    """The generated types module that holds a namespace's classes."""
    if namespace == XMLDSIG:
        return "xmldsig"
    if namespace == "urn:iso:15118:2:2010:AppProtocol":
        return "apphand"
    if namespace.startswith("urn:din:70121:2012:"):
        return "din"
    if namespace.startswith("urn:iso:15118:2:2013:"):
        return "iso2"
    prefix = "urn:iso:std:iso:15118:-20:"
    if namespace.startswith(prefix):
        part = namespace[len(prefix) :]
        return {
            "CommonTypes": "iso20_common_types",
            "CommonMessages": "iso20_common_messages",
        }.get(part, "iso20_" + part.lower())
    raise SchemaError(f"no module for namespace {namespace}")


def identifier(token: str) -> str:
    """A Python identifier for an enumeration token or XML name."""
    name = re.sub(r"\W", "_", token)
    if name[:1].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or name in ("None", "True", "False"):
        name += "_"
    return name


def type_key(ct: ComplexType, owner: ElementDecl | None) -> QName:
    if ct.name is not None:
        return ct.name
    if owner is None:
        raise SchemaError("anonymous complex type without an element")
    return owner.name


@dataclass(slots=True, eq=False)
class FieldModel:
    py: str
    key: str  # JSON key: "@Name" for attributes, "#text" for simple content, else local name
    namespace: str
    kind: str  # "attribute" | "element" | "text"
    simple: SimpleType | None
    complex_key: QName | None
    min: int
    max: int  # UNBOUNDED for unbounded
    decls: list[ElementDecl] = field(default_factory=list)
    choice: int | None = None

    @property
    def is_list(self) -> bool:
        return self.max == UNBOUNDED or self.max > 1


@dataclass(slots=True, eq=False)
class ClassModel:
    key: QName
    module: str
    name: str
    fields: list[FieldModel]
    abstract: bool
    element: QName | None = None  # the unique global element of this type, if any
    has_wildcard: bool = False


def _mul(a: int, b: int) -> int:
    if a == UNBOUNDED or b == UNBOUNDED:
        return UNBOUNDED if (a and b) else 0
    return a * b


def _add(a: int, b: int) -> int:
    return UNBOUNDED if UNBOUNDED in (a, b) else a + b


class Collector:
    """Derives the fields of a complex type from its attributes and content model."""

    def __init__(self, schemas: SchemaSet, anon_owner: dict[int, ElementDecl]) -> None:
        self.schemas = schemas
        self.anon_owner = anon_owner

    def complex_key(self, t: ComplexType | SimpleType) -> QName | None:
        if isinstance(t, SimpleType):
            return None
        return type_key(t, self.anon_owner.get(id(t)))

    def fields(self, ct: ComplexType) -> tuple[list[FieldModel], bool]:
        out: list[FieldModel] = []
        for attr in sorted(ct.attributes, key=lambda a: (a.name[1], a.name[0])):
            out.append(
                FieldModel(
                    identifier(attr.name[1]),
                    "@" + attr.name[1],
                    attr.name[0],
                    "attribute",
                    attr.type,
                    None,
                    1 if attr.required else 0,
                    1,
                )
            )
        wildcard = False
        if ct.simple_content is not None:
            out.append(FieldModel("value", "#text", "", "text", ct.simple_content, None, 1, 1))
        elif ct.particle is not None:
            by_name: dict[QName, FieldModel] = {}
            self.choices = 0
            wildcard = self._walk(ct.particle, 1, 1, False, None, by_name)
            names = {f.py for f in out}
            for fm in by_name.values():
                if fm.py in names:
                    raise SchemaError(f"{ct.name}: attribute and element both named {fm.py}")
                out.append(fm)
        return out, wildcard

    def _walk(
        self,
        p: Particle,
        lo: int,
        hi: int,
        optional: bool,
        choice: int | None,
        acc: dict[QName, FieldModel],
    ) -> bool:
        """Collect the fields of particle `p` into `acc`.  `choice` numbers the xs:choice
        (or substitution group) whose alternatives are single elements: at most one of its
        fields may be set; alternatives that are sequences leave their fields unnumbered."""
        lo = 0 if optional else _mul(lo, p.min)
        hi = _mul(hi, p.max)
        term = p.term
        if isinstance(term, Wildcard):
            return True
        if isinstance(term, ModelGroup):
            is_choice = term.kind == "choice" and len(term.particles) > 1
            if is_choice and choice is None:
                choice = self._new_choice()
            found = False
            if not is_choice:
                for child in term.particles:
                    found |= self._walk(child, lo, hi, optional, choice, acc)
                return found
            # one alternative at a time: an element in several alternatives occurs as often
            # as in the one that has it most, not the sum
            merged: dict[QName, FieldModel] = {}
            for child in term.particles:
                branch: dict[QName, FieldModel] = {}
                single = isinstance(child.term, ElementDecl)
                found |= self._walk(child, lo, hi, True, choice if single else None, branch)
                for name, fm in branch.items():
                    _merge(merged, name, fm, _max)
            for name, fm in merged.items():
                _merge(acc, name, fm, _add)
            return found
        decls = self.schemas.substitutes(term) if term.is_global else [term]
        if len(decls) > 1 and choice is None:
            choice = self._new_choice()
        for decl in decls:
            self._add(decl, 0 if len(decls) > 1 else lo, hi, acc)
            acc[decl.name].choice = choice
        return False

    def _new_choice(self) -> int:
        self.choices += 1
        return self.choices - 1

    def _add(self, decl: ElementDecl, lo: int, hi: int, acc: dict[QName, FieldModel]) -> None:
        simple = decl.type if isinstance(decl.type, SimpleType) else None
        fm = FieldModel(
            identifier(decl.name[1]),
            decl.name[1],
            decl.name[0],
            "element",
            simple,
            self.complex_key(decl.type),
            lo,
            hi,
            [decl],
        )
        _merge(acc, decl.name, fm, _add)


def _max(a: int, b: int) -> int:
    return UNBOUNDED if UNBOUNDED in (a, b) else max(a, b)


def _merge(
    acc: dict[QName, FieldModel], name: QName, fm: FieldModel, combine: Callable[[int, int], int]
) -> None:
    """Add field `fm` to `acc`; an element met again has its occurrences combined."""
    existing = acc.get(name)
    if existing is None:
        acc[name] = fm
        return
    if existing.complex_key != fm.complex_key or (existing.simple is None) != (fm.simple is None):
        raise SchemaError(f"element {name} appears twice with different types")
    existing.min = 0
    existing.max = combine(existing.max, fm.max)
    existing.decls += fm.decls


@dataclass(slots=True, eq=False)
class LoadedSet:
    name: str
    schemas: SchemaSet
    codec_module: str
    anon_owner: dict[int, ElementDecl]
    complex_types: dict[QName, ComplexType]  # by type key


def load_set(name: str, schema_dir: Path) -> LoadedSet:
    root, codec = SCHEMA_SETS[name]
    schemas = SchemaSet(schema_dir / root)
    anon_owner: dict[int, ElementDecl] = {}
    types: dict[QName, ComplexType] = dict(schemas.complex_types)
    for decl in schemas.all_element_declarations():
        if isinstance(decl.type, ComplexType) and decl.type.name is None:
            anon_owner[id(decl.type)] = decl
            key = type_key(decl.type, decl)
            if key in types and types[key] is not decl.type:
                raise SchemaError(f"two anonymous types for element {key}")
            types[key] = decl.type
    return LoadedSet(name, schemas, codec, anon_owner, types)
