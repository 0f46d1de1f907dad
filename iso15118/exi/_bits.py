"""Bit-packed EXI stream reading and writing (EXI 1.0 sections 7.1 and 9).

The generated codecs in `exi_schemas` call these primitives; they know nothing of grammars.
"""

from __future__ import annotations

from .errors import ExiDecodeError, ExiEncodeError

SMALL_STREAM = 8192  # octets; longer streams are read by slicing (see LargeBitReader)


def reader(data: bytes) -> BitReader:
    """The fastest reader for a stream of this size."""
    return BitReader(data) if len(data) <= SMALL_STREAM else LargeBitReader(data)


class BitReader:
    """Reads an EXI body MSB-first.  Every failure raises `ExiDecodeError` with the bit offset.

    The whole stream is held as one integer, so that a read is a shift and a mask."""

    __slots__ = ("big", "data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.end = len(self.data) * 8
        self.big = int.from_bytes(self.data, "big") if len(self.data) <= SMALL_STREAM else 0

    def fail(self, where: str, reason: str) -> ExiDecodeError:
        return ExiDecodeError(reason, bit_offset=self.pos, position=where)

    def fail_back(self, nbits: int, where: str, reason: str) -> ExiDecodeError:
        """An error about the `nbits` just read."""
        return ExiDecodeError(reason, bit_offset=self.pos - nbits, position=where)

    def bits(self, n: int) -> int:
        end = self.pos + n
        if end > self.end:
            raise ExiDecodeError("unexpected end of stream", bit_offset=self.pos)
        self.pos = end
        return (self.big >> (self.end - end)) & ((1 << n) - 1)

    def uint(self) -> int:
        """EXI Unsigned Integer: 7-bit groups, least significant first (section 7.1.6)."""
        value = 0
        shift = 0
        while True:
            octet = self.bits(8)
            value |= (octet & 0x7F) << shift
            if octet < 0x80:
                return value
            shift += 7

    def integer(self) -> int:
        """EXI Integer: sign bit then magnitude (section 7.1.5)."""
        if self.bits(1):
            return -self.uint() - 1
        return self.uint()

    def octets(self, count: int) -> bytes:
        pos = self.pos
        if count * 8 > self.end - pos:
            raise ExiDecodeError(f"length {count} exceeds the remaining input", bit_offset=pos)
        end = pos + count * 8
        self.pos = end
        if not pos & 7:
            return self.data[pos >> 3 : end >> 3]
        first = pos >> 3
        chunk = int.from_bytes(self.data[first : (end >> 3) + 1], "big")
        chunk >>= 8 - (pos & 7)
        return (chunk & ((1 << (count * 8)) - 1)).to_bytes(count, "big")

    def binary(self, max_length: int | None) -> bytes:
        """base64Binary / hexBinary: length then octets (section 7.1.1)."""
        start = self.pos
        length = self.uint()
        if max_length is not None and length > max_length:
            raise ExiDecodeError(
                f"binary length {length} exceeds maxLength {max_length}", bit_offset=start
            )
        return self.octets(length)

    def string(self, max_length: int | None) -> str:
        """String literal: length + 2, then code points (section 7.1.10).

        Under the ISO 15118 profile (valuePartitionCapacity 0) no value is ever a table hit.
        """
        start = self.pos
        tag = self.uint()
        if tag < 2:
            raise ExiDecodeError("string table hit in a stream without value partitions", start)
        length = tag - 2
        if max_length is not None and length > max_length:
            raise ExiDecodeError(f"string length {length} exceeds maxLength {max_length}", start)
        raw = self.octets(length)  # every code point takes at least one octet
        if raw.isascii():
            return raw.decode("ascii")
        self.pos -= length * 8
        chars = []
        for _ in range(length):
            code = self.uint()
            if code > 0x10FFFF:
                raise ExiDecodeError(f"invalid code point {code}", bit_offset=self.pos)
            chars.append(chr(code))
        return "".join(chars)

    def finish(self, where: str) -> None:
        """After the end of the document only zero padding may follow."""
        rest = self.end - self.pos
        if rest and self.bits(rest):
            self.pos -= rest
            raise self.fail(where, "non-zero data after the end of the document")


class LargeBitReader(BitReader):
    """For long streams, where shifting the whole stream for every read would cost too much."""

    __slots__ = ()

    def bits(self, n: int) -> int:
        pos = self.pos
        end = pos + n
        if end > self.end:
            raise ExiDecodeError("unexpected end of stream", bit_offset=pos)
        self.pos = end
        chunk = int.from_bytes(self.data[pos >> 3 : (end + 7) >> 3], "big")
        return (chunk >> (-end & 7)) & ((1 << n) - 1)


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
        if total >= 64:
            keep = total & 7
            self.buf += (acc >> keep).to_bytes((total - keep) >> 3, "big")
            acc &= (1 << keep) - 1
            total = keep
        self.acc = acc
        self.n = total

    def uint(self, value: int) -> None:
        if value < 0x80:
            self.bits(value, 8)
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
        else:
            for char in text:
                self.uint(ord(char))

    def getvalue(self) -> bytes:
        """The stream padded with zero bits to a whole octet."""
        n = self.n
        if not n:
            return bytes(self.buf)
        pad = -n & 7
        return bytes(self.buf) + (self.acc << pad).to_bytes((n + pad) >> 3, "big")


def encode_error(where: str, reason: str) -> ExiEncodeError:
    return ExiEncodeError(f"{where}: {reason}")
