"""Profile conformance of one certificate: every way it departs from its ISO 15118 profile.

`check_profile(certificate, standard, role)` returns `Finding`s, each naming the `PkiError`
subclass that a chain validation raises for it; `pki.chain` uses the same checks and raises
the first finding. `guess_role` identifies a certificate's role for `iso15118 pki lint FILE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from pki import errors
from pki.profiles import (
    PROFILES,
    STANDARDS,
    ExtensionKind,
    KeyAlgorithm,
    KeyUsageBit,
    Profile,
    Role,
    SignatureAlgorithm,
    Standard,
)

__all__ = [
    "Finding",
    "check_profile",
    "der_size",
    "guess_role",
    "guess_standard",
    "key_algorithm",
    "signature_algorithm",
]


@dataclass(frozen=True, slots=True)
class Finding:
    error: type[errors.PkiError]
    message: str

    def exception(self, subject: str | None = None) -> errors.PkiError:
        return self.error(self.message, subject=subject)


_CURVE_NAMES = {
    "secp256r1": KeyAlgorithm.SECP256R1,
    "secp384r1": KeyAlgorithm.SECP384R1,
    "secp521r1": KeyAlgorithm.SECP521R1,
}
_SIGNATURES = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: SignatureAlgorithm.ECDSA_SHA256,
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: SignatureAlgorithm.ECDSA_SHA384,
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: SignatureAlgorithm.ECDSA_SHA512,
    SignatureAlgorithmOID.ED448: SignatureAlgorithm.ED448,
}
_EXTENSION_OIDS = {
    ExtensionKind.BASIC_CONSTRAINTS: x509.oid.ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionKind.KEY_USAGE: x509.oid.ExtensionOID.KEY_USAGE,
    ExtensionKind.SUBJECT_KEY_IDENTIFIER: x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionKind.EXTENDED_KEY_USAGE: x509.oid.ExtensionOID.EXTENDED_KEY_USAGE,
}


def der_size(certificate: x509.Certificate) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    return len(certificate.public_bytes(Encoding.DER))


def key_algorithm(certificate: x509.Certificate) -> KeyAlgorithm | None:
    key = certificate.public_key()
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyAlgorithm.ED448
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _CURVE_NAMES.get(key.curve.name)
    return None


def signature_algorithm(certificate: x509.Certificate) -> SignatureAlgorithm | None:
    return _SIGNATURES.get(certificate.signature_algorithm_oid)


def _extension(
    certificate: x509.Certificate, kind: ExtensionKind
) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return certificate.extensions.get_extension_for_oid(_EXTENSION_OIDS[kind])
    except x509.ExtensionNotFound:
        return None


def _algorithms(cert: x509.Certificate, standard: Standard) -> list[Finding]:
    rules = STANDARDS[standard]
    out = []
    size = der_size(cert)
    if size > rules.max_der_size:
        out.append(
            Finding(
                errors.CertificateTooLargeError,
                f"{size} bytes DER, {standard.value} allows {rules.max_der_size}",
            )
        )
    key = key_algorithm(cert)
    if key not in rules.key_algorithms:
        allowed = ", ".join(sorted(k.value for k in rules.key_algorithms))
        name = key.value if key else type(cert.public_key()).__name__
        out.append(Finding(errors.CurveError, f"key {name}, {standard.value} needs {allowed}"))
    sig = signature_algorithm(cert)
    if sig not in rules.signature_algorithms:
        allowed = ", ".join(sorted(s.value for s in rules.signature_algorithms))
        name = sig.value if sig else cert.signature_algorithm_oid.dotted_string
        out.append(
            Finding(
                errors.HashAlgorithmError, f"signed with {name}, {standard.value} allows {allowed}"
            )
        )
    return out


def _extensions(cert: x509.Certificate, p: Profile) -> list[Finding]:
    out = []
    for kind in sorted(p.required_extensions, key=lambda k: k.value):
        ext = _extension(cert, kind)
        if ext is None:
            out.append(Finding(errors.MissingExtensionError, f"no {kind.value} extension"))
        elif kind in p.critical_extensions and not ext.critical:
            out.append(Finding(errors.ExtensionCriticalityError, f"{kind.value} is not critical"))
    return out


def _basic_constraints(cert: x509.Certificate, p: Profile) -> list[Finding]:
    ext = _extension(cert, ExtensionKind.BASIC_CONSTRAINTS)
    if ext is None:
        return []
    bc = ext.value
    assert isinstance(bc, x509.BasicConstraints)
    if not p.is_ca:
        if bc.ca:
            return [Finding(errors.CaFlagOnLeafError, "a leaf with basicConstraints CA:true")]
        return []
    if not bc.ca:
        return [Finding(errors.BasicConstraintsError, "a CA without basicConstraints CA:true")]
    if bc.path_length != p.path_len:
        return [
            Finding(
                errors.BasicConstraintsError,
                f"pathLenConstraint {bc.path_length}, profile says {p.path_len}",
            )
        ]
    return []


def _usage(cert: x509.Certificate, p: Profile) -> list[Finding]:
    out = []
    ext = _extension(cert, ExtensionKind.KEY_USAGE)
    if ext is not None:
        ku = ext.value
        assert isinstance(ku, x509.KeyUsage)
        bits = {bit for bit in KeyUsageBit if getattr(ku, bit.value)}
        missing = p.key_usage_required - bits
        extra = bits - p.key_usage_allowed
        if missing or extra:
            names = sorted(b.value for b in missing) + sorted(f"+{b.value}" for b in extra)
            out.append(Finding(errors.KeyUsageError, "keyUsage: " + ", ".join(names)))
    if p.extended_key_usage:
        eku = _extension(cert, ExtensionKind.EXTENDED_KEY_USAGE)
        have = {o.dotted_string for o in eku.value} if eku is not None else set()  # type: ignore[attr-defined]
        if not set(p.extended_key_usage) <= have:
            out.append(
                Finding(
                    errors.ExtendedKeyUsageError,
                    f"extendedKeyUsage lacks {', '.join(p.extended_key_usage)}",
                )
            )
    return out


def _subject(cert: x509.Certificate, p: Profile) -> list[Finding]:
    if p.domain_component is None:
        return []
    dcs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)]
    if dcs != [p.domain_component]:
        return [
            Finding(
                errors.DomainComponentError,
                f"subject DC {dcs or 'absent'}, profile fixes {p.domain_component}",
            )
        ]
    return []


def _validity(cert: x509.Certificate, p: Profile) -> list[Finding]:
    if p.max_validity is None:
        return []
    span = cert.not_valid_after_utc - cert.not_valid_before_utc
    if span > p.max_validity:
        return [
            Finding(
                errors.ValidityTooLongError, f"valid {span.days} days, max {p.max_validity.days}"
            )
        ]
    return []


def check_profile(certificate: x509.Certificate, standard: Standard, role: Role) -> list[Finding]:
    """Every departure of `certificate` from the `role` profile of `standard` (none: [])."""
    p = PROFILES[standard][role]
    return [
        *_algorithms(certificate, standard),
        *_extensions(certificate, p),
        *_basic_constraints(certificate, p),
        *_usage(certificate, p),
        *_subject(certificate, p),
        *_validity(certificate, p),
    ]


def guess_standard(certificate: x509.Certificate) -> Standard:
    """ISO-20 for P-521 and Ed448 keys, ISO-2 otherwise."""
    key = key_algorithm(certificate)
    return Standard.ISO20 if key in STANDARDS[Standard.ISO20].key_algorithms else Standard.ISO2


_LEAF_BY_DC = {"CPO": Role.SECC, "MO": Role.CONTRACT, "CPS": Role.CPS}


def guess_role(certificate: x509.Certificate, standard: Standard) -> Role:
    """The most plausible role, from basicConstraints, the subject DC and extendedKeyUsage."""
    ext = _extension(certificate, ExtensionKind.BASIC_CONSTRAINTS)
    bc = ext.value if ext is not None else None
    if isinstance(bc, x509.BasicConstraints) and bc.ca:
        if certificate.issuer == certificate.subject:
            return Role.V2G_ROOT
        return Role.CPO_SUB_CA_1 if bc.path_length not in (None, 0) else Role.CPO_SUB_CA_2
    eku = _extension(certificate, ExtensionKind.EXTENDED_KEY_USAGE)
    if eku is not None and ExtendedKeyUsageOID.OCSP_SIGNING in eku.value:  # type: ignore[operator]
        return Role.OCSP_SIGNER
    dcs = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)]
    dc = dcs[0] if dcs else None
    if dc == "OEM":
        return Role.VEHICLE if standard is Standard.ISO20 else Role.OEM_PROVISIONING
    if isinstance(dc, str) and dc in _LEAF_BY_DC:
        return _LEAF_BY_DC[dc]
    return Role.CONTRACT


def is_valid_at(certificate: x509.Certificate, at: datetime) -> bool:
    return certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc
