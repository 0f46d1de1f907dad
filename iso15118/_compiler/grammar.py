"""EXI 1.0 schema-informed grammars (section 8.5.4) for the complex types of a schema set.

Each complex type becomes a normalised, deterministic grammar: states whose first-level
productions are sorted as section 8.5.4.3 prescribes.  Under the ISO 15118 profile the
grammars are non-strict, so every element state also has second-level productions and
its first-level event codes are sized for n + 1 values (section 8.5.4.4.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .xsd import (
    UNBOUNDED,
    AttributeUse,
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

AT, SE, SE_ANY, EE, CH, CH_UNTYPED = "AT", "SE", "SE(*)", "EE", "CH", "CH(untyped)"
_CATEGORY = {AT: 0, SE: 4, SE_ANY: 6, EE: 7, CH: 8, CH_UNTYPED: 8}


@dataclass(slots=True, eq=False)
class Production:
    kind: str
    target: int = -1  # index of the next state; -1 after EE
    attribute: AttributeUse | None = None
    element: ElementDecl | None = None
    simple: SimpleType | None = None
    order: tuple[int, ...] = ()

    @property
    def qname(self) -> QName | None:
        if self.attribute is not None:
            return self.attribute.name
        if self.element is not None:
            return self.element.name
        return None

    def sort_key(self) -> tuple[object, ...]:
        if self.kind == AT:
            assert self.attribute is not None
            return (0, self.attribute.name[1], self.attribute.name[0])
        return (_CATEGORY[self.kind], self.order)


@dataclass(slots=True, eq=False)
class State:
    productions: list[Production] = field(default_factory=list)

    @property
    def width(self) -> int:
        """Bits of the first-level event code: n productions plus the escape to level 2."""
        return (len(self.productions)).bit_length()


@dataclass(slots=True, eq=False)
class Grammar:
    type: ComplexType
    states: list[State]


@dataclass(slots=True, eq=False)
class _NState:
    edges: list[tuple[tuple[object, ...], Production]] = field(default_factory=list)
    eps: list[int] = field(default_factory=list)


class _Builder:
    def __init__(self, schemas: SchemaSet) -> None:
        self.schemas = schemas
        self.states: list[_NState] = []
        self.order: dict[int, int] = {}

    def new(self) -> int:
        self.states.append(_NState())
        return len(self.states) - 1

    def edge(self, src: int, dst: int, label: tuple[object, ...], prod: Production) -> None:
        prod.target = dst
        self.states[src].edges.append((label, prod))

    def term_order(self, term: object) -> int:
        return self.order.setdefault(id(term), len(self.order))

    def term(self, term: ElementDecl | ModelGroup | Wildcard, start: int) -> int:
        if isinstance(term, ElementDecl):
            end = self.new()
            index = self.term_order(term)
            alternatives = [term]
            if term.is_global:
                alternatives = self.schemas.substitutes(term)
                if not alternatives:
                    raise SchemaError(f"abstract element {term.name} has no substitutes")
            for sub, decl in enumerate(alternatives):
                prod = Production(SE, element=decl, order=(index, sub))
                self.edge(start, end, (SE, decl.name), prod)
            return end
        if isinstance(term, Wildcard):
            end = self.new()
            prod = Production(SE_ANY, order=(self.term_order(term),))
            self.edge(start, end, (SE_ANY,), prod)
            return end
        if term.kind == "sequence":
            current = start
            for particle in term.particles:
                current = self.particle(particle, current)
            return current
        end = self.new()
        for particle in term.particles:
            self.states[self.particle(particle, start)].eps.append(end)
        if not term.particles:
            self.states[start].eps.append(end)
        return end

    def particle(self, particle: Particle, start: int) -> int:
        # assign the schema order before copies are made
        self._number(particle.term)
        current = start
        for _ in range(particle.min):
            current = self.term(particle.term, current)
        if particle.max == UNBOUNDED:
            loop = self.new()
            self.states[current].eps.append(loop)
            self.states[self.term(particle.term, loop)].eps.append(loop)
            return loop
        ends = [current]
        for _ in range(particle.max - particle.min):
            current = self.term(particle.term, current)
            ends.append(current)
        if len(ends) == 1:
            return current
        final = self.new()
        for end in ends:
            self.states[end].eps.append(final)
        return final

    def _number(self, term: object) -> None:
        self.term_order(term)
        if isinstance(term, ModelGroup):
            for particle in term.particles:
                self._number(particle.term)

    def closure(self, states: frozenset[int]) -> frozenset[int]:
        seen = set(states)
        stack = list(states)
        while stack:
            for nxt in self.states[stack.pop()].eps:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)


def type_grammar(schemas: SchemaSet, ct: ComplexType) -> Grammar:
    """The normalised EXI grammar of complex type `ct` within `schemas`."""
    b = _Builder(schemas)
    start = b.new()
    current = start
    for attr in sorted(ct.attributes, key=lambda a: (a.name[1], a.name[0])):
        nxt = b.new()
        b.edge(current, nxt, (AT, attr.name), Production(AT, attribute=attr))
        if not attr.required:
            b.states[current].eps.append(nxt)
        current = nxt
    content_first = len(b.states)
    if ct.simple_content is not None:
        end = b.new()
        b.edge(current, end, (CH,), Production(CH, simple=ct.simple_content))
    elif ct.particle is not None:
        end = b.particle(ct.particle, current)
    else:
        end = current
    if ct.mixed:
        for index in [current, *range(content_first, len(b.states))]:
            b.edge(index, index, (CH_UNTYPED,), Production(CH_UNTYPED))
    return _determinise(b, start, end, ct)


def _determinise(b: _Builder, start: int, final: int, ct: ComplexType) -> Grammar:
    first = b.closure(frozenset([start]))
    index: dict[frozenset[int], int] = {first: 0}
    todo = [first]
    states: list[State] = []
    while todo:
        subset = todo.pop(0)
        grouped: dict[tuple[object, ...], tuple[Production, set[int]]] = {}
        for nstate in sorted(subset):
            for label, prod in b.states[nstate].edges:
                if label in grouped:
                    grouped[label][1].add(prod.target)
                else:
                    grouped[label] = (prod, {prod.target})
        productions: list[Production] = []
        for prod, targets in grouped.values():
            target_set = b.closure(frozenset(targets))
            if target_set not in index:
                index[target_set] = len(index)
                todo.append(target_set)
            productions.append(
                Production(
                    prod.kind,
                    index[target_set],
                    prod.attribute,
                    prod.element,
                    prod.simple,
                    prod.order,
                )
            )
        if final in subset:
            productions.append(Production(EE))
        productions.sort(key=Production.sort_key)
        states.append(State(productions))
    return Grammar(ct, _minimise(states))


def _minimise(states: list[State]) -> list[State]:
    """Merge equivalent states (same events leading to equivalent states).  Event codes
    depend only on a state's productions, so this changes no bit on the wire."""
    labels: list[list[tuple[object, ...]]] = [
        [(p.kind, p.qname, p.order, id(p.simple)) for p in st.productions] for st in states
    ]
    order = _reverse_topological(states)
    if order is not None:
        # acyclic apart from self-loops: one pass from the end merges identical states
        block = [0] * len(states)
        table: dict[tuple[object, ...], int] = {}
        for i in order:
            sig = tuple(
                (lab, "self" if p.target == i else (block[p.target] if p.target >= 0 else -1))
                for lab, p in zip(labels[i], states[i].productions, strict=True)
            )
            block[i] = table.setdefault(sig, len(table))
    else:
        block = _moore(states, labels)
    return _rebuild(states, block)


def _reverse_topological(states: list[State]) -> list[int] | None:
    n = len(states)
    outdeg = [0] * n
    preds: list[list[int]] = [[] for _ in range(n)]
    for i, st in enumerate(states):
        for t in {p.target for p in st.productions if p.target >= 0 and p.target != i}:
            outdeg[i] += 1
            preds[t].append(i)
    ready = [i for i in range(n) if outdeg[i] == 0]
    order = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in preds[i]:
            outdeg[j] -= 1
            if outdeg[j] == 0:
                ready.append(j)
    return order if len(order) == n else None


def _moore(states: list[State], labels: list[list[tuple[object, ...]]]) -> list[int]:
    block = [0] * len(states)
    count = 1
    while True:
        signatures: dict[tuple[object, ...], int] = {}
        new_block = []
        for i, st in enumerate(states):
            moves = [
                (lab, block[p.target] if p.target >= 0 else -1)
                for lab, p in zip(labels[i], st.productions, strict=True)
            ]
            sig = (block[i], *moves)
            new_block.append(signatures.setdefault(sig, len(signatures)))
        if len(signatures) == count:
            return block
        block, count = new_block, len(signatures)


def _rebuild(states: list[State], block: list[int]) -> list[State]:
    # renumber in breadth-first order from the start state
    order: dict[int, int] = {}
    queue = [0]
    while queue:
        i = queue.pop(0)
        if block[i] in order:
            continue
        order[block[i]] = len(order)
        queue += [p.target for p in states[i].productions if p.target >= 0]
    result: list[State | None] = [None] * len(order)
    for i, st in enumerate(states):
        b = order.get(block[i])
        if b is None or result[b] is not None:
            continue
        result[b] = State(
            [
                Production(
                    p.kind,
                    order[block[p.target]] if p.target >= 0 else -1,
                    p.attribute,
                    p.element,
                    p.simple,
                    p.order,
                )
                for p in st.productions
            ]
        )
    return [st for st in result if st is not None]
