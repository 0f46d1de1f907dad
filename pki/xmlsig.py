"""XML signatures over EXI fragments, ISO 15118-2 and ISO 15118-20.

A signed element is encoded as an EXI fragment of its message schema and digested; the
`SignedInfo` naming those digests is encoded as a fragment of the xmldsig schema alone and
signed ([V2G20-1449]; ISO 15118-2 Annex J.2 for the -2 bytes).  Our EXI encoder is
canonical, so a verifier re-encodes the element it decoded and digests its own bytes.

    signature = sign([("ID1", auth_req)], key, message=SignedMessage.ISO2_AUTHORIZATION_REQ)
    verify(signature, {"ID1": auth_req}, key.public_key(),
           message=SignedMessage.ISO2_AUTHORIZATION_REQ)      # raises SignatureError

Algorithms are fixed by the standard and the key type, never read from the peer's
`SignedInfo`: a URI other than the one expected is rejected.

- ISO 15118-2, P-256 key: SignatureMethod xmldsig-more#ecdsa-sha256, DigestMethod
  xmlenc#sha256, SignatureValue r||s (64 bytes), not DER (Annex J.2).
- ISO 15118-20, P-521 key: xmldsig-more#ecdsa-sha512 [V2G20-2473], xmlenc#sha512
  [V2G20-2475], r||s (132 bytes).
- ISO 15118-20, Ed448 key: urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448 [V2G20-2474],
  urn:iso:std:iso:15118:-20:Security:xmlenc#SHAKE256 [V2G20-2476], 114-byte EdDSA value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from exi_schemas import xmldsig
from iso15118 import exi
from pki.errors import PkiError
from pki.profiles import Standard

__all__ = [
    "CANONICAL_EXI",
    "AlgorithmError",
    "DigestMismatchError",
    "PrivateKey",
    "PublicKey",
    "SignatureError",
    "SignatureValueError",
    "SignedInfoError",
    "SignedMessage",
    "Standard",
    "sign",
    "signed_info_bytes",
    "verify",
]

CANONICAL_EXI = "http://www.w3.org/TR/canonical-exi/"  # [V2G20-766]; -2 Annex J.2
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"  # [V2G20-2473]
ED448 = "urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448"  # [V2G20-2474]
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"  # [V2G20-2475]
SHAKE256 = "urn:iso:std:iso:15118:-20:Security:xmlenc#SHAKE256"  # [V2G20-2476]

PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed448.Ed448PublicKey


# --- errors ---------------------------------------------------------------------------------


class SignatureError(PkiError):
    """The peer's signature does not verify; the session answers FAILED_SignatureError
    (the code is the same in ISO 15118-2 and -20)."""

    response_code: ClassVar[str] = "FAILED_SignatureError"
    iso20_response_code: ClassVar[str] = "FAILED_SignatureError"


class AlgorithmError(SignatureError):
    """An algorithm URI, key type or value size other than the one the standard fixes."""


class SignedInfoError(SignatureError):
    """The references do not cover exactly the elements the message must sign, or
    `SignedInfo` uses a field the standard forbids."""


class DigestMismatchError(SignatureError):
    """A referenced element's digest differs from the one in `SignedInfo`."""


class SignatureValueError(SignatureError):
    """The signature value over `SignedInfo` does not verify with the signer's key."""


# --- algorithm suites -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Suite:
    signature_uri: str
    digest_uri: str
    digest: Callable[[bytes], bytes]
    digest_size: int
    value_size: int


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def _shake256(data: bytes) -> bytes:
    # 512-bit output: [V2G20-2476] names SHAKE256 without a length in the public text we
    # could read; 64 bytes matches the SHA-512 digests of the other suite.
    return hashlib.shake_256(data).digest(64)


_ISO2_P256 = _Suite(ECDSA_SHA256, SHA256, _sha256, 32, 64)
_ISO20_P521 = _Suite(ECDSA_SHA512, SHA512, _sha512, 64, 132)
_ISO20_ED448 = _Suite(ED448, SHAKE256, _shake256, 64, 114)


def _suite(standard: Standard, key: PrivateKey | PublicKey) -> _Suite | None:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if standard is Standard.ISO2 and isinstance(key.curve, ec.SECP256R1):
            return _ISO2_P256
        if standard is Standard.ISO20 and isinstance(key.curve, ec.SECP521R1):
            return _ISO20_P521
        return None
    if standard is Standard.ISO20:
        return _ISO20_ED448
    return None


# --- which message signs which elements -----------------------------------------------------

_ISO2_BODY = "urn:iso:15118:2:2013:MsgBody"
_ISO2_TYPES = "urn:iso:15118:2:2013:MsgDataTypes"
_ISO20_CM = "urn:iso:std:iso:15118:-20:CommonMessages"


@dataclass(frozen=True, slots=True)
class _Rule:
    standard: Standard
    schema: str
    names: tuple[tuple[str, str], ...]  # the elements a reference may point to
    min_refs: int
    max_refs: int
    each_once: bool  # every name in `names` referenced exactly once

    def allows(self, qname: tuple[str, str]) -> bool:
        return qname in self.names


class SignedMessage(Enum):
    """A message that carries a signature, with the elements its references must cover."""

    #: AuthorizationReq (PnC) signed by the contract key; GenChallenge must be present
    ISO2_AUTHORIZATION_REQ = _Rule(
        Standard.ISO2, "iso2", ((_ISO2_BODY, "AuthorizationReq"),), 1, 1, True
    )
    #: MeteringReceiptReq signed by the contract key
    ISO2_METERING_RECEIPT_REQ = _Rule(
        Standard.ISO2, "iso2", ((_ISO2_BODY, "MeteringReceiptReq"),), 1, 1, True
    )
    #: CertificateInstallationReq signed by the OEM provisioning key
    ISO2_CERTIFICATE_INSTALLATION_REQ = _Rule(
        Standard.ISO2, "iso2", ((_ISO2_BODY, "CertificateInstallationReq"),), 1, 1, True
    )
    #: CertificateUpdateReq signed by the old contract key
    ISO2_CERTIFICATE_UPDATE_REQ = _Rule(
        Standard.ISO2, "iso2", ((_ISO2_BODY, "CertificateUpdateReq"),), 1, 1, True
    )
    #: CertificateInstallationRes / CertificateUpdateRes, signed by the SA provisioning key:
    #: the four installation parts, one reference each
    ISO2_CERTIFICATE_INSTALLATION_RES = _Rule(
        Standard.ISO2,
        "iso2",
        (
            (_ISO2_BODY, "ContractSignatureCertChain"),
            (_ISO2_BODY, "ContractSignatureEncryptedPrivateKey"),
            (_ISO2_BODY, "DHpublickey"),
            (_ISO2_BODY, "eMAID"),
        ),
        4,
        4,
        True,
    )
    #: ChargeParameterDiscoveryRes: one reference per SalesTariff (SAScheduleTuple 1..3)
    ISO2_SALES_TARIFF = _Rule(Standard.ISO2, "iso2", ((_ISO2_TYPES, "SalesTariff"),), 1, 3, False)
    #: AuthorizationReq with PnC_AReqAuthorizationMode, signed by the contract key
    ISO20_AUTHORIZATION_REQ = _Rule(
        Standard.ISO20, "iso20-common", ((_ISO20_CM, "PnC_AReqAuthorizationMode"),), 1, 1, True
    )
    #: CertificateInstallationReq: the OEM provisioning certificate chain element
    ISO20_CERTIFICATE_INSTALLATION_REQ = _Rule(
        Standard.ISO20,
        "iso20-common",
        ((_ISO20_CM, "OEMProvisioningCertificateChain"),),
        1,
        1,
        True,
    )
    #: CertificateInstallationRes: SignedInstallationData, signed by the CPS key
    ISO20_CERTIFICATE_INSTALLATION_RES = _Rule(
        Standard.ISO20, "iso20-common", ((_ISO20_CM, "SignedInstallationData"),), 1, 1, True
    )
    #: MeteringConfirmationReq: SignedMeteringData
    ISO20_METERING_CONFIRMATION_REQ = _Rule(
        Standard.ISO20, "iso20-common", ((_ISO20_CM, "SignedMeteringData"),), 1, 1, True
    )
    #: ScheduleExchangeRes: one reference per price schedule (ScheduleTuple 1..3)
    ISO20_PRICE_SCHEDULES = _Rule(
        Standard.ISO20,
        "iso20-common",
        ((_ISO20_CM, "AbsolutePriceSchedule"), (_ISO20_CM, "PriceLevelSchedule")),
        1,
        3,
        False,
    )


# --- encoding -------------------------------------------------------------------------------


def _qname_and_value(element: object) -> tuple[tuple[str, str], Any]:
    if isinstance(element, exi.Element):
        return (element.namespace, element.name), element.value
    qname = getattr(type(element), "_exi_element_", None)
    if qname is None:
        raise TypeError(
            f"{type(element).__name__} does not name its element; "
            "wrap it as exi.Element(namespace, name, value)"
        )
    return qname, element


def _fragment(rule: _Rule, element: object, *, strict: bool) -> bytes:
    return exi.encode_fragment(rule.schema, element, strict=strict)


def signed_info_bytes(signed_info: xmldsig.SignedInfoType) -> bytes:
    """`SignedInfo` as the bytes the signature value covers (xmldsig fragment grammar)."""
    return exi.encode_fragment("xmldsig", signed_info)


# --- signing --------------------------------------------------------------------------------


def sign(
    elements: Sequence[tuple[str, object]],
    private_key: PrivateKey,
    *,
    message: SignedMessage,
) -> xmldsig.SignatureType:
    """Sign `elements` ((Id, element) pairs, each element a typed object that names its
    element or an `exi.Element`) for `message`, whose standard and the key's type fix the
    algorithms.  Misuse (a wrong key type, elements the message does not sign, an Id that
    differs from the element's Id attribute) raises ValueError or TypeError."""
    rule = message.value
    suite = _suite(rule.standard, private_key)
    if suite is None:
        raise ValueError(f"{type(private_key).__name__} cannot sign for {rule.standard.value}")
    qnames: list[tuple[str, str]] = []
    values: list[Any] = []
    references: list[xmldsig.ReferenceType] = []
    for ident, element in elements:
        qname, value = _qname_and_value(element)
        if getattr(value, "Id", None) != ident:
            raise ValueError(f"{qname[1]} has Id {getattr(value, 'Id', None)!r}, not {ident!r}")
        digest = suite.digest(_fragment(rule, element, strict=True))
        qnames.append(qname)
        values.append(value)
        references.append(_reference(ident, suite, digest))
    problem = _coverage_problem(rule, qnames, values)
    if problem:
        raise ValueError(problem)
    signed_info = xmldsig.SignedInfoType(
        CanonicalizationMethod=xmldsig.CanonicalizationMethodType(Algorithm=CANONICAL_EXI),
        SignatureMethod=xmldsig.SignatureMethodType(Algorithm=suite.signature_uri),
        Reference=references,
    )
    value = _sign_bytes(private_key, suite, signed_info_bytes(signed_info))
    return xmldsig.SignatureType(
        SignedInfo=signed_info, SignatureValue=xmldsig.SignatureValueType(value=value)
    )


def _reference(ident: str, suite: _Suite, digest: bytes) -> xmldsig.ReferenceType:
    return xmldsig.ReferenceType(
        URI="#" + ident,
        Transforms=xmldsig.TransformsType(
            Transform=[xmldsig.TransformType(Algorithm=CANONICAL_EXI)]
        ),
        DigestMethod=xmldsig.DigestMethodType(Algorithm=suite.digest_uri),
        DigestValue=digest,
    )


def _sign_bytes(key: PrivateKey, suite: _Suite, data: bytes) -> bytes:
    if isinstance(key, ed448.Ed448PrivateKey):
        return key.sign(data)
    hash_algorithm = hashes.SHA256() if suite is _ISO2_P256 else hashes.SHA512()
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_algorithm)))
    half = suite.value_size // 2
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")


# --- verification ---------------------------------------------------------------------------


def verify(
    signature: xmldsig.SignatureType,
    elements_by_id: Mapping[str, object],
    public_key: PublicKey,
    *,
    message: SignedMessage,
) -> None:
    """Check `signature` over the elements of `message` (Id -> element, as decoded from the
    peer's message) with the signer's public key; return None or raise a SignatureError.

    Each referenced element is re-encoded (leniently, to reproduce exactly what a peer
    sent even where it exceeds a facet) and digested; the algorithms must be exactly the
    ones the standard fixes for the key type; the references must cover exactly the
    elements the message signs; the signature value must verify over `SignedInfo`."""
    rule = message.value
    suite = _suite(rule.standard, public_key)
    if suite is None:
        raise AlgorithmError(f"a {type(public_key).__name__} cannot sign {rule.standard.value}")
    signed_info = signature.SignedInfo
    if len(signed_info.Reference) > rule.max_refs:  # before any digest work
        raise SignedInfoError(
            f"{len(signed_info.Reference)} references, {message.name} signs at most {rule.max_refs}"
        )
    _check_shape(signature, suite)
    qnames: list[tuple[str, str]] = []
    values: list[Any] = []
    for reference in signed_info.Reference:
        element = _resolve(reference, elements_by_id)
        qname, value = _qname_and_value(element)
        if not rule.allows(qname):
            raise SignedInfoError(
                f"{reference.URI} names {qname[1]}, which {message.name} does not sign"
            )
        try:
            data = _fragment(rule, element, strict=False)
        except exi.ExiError as exc:
            raise SignedInfoError(f"{reference.URI}: cannot encode the element ({exc})") from None
        if not hmac.compare_digest(suite.digest(data), reference.DigestValue):
            raise DigestMismatchError(f"digest of {qname[1]} ({reference.URI}) does not match")
        qnames.append(qname)
        values.append(value)
    problem = _coverage_problem(rule, qnames, values)
    if problem:
        raise SignedInfoError(problem)
    _verify_value(public_key, suite, signature.SignatureValue.value, signed_info)


def _check_shape(signature: xmldsig.SignatureType, suite: _Suite) -> None:
    """Algorithms as the standard fixes them; fields [V2G20-771] forbids absent; one
    Transform per reference [V2G2-767]/[V2G20-767]."""
    signed_info = signature.SignedInfo
    if signed_info.CanonicalizationMethod.Algorithm != CANONICAL_EXI:
        raise AlgorithmError(
            f"CanonicalizationMethod {signed_info.CanonicalizationMethod.Algorithm!r}"
        )
    if signed_info.SignatureMethod.Algorithm != suite.signature_uri:
        raise AlgorithmError(
            f"SignatureMethod {signed_info.SignatureMethod.Algorithm!r}, "
            f"expected {suite.signature_uri!r}"
        )
    forbidden = [
        ("SignedInfo/@Id", signed_info.Id is not None),
        ("HMACOutputLength", signed_info.SignatureMethod.HMACOutputLength is not None),
        ("SignatureValue/@Id", signature.SignatureValue.Id is not None),
        ("KeyInfo", signature.KeyInfo is not None),
        ("Object", bool(signature.Object)),
    ]
    for reference in signed_info.Reference:
        transforms = reference.Transforms.Transform if reference.Transforms is not None else []
        if len(transforms) != 1 or transforms[0].Algorithm != CANONICAL_EXI:
            raise AlgorithmError(f"{reference.URI}: Transforms must be exactly one canonical-exi")
        if reference.DigestMethod.Algorithm != suite.digest_uri:
            raise AlgorithmError(
                f"{reference.URI}: DigestMethod {reference.DigestMethod.Algorithm!r}, "
                f"expected {suite.digest_uri!r}"
            )
        if len(reference.DigestValue) != suite.digest_size:
            raise AlgorithmError(
                f"{reference.URI}: DigestValue of {len(reference.DigestValue)} bytes"
            )
        forbidden += [
            ("Reference/@Type", reference.Type is not None),
            ("XPath", bool(transforms[0].XPath)),
        ]
    used = [name for name, present in forbidden if present]
    if used:
        raise SignedInfoError(f"SignedInfo uses fields the standard forbids: {', '.join(used)}")


def _resolve(reference: xmldsig.ReferenceType, elements_by_id: Mapping[str, object]) -> object:
    uri = reference.URI
    if uri is None or not uri.startswith("#"):
        raise SignedInfoError(f"reference URI {uri!r} is not a same-document '#Id'")
    element = elements_by_id.get(uri[1:])
    if element is None:
        raise SignedInfoError(f"reference {uri} names no signed element of the message")
    _qname, value = _qname_and_value(element)
    if getattr(value, "Id", None) != uri[1:]:
        raise SignedInfoError(f"reference {uri} resolves to an element whose Id differs")
    return element


def _coverage_problem(
    rule: _Rule, qnames: Sequence[tuple[str, str]], values: Sequence[Any]
) -> str | None:
    for qname in qnames:
        if not rule.allows(qname):
            return f"{qname[1]} is not an element this message signs"
    if not rule.min_refs <= len(qnames) <= rule.max_refs:
        return f"{len(qnames)} references, the message requires {rule.min_refs}..{rule.max_refs}"
    if rule.each_once and sorted(qnames) != sorted(rule.names):
        return "the references must cover " + ", ".join(n for _ns, n in rule.names) + " once each"
    idents = [getattr(v, "Id", None) for v in values]
    if len(set(idents)) != len(idents):
        return "two references name the same element"
    for qname, value in zip(qnames, values, strict=True):
        if qname[1] == "AuthorizationReq" and getattr(value, "GenChallenge", None) is None:
            return "a signed AuthorizationReq must carry GenChallenge"
    return None


def _verify_value(
    key: PublicKey, suite: _Suite, value: bytes, signed_info: xmldsig.SignedInfoType
) -> None:
    if len(value) != suite.value_size:
        raise AlgorithmError(f"SignatureValue of {len(value)} bytes, expected {suite.value_size}")
    try:
        data = signed_info_bytes(signed_info)
    except exi.ExiError as exc:
        raise SignedInfoError(f"SignedInfo cannot be encoded ({exc})") from None
    try:
        if isinstance(key, ed448.Ed448PublicKey):
            key.verify(value, data)
        else:
            half = suite.value_size // 2
            r = int.from_bytes(value[:half], "big")
            s = int.from_bytes(value[half:], "big")
            hash_algorithm = hashes.SHA256() if suite is _ISO2_P256 else hashes.SHA512()
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_algorithm))
    except InvalidSignature:
        raise SignatureValueError(
            "the signature value does not verify with the signer's key"
        ) from None
