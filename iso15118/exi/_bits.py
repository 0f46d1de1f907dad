"""Bit-packed EXI stream reading and writing (EXI 1.0 sections 7.1 and 9).

The generated codecs in `exi_schemas` call these primitives; they know nothing of grammars.
"""

from __future__ import annotations

import reprlib
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from .errors import ExiDecodeError, ExiEncodeError

WINDOW = 64  # octets loaded into the read window at a time
AHEAD = 30  # the most bits a generated decoder wants read ahead by its caller
PAD = 8  # zero octets after the end that generated decoders may read ahead into (see refill)
MAX_UINT_BITS = 4096  # the longest Unsigned Integer a stream may carry (see uint_more)
_ZEROS = bytes(PAD)
FLUSH_BITS = 1024  # the writer moves whole octets out of its accumulator past this


def _grammar_position() -> str:
    """The generated decoder a reader error happened in (looked up only on failure)."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_name
        if name.startswith("_d_"):
            return f"{name[3:]} (generated line {frame.f_lineno})"
        frame = frame.f_back
    return ""


class BitReader:
    """Reads an EXI body MSB-first.  Every failure raises `ExiDecodeError` with the bit offset.

    Reads come from a window of at most WINDOW octets held as an int, so that a read is a
    shift and a mask whatever the length of the stream.

    Generated decoders read ahead: a read also takes the bits that most likely follow, and
    hands back what it did not need.  So that this never fails near the end, `refill` makes
    PAD zero octets follow the data; `finish` then refuses a document that ended in them, and
    an error found there is reported as the unexpected end of the stream it is."""

    __slots__ = ("avail", "data", "end", "next", "padded", "win")

    def __init__(self, data: bytes) -> None:
        self.data = data = data if type(data) is bytes else bytes(data)
        self.padded = padded = data + _ZEROS
        self.end = len(data) * 8
        first = padded[:WINDOW]
        self.win = int.from_bytes(first, "big")  # the window; its low `avail` bits are unread
        self.avail = len(first) * 8
        self.next = len(first)  # index of the first octet not yet in the window

    @property
    def pos(self) -> int:
        """Bit offset of the next read."""
        return self.next * 8 - self.avail

    @pos.setter
    def pos(self, value: int) -> None:
        self.next = value >> 3
        self.win = self.avail = 0
        if value & 7:
            self.win = self.data[self.next]
            self.next += 1
            self.avail = 8 - (value & 7)

    def fail(self, where: str, reason: str) -> ExiDecodeError:
        return self._fail(self.pos, where, reason)

    def fail_at(self, avail: int, where: str, reason: str) -> ExiDecodeError:
        """An error at the position where the window had `avail` unread bits."""
        return self._fail(self.next * 8 - avail, where, reason)

    def _fail(self, bit_offset: int, where: str, reason: str) -> ExiDecodeError:
        if bit_offset > self.end:  # in the zero octets read ahead: the data ended before
            bit_offset, reason = self.end, "unexpected end of stream"
        return ExiDecodeError(reason, bit_offset=bit_offset, position=where)

    def _error(self, reason: str, bit_offset: int) -> ExiDecodeError:
        return self._fail(bit_offset, _grammar_position(), reason)

    def refill(self, avail: int, n: int) -> tuple[int, int]:
        """Load a new window for a read of `n` bits that left `avail` (< 0) in the window:
        the window and its unread bits after that read.  It starts at the octet that holds
        the first unread bit; up to PAD zero octets follow the data (for reading ahead)."""
        pos = (self.next << 3) - avail - n  # where the read starts
        start = pos >> 3
        chunk = self.padded[start : start + WINDOW]
        self.next = start + len(chunk)
        self.win = win = int.from_bytes(chunk, "big")
        self.avail = avail = (len(chunk) << 3) - (pos & 7) - n
        if avail < 0:
            raise self._error("unexpected end of stream", pos)
        return win, avail

    def ahead(self, n: int) -> int:
        """The next `n` bits, read ahead (as a generated decoder's caller does): the reader
        is after them, and zero octets may follow the data."""
        avail = self.avail - n
        win = self.win
        if avail < 0:
            win, avail = self.refill(avail, n)
        self.avail = avail
        return (win >> avail) & ((1 << n) - 1)

    def bits(self, n: int) -> int:
        avail = self.avail - n
        if avail < 0:
            self._load(n)
            avail = self.avail - n
        if self.next * 8 - avail > self.end:  # the window may hold zero octets read ahead
            raise self._error("unexpected end of stream", self.end)
        self.avail = avail
        return (self.win >> avail) & ((1 << n) - 1)

    def _load(self, n: int) -> None:
        start = self.next
        chunk = self.data[start : start + WINDOW]
        if self.avail + len(chunk) * 8 < n:
            raise self._error("unexpected end of stream", self.pos)
        rest = self.win & ((1 << self.avail) - 1)
        self.win = (rest << (len(chunk) * 8)) | int.from_bytes(chunk, "big")
        self.avail += len(chunk) * 8
        self.next = start + len(chunk)

    def uint(self) -> int:
        """EXI Unsigned Integer: 7-bit groups, least significant first (section 7.1.6)."""
        return self.uint_more(0, 0)

    def uint_more(self, value: int, shift: int) -> int:
        """The rest of an Unsigned Integer: `value` holds its first `shift` bits (7 per octet
        read so far, the last of which had the continuation bit set).  Longer than
        MAX_UINT_BITS is refused: no value of these schemas comes near (the longest, an
        xs:integer X509SerialNumber, has at most 160 bits), and a hostile run of
        continuation octets would otherwise cost quadratic time."""
        while True:
            octet = self.bits(8)
            value |= (octet & 0x7F) << shift
            if octet < 0x80:
                return value
            shift += 7
            if shift >= MAX_UINT_BITS:
                raise self._error(f"unsigned integer longer than {MAX_UINT_BITS} bits", self.pos)

    def integer(self) -> int:
        """EXI Integer: sign bit then magnitude (section 7.1.5)."""
        if self.bits(1):
            return -self.uint() - 1
        return self.uint()

    def octets(self, count: int) -> bytes:
        pos = self.pos
        if count * 8 > self.end - pos:
            raise self._error(f"length {count} exceeds the remaining input", pos)
        if count <= 7:
            return self.bits(count * 8).to_bytes(count, "big") if count else b""
        end = pos + count * 8
        first = pos >> 3
        if not pos & 7:
            value = self.data[first : end >> 3]
        else:
            chunk = int.from_bytes(self.data[first : (end >> 3) + 1], "big")
            chunk >>= 8 - (pos & 7)
            value = (chunk & ((1 << (count * 8)) - 1)).to_bytes(count, "big")
        self.pos = end
        return value

    def binary(self, max_length: int | None) -> bytes:
        """base64Binary / hexBinary: length then octets (section 7.1.1)."""
        return self.binary_of(self.uint(), max_length)

    def binary_of(self, length: int, max_length: int | None) -> bytes:
        """The octets of a binary value whose length was read."""
        start = self.pos
        if max_length is not None and length > max_length:
            raise self._error(f"binary length {length} exceeds maxLength {max_length}", start)
        return self.octets(length)

    def string(self, max_length: int | None) -> str:
        """String literal: length + 2, then code points (section 7.1.10).

        Under the ISO 15118 profile (valuePartitionCapacity 0) no value is ever a table hit.
        """
        return self.string_of(self.uint(), max_length)

    def string_of(self, tag: int, max_length: int | None) -> str:
        """The characters of a string value whose length tag (length + 2) was read."""
        start = self.pos
        if tag < 2:
            raise self._error("string table hit in a stream without value partitions", start)
        length = tag - 2
        if max_length is not None and length > max_length:
            raise self._error(f"string length {length} exceeds maxLength {max_length}", start)
        raw = self.octets(length)  # every code point takes at least one octet
        if raw.isascii():
            return raw.decode("ascii")
        self.pos -= length * 8
        chars = []
        for _ in range(length):
            code = self.uint()
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self._error(f"invalid code point {code}", self.pos)
            chars.append(chr(code))
        return "".join(chars)

    def finish(self, where: str) -> None:
        """After the end of the document only zero padding may follow."""
        if self.pos > self.end:
            raise self.fail(where, "unexpected end of stream")
        in_window = self.win & ((1 << self.avail) - 1)
        if in_window or (self.next < len(self.data) and self.data[self.next :].strip(b"\0")):
            raise self.fail(where, "non-zero data after the end of the document")


class BitWriter:
    """Writes an EXI body MSB-first into whole octets."""

    __slots__ = ("acc", "buf", "n", "strict")

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict  # enforce minLength/length facets (off to replay what peers sent)
        self.buf = bytearray()
        self.acc = 0
        self.n = 0

    def bits(self, value: int, n: int) -> None:
        acc = (self.acc << n) | value
        total = self.n + n
        if total >= FLUSH_BITS:
            keep = total & 7
            self.buf += (acc >> keep).to_bytes((total - keep) >> 3, "big")
            acc &= (1 << keep) - 1
            total = keep
        self.acc = acc
        self.n = total

    def spill(self) -> None:
        """Move the whole octets of the accumulator into the buffer."""
        total = self.n
        keep = total & 7
        self.buf += (self.acc >> keep).to_bytes(total >> 3, "big")
        self.acc &= (1 << keep) - 1
        self.n = keep

    def uint(self, value: int) -> None:
        if value < 0x80:
            self.bits(value, 8)
            return
        if value < 0x4000:
            self.bits(((value & 0x7F) | 0x80) << 8 | value >> 7, 16)
            return
        while value >= 0x80:
            self.bits((value & 0x7F) | 0x80, 8)
            value >>= 7
        self.bits(value, 8)

    def integer(self, value: int) -> None:
        if value < 0:
            self.bits(1, 1)
            self.uint(-value - 1)
        else:
            self.bits(0, 1)
            self.uint(value)

    def octets(self, data: bytes) -> None:
        n = self.n
        if n == 0:
            self.buf += data
            return
        acc = (self.acc << (len(data) * 8)) | int.from_bytes(data, "big")
        total = n + len(data) * 8
        keep = total & 7
        self.buf += (acc >> keep).to_bytes(total >> 3, "big")
        self.acc = acc & ((1 << keep) - 1)
        self.n = keep

    def binary(self, data: bytes) -> None:
        self.uint(len(data))
        self.octets(data)

    def string(self, text: str) -> None:
        self.uint(len(text) + 2)
        if text.isascii():
            self.octets(text.encode("ascii"))
            return
        for char in text:
            code = ord(char)
            if 0xD800 <= code <= 0xDFFF:
                raise ExiEncodeError(f"string holds the lone surrogate {code:#x}")
            self.uint(code)

    def getvalue(self) -> bytes:
        """The stream padded with zero bits to a whole octet."""
        n = self.n
        if not n:
            return bytes(self.buf)
        pad = -n & 7
        return bytes(self.buf) + (self.acc << pad).to_bytes((n + pad) >> 3, "big")


def run_table(fields: Sequence[tuple[int, int | None, Sequence[Any] | None]]) -> dict[int, Any]:
    """For generated decoders: every valid bit pattern of a run of fixed-width fields, each
    (width, the code it must hold or None, the values its bits stand for or None), mapped to
    the values of the run (a tuple, or the value if there is one).  A field's bits beyond
    its values (an enumeration index past the last) make no valid pattern."""
    patterns: dict[int, tuple[Any, ...]] = {0: ()}
    for width, code, values in fields:
        if values is None:
            patterns = {key << width | (code or 0): v for key, v in patterns.items()}
        else:
            patterns = {
                key << width | i: (*v, value)
                for key, v in patterns.items()
                for i, value in enumerate(values[: 1 << width])
            }
    if sum(values is not None for _w, _c, values in fields) == 1:
        return {key: v[0] for key, v in patterns.items()}
    return dict(patterns)


_NOTHING = object()


def encode_error(where: str, reason: str, value: object = _NOTHING) -> ExiEncodeError:
    """The error for field `where`; `value` is shown briefly (never a 4000-digit number)."""
    if value is _NOTHING:
        return ExiEncodeError(f"{where}: {reason}")
    if isinstance(value, int) and value.bit_length() > 64:
        shown = f"an integer of {value.bit_length()} bits"
    else:
        shown = reprlib.repr(value)
    return ExiEncodeError(f"{where}: {shown} {reason}")
