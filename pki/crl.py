"""CRLs (RFC 5280) for ISO 15118 certificates that name a distribution point, sans-IO.

- `crl_urls(cert)`: the URIs of the certificate's cRLDistributionPoints (full names only; points
  restricted to some reasons or naming another CRL issuer (indirect CRLs) are not used).
- `verify_crl(der, issuer, at=...)`: checks that the CRL is issued by `issuer` (name, cRLSign key
  usage, signature with the issuer's key), is complete (no delta CRL) and fresh at `at`
  (thisUpdate <= at <= nextUpdate, or within `max_age` when nextUpdate is absent); returns a
  `CrlAnswer`, which says whether a serial number is listed.
- `CrlChecker`: fetches through an injected callable (``url -> DER``), keeps a `CrlCache` keyed
  by URL until nextUpdate, and applies the OCSP module's `NoAnswerPolicy` when no CRL can be had.
- `make_crl(...)`: the CA side, for tests and the EV simulator's test backend.

`pki.revocation.CombinedChecker` chooses between OCSP and CRL per certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.serialization import Encoding

from pki import errors
from pki.create import IssuedCertificate
from pki.ocsp import CertStatus, NoAnswerPolicy, RevocationResult

__all__ = [
    "CrlAnswer",
    "CrlCache",
    "CrlChecker",
    "CrlFetch",
    "crl_urls",
    "make_crl",
    "verify_crl",
]

CrlFetch = Callable[[str], bytes]  # CRL distribution point URL -> DER CRL; OSError: unreachable


def crl_urls(certificate: x509.Certificate) -> tuple[str, ...]:
    """The URIs of the certificate's usable distribution points, in the certificate's order."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return ()
    urls: list[str] = []
    for point in points.value:
        if point.full_name is None or point.reasons is not None or point.crl_issuer is not None:
            continue
        uris = (n for n in point.full_name if isinstance(n, x509.UniformResourceIdentifier))
        urls.extend(uri.value for uri in uris)
    return tuple(urls)


def _issuer_id(issuer: x509.Certificate) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest


@dataclass(frozen=True, slots=True)
class CrlAnswer:
    """A CRL verified against one issuer."""

    crl: x509.CertificateRevocationList
    issuer_id: bytes  # SubjectKeyIdentifier digest of the issuer key it was verified with
    this_update: datetime
    valid_until: datetime  # nextUpdate, or thisUpdate + max_age

    def revocation_time(self, serial_number: int) -> datetime | None:
        """When the certificate with this serial number was revoked; None: not listed."""
        entry = self.crl.get_revoked_certificate_by_serial_number(serial_number)
        return None if entry is None else entry.revocation_date_utc


def _check_issuer(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> None:
    if crl.issuer != issuer.subject:
        raise errors.CrlIssuerError(
            f"CRL issued by {crl.issuer.rfc4514_string()}, the certificate's issuer is "
            f"{issuer.subject.rfc4514_string()}"
        )
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.crl_sign:
        raise errors.CrlIssuerError("the issuer's keyUsage lacks cRLSign (RFC 5280 6.3.3 f)")
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | ed448.Ed448PublicKey):
        raise errors.CrlSignatureError(f"unsupported issuer key {type(key).__name__}")
    if not crl.is_signature_valid(key):
        raise errors.CrlSignatureError("the CRL's signature does not verify with the issuer's key")


def verify_crl(
    der: bytes,
    issuer: x509.Certificate,
    *,
    at: datetime,
    max_age: timedelta = timedelta(days=7),
    clock_skew: timedelta = timedelta(minutes=5),
) -> CrlAnswer:
    """Verify a DER CRL of `issuer` at `at`; raises a `CrlError` subclass."""
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise errors.CrlUnavailableError(f"not a DER CRL: {exc}") from exc
    _check_issuer(crl, issuer)
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    except x509.ExtensionNotFound:
        pass
    else:
        raise errors.CrlUnavailableError("a delta CRL, not a complete one")
    this_update = crl.last_update_utc
    valid_until = crl.next_update_utc or this_update + max_age
    if this_update > at + clock_skew:
        raise errors.CrlStaleError(f"thisUpdate {this_update.isoformat()} is in the future")
    if at > valid_until:
        raise errors.CrlStaleError(f"CRL valid until {valid_until.isoformat()}")
    return CrlAnswer(crl, _issuer_id(issuer), this_update, valid_until)


@dataclass(slots=True)
class CrlCache:
    """Verified CRLs by distribution point URL, dropped once past their nextUpdate."""

    _answers: dict[str, CrlAnswer] = field(default_factory=dict)

    def get(self, url: str, at: datetime) -> CrlAnswer | None:
        answer = self._answers.get(url)
        if answer is not None and at > answer.valid_until:
            del self._answers[url]
            return None
        return answer

    def put(self, url: str, answer: CrlAnswer) -> None:
        self._answers[url] = answer

    def __len__(self) -> int:
        return len(self._answers)


@dataclass(slots=True)
class CrlChecker:
    """Checks one certificate against the CRL its distribution point names, with cache and
    policy. A CRL that comes but is wrong (another issuer, stale, garbage) raises; only a
    certificate without a distribution point or servers that cannot be reached go to `policy`."""

    fetch: CrlFetch
    policy: NoAnswerPolicy
    cache: CrlCache = field(default_factory=CrlCache)

    def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, at: datetime
    ) -> RevocationResult:
        """GOOD, or the policy's answer when no CRL can be had; raises CertificateRevokedError."""
        urls = crl_urls(cert)
        if not urls:
            return self._no_answer(cert, "the certificate names no CRL distribution point")
        failures: list[str] = []
        for url in urls:
            cached = self.cache.get(url, at)
            if cached is not None and cached.issuer_id == _issuer_id(issuer):
                return self._judge(cert, cached, from_cache=True)
            try:
                der = self.fetch(url)
            except OSError as exc:
                failures.append(f"CRL {url} unreachable: {exc}")
                continue
            answer = verify_crl(der, issuer, at=at)
            self.cache.put(url, answer)
            return self._judge(cert, answer, from_cache=False)
        return self._no_answer(cert, "; ".join(failures))

    def _judge(
        self, cert: x509.Certificate, answer: CrlAnswer, *, from_cache: bool
    ) -> RevocationResult:
        revoked = answer.revocation_time(cert.serial_number)
        if revoked is not None:
            raise errors.CertificateRevokedError(
                f"listed in the CRL as revoked at {revoked.isoformat()}",
                subject=cert.subject.rfc4514_string(),
            )
        return RevocationResult(CertStatus.GOOD, from_cache=from_cache)

    def _no_answer(self, cert: x509.Certificate, reason: str) -> RevocationResult:
        return self.policy.no_answer(cert, reason, error=errors.CrlUnavailableError)


def _signing_hash(key: IssuedCertificate) -> hashes.SHA256 | hashes.SHA512 | None:
    if isinstance(key.key, ed448.Ed448PrivateKey):
        return None
    return hashes.SHA512() if key.key.curve.key_size > 384 else hashes.SHA256()


def make_crl(
    issuer: IssuedCertificate,
    *,
    revoked: Mapping[int, datetime],
    this_update: datetime,
    next_update: datetime,
    number: int = 1,
) -> bytes:
    """A signed DER CRL of `issuer` listing `revoked` (serial number -> revocation time)."""
    public = issuer.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey | ed448.Ed448PublicKey)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
    )
    for serial, when in revoked.items():
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer.key, _signing_hash(issuer)).public_bytes(Encoding.DER)
