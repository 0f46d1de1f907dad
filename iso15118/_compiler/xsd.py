"""A reader for the subset of XML Schema 1.0 that the V2G schemas use.

It resolves one schema set (a root XSD and everything it imports) into components:
global and local element declarations, complex and simple types, attribute uses,
model groups and wildcards.  Only what EXI grammar construction needs is kept.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

XS = "http://www.w3.org/2001/XMLSchema"
UNBOUNDED = -1

QName = tuple[str, str]  # (namespace URI, local name)


class SchemaError(Exception):
    """The schema uses a construct this compiler does not support, or is inconsistent."""


@dataclass(slots=True)
class Facets:
    enumeration: list[str] | None = None
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_inclusive: int | None = None
    max_inclusive: int | None = None
    pattern: str | None = None


@dataclass(slots=True, eq=False)
class SimpleType:
    name: QName | None
    primitive: str  # boolean, integer, decimal, float, string, base64Binary, hexBinary, ...
    builtin: str  # the nearest built-in ancestor (e.g. unsignedShort)
    facets: Facets
    base: SimpleType | None = None
    # set for enumerations: the type that declares the enumeration facet
    enum_owner: SimpleType | None = None


@dataclass(slots=True, eq=False)
class AttributeUse:
    name: QName
    type: SimpleType
    required: bool


@dataclass(slots=True, eq=False)
class Wildcard:
    namespaces: str  # "##any", "##other" or a list of URIs


@dataclass(slots=True, eq=False)
class Particle:
    min: int
    max: int  # UNBOUNDED for unbounded
    term: ElementDecl | ModelGroup | Wildcard


@dataclass(slots=True, eq=False)
class ModelGroup:
    kind: str  # "sequence" | "choice"
    particles: list[Particle]


@dataclass(slots=True, eq=False)
class ComplexType:
    name: QName | None
    abstract: bool = False
    mixed: bool = False
    attributes: list[AttributeUse] = field(default_factory=list)
    # exactly one of these describes the content
    particle: Particle | None = None  # element-only or mixed content
    simple_content: SimpleType | None = None
    resolved: bool = False
    raw: tuple[object, ET.Element] | None = None  # the XSD node, until resolved


@dataclass(slots=True, eq=False)
class ElementDecl:
    name: QName
    type: ComplexType | SimpleType
    is_global: bool
    abstract: bool = False
    substitution_head: QName | None = None


# Built-in simple types: name -> (primitive, parent built-in, min, max)
_INT_BOUNDS: dict[str, tuple[str, int | None, int | None]] = {
    "integer": ("decimal", None, None),
    "nonPositiveInteger": ("integer", None, 0),
    "negativeInteger": ("nonPositiveInteger", None, -1),
    "long": ("integer", -(2**63), 2**63 - 1),
    "int": ("long", -(2**31), 2**31 - 1),
    "short": ("int", -(2**15), 2**15 - 1),
    "byte": ("short", -128, 127),
    "nonNegativeInteger": ("integer", 0, None),
    "unsignedLong": ("nonNegativeInteger", 0, 2**64 - 1),
    "unsignedInt": ("unsignedLong", 0, 2**32 - 1),
    "unsignedShort": ("unsignedInt", 0, 2**16 - 1),
    "unsignedByte": ("unsignedShort", 0, 255),
    "positiveInteger": ("nonNegativeInteger", 1, None),
}
_STRINGS = [
    "string",
    "normalizedString",
    "token",
    "language",
    "Name",
    "NCName",
    "ID",
    "IDREF",
    "IDREFS",
    "ENTITY",
    "ENTITIES",
    "NMTOKEN",
    "NMTOKENS",
    "anyURI",
    "QName",
    "NOTATION",
    "anySimpleType",
]
_OTHER_PRIMITIVES = [
    "boolean",
    "decimal",
    "float",
    "double",
    "base64Binary",
    "hexBinary",
    "dateTime",
    "time",
    "date",
    "gYearMonth",
    "gYear",
    "gMonthDay",
    "gDay",
    "gMonth",
    "duration",
]


def _builtin_types() -> dict[str, SimpleType]:
    out: dict[str, SimpleType] = {}
    for name in _OTHER_PRIMITIVES:
        out[name] = SimpleType((XS, name), name, name, Facets())
    for name in _STRINGS:
        out[name] = SimpleType((XS, name), "string", name, Facets())
    for name, (_parent, lo, hi) in _INT_BOUNDS.items():
        out[name] = SimpleType(
            (XS, name), "integer", name, Facets(min_inclusive=lo, max_inclusive=hi)
        )
    return out


def _occurs(node: ET.Element, attr: str) -> int:
    value = node.get(attr, "1")
    return UNBOUNDED if value == "unbounded" else int(value)


class _Document:
    """One parsed XSD file with its namespace context."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.prefixes: dict[str, str] = {}
        for _event, (prefix, uri) in ET.iterparse(path, events=["start-ns"]):
            self.prefixes.setdefault(prefix, uri)
        self.root = ET.parse(path).getroot()
        self.target = self.root.get("targetNamespace", "")
        self.element_qualified = self.root.get("elementFormDefault") == "qualified"
        self.attribute_qualified = self.root.get("attributeFormDefault") == "qualified"

    def resolve(self, ref: str) -> QName:
        prefix, _, local = ref.rpartition(":")
        return (self.prefixes.get(prefix, ""), local)


def _tag(node: ET.Element) -> str:
    return node.tag.rpartition("}")[2] if node.tag.startswith("{" + XS) else "?" + node.tag


class SchemaSet:
    """All components reachable from one root XSD (following xs:import)."""

    def __init__(self, root: Path) -> None:
        self.documents: list[_Document] = []
        self.elements: dict[QName, ElementDecl] = {}
        self.complex_types: dict[QName, ComplexType] = {}
        self.simple_types: dict[QName, SimpleType] = {
            t.name: t for t in _builtin_types().values() if t.name
        }
        self.local_elements: list[ElementDecl] = []
        self._raw_types: dict[QName, tuple[_Document, ET.Element]] = {}
        self._raw_elements: dict[QName, tuple[_Document, ET.Element]] = {}
        self._load(root.resolve(), set())
        for qname in list(self._raw_types):
            self._type(qname)
        for qname in list(self._raw_elements):
            self._global_element(qname)
        for ct in list(self.complex_types.values()):
            self._finish_complex(ct)
        self.namespaces = sorted({d.target for d in self.documents})

    # -- loading ----------------------------------------------------------------------------
    def _load(self, path: Path, seen: set[Path]) -> None:
        if path in seen:
            return
        seen.add(path)
        doc = _Document(path)
        self.documents.append(doc)
        for node in doc.root:
            tag = _tag(node)
            if tag in ("import", "include"):
                location = node.get("schemaLocation")
                if location:
                    self._load((path.parent / location).resolve(), seen)
            elif tag in ("complexType", "simpleType"):
                self._raw_types[(doc.target, node.get("name", ""))] = (doc, node)
            elif tag == "element":
                self._raw_elements[(doc.target, node.get("name", ""))] = (doc, node)
            elif tag in ("annotation",) or tag.startswith("?"):
                pass
            else:
                raise SchemaError(f"{path.name}: unsupported top-level <{tag}>")

    # -- types --------------------------------------------------------------------------------
    def _type(self, qname: QName) -> ComplexType | SimpleType:
        if qname in self.simple_types:
            return self.simple_types[qname]
        if qname in self.complex_types:
            return self.complex_types[qname]
        if qname == (XS, "anyType"):
            raise SchemaError("xs:anyType is not supported")
        if qname not in self._raw_types:
            raise SchemaError(f"unknown type {qname}")
        doc, node = self._raw_types[qname]
        if _tag(node) == "simpleType":
            st = self._simple(doc, node, qname)
            self.simple_types[qname] = st
            return st
        ct = ComplexType(qname, abstract=node.get("abstract") == "true")
        self.complex_types[qname] = ct
        self._complex_body(doc, node, ct)
        return ct

    def _simple(self, doc: _Document, node: ET.Element, name: QName | None) -> SimpleType:
        children = [c for c in node if _tag(c) != "annotation"]
        if len(children) != 1 or _tag(children[0]) != "restriction":
            raise SchemaError(f"{doc.path.name}: simple type {name}: only restriction supported")
        restriction = children[0]
        base_ref = restriction.get("base")
        if base_ref is None:
            raise SchemaError(f"{doc.path.name}: simple type {name}: anonymous base")
        base = self._type(doc.resolve(base_ref))
        if not isinstance(base, SimpleType):
            raise SchemaError(f"simple type {name} restricts a complex type")
        facets = Facets(
            enumeration=None,
            length=base.facets.length,
            min_length=base.facets.min_length,
            max_length=base.facets.max_length,
            min_inclusive=base.facets.min_inclusive,
            max_inclusive=base.facets.max_inclusive,
            pattern=base.facets.pattern,
        )
        enums: list[str] = []
        for facet in restriction:
            tag, value = _tag(facet), facet.get("value", "")
            if tag == "enumeration":
                enums.append(value)
            elif tag == "length":
                facets.length = int(value)
            elif tag == "minLength":
                facets.min_length = int(value)
            elif tag == "maxLength":
                facets.max_length = int(value)
            elif tag == "minInclusive":
                facets.min_inclusive = int(value)
            elif tag == "maxInclusive":
                facets.max_inclusive = int(value)
            elif tag == "minExclusive":
                facets.min_inclusive = int(value) + 1
            elif tag == "maxExclusive":
                facets.max_inclusive = int(value) - 1
            elif tag == "pattern":
                facets.pattern = value
            elif tag in ("annotation", "whiteSpace"):
                pass
            else:
                raise SchemaError(f"simple type {name}: unsupported facet {tag}")
        st = SimpleType(name, base.primitive, base.builtin, facets, base)
        if enums:
            facets.enumeration = enums
            st.enum_owner = st
        elif base.enum_owner is not None:
            facets.enumeration = base.facets.enumeration
            st.enum_owner = base.enum_owner
        return st

    def _type_of(self, doc: _Document, node: ET.Element) -> ComplexType | SimpleType:
        ref = node.get("type")
        if ref is not None:
            return self._type(doc.resolve(ref))
        for child in node:
            if _tag(child) == "complexType":
                ct = ComplexType(None, mixed=child.get("mixed") == "true")
                self._complex_body(doc, child, ct)
                self._finish_complex(ct)
                return ct
            if _tag(child) == "simpleType":
                return self._simple(doc, child, None)
        return self._type((XS, "anySimpleType"))

    def _complex_body(self, doc: _Document, node: ET.Element, ct: ComplexType) -> None:
        ct.mixed = ct.mixed or node.get("mixed") == "true"
        ct.raw = (doc, node)

    def _finish_complex(self, ct: ComplexType) -> None:
        if ct.resolved:
            return
        ct.resolved = True
        assert ct.raw is not None
        raw_doc, node = ct.raw
        assert isinstance(raw_doc, _Document)
        doc = raw_doc
        particle: Particle | None = None
        for child in node:
            tag = _tag(child)
            if tag in ("sequence", "choice"):
                particle = self._particle(doc, child)
            elif tag == "attribute":
                ct.attributes.append(self._attribute(doc, child))
            elif tag == "complexContent":
                if child.get("mixed") == "true":
                    ct.mixed = True
                self._derive_complex(doc, child, ct)
                return
            elif tag == "simpleContent":
                self._derive_simple(doc, child, ct)
                return
            elif tag in ("annotation",):
                pass
            else:
                raise SchemaError(f"complex type {ct.name}: unsupported <{tag}>")
        ct.particle = particle

    def _derive_complex(self, doc: _Document, node: ET.Element, ct: ComplexType) -> None:
        (derivation,) = [c for c in node if _tag(c) != "annotation"]
        kind = _tag(derivation)
        base = self._type(doc.resolve(derivation.get("base", "")))
        if not isinstance(base, ComplexType):
            raise SchemaError(f"complex type {ct.name}: complexContent over a simple type")
        self._finish_complex(base)
        own: Particle | None = None
        attrs: list[AttributeUse] = []
        for child in derivation:
            tag = _tag(child)
            if tag in ("sequence", "choice"):
                own = self._particle(doc, child)
            elif tag == "attribute":
                attrs.append(self._attribute(doc, child))
            elif tag != "annotation":
                raise SchemaError(f"complex type {ct.name}: unsupported <{tag}> in {kind}")
        if kind == "extension":
            ct.attributes = list(base.attributes) + attrs
            ct.mixed = ct.mixed or base.mixed
            if base.particle is None:
                ct.particle = own
            elif own is None:
                ct.particle = base.particle
            else:
                ct.particle = Particle(1, 1, ModelGroup("sequence", [base.particle, own]))
        elif kind == "restriction":
            names = {a.name for a in attrs}
            ct.attributes = [a for a in base.attributes if a.name not in names] + attrs
            ct.particle = own
        else:
            raise SchemaError(f"complex type {ct.name}: unsupported derivation {kind}")

    def _derive_simple(self, doc: _Document, node: ET.Element, ct: ComplexType) -> None:
        (derivation,) = [c for c in node if _tag(c) != "annotation"]
        if _tag(derivation) != "extension":
            raise SchemaError(f"complex type {ct.name}: simpleContent restriction unsupported")
        base = self._type(doc.resolve(derivation.get("base", "")))
        if isinstance(base, ComplexType):
            self._finish_complex(base)
            if base.simple_content is None:
                raise SchemaError(f"complex type {ct.name}: simpleContent over complex content")
            ct.simple_content = base.simple_content
            ct.attributes = list(base.attributes)
        else:
            ct.simple_content = base
        for child in derivation:
            if _tag(child) == "attribute":
                ct.attributes.append(self._attribute(doc, child))

    def _attribute(self, doc: _Document, node: ET.Element) -> AttributeUse:
        if node.get("ref"):
            raise SchemaError("attribute references are not supported")
        ns = doc.target if (node.get("form") == "qualified" or doc.attribute_qualified) else ""
        st = self._type_of(doc, node)
        if not isinstance(st, SimpleType):
            raise SchemaError("attribute with complex type")
        return AttributeUse((ns, node.get("name", "")), st, node.get("use") == "required")

    # -- particles ----------------------------------------------------------------------------
    def _particle(self, doc: _Document, node: ET.Element) -> Particle:
        tag = _tag(node)
        lo, hi = _occurs(node, "minOccurs"), _occurs(node, "maxOccurs")
        if tag in ("sequence", "choice"):
            parts = [self._particle(doc, c) for c in node if _tag(c) != "annotation"]
            return Particle(lo, hi, ModelGroup(tag, parts))
        if tag == "any":
            return Particle(lo, hi, Wildcard(node.get("namespace", "##any")))
        if tag == "element":
            ref = node.get("ref")
            if ref is not None:
                return Particle(lo, hi, self._global_element(doc.resolve(ref)))
            ns = doc.target if (node.get("form") == "qualified" or doc.element_qualified) else ""
            decl = ElementDecl((ns, node.get("name", "")), self._type_of(doc, node), False)
            self.local_elements.append(decl)
            return Particle(lo, hi, decl)
        raise SchemaError(f"{doc.path.name}: unsupported particle <{tag}>")

    def _global_element(self, qname: QName) -> ElementDecl:
        if qname in self.elements:
            return self.elements[qname]
        if qname not in self._raw_elements:
            raise SchemaError(f"unknown element {qname}")
        doc, node = self._raw_elements[qname]
        head = node.get("substitutionGroup")
        decl = ElementDecl(
            qname,
            self._type((XS, "anySimpleType")),
            True,
            abstract=node.get("abstract") == "true",
            substitution_head=doc.resolve(head) if head else None,
        )
        self.elements[qname] = decl
        decl.type = self._type_of(doc, node)
        if head and node.get("type") is None and not [c for c in node if _tag(c) != "annotation"]:
            decl.type = self._global_element(doc.resolve(head)).type  # type inherited from head
        return decl

    # -- queries ------------------------------------------------------------------------------
    def substitutes(self, head: ElementDecl) -> list[ElementDecl]:
        """The head and all its transitive substitution-group members, sorted by local name
        then namespace (EXI 1.0 section 8.5.4.1.6).  Abstract heads keep their place in the
        list, as every deployed V2G codec does (ISO-2 BodyElement)."""
        members = [head]
        frontier = [head.name]
        while frontier:
            current = frontier.pop()
            for decl in self.elements.values():
                if decl.substitution_head == current:
                    frontier.append(decl.name)
                    members.append(decl)
        return sorted(members, key=lambda d: (d.name[1], d.name[0]))

    def all_element_declarations(self) -> list[ElementDecl]:
        return list(self.elements.values()) + self.local_elements
