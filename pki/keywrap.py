"""Contract private key wrap for CertificateInstallationRes / CertificateUpdateRes.

The sender (the CPS / eMSP, or a charger mocking it) makes an ephemeral key, agrees a secret
with the EV's static public key (the OEM provisioning key, or the old contract key for an
update), derives a session key and encrypts the new contract private key.  The EV repeats the
agreement with its private key and the ephemeral public key it received (`DHpublickey`).

ISO 15118-2 ([V2G2-818] as cited by Josev; the same bytes in EVerest and other stacks):
ECDH P-256, NIST SP 800-56A concatenation KDF with SHA-256 over Z with
OtherInfo = AlgorithmID 0x01 || PartyUInfo 0x55 ('U') || PartyVInfo 0x56 ('V'), 128-bit
key; AES-128-CBC without padding over the 32-byte big-endian private value, a random 16-byte
IV in front: ContractSignatureEncryptedPrivateKey = IV || ciphertext (48 bytes);
DHpublickey = the uncompressed ephemeral point (65 bytes).

ISO 15118-20 (7.9.2.5.2, without TPM): AES-GCM-256 with a random 96-bit IV and a 128-bit tag
[V2G20-2494], AAD = PCID (18 characters) || SKI of the contract certificate as upper-case
hex [V2G20-2492]; SECP521: the 521-bit key padded to 66 bytes, IV || ciphertext || tag = 94
bytes [V2G20-2497..2499], DHPublicKey the uncompressed P-521 point (133 bytes) [V2G20-2489];
X448: the 56-byte key, 84 bytes [V2G20-2500..2502].  The session key derivation (7.9.2.5.4)
was not in the public text we found: `ISO20_KDF` below is an assumption (the -2 scheme with
SHA-512 and a 256-bit key) and is the one place to change.

An unwrapped key is returned only if it is the private half of the contract certificate's
public key ([V2G20-2507], [V2G20-2510]; the same check for -2, where CBC cannot tell a wrong
key from a right one): never a garbage key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

__all__ = [
    "ISO2_KDF",
    "ISO20_KDF",
    "Iso20Curve",
    "Iso20PrivateKey",
    "Iso20PublicKey",
    "KdfParams",
    "KeyUnwrapError",
    "WrappedKey",
    "unwrap_iso2",
    "unwrap_iso20",
    "wrap_iso2",
    "wrap_iso20",
]

RandomBytes = Callable[[int], bytes]


class KeyUnwrapError(Exception):
    """The wrapped contract key cannot be recovered: malformed fields, a wrong key (GCM tag),
    or a result that is not the contract certificate's private key.  The EV rejects the
    CertificateInstallationRes / UpdateRes ([V2G20-2504]); it answers no response code."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    """NIST SP 800-56A single-step (concatenation) KDF: Hash(counter || Z || OtherInfo)."""

    hash_name: str  # "sha256" | "sha512"
    other_info: bytes
    key_length: int

    def derive(self, shared_secret: bytes) -> bytes:
        algorithm: hashes.HashAlgorithm = (
            hashes.SHA256() if self.hash_name == "sha256" else hashes.SHA512()
        )
        kdf = ConcatKDFHash(algorithm=algorithm, length=self.key_length, otherinfo=self.other_info)
        return kdf.derive(shared_secret)


_OTHER_INFO = bytes([0x01, 0x55, 0x56])  # AlgorithmID, PartyUInfo 'U', PartyVInfo 'V'
ISO2_KDF = KdfParams("sha256", _OTHER_INFO, 16)  # [V2G2-818]
ISO20_KDF = KdfParams("sha512", _OTHER_INFO, 32)  # ASSUMPTION, see the module docstring


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """What the response carries: `dh_public_key` (DHpublickey / DHPublicKey) and
    `encrypted_private_key` (ContractSignatureEncryptedPrivateKey, or the -20
    SECP521_/X448_EncryptedPrivateKey)."""

    dh_public_key: bytes
    encrypted_private_key: bytes


class Iso20Curve(Enum):
    """ECDHCurve of SignedInstallationData ([V2G20-2487], [V2G20-2488])."""

    SECP521 = "SECP521"
    X448 = "X448"


# --- ISO 15118-2 ----------------------------------------------------------------------------

_P256_POINT = 65
_IV_CBC = 16
_P256_SCALAR = 32


def wrap_iso2(
    contract_key: ec.EllipticCurvePrivateKey,
    recipient_public_key: ec.EllipticCurvePublicKey,
    *,
    ephemeral_key: ec.EllipticCurvePrivateKey | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> WrappedKey:
    """Encrypt the P-256 contract key for the EV whose static key is `recipient_public_key`
    (the OEM provisioning certificate's, or the old contract certificate's for an update).
    `ephemeral_key` and `random_bytes` (the IV) are seams for tests; leave them out."""
    _require_curve(contract_key, ec.SECP256R1, "contract key")
    _require_curve(recipient_public_key, ec.SECP256R1, "recipient key")
    ephemeral = ephemeral_key or ec.generate_private_key(ec.SECP256R1())
    _require_curve(ephemeral, ec.SECP256R1, "ephemeral key")
    session_key = ISO2_KDF.derive(ephemeral.exchange(ec.ECDH(), recipient_public_key))
    iv = random_bytes(_IV_CBC)
    plaintext = contract_key.private_numbers().private_value.to_bytes(_P256_SCALAR, "big")
    encryptor = Cipher(algorithms.AES(session_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return WrappedKey(_uncompressed(ephemeral.public_key()), iv + ciphertext)


def unwrap_iso2(
    wrapped: WrappedKey,
    recipient_key: ec.EllipticCurvePrivateKey,
    *,
    contract_public_key: ec.EllipticCurvePublicKey,
) -> ec.EllipticCurvePrivateKey:
    """The EV side: recover the contract private key, or raise KeyUnwrapError.
    `contract_public_key` is the public key of the contract certificate in the same
    response; the recovered key must match it."""
    _require_curve(recipient_key, ec.SECP256R1, "recipient key")
    if len(wrapped.dh_public_key) != _P256_POINT or len(wrapped.encrypted_private_key) != 48:
        raise KeyUnwrapError("DHpublickey must be 65 bytes and the encrypted key 48")
    ephemeral = _load_point(ec.SECP256R1(), wrapped.dh_public_key)
    session_key = ISO2_KDF.derive(recipient_key.exchange(ec.ECDH(), ephemeral))
    iv, ciphertext = (
        wrapped.encrypted_private_key[:_IV_CBC],
        wrapped.encrypted_private_key[_IV_CBC:],
    )
    decryptor = Cipher(algorithms.AES(session_key), modes.CBC(iv)).decryptor()
    value = int.from_bytes(decryptor.update(ciphertext) + decryptor.finalize(), "big")
    return _ec_key_matching(value, ec.SECP256R1(), contract_public_key)


# --- ISO 15118-20 ---------------------------------------------------------------------------

_IV_GCM = 12
_TAG = 16
_P521_POINT = 133
_P521_SCALAR = 66  # 521 bits with 7 leading zero bits [V2G20-2497]
_X448_KEY = 56
_PCID = re.compile(r"[A-Z0-9]{18}")

Iso20PrivateKey = ec.EllipticCurvePrivateKey | x448.X448PrivateKey
Iso20PublicKey = ec.EllipticCurvePublicKey | x448.X448PublicKey


def _aad(pcid: str, contract_ski: bytes) -> bytes:
    """[V2G20-2492]: PCID (18 upper-case letters and digits) || SKI as upper-case hex."""
    if not _PCID.fullmatch(pcid):
        raise ValueError(f"PCID must be 18 upper-case letters and digits, not {pcid!r}")
    if not contract_ski:
        raise ValueError("the contract certificate's SKI is empty")
    return pcid.encode("ascii") + contract_ski.hex().upper().encode("ascii")


def wrap_iso20(
    contract_key: Iso20PrivateKey,
    recipient_public_key: Iso20PublicKey,
    *,
    pcid: str,
    contract_ski: bytes,
    ephemeral_key: Iso20PrivateKey | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> tuple[Iso20Curve, WrappedKey]:
    """Encrypt the contract key (P-521, or a 56-byte X448 key) for the EV's static key of the
    same curve; returns the ECDHCurve value to send and the wrapped key.  `pcid` is the one
    of the CertificateInstallationReq, `contract_ski` the contract certificate's SKI."""
    aad = _aad(pcid, contract_ski)
    curve = _iso20_curve(contract_key, recipient_public_key)
    if curve is Iso20Curve.SECP521:
        assert isinstance(contract_key, ec.EllipticCurvePrivateKey)
        assert isinstance(recipient_public_key, ec.EllipticCurvePublicKey)
        eph_ec = ephemeral_key or ec.generate_private_key(ec.SECP521R1())
        if not isinstance(eph_ec, ec.EllipticCurvePrivateKey):
            raise TypeError("the ephemeral key must be a P-521 key")
        _require_curve(eph_ec, ec.SECP521R1, "ephemeral key")
        shared = eph_ec.exchange(ec.ECDH(), recipient_public_key)
        dh_public = _uncompressed(eph_ec.public_key())
        plaintext = contract_key.private_numbers().private_value.to_bytes(_P521_SCALAR, "big")
    else:
        assert isinstance(contract_key, x448.X448PrivateKey)
        assert isinstance(recipient_public_key, x448.X448PublicKey)
        eph_x = ephemeral_key or x448.X448PrivateKey.generate()
        if not isinstance(eph_x, x448.X448PrivateKey):
            raise TypeError("the ephemeral key must be an X448 key")
        shared = eph_x.exchange(recipient_public_key)
        dh_public = eph_x.public_key().public_bytes_raw()  # 56 bytes, no filler [V2G20-2495]
        plaintext = contract_key.private_bytes_raw()
    iv = random_bytes(_IV_GCM)
    sealed = AESGCM(ISO20_KDF.derive(shared)).encrypt(iv, plaintext, aad)  # ciphertext || tag
    return curve, WrappedKey(dh_public, iv + sealed)


def unwrap_iso20(
    curve: Iso20Curve,
    wrapped: WrappedKey,
    recipient_key: Iso20PrivateKey,
    *,
    pcid: str,
    contract_ski: bytes,
    contract_public_key: Iso20PublicKey,
) -> Iso20PrivateKey:
    """The EV side: recover the contract private key for the ECDHCurve received, or raise
    KeyUnwrapError (wrong key or tampering: the GCM tag; a result that does not match
    `contract_public_key`)."""
    aad = _aad(pcid, contract_ski)
    if _iso20_curve_of_private(recipient_key) is not curve:
        raise KeyUnwrapError(f"ECDHCurve {curve.value} does not match the EV's key")
    if curve is Iso20Curve.SECP521:
        assert isinstance(recipient_key, ec.EllipticCurvePrivateKey)
        point_len, value_len = _P521_POINT, _P521_SCALAR
    else:
        assert isinstance(recipient_key, x448.X448PrivateKey)
        point_len, value_len = _X448_KEY, _X448_KEY
    total = _IV_GCM + value_len + _TAG
    if len(wrapped.dh_public_key) != point_len or len(wrapped.encrypted_private_key) != total:
        raise KeyUnwrapError(
            f"{curve.value}: DHPublicKey must be {point_len} bytes and the key {total}"
        )
    shared = _iso20_shared(recipient_key, wrapped.dh_public_key)
    data = wrapped.encrypted_private_key
    try:
        plaintext = AESGCM(ISO20_KDF.derive(shared)).decrypt(data[:_IV_GCM], data[_IV_GCM:], aad)
    except InvalidTag:
        raise KeyUnwrapError(
            "authentication failed: wrong key, PCID, SKI or tampered data"
        ) from None
    if curve is Iso20Curve.X448:
        return _x448_key_matching(plaintext, contract_public_key)
    if plaintext[0] & 0xFE:  # [V2G20-2678]: the 7 most significant bits are zero
        raise KeyUnwrapError("the decrypted 528-bit value does not start with 7 zero bits")
    if not isinstance(contract_public_key, ec.EllipticCurvePublicKey):
        raise KeyUnwrapError("the contract certificate's key is not a P-521 key")
    return _ec_key_matching(int.from_bytes(plaintext, "big"), ec.SECP521R1(), contract_public_key)


def _iso20_curve(key: Iso20PrivateKey, peer: Iso20PublicKey) -> Iso20Curve:
    curve = _iso20_curve_of_private(key)
    if curve is None:
        raise ValueError("the contract key must be a P-521 or an X448 key")
    if curve is Iso20Curve.SECP521:
        if not isinstance(peer, ec.EllipticCurvePublicKey):
            raise ValueError("the recipient key must be a P-521 key like the contract key")
        _require_curve(peer, ec.SECP521R1, "recipient key")
    elif not isinstance(peer, x448.X448PublicKey):
        raise ValueError("the recipient key must be an X448 key like the contract key")
    return curve


def _iso20_curve_of_private(key: Iso20PrivateKey) -> Iso20Curve | None:
    if isinstance(key, x448.X448PrivateKey):
        return Iso20Curve.X448
    if isinstance(key.curve, ec.SECP521R1):
        return Iso20Curve.SECP521
    return None


def _iso20_shared(key: Iso20PrivateKey, dh_public_key: bytes) -> bytes:
    if isinstance(key, x448.X448PrivateKey):
        try:
            return key.exchange(x448.X448PublicKey.from_public_bytes(dh_public_key))
        except ValueError:
            raise KeyUnwrapError("DHPublicKey is not a usable X448 key") from None
    return key.exchange(ec.ECDH(), _load_point(ec.SECP521R1(), dh_public_key))


# --- helpers --------------------------------------------------------------------------------


def _require_curve(
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
    curve: type[ec.EllipticCurve],
    what: str,
) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        raise TypeError(f"the {what} must be an elliptic-curve key")
    if not isinstance(key.curve, curve):
        raise ValueError(f"the {what} is on {key.curve.name}, expected {curve.name}")


def _uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _load_point(curve: ec.EllipticCurve, data: bytes) -> ec.EllipticCurvePublicKey:
    if data[:1] != b"\x04":
        raise KeyUnwrapError("DHpublickey is not an uncompressed point (0x04 ...)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, data)
    except ValueError:
        raise KeyUnwrapError(f"DHpublickey is not a point on {curve.name}") from None


def _ec_key_matching(
    value: int, curve: ec.EllipticCurve, expected: ec.EllipticCurvePublicKey
) -> ec.EllipticCurvePrivateKey:
    """[V2G20-2507]: 0 < value < n, and value·G is the contract certificate's key."""
    if not isinstance(expected.curve, type(curve)):
        raise KeyUnwrapError(f"the contract certificate's key is not on {curve.name}")
    try:
        key = ec.derive_private_key(value, curve)
    except ValueError:
        raise KeyUnwrapError("the decrypted value is not a valid private key") from None
    if key.public_key().public_numbers() != expected.public_numbers():
        raise KeyUnwrapError("the decrypted key does not match the contract certificate")
    return key


def _x448_key_matching(raw: bytes, expected: Iso20PublicKey) -> x448.X448PrivateKey:
    """[V2G20-2510]: the key must produce the contract certificate's public key."""
    if not isinstance(expected, x448.X448PublicKey):
        raise KeyUnwrapError("the contract certificate's key is not an X448 key")
    key = x448.X448PrivateKey.from_private_bytes(raw)
    if key.public_key().public_bytes_raw() != expected.public_bytes_raw():
        raise KeyUnwrapError("the decrypted key does not match the contract certificate")
    return key
