"""The decoder against hostile input: mutated corpus vectors and hand-made malformed streams.

Whatever the bytes, decoding either returns a message or raises ExiDecodeError whose bit_offset
lies inside the input, never anything else, and it finishes promptly without big allocations.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from exi_strategies import (
    codec_module,
    document_entries,
    fields_of,
    instances,
    is_message_class,
    minimal,
    root_entries,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import CODEC_KIND, CORPUS, require

from exi_schemas import apphand, din, xmldsig
from iso15118 import exi
from iso15118.exi._bits import MAX_UINT_BITS, BitReader, BitWriter

PROMPT = 1.0  # seconds: generous for one decode of a few KB on a slow, busy machine


@dataclass(frozen=True)
class Vector:
    id: str
    schema: str
    fragment: bool
    data: bytes

    def decode(self, data: bytes | None = None) -> Any:
        return decode(self.schema, self.fragment, self.data if data is None else data)


def decode(schema: str, fragment: bool, data: bytes) -> Any:
    return (exi.decode_fragment if fragment else exi.decode)(schema, data)




@cache
def vectors() -> tuple[Vector, ...]:
    out = []
    for name in ("public_vectors.json", "public_vectors_extra.json"):
        path = CORPUS / name
        if path.exists():
            for v in json.loads(path.read_text()):
                schema, fragment = CODEC_KIND[v["codec_kind"]]
                out.append(Vector(v["id"], schema, fragment, bytes.fromhex(v["hex"])))
    path = CORPUS / "ref_vectors_dev.json"
    if path.exists():
        for v in json.loads(path.read_text())["vectors"]:
            out.append(Vector(v["id"], v["schema"], False, bytes.fromhex(v["hex"])))
    return tuple(out)


def corpus() -> tuple[Vector, ...]:
    require(CORPUS / "public_vectors.json")
    return vectors()


def _warm_up() -> None:
    """Import every codec once, so that no decode below pays for it."""
    for schema in exi.SCHEMAS:
        codec_module(schema)
        for fragment in (False, True):
            with contextlib.suppress(exi.ExiDecodeError):
                decode(schema, fragment, b"\x80")


_warm_up()


def decode_or_reject(schema: str, fragment: bool, data: bytes) -> Any | None:
    """Decode hostile bytes: a message, or None after an ExiDecodeError inside the input.
    Any other exception propagates (and fails the test)."""
    started = time.perf_counter()
    try:
        result = decode(schema, fragment, data)
    except exi.ExiDecodeError as exc:
        assert 0 <= exc.bit_offset <= 8 * len(data), (exc.bit_offset, len(data), str(exc))
        result = None
    elapsed = time.perf_counter() - started
    assert elapsed < PROMPT, f"{elapsed:.2f} s to decode {len(data)} octets"
    return result


def expect_reject(schema: str, fragment: bool, data: bytes) -> exi.ExiDecodeError:
    with pytest.raises(exi.ExiDecodeError) as info:
        decode(schema, fragment, data)
    assert 0 <= info.value.bit_offset <= 8 * len(data), (info.value.bit_offset, len(data))
    return info.value


def test_corpus_present() -> None:
    kinds = {(v.schema, v.fragment) for v in corpus()}
    assert len(corpus()) == 336
    assert ("xmldsig", True) in kinds and ("iso2", True) in kinds


# --- mutations ------------------------------------------------------------------------------

Mutation = tuple[str, int, int, bytes]

_POS = st.integers(0, 1 << 20)
MUTATIONS: st.SearchStrategy[Mutation] = st.one_of(
    st.tuples(st.just("flip"), _POS, st.just(0), st.just(b"")),
    st.tuples(st.just("replace"), _POS, st.integers(0, 255), st.just(b"")),
    st.tuples(st.just("truncate"), _POS, st.just(0), st.just(b"")),
    st.tuples(st.just("insert"), _POS, st.just(0), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("duplicate"), _POS, _POS, st.just(b"")),
    st.tuples(st.just("append"), st.just(0), st.just(0), st.binary(min_size=1, max_size=32)),
)


def mutate(data: bytes, mutation: Mutation) -> bytes:
    op, a, b, payload = mutation
    n = len(data)
    if op == "flip" and n:
        bit = a % (8 * n)
        return (
            data[: bit >> 3]
            + bytes([data[bit >> 3] ^ (0x80 >> (bit & 7))])
            + data[(bit >> 3) + 1 :]
        )
    if op == "replace" and n:
        i = a % n
        return data[:i] + bytes([b]) + data[i + 1 :]
    if op == "truncate":
        return data[: a % (n + 1)]
    if op == "insert":
        i = a % (n + 1)
        return data[:i] + payload + data[i:]
    if op == "duplicate" and n:
        i = a % n
        j = i + b % (n - i + 1)
        return data[:j] + data[i:j] + data[j:]
    if op == "append":
        return data + payload
    return data


_PLACEHOLDER = Vector("none", "appHand", False, b"\x80")  # without the corpus (then skipped)


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    vector=st.sampled_from(vectors() or (_PLACEHOLDER,)),
    mutations=st.lists(MUTATIONS, min_size=1, max_size=4),
)
def test_mutated_vectors_decode_or_raise_exi_decode_error(
    vector: Vector, mutations: list[Mutation]
) -> None:
    corpus()  # skips without the corpus
    data = vector.data
    for mutation in mutations:
        data = mutate(data, mutation)
    decode_or_reject(vector.schema, vector.fragment, data)


@pytest.mark.parametrize("schema", exi.SCHEMAS)
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(data=st.data())
def test_mutated_random_messages_decode_or_raise(schema: str, data: st.DataObject) -> None:
    """The same for random messages of every schema (the corpus has no WPT, ACDP, xmldsig
    documents) and every root."""
    entry = data.draw(st.sampled_from([e for e in root_entries() if e.schema == schema]))
    message = entry.wrap(data.draw(instances(entry.kind), label="message"))
    stream = exi.encode(schema, message)
    for mutation in data.draw(st.lists(MUTATIONS, min_size=1, max_size=3), label="mutations"):
        stream = mutate(stream, mutation)
    decode_or_reject(schema, False, stream)


def test_truncation_at_every_length() -> None:
    """Every proper prefix of every vector is rejected, unless all it lost was zero padding
    (then it must decode to the same message)."""
    for vector in corpus():
        whole = vector.decode()
        for length in range(len(vector.data)):
            cut = vector.data[:length]
            result = decode_or_reject(vector.schema, vector.fragment, cut)
            if result is not None:
                assert not any(vector.data[length:]), (vector.id, length)
                assert result == whole, (vector.id, length)


# --- framing --------------------------------------------------------------------------------


@pytest.mark.parametrize("fragment", [False, True], ids=["document", "fragment"])
@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_empty_input(schema: str, fragment: bool) -> None:
    error = expect_reject(schema, fragment, b"")
    assert error.bit_offset == 0


@pytest.mark.parametrize("fragment", [False, True], ids=["document", "fragment"])
@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_header_alone(schema: str, fragment: bool) -> None:
    expect_reject(schema, fragment, b"\x80")


def test_header_other_than_0x80() -> None:
    """Cookie ('$EXI'), options present, another version, or no EXI at all: refused at bit 0."""
    samples = {v.schema + str(v.fragment): v for v in corpus()}.values()
    for vector in samples:
        for header in range(256):
            if header != 0x80:
                data = bytes([header]) + vector.data[1:]
                assert expect_reject(vector.schema, vector.fragment, data).bit_offset == 0
    assert expect_reject("iso2", False, b"$EXI" + corpus()[0].data).bit_offset == 0


@pytest.mark.parametrize("fragment", [False, True], ids=["document", "fragment"])
@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_first_event_code_beyond_the_table(schema: str, fragment: bool) -> None:
    """Codes past the declared elements (SE(*) and unused codes) are refused right there."""
    module = codec_module(schema)
    table = module.FRAGMENT if fragment else module.DOCUMENT
    width = module.FRAGMENT_WIDTH if fragment else module.DOCUMENT_WIDTH
    assert len(table) < 1 << width
    for code in range(len(table), 1 << width):
        w = BitWriter()
        w.bits(0x80, 8)
        w.bits(code, width)
        w.octets(b"\x00" * 8)
        error = expect_reject(schema, fragment, w.getvalue())
        assert error.bit_offset in (8, 8 + width), (code, error)


def test_enumeration_index_beyond_the_table() -> None:
    """supportedAppProtocolRes 80 40 00 40: after the header, 2 bits of document event code,
    then SE(ResponseCode) and CH (1 bit each) and the 2-bit index of a 3-value enumeration at
    bits 12-13.  Index 2 is Failed_NoNegotiation; index 3 does not exist."""
    data = bytes.fromhex("80400040")
    ok = exi.decode("appHand", data)
    assert ok.ResponseCode is apphand.responseCodeType.OK_SuccessfulNegotiation
    index_2 = exi.decode("appHand", bytes.fromhex("80480040"))
    assert index_2.ResponseCode is apphand.responseCodeType.Failed_NoNegotiation
    error = expect_reject("appHand", False, bytes.fromhex("804c0040"))
    assert 10 <= error.bit_offset <= 17


def test_trailing_zero_padding_accepted() -> None:
    for vector in corpus():
        assert vector.decode(vector.data + b"\x00" * 3) == vector.decode(), vector.id


@pytest.mark.parametrize("count", [1, 7, 8, 40, 63, 64, 65, 1000, 100_000])
def test_more_trailing_zero_padding_accepted(count: int) -> None:
    """Zero octets after the document, however many (V2GTP frames the payload, not EXI)."""
    for vector in corpus()[::5]:
        padded = vector.data + b"\x00" * count
        decoded = decode_or_reject(vector.schema, vector.fragment, padded)
        assert decoded == vector.decode(), (vector.id, count)


def test_trailing_garbage_rejected() -> None:
    for vector in corpus():
        for garbage in (b"\x01", b"\x80", b"\x00\x00\x01", b"\xff" * 5):
            data = vector.data + garbage
            error = expect_reject(vector.schema, vector.fragment, data)
            assert error.bit_offset <= 8 * len(vector.data), (vector.id, error)


def test_every_single_bit_flip_is_noticed() -> None:
    """Flipping any one bit of a vector (padding and the Tesla trailing 0x00 included) never
    decodes to the same message: no bit of the stream is ignored."""
    for vector in corpus():
        whole = vector.decode()
        for bit in range(8 * len(vector.data)):
            data = bytearray(vector.data)
            data[bit >> 3] ^= 0x80 >> (bit & 7)
            result = decode_or_reject(vector.schema, vector.fragment, bytes(data))
            assert result is None or result != whole, (vector.id, bit)


# --- forged length fields and integers ------------------------------------------------------
#
# A field is found in an encoded stream by the bits of its canonical EXI encoding (a value
# chosen to be unique in the stream), then replaced by forged bits.


def uint_octets(value: int) -> bytes:
    """EXI Unsigned Integer: 7-bit groups, least significant first, high bit = more follow."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def bit_string(data: bytes) -> str:
    return "".join(format(octet, "08b") for octet in data)


def string_bits(text: str) -> str:
    """A string value: length + 2, then each code point as an Unsigned Integer."""
    return bit_string(uint_octets(len(text) + 2) + b"".join(uint_octets(ord(c)) for c in text))


def binary_bits(data: bytes) -> str:
    return bit_string(uint_octets(len(data)) + data)


def locate(data: bytes, pattern: str) -> int:
    """The bit offset of the one occurrence of `pattern` in `data`."""
    bits = bit_string(data)
    start = bits.find(pattern)
    assert start >= 0, "value not found in the stream"
    assert bits.find(pattern, start + 1) < 0, "value found twice in the stream"
    return start


def splice(data: bytes, start: int, end: int, write: Callable[[BitWriter], None]) -> bytes:
    """`data` with its bits [start, end) replaced by what `write` writes."""
    r = BitReader(data)
    w = BitWriter()

    def copy(count: int) -> None:
        while count:
            step = min(count, 48)
            w.bits(r.bits(step), step)
            count -= step

    copy(start)
    write(w)
    r.pos = end
    copy(8 * len(data) - end)
    return w.getvalue()


def replace_length(data: bytes, value_bits: str, write: Callable[[BitWriter], None]) -> bytes:
    """Replace the length prefix (an Unsigned Integer) of the string/binary `value_bits`."""
    start = locate(data, value_bits)
    prefix = 0
    while value_bits[prefix] == "1":  # continuation octets of the length
        prefix += 8
    return splice(data, start, start + prefix + 8, write)


def continuation_octets(
    count: int, last: int = 0x01, octet: bytes = b"\xff"
) -> Callable[[BitWriter], None]:
    """An EXI unsigned integer of `count` continuation octets (groups 0x7f), then `last`."""

    def write(w: BitWriter) -> None:
        w.octets(octet * count)
        w.bits(last, 8)

    return write


def zero_continuation_octets(count: int) -> Callable[[BitWriter], None]:
    return continuation_octets(count, last=0x00, octet=b"\x80")


def claim(length: int) -> Callable[[BitWriter], None]:
    def write(w: BitWriter) -> None:
        w.uint(length)

    return write


def assert_rejected_cheaply(schema: str, data: bytes, *, limit: int = 1 << 20) -> None:
    """Refused at once, with at most `limit` octets allocated at the peak."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = expect_reject(schema, False, data)
    finally:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - started < PROMPT
    assert peak < limit, f"peak allocation {peak} octets for {error}"


KEY_NAME = next(e for e in document_entries("xmldsig") if e.name == "KeyName")
MARK = b"\xde\xad\xbe\xef\x5a\xa5\x3c\xc3"  # 8 octets that occur nowhere else


def key_name(text: str) -> bytes:
    return exi.encode("xmldsig", exi.Element(KEY_NAME.namespace, KEY_NAME.name, text))


def test_binary_length_of_2_60_octets() -> None:
    """Unbounded base64Binary (SignatureValue), alone and with some octets following."""
    data = exi.encode("xmldsig", xmldsig.SignatureValueType(value=MARK))
    assert_rejected_cheaply("xmldsig", replace_length(data, binary_bits(MARK), claim(1 << 60)))

    def claim_with_some_octets(w: BitWriter) -> None:
        w.uint(1 << 60)
        w.octets(b"x" * 64)

    assert_rejected_cheaply(
        "xmldsig", replace_length(data, binary_bits(MARK), claim_with_some_octets)
    )


def test_bounded_binary_length_of_2_60_octets() -> None:
    """hexBinary SessionID (maxLength 8) in a DIN V2G_Message."""
    message = din.V2G_Message(
        Header=din.MessageHeaderType(SessionID=MARK),
        Body=din.BodyType(SessionStopReq=din.SessionStopType()),
    )
    data = exi.encode("din", message)
    assert_rejected_cheaply("din", replace_length(data, binary_bits(MARK), claim(1 << 60)))


@pytest.mark.parametrize("text", ["Zq7#kP", "Zq7#äP€"], ids=["ascii", "unicode"])
def test_string_length_of_2_60_characters(text: str) -> None:
    data = key_name(text)
    forged = replace_length(data, string_bits(text), claim((1 << 60) + 2))
    assert_rejected_cheaply("xmldsig", forged)


def test_bounded_string_length_of_2_60_characters() -> None:
    """ProtocolNamespace (maxLength 100) in supportedAppProtocolReq."""
    data = exi.encode("appHand", _app_protocol_req())
    forged = replace_length(data, string_bits(NAMESPACE), claim((1 << 60) + 2))
    assert_rejected_cheaply("appHand", forged)


NAMESPACE = "urn:iso:15118:2:2013:MsgDef"
MAJOR = 0x0ABCDEF1  # an unsignedInt whose 5-octet encoding is unique in the stream


def _app_protocol_req() -> apphand.supportedAppProtocolReq:
    protocol = apphand.AppProtocolType(
        ProtocolNamespace=NAMESPACE,
        VersionNumberMajor=MAJOR,
        VersionNumberMinor=0,
        SchemaID=1,
        Priority=1,
    )
    return apphand.supportedAppProtocolReq(AppProtocol=[protocol])


def test_thousands_of_continuation_octets_in_a_bounded_integer() -> None:
    """VersionNumberMajor (unsignedInt) written with 5000 continuation octets.

    The decoder takes whatever value the representation carries (real cars exceed facets), so
    the stream may decode; it must do so promptly, and the value must then be refused by a
    strict encode and written back unchanged by a non-strict one."""
    data = exi.encode("appHand", _app_protocol_req())
    pattern = bit_string(uint_octets(MAJOR))
    start = locate(data, pattern)
    forged = splice(data, start, start + len(pattern), continuation_octets(5000))
    decoded = decode_or_reject("appHand", False, forged)
    if decoded is not None:
        assert decoded.AppProtocol[0].VersionNumberMajor == (1 << (7 * 5000 + 1)) - 1
        with pytest.raises(exi.ExiEncodeError):
            exi.encode("appHand", decoded)
        assert exi.encode("appHand", decoded, strict=False) == forged
    # 5000 continuation octets that carry only zero bits (a non-canonical 0)
    forged = splice(data, start, start + len(pattern), zero_continuation_octets(5000))
    decoded = decode_or_reject("appHand", False, forged)
    assert decoded is None or decoded.AppProtocol[0].VersionNumberMajor == 0


def test_range_error_for_a_huge_integer_names_the_field() -> None:
    message = _app_protocol_req()
    message.AppProtocol[0].VersionNumberMajor = 1 << 20_000
    with pytest.raises(exi.ExiEncodeError, match="VersionNumberMajor"):
        exi.encode("appHand", message)


def test_thousands_of_continuation_octets_in_a_length() -> None:
    data = key_name("Zq7#kP")
    forged = replace_length(data, string_bits("Zq7#kP"), continuation_octets(5000))
    assert_rejected_cheaply("xmldsig", forged)


@pytest.mark.parametrize("octets", [500, 2000])
def test_continuation_octets_in_an_unbounded_integer(octets: int) -> None:
    """X509SerialNumber is xs:integer: 500 continuation octets make a valid 3,501-bit number;
    past MAX_UINT_BITS (4096) a number is refused, as no value of these schemas comes near."""
    serial = 0x5A5A5A5A5A5A5
    issuer = xmldsig.X509IssuerSerialType(X509IssuerName="CN=x", X509SerialNumber=serial)
    data = exi.encode("xmldsig", xmldsig.X509DataType(X509IssuerSerial=[issuer]))
    pattern = "0" + bit_string(uint_octets(serial))  # sign bit, then the magnitude

    def write(w: BitWriter) -> None:
        w.bits(0, 1)  # sign: positive
        continuation_octets(octets)(w)

    start = locate(data, pattern)
    forged = splice(data, start, start + len(pattern), write)
    decoded = decode_or_reject("xmldsig", False, forged)
    if 7 * octets >= MAX_UINT_BITS:
        assert decoded is None
        return
    assert decoded is not None
    assert decoded.X509IssuerSerial[0].X509SerialNumber == (1 << (7 * octets + 1)) - 1
    assert exi.encode("xmldsig", decoded) == forged


def test_a_long_run_of_continuation_octets_is_refused_promptly() -> None:
    forged = replace_length(key_name("Zq7#kP"), string_bits("Zq7#kP"), continuation_octets(250_000))
    started = time.perf_counter()
    expect_reject("xmldsig", False, forged)
    assert time.perf_counter() - started < 0.5


# --- long lists, bounded nesting ------------------------------------------------------------


def test_long_run_of_list_entries() -> None:
    """20,000 PMaxScheduleEntry in a DIN message (maxOccurs unbounded): no recursion per entry,
    decoded in one piece."""
    interval = din.RelativeTimeIntervalType(start=0, duration=None)
    entries = [
        din.PMaxScheduleEntryType(RelativeTimeInterval=interval, PMax=i % 1000)
        for i in range(20_000)
    ]
    schedule = din.SAScheduleTupleType(
        SAScheduleTupleID=1,
        PMaxSchedule=din.PMaxScheduleType(PMaxScheduleID=1, PMaxScheduleEntry=entries),
    )
    res = din.ChargeParameterDiscoveryResType(
        ResponseCode=din.responseCodeType.OK,
        EVSEProcessing=din.EVSEProcessingType.Finished,
        SAScheduleList=din.SAScheduleListType(SAScheduleTuple=[schedule]),
        DC_EVSEChargeParameter=_din_dc_evse_charge_parameter(),
    )
    message = din.V2G_Message(
        Header=din.MessageHeaderType(SessionID=b"\x01" * 8),
        Body=din.BodyType(ChargeParameterDiscoveryRes=res),
    )
    data = exi.encode("din", message)
    assert len(data) > 20_000
    limit = sys.getrecursionlimit()
    assert len(entries) > limit
    assert exi.decode("din", data) == message


def _din_dc_evse_charge_parameter() -> din.DC_EVSEChargeParameterType:
    value: din.DC_EVSEChargeParameterType = minimal(din.DC_EVSEChargeParameterType)
    return value


def _nesting_depth(cls: type, path: tuple[type, ...] = ()) -> int:
    assert cls not in path, f"recursive type {cls.__name__}: {[c.__name__ for c in path]}"
    depths = [
        _nesting_depth(f.kind, (*path, cls)) for f in fields_of(cls) if is_message_class(f.kind)
    ]
    return 1 + max(depths, default=0)


def test_schemas_are_not_recursive() -> None:
    """Element nesting is bounded by the schema, so decoder recursion is too."""
    deepest = max(_nesting_depth(e.kind) for e in root_entries() if is_message_class(e.kind))
    assert deepest < 30


def test_lone_surrogates_refused_both_ways() -> None:
    """XML characters exclude surrogates: an encoder must not write one, a decoder not return
    one (it would break every later UTF-8 or JSON step)."""
    ns = "http://www.w3.org/2000/09/xmldsig#"
    with pytest.raises(exi.ExiEncodeError, match="surrogate"):
        exi.encode("xmldsig", exi.Element(ns, "KeyName", "a\ud800"))
    codec = exi._codec("xmldsig")
    w = BitWriter()
    w.bits(0x80, 8)
    w.bits(codec.document_index[(ns, "KeyName")], codec.document_width)
    w.bits(0, 1)  # CH
    w.uint(1 + 2)  # one character
    w.uint(0xD800)
    w.bits(0, 1)  # EE
    with pytest.raises(exi.ExiDecodeError, match="code point"):
        exi.decode("xmldsig", w.getvalue())
