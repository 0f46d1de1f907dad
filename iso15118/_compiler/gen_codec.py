"""Emits one codec module per schema set: a decode and an encode function per complex type,
each a straight walk over the type's EXI grammar, plus document and fragment entry points."""

from __future__ import annotations

from .gen_types import HEADER, enum_name
from .grammar import AT, CH, CH_UNTYPED, EE, SE, SE_ANY, Grammar, Production, type_grammar
from .model import ClassModel, FieldModel, LoadedSet, module_of
from .xsd import ComplexType, ElementDecl, QName, SimpleType

_IND = "    "
_SCALAR_TAG = {"boolean": "bool", "integer": "int", "base64Binary": "bytes", "hexBinary": "bytes"}


def _int_plan(st: SimpleType) -> tuple[str, int | None, int | None, int]:
    """How EXI represents an integer type (section 7.1.5 and 7.1.9): kind, min, max, bits."""
    lo, hi = st.facets.min_inclusive, st.facets.max_inclusive
    if lo is not None and hi is not None and hi - lo < 4096:
        return "nbit", lo, hi, (hi - lo).bit_length()
    if lo is not None and lo >= 0:
        return "uint", lo, hi, 0
    return "int", lo, hi, 0


def _length_check(st: SimpleType, expr: str, where: str, what: str) -> list[str]:
    """Length facets when encoding: the maximum always, the minimum when the writer is
    strict.  (Decoding bounds reads by the maximum and accepts shorter values.)"""
    f = st.facets
    lo = f.length if f.length is not None else f.min_length
    hi = f.length if f.length is not None else f.max_length
    conds = []
    if lo:
        conds.append(f"(len({expr}) < {lo} and w.strict)")
    if hi is not None:
        conds.append(f"len({expr}) > {hi}")
    if not conds:
        return []
    bound = f"{lo or 0}..{hi if hi is not None else ''}"
    msg = f"{what} length {{len({expr})}} outside {bound}"
    return [f"if {' or '.join(conds)}:", _IND + f"raise encode_error({where!r}, f{msg!r})"]


class CodecWriter:
    def __init__(self, loaded: LoadedSet, classes: dict[QName, ClassModel]) -> None:
        self.loaded = loaded
        self.classes = classes
        self.modules: set[str] = set()
        self.enum_tables: dict[str, SimpleType] = {}
        self.simple_roots: dict[int, tuple[str, SimpleType]] = {}
        self.need_s = True
        self.grammars: dict[int, Grammar] = {}
        self.chains: dict[int, tuple[int, int, int]] = {}

    def grammar(self, ct: ComplexType) -> Grammar:
        g = self.grammars.get(id(ct))
        if g is None:
            g = self.grammars[id(ct)] = type_grammar(self.loaded.schemas, ct)
        return g

    # -- names --------------------------------------------------------------------------------
    def cls(self, key: QName) -> ClassModel:
        return self.classes[key]

    def cls_ref(self, key: QName) -> str:
        cm = self.cls(key)
        self.modules.add(cm.module)
        return f"_{cm.module}.{cm.name}"

    def fn(self, key: QName, prefix: str) -> str:
        cm = self.cls(key)
        return f"_{prefix}_{cm.module}_{cm.name}"

    def key_of(self, ct: ComplexType) -> QName:
        if ct.name is not None:
            return ct.name
        return self.loaded.anon_owner[id(ct)].name

    def enum_table(self, st: SimpleType) -> str:
        owner = st.enum_owner
        assert owner is not None and owner.name is not None
        mod = module_of(owner.name[0])
        self.modules.add(mod)
        name = f"{mod}_{enum_name(st)}"
        self.enum_tables[name] = st
        return name

    # -- values -------------------------------------------------------------------------------
    def decode_value(self, st: SimpleType, where: str) -> tuple[list[str], str]:
        """Statements and the final expression that read one value of `st`."""
        if st.enum_owner is not None:
            values = st.facets.enumeration or []
            table = self.enum_table(st)
            bits = (len(values) - 1).bit_length()
            if len(values) == 1 << bits:
                return [], f"_E_{table}[r.bits({bits})]"
            return (
                [
                    f"iv = r.bits({bits})",
                    f"if iv >= {len(values)}:",
                    _IND + f"raise r.fail({where!r}, f'enumeration index {{iv}} out of range')",
                ],
                f"_E_{table}[iv]",
            )
        prim = st.primitive
        if prim == "boolean":
            return [], "r.bits(1) == 1"
        if prim == "integer":
            kind, lo, hi, bits = _int_plan(st)
            if kind == "nbit":
                assert lo is not None and hi is not None
                expr = f"r.bits({bits}) + {lo}" if lo else f"r.bits({bits})"
                if hi - lo + 1 == 1 << bits:
                    return [], expr
                check = f"iv > {hi}"
            else:
                expr = "r.uint()" if kind == "uint" else "r.integer()"
                conds = []
                if lo is not None and not (kind == "uint" and lo == 0):
                    conds.append(f"iv < {lo}")
                if hi is not None:
                    conds.append(f"iv > {hi}")
                if not conds:
                    return [], expr
                check = " or ".join(conds)
            return (
                [
                    f"iv = {expr}",
                    f"if {check}:",
                    _IND + f"raise r.fail({where!r}, f'value {{iv}} outside {lo}..{hi}')",
                ],
                "iv",
            )
        f = st.facets
        hi_len = f.length if f.length is not None else f.max_length
        if prim in ("base64Binary", "hexBinary"):
            call = f"r.binary({hi_len})"
        elif prim == "string":
            call = f"r.string({hi_len})"
        else:
            raise NotImplementedError(f"EXI datatype for {prim}")
        return [], call  # the maximum length bounds the read; shorter values are accepted

    def encode_value(self, st: SimpleType, expr: str, where: str) -> list[str]:
        if st.enum_owner is not None:
            values = st.facets.enumeration or []
            table = self.enum_table(st)
            bits = (len(values) - 1).bit_length()
            return [f"w.bits(_I_{table}[{expr}], {bits})"] if bits else []
        prim = st.primitive
        if prim == "boolean":
            return [f"w.bits(1 if {expr} else 0, 1)"]
        if prim == "integer":
            kind, lo, hi, bits = _int_plan(st)
            conds = []
            if lo is not None:
                conds.append(f"{lo} <= {expr}")
            if hi is not None:
                conds.append(f"{expr} <= {hi}")
            lines = []
            if conds:
                chain = " ".join(conds).replace(f" {expr} {expr}", f" {expr}")
                rng = f"{lo if lo is not None else ''}..{hi if hi is not None else ''}"
                lines += [
                    f"if not ({chain.replace(f'{expr} {expr}', expr)}):",
                    _IND + f"raise encode_error({where!r}, f'{{{expr}!r}} outside {rng}')",
                ]
            if kind == "nbit":
                lines.append(f"w.bits({expr} - {lo}, {bits})" if lo else f"w.bits({expr}, {bits})")
            else:
                lines.append(f"w.uint({expr})" if kind == "uint" else f"w.integer({expr})")
            return lines
        check = _length_check(st, expr, where, "value")
        if prim in ("base64Binary", "hexBinary"):
            return [*check, f"w.binary({expr})"]
        if prim == "string":
            return [*check, f"w.string({expr})"]
        raise NotImplementedError(f"EXI datatype for {prim}")

    # -- type functions -------------------------------------------------------------------------
    def field_for(self, cm: ClassModel, prod: Production) -> FieldModel:
        if prod.kind == AT:
            assert prod.attribute is not None
            key = "@" + prod.attribute.name[1]
            return next(f for f in cm.fields if f.key == key)
        if prod.kind == CH:
            return next(f for f in cm.fields if f.kind == "text")
        assert prod.element is not None
        name = prod.element.name
        return next(f for f in cm.fields if f.kind == "element" and (f.namespace, f.key) == name)

    def decode_function(self, ct: ComplexType) -> list[str]:
        key = self.key_of(ct)
        cm = self.cls(key)
        g = self.grammar(ct)
        order, cyclic, mandatory = _layout(g)
        self.need_s = cyclic or any(k not in mandatory for k in order)
        self.chains = _chains(g)
        order = _skip_chain_interiors(order, g, self.chains)
        out = [f"def {self.fn(key, 'd')}(r: BitReader) -> {self.cls_ref(key)}:"]
        for fm in cm.fields:
            t = self.py_type(fm)
            if fm.is_list:
                out.append(f"{_IND}f_{fm.py}: list[{t}] = []")
            elif fm.min == 0 or cyclic:
                out.append(f"{_IND}f_{fm.py}: {t} | None = None")
            else:
                out.append(f"{_IND}f_{fm.py}: {t}")
        body: list[str] = []
        for k in order:
            body += self.decode_block(cm, g, k, k not in mandatory or cyclic)
        if cyclic:
            out.append(f"{_IND}s = 0")
            out.append(f"{_IND}while s >= 0:")
            out += [_IND + line for line in body]
        else:
            if any(k not in mandatory for k in order):
                out.append(f"{_IND}s = 0")
            out += body
        args = ", ".join(f"{fm.py}=f_{fm.py}" for fm in cm.fields)
        ignore = ""
        if cyclic and any(fm.min > 0 and not fm.is_list for fm in cm.fields):
            ignore = "  # type: ignore[arg-type]"
        out.append(f"{_IND}return {self.cls_ref(key)}({args}){ignore}")
        return out

    def py_type(self, fm: FieldModel) -> str:
        if fm.complex_key is not None:
            return self.cls_ref(fm.complex_key)
        assert fm.simple is not None
        st = fm.simple
        if st.enum_owner is not None:
            assert st.enum_owner.name is not None
            mod = module_of(st.enum_owner.name[0])
            self.modules.add(mod)
            return f"_{mod}.{enum_name(st)}"
        return {
            "boolean": "bool",
            "integer": "int",
            "base64Binary": "bytes",
            "hexBinary": "bytes",
        }.get(st.primitive, "str")

    def decode_block(self, cm: ClassModel, g: Grammar, k: int, guarded: bool) -> list[str]:
        state = g.states[k]
        where = f"{cm.name}[{k}]"
        expected = ", ".join(_describe(p) for p in state.productions)
        chain = self.chains.get(k)
        selfloop = chain is not None or any(p.target == k for p in state.productions)
        lines: list[str] = []
        prods = state.productions
        if len(prods) == 1 and not selfloop:
            lines += [
                f"if r.bits({state.width}):",
                _IND + f"raise r.fail({where!r}, 'expected {expected}')",
            ]
            lines += self.decode_action(cm, prods[0], where)
            if prods[0].kind != EE and self.need_s:
                lines.append(f"s = {prods[0].target}")
        else:
            lines.append(f"ec = r.bits({state.width})")
            for i, p in enumerate(prods):
                lines.append(f"{'if' if i == 0 else 'elif'} ec == {i}:")
                action = self.decode_action(cm, p, where)
                if action[-1].startswith("raise"):
                    pass
                elif chain is not None and i == chain[2]:
                    action += _count_exit(chain, self.need_s)
                else:
                    if p.kind != EE and p.target != k and self.need_s:
                        action.append(f"s = {p.target}")
                    if selfloop and p.target != k:
                        action.append("break")
                lines += [_IND + a for a in action]
            lines += [
                "else:",
                _IND + f"raise r.fail({where!r}, f'event code {{ec}}, expected {expected}')",
            ]
            if selfloop:
                lines = ["while True:"] + [_IND + line for line in lines]
            if chain is not None:
                lines.insert(0, "n = 0")
        if guarded:
            return [f"{_IND}if s == {k}:"] + [_IND * 2 + line for line in lines]
        return [_IND + line for line in lines]

    def decode_action(self, cm: ClassModel, p: Production, where: str) -> list[str]:
        if p.kind == EE:
            return ["s = -1"] if self.need_s else ["pass"]
        if p.kind in (SE_ANY, CH_UNTYPED):
            what = "wildcard element" if p.kind == SE_ANY else "untyped character"
            return [f"raise r.fail({where!r}, '{what} content is not supported')"]
        fm = self.field_for(cm, p)
        fwhere = f"{cm.name}.{fm.py}"
        lines: list[str] = []
        if p.kind == SE and p.element is not None and isinstance(p.element.type, ComplexType):
            expr = f"{self.fn(self.key_of(p.element.type), 'd')}(r)"
        else:
            st = p.simple if p.kind == CH else (p.attribute.type if p.attribute else None)
            if p.kind == SE:
                assert p.element is not None and isinstance(p.element.type, SimpleType)
                st = p.element.type
                lines += ["if r.bits(1):", _IND + f"raise r.fail({fwhere!r}, 'expected CH')"]
            assert st is not None
            pre, expr = self.decode_value(st, fwhere)
            lines += pre
        if fm.is_list:
            lines.append(f"f_{fm.py}.append({expr})")
        else:
            lines.append(f"f_{fm.py} = {expr}")
        if p.kind == SE and p.element is not None and isinstance(p.element.type, SimpleType):
            lines += ["if r.bits(1):", _IND + f"raise r.fail({fwhere!r}, 'expected EE')"]
        return lines

    def encode_function(self, ct: ComplexType) -> list[str]:
        key = self.key_of(ct)
        cm = self.cls(key)
        g = self.grammar(ct)
        order, cyclic, mandatory = _layout(g)
        reach = _reachable_fields(self, cm, g)
        self.need_s = cyclic or any(k not in mandatory for k in order)
        self.chains = _chains(g)
        order = _skip_chain_interiors(order, g, self.chains)
        out = [f"def {self.fn(key, 'e')}(w: BitWriter, o: {self.cls_ref(key)}) -> None:"]
        for fm in cm.fields:
            if fm.is_list:
                out.append(f"{_IND}i_{fm.py} = 0")
        body: list[str] = []
        for k in order:
            body += self.encode_block(cm, g, k, k not in mandatory or cyclic, reach)
        if cyclic:
            out += [f"{_IND}s = 0", f"{_IND}while s >= 0:"] + [_IND + b for b in body]
        else:
            if any(k not in mandatory for k in order):
                out.append(f"{_IND}s = 0")
            out += body
        return out

    def encode_block(
        self, cm: ClassModel, g: Grammar, k: int, guarded: bool, reach: list[set[str]]
    ) -> list[str]:
        state = g.states[k]
        where = f"{cm.name}"
        prods = [p for p in state.productions if p.kind not in (SE_ANY, CH_UNTYPED)]
        chain = self.chains.get(k)
        selfloop = chain is not None or any(p.target == k for p in prods)
        lines: list[str] = []
        has_ee = any(p.kind == EE for p in prods)
        first = True
        for p in prods:
            code = state.productions.index(p)
            if p.kind == EE:
                head = "else:" if not first else "if True:"
                action = [f"w.bits({code}, {state.width})"]
                action.append("s = -1" if self.need_s else "pass")
                if selfloop:
                    action.append("break")
                lines.append(head)
                lines += [_IND + a for a in action]
                break
            fm = self.field_for(cm, p)
            cond = f"i_{fm.py} < len(o.{fm.py})" if fm.is_list else f"o.{fm.py} is not None"
            lines.append(f"{'if' if first else 'elif'} {cond}:")
            first = False
            action = [f"w.bits({code}, {state.width})"] if state.width else []
            action += self.encode_action(cm, p, fm)
            # fields that this choice makes unreachable must be empty
            later = state.productions[state.productions.index(p) + 1 :]
            is_count = chain is not None and code == chain[2]
            if is_count:
                assert chain is not None
                action += _count_exit(chain, self.need_s)[:-1]
                exit_reach = reach[chain[1]] if chain[1] >= 0 else set()
                if fm.py not in exit_reach:
                    action += [
                        _IND + f"if i_{fm.py} < len(o.{fm.py}):",
                        _IND * 2 + f"raise encode_error('{where}.{fm.py}', 'too many entries')",
                    ]
                action.append(_IND + "break")
                lines += [_IND + a for a in action]
                continue
            target_reach = reach[p.target] if p.target >= 0 else set()
            seen = set()
            for q in [p, *later]:
                if q.kind not in (AT, SE, CH):
                    continue
                qf = self.field_for(cm, q)
                if qf.py in target_reach or qf.py in seen:
                    continue
                seen.add(qf.py)
                if qf is fm and not fm.is_list:
                    continue
                present = f"i_{qf.py} < len(o.{qf.py})" if qf.is_list else f"o.{qf.py} is not None"
                why = "too many entries" if qf is fm else f"cannot be combined with {fm.py}"
                action += [
                    f"if {present}:",
                    _IND + f"raise encode_error('{where}.{qf.py}', '{why}')",
                ]
            if p.target != k:
                if self.need_s:
                    action.append(f"s = {p.target}")
                if selfloop:
                    action.append("break")
            lines += [_IND + a for a in action]
        if not has_ee:
            names = ", ".join(_describe(p) for p in prods)
            lines += ["else:", _IND + f"raise encode_error('{where}', 'missing {names}')"]
        if selfloop:
            lines = ["while True:"] + [_IND + line for line in lines]
        if chain is not None:
            lines.insert(0, "n = 0")
        if guarded:
            return [f"{_IND}if s == {k}:"] + [_IND * 2 + line for line in lines]
        return [_IND + line for line in lines]

    def encode_action(self, cm: ClassModel, p: Production, fm: FieldModel) -> list[str]:
        fwhere = f"{cm.name}.{fm.py}"
        lines: list[str] = []
        if fm.is_list:
            lines += [f"x_{fm.py} = o.{fm.py}[i_{fm.py}]", f"i_{fm.py} += 1"]
            expr = f"x_{fm.py}"
        else:
            expr = f"o.{fm.py}"
        if p.kind == SE and p.element is not None and isinstance(p.element.type, ComplexType):
            lines.append(f"{self.fn(self.key_of(p.element.type), 'e')}(w, {expr})")
            return lines
        if p.kind == SE:
            assert p.element is not None and isinstance(p.element.type, SimpleType)
            st = p.element.type
            lines.append("w.bits(0, 1)")
            lines += self.encode_value(st, expr, fwhere)
            lines.append("w.bits(0, 1)")
            return lines
        value_type = p.simple if p.kind == CH else (p.attribute.type if p.attribute else None)
        assert value_type is not None
        return lines + self.encode_value(value_type, expr, fwhere)

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
        out: list[str] = []
        for name, st in self.simple_roots.values():
            pre, expr = self.decode_value(st, "value")
            out.append(f"def _d{name}(r: BitReader) -> object:")
            out += [
                _IND + line
                for line in ["if r.bits(1):", _IND + "raise r.fail('value', 'expected CH')"]
            ]
            out += [_IND + line for line in pre]
            out += [f"{_IND}v = {expr}"]
            out += [
                _IND + line
                for line in ["if r.bits(1):", _IND + "raise r.fail('value', 'expected EE')"]
            ]
            out += [f"{_IND}return v", ""]
            out.append(f"def _e{name}(w: BitWriter, o: Any) -> None:")
            out.append(f"{_IND}w.bits(0, 1)")
            out += [_IND + line for line in self.encode_value(st, "o", "value")]
            out += [f"{_IND}w.bits(0, 1)", ""]
        return out

    def entries(self, decls: list[ElementDecl], label: str) -> tuple[list[str], int]:
        """A table of (namespace, name, decoder, encoder) in event-code order."""
        rows = []
        for decl in decls:
            if isinstance(decl.type, ComplexType):
                k = self.key_of(decl.type)
                dec, enc = self.fn(k, "d"), self.fn(k, "e")
                kind = self.cls_ref(k)
            else:
                dec, enc = self.simple_root(decl)
                st = decl.type
                kind = (
                    f"_{module_of(st.enum_owner.name[0])}.{enum_name(st)}"
                    if st.enum_owner is not None and st.enum_owner.name is not None
                    else repr(_SCALAR_TAG.get(st.primitive, "str"))
                )
            rows.append(f"    ({decl.name[0]!r}, {decl.name[1]!r}, {dec}, {enc}, {kind}),")
        return [f"{label}: EntryTable = (", *rows, ")"], len(decls)


def _count_exit(chain: tuple[int, int, int], need_s: bool) -> list[str]:
    length, exit_state, _x = chain
    lines = ["n += 1", f"if n == {length}:"]
    if need_s:
        lines.append(_IND + f"s = {exit_state}")
    lines.append(_IND + "break")
    return lines


def _describe(p: Production) -> str:
    if p.qname is not None:
        return f"{p.kind}({p.qname[1]})"
    return p.kind


def _layout(g: Grammar) -> tuple[list[int], bool, set[int]]:
    """Topological order of the states (ignoring self-loops), whether the grammar has a
    cycle, and the states every path passes through."""
    n = len(g.states)
    succ = [
        {p.target for p in s.productions if p.target >= 0 and p.target != i}
        for i, s in enumerate(g.states)
    ]
    indeg = [0] * n
    for targets in succ:
        for t in targets:
            indeg[t] += 1
    ready = [i for i in range(n) if indeg[i] == 0]
    order: list[int] = []
    while ready:
        ready.sort()
        i = ready.pop(0)
        order.append(i)
        for t in succ[i]:
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    if len(order) != n:
        return list(range(n)), True, {0}
    mandatory = set()
    ends = {i for i, s in enumerate(g.states) if any(p.kind == EE for p in s.productions)}
    for k in range(n):
        # k is mandatory when no end state is reachable from 0 while avoiding k
        if k == 0:
            mandatory.add(0)
            continue
        seen, stack = {0}, [0]
        found = False
        while stack:
            i = stack.pop()
            if i in ends:
                found = True
                break
            for t in succ[i]:
                if t != k and t not in seen:
                    seen.add(t)
                    stack.append(t)
        if not found:
            mandatory.add(k)
    return order, False, mandatory


def _skip_chain_interiors(
    order: list[int], g: Grammar, chains: dict[int, tuple[int, int, int]]
) -> list[int]:
    interior: set[int] = set()
    for start, (length, _exit, x) in chains.items():
        k = start
        for _ in range(length - 1):
            k = g.states[k].productions[x].target
            interior.add(k)
    return [k for k in order if k not in interior]


def _shape(g: Grammar, k: int, skip: int) -> tuple[object, ...]:
    """State k's productions, ignoring the target of production number `skip`."""
    return tuple(
        (p.kind, p.qname, None if i == skip else p.target)
        for i, p in enumerate(g.states[k].productions)
    )


def _chains(g: Grammar) -> dict[int, tuple[int, int, int]]:
    """Runs of states that unroll a bounded repetition (EXI 1.0 section 8.5.4.1.6 makes one
    state per occurrence): start state -> (run length, state after the run, index of the
    repeated production).  The codec walks such a run with a counter instead of unrolling."""
    indeg: dict[int, int] = {}
    for i, st in enumerate(g.states):
        for p in st.productions:
            if p.target >= 0 and p.target != i:
                indeg[p.target] = indeg.get(p.target, 0) + 1
    chains: dict[int, tuple[int, int, int]] = {}
    inside: set[int] = set()
    for k, st in enumerate(g.states):
        if k in inside:
            continue
        for x, p in enumerate(st.productions):
            if p.kind != SE or p.target in (k, -1):
                continue
            shape = _shape(g, k, x)
            run = [k]
            nxt = p.target
            while (
                nxt not in run
                and indeg.get(nxt, 0) == 1
                and len(g.states[nxt].productions) > x
                and g.states[nxt].productions[x].qname == p.qname
                and _shape(g, nxt, x) == shape
            ):
                run.append(nxt)
                nxt = g.states[nxt].productions[x].target
            if len(run) >= 4:
                chains[k] = (len(run), nxt, x)
                inside.update(run[1:])
                break
    return chains


def _reachable_fields(w: CodecWriter, cm: ClassModel, g: Grammar) -> list[set[str]]:
    n = len(g.states)
    direct: list[set[str]] = []
    for s in g.states:
        names = set()
        for p in s.productions:
            if p.kind in (AT, SE, CH):
                names.add(w.field_for(cm, p).py)
        direct.append(names)
    reach = [set(d) for d in direct]
    changed = True
    while changed:
        changed = False
        for i in range(n):
            for p in g.states[i].productions:
                if p.target >= 0 and not reach[p.target] <= reach[i]:
                    reach[i] |= reach[p.target]
                    changed = True
    return reach


def generate_codec_module(loaded: LoadedSet, classes: dict[QName, ClassModel]) -> str:
    w = CodecWriter(loaded, classes)
    functions: list[str] = []
    for key in sorted(loaded.complex_types, key=lambda q: (q[0], q[1])):
        ct = loaded.complex_types[key]
        functions += [*w.decode_function(ct), "", *w.encode_function(ct), ""]
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
    out.append("from iso15118.exi._bits import BitReader, BitWriter, encode_error\n")
    out.append("EntryTable = tuple[")
    out.append(
        "    tuple[str, str, Callable[[BitReader], Any], Callable[[BitWriter, Any], None], object],"
    )
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
