"""The ISO 15118 certificate profiles, as one table.

Every fact about what a certificate of a given role looks like lives in `PROFILES` (per role)
and `STANDARDS` (per standard); the generator (`pki.create`), the chain validation
(`pki.chain`) and the lint (`pki.lint`) all read them, none keeps a second copy.

Sources, as public code cites them (the standards themselves are not public):

- [V2G2-006] ecdsa-with-SHA256 and [V2G2-007] secp256r1 for ISO 15118-2; [V2G2-009] at most 3
  certificates below the root (two Sub-CAs and a leaf); [V2G2-010] at most 800 bytes DER
  (docs.rs crate ``iso15118``, ``src/pnc/pki/chain.rs`` and ``mod.rs``). The 800 bytes are also
  ``certificateType`` maxLength in the ISO-2 schema (``exi_schemas/iso2.py``: Certificate
  ``length 0..800``, SubCertificates ``1..4 entries``).
- ISO 15118-20: secp521r1 with ECDSA-SHA512, or Ed448 (issue 4); Certificate ``length 0..1600``
  and SubCertificates ``1..3 entries`` (``exi_schemas/iso20_common_messages.py``).
- basicConstraints, keyUsage and domainComponent per role: ISO 15118-2 Annex F as the Josev
  (EcoG-io/iso15118) PKI scripts implement it (``iso15118/shared/pki/configs/*.cnf``): roots
  CA:true, Sub-CA 1 pathlen 1, Sub-CA 2 pathlen 0, all critical; CAs keyCertSign+cRLSign; leaves
  CA:false with digitalSignature (+ keyAgreement for SECC and OEM provisioning, + nonRepudiation,
  keyEncipherment, keyAgreement allowed for contract); DC=CPO (SECC), MO (contract), OEM (OEM
  provisioning), CPS (CPS leaf); subjectKeyIdentifier on every certificate.
- [V2G2-925]: a leaf is invalid if the trust anchor is not the root required for its use, or if
  the required domainComponent is missing; Annex F fixes DC=CPO for the SECC certificate
  (quoted in EVerest/EVerest issue #2119). [V2G2-875]: the EVCC verifies the SECC chain and the
  OCSP responses, responder included. [V2G2-885]: validation as RFC 5280 says (docs.rs
  ``iso15118`` chain.rs). The trust store given to `pki.chain.verify_chain` is therefore the
  one for the use (V2G roots for SECC, MO and V2G roots for contracts, OEM roots for the
  vehicle).
- ISO 15118-20 Annex B profile; [V2G20-2218] flags a contract certificate expiring within 14
  days (``OK_CertificateExpiresSoon``) (EVerest/EVerest pull request #2849).
- The default lifetimes the generator uses are the Josev script's test values
  (``create_certs.sh``: SECC 60 d, contract 730 d, CPS leaf 90 d, sub-CAs 365..1460 d, roots
  3650 d); they are not normative maxima, so `Profile.max_validity` stays None where no
  public source gives one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

__all__ = [
    "PROFILES",
    "PURPOSE_LEAF",
    "STANDARDS",
    "ExtensionKind",
    "KeyAlgorithm",
    "KeyUsageBit",
    "Profile",
    "Purpose",
    "Role",
    "SignatureAlgorithm",
    "Standard",
    "StandardProfile",
    "chain_roles",
    "profile",
]


class Standard(enum.Enum):
    ISO2 = "iso2"
    ISO20 = "iso20"


class Role(enum.Enum):
    """A place in the Plug & Charge PKI. Which roles a standard has is in `PROFILES`."""

    V2G_ROOT = "v2g-root"
    CPO_SUB_CA_1 = "cpo-sub-ca-1"
    CPO_SUB_CA_2 = "cpo-sub-ca-2"
    SECC = "secc"
    MO_ROOT = "mo-root"
    MO_SUB_CA_1 = "mo-sub-ca-1"
    MO_SUB_CA_2 = "mo-sub-ca-2"
    CONTRACT = "contract"
    OEM_ROOT = "oem-root"
    OEM_SUB_CA_1 = "oem-sub-ca-1"
    OEM_SUB_CA_2 = "oem-sub-ca-2"
    OEM_PROVISIONING = "oem-provisioning"  # ISO 15118-2
    VEHICLE = "vehicle"  # ISO 15118-20: the vehicle certificate (TLS client and provisioning)
    CPS_SUB_CA_1 = "cps-sub-ca-1"
    CPS_SUB_CA_2 = "cps-sub-ca-2"
    CPS = "cps"
    OCSP_SIGNER = "ocsp-signer"


class Purpose(enum.Enum):
    """What a chain is validated for; names the leaf role."""

    CONTRACT = "contract"
    SECC = "secc"
    VEHICLE = "vehicle"
    PROVISIONING = "provisioning"  # the OEM provisioning certificate (ISO-2)
    CPS = "cps"  # the certificate provisioning service's signing certificate


class KeyAlgorithm(enum.Enum):
    SECP256R1 = "secp256r1"
    SECP384R1 = "secp384r1"  # in no profile; named so that the lint can report it
    SECP521R1 = "secp521r1"
    ED448 = "ed448"


class SignatureAlgorithm(enum.Enum):
    ECDSA_SHA256 = "ecdsa-with-SHA256"
    ECDSA_SHA384 = "ecdsa-with-SHA384"  # in no profile
    ECDSA_SHA512 = "ecdsa-with-SHA512"
    ED448 = "Ed448"


class KeyUsageBit(enum.Enum):
    DIGITAL_SIGNATURE = "digital_signature"
    NON_REPUDIATION = "content_commitment"
    KEY_ENCIPHERMENT = "key_encipherment"
    DATA_ENCIPHERMENT = "data_encipherment"
    KEY_AGREEMENT = "key_agreement"
    KEY_CERT_SIGN = "key_cert_sign"
    CRL_SIGN = "crl_sign"


class ExtensionKind(enum.Enum):
    BASIC_CONSTRAINTS = "basicConstraints"
    KEY_USAGE = "keyUsage"
    SUBJECT_KEY_IDENTIFIER = "subjectKeyIdentifier"
    EXTENDED_KEY_USAGE = "extendedKeyUsage"


@dataclass(frozen=True, slots=True)
class StandardProfile:
    """What holds for every certificate of one standard."""

    standard: Standard
    key_algorithms: frozenset[KeyAlgorithm]
    signature_algorithms: frozenset[SignatureAlgorithm]
    max_der_size: int  # bytes, the schema's Certificate maxLength
    max_below_root: int  # certificates in a path below the trust anchor, leaf included
    default_key: KeyAlgorithm
    source: str
    expires_soon: timedelta | None = None  # OK_CertificateExpiresSoon window, where given


STANDARDS: dict[Standard, StandardProfile] = {
    Standard.ISO2: StandardProfile(
        standard=Standard.ISO2,
        key_algorithms=frozenset({KeyAlgorithm.SECP256R1}),
        signature_algorithms=frozenset({SignatureAlgorithm.ECDSA_SHA256}),
        max_der_size=800,
        max_below_root=3,
        default_key=KeyAlgorithm.SECP256R1,
        source="[V2G2-006] [V2G2-007] [V2G2-009] [V2G2-010]; iso2 certificateType maxLength 800",
    ),
    Standard.ISO20: StandardProfile(
        standard=Standard.ISO20,
        key_algorithms=frozenset({KeyAlgorithm.SECP521R1, KeyAlgorithm.ED448}),
        signature_algorithms=frozenset({SignatureAlgorithm.ECDSA_SHA512, SignatureAlgorithm.ED448}),
        max_der_size=1600,
        max_below_root=3,
        default_key=KeyAlgorithm.SECP521R1,
        source="ISO 15118-20 Annex B (P-521/SHA-512 or Ed448); iso20 Certificate maxLength 1600",
        expires_soon=timedelta(days=14),  # [V2G20-2218]
    ),
}


@dataclass(frozen=True, slots=True)
class Profile:
    """One role's certificate profile."""

    role: Role
    issuer: Role | None  # None: a self-signed trust anchor
    is_ca: bool
    path_len: int | None  # basicConstraints pathLenConstraint of a CA; None: absent
    key_usage_required: frozenset[KeyUsageBit]
    key_usage_allowed: frozenset[KeyUsageBit]
    extended_key_usage: tuple[str, ...]  # dotted OIDs the certificate must list
    domain_component: str | None  # the subject DC the profile fixes; None: not fixed
    default_validity: timedelta  # what the generator issues (non-normative, see module doc)
    max_validity: timedelta | None = None
    required_extensions: frozenset[ExtensionKind] = frozenset(
        {
            ExtensionKind.BASIC_CONSTRAINTS,
            ExtensionKind.KEY_USAGE,
            ExtensionKind.SUBJECT_KEY_IDENTIFIER,
        }
    )
    critical_extensions: frozenset[ExtensionKind] = frozenset(
        {ExtensionKind.BASIC_CONSTRAINTS, ExtensionKind.KEY_USAGE}
    )

    @property
    def is_root(self) -> bool:
        return self.issuer is None


_CA_BITS = frozenset({KeyUsageBit.KEY_CERT_SIGN, KeyUsageBit.CRL_SIGN})
_SIGN = frozenset({KeyUsageBit.DIGITAL_SIGNATURE})
_SIGN_AGREE = frozenset({KeyUsageBit.DIGITAL_SIGNATURE, KeyUsageBit.KEY_AGREEMENT})
_CONTRACT_ALLOWED = frozenset(
    {
        KeyUsageBit.DIGITAL_SIGNATURE,
        KeyUsageBit.NON_REPUDIATION,
        KeyUsageBit.KEY_ENCIPHERMENT,
        KeyUsageBit.KEY_AGREEMENT,
    }
)
OCSP_SIGNING = "1.3.6.1.5.5.7.3.9"  # id-kp-OCSPSigning (RFC 6960 4.2.2.2)
_DAY = timedelta(days=1)


def _root(role: Role) -> Profile:
    return Profile(role, None, True, None, _CA_BITS, _CA_BITS, (), None, 3650 * _DAY)


def _sub_ca(role: Role, issuer: Role, level: int) -> Profile:
    days = 1460 if level == 1 else 365
    return Profile(role, issuer, True, 2 - level, _CA_BITS, _CA_BITS, (), None, days * _DAY)


def _leaf(
    role: Role, issuer: Role, dc: str | None, allowed: frozenset[KeyUsageBit], days: int
) -> Profile:
    return Profile(role, issuer, False, None, _SIGN, allowed, (), dc, days * _DAY)


_COMMON = (
    _root(Role.V2G_ROOT),
    _sub_ca(Role.CPO_SUB_CA_1, Role.V2G_ROOT, 1),
    _sub_ca(Role.CPO_SUB_CA_2, Role.CPO_SUB_CA_1, 2),
    _leaf(Role.SECC, Role.CPO_SUB_CA_2, "CPO", _SIGN_AGREE, 60),
    _root(Role.MO_ROOT),
    _sub_ca(Role.MO_SUB_CA_1, Role.MO_ROOT, 1),
    _sub_ca(Role.MO_SUB_CA_2, Role.MO_SUB_CA_1, 2),
    _leaf(Role.CONTRACT, Role.MO_SUB_CA_2, "MO", _CONTRACT_ALLOWED, 730),
    _root(Role.OEM_ROOT),
    _sub_ca(Role.OEM_SUB_CA_1, Role.OEM_ROOT, 1),
    _sub_ca(Role.OEM_SUB_CA_2, Role.OEM_SUB_CA_1, 2),
    _sub_ca(Role.CPS_SUB_CA_1, Role.V2G_ROOT, 1),
    _sub_ca(Role.CPS_SUB_CA_2, Role.CPS_SUB_CA_1, 2),
    _leaf(Role.CPS, Role.CPS_SUB_CA_2, "CPS", _SIGN, 90),
    Profile(
        Role.OCSP_SIGNER,
        Role.MO_SUB_CA_2,
        False,
        None,
        _SIGN,
        _SIGN,
        (OCSP_SIGNING,),
        None,
        90 * _DAY,
        required_extensions=frozenset(
            {
                ExtensionKind.BASIC_CONSTRAINTS,
                ExtensionKind.KEY_USAGE,
                ExtensionKind.SUBJECT_KEY_IDENTIFIER,
                ExtensionKind.EXTENDED_KEY_USAGE,
            }
        ),
    ),
)

PROFILES: dict[Standard, dict[Role, Profile]] = {
    Standard.ISO2: {
        **{p.role: p for p in _COMMON},
        Role.OEM_PROVISIONING: _leaf(
            Role.OEM_PROVISIONING, Role.OEM_SUB_CA_2, "OEM", _SIGN_AGREE, 1460
        ),
    },
    Standard.ISO20: {
        **{p.role: p for p in _COMMON},
        Role.VEHICLE: _leaf(Role.VEHICLE, Role.OEM_SUB_CA_2, "OEM", _SIGN_AGREE, 1460),
    },
}

PURPOSE_LEAF: dict[Standard, dict[Purpose, Role]] = {
    Standard.ISO2: {
        Purpose.CONTRACT: Role.CONTRACT,
        Purpose.SECC: Role.SECC,
        Purpose.PROVISIONING: Role.OEM_PROVISIONING,
        Purpose.CPS: Role.CPS,
    },
    Standard.ISO20: {
        Purpose.CONTRACT: Role.CONTRACT,
        Purpose.SECC: Role.SECC,
        Purpose.VEHICLE: Role.VEHICLE,
        Purpose.CPS: Role.CPS,
    },
}


def profile(standard: Standard, role: Role) -> Profile:
    """The profile of `role` in `standard`; ValueError for a role the standard lacks."""
    try:
        return PROFILES[standard][role]
    except KeyError:
        raise ValueError(f"{standard.value} has no {role.value} certificate") from None


def chain_roles(standard: Standard, purpose: Purpose) -> tuple[Role, ...]:
    """The roles from the leaf up to (excluding) the root, e.g. contract, MO Sub-CA 2, 1."""
    try:
        role: Role | None = PURPOSE_LEAF[standard][purpose]
    except KeyError:
        raise ValueError(f"{standard.value} has no {purpose.value} chains") from None
    roles: list[Role] = []
    while role is not None:
        p = profile(standard, role)
        if p.is_root:
            break
        roles.append(role)
        role = p.issuer
    return tuple(roles)
