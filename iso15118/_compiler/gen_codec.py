"""Emits one codec module per schema set: a decode and an encode function per complex type
(gen_functions.py) plus the document and fragment entry tables."""

from __future__ import annotations

import re

from .chunks import ReadBits, WriteBits, flush_reads, flush_writes, table_definitions
from .gen_functions import FunctionWriter, _indent, alias_definitions, encoder_epilogue
from .gen_types import HEADER, enum_name
from .model import ClassModel, LoadedSet, module_of
from .xsd import ComplexType, ElementDecl, QName, SimpleType

_IND = "    "
_SCALAR_TAG = {"boolean": "bool", "integer": "int", "base64Binary": "bytes", "hexBinary": "bytes"}


class CodecWriter(FunctionWriter):
    def __init__(self, loaded: LoadedSet, classes: dict[QName, ClassModel]) -> None:
        super().__init__(loaded, classes)
        self.simple_roots: dict[int, tuple[str, SimpleType]] = {}

    # -- entry points -------------------------------------------------------------------------
    def simple_root(self, decl: ElementDecl) -> tuple[str, str]:
        assert isinstance(decl.type, SimpleType)
        st = decl.type
        name = f"_v{len(self.simple_roots)}"
        if id(st) in self.simple_roots:
            name = self.simple_roots[id(st)][0]
        else:
            self.simple_roots[id(st)] = (name, st)
        return f"_d{name}", f"_e{name}"

    def simple_root_functions(self) -> list[str]:
        """Entry functions for simple-typed elements (CH, the value, EE)."""
        out: list[str] = []
        for name, st in self.simple_roots.values():
            reads = [
                ReadBits(1, "CH", expect=0),
                *self.read_value(st, "v = {v}", "value"),
                ReadBits(1, "EE", expect=0),
            ]
            out.append(f"def _d{name}(r: BitReader, c: int) -> object:")
            body = ["win = r.win", "av = r.avail", *flush_reads(reads, "value"), "r.avail = av"]
            out += [*_indent(body), f"{_IND}return v", ""]
            out.append(f"def _e{name}(w: BitWriter, o: Any) -> None:")
            writes = [WriteBits(1, 0), *self.write_value(st, "o", "value", []), WriteBits(1, 0)]
            body = ["a = w.acc", "k = w.n", *flush_writes(writes), *encoder_epilogue()]
            out += [*_indent(body), ""]
        return out

    def entries(self, decls: list[ElementDecl], label: str) -> tuple[list[str], int]:
        """A table of (namespace, name, decoder, encoder, kind) in event-code order, and
        the bits each decoder wants read ahead (see chunks.ReadCall)."""
        rows = []
        leads = []
        for decl in decls:
            leads.append(0)
            if isinstance(decl.type, ComplexType):
                k = self.key_of(decl.type)
                dec, enc = self.fn(k, "d"), self.fn(k, "e")
                kind = self.cls_ref(k)
                leads[-1] = self.entry_lead(decl.type)
            else:
                dec, enc = self.simple_root(decl)
                st = decl.type
                kind = (
                    f"_{module_of(st.enum_owner.name[0])}.{enum_name(st)}"
                    if st.enum_owner is not None and st.enum_owner.name is not None
                    else repr(_SCALAR_TAG.get(st.primitive, "str"))
                )
            rows.append(f"    ({decl.name[0]!r}, {decl.name[1]!r}, {dec}, {enc}, {kind}),")
        lead_rows = [
            "    " + " ".join(f"{n}," for n in leads[i : i + 24]) for i in range(0, len(leads), 24)
        ]
        table = [f"{label}: EntryTable = (", *rows, ")", ""]
        return [*table, f"{label}_LEADS: tuple[int, ...] = (", *lead_rows, ")"], len(decls)


def type_functions(loaded: LoadedSet, classes: dict[QName, ClassModel]) -> dict[QName, str]:
    """The decode and encode functions of every complex type of the set, as text."""
    w = CodecWriter(loaded, classes)
    out = {}
    for key, ct in loaded.complex_types.items():
        g = w.grammar(ct)
        out[key] = "\n".join([*w.decode_function(ct, g), "", *w.encode_function(ct, g), ""])
    return out


def shared_functions(sets: list[LoadedSet], classes: dict[QName, ClassModel]) -> dict[QName, str]:
    """Types whose functions come out the same in every schema set that has them (xmldsig,
    most of CommonTypes), and call only functions that are shared too (so a call means the
    same function everywhere): type -> the codec module that holds them, the first such set.
    The other sets import them."""
    texts: dict[QName, list[tuple[str, str]]] = {}
    for loaded in sets:
        for key, text in type_functions(loaded, classes).items():
            texts.setdefault(key, []).append((loaded.codec_module, text))
    shared = {
        key: found[0][0]
        for key, found in texts.items()
        if len(found) > 1 and len({text for _module, text in found}) == 1
    }
    name_of = {f"{cm.module}_{cm.name}": key for key, cm in classes.items()}
    changed = True
    while changed:  # a shared function must not call one that differs between the sets
        changed = False
        for key in list(shared):
            calls = re.findall(r"\b_[de]_(\w+)\(", texts[key][0][1])
            if any(name_of.get(c, key) not in shared for c in calls):
                del shared[key]
                changed = True
    return shared


def generate_codec_module(
    loaded: LoadedSet, classes: dict[QName, ClassModel], shared: dict[QName, str]
) -> str:
    w = CodecWriter(loaded, classes)
    functions: list[str] = []
    imported: dict[str, str] = {}  # function name -> module
    for key in sorted(loaded.complex_types, key=lambda q: (q[0], q[1])):
        home = shared.get(key, loaded.codec_module)
        if home != loaded.codec_module:
            imported[w.fn(key, "d")] = imported[w.fn(key, "e")] = home
            continue
        ct = loaded.complex_types[key]
        g = w.grammar(ct)
        functions += [*w.decode_function(ct, g), "", *w.encode_function(ct, g), ""]
    schemas = loaded.schemas
    globals_sorted = sorted(schemas.elements.values(), key=lambda d: (d.name[1], d.name[0]))
    doc_rows, n_doc = w.entries(globals_sorted, "DOCUMENT")
    fragment_decls = _fragment_declarations(loaded)
    frag_rows, n_frag = w.entries(fragment_decls, "FRAGMENT")
    roots = w.simple_root_functions()
    out = [
        HEADER,
        f'"""EXI codec for the {loaded.name} schema set (non-strict, bit-packed)."""\n',
        "from __future__ import annotations\n",
        "from collections.abc import Callable",
        "from typing import Any\n",
    ]
    for mod in sorted(w.modules):
        out.append(f"from exi_schemas import {mod} as _{mod}")
    used = set(re.findall(r"\b_[de]_\w+", "\n".join([*functions, *doc_rows, *frag_rows])))
    for home in sorted(set(imported.values())):
        names = sorted((n for n in used if imported.get(n) == home), key=str.lower)  # as isort
        if names:
            lines = "".join(f"    {name},\n" for name in names)
            out.append(f"from exi_schemas.{home} import (\n{lines})")
    tables = table_definitions("\n".join([*functions, *roots]))
    helpers = "BitReader, BitWriter, encode_error" + (", run_table" if tables else "")
    out.append(f"from iso15118.exi._bits import {helpers}\n")
    out.append("_new = object.__new__")
    out.append("_BOOL = {False: 0, True: 1}")
    out.append(
        "_U2 = tuple((i << 7) - 128 for i in range(128))  # adds a second octet to the first\n"
    )
    out.append("EntryTable = tuple[")
    decoder, encoder = "Callable[[BitReader, int], Any]", "Callable[[BitWriter, Any], None]"
    out.append("    tuple[")
    out.append(f"        str, str, {decoder}, {encoder}, object")
    out.append("    ],")
    out.append("    ...,")
    out.append("]")
    out.append(f"DOCUMENT_WIDTH = {n_doc.bit_length()}  # {n_doc} global elements + SE(*)")
    out.append(f"FRAGMENT_WIDTH = {(n_frag + 1).bit_length()}  # {n_frag} elements + SE(*) + ED")
    out.append("")
    for name, st in sorted(w.enum_tables.items()):
        owner = st.enum_owner
        assert owner is not None and owner.name is not None
        ref = f"_{module_of(owner.name[0])}.{enum_name(st)}"
        out.append(f"_E_{name} = tuple({ref})")
        out.append(f"_I_{name} = {{m: i for i, m in enumerate(_E_{name})}}")
    out += tables
    out += alias_definitions("\n".join(functions))
    out.append("\n")
    out += functions
    out += roots
    out += [*doc_rows, "", *frag_rows]
    return "\n".join(out) + "\n"


def _fragment_declarations(loaded: LoadedSet) -> list[ElementDecl]:
    """Every element name declared in the schema set, once, sorted by local name then URI
    (EXI 1.0 section 8.5.3).  Where one name has several types, the declaration that
    carries an Id attribute (the signable one), else the global one, is used."""
    by_name: dict[QName, list[ElementDecl]] = {}
    for decl in loaded.schemas.all_element_declarations():
        by_name.setdefault(decl.name, []).append(decl)
    chosen = []
    for decls in by_name.values():

        def rank(d: ElementDecl) -> tuple[int, int]:
            has_id = isinstance(d.type, ComplexType) and any(
                a.name[1] == "Id" for a in d.type.attributes
            )
            return (0 if has_id else 1, 0 if d.is_global else 1)

        chosen.append(min(decls, key=rank))
    return sorted(chosen, key=lambda d: (d.name[1], d.name[0]))
