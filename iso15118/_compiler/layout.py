"""Facts about a type grammar that the code generator needs: an order to emit the states
in, which states every path passes through, unrolled repetitions, reachable fields."""

from __future__ import annotations

from .grammar import EE, SE, Grammar, Production

_IND = "    "


def count_exit(chain: tuple[int, int, int], need_s: bool) -> list[str]:
    length, exit_state, _x = chain
    lines = ["n += 1", f"if n == {length}:"]
    if need_s:
        lines.append(_IND + f"s = {exit_state}")
    lines.append(_IND + "break")
    return lines


def describe(p: Production) -> str:
    if p.qname is not None:
        return f"{p.kind}({p.qname[1]})"
    return p.kind


def layout(g: Grammar) -> tuple[list[int], bool, set[int]]:
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


def skip_chain_interiors(
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


def chains(g: Grammar) -> dict[int, tuple[int, int, int]]:
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


def reachable(direct: list[set[str]], g: Grammar) -> list[set[str]]:
    """Per state, the fields whose productions can still come (`direct`: in the state)."""
    reach = [set(d) for d in direct]
    changed = True
    while changed:
        changed = False
        for i, state in enumerate(g.states):
            for p in state.productions:
                if p.target >= 0 and not reach[p.target] <= reach[i]:
                    reach[i] |= reach[p.target]
                    changed = True
    return reach
