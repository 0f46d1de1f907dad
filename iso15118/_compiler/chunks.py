"""Straight-line runs of fixed-width fields, read or written with one call.

A schema-informed stream is mostly small fixed-width pieces: event codes, the CH and EE
codes around simple values, enumerations, booleans, bounded integers.  Where the grammar
leaves no choice between them, the generated code reads (or writes) a whole run at once
and takes the pieces apart with shifts, or looks the run up in a table of its valid bit
patterns when it holds several small values.  Decoders also read ahead across choices, after
the first octet of an integer, into the states several ways lead to and into the decoder
they call (see "reading ahead" below).  Where the bits of the run's value above a piece
are known (a fresh read, a branch of a choice, a caller's lead), checks and event codes
are comparisons of the whole value instead of shifts and masks.  Encoders write an
Unsigned Integer together with the runs on either side of it.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_RUN = 62  # bits per call, so that every chunk stays a small int
MAX_TABLE = 256  # entries of a run table (see _table_run)
AHEAD = 30  # reading ahead stops at this many bits per read: one digit of a Python int
_IND = "    "


@dataclass(slots=True)
class ReadBits:
    """`width` bits: a structural code that must equal `expect`, or a value handed to the
    statement templates in `lines` as `{x}`."""

    width: int
    what: str
    expect: int | None = None
    lines: list[str] = field(default_factory=list)
    # a value that a run table may give: the local it goes to, and the sequence (an
    # expression) that maps the field's bits to it
    table: tuple[str, str] | None = None


@dataclass(slots=True)
class WriteBits:
    """`width` bits with the value of `expr` (an int constant or an expression), after the
    checks in `pre` have run."""

    width: int
    expr: int | str
    pre: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WriteUInt:
    """An Unsigned Integer in `u` (set by `pre`, after its checks): written in one piece
    with the fixed-width runs before and after it (EXI 1.0 section 7.1.6)."""

    pre: list[str]


@dataclass(slots=True)
class Raw:
    """Code that reads or writes on its own (or branches): ends a run.  With `reads` false,
    plain statements that touch neither the input nor the run's value `c`."""

    lines: list[str]
    reads: bool = True


@dataclass(slots=True)
class Stmt:
    """Bookkeeping (state numbers) that may move after the run it sits in."""

    lines: list[str]


@dataclass(slots=True)
class Choice:
    """An event code of `width` bits (in `ec`) choosing among `branches`: the items of each
    alternative, then its `tails` (state bookkeeping, `break`; they neither read nor use `c`)."""

    width: int
    where: str
    expected: str
    branches: list[list[ReadItem]]
    tails: list[list[str]]


@dataclass(slots=True)
class UIntTail:
    """The octets of an Unsigned Integer after its first, a ReadBits into `u` just before;
    then `lines` with the whole value in `u`.  `reads`: those lines use the reader too."""

    lines: list[str]
    reads: bool = False


@dataclass(slots=True)
class ReadCall:
    """A call of another type's decoder: `lines` (they use the reader) run with the next
    `lead` bits of the stream in `c` (nothing above them), the reader after them: the
    callee's first read, done by the caller's last."""

    lines: list[str]
    lead: int


@dataclass(slots=True)
class Guard:
    """Code for a state that several ways lead into: `items` run when `cond` holds.  Both
    ways start from the same place of the stream, so the bits read ahead before it serve
    the state's code, or else what follows it."""

    cond: str
    items: list[ReadItem]


ReadItem = ReadBits | Raw | Stmt | Choice | UIntTail | ReadCall | Guard


def flush_reads(items: Sequence[ReadItem], where: str, lead: int = 0, want: int = 0) -> list[str]:
    """Code for `items`, entered with the next `lead` bits in `c` (nothing above them); it
    leaves the next `want` bits in the low bits of `c`."""
    _LEADS.clear()
    return _Reads(where).flush(items, _Ahead(lead, 0, 0 if lead else None), want)[0]


def entry_lead(items: Sequence[ReadItem]) -> int:
    """How many bits a decoder whose body is `items` wants read ahead by its caller (a
    little less than a whole read, so that a caller's event code fits with them)."""
    _LEADS.clear()
    return min(_lead(items), AHEAD - 2)


def flush_writes(items: Sequence[WriteBits | WriteUInt | Raw | Stmt]) -> list[str]:
    """Code for `items`: runs of fixed-width pieces (at most MAX_RUN bits) become one shift
    of the accumulator each, an Unsigned Integer joins the runs on either side; Raw code
    ends a run; Stmt lines follow the run they sit in."""
    out: list[str] = []
    run: list[WriteBits] = []
    later: list[str] = []
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if isinstance(item, Stmt):
            later += item.lines
        elif isinstance(item, Raw):
            out += _write_run(run) + later + item.lines
            run, later = [], []
        elif isinstance(item, WriteUInt):
            if _wwidth(run) + 24 > MAX_RUN:
                out += _write_run(run)
                run = []
            after: list[WriteBits] = []
            while i < len(items):
                nxt = items[i]
                if isinstance(nxt, Stmt):
                    later += nxt.lines
                elif (
                    isinstance(nxt, WriteBits)
                    and _wwidth(run) + 24 + _wwidth(after) + nxt.width <= MAX_RUN
                ):
                    after.append(nxt)
                else:
                    break
                i += 1
            out += _write_uint(run, item, after) + later
            run, later = [], []
        else:
            if run and _wwidth(run) + item.width > MAX_RUN:
                out += _write_run(run) + later
                run, later = [], []
            run.append(item)
    return out + _write_run(run) + later


def _wwidth(run: Sequence[WriteBits]) -> int:
    return sum(b.width for b in run)


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


# -- reading ahead ------------------------------------------------------------------------------
#
# Taking bits out of the window costs far more than splitting a small int, so a read also
# takes the bits of what follows when that is fixed-width: the alternatives after an event
# code, the rest after an Unsigned Integer's first octet (most values fit in one), the run
# after a choice, the first bits of a called decoder (ReadCall) or of a state entered from
# several places (Guard).  Bits read ahead sit in `c`; what is not used is handed back
# (`av += n`).
# The generated reader pads the stream with zero octets (BitReader.refill), so reading ahead
# past the end is harmless; the decoder refuses a document that ends beyond the data.


@dataclass(slots=True, frozen=True)
class _Ahead:
    """`n` bits read ahead: the next n bits of the stream are bits off..off+n of `c`.  When
    the bits of `c` above them are known (a fresh read has none; a branch of a choice knows
    its event code), `hi` is their value: `c >> (off + n) == hi`."""

    n: int
    off: int
    hi: int | None = None


def _width(run: Sequence[ReadBits]) -> int:
    return sum(b.width for b in run)


def _passive(item: ReadItem) -> bool:
    return isinstance(item, Stmt) or (isinstance(item, Raw) and not item.reads)


_LEADS: dict[tuple[tuple[int, ...], int], int] = {}  # (items by id, after) -> _lead


def _lead(items: Sequence[ReadItem], after: int = 0) -> int:
    """How many bits the first read of `items` takes (with what it reads ahead), when the
    next `after` bits are wanted after them."""
    key = (tuple(map(id, items)), after)
    lead = _LEADS.get(key)
    if lead is None:
        lead = _LEADS[key] = _first_read(items, after)
    return lead


def _first_read(items: Sequence[ReadItem], after: int) -> int:
    total = 0
    for i, item in enumerate(items):
        if _passive(item):
            continue
        if isinstance(item, ReadBits | Choice):
            if total + item.width > MAX_RUN:
                return total
            total += item.width
            if isinstance(item, Choice):
                ahead = _choice_ahead(item, items[i + 1 :], after)
                return total + min(ahead, max(0, AHEAD - total))
            continue
        if isinstance(item, UIntTail) and not item.reads:
            return total + min(_lead(items[i + 1 :], after), max(0, AHEAD - total))
        if isinstance(item, ReadCall):
            return total + min(item.lead, max(0, AHEAD - total))
        if isinstance(item, Guard):
            rest = items[i + 1 :]
            lead = max(_lead([*item.items, *rest], after), _lead(rest, after))
            return total + min(lead, max(0, AHEAD - 2 - total))  # as entry_lead
        return total
    return total + min(after, max(0, AHEAD - total))


def _choice_ahead(choice: Choice, rest: Sequence[ReadItem], after: int) -> int:
    return max((_lead([*b, *rest], after) for b in choice.branches), default=0)


def _ends_in_raise(code: list[str]) -> bool:
    return bool(code) and code[-1].startswith("raise")


class _Reads:
    def __init__(self, where: str) -> None:
        self.where = where
        # the value of the bits above the event code the last run ended in, when known:
        # the choice then branches on comparisons of `c` (see chain)
        self.code_top: int | None = None

    def flush(
        self, items: Sequence[ReadItem], ahead: _Ahead, want: int
    ) -> tuple[list[str], bool, int | None]:
        """Code for `items`, entered with `ahead` bits in `c`; it leaves the next `want` bits
        in the low bits of `c`.  Also whether the code ends in a raise, and the value of the
        bits of `c` above those it leaves, if known."""
        out: list[str] = []
        run: list[ReadBits] = []
        later: list[str] = []

        def emit(lead: int) -> None:
            """Read the run and as much of the `lead` bits after it as is free: what is
            read ahead already, else up to AHEAD bits in all."""
            nonlocal ahead, run, later
            width = _width(run)
            room = ahead.n - width if width <= ahead.n else AHEAD - width
            lines, ahead, self.code_top = _read_run(run, self.where, ahead, max(0, min(lead, room)))
            out.extend(lines + later)
            run, later = [], []

        shared = 0  # what a run of guards reads ahead
        for i, item in enumerate(items):
            rest = items[i + 1 :]
            if isinstance(item, Stmt):
                later += item.lines
            elif isinstance(item, Raw) and not item.reads:
                if run:
                    emit(_lead(rest, want))
                out.extend(later + item.lines)
                later = []
            elif isinstance(item, Raw):
                emit(0)
                out += item.lines
                ahead = _Ahead(0, 0)
                if _ends_in_raise(item.lines):
                    return out, True, None
            elif isinstance(item, ReadCall):
                emit(item.lead)
                settled, hi = self.settle(ahead, item.lead)
                out += settled
                if item.lead and hi != 0:  # the callee wants nothing above them
                    out.append(f"c &= {(1 << item.lead) - 1:#x}")
                out += item.lines
                ahead = _Ahead(0, 0)
            elif isinstance(item, Guard):
                # guards one after another share what they read ahead: whichever runs
                # leaves as much for the next, so that skipping one costs nothing
                later_guard = next((x for x in rest if not _passive(x)), None)
                if isinstance(later_guard, Guard):
                    shared = max(shared, _lead(rest, want))
                lead = max(shared, _lead(items[i:], want))
                emit(lead)
                settled, hi = self.settle(ahead, lead)
                out += settled
                want_next = lead if isinstance(later_guard, Guard) else _lead(rest, want)
                entered = _Ahead(lead, 0, hi)
                taken, raised, taken_hi = _Reads(self.where).flush(item.items, entered, want_next)
                skipped, skipped_hi = self.settle(entered, want_next)
                out += _guarded(item.cond, taken, skipped)
                ahead = _Ahead(want_next, 0, skipped_hi if raised else _same(taken_hi, skipped_hi))
                shared = want_next if isinstance(later_guard, Guard) else 0
            elif isinstance(item, ReadBits | Choice):
                if _width(run) + item.width > MAX_RUN:
                    emit(_lead(items[i:], want))
                if isinstance(item, ReadBits):
                    run.append(item)
                    continue
                code = ReadBits(item.width, item.where, lines=[_EVENT_CODE])
                code.table = ("ec", f"range({1 << item.width})")
                run.append(code)
                emit(_choice_ahead(item, rest, want))
                want_next = _lead(rest, want)
                branches, hi = self.chain(item, ahead, want_next, self.code_top)
                out += branches
                ahead = _Ahead(want_next, 0, hi)
            elif item.reads:
                emit(0)
                out += _uint_more(ahead) + item.lines
                ahead = _Ahead(ahead.n, 0)
            else:
                emit(_lead(rest, want) + 8)  # with the second octet if there is room
                if ahead.n >= 8:
                    out += _uint_second_octet(ahead) + item.lines
                    ahead = _Ahead(ahead.n - 8, ahead.off)
                else:
                    out += _uint_more(ahead) + item.lines
                    ahead = _Ahead(ahead.n, 0)
        emit(want)
        settled, hi = self.settle(ahead, want)
        return out + settled, False, hi

    def settle(self, ahead: _Ahead, want: int) -> tuple[list[str], int | None]:
        """After the last run (which read at most `want` bits ahead): leave exactly the next
        `want` bits in the low bits of `c`.  Also the value of the bits above them, if known."""
        if ahead.n >= want:
            hi = ahead.hi if want else None
            if ahead.n == want:
                return ([f"c >>= {ahead.off}"] if want and ahead.off else []), hi
            drop = ahead.off + ahead.n - want  # hand the bits after them back
            return [f"av += {ahead.n - want}", *([f"c >>= {drop}"] if want and drop else [])], hi
        return [
            f"av -= {want - ahead.n}",
            "if av < 0:",
            _IND + f"win, av = r.refill(av, {want})",
            f"c = (win >> av) & {(1 << want) - 1:#x}",
        ], 0

    def chain(
        self, choice: Choice, ahead: _Ahead, want: int, top: int | None
    ) -> tuple[list[str], int | None]:
        """The branches of `choice`, whose event code sits just above the `ahead` bits.
        With `top` (the value of the bits above the event code) known, a branch is chosen
        by comparing `c` itself, which costs less than taking the code out of it, and each
        branch knows the bits above what it reads ahead.  Also the value of the bits above
        the `want` bits every branch leaves, if they agree on it."""
        bodies: list[list[str]] = []
        ends: list[int | None] = []
        sub = _Reads(choice.where)
        low = ahead.off + ahead.n
        for i, (items, tail) in enumerate(zip(choice.branches, choice.tails, strict=True)):
            if top is not None:
                ahead = _Ahead(ahead.n, ahead.off, top << choice.width | i)
            if want and any(isinstance(x, Stmt) and "s = -1" in x.lines for x in items):
                # the end of the element: only guards of states that cannot come now
                # follow, and they just hand back what the code before them read
                # ahead; so this reads nothing ahead, but counts it read
                code, raised, _hi = sub.flush(items, ahead, 0)
                code = _count_read(code, want)
                ends.append(None)
            else:
                code, raised, hi = sub.flush(items, ahead, want)
                if not raised:
                    ends.append(hi)
            if not raised:
                code += tail
            bodies.append(code or ["pass"])
        bad = f"f'event code {{ec}}, expected {choice.expected}')"
        at = f"av + {ahead.n}" if ahead.n else "av"
        error = [] if top is None else [f"ec = (c >> {low}) & {(1 << choice.width) - 1:#x}"]
        error.append(f"raise r.fail_at({at}, {choice.where!r}, {bad}")
        if top is None:
            return _branch_on_code(bodies, error), _same(*ends)
        limits = [(top << choice.width | (i + 1)) << low for i in range(len(bodies))]
        return _branch_on_value(bodies, limits, error), _same(*ends)


# CPython 3.11 specialises a comparison only when a conditional jump follows it directly;
# a jump over more than 255 code units needs a prefix (EXTENDED_ARG) and leaves the
# comparison generic, several times slower.  So the longest branch of a choice goes last,
# under `else`, where no conditional jump has to pass over it.


def _branch_on_code(bodies: list[list[str]], error: list[str]) -> list[str]:
    """Branch i when `ec == i`, `error` for any other code; the longest branch last."""
    last = max(range(len(bodies)), key=lambda i: len(bodies[i]))
    out: list[str] = []
    for i, body in enumerate(bodies):
        if i != last:
            out += [f"{'elif' if out else 'if'} ec == {i}:", *_indent(body)]
    out += [f"{'elif' if out else 'if'} ec != {last}:", *_indent(error)]
    return [*out, "else:", *_indent(bodies[last])]


def _branch_on_value(bodies: list[list[str]], limits: list[int], error: list[str]) -> list[str]:
    """Branch i when `c` is below limits[i] and not below the limit before (the least
    value of `c` is known), `error` from the last limit on; the longest branch last."""
    last = max(range(len(bodies)), key=lambda i: len(bodies[i]))
    out: list[str] = []
    for i in range(last):
        out += [f"{'elif' if out else 'if'} c < {limits[i]:#x}:", *_indent(bodies[i])]
    later: list[str] = []  # the branches after the longest, and the error
    for i in range(last + 1, len(bodies)):
        later += [f"{'elif' if later else 'if'} c < {limits[i]:#x}:", *_indent(bodies[i])]
    later = [*later, "else:", *_indent(error)] if later else error
    out += [f"{'elif' if out else 'if'} c >= {limits[last]:#x}:", *_indent(later)]
    return [*out, "else:", *_indent(bodies[last])]


def _guarded(cond: str, taken: list[str], skipped: list[str]) -> list[str]:
    """`cond` (`if x == y:`) with `taken` under it and `skipped` otherwise; the longer
    part last (see _branch_on_code)."""
    if len(taken) > len(skipped):
        negated = re.fullmatch(r"if (.+) == (.+):", cond)
        if negated:
            inverse = f"if {negated.group(1)} != {negated.group(2)}:"
            return [inverse, *_indent(skipped or ["pass"]), "else:", *_indent(taken)]
    return [cond, *_indent(taken or ["pass"]), *(["else:", *_indent(skipped)] if skipped else [])]


def _same(*values: int | None) -> int | None:
    """The value all of `values` are, or None (unknown) if they differ or there are none."""
    return values[0] if values and all(v == values[0] for v in values) else None


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return [_IND * depth + line for line in lines]


def _count_read(code: list[str], n: int) -> list[str]:
    """`code`, then `av -= n`: merged into a hand-back that ends it, if any (only state
    numbers set after it)."""
    for i in range(len(code) - 1, -1, -1):
        found = re.fullmatch(r"av ([+-])= (\d+)", code[i])
        if found:
            delta = int(found.group(2)) * (1 if found.group(1) == "+" else -1) - n
            line = [f"av += {delta}" if delta > 0 else f"av -= {-delta}"] if delta else []
            return code[:i] + line + code[i + 1 :]
        if not re.fullmatch(r"s = -?\d+", code[i]):
            break
    return [*code, f"av -= {n}"]


def _uint_more(ahead: _Ahead) -> list[str]:
    """After the first octet `u` of an Unsigned Integer: the second and third in place,
    more by the reader (EXI 1.0 section 7.1.6).  The `ahead.n` bits read ahead after the
    first octet move along: they follow the last octet in every case."""
    q = ahead.n
    if not q:
        octet = read_into("u2", 8)
        last = with_reader(["u = r.uint_more(u, 21)"])
    else:
        octet = [
            "av -= 8",
            "if av < 0:",
            _IND + f"win, av = r.refill(av, {8 + q})",
            f"c = (win >> av) & {(1 << (8 + q)) - 1:#x}",
            f"u2 = c >> {q}",
        ]
        last = [
            f"av += {q}",
            *with_reader(["u = r.uint_more(u, 21)"]),
            *read_into("c", q),
        ]
    fast = [f"c >>= {ahead.off}"] if ahead.off and q else []
    return [
        "if u > 127:",
        *_indent(octet),
        _IND + "if u2 < 128:",  # two octets, the most frequent case after one
        _IND * 2 + "u += _U2[u2]",
        _IND + "else:",
        _IND * 2 + "u = (u & 0x7F) | (u2 & 0x7F) << 7",
        *_indent(octet, 2),
        _IND * 2 + "u |= (u2 & 0x7F) << 14",
        _IND * 2 + "if u2 > 127:",
        *_indent(last, 3),
        *(["else:", *_indent(fast)] if fast else []),
    ]


def _uint_second_octet(ahead: _Ahead) -> list[str]:
    """After the first octet `u` of an Unsigned Integer, with the `ahead.n` bits read
    after it (8 or more, so the second octet is among them): the second octet from them,
    the third and more as in _uint_more.  Leaves the `ahead.n - 8` bits after the value at
    `ahead.off` in `c` whatever its length."""
    q, off = ahead.n, ahead.off
    rest = q - 8
    octet = f"(c >> {off + rest}) & 0xFF" if off + rest else "c & 0xFF"
    last = [*([f"av += {rest}"] if rest else []), *with_reader(["u = r.uint_more(u, 21)"])]
    if rest:
        last += read_into("c", rest)
    one = ["av += 8", *(["c >>= 8"] if rest else [])]  # one octet: hand the second back
    return [
        "if u > 127:",
        _IND + f"u2 = {octet}",
        _IND + "if u2 < 128:",  # two octets, the most frequent case after one
        _IND * 2 + "u += _U2[u2]",
        _IND + "else:",
        _IND * 2 + "u = (u & 0x7F) | (u2 & 0x7F) << 7",
        _IND * 2 + "av -= 8",  # the third octet and the bits after it
        _IND * 2 + "if av < 0:",
        _IND * 3 + f"win, av = r.refill(av, {q})",
        _IND * 2 + f"c = (win >> av) & {(1 << q) - 1:#x}",
        _IND * 2 + (f"u2 = c >> {rest}" if rest else "u2 = c"),
        _IND * 2 + "u |= (u2 & 0x7F) << 14",
        _IND * 2 + "if u2 > 127:",
        *_indent(last, 3),
        *([_IND * 2 + f"c <<= {off}"] if off and rest else []),
        "else:",
        *_indent(one),
    ]


RUN_TABLES: dict[str, str] = {}  # name -> the run_table(...) call that builds it


def table_definitions(code: str) -> list[str]:
    """The run tables that `code` uses, as module-level assignments."""
    names = sorted(set(re.findall(r"\b_T[0-9a-f]{8}\b", code)))
    return [f"{name} = {RUN_TABLES[name]}" for name in names]


def _table_run(run: list[ReadBits], low: int, exact_top: bool) -> tuple[list[str], int] | None:
    """A run whose pieces (bar an Unsigned Integer's first octet at its end) are structural
    codes and small values is looked up at once in a table of its valid bit patterns: the
    statements, and how many pieces at the end it leaves out.  None if not worth it."""
    tail = 1 if run[-1].table is None and run[-1].expect is None else 0
    head = run[: len(run) - tail]
    values = [b for b in head if b.expect is None]
    if any(b.table is None for b in values) or not values:
        return None
    if len(values) < 2 and all(b.expect is None for b in head):
        return None
    size = 1
    for b in values:
        size <<= b.width
    if size > MAX_TABLE:
        return None
    spec = ", ".join(
        f"({b.width}, {b.expect}, None)" if b.table is None else f"({b.width}, None, {b.table[1]})"
        for b in head
    )
    call = f"run_table(({spec},))"
    name = f"_T{zlib.crc32(call.encode()):08x}"
    RUN_TABLES[name] = call
    width = _width(head)
    low += _width(run[len(head) :])
    if exact_top:
        key = f"c >> {low}" if low else "c"
    else:
        key = f"(c >> {low}) & {(1 << width) - 1:#x}" if low else f"c & {(1 << width) - 1:#x}"
    targets = ", ".join(b.table[0] for b in values if b.table is not None)
    return [f"{targets} = {name}[{key}]"], tail


_EVENT_CODE = "ec = {x}"  # the statement of a choice's event code, the last piece of its run


def _read_run(
    run: list[ReadBits], where: str, ahead: _Ahead, q: int
) -> tuple[list[str], _Ahead, int | None]:
    """Read `run` and `q` bits more (read ahead), using the bits already `ahead`.  Returns
    the code (the checks, then the value statements), what is then read ahead, and, when
    the run ends in an event code with only known bits above it, their value (the code is
    then left in `c` for the choice to compare)."""
    total = _width(run)
    need = total + q
    if need <= ahead.n:
        base = ahead.off + ahead.n - need
        hi = ahead.hi  # the bits above the run
        out = [f"av += {ahead.n - need}"] if ahead.n > need else []
    else:
        base = 0
        hi = 0  # c holds exactly the `need` bits
        out = [
            f"av -= {need - ahead.n}",
            "if av < 0:",
            _IND + f"win, av = r.refill(av, {need})",
            f"c = (win >> av) & {(1 << need) - 1:#x}",
        ]
    low = base + q
    code = run[-1] if run and run[-1].lines == [_EVENT_CODE] else None
    # with an event code last, its value is left in `c` for the choice to compare
    pieces = run if code is None else [*run[:-1], ReadBits(code.width, code.what)]
    if code is not None:
        top = _known_above(run[:-1], hi)
        if top is None and _known_above(run[:-1], 0) is not None:
            # only structural codes above the event code, but not what is above them:
            # clearing that costs less than looking the run up in a table
            out.append(f"c &= {(1 << (low + total)) - 1:#x}")
            hi = 0
            top = _known_above(run[:-1], hi)
        if top is not None:
            return out + _fields(pieces, where, low, hi, q), _Ahead(q, base), top
    after = _Ahead(q, base, _known_above(run, hi))
    tabled = _table_run(run, low, hi == 0) if len(run) > 1 else None
    if tabled is None:
        lines = out + _fields(pieces, where, low, hi, q)
        if code is None:
            return lines, after, None
        # values above the event code: once they are taken, clear them
        return [*lines, f"c &= {(1 << (low + code.width)) - 1:#x}"], _Ahead(q, base), 0
    lookup, tail = tabled
    head, rest = run[: len(run) - tail], run[len(run) - tail :]
    below = _width(rest)
    slow = [  # the KeyError says nothing the reader needs
        f"{line} from None" if line.lstrip().startswith("raise ") else line
        for line in _fields(head, where, low + below, hi, q + below)
    ]
    out += [
        "try:",
        *_indent(lookup),
        "except KeyError:  # not a valid pattern: say why",
        *_indent(slow),
    ]
    return out + _fields(rest, where, low, None, q), after, None


def _known_above(run: Sequence[ReadBits], hi: int | None) -> int | None:
    """The value of the bits of `run` and of the `hi` bits above it, once its checks
    passed: known when `hi` is and every piece is a structural code."""
    for b in run:
        if hi is None or b.expect is None:
            return None
        hi = hi << b.width | b.expect
    return hi


def _fields(run: list[ReadBits], where: str, low: int, hi: int | None, q: int) -> list[str]:
    """The checks, then the value statements, of `run` in bits low.. of `c` (`hi`: the
    value of the bits above it, if known), `q` bits before the read position."""
    out: list[str] = []
    total = _width(run)
    mask = expect = 0
    shift = top = low + total
    values: list[str] = []
    whats = []
    known = hi  # the value of the bits above the piece, while known
    for b in run:
        shift -= b.width
        ones = (1 << b.width) - 1
        if b.expect is not None:
            mask |= ones << shift
            expect |= b.expect << shift
            whats.append(b.what)
            known = None if known is None else known << b.width | b.expect
            continue
        if not b.width:
            x = "0"
        elif known == 0:  # nothing above it: no mask
            x = f"(c >> {shift})" if shift else "c"
        else:
            x = f"((c >> {shift}) & {ones})" if shift else f"(c & {ones})"
        known = None
        for line in b.lines:
            line = line.replace("{x}", x)
            values.append(line.replace("r.fail_at(av, ", f"r.fail_at(av + {q}, ") if q else line)
    if mask:
        out += [
            f"if {_mismatch(mask, expect, low, top, hi)}:",
            _IND + f"raise r.fail_at(av + {q + total}, {where!r}, 'expected {', '.join(whats)}')",
        ]
    return out + values


def _mismatch(mask: int, expect: int, low: int, top: int, hi: int | None) -> str:
    """The test that the bits `mask` of `c` (in low..top, with `hi` above when known) are
    not `expect`: one comparison when they are the top bits of a `c` known above them and
    all zeros or all ones, else a mask."""
    if hi is not None:
        if low == 0 and mask == (1 << top) - 1 and hi == 0:
            return f"c != {expect:#x}" if expect else "c"
        bottom = (mask & -mask).bit_length() - 1
        if mask == (1 << top) - (1 << bottom):  # the top bits, contiguous
            floor = hi << top  # the least value of c
            if expect == 0:
                return f"c >= {floor + (1 << bottom):#x}"
            if expect == mask:
                return f"c < {floor + mask:#x}"
    return f"c & {mask:#x} != {expect:#x}"


def _run_parts(run: Sequence[WriteBits], base: int) -> tuple[list[str], int]:
    """The value of `run` shifted left by `base`: its expressions and its constant bits."""
    const = 0
    parts = []
    shift = base + _wwidth(run)
    for b in run:
        shift -= b.width
        if isinstance(b.expr, int):
            const |= b.expr << shift
        else:
            parts.append(f"({b.expr}) << {shift}" if shift else f"({b.expr})")
    return parts, const


def _shift_in(total: int, parts: list[str], const: int) -> list[str]:
    """Append `total` bits (the or of `parts` and `const`) to the accumulator."""
    if const or not parts:
        parts = [*parts, f"{const:#x}"]
    expr = " | ".join(parts)
    return [
        f"a = (a << {total}) | {expr}" if expr != "0x0" else f"a <<= {total}",
        f"k += {total}",
    ]


def _write_run(run: list[WriteBits]) -> list[str]:
    if not run:
        return []
    return [line for b in run for line in b.pre] + _shift_in(_wwidth(run), *_run_parts(run, 0))


# The octets of an Unsigned Integer `u` below 2**21 (7-bit groups, least significant first,
# the continuation bit set on all but the last): (limit, width, expressions, constant bits)
_UINT_FORMS = (
    ("0x80", 8, [("u", 0)], 0),
    ("0x4000", 16, [("u & 0x7F", 8), ("u >> 7", 0)], 0x8000),
    ("0x200000", 24, [("u & 0x7F", 16), ("u >> 7 & 0x7F", 8), ("u >> 14", 0)], 0x808000),
)


def _write_uint(before: list[WriteBits], uint: WriteUInt, after: list[WriteBits]) -> list[str]:
    """`before`, the Unsigned Integer `u`, `after`: one shift of the accumulator for values
    of up to three octets; longer ones by the writer."""
    out = [*(line for b in before for line in b.pre), *uint.pre]
    out += [line for b in after for line in b.pre]
    n_before, n_after = _wwidth(before), _wwidth(after)
    low_parts, low_const = _run_parts(after, 0)
    for i, (limit, width, pieces, bits) in enumerate(_UINT_FORMS):
        high_parts, high_const = _run_parts(before, width + n_after)
        mid = [
            f"({p}) << {shift + n_after}" if shift + n_after else f"({p})" for p, shift in pieces
        ]
        const = high_const | bits << n_after | low_const
        out += [f"{'if' if i == 0 else 'elif'} u < {limit}:"]
        out += _indent(_shift_in(n_before + width + n_after, high_parts + mid + low_parts, const))
    out += ["else:"]
    if before:
        out += _indent(_shift_in(n_before, *_run_parts(before, 0)))
    out += _indent(with_writer(["w.uint(u)"]))
    if after:
        out += _indent(_shift_in(n_after, low_parts, low_const))
    return out


def with_writer(lines: list[str]) -> list[str]:
    """Statements that call the writer itself: the generated encoder keeps the writer's
    accumulator in the locals `a` and `k` and hands them over around such calls."""
    return ["w.acc = a", "w.n = k", *lines, "a = w.acc", "k = w.n"]
