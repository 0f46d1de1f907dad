"""Chain validation under the ISO 15118 profiles (sans-IO: time and trust store passed in).

`verify_chain(leaf, sub_cas, trust_store, at=..., standard=..., purpose=...)` walks from the leaf
through the sub-CAs the peer sent (completed from the store's intermediates where the peer left
some out) to a root of the store, and raises one `pki.errors.PkiError` subclass for the first
problem found, in this order: size and depth, issuer names, missing sub-CA, trust anchor,
signatures, validity at `at`, basicConstraints/pathLen along the path, each certificate's
profile (`pki.lint.check_profile`: curve, signature algorithm, extensions, keyUsage, DC, ...),
and last, when a `revocation` check is given (`pki.revocation.CombinedChecker`: OCSP, else CRL,
else its policy; or `pki.ocsp.RevocationChecker` / `pki.crl.CrlChecker` alone), revocation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from pki import errors
from pki.lint import check_profile, der_size
from pki.profiles import PROFILES, STANDARDS, Purpose, Role, Standard, chain_roles

__all__ = ["RevocationCheck", "TrustAnchors", "VerifiedChain", "verify_chain"]


class TrustAnchors(Protocol):
    """What validation needs from a trust store (`pki.store.TrustStore` has it)."""

    @property
    def roots(self) -> Sequence[x509.Certificate]: ...

    @property
    def intermediates(self) -> Sequence[x509.Certificate]: ...


class RevocationCheck(Protocol):
    """Revocation of one certificate (`pki.revocation.CombinedChecker` has it); raises when
    revoked (`CertificateRevokedError`) or when its policy rejects a missing answer."""

    def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, at: datetime
    ) -> object: ...


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    standard: Standard
    purpose: Purpose
    path: tuple[x509.Certificate, ...]  # leaf first, sub-CAs, root last
    roles: tuple[Role, ...]  # the role of each certificate of `path`

    @property
    def leaf(self) -> x509.Certificate:
        return self.path[0]

    @property
    def root(self) -> x509.Certificate:
        return self.path[-1]

    @property
    def not_after(self) -> datetime:
        """When the first certificate of the path expires."""
        return min(cert.not_valid_after_utc for cert in self.path)

    def expires_soon(self, at: datetime, within: timedelta | None = None) -> bool:
        """Whether the path expires within `within` (default: the standard's window, e.g.
        14 days for ISO-20 [V2G20-2218]); False when the standard gives no window."""
        window = within if within is not None else STANDARDS[self.standard].expires_soon
        return window is not None and self.not_after <= at + window


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _check_sizes(path: list[x509.Certificate], standard: Standard) -> None:
    rules = STANDARDS[standard]
    if len(path) > rules.max_below_root:
        raise errors.PathTooDeepError(
            f"{len(path)} certificates below the root, {standard.value} allows "
            f"{rules.max_below_root}"
        )
    for cert in path:
        if der_size(cert) > rules.max_der_size:
            raise errors.CertificateTooLargeError(
                f"{der_size(cert)} bytes DER, {standard.value} allows {rules.max_der_size}",
                subject=_subject(cert),
            )


def _check_names(path: list[x509.Certificate]) -> None:
    for child, parent in pairwise(path):
        if child.issuer != parent.subject:
            raise errors.WrongIssuerError(
                f"issued by {child.issuer.rfc4514_string()}, next in chain is {_subject(parent)}",
                subject=_subject(child),
            )


def _verifies(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _complete(path: list[x509.Certificate], want: int, store: TrustAnchors) -> None:
    """Append the store's intermediates until the path has `want` certificates."""
    while len(path) < want:
        top = path[-1]
        found = [c for c in store.intermediates if c.subject == top.issuer and _verifies(top, c)]
        if not found:
            raise errors.MissingSubCaError(
                f"chain ends below {top.issuer.rfc4514_string()}; {want - len(path)} sub-CA "
                "certificate(s) missing and not in the trust store",
                subject=_subject(top),
            )
        path.append(found[0])


def _key_id(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    digest = getattr(value, "key_identifier", None) or getattr(value, "digest", None)
    return digest if isinstance(digest, bytes) else None


def _find_root(top: x509.Certificate, store: TrustAnchors) -> x509.Certificate:
    named = [r for r in store.roots if r.subject == top.issuer]
    for root in named:
        if _verifies(top, root):
            return root
    aki = _key_id(top, x509.AuthorityKeyIdentifier)
    for root in named:
        if aki is not None and aki == _key_id(root, x509.SubjectKeyIdentifier):
            raise errors.SignatureInvalidError(
                "signature does not verify with the trusted root's key", subject=_subject(top)
            )
    raise errors.UnknownRootError(
        f"no trusted root {top.issuer.rfc4514_string()} (with this key) in the store",
        subject=_subject(top),
    )


def _check_signatures(path: list[x509.Certificate]) -> None:
    for child, parent in pairwise(path):
        if not _verifies(child, parent):
            raise errors.SignatureInvalidError(
                f"signature does not verify with the key of {_subject(parent)}",
                subject=_subject(child),
            )


def _check_validity(path: list[x509.Certificate], at: datetime) -> None:
    for cert in path:
        if at < cert.not_valid_before_utc:
            raise errors.CertificateNotYetValidError(
                f"valid from {cert.not_valid_before_utc.isoformat()}", subject=_subject(cert)
            )
        if at > cert.not_valid_after_utc:
            raise errors.CertificateExpiredError(
                f"expired {cert.not_valid_after_utc.isoformat()}", subject=_subject(cert)
            )


def _check_path_lengths(path: list[x509.Certificate]) -> None:
    """RFC 5280 6.1.4: every issuer a CA; a CA's pathLen bounds the CAs below it."""
    for index, cert in enumerate(path[1:], start=1):
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            raise errors.MissingExtensionError(
                "an issuer without basicConstraints", subject=_subject(cert)
            ) from None
        if not bc.ca:
            raise errors.BasicConstraintsError(
                "issues certificates without basicConstraints CA:true", subject=_subject(cert)
            )
        below = index - 1  # intermediate CAs between this one and the leaf
        if bc.path_length is not None and below > bc.path_length:
            raise errors.PathLenViolatedError(
                f"pathLenConstraint {bc.path_length}, {below} CA(s) below it",
                subject=_subject(cert),
            )


def verify_chain(
    leaf: x509.Certificate,
    sub_cas: Sequence[x509.Certificate],
    trust_store: TrustAnchors,
    *,
    at: datetime,
    standard: Standard,
    purpose: Purpose,
    revocation: RevocationCheck | None = None,
) -> VerifiedChain:
    """Validate `leaf` + `sub_cas` (leaf's issuer first) to a root of `trust_store` at `at`.

    `trust_store` holds the roots allowed for this use ([V2G2-925]): V2G roots for an SECC
    chain, MO (and V2G) roots for a contract chain, OEM roots for a vehicle chain.

    With `revocation`, every certificate below the root is checked last, leaf first.
    """
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    roles = chain_roles(standard, purpose)
    path = [leaf, *sub_cas]
    if len(path) > 1 and path[-1] in trust_store.roots:
        path.pop()  # a peer that sends the trusted root along: the anchor comes from the store
    _check_sizes(path, standard)
    _check_names(path)
    if not trust_store.roots:
        raise errors.NoCertificateAvailableError("the trust store holds no root")
    _complete(path, len(roles), trust_store)
    root = _find_root(path[-1], trust_store)
    path.append(root)
    _check_signatures(path)
    _check_validity(path, at)
    _check_path_lengths(path)
    root_role = PROFILES[standard][roles[-1]].issuer
    assert root_role is not None
    all_roles = (*roles, root_role)
    for cert, role in zip(path, all_roles, strict=True):
        findings = check_profile(cert, standard, role)
        if findings:
            raise findings[0].exception(_subject(cert))
    if revocation is not None:
        for cert, issuer in pairwise(path):
            revocation.check(cert, issuer, at=at)
    return VerifiedChain(standard, purpose, tuple(path), all_roles)
