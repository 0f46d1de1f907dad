"""Schema-informed EXI for ISO 15118 (EXI 1.0 with the V2G profile).

    >>> from iso15118 import exi
    >>> message = exi.decode("iso2", data)
    >>> exi.encode("iso2", message) == data
    True

Schemas: appHand, din, iso2, iso20-common, iso20-ac, iso20-dc, iso20-wpt, iso20-acdp, and
xmldsig (for SignedInfo fragments).  Messages are the generated dataclasses of
`exi_schemas`; a root element whose type does not name it uniquely comes as `Element`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._bits import AHEAD, BitReader, BitWriter
from ._check import find_type_error
from ._json import from_json_element, to_json_value, to_xml_element
from .errors import ExiDecodeError, ExiEncodeError, ExiError

__all__ = [
    "SCHEMAS",
    "Element",
    "ExiDecodeError",
    "ExiEncodeError",
    "ExiError",
    "decode",
    "decode_fragment",
    "encode",
    "encode_fragment",
    "from_json",
    "from_json_fragment",
    "to_json",
    "to_xml",
]

SCHEMAS: tuple[str, ...] = (
    "appHand",
    "din",
    "iso2",
    "iso20-common",
    "iso20-ac",
    "iso20-dc",
    "iso20-wpt",
    "iso20-acdp",
    "xmldsig",
)

EXI_HEADER = 0x80  # distinguishing bits 10, no options, format version 1


@dataclass(frozen=True, slots=True)
class Element:
    """A root element whose name the value's class does not tell (a simple-typed element,
    or a type shared by several elements)."""

    namespace: str
    name: str
    value: Any


class _Codec:
    """The generated codec of one schema set, with name lookups built once."""

    def __init__(self, schema: str) -> None:
        from exi_schemas import SCHEMA_CODECS

        module: ModuleType = importlib.import_module("exi_schemas." + SCHEMA_CODECS[schema])
        self.schema = schema
        self.document = module.DOCUMENT
        self.fragment = module.FRAGMENT
        self.document_leads: tuple[int, ...] = module.DOCUMENT_LEADS
        self.fragment_leads: tuple[int, ...] = module.FRAGMENT_LEADS
        self.document_width: int = module.DOCUMENT_WIDTH
        self.fragment_width: int = module.FRAGMENT_WIDTH
        self.document_index = {(ns, n): i for i, (ns, n, *_rest) in enumerate(self.document)}
        self.fragment_index = {(ns, n): i for i, (ns, n, *_rest) in enumerate(self.fragment)}
        self.document_by_local = _by_local(self.document)
        self.fragment_by_local = _by_local(self.fragment)


def _by_local(table: Any) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, (_ns, name, *_rest) in enumerate(table):
        out.setdefault(name, []).append(i)
    return out


_CODECS: dict[str, _Codec] = {}


def _codec(schema: str) -> _Codec:
    codec = _CODECS.get(schema)
    if codec is None:
        if schema not in SCHEMAS:
            raise ValueError(f"unknown schema {schema!r}; choose from {', '.join(SCHEMAS)}")
        codec = _CODECS[schema] = _Codec(schema)
    return codec


def _wrap(namespace: str, name: str, value: Any) -> Any:
    element = getattr(type(value), "_exi_element_", None)
    if element == (namespace, name):
        return value
    return Element(namespace, name, value)


def _root_of(message: Any) -> tuple[tuple[str, str], Any]:
    if isinstance(message, Element):
        return (message.namespace, message.name), message.value
    element = getattr(type(message), "_exi_element_", None)
    if element is None:
        raise ExiEncodeError(
            f"{type(message).__name__} is not the type of exactly one global element; "
            "wrap it in exi.Element(namespace, name, value)"
        )
    return element, message


def _decode(data: bytes, table: Any, leads: tuple[int, ...], width: int, fragment: bool) -> Any:
    r: BitReader | None = None
    try:
        r = BitReader(data)
        # the header, the first event code, and the bits its decoder reads first (which
        # the decoder wants read ahead, see iso15118._compiler.chunks.ReadCall)
        head = r.ahead(8 + width + AHEAD)
        if r.end < 8 + width:
            raise ExiDecodeError("unexpected end of stream", bit_offset=r.end, position="")
        code = (head >> AHEAD) & ((1 << width) - 1)
        if head >> (width + AHEAD) != EXI_HEADER:
            r.pos = 0
            raise r.fail("header", "not an EXI stream with header 0x80 (no options, version 1)")
        if code >= len(table):
            what = "fragment" if fragment else "document"
            r.pos = 8 + width
            raise r.fail(what, f"event code {code} is not an element the {what} grammar knows")
        namespace, name, decoder, *_rest = table[code]
        lead = leads[code]
        r.avail += AHEAD - lead
        value = decoder(r, (head >> (AHEAD - lead)) & ((1 << lead) - 1))
        # a fragment ends with ED, after SE(*); a document's ED has a 0-bit event code
        if fragment and r.bits(width) != len(table) + 1:
            raise r.fail("fragment", "expected the end of the fragment (one element only)")
        r.finish(f"after {name}")
    except ExiDecodeError:
        raise
    except (IndexError, ValueError, TypeError, KeyError, RecursionError) as exc:
        offset = r.pos if r is not None else 0
        raise ExiDecodeError(f"malformed stream ({exc})", bit_offset=offset) from None
    return _wrap(namespace, name, value)


def decode(schema: str, data: bytes) -> Any:
    """Decode one EXI document (the V2GTP payload, starting with the 0x80 header)."""
    codec = _codec(schema)
    return _decode(data, codec.document, codec.document_leads, codec.document_width, False)


def encode(schema: str, message: Any, *, strict: bool = True) -> bytes:
    """Encode a message (or an `Element`) as an EXI document with header 0x80.

    Every facet is enforced; with `strict=False` values shorter than their minLength or
    length facet, or outside their range, are let through (to re-encode exactly what a peer
    sent)."""
    codec = _codec(schema)
    return _encode(codec.document, codec.document_index, codec.document_width, message, strict)


def _encode(
    table: Any,
    index: dict[tuple[str, str], int],
    width: int,
    message: Any,
    strict: bool,
    fragment: bool = False,
) -> bytes:
    qname, value = _root_of(message)
    code = index.get(qname)
    if code is None:
        what = "an element" if fragment else "a global element"
        raise ExiEncodeError(f"{qname[1]} is not {what} of this schema")
    w = BitWriter(strict)
    w.bits(EXI_HEADER << width | code, 8 + width)
    encoder = table[code][3]
    try:
        encoder(w, value)
    except ExiEncodeError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, OverflowError) as exc:
        problem = find_type_error(value, qname[1])
        raise ExiEncodeError(problem or f"{qname[1]}: invalid value ({exc!r})") from None
    if fragment:
        w.bits(len(table) + 1, width)  # ED comes after SE(*)
    return w.getvalue()


def decode_fragment(schema: str, data: bytes) -> Any:
    """Decode an EXI fragment holding one element, as XML signatures digest them."""
    codec = _codec(schema)
    return _decode(data, codec.fragment, codec.fragment_leads, codec.fragment_width, True)


def encode_fragment(schema: str, message: Any, *, strict: bool = True) -> bytes:
    """Encode one element as an EXI fragment (for signature digests)."""
    codec = _codec(schema)
    return _encode(
        codec.fragment, codec.fragment_index, codec.fragment_width, message, strict, True
    )


def to_json(message: Any) -> dict[str, Any]:
    """The message as the corpus JSON shape: {root element name: content}."""
    qname, value = _root_of(message)
    return {qname[1]: to_json_value(value)}


def to_xml(message: Any) -> str:
    """The message as indented XML, for people."""
    qname, value = _root_of(message)
    return to_xml_element(qname, value)


def _from_json(table: Any, by_local: dict[str, list[int]], schema: str, obj: Any) -> Any:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ExiEncodeError("expected a JSON object with exactly one root element")
    ((name, content),) = obj.items()
    candidates = by_local.get(name, [])
    if len(candidates) != 1:
        raise ExiEncodeError(f"{name!r} is not an unambiguous element of schema {schema}")
    namespace, _name, _decoder, _encoder, kind = table[candidates[0]]
    value = from_json_element(kind, content, name)
    return _wrap(namespace, name, value)


def from_json(schema: str, obj: Any) -> Any:
    """Build a message from the corpus JSON shape (inverse of `to_json`)."""
    codec = _codec(schema)
    return _from_json(codec.document, codec.document_by_local, schema, obj)


def from_json_fragment(schema: str, obj: Any) -> Any:
    """Like `from_json` for any element the fragment grammar knows (local ones included)."""
    codec = _codec(schema)
    return _from_json(codec.fragment, codec.fragment_by_local, schema, obj)
