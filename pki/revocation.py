"""One revocation check for `pki.chain.verify_chain(..., revocation=...)`: OCSP or CRL.

Per certificate: OCSP when it names a responder (authorityInfoAccess) and an OCSP checker is
configured, else its CRL when it names a distribution point and a CRL checker is configured, else
the `NoAnswerPolicy` for "no revocation information" (real contract certificates exist without an
OCSP URL). Fetching stays injected: `CombinedChecker.create(policy, ocsp_fetch=..., crl_fetch=...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from pki import errors
from pki.crl import CrlChecker, CrlFetch, crl_urls
from pki.ocsp import Fetch, NoAnswerPolicy, RevocationChecker, RevocationResult, ocsp_url

__all__ = ["CombinedChecker"]


@dataclass(frozen=True, slots=True)
class CombinedChecker:
    """OCSP where the certificate names a responder, else its CRL, else the policy."""

    policy: NoAnswerPolicy
    ocsp: RevocationChecker | None = None
    crl: CrlChecker | None = None

    @classmethod
    def create(
        cls,
        policy: NoAnswerPolicy,
        *,
        ocsp_fetch: Fetch | None = None,
        crl_fetch: CrlFetch | None = None,
        nonce: Callable[[], bytes] | None = None,
    ) -> CombinedChecker:
        """One policy for all three cases; a method without a fetcher is not used."""
        ocsp = RevocationChecker(ocsp_fetch, policy, nonce=nonce) if ocsp_fetch else None
        crl = CrlChecker(crl_fetch, policy) if crl_fetch else None
        return cls(policy, ocsp, crl)

    def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, at: datetime
    ) -> RevocationResult:
        """GOOD, or the policy's answer; raises CertificateRevokedError or a RevocationError."""
        if self.ocsp is not None and ocsp_url(cert) is not None:
            return self.ocsp.check(cert, issuer, at=at)
        if self.crl is not None and crl_urls(cert):
            return self.crl.check(cert, issuer, at=at)
        offered = [("OCSP responder", self.ocsp), ("CRL distribution point", self.crl)]
        names = " nor ".join(name for name, checker in offered if checker is not None)
        reason = f"no revocation information: the certificate names no {names}"
        if not names:
            reason = "no revocation information: neither OCSP nor CRLs are configured"
        return self.policy.no_answer(cert, reason, error=errors.RevocationUnavailableError)
