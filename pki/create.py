"""Test-PKI generation from the profile table.

Building blocks, usable one by one (tests build bad certificates with them):

- `generate_key(algorithm)` makes a private key;
- `template_for(standard, role, ...)` turns the role's `Profile` into a `Template`, a frozen
  description of one certificate (every field can be changed with `dataclasses.replace`);
- `issue(template, subject_key, issuer)` signs it, with the hash the standard prescribes for
  the issuer's key.

`create_pki(standard, at=...)` issues every role of `pki.profiles.PROFILES` for the standard,
optionally with an OCSP URL (authorityInfoAccess) and a CRL distribution point
(cRLDistributionPoints) in every non-root certificate or per role;
`write_pki(pki, directory, password=...)` stores it with a README.txt. Time is passed in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

from pki.emaid import check_digit
from pki.profiles import (
    PROFILES,
    STANDARDS,
    KeyAlgorithm,
    KeyUsageBit,
    Profile,
    Role,
    Standard,
)

__all__ = [
    "CURVES",
    "IssuedCertificate",
    "PrivateKey",
    "Template",
    "TestPki",
    "create_pki",
    "generate_key",
    "issue",
    "template_for",
    "write_pki",
]

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
SigningHash: TypeAlias = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

CURVES: dict[KeyAlgorithm, type[ec.EllipticCurve]] = {
    KeyAlgorithm.SECP256R1: ec.SECP256R1,
    KeyAlgorithm.SECP384R1: ec.SECP384R1,
    KeyAlgorithm.SECP521R1: ec.SECP521R1,
}
_CONTRACT_EMAID = "DEXYZC12345678"  # the test contract's eMAID, before its check digit
_HASHES: dict[Standard, type[SigningHash]] = {
    Standard.ISO2: hashes.SHA256,
    Standard.ISO20: hashes.SHA512,
}


def generate_key(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm is KeyAlgorithm.ED448:
        return ed448.Ed448PrivateKey.generate()
    return ec.generate_private_key(CURVES[algorithm]())


@dataclass(frozen=True, slots=True)
class Template:
    """Everything that goes into one certificate. Defaults come from a `Profile`."""

    common_name: str
    domain_component: str | None
    organization: str
    not_before: datetime
    not_after: datetime
    serial: int
    is_ca: bool
    path_len: int | None
    key_usage: frozenset[KeyUsageBit]
    extended_key_usage: tuple[str, ...] = ()
    basic_constraints: bool = True  # include the extension at all
    key_usage_extension: bool = True
    subject_key_identifier: bool = True
    authority_key_identifier: bool = True
    critical: bool = True  # basicConstraints and keyUsage critical
    ocsp_url: str | None = None
    crl_url: str | None = None  # a cRLDistributionPoints extension with this one URI
    hash_algorithm: SigningHash | None = None  # None: the standard's hash
    padding: int = 0  # bytes of a non-critical private extension (oversized certificates)


def template_for(
    standard: Standard,
    role: Role,
    *,
    at: datetime,
    serial: int,
    common_name: str | None = None,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
) -> Template:
    """A certificate of `role` as its profile describes it, valid from `at` - 1 day."""
    p: Profile = PROFILES[standard][role]
    start = at - timedelta(days=1)
    return Template(
        common_name=common_name or _default_cn(role),
        domain_component=p.domain_component,
        organization="iso15118-stack test PKI",
        not_before=start,
        not_after=start + p.default_validity,
        serial=serial,
        is_ca=p.is_ca,
        path_len=p.path_len,
        key_usage=p.key_usage_required | (p.key_usage_allowed & {KeyUsageBit.KEY_AGREEMENT}),
        extended_key_usage=p.extended_key_usage,
        ocsp_url=ocsp_url,
        crl_url=crl_url,
    )


def _default_cn(role: Role) -> str:
    if role is Role.CONTRACT:
        return _CONTRACT_EMAID + check_digit(_CONTRACT_EMAID)
    return str(role.value).upper().replace("-", " ") + " test"


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    certificate: x509.Certificate
    key: PrivateKey


def _key_usage(bits: frozenset[KeyUsageBit]) -> x509.KeyUsage:
    flags = {bit.value: bit in bits for bit in KeyUsageBit}
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


def _name(t: Template) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, t.common_name)]
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, t.organization))
    if t.domain_component is not None:
        attributes.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, t.domain_component))
    return x509.Name(attributes)


def _signing_hash(key: PrivateKey, t: Template, standard: Standard) -> SigningHash | None:
    if isinstance(key, ed448.Ed448PrivateKey):
        return None
    return t.hash_algorithm or _HASHES[standard]()


def issue(
    template: Template,
    subject_key: PrivateKey,
    issuer: IssuedCertificate | None,
    *,
    standard: Standard,
) -> x509.Certificate:
    """Sign `template` for `subject_key`; `issuer` None means self-signed."""
    t = template
    subject = _name(t)
    signer_key = issuer.key if issuer else subject_key
    issuer_name = issuer.certificate.subject if issuer else subject
    public = subject_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(t.serial)
        .not_valid_before(t.not_before)
        .not_valid_after(t.not_after)
    )
    if t.basic_constraints:
        constraints = x509.BasicConstraints(ca=t.is_ca, path_length=t.path_len)
        builder = builder.add_extension(constraints, critical=t.critical)
    if t.key_usage_extension:
        builder = builder.add_extension(_key_usage(t.key_usage), critical=t.critical)
    if t.extended_key_usage:
        usages = [x509.ObjectIdentifier(oid) for oid in t.extended_key_usage]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if t.subject_key_identifier:
        ski = x509.SubjectKeyIdentifier.from_public_key(public)
        builder = builder.add_extension(ski, critical=False)
    if t.authority_key_identifier and issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.certificate.public_key()  # type: ignore[arg-type]
        )
        builder = builder.add_extension(aki, critical=False)
    if t.ocsp_url:
        access = x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(t.ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), False)
    if t.crl_url:
        point = x509.DistributionPoint(
            [x509.UniformResourceIdentifier(t.crl_url)], None, None, None
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if t.padding:
        pad = x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\0" * t.padding
        )
        builder = builder.add_extension(pad, critical=False)
    return builder.sign(signer_key, _signing_hash(signer_key, t, standard))


@dataclass(frozen=True, slots=True)
class TestPki:
    """Every role of one standard, issued."""

    __test__ = False  # not a pytest class

    standard: Standard
    certificates: dict[Role, IssuedCertificate] = field(default_factory=dict)

    def __getitem__(self, role: Role) -> IssuedCertificate:
        return self.certificates[role]

    def chain(self, leaf: Role) -> list[x509.Certificate]:
        """The leaf and its sub-CAs, leaf first, as a peer sends them (no root)."""
        out: list[x509.Certificate] = []
        role: Role | None = leaf
        while role is not None and not PROFILES[self.standard][role].is_root:
            out.append(self.certificates[role].certificate)
            role = PROFILES[self.standard][role].issuer
        return out

    def roots(self) -> list[x509.Certificate]:
        return [
            c.certificate
            for r, c in self.certificates.items()
            if PROFILES[self.standard][r].is_root
        ]


def _issue_order(standard: Standard) -> list[Role]:
    """Roles sorted so that every issuer comes before what it issues."""
    table = PROFILES[standard]
    order: list[Role] = []
    while len(order) < len(table):
        for role, p in table.items():
            if role not in order and (p.issuer is None or p.issuer in order):
                order.append(role)
    return order


RoleUrls: TypeAlias = str | Mapping[Role, str] | None


def _url_for(urls: RoleUrls, role: Role, is_root: bool) -> str | None:
    if urls is None or isinstance(urls, str):
        return None if is_root else urls
    return urls.get(role)


def create_pki(
    standard: Standard,
    *,
    at: datetime,
    key_algorithm: KeyAlgorithm | None = None,
    ocsp_url: RoleUrls = None,
    crl_url: RoleUrls = None,
) -> TestPki:
    """Issue every role of `standard`, valid at `at` (from one day before).

    `ocsp_url` / `crl_url`: one URL for every certificate below a root, or a URL per role
    (e.g. each certificate pointing at its issuer's CRL).
    """
    algorithm = key_algorithm or STANDARDS[standard].default_key
    if algorithm not in STANDARDS[standard].key_algorithms:
        raise ValueError(f"{standard.value} does not use {algorithm.value} keys")
    pki = TestPki(standard)
    for serial, role in enumerate(_issue_order(standard), start=1):
        p = PROFILES[standard][role]
        t = template_for(
            standard,
            role,
            at=at,
            serial=serial,
            ocsp_url=_url_for(ocsp_url, role, p.is_root),
            crl_url=_url_for(crl_url, role, p.is_root),
        )
        key = generate_key(algorithm)
        issuer = pki.certificates[p.issuer] if p.issuer else None
        pki.certificates[role] = IssuedCertificate(issue(t, key, issuer, standard=standard), key)
    return pki


def _pem_key(key: PrivateKey, password: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def write_pki(pki: TestPki, directory: Path, *, password: bytes | None = None) -> list[Path]:
    """Write certs/ROLE.pem, keys/ROLE.key.pem, chains/PURPOSE.pem, trust/ and README.txt."""
    from pki.profiles import PURPOSE_LEAF

    written: list[Path] = []

    def put(relative: str, data: bytes) -> None:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)

    pem = serialization.Encoding.PEM
    for role, issued in pki.certificates.items():
        put(f"certs/{role.value}.pem", issued.certificate.public_bytes(pem))
        put(f"keys/{role.value}.key.pem", _pem_key(issued.key, password))
        if PROFILES[pki.standard][role].is_root:
            put(f"trust/{role.value}.pem", issued.certificate.public_bytes(pem))
    for purpose, leaf in PURPOSE_LEAF[pki.standard].items():
        put(f"chains/{purpose.value}.pem", b"".join(c.public_bytes(pem) for c in pki.chain(leaf)))
    put("README.txt", _readme(pki, password is not None).encode())
    return written


def _readme(pki: TestPki, encrypted: bool) -> str:
    lines = [
        f"Test PKI for ISO 15118 ({pki.standard.value}), made by `iso15118 pki create`.",
        "NOT FOR PRODUCTION: the keys are test keys.",
        "",
        "certs/ROLE.pem       one certificate per role (PEM)",
        "keys/ROLE.key.pem    its private key (PKCS#8 PEM, "
        + ("encrypted with the given password)" if encrypted else "unencrypted)"),
        "trust/               the root certificates: a trust store (`--trust DIR`)",
        "chains/PURPOSE.pem   leaf first, then its sub-CAs (`--chain FILE`)",
        "",
        "role                 issuer               subject",
    ]
    for role, issued in pki.certificates.items():
        issuer = PROFILES[pki.standard][role].issuer
        name = issued.certificate.subject.rfc4514_string()
        lines.append(f"{role.value:<20} {(issuer.value if issuer else '(self)'):<20} {name}")
    return "\n".join(lines) + "\n"


def replace(template: Template, **changes: object) -> Template:
    """`dataclasses.replace` for templates (keeps mypy quiet about the keyword types)."""
    return dataclasses.replace(template, **changes)  # type: ignore[arg-type]
