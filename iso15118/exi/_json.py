"""Conversion between message objects and the corpus JSON shape (and XML for people).

JSON shape: XML local names as keys in schema order, attributes as "@name", simple content
of an element with attributes as "#text", lists exactly where the schema's maxOccurs > 1,
binary as lowercase hex, enumerations as their XML tokens.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from enum import Enum
from typing import Any

from .errors import ExiEncodeError

_SCALARS = {"int": int, "str": str, "bool": bool, "bytes": bytes}


def to_json_value(value: Any) -> Any:
    fields = getattr(type(value), "_exi_fields_", None)
    if fields is None:
        return _scalar_to_json(value)
    out: dict[str, Any] = {}
    for py, key, _ns, is_list, *_rest in fields:
        item = getattr(value, py)
        if item is None or (is_list and not item):
            continue
        out[key] = [to_json_value(x) for x in item] if is_list else to_json_value(item)
    return out


def _scalar_to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.value
    return value


def from_json_element(kind: Any, content: Any, path: str) -> Any:
    """Build a value of `kind` (a generated class, an enum class or a scalar tag)."""
    if isinstance(kind, str):
        return _scalar_from_json(kind, content, path)
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(content)
        except ValueError:
            tokens = ", ".join(str(m.value) for m in kind)
            raise ExiEncodeError(f"{path}: {content!r} is not one of {tokens}") from None
    if not isinstance(content, dict):
        raise ExiEncodeError(f"{path}: expected an object, got {type(content).__name__}")
    fields = kind._exi_fields_
    known = {f.key for f in fields}
    unknown = set(content) - known
    if unknown:
        raise ExiEncodeError(f"{path}: unknown member(s) {', '.join(sorted(unknown))}")
    args: dict[str, Any] = {}
    for py, key, _ns, is_list, conv, *_rest in fields:
        if key not in content:
            continue
        item = content[key]
        where = f"{path}.{key}"
        if is_list:
            if not isinstance(item, list):
                raise ExiEncodeError(f"{where}: expected a list")
            args[py] = [from_json_element(conv, x, f"{where}[{i}]") for i, x in enumerate(item)]
        else:
            args[py] = from_json_element(conv, item, where)
    try:
        return kind(**args)
    except TypeError as exc:
        raise ExiEncodeError(f"{path}: {exc}") from None


def _scalar_from_json(tag: str, content: Any, path: str) -> Any:
    if tag == "bytes":
        if not isinstance(content, str):
            raise ExiEncodeError(f"{path}: expected a hex string")
        try:
            return bytes.fromhex(content)
        except ValueError:
            raise ExiEncodeError(f"{path}: {content!r} is not hex") from None
    expected = _SCALARS[tag]
    if type(content) is not expected:
        raise ExiEncodeError(f"{path}: expected {tag}, got {type(content).__name__}")
    return content


def to_xml_element(qname: tuple[str, str], value: Any) -> str:
    root = _xml(qname, value, "")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def _xml(qname: tuple[str, str], value: Any, parent_ns: str) -> ET.Element:
    ns, name = qname
    element = ET.Element(name)
    if ns != parent_ns:
        element.set("xmlns", ns)
    fields = getattr(type(value), "_exi_fields_", None)
    if fields is None:
        element.text = _xml_text(value)
        return element
    for py, key, child_ns, is_list, *_rest in fields:
        item = getattr(value, py)
        if item is None:
            continue
        if key.startswith("@"):
            element.set(key[1:], _xml_text(item))
        elif key == "#text":
            element.text = _xml_text(item)
        else:
            for x in item if is_list else [item]:
                element.append(_xml((child_ns, key), x, ns))
    return element


def _xml_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
