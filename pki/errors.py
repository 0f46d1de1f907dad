"""The PKI's one exception hierarchy; each class carries the response codes it maps to.

`response_code` is the ISO 15118-2 ``responseCodeType`` token (``exi_schemas/iso2.py``) and
`iso20_response_code` the ISO 15118-20 one (``exi_schemas/iso20_common_types.py``): ISO-20 has
no ``FAILED_Cert*`` codes, certificate problems are reported as ``WARNING_Certificate*`` there.
A test checks every token against the generated enums. `response_code_for(standard)` picks one.

Peer faults (a bad chain, a revoked contract, a wrong eMAID) raise these; misuse of the API
(an unknown purpose for a standard, a naive datetime) raises `ValueError`/`TypeError` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from pki.profiles import Standard

__all__ = [
    "AlgorithmError",
    "BasicConstraintsError",
    "CaFlagOnLeafError",
    "CertificateExpiredError",
    "CertificateNotYetValidError",
    "CertificateRevokedError",
    "CertificateTooLargeError",
    "ChainError",
    "ContractCanceledError",
    "CrlError",
    "CrlIssuerError",
    "CrlSignatureError",
    "CrlStaleError",
    "CrlUnavailableError",
    "CurveError",
    "DomainComponentError",
    "EmaidCheckDigitError",
    "EmaidError",
    "EmaidMismatchError",
    "EmaidSyntaxError",
    "ExtendedKeyUsageError",
    "ExtensionCriticalityError",
    "HashAlgorithmError",
    "KeyUsageError",
    "MissingExtensionError",
    "MissingSubCaError",
    "NoCertificateAvailableError",
    "OcspError",
    "OcspNonceError",
    "OcspSignatureError",
    "OcspStaleError",
    "OcspUnauthorisedResponderError",
    "OcspUnavailableError",
    "PathLenViolatedError",
    "PathTooDeepError",
    "PkiError",
    "ProfileError",
    "RevocationError",
    "RevocationUnavailableError",
    "SignatureInvalidError",
    "UnknownRootError",
    "ValidityTooLongError",
    "WrongIssuerError",
]


class PkiError(Exception):
    """Base class: a certificate, chain, revocation answer or eMAID the standard rejects."""

    response_code: ClassVar[str] = "FAILED_CertChainError"
    iso20_response_code: ClassVar[str] = "WARNING_CertificateValidationError"

    def __init__(self, reason: str, *, subject: str | None = None) -> None:
        self.reason = reason
        self.subject = subject
        super().__init__(f"{subject}: {reason}" if subject else reason)

    @classmethod
    def response_code_for(cls, standard: Standard) -> str:
        """The ResponseCode token to send in a message of `standard`."""
        from pki.profiles import Standard

        return cls.iso20_response_code if standard is Standard.ISO20 else cls.response_code


# --- validity -----------------------------------------------------------------------------


class CertificateExpiredError(PkiError):
    """notAfter lies before the validation time."""

    response_code = "FAILED_CertificateExpired"
    iso20_response_code = "WARNING_CertificateExpired"


class CertificateNotYetValidError(PkiError):
    """notBefore lies after the validation time."""

    iso20_response_code = "WARNING_CertificateNotYetValid"


# --- path building ------------------------------------------------------------------------


class ChainError(PkiError):
    """The path from the leaf to a trust anchor cannot be built or does not hold."""


class UnknownRootError(ChainError):
    """No trust anchor in the store issued the top of the chain."""


class WrongIssuerError(ChainError):
    """A certificate's issuer name is not the subject of the next certificate of the chain."""


class MissingSubCaError(ChainError):
    """The chain stops at a sub-CA level; neither the peer nor the store supplies it."""


class SignatureInvalidError(ChainError):
    """A certificate's signature does not verify with its issuer's public key."""


class PathTooDeepError(ChainError):
    """More certificates below the root than the standard allows."""


class PathLenViolatedError(ChainError):
    """A CA's basicConstraints pathLenConstraint is exceeded by the certificates below it."""


class NoCertificateAvailableError(PkiError):
    """No certificate at all where one is needed (an empty chain, an empty store)."""

    response_code = "FAILED_NoCertificateAvailable"
    iso20_response_code = "WARNING_NoCertificateAvailable"


# --- profile conformance ------------------------------------------------------------------


class ProfileError(PkiError):
    """A certificate departs from its ISO 15118 profile."""


class CaFlagOnLeafError(ProfileError):
    """A leaf certificate claims basicConstraints CA:true."""


class BasicConstraintsError(ProfileError):
    """basicConstraints of a CA differ from the profile (CA flag missing, wrong pathLen)."""


class KeyUsageError(ProfileError):
    """keyUsage lacks a required bit or sets one the profile does not allow."""


class ExtendedKeyUsageError(ProfileError):
    """extendedKeyUsage lacks the purpose the profile requires (e.g. OCSPSigning)."""


class CurveError(ProfileError):
    """The subject key is not on the curve (or of the algorithm) the standard prescribes."""


class HashAlgorithmError(ProfileError):
    """The certificate is signed with a signature/hash algorithm the standard does not allow."""


AlgorithmError = HashAlgorithmError  # the signature algorithm as a whole; one class, two names


class CertificateTooLargeError(ProfileError):
    """The DER encoding exceeds the Certificate element's maxLength in the message schema."""


class MissingExtensionError(ProfileError):
    """An extension the profile requires is absent."""


class ExtensionCriticalityError(ProfileError):
    """An extension the profile marks critical is not (or the reverse)."""


class DomainComponentError(ProfileError):
    """The subject's domainComponent differs from the value the profile fixes."""


class ValidityTooLongError(ProfileError):
    """The validity period is longer than the profile's maximum."""


# --- revocation ---------------------------------------------------------------------------


class CertificateRevokedError(PkiError):
    """An authoritative OCSP answer (or CRL) says the certificate is revoked."""

    response_code = "FAILED_CertificateRevoked"
    iso20_response_code = "WARNING_CertificateRevoked"


class ContractCanceledError(PkiError):
    """The mobility operator has cancelled the contract (backend decision, not PKI)."""

    response_code = "FAILED_ContractCanceled"
    iso20_response_code = "WARNING_GeneralPnCAuthorizationError"


class RevocationError(PkiError):
    """A revocation answer (OCSP or CRL) cannot be used, or none can be had."""


class RevocationUnavailableError(RevocationError):
    """No usable revocation answer (no OCSP URL nor CRL distribution point, a responder or
    CRL server that cannot be reached) and the `NoAnswerPolicy` rejects the certificate then."""


class OcspError(RevocationError):
    """An OCSP answer cannot be used."""


class OcspStaleError(OcspError):
    """The OCSP answer is outside thisUpdate..nextUpdate at the validation time."""


class OcspUnauthorisedResponderError(OcspError):
    """The OCSP answer is signed by neither the issuer nor a delegated OCSP signer."""


class OcspSignatureError(OcspError):
    """The OCSP answer's signature does not verify with the responder's key."""


class OcspNonceError(OcspError):
    """The OCSP answer's nonce differs from the request's (or is missing where required)."""


class OcspUnavailableError(OcspError, RevocationUnavailableError):
    """No OCSP answer could be had and the policy rejects the certificate then."""


class CrlError(RevocationError):
    """A CRL cannot be used."""


class CrlStaleError(CrlError):
    """The CRL is outside thisUpdate..nextUpdate at the validation time."""


class CrlIssuerError(CrlError):
    """The CRL is not issued by the certificate's issuer (another name, or an issuer without
    the cRLSign key usage)."""


class CrlSignatureError(CrlError):
    """The CRL's signature does not verify with the key of the certificate's issuer."""


class CrlUnavailableError(CrlError, RevocationUnavailableError):
    """No CRL could be had (or what came is no CRL) and the policy rejects the certificate."""


# --- eMAID --------------------------------------------------------------------------------


class EmaidError(PkiError):
    """An eMAID that is malformed or does not belong to the contract certificate."""


class EmaidSyntaxError(EmaidError):
    """Not country code, provider ID, instance (and check digit) as ISO 15118-2 Annex H says."""


class EmaidCheckDigitError(EmaidError):
    """The check digit is not the one DIN SPEC 91286 computes over the first 14 characters."""


class EmaidMismatchError(EmaidError):
    """The eMAID stated by the EV differs from the one in its contract certificate."""
