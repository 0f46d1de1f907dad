"""Contract key wrap (pki/keywrap.py): round trips for ISO 15118-2 and -20, an independent
re-derivation of the -2 scheme, pinned answers, and clean failures for wrong keys and
tampered data."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from exi_schemas import iso2
from iso15118 import exi
from pki import keywrap, xmlsig
from pki.keywrap import Iso20Curve, KeyUnwrapError, WrappedKey

PCID = "WMIV1234567890ABC1"
SKI = bytes.fromhex("00112233445566778899aabbccddeeff01234567")


@cache
def p256(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@cache
def p521(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP521R1())


@cache
def x(n: int) -> x448.X448PrivateKey:
    return x448.X448PrivateKey.generate()


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


# --- ISO 15118-2 ----------------------------------------------------------------------------


def test_iso2_round_trip() -> None:
    ev, contract = p256(0), p256(1)
    wrapped = keywrap.wrap_iso2(contract, ev.public_key())
    assert len(wrapped.dh_public_key) == 65 and wrapped.dh_public_key[0] == 4
    assert len(wrapped.encrypted_private_key) == 48
    key = keywrap.unwrap_iso2(wrapped, ev, contract_public_key=contract.public_key())
    assert key.private_numbers() == contract.private_numbers()


def test_iso2_every_wrap_is_fresh() -> None:
    a = keywrap.wrap_iso2(p256(1), p256(0).public_key())
    b = keywrap.wrap_iso2(p256(1), p256(0).public_key())
    assert a.dh_public_key != b.dh_public_key
    assert a.encrypted_private_key[:16] != b.encrypted_private_key[:16]


def test_iso2_matches_an_independent_derivation() -> None:
    """Counter 00000001 || Z || 01 55 56 through SHA-256, first 16 bytes as the AES-128 key,
    CBC without padding: the layout EVerest and Josev use ([V2G2-818])."""
    ev, contract, ephemeral = p256(0), p256(1), p256(2)
    iv = bytes(range(16))
    wrapped = keywrap.wrap_iso2(
        contract, ev.public_key(), ephemeral_key=ephemeral, random_bytes=lambda n: iv[:n]
    )
    z = ephemeral.exchange(ec.ECDH(), ev.public_key())
    key = hashlib.sha256(b"\x00\x00\x00\x01" + z + b"\x01\x55\x56").digest()[:16]
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = decryptor.update(wrapped.encrypted_private_key[16:]) + decryptor.finalize()
    assert wrapped.encrypted_private_key[:16] == iv
    assert int.from_bytes(plain, "big") == contract.private_numbers().private_value
    assert wrapped.dh_public_key == ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


# Self-generated known answer with fixed scalars and IV (no public vector exists for the
# contract key wrap as far as we could find); it pins the scheme against regressions.
KAT_EV = 0x1F2E3D4C5B6A798897A6B5C4D3E2F1000112233445566778899AABBCCDDEEFF0
KAT_CONTRACT = 0x0102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20
KAT_EPHEMERAL = 0x7E57000000000000000000000000000000000000000000000000000000000001
KAT_IV = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
KAT_ISO2_ENCRYPTED = (
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    "ada6d8e33cfddd5919679900565ab1f02b683dce0505c05b3784ac5504296688"
)
KAT_ISO2_DH = (
    "04863c3f05de6adef36f77831c474e25ec15afb0f260f0b14b442fd3da50f1bc6d"
    "3a2ed7ef0f035091621273ec80c63913ff3287b33ed2b6eb055e5ddff0f93e91"
)


def test_iso2_known_answer() -> None:
    ev = ec.derive_private_key(KAT_EV, ec.SECP256R1())
    contract = ec.derive_private_key(KAT_CONTRACT, ec.SECP256R1())
    wrapped = keywrap.wrap_iso2(
        contract,
        ev.public_key(),
        ephemeral_key=ec.derive_private_key(KAT_EPHEMERAL, ec.SECP256R1()),
        random_bytes=lambda n: KAT_IV,
    )
    assert wrapped.encrypted_private_key.hex() == KAT_ISO2_ENCRYPTED
    assert wrapped.dh_public_key.hex() == KAT_ISO2_DH
    key = keywrap.unwrap_iso2(wrapped, ev, contract_public_key=contract.public_key())
    assert key.private_numbers().private_value == KAT_CONTRACT


def test_iso2_wrong_recipient_key_fails_cleanly() -> None:
    wrapped = keywrap.wrap_iso2(p256(1), p256(0).public_key())
    with pytest.raises(KeyUnwrapError, match="does not match"):
        keywrap.unwrap_iso2(wrapped, p256(3), contract_public_key=p256(1).public_key())


def test_iso2_wrong_contract_certificate_fails() -> None:
    wrapped = keywrap.wrap_iso2(p256(1), p256(0).public_key())
    with pytest.raises(KeyUnwrapError):
        keywrap.unwrap_iso2(wrapped, p256(0), contract_public_key=p256(2).public_key())


@settings(max_examples=100, deadline=None)
@given(bit=st.integers(min_value=0, max_value=48 * 8 - 1))
def test_iso2_tampered_ciphertext_fails(bit: int) -> None:
    wrapped = _iso2_fixture()
    tampered = WrappedKey(wrapped.dh_public_key, _flip(wrapped.encrypted_private_key, bit))
    with pytest.raises(KeyUnwrapError):
        keywrap.unwrap_iso2(tampered, p256(0), contract_public_key=p256(1).public_key())


@settings(max_examples=100, deadline=None)
@given(bit=st.integers(min_value=0, max_value=65 * 8 - 1))
def test_iso2_tampered_dh_public_key_fails(bit: int) -> None:
    wrapped = _iso2_fixture()
    tampered = WrappedKey(_flip(wrapped.dh_public_key, bit), wrapped.encrypted_private_key)
    with pytest.raises(KeyUnwrapError):
        keywrap.unwrap_iso2(tampered, p256(0), contract_public_key=p256(1).public_key())


@cache
def _iso2_fixture() -> WrappedKey:
    return keywrap.wrap_iso2(p256(1), p256(0).public_key())


@pytest.mark.parametrize(
    ("dh", "enc"),
    [(b"\x04" + bytes(64), bytes(48)), (bytes(65), bytes(48)), (b"\x04" * 33, bytes(48))],
    ids=["not on curve", "not uncompressed", "compressed length"],
)
def test_iso2_malformed_fields_fail(dh: bytes, enc: bytes) -> None:
    with pytest.raises(KeyUnwrapError):
        keywrap.unwrap_iso2(WrappedKey(dh, enc), p256(0), contract_public_key=p256(1).public_key())


def test_iso2_wrong_lengths_fail() -> None:
    wrapped = _iso2_fixture()
    for broken in (
        WrappedKey(wrapped.dh_public_key, wrapped.encrypted_private_key[:32]),
        WrappedKey(wrapped.dh_public_key, wrapped.encrypted_private_key + bytes(16)),
        WrappedKey(wrapped.dh_public_key[:64], wrapped.encrypted_private_key),
    ):
        with pytest.raises(KeyUnwrapError):
            keywrap.unwrap_iso2(broken, p256(0), contract_public_key=p256(1).public_key())


def test_iso2_wrap_refuses_other_curves() -> None:
    with pytest.raises(ValueError, match="secp256r1"):
        keywrap.wrap_iso2(p521(1), p256(0).public_key())
    with pytest.raises(ValueError, match="secp256r1"):
        keywrap.wrap_iso2(p256(1), p521(0).public_key())


def test_iso2_installation_res_end_to_end() -> None:
    """The SA wraps and signs the four parts; the EV verifies the signature, then unwraps."""
    ev_oem, contract, sa = p256(0), p256(1), p256(4)
    wrapped = keywrap.wrap_iso2(contract, ev_oem.public_key())
    body = "urn:iso:15118:2:2013:MsgBody"
    parts = [
        ("id1", exi.Element(body, "ContractSignatureCertChain",
                            iso2.CertificateChainType(Id="id1", Certificate=b"\x30" * 100))),
        ("id2", exi.Element(body, "ContractSignatureEncryptedPrivateKey",
                            iso2.ContractSignatureEncryptedPrivateKeyType(
                                Id="id2", value=wrapped.encrypted_private_key))),
        ("id3", exi.Element(body, "DHpublickey",
                            iso2.DiffieHellmanPublickeyType(Id="id3",
                                                            value=wrapped.dh_public_key))),
        ("id4", exi.Element(body, "eMAID", iso2.EMAIDType(Id="id4", value="DEABCC123456789"))),
    ]  # fmt: skip
    message = xmlsig.SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES
    signature = xmlsig.sign(parts, sa, message=message)
    received = {i: exi.decode_fragment("iso2", exi.encode_fragment("iso2", e)) for i, e in parts}
    xmlsig.verify(signature, received, sa.public_key(), message=message)
    got = WrappedKey(received["id3"].value.value, received["id2"].value.value)
    key = keywrap.unwrap_iso2(got, ev_oem, contract_public_key=contract.public_key())
    assert key.private_numbers() == contract.private_numbers()


# --- ISO 15118-20 ---------------------------------------------------------------------------

KeyMaker = Callable[[int], keywrap.Iso20PrivateKey]
CURVES: dict[Iso20Curve, tuple[KeyMaker, int, int]] = {
    Iso20Curve.SECP521: (p521, 133, 94),
    Iso20Curve.X448: (x, 56, 84),
}


def _public(key: keywrap.Iso20PrivateKey) -> keywrap.Iso20PublicKey:
    return key.public_key()


@pytest.mark.parametrize("curve", list(Iso20Curve), ids=lambda c: c.value)
def test_iso20_round_trip(curve: Iso20Curve) -> None:
    make, dh_len, enc_len = CURVES[curve]
    ev, contract = make(0), make(1)
    got_curve, wrapped = keywrap.wrap_iso20(contract, _public(ev), pcid=PCID, contract_ski=SKI)
    assert got_curve is curve
    assert len(wrapped.dh_public_key) == dh_len
    assert len(wrapped.encrypted_private_key) == enc_len
    key = keywrap.unwrap_iso20(
        curve, wrapped, ev, pcid=PCID, contract_ski=SKI, contract_public_key=_public(contract)
    )
    assert _public(key) == _public(contract)


@cache
def _iso20_fixture(curve: Iso20Curve) -> WrappedKey:
    make = CURVES[curve][0]
    return keywrap.wrap_iso20(make(1), _public(make(0)), pcid=PCID, contract_ski=SKI)[1]


def _unwrap20(curve: Iso20Curve, wrapped: WrappedKey, **kw: object) -> None:
    make = CURVES[curve][0]
    args: dict[str, object] = {
        "pcid": PCID, "contract_ski": SKI, "contract_public_key": _public(make(1)),
    }  # fmt: skip
    args.update(kw)
    recipient = args.pop("recipient", make(0))
    keywrap.unwrap_iso20(curve, wrapped, recipient, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("curve", list(Iso20Curve), ids=lambda c: c.value)
def test_iso20_wrong_key_pcid_or_ski_fails_on_the_tag(curve: Iso20Curve) -> None:
    wrapped = _iso20_fixture(curve)
    make = CURVES[curve][0]
    for override in (
        {"recipient": make(3)},
        {"pcid": "WMIV1234567890ABC2"},
        {"contract_ski": SKI[:-1] + b"\x00"},
    ):
        with pytest.raises(KeyUnwrapError, match="authentication failed"):
            _unwrap20(curve, wrapped, **override)


@pytest.mark.parametrize("curve", list(Iso20Curve), ids=lambda c: c.value)
def test_iso20_wrong_contract_certificate_fails(curve: Iso20Curve) -> None:
    make = CURVES[curve][0]
    with pytest.raises(KeyUnwrapError, match="does not match"):
        _unwrap20(curve, _iso20_fixture(curve), contract_public_key=_public(make(2)))


@settings(max_examples=100, deadline=None)
@given(curve=st.sampled_from(list(Iso20Curve)), bit=st.integers(min_value=0, max_value=2000))
def test_iso20_tampered_data_fails(curve: Iso20Curve, bit: int) -> None:
    wrapped = _iso20_fixture(curve)
    enc = wrapped.encrypted_private_key
    with pytest.raises(KeyUnwrapError):
        _unwrap20(curve, WrappedKey(wrapped.dh_public_key, _flip(enc, bit % (len(enc) * 8))))
    dh = wrapped.dh_public_key
    with pytest.raises(KeyUnwrapError):
        _unwrap20(curve, WrappedKey(_flip(dh, bit % (len(dh) * 8)), enc))


def test_iso20_curve_mismatch_fails() -> None:
    with pytest.raises(KeyUnwrapError, match="ECDHCurve"):
        _unwrap20(Iso20Curve.X448, _iso20_fixture(Iso20Curve.SECP521), recipient=p521(0))
    with pytest.raises(KeyUnwrapError):
        _unwrap20(Iso20Curve.SECP521, _iso20_fixture(Iso20Curve.X448))


def test_iso20_leading_bits_must_be_zero() -> None:
    """[V2G20-2678]: a 528-bit plaintext with any of the top 7 bits set is refused."""
    ev, ephemeral = p521(0), p521(2)
    shared = ephemeral.exchange(ec.ECDH(), ev.public_key())
    iv = bytes(12)
    plaintext = b"\x80" + bytes(65)
    aad = PCID.encode() + SKI.hex().upper().encode()
    sealed = AESGCM(keywrap.ISO20_KDF.derive(shared)).encrypt(iv, plaintext, aad)
    dh = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    with pytest.raises(KeyUnwrapError, match="7 zero bits"):
        _unwrap20(Iso20Curve.SECP521, WrappedKey(dh, iv + sealed))


def test_iso20_layout_iv_ciphertext_tag() -> None:
    """IV in the 12 most significant bytes, tag in the 16 least ([V2G20-2499], [V2G20-2502])."""
    iv = bytes(range(12))
    ev, contract, ephemeral = p521(0), p521(1), p521(2)
    _, wrapped = keywrap.wrap_iso20(
        contract, ev.public_key(), pcid=PCID, contract_ski=SKI,
        ephemeral_key=ephemeral, random_bytes=lambda n: iv,
    )  # fmt: skip
    data = wrapped.encrypted_private_key
    assert data[:12] == iv
    shared = ephemeral.exchange(ec.ECDH(), ev.public_key())
    aad = PCID.encode("ascii") + SKI.hex().upper().encode("ascii")
    plain = AESGCM(keywrap.ISO20_KDF.derive(shared)).decrypt(iv, data[12:], aad)
    assert plain == contract.private_numbers().private_value.to_bytes(66, "big")


@pytest.mark.parametrize("pcid", ["wmiv1234567890abc1", "WMIV1234567890ABC", "WMIV-234567890ABC1"])
def test_iso20_pcid_format_is_checked(pcid: str) -> None:
    with pytest.raises(ValueError, match="PCID"):
        keywrap.wrap_iso20(p521(1), p521(0).public_key(), pcid=pcid, contract_ski=SKI)


def test_iso20_wrap_refuses_mixed_or_foreign_keys() -> None:
    with pytest.raises(ValueError):
        keywrap.wrap_iso20(p521(1), x(0).public_key(), pcid=PCID, contract_ski=SKI)
    with pytest.raises(ValueError):
        keywrap.wrap_iso20(x(1), p521(0).public_key(), pcid=PCID, contract_ski=SKI)
    with pytest.raises(ValueError):
        keywrap.wrap_iso20(p256(1), p256(0).public_key(), pcid=PCID, contract_ski=SKI)
