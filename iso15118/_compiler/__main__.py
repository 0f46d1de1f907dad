"""Regenerate `exi_schemas/` from the XSDs: `python -m iso15118._compiler [--schemas DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gen_codec import generate_codec_module, shared_functions
from .gen_types import HEADER, generate_types_module
from .model import SCHEMA_SETS, ClassModel, Collector, LoadedSet, load_set, module_of
from .xsd import QName, SchemaError, SimpleType

DEFAULT_SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "exi_schemas"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "exi_schemas"

_DESCRIPTIONS = {
    "xmldsig": "W3C XML Signature (xmldsig-core-schema.xsd)",
    "apphand": "the SupportedAppProtocol handshake (urn:iso:15118:2:2010:AppProtocol)",
    "din": "DIN SPEC 70121:2012 (urn:din:70121:2012:*)",
    "iso2": "ISO 15118-2:2013 (urn:iso:15118:2:2013:*)",
    "iso20_common_types": "ISO 15118-20 CommonTypes",
    "iso20_common_messages": "ISO 15118-20 CommonMessages",
    "iso20_ac": "ISO 15118-20 AC",
    "iso20_dc": "ISO 15118-20 DC",
    "iso20_wpt": "ISO 15118-20 WPT",
    "iso20_acdp": "ISO 15118-20 ACDP",
}


def build_classes(sets: list[LoadedSet]) -> dict[QName, ClassModel]:
    """One class per complex type, shared by every schema set that includes it."""
    classes: dict[QName, ClassModel] = {}
    for loaded in sets:
        collector = Collector(loaded.schemas, loaded.anon_owner)
        for key, ct in loaded.complex_types.items():
            fields, wildcard = collector.fields(ct)
            if key in classes:
                known = [
                    (f.py, f.kind, f.is_list, f.min, f.complex_key) for f in classes[key].fields
                ]
                if known != [(f.py, f.kind, f.is_list, f.min, f.complex_key) for f in fields]:
                    raise SchemaError(f"{key} has different content in schema set {loaded.name}")
                continue
            classes[key] = ClassModel(
                key, module_of(key[0]), key[1], fields, ct.abstract, None, wildcard
            )
    # the global element each class stands for, when there is exactly one
    owners: dict[QName, set[QName]] = {}
    for loaded in sets:
        for decl in loaded.schemas.elements.values():
            t = decl.type
            if isinstance(t, SimpleType) or decl.abstract:
                continue
            key = t.name if t.name is not None else decl.name
            owners.setdefault(key, set()).add(decl.name)
    for key, cm in classes.items():
        names = owners.get(key, set())
        if len(names) == 1:
            cm.element = next(iter(names))
    return classes


def generate(schema_dir: Path) -> dict[str, str]:
    """File name (relative to exi_schemas/) -> content."""
    sets = [load_set(name, schema_dir) for name in SCHEMA_SETS]
    classes = build_classes(sets)
    files: dict[str, str] = {}
    enums: dict[str, dict[QName, SimpleType]] = {}
    for loaded in sets:
        for st in loaded.schemas.simple_types.values():
            if st.enum_owner is st and st.name is not None:
                enums.setdefault(module_of(st.name[0]), {}).setdefault(st.name, st)
    modules = sorted({cm.module for cm in classes.values()} | set(enums))
    for module in modules:
        members = sorted(
            (cm for cm in classes.values() if cm.module == module), key=lambda c: c.name
        )
        names = [cm.name for cm in members]
        if len(names) != len(set(names)):
            raise SchemaError(f"class name clash in module {module}")
        module_enums = sorted(enums.get(module, {}).values(), key=lambda s: s.name or ("", ""))
        files[f"{module}.py"] = generate_types_module(
            module, members, module_enums, classes, _DESCRIPTIONS[module]
        )
    shared = shared_functions(sets, classes)
    for loaded in sets:
        files[f"{loaded.codec_module}.py"] = generate_codec_module(loaded, classes, shared)
    index = [
        HEADER,
        '"""Message classes and EXI codecs generated from the V2G XSD schemas.\n',
        "Types live in one module per namespace family (xmldsig, apphand, din, iso2, iso20_*);",
        'codecs in one module per schema set (codec_*).  Never edit by hand."""\n',
        "SCHEMA_CODECS = {",
        *[f"    {name!r}: {codec!r}," for name, (_root, codec) in SCHEMA_SETS.items()],
        "}",
    ]
    files["__init__.py"] = "\n".join(index) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iso15118._compiler", description=__doc__)
    parser.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS, help="XSD folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output package folder")
    parser.add_argument("--check", action="store_true", help="fail if the output is not current")
    args = parser.parse_args(argv)
    try:
        files = generate(args.schemas)
    except (SchemaError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [n for n, text in files.items() if _read(args.out / n) != text]
    if args.check:
        for name in stale:
            print(f"out of date: {name}", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out / name).write_text(files[name], encoding="utf-8")
    print(f"{len(files)} files, {len(stale)} written to {args.out}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
