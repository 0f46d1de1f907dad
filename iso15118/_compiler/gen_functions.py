"""The decode and encode function of one complex type, walking its EXI grammar.

States the grammar always passes through in order become straight-line code whose
fixed-width pieces are read or written as one run (see chunks.py); states with a choice
become an if-chain on the event code; repetitions become loops.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from .chunks import (
    Choice,
    Guard,
    Raw,
    ReadBits,
    ReadCall,
    ReadItem,
    Stmt,
    UIntTail,
    WriteBits,
    WriteUInt,
    entry_lead,
    flush_reads,
    flush_writes,
    with_reader,
    with_writer,
)
from .gen_types import enum_name
from .grammar import AT, CH, CH_UNTYPED, EE, SE, SE_ANY, Grammar, Production, type_grammar
from .layout import chains as find_chains
from .layout import count_exit, describe, layout, reachable, skip_chain_interiors
from .model import ClassModel, FieldModel, LoadedSet, module_of
from .xsd import ComplexType, QName, SimpleType

_IND = "    "
MAX_INTEGER_BITS = 4096  # iso15118.exi._bits.MAX_UINT_BITS: the longest integer a stream may carry
_PY_SCALAR = {"boolean": "bool", "integer": "int", "base64Binary": "bytes", "hexBinary": "bytes"}
WriteItem = WriteBits | WriteUInt | Raw | Stmt
CLASS_ALIASES: dict[str, str] = {}  # module-level name -> the class it stands for


def alias_definitions(code: str) -> list[str]:
    """The class aliases that `code` uses, as module-level assignments."""
    names = sorted(set(re.findall(r"\b_K_\w+", code)))
    return [f"{name} = {CLASS_ALIASES[name]}" for name in names]


def int_plan(st: SimpleType) -> tuple[str, int | None, int | None, int]:
    """How EXI represents an integer type (sections 7.1.5, 7.1.6, 7.1.9): kind, min, max,
    and the width of an n-bit unsigned integer for a range below 4096."""
    lo, hi = st.facets.min_inclusive, st.facets.max_inclusive
    if lo is not None and hi is not None and hi - lo < 4096:
        return "nbit", lo, hi, (hi - lo).bit_length()
    if lo is not None and lo >= 0:
        return "uint", lo, hi, 0
    return "int", lo, hi, 0


def _first_octet(where: str) -> list[ReadBits]:
    """The first octet of an Unsigned Integer, read with the fixed-width run before it."""
    return [ReadBits(8, where, lines=["u = {x}"])]


SPILL_BITS = 1024  # iso15118.exi._bits.FLUSH_BITS
SPILL_BITS_ENTRY = 256


def encoder_epilogue(limit: int = SPILL_BITS) -> list[str]:
    """Hand the accumulator back; past `limit` bits its whole octets go to the buffer (the
    longer it grows, the more each shift costs; a spill costs a call)."""
    return ["w.acc = a", "w.n = k", f"if k >= {limit}:", _IND + "w.spill()"]


def _drop_state_variable(lines: list[str]) -> list[str]:
    """Remove the assignments to the state variable `s` from code that never reads it."""
    out: list[str] = []
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith("s = ") and text[4:].lstrip("-").isdigit():
            depth = len(line) - len(text)
            alone = (
                out
                and out[-1].rstrip().endswith(":")
                and (i + 1 == len(lines) or len(lines[i + 1]) - len(lines[i + 1].lstrip()) < depth)
            )
            if alone:
                out.append(line[:depth] + "pass")
            continue
        out.append(line)
    return out


def _single_entry_states(g: Grammar, chains: dict[int, tuple[int, int, int]]) -> set[int]:
    """States entered by exactly one production (not counting their own loops), with no
    loop of their own: their code can follow that production's code directly."""
    entries: dict[int, int] = {}
    looping = set(chains)
    for i, st in enumerate(g.states):
        for p in st.productions:
            if p.target == i:
                looping.add(i)
            elif p.target >= 0:
                entries[p.target] = entries.get(p.target, 0) + 1
    inside = {t for start, (n, _e, x) in chains.items() for t in _chain_states(g, start, n, x)}
    return {t for t, n in entries.items() if n == 1} - looping - inside - {0}


def _chain_states(g: Grammar, start: int, length: int, x: int) -> list[int]:
    states, k = [], start
    for _ in range(length):
        states.append(k)
        k = g.states[k].productions[x].target
    return [*states, k]


def _prepend(items: list[WriteItem], lines: list[str]) -> None:
    """Put `lines` before everything `items` does."""
    for item in items:
        if isinstance(item, WriteBits | WriteUInt):
            item.pre[:0] = lines
            return
        if isinstance(item, Raw):
            item.lines[:0] = lines
            return
    items.insert(0, Raw(lines))


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return [_IND * depth + line for line in lines]


def _length_check(st: SimpleType, expr: str, where: str) -> list[str]:
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
    msg = f"length {{len({expr})}} outside {bound}"
    return [f"if {' or '.join(conds)}:", _IND + f"raise encode_error({where!r}, f{msg!r})"]


class FunctionWriter:
    def __init__(self, loaded: LoadedSet, classes: dict[QName, ClassModel]) -> None:
        self.loaded = loaded
        self.classes = classes
        self.modules: set[str] = set()
        self.enum_tables: dict[str, SimpleType] = {}
        self.need_s = True
        self.absorbable: set[int] = set()
        self.absorbed: set[int] = set()
        self.chains: dict[int, tuple[int, int, int]] = {}
        self.grammar_of: dict[int, Grammar] = {}
        self.prefix = ""  # of decode locals, while a child type is inlined
        self.obj = "o"  # the object being encoded
        self.inlined = 0
        self.temps = 0
        self.depth = 0  # of inlined children
        self.leads: dict[QName, int] = {}  # type -> its decoder's entry lead (see ReadCall)
        self.computing: set[QName] = set()
        self.recursive: set[QName] = set()
        self.entry_types = {  # the types of repeated elements
            fm.complex_key for cm in classes.values() for fm in cm.fields if fm.is_list
        }

    def grammar(self, ct: ComplexType) -> Grammar:
        g = self.grammar_of.get(id(ct))
        if g is None:
            g = self.grammar_of[id(ct)] = type_grammar(self.loaded.schemas, ct)
        return g

    def inlinable(self, ct: ComplexType) -> bool:
        """A small type whose grammar has no choice at all: its code goes into the parent's
        function and runs.  (Inlining types with choices too was measured: about 4 % fewer
        instructions on a full schedule, 7 % more on CurrentDemandReq, twice the code.)"""
        if self.depth >= 3:
            return False
        g = self.grammar(ct)
        if len(g.states) > 16 or any(len(st.productions) != 1 for st in g.states):
            return False
        cm = self.classes[self.key_of(ct)]
        return not any(fm.is_list for fm in cm.fields) and all(
            p.target != i and p.kind in (AT, SE, CH, EE)
            for i, st in enumerate(g.states)
            for p in st.productions
        )

    def inlinable_read(self, ct: ComplexType) -> bool:
        """For decoding, also a small type with choices whose every optional state has a
        single way in: after absorption (see decode_block) its code needs no state variable."""
        if self.inlinable(ct):
            return True
        if self.depth >= 2:
            return False
        g = self.grammar(ct)
        if len(g.states) > 6 or find_chains(g):
            return False
        order, cyclic, mandatory = layout(g)
        if cyclic or any(p.kind not in (AT, SE, CH, EE) for st in g.states for p in st.productions):
            return False
        return set(order) - mandatory <= _single_entry_states(g, {})

    def entry_lead(self, ct: ComplexType) -> int:
        """The bits the decoder of `ct` wants read ahead by its caller (see ReadCall)."""
        key = self.key_of(ct)
        if key in self.computing:  # a recursive type: it reads for itself
            self.recursive.add(key)
            return 0
        if key not in self.leads:
            self.computing.add(key)
            sub = type(self)(self.loaded, self.classes)
            sub.leads, sub.computing, sub.recursive = self.leads, self.computing, self.recursive
            sub.decode_function(ct, self.grammar(ct))
            self.computing.discard(key)
            if key in self.recursive:
                self.leads[key] = 0
        return self.leads[key]

    # -- names --------------------------------------------------------------------------------
    def cls_ref(self, key: QName) -> str:
        cm = self.classes[key]
        self.modules.add(cm.module)
        return f"_{cm.module}.{cm.name}"

    def fn(self, key: QName, prefix: str) -> str:
        cm = self.classes[key]
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

    # -- values -------------------------------------------------------------------------------
    def read_value(self, st: SimpleType, target: str, where: str) -> list[ReadItem]:
        """Items that read one value of `st` and run `target` (a statement with `{v}`)."""

        def put(v: str) -> str:
            return target.replace("{v}", v)

        fail = f"raise r.fail_at(av, {where!r}, "
        local = re.fullmatch(r"(\w+) = \{v\}", target)

        def tabled(b: ReadBits, values: str) -> list[ReadItem]:
            """A value a run table may give (see chunks._table_run)."""
            if local is not None:
                b.table = (local.group(1), values)
            return [b]

        if st.enum_owner is not None:
            count = len(st.facets.enumeration or [])
            table = self.enum_table(st)
            bits = (count - 1).bit_length()
            if count == 1 << bits:
                return tabled(
                    ReadBits(bits, where, lines=[put(f"_E_{table}[{{x}}]")]), f"_E_{table}"
                )
            check = ["iv = {x}", f"if iv >= {count}:", _IND + fail + "f'enumeration index {iv}')"]
            return tabled(
                ReadBits(bits, where, lines=[*check, put(f"_E_{table}[iv]")]), f"_E_{table}"
            )
        prim = st.primitive
        if prim == "boolean":
            return tabled(ReadBits(1, where, lines=[put("{x} == 1")]), "(False, True)")
        if prim == "integer":
            # any value the representation carries is accepted (real cars exceed facets);
            # the facets are enforced when encoding
            kind, lo, _hi, bits = int_plan(st)
            if kind == "nbit":
                value = "{x}" + ("" if not lo else f" + {lo}" if lo > 0 else f" - {-lo}")
                lo = lo or 0
                return tabled(
                    ReadBits(bits, where, lines=[put(value)]), f"range({lo}, {lo + (1 << bits)})"
                )
            if kind == "uint":
                return [*_first_octet(where), UIntTail([put("u")])]
            sign = ReadBits(1, where, lines=["sg = {x}"], table=("sg", "range(2)"))
            return [sign, *_first_octet(where), UIntTail([put("-u - 1 if sg else u")])]
        f = st.facets
        hi_len = f.length if f.length is not None else f.max_length
        if prim in ("base64Binary", "hexBinary"):
            read = with_reader([put(f"r.binary_of(u, {hi_len})")])
            return [*_first_octet(where), UIntTail(read, reads=True)]
        if prim == "string":
            read = with_reader([put(f"r.string_of(u, {hi_len})")])
            return [*_first_octet(where), UIntTail(read, reads=True)]
        raise NotImplementedError(f"EXI datatype for {prim}")

    def write_value(self, st: SimpleType, expr: str, where: str, pre: list[str]) -> list[WriteItem]:
        """Items that write `expr` as a value of `st`; `pre` runs first."""
        if "." in expr and st.enum_owner is None and st.primitive == "integer":
            self.temps += 1
            pre = [*pre, f"t{self.temps} = {expr}"]  # read the attribute once
            expr = f"t{self.temps}"
        if st.enum_owner is not None:
            count = len(st.facets.enumeration or [])
            table = self.enum_table(st)
            bits = (count - 1).bit_length()
            return [WriteBits(bits, f"_I_{table}[{expr}]", pre)] if bits else [Raw(pre)]
        prim = st.primitive
        if prim == "boolean":
            return [WriteBits(1, f"_BOOL[{expr}]", pre)]  # a KeyError for a non-boolean
        if prim == "integer":
            kind, lo, hi, bits = int_plan(st)
            hard: list[str] = []  # what the representation cannot carry
            soft: list[str] = []  # facets, enforced when the writer is strict
            if kind == "nbit":
                assert lo is not None and hi is not None
                hard = [f"{expr} < {lo}", f"{expr} > {lo + (1 << bits) - 1}"]
                if hi < lo + (1 << bits) - 1:
                    soft.append(f"{expr} > {hi}")
            else:
                if kind == "uint":
                    hard.append(f"{expr} < 0")
                if lo is not None and (kind != "uint" or lo > 0):
                    soft.append(f"{expr} < {lo}")
                if hi is not None:
                    soft.append(f"{expr} > {hi}")
                else:  # xs:integer: as long as the decoder accepts (MAX_INTEGER_BITS)
                    hard.append(f"{expr}.bit_length() > {MAX_INTEGER_BITS}")
            conds = hard + ([f"(w.strict and ({' or '.join(soft)}))"] if soft else [])
            check: list[str] = []
            if conds:
                rng = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
                check = [
                    f"if {' or '.join(conds)}:",
                    _IND + f"raise encode_error({where!r}, 'outside {rng}', {expr})",
                ]
            if kind == "nbit":
                offset = "" if not lo else f" - {lo}" if lo > 0 else f" + {-lo}"
                return [WriteBits(bits, expr + offset, pre + check)]
            if kind == "uint":
                return [WriteUInt([*pre, *check, "u = " + expr])]
            sign = WriteBits(1, f"1 if {expr} < 0 else 0", [*pre, *check])
            return [sign, WriteUInt([f"u = -{expr} - 1 if {expr} < 0 else {expr}"])]
        check = _length_check(st, expr, where)
        call = "w.binary" if prim in ("base64Binary", "hexBinary") else "w.string"
        if prim not in ("base64Binary", "hexBinary", "string"):
            raise NotImplementedError(f"EXI datatype for {prim}")
        return [Raw([*pre, *check, *with_writer([f"{call}({expr})"])])]

    # -- decoding -----------------------------------------------------------------------------
    def decode_function(self, ct: ComplexType, g: Grammar) -> list[str]:
        key = self.key_of(ct)
        cm = self.classes[key]
        order, cyclic, mandatory = layout(g)
        self.need_s = cyclic or any(k not in mandatory for k in order)
        self.chains = find_chains(g)
        order = skip_chain_interiors(order, g, self.chains)
        self.inlined = 0
        out = [f"def {self.fn(key, 'd')}(r: BitReader, c: int) -> {self.cls_ref(key)}:"]
        out += [f"{_IND}win = r.win", f"{_IND}av = r.avail"]
        for fm in cm.fields:
            t = self.py_type(fm)
            if fm.is_list:
                out.append(f"{_IND}f_{fm.py}: list[{t}] = []")
            elif fm.min == 0 or cyclic:
                out.append(f"{_IND}f_{fm.py}: {t} | None = None")
            else:
                out.append(f"{_IND}f_{fm.py}: {t}")
        self.absorbable = set() if cyclic else _single_entry_states(g, self.chains)
        self.absorbed = set()
        items: list[ReadItem] = []
        for k in order:
            if k not in self.absorbed:
                items += self.decode_block(cm, g, k, k not in mandatory or cyclic)
        lead = self.leads.get(key)
        if lead is None:  # no caller has asked yet
            lead = self.leads[key] = 0 if cyclic else entry_lead(items)
        body = flush_reads(items, cm.name, lead)
        guards = any(line.startswith(("if s == ", "if s != ")) for line in body)
        if self.need_s and not cyclic and not guards:
            body = _drop_state_variable(body)  # every guarded state was absorbed
        elif self.need_s:
            out.append(f"{_IND}s = 0")
        if not any(re.search(r"\bwin\b", line) for line in body):
            out.remove(f"{_IND}win = r.win")  # everything came read ahead by the caller
        if cyclic:
            out += [f"{_IND}while s >= 0:", *_indent(body, 2)]
        else:
            out += _indent(body)
        out.append(f"{_IND}r.avail = av")
        out += _indent(self.construct(cm, "", "return {v}", cyclic))
        return out

    def decode_block(self, cm: ClassModel, g: Grammar, k: int, guarded: bool) -> list[ReadItem]:
        state = g.states[k]
        where = f"{cm.name}[{k}]"
        expected = ", ".join(describe(p) for p in state.productions)
        chain = self.chains.get(k)
        prods = state.productions
        selfloop = chain is not None or any(p.target == k for p in prods)
        if len(prods) == 1 and not selfloop:
            items: list[ReadItem] = [ReadBits(state.width, expected, expect=0)]
            items += self.decode_action(cm, prods[0], where)
            if prods[0].kind != EE and self.need_s:
                items.append(Stmt([f"s = {prods[0].target}"]))
            return self.joined(k, items, where, guarded) if guarded else items
        branches: list[list[ReadItem]] = []
        tails: list[list[str]] = []
        for i, p in enumerate(prods):
            action = self.decode_action(cm, p, where)
            tail: list[str] = []
            if any(isinstance(a, Raw) and a.lines[-1].startswith("raise") for a in action):
                pass
            elif chain is not None and i == chain[2]:
                tail = count_exit(chain, self.need_s)
            elif not selfloop and p.target in self.absorbable:
                # the only way into the target: its code follows here, in the same runs
                self.absorbed.add(p.target)
                action += self.decode_block(cm, g, p.target, False)
            else:
                if p.kind != EE and p.target != k and self.need_s:
                    tail.append(f"s = {p.target}")
                if selfloop and p.target != k:
                    tail.append("break")
            branches.append(action)
            tails.append(tail)
        choice = Choice(state.width, where, expected, branches, tails)
        if not selfloop and not guarded:
            return [choice]
        return self.joined(k, [choice], where, guarded, selfloop, chain is not None)

    def joined(
        self,
        k: int,
        items: list[ReadItem],
        where: str,
        guarded: bool,
        loop: bool = False,
        counted: bool = False,
    ) -> list[ReadItem]:
        """State k's code where it cannot simply follow the code before it: a state entered
        from several places (run when the state variable says so) or a loop."""
        if not loop:
            return [Guard(f"if s == {k}:", items)]
        lines = ["while True:", *_indent(flush_reads(items, where))]
        if counted:
            lines.insert(0, "n = 0")
        if guarded:
            lines = [f"if s == {k}:", *_indent(lines)]
        return [Raw(lines)]

    def decode_action(self, cm: ClassModel, p: Production, where: str) -> list[ReadItem]:
        if p.kind == EE:
            return [Stmt(["s = -1"])] if self.need_s else []
        if p.kind in (SE_ANY, CH_UNTYPED):
            what = "wildcard element" if p.kind == SE_ANY else "untyped character"
            return [Raw([f"raise r.fail_at(av, {where!r}, '{what} content is not supported')"])]
        fm = self.field_for(cm, p)
        fwhere = f"{cm.name}.{fm.py}"
        local = f"f_{self.prefix}{fm.py}"
        target = f"{local}.append({{v}})" if fm.is_list else f"{local} = {{v}}"
        if p.kind == SE and p.element is not None and isinstance(p.element.type, ComplexType):
            if self.inlinable_read(p.element.type):
                return self.inline_decode(p.element.type, target)
            call = f"{self.fn(self.key_of(p.element.type), 'd')}(r, c)"
            lines = with_reader([target.replace("{v}", call)])
            return [ReadCall(lines, self.entry_lead(p.element.type))]
        if p.kind == SE:
            assert p.element is not None and isinstance(p.element.type, SimpleType)
            return [
                ReadBits(1, f"CH of {fm.key}", expect=0),
                *self.read_value(p.element.type, target, fwhere),
                ReadBits(1, f"EE of {fm.key}", expect=0),
            ]
        st = p.simple if p.kind == CH else (p.attribute.type if p.attribute else None)
        assert st is not None
        return self.read_value(st, target, fwhere)

    def construct(self, cm: ClassModel, prefix: str, target: str, cyclic: bool) -> list[str]:
        """Build the decoded object without its __init__ (a third of the cost): every slot is
        set from the locals.  `target` is a statement taking the object as `{v}`."""
        ref = self.cls_ref(cm.key)
        alias = f"_K_{cm.module}_{cm.name}"  # one global look-up instead of two
        CLASS_ALIASES[alias] = ref
        ignore = "  # type: ignore[assignment]" if cyclic else ""
        ob = f"ob{prefix}"
        lines = [f"{ob} = _new({alias})"]
        for fm in cm.fields:
            required = fm.min > 0 and not fm.is_list
            lines.append(f"{ob}.{fm.py} = f_{prefix}{fm.py}{ignore if required else ''}")
        return [*lines, target.replace("{v}", ob)]

    @contextmanager
    def child(self) -> Iterator[str]:
        """Emit an inlined child type: its own local names, no state variable (it is
        straight-line, see inlinable); yields the suffix for its names."""
        saved = self.prefix, self.obj, self.need_s, self.chains, self.absorbable, self.absorbed
        self.inlined += 1
        self.depth += 1
        self.need_s, self.chains, self.absorbed = False, {}, set()
        try:
            yield str(self.inlined)
        finally:
            self.prefix, self.obj, self.need_s, self.chains, self.absorbable, self.absorbed = saved
            self.depth -= 1

    def inline_decode(self, ct: ComplexType, target: str) -> list[ReadItem]:
        """The reads of a straight-line child type, in the parent's function and runs."""
        cm = self.classes[self.key_of(ct)]
        g = self.grammar(ct)
        with self.child() as n:
            self.prefix = f"{n}_"
            self.absorbable = _single_entry_states(g, {})
            # optional values are set only inside branches (Raw code), after the Stmt; list
            # entries may be appended in a run, so the lists exist before it (Raw)
            optional = [
                f"f_{self.prefix}{fm.py}: {self.py_type(fm)} | None = None"
                for fm in cm.fields
                if fm.min == 0 and not fm.is_list
            ]
            lists = [
                f"f_{self.prefix}{fm.py}: list[{self.py_type(fm)}] = []"
                for fm in cm.fields
                if fm.is_list
            ]
            items: list[ReadItem] = [Raw(lists, reads=False)] if lists else []
            items += [Stmt(optional)] if optional else []
            for k in layout(g)[0]:
                if k not in self.absorbed:
                    items += self.decode_block(cm, g, k, False)
            items.append(Stmt(self.construct(cm, self.prefix, target, False)))
        return items

    def inline_encode(self, ct: ComplexType, obj: str) -> list[WriteItem]:
        """The writes of a straight-line child type, in the parent's function and runs."""
        cm = self.classes[self.key_of(ct)]
        g = self.grammar(ct)
        fields = [
            {self.field_for(cm, p).py for p in st.productions if p.kind in (AT, SE, CH)}
            for st in g.states
        ]
        with self.child() as n:
            self.obj = f"c{n}"
            items: list[WriteItem] = []
            for k in layout(g)[0]:
                items += self.encode_block(cm, g, k, False, reachable(fields, g))
            if cm.fields:
                _prepend(items, [f"c{n} = {obj}"])  # read the child object once
            else:  # nothing else would notice an object of another class
                ref = self.cls_ref(self.key_of(ct))
                _prepend(
                    items,
                    [
                        f"if not isinstance({obj}, {ref}):",
                        _IND + f"raise encode_error('{cm.name}', 'wrong class', {obj})",
                    ],
                )
        return items

    def missing(self, cm: ClassModel, fm: FieldModel) -> list[str]:
        return [
            f"if {self.obj}.{fm.py} is None:",
            _IND + f"raise encode_error('{cm.name}.{fm.py}', 'required value missing')",
        ]

    # -- encoding -----------------------------------------------------------------------------
    def encode_function(self, ct: ComplexType, g: Grammar) -> list[str]:
        key = self.key_of(ct)
        cm = self.classes[key]
        order, cyclic, mandatory = layout(g)
        reach = reachable(
            [
                {self.field_for(cm, p).py for p in s.productions if p.kind in (AT, SE, CH)}
                for s in g.states
            ],
            g,
        )
        self.need_s = cyclic or any(k not in mandatory for k in order)
        self.chains = find_chains(g)
        order = skip_chain_interiors(order, g, self.chains)
        self.inlined = self.temps = 0
        out = [f"def {self.fn(key, 'e')}(w: BitWriter, o: {self.cls_ref(key)}) -> None:"]
        out += [f"{_IND}a = w.acc", f"{_IND}k = w.n"]
        out += [f"{_IND}i_{fm.py} = 0" for fm in cm.fields if fm.is_list]
        items: list[WriteItem] = []
        for k in order:
            items += self.encode_block(cm, g, k, k not in mandatory or cyclic, reach)
        body = flush_writes(items) or ["pass"]
        if self.need_s:
            out.append(f"{_IND}s = 0")
        if cyclic:
            out += [f"{_IND}while s >= 0:", *_indent(body, 2)]
        else:
            out += _indent(body)
        # an entry of a repeated element spills sooner: long lists keep the accumulator short
        # while short documents never spill
        limit = SPILL_BITS_ENTRY if key in self.entry_types else SPILL_BITS
        return [*out, *_indent(encoder_epilogue(limit))]

    def encode_block(
        self, cm: ClassModel, g: Grammar, k: int, guarded: bool, reach: list[set[str]]
    ) -> list[WriteItem]:
        state = g.states[k]
        prods = [p for p in state.productions if p.kind not in (SE_ANY, CH_UNTYPED)]
        chain = self.chains.get(k)
        selfloop = chain is not None or any(p.target == k for p in prods)
        single = len(state.productions) == 1 and not selfloop
        if single and not guarded:
            p = prods[0]
            if p.kind == EE:
                done = [Stmt(["s = -1"])] if self.need_s else []
                return [WriteBits(state.width, 0), *done]
            fm = self.field_for(cm, p)
            if not fm.is_list:
                items: list[WriteItem] = [WriteBits(state.width, 0, self.missing(cm, fm))]
                items += self.encode_action(cm, p, fm)
                if self.need_s:
                    items.append(Stmt([f"s = {p.target}"]))
                return items
        lines = self.encode_choice(cm, state.productions, prods, k, reach)
        if not prods:  # only wildcard content or mixed text can come here
            why = "needs xs:any content or mixed text, which this codec does not write"
            lines = [f"raise encode_error('{cm.name}', '{why}')"]
        elif not any(p.kind == EE for p in prods):
            names = ", ".join(describe(p) for p in prods)
            lines += ["else:", _IND + f"raise encode_error('{cm.name}', 'missing {names}')"]
        if selfloop:
            lines = ["while True:", *_indent(lines)]
        if chain is not None:
            lines.insert(0, "n = 0")
        if guarded:
            lines = [f"if s == {k}:", *_indent(lines)]
        return [Raw(lines)]

    def encode_choice(
        self,
        cm: ClassModel,
        all_prods: list[Production],
        prods: list[Production],
        k: int,
        reach: list[set[str]],
    ) -> list[str]:
        width = (len(all_prods)).bit_length()
        chain = self.chains.get(k)
        selfloop = chain is not None or any(p.target == k for p in prods)
        lines: list[str] = []
        for n, p in enumerate(prods):
            code = all_prods.index(p)
            if p.kind == EE:
                action = flush_writes([WriteBits(width, code)])
                action.append("s = -1" if self.need_s else "pass")
                if selfloop:
                    action.append("break")
                lines += ["else:" if n else "if True:", *_indent(action)]
                break
            fm = self.field_for(cm, p)
            o = self.obj
            cond = f"i_{fm.py} < len({o}.{fm.py})" if fm.is_list else f"{o}.{fm.py} is not None"
            items: list[WriteItem] = [WriteBits(width, code)]
            items += self.encode_action(cm, p, fm)
            action = flush_writes(items)
            if chain is not None and code == chain[2]:
                exit_lines = count_exit(chain, self.need_s)[:-1]
                if fm.py not in (reach[chain[1]] if chain[1] >= 0 else set()):
                    exit_lines += _indent(self.too_many(cm, fm))
                action += [*exit_lines, _IND + "break"]
            else:
                action += self.unreachable_checks(cm, all_prods, p, fm, reach)
                if p.target != k:
                    action += [f"s = {p.target}"] if self.need_s else []
                    action += ["break"] if selfloop else []
            lines += [f"{'elif' if n else 'if'} {cond}:", *_indent(action)]
        return lines

    def too_many(self, cm: ClassModel, fm: FieldModel) -> list[str]:
        return [
            f"if i_{fm.py} < len({self.obj}.{fm.py}):",
            _IND + f"raise encode_error('{cm.name}.{fm.py}', 'too many entries')",
        ]

    def unreachable_checks(
        self,
        cm: ClassModel,
        all_prods: list[Production],
        p: Production,
        fm: FieldModel,
        reach: list[set[str]],
    ) -> list[str]:
        """Fields that taking `p` makes unreachable must be empty (a second choice member,
        list entries beyond maxOccurs)."""
        later = all_prods[all_prods.index(p) + 1 :]
        target_reach = reach[p.target] if p.target >= 0 else set()
        lines: list[str] = []
        seen: set[str] = set()
        for q in [p, *later]:
            if q.kind not in (AT, SE, CH):
                continue
            qf = self.field_for(cm, q)
            if qf.py in target_reach or qf.py in seen or (qf is fm and not fm.is_list):
                continue
            seen.add(qf.py)
            if qf is fm:
                lines += self.too_many(cm, fm)
                continue
            o = self.obj
            present = f"i_{qf.py} < len({o}.{qf.py})" if qf.is_list else f"{o}.{qf.py} is not None"
            lines += [
                f"if {present}:",
                _IND + f"raise encode_error('{cm.name}.{qf.py}', 'cannot be combined with "
                f"{fm.py}')",
            ]
        return lines

    def encode_action(self, cm: ClassModel, p: Production, fm: FieldModel) -> list[WriteItem]:
        fwhere = f"{cm.name}.{fm.py}"
        pre: list[str] = []
        if fm.is_list:
            pre = [f"x_{fm.py} = {self.obj}.{fm.py}[i_{fm.py}]", f"i_{fm.py} += 1"]
            expr = f"x_{fm.py}"
        else:
            expr = f"{self.obj}.{fm.py}"
        if p.kind == SE and p.element is not None and isinstance(p.element.type, ComplexType):
            if self.inlinable(p.element.type):
                items: list[WriteItem] = [Raw(pre)] if pre else []
                return items + self.inline_encode(p.element.type, expr)
            call = f"{self.fn(self.key_of(p.element.type), 'e')}(w, {expr})"
            return [Raw([*pre, *with_writer([call])])]
        if p.kind == SE:
            assert p.element is not None and isinstance(p.element.type, SimpleType)
            return [
                WriteBits(1, 0, pre),
                *self.write_value(p.element.type, expr, fwhere, []),
                WriteBits(1, 0),
            ]
        st = p.simple if p.kind == CH else (p.attribute.type if p.attribute else None)
        assert st is not None
        return self.write_value(st, expr, fwhere, pre)
