"""OCSP (RFC 6960) for ISO 15118 certificates, sans-IO: fetching is an injected callable.

- `build_request(cert, issuer, nonce=...)`: the DER request for a responder.
- `verify_response(der, cert, issuer, at=..., nonce=...)`: checks that the answer is about this
  certificate, is signed by the issuer or by a delegated signer the issuer certified with the
  OCSPSigning extended key usage, is fresh at `at` (thisUpdate <= at <= nextUpdate, or within
  `max_age` when nextUpdate is absent) and echoes the nonce; returns an `OcspAnswer`.
- `RevocationChecker`: URL from the certificate's authorityInfoAccess, an `OcspCache` with
  expiry at nextUpdate, and a `NoAnswerPolicy` for certificates without an OCSP URL or a
  responder that cannot be reached (real contract certificates exist without one); the same
  policy serves `pki.crl.CrlChecker` and `pki.revocation.CombinedChecker`.
- `make_response(...)`: the responder side, for tests and the EV simulator's test backend.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from pki import errors
from pki.create import IssuedCertificate

__all__ = [
    "CertStatus",
    "NoAnswerPolicy",
    "OcspAnswer",
    "OcspCache",
    "RevocationChecker",
    "RevocationResult",
    "build_request",
    "make_response",
    "ocsp_url",
    "verify_response",
]

log = logging.getLogger(__name__)

Fetch = Callable[[str, bytes], bytes]  # (responder URL, DER request) -> DER response


class CertStatus(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class NoAnswerPolicy(enum.Enum):
    """What to do when no revocation answer can be had (OCSP here, CRLs in `pki.crl`)."""

    REJECT = "reject"  # raise OcspUnavailableError (or the `error` given to `no_answer`)
    ACCEPT_WITH_WARNING = "accept-with-warning"  # accept, log, and say so in the result

    def no_answer(
        self,
        cert: x509.Certificate,
        reason: str,
        *,
        error: type[errors.RevocationUnavailableError] = errors.OcspUnavailableError,
    ) -> RevocationResult:
        """Apply the policy: raise `error`, or accept with `reason` as the warning."""
        subject = cert.subject.rfc4514_string()
        if self is NoAnswerPolicy.REJECT:
            raise error(reason, subject=subject)
        log.warning("accepting %s without revocation check: %s", subject, reason)
        return RevocationResult(None, warning=reason)


_STATUS = {
    ocsp.OCSPCertStatus.GOOD: CertStatus.GOOD,
    ocsp.OCSPCertStatus.REVOKED: CertStatus.REVOKED,
    ocsp.OCSPCertStatus.UNKNOWN: CertStatus.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    status: CertStatus
    this_update: datetime
    valid_until: datetime  # nextUpdate, or thisUpdate + max_age
    revocation_time: datetime | None = None


def ocsp_url(certificate: x509.Certificate) -> str | None:
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return None
    for access in aia.value:
        if access.access_method == AuthorityInformationAccessOID.OCSP:
            location = access.access_location
            if isinstance(location, x509.UniformResourceIdentifier):
                return location.value
    return None


def build_request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None = None,
    algorithm: hashes.SHA1 | hashes.SHA256 = hashes.SHA1(),  # noqa: B008 - immutable
) -> bytes:
    """DER OCSPRequest for `cert` (CertID hashed with SHA-1 by default, as RFC 5019 says)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    from cryptography.hazmat.primitives.serialization import Encoding

    return builder.build().public_bytes(Encoding.DER)


def _same_cert_id(
    single: ocsp.OCSPSingleResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> bool:
    algorithm = single.hash_algorithm
    if not isinstance(algorithm, hashes.SHA1 | hashes.SHA256):
        return False
    wanted = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    return (
        single.serial_number == wanted.serial_number
        and single.issuer_key_hash == wanted.issuer_key_hash
        and single.issuer_name_hash == wanted.issuer_name_hash
    )


def _is_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_key_hash is not None:
        ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
        return response.responder_key_hash == ski.digest
    return response.responder_name == cert.subject


def _responder(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate:
    """The issuer itself, or a delegated signer it issued with id-kp-OCSPSigning."""
    if _is_responder(response, issuer):
        return issuer
    for cert in response.certificates:
        if not _is_responder(response, cert):
            continue
        try:
            cert.verify_directly_issued_by(issuer)
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            break
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            return cert
        break
    raise errors.OcspUnauthorisedResponderError(
        "the answer is signed by neither the issuer nor an OCSP signer it delegated"
    )


def _check_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    key = signer.public_key()
    try:
        if isinstance(key, ed448.Ed448PublicKey):
            key.verify(response.signature, response.tbs_response_bytes)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algorithm = response.signature_hash_algorithm
            assert algorithm is not None
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            raise errors.OcspSignatureError(f"unsupported responder key {type(key).__name__}")
    except InvalidSignature:
        raise errors.OcspSignatureError("the answer's signature does not verify") from None


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes | None, required: bool) -> None:
    if nonce is None:
        return
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        if required:
            raise errors.OcspNonceError("the answer carries no nonce") from None
        return
    if echoed != nonce:
        raise errors.OcspNonceError("the answer's nonce differs from the request's")


def verify_response(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    at: datetime,
    nonce: bytes | None = None,
    require_nonce: bool = False,
    max_age: timedelta = timedelta(days=7),
    clock_skew: timedelta = timedelta(minutes=5),
) -> OcspAnswer:
    """Verify an OCSP answer about `cert` at `at`; raises an `OcspError` subclass."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise errors.OcspUnavailableError(f"not an OCSP response: {exc}") from exc
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise errors.OcspUnavailableError(f"responder says {response.response_status.name}")
    single = next((s for s in response.responses if _same_cert_id(s, cert, issuer)), None)
    if single is None:
        raise errors.OcspUnavailableError("the answer is not about this certificate")
    _check_signature(response, _responder(response, issuer))
    _check_nonce(response, nonce, require_nonce)
    this_update = single.this_update_utc
    valid_until = single.next_update_utc or this_update + max_age
    if this_update > at + clock_skew:
        raise errors.OcspStaleError(f"thisUpdate {this_update.isoformat()} is in the future")
    if at > valid_until:
        raise errors.OcspStaleError(f"answer valid until {valid_until.isoformat()}")
    revoked = single.revocation_time_utc
    return OcspAnswer(_STATUS[single.certificate_status], this_update, valid_until, revoked)


@dataclass(slots=True)
class OcspCache:
    """Answers by (issuer key hash, serial), dropped once past their validity."""

    _answers: dict[tuple[bytes, int], OcspAnswer] = field(default_factory=dict)

    @staticmethod
    def key(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, int]:
        ski = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key())
        return ski.digest, cert.serial_number

    def get(
        self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime
    ) -> OcspAnswer | None:
        key = self.key(cert, issuer)
        answer = self._answers.get(key)
        if answer is not None and at > answer.valid_until:
            del self._answers[key]
            return None
        return answer

    def put(self, cert: x509.Certificate, issuer: x509.Certificate, answer: OcspAnswer) -> None:
        self._answers[self.key(cert, issuer)] = answer

    def __len__(self) -> int:
        return len(self._answers)


@dataclass(frozen=True, slots=True)
class RevocationResult:
    status: CertStatus | None  # None: no answer, accepted by the policy
    warning: str | None = None
    from_cache: bool = False


@dataclass(slots=True)
class RevocationChecker:
    """Checks one certificate against its issuer's OCSP responder, with cache and policy."""

    fetch: Fetch
    policy: NoAnswerPolicy
    cache: OcspCache = field(default_factory=OcspCache)
    nonce: Callable[[], bytes] | None = None  # e.g. lambda: os.urandom(16); None: no nonce

    def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, at: datetime
    ) -> RevocationResult:
        """GOOD, or the policy's answer when none can be had; raises CertificateRevokedError."""
        cached = self.cache.get(cert, issuer, at)
        if cached is not None:
            return self._judge(cert, cached, from_cache=True)
        url = ocsp_url(cert)
        if url is None:
            return self.policy.no_answer(cert, "the certificate names no OCSP responder")
        nonce = self.nonce() if self.nonce else None
        try:
            der = self.fetch(url, build_request(cert, issuer, nonce=nonce))
        except (OSError, errors.OcspUnavailableError) as exc:
            return self.policy.no_answer(cert, f"OCSP responder {url} unreachable: {exc}")
        answer = verify_response(der, cert, issuer, at=at, nonce=nonce)
        self.cache.put(cert, issuer, answer)
        return self._judge(cert, answer, from_cache=False)

    def _judge(
        self, cert: x509.Certificate, answer: OcspAnswer, *, from_cache: bool
    ) -> RevocationResult:
        subject = cert.subject.rfc4514_string()
        if answer.status is CertStatus.REVOKED:
            when = answer.revocation_time.isoformat() if answer.revocation_time else "?"
            raise errors.CertificateRevokedError(f"revoked at {when}", subject=subject)
        if answer.status is CertStatus.UNKNOWN:
            return self.policy.no_answer(cert, "the responder does not know the certificate")
        return RevocationResult(CertStatus.GOOD, from_cache=from_cache)


def make_response(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    responder: IssuedCertificate,
    *,
    status: CertStatus,
    this_update: datetime,
    next_update: datetime | None,
    revocation_time: datetime | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """A signed DER OCSP answer (responder side: test backends and the EV simulator)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    cert_status = {v: k for k, v in _STATUS.items()}[status]
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer,
        algorithm=hashes.SHA1(),
        cert_status=cert_status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revocation_time if status is CertStatus.REVOKED else None,
        revocation_reason=None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate)
    if responder.certificate != issuer:
        builder = builder.certificates([responder.certificate])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    algorithm = None if isinstance(responder.key, ed448.Ed448PrivateKey) else hashes.SHA256()
    return builder.sign(responder.key, algorithm).public_bytes(Encoding.DER)
