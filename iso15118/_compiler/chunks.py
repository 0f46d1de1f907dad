"""Straight-line runs of fixed-width fields, read or written with one call.

A schema-informed stream is mostly small fixed-width pieces: event codes, the CH and EE
codes around simple values, enumerations, booleans, bounded integers.  Where the grammar
leaves no choice between them, the generated code reads (or writes) a whole run at once
and takes the pieces apart with shifts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

MAX_RUN = 62  # bits per call, so that every chunk stays a small int
_IND = "    "


@dataclass(slots=True)
class ReadBits:
    """`width` bits: a structural code that must equal `expect`, or a value handed to the
    statement templates in `lines` as `{x}`."""

    width: int
    what: str
    expect: int | None = None
    lines: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WriteBits:
    """`width` bits with the value of `expr` (an int constant or an expression), after the
    checks in `pre` have run."""

    width: int
    expr: int | str
    pre: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Raw:
    """Code that reads or writes on its own (or branches): ends a run."""

    lines: list[str]


@dataclass(slots=True)
class Stmt:
    """Bookkeeping (state numbers) that may move after the run it sits in."""

    lines: list[str]


def flush_reads(items: Sequence[ReadBits | Raw | Stmt], where: str) -> list[str]:
    return _flush(items, lambda run: _read_run(run, where))


def flush_writes(items: Sequence[WriteBits | Raw | Stmt]) -> list[str]:
    return _flush(items, _write_run)


Bits = TypeVar("Bits", ReadBits, WriteBits)


def _flush(
    items: Sequence[Bits | Raw | Stmt], emit: Callable[[list[Bits]], list[str]]
) -> list[str]:
    """Code for `items`: runs of fixed-width pieces (at most MAX_RUN bits) become one call
    each; Raw code ends a run; Stmt lines follow the run they sit in."""
    out: list[str] = []
    run: list[Bits] = []
    later: list[str] = []
    for item in items:
        if isinstance(item, Stmt):
            later += item.lines
        elif isinstance(item, Raw):
            out += emit(run) + later + item.lines
            run, later = [], []
        else:
            if run and sum(b.width for b in run) + item.width > MAX_RUN:
                out += emit(run) + later
                run, later = [], []
            run.append(item)
    return out + emit(run) + later


def read_into(var: str, width: int) -> list[str]:
    """Read `width` bits into `var`.  Generated decoders keep the reader's window in the
    locals `win` (an int) and `av` (its unread bits) and refill it when it runs short."""
    return [
        f"av -= {width}",
        "if av < 0:",
        _IND + f"win, av = r.refill(av, {width})",
        f"{var} = (win >> av) & {(1 << width) - 1:#x}",
    ]


def with_reader(lines: list[str]) -> list[str]:
    """Statements that use the reader itself: hand the window position over and back."""
    return ["r.avail = av", *lines, "win = r.win", "av = r.avail"]


def _read_run(run: list[ReadBits], where: str) -> list[str]:
    if not run:
        return []
    total = sum(b.width for b in run)
    if len(run) == 1 and run[0].expect is not None:
        b = run[0]
        return [
            *read_into("c", b.width),
            f"if c{f' != {b.expect}' if b.expect else ''}:",
            _IND + f"raise r.fail_at(av + {b.width}, {where!r}, 'expected {b.what}')",
        ]
    out = read_into("c", total)
    mask = expect = 0
    shift = total
    values: list[str] = []
    whats = []
    for b in run:
        shift -= b.width
        ones = (1 << b.width) - 1
        if b.expect is not None:
            mask |= ones << shift
            expect |= b.expect << shift
            whats.append(b.what)
            continue
        x = "c" if total == b.width else f"(c >> {shift})" if shift + b.width == total else None
        if x is None:
            x = f"((c >> {shift}) & {ones})" if shift else f"(c & {ones})"
        values += [line.replace("{x}", x) for line in b.lines]
    if mask:
        test = "c" if mask == (1 << total) - 1 else f"c & {mask:#x}"
        out += [
            f"if {test} != {expect:#x}:",
            _IND + f"raise r.fail_at(av + {total}, {where!r}, 'expected {', '.join(whats)}')",
        ]
    return out + values


def _write_run(run: list[WriteBits]) -> list[str]:
    if not run:
        return []
    out = [line for b in run for line in b.pre]
    total = sum(b.width for b in run)
    const = 0
    parts = []
    shift = total
    for b in run:
        shift -= b.width
        if isinstance(b.expr, int):
            const |= b.expr << shift
        else:
            parts.append(f"({b.expr}) << {shift}" if shift else f"({b.expr})")
    if const or not parts:
        parts.append(f"{const:#x}")
    expr = " | ".join(parts)
    return [
        *out,
        f"a = (a << {total}) | {expr}" if expr != "0x0" else f"a <<= {total}",
        f"k += {total}",
    ]


def with_writer(lines: list[str]) -> list[str]:
    """Statements that call the writer itself: the generated encoder keeps the writer's
    accumulator in the locals `a` and `k` and hands them over around such calls."""
    return ["w.acc = a", "w.n = k", *lines, "a = w.acc", "k = w.n"]
