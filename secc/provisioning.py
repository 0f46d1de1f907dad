"""A local certificate provisioning service (ISO 15118-2), for tests and the demo.

In a real deployment the SECC forwards CertificateInstallationReq / CertificateUpdateReq to the
operator's backend, which asks the certificate provisioning service (CPS) of the contract's
mobility operator (OCPP 2.0.1 Get15118EVCertificate) and passes the signed response through.
`LocalProvisioning` plays that whole chain locally with keys of a test PKI (`pki.create`):

* it checks the car's certificate: for an installation the OEM provisioning certificate
  (`OEMProvisioningCert`, the leaf only: its sub-CAs come from the OEM trust store's
  intermediates) must chain to an OEM root (``Purpose.PROVISIONING``); for an update the old
  contract chain must chain to an MO root (``Purpose.CONTRACT``) and name the stated eMAID.
  A charger that merely relays may skip this (``verify_requests=False``): the CPS verifies;
* it issues a P-256 contract certificate (``Role.CONTRACT``, the new eMAID as CN) under MO
  Sub-CA 2, with a fresh key;
* it wraps that key for the car ([V2G2-818], `pki.keywrap.wrap_iso2`): for the OEM
  provisioning public key (installation) or the old contract certificate's key (update);
* it signs the four parts with the SA provisioning key, which in ISO 15118-2 is the CPS leaf
  (``Role.CPS``, DC=CPS, under CPS Sub-CA 2 / 1 and the V2G root): one reference per part
  (`pki.xmlsig.SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES`, the same rule for the update
  response). The parts carry the Id attributes ``id1`` (ContractSignatureCertChain), ``id2``
  (ContractSignatureEncryptedPrivateKey), ``id3`` (DHpublickey) and ``id4`` (eMAID), the
  naming most implementations use.

Not checked: the car's ListOfRootCertificateIDs (the V2G roots it can verify the SA
provisioning chain with); a CPS with chains under several roots would pick one from it.

The signature belongs in the response's V2G_Message Header.Signature, so both methods return a
`ProvisioningResult` (body and signature). Failures raise `pki.errors.PkiError` subclasses,
whose `response_code` is the ISO-2 ResponseCode to answer with. Sans-IO: time comes in as
`at` (or from the injected wall clock), randomness through injectable seams.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exi_schemas import iso2, xmldsig
from iso15118 import exi
from pki import errors
from pki.chain import TrustAnchors, verify_chain
from pki.create import IssuedCertificate, TestPki, issue, replace, template_for
from pki.emaid import Emaid, check_digit, emaid_from_certificate, match_certificate
from pki.keywrap import RandomBytes, WrappedKey, wrap_iso2
from pki.profiles import Purpose, Role, Standard
from pki.store import TrustStore
from pki.xmlsig import SignedMessage, sign, verify

__all__ = [
    "ISO2_BODY",
    "PART_IDS",
    "CertificateProvisioning",
    "EmaidGenerator",
    "LocalProvisioning",
    "ProvisioningResult",
    "contract_emaid",
    "signed_parts",
]

log = logging.getLogger(__name__)

ISO2_BODY = "urn:iso:15118:2:2013:MsgBody"
#: Id attributes of the four signed parts of CertificateInstallationRes / CertificateUpdateRes
PART_IDS = {
    "ContractSignatureCertChain": "id1",
    "ContractSignatureEncryptedPrivateKey": "id2",
    "DHpublickey": "id3",
    "eMAID": "id4",
}

ResT = TypeVar("ResT", iso2.CertificateInstallationResType, iso2.CertificateUpdateResType)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class ProvisioningResult(Generic[ResT]):
    """A response body ready to send and the signature for its Header.Signature."""

    body: ResT
    signature: xmldsig.SignatureType
    contract_certificate: x509.Certificate  # the one issued (for logs and the backend)

    @property
    def emaid(self) -> str:
        return self.body.eMAID.value


class CertificateProvisioning(Protocol):
    """What `secc.backend.LocalBackend` needs from a provisioning service."""

    def install(
        self,
        req: iso2.CertificateInstallationReqType,
        at: datetime | None = None,
        *,
        signature: xmldsig.SignatureType | None = None,
    ) -> ProvisioningResult[iso2.CertificateInstallationResType]: ...

    def update(
        self,
        req: iso2.CertificateUpdateReqType,
        at: datetime | None = None,
        *,
        signature: xmldsig.SignatureType | None = None,
    ) -> ProvisioningResult[iso2.CertificateUpdateResType]: ...


class EmaidGenerator:
    """eMAIDs ``CC PPP IIIIIIIII D`` (ISO 15118-2 Annex H) with a valid DIN SPEC 91286 check
    digit: the instance is `prefix` followed by a base-36 counter. Deterministic from
    `start`; by default the counter starts at a random point so that two runs of the demo do
    not hand out the same eMAIDs."""

    def __init__(
        self,
        country: str = "DE",
        provider: str = "SIM",
        *,
        prefix: str = "C",
        start: int | None = None,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self._head = (country + provider + prefix).upper()
        self._width = 14 - len(self._head)
        if len(country) != 2 or len(provider) != 3 or self._width < 4:
            raise ValueError("country: 2 letters, provider: 3 characters, prefix: at most 5")
        limit = len(_ALPHABET) ** self._width
        self._limit = limit
        self._next = start if start is not None else int.from_bytes(random_bytes(8)) % limit

    def __call__(self) -> str:
        value, self._next = self._next % self._limit, self._next + 1
        digits = ""
        for _ in range(self._width):
            value, rest = divmod(value, len(_ALPHABET))
            digits = _ALPHABET[rest] + digits
        first14 = self._head + digits
        return first14 + check_digit(first14)


def signed_parts(
    body: iso2.CertificateInstallationResType | iso2.CertificateUpdateResType,
) -> dict[str, exi.Element]:
    """Id -> element of the four signed parts of a response body (as `pki.xmlsig.verify`
    wants them)."""
    parts: dict[str, object] = {
        "ContractSignatureCertChain": body.ContractSignatureCertChain,
        "ContractSignatureEncryptedPrivateKey": body.ContractSignatureEncryptedPrivateKey,
        "DHpublickey": body.DHpublickey,
        "eMAID": body.eMAID,
    }
    return {
        str(getattr(value, "Id", None)): exi.Element(ISO2_BODY, name, value)
        for name, value in parts.items()
    }


def _chain(
    leaf: x509.Certificate, subs: Sequence[x509.Certificate], ident: str | None
) -> iso2.CertificateChainType:
    der = serialization.Encoding.DER
    return iso2.CertificateChainType(
        Id=ident,
        Certificate=leaf.public_bytes(der),
        SubCertificates=iso2.SubCertificatesType(Certificate=[c.public_bytes(der) for c in subs])
        if subs
        else None,
    )


def _load(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise errors.ChainError(f"the {what} is not a DER certificate") from None


def _p256_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise errors.CurveError("ISO 15118-2 keys are P-256", subject=cert.subject.rfc4514_string())
    return key


@dataclass(frozen=True, slots=True)
class _Parts:
    contract: x509.Certificate
    chain: iso2.CertificateChainType
    encrypted: iso2.ContractSignatureEncryptedPrivateKeyType
    dh: iso2.DiffieHellmanPublickeyType
    emaid: iso2.EMAIDType


class LocalProvisioning:
    """Issue contract certificates locally (see the module docstring).

    `contract_issuer` is MO Sub-CA 2 (certificate and key) and `contract_sub_cas` the
    SubCertificates sent with a contract certificate (MO Sub-CA 2, then 1);
    `provisioning` the SA provisioning certificate and key (the CPS leaf) and
    `provisioning_sub_cas` its sub-CAs (CPS Sub-CA 2, then 1). `oem_trust` holds the OEM
    roots (and OEM sub-CAs as intermediates), `mo_trust` the MO roots.
    """

    def __init__(
        self,
        *,
        contract_issuer: IssuedCertificate,
        contract_sub_cas: Sequence[x509.Certificate],
        provisioning: IssuedCertificate,
        provisioning_sub_cas: Sequence[x509.Certificate],
        oem_trust: TrustAnchors,
        mo_trust: TrustAnchors,
        emaids: Callable[[], str] | None = None,
        serials: Callable[[], int] = x509.random_serial_number,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        random_bytes: RandomBytes = os.urandom,
        verify_requests: bool = True,
    ) -> None:
        self._issuer = contract_issuer
        self._contract_subs = tuple(contract_sub_cas)
        self._provisioning = provisioning
        self._sa_chain = _chain(provisioning.certificate, provisioning_sub_cas, None)
        self._oem_trust = oem_trust
        self._mo_trust = mo_trust
        self._emaids = emaids or EmaidGenerator()
        self._serials = serials
        self._clock = clock
        self._random_bytes = random_bytes
        self._verify_requests = verify_requests

    @classmethod
    def from_test_pki(
        cls,
        pki: TestPki,
        *,
        oem_trust: TrustAnchors | None = None,
        mo_trust: TrustAnchors | None = None,
        **options: Any,
    ) -> LocalProvisioning:
        """Everything from one `pki.create.create_pki(Standard.ISO2, ...)` result: MO Sub-CA 2
        issues, the CPS leaf signs, its OEM and MO roots (with their sub-CAs) are trusted;
        `options` as for the constructor."""

        def ca(role: Role) -> x509.Certificate:
            return pki[role].certificate

        oem = TrustStore([ca(Role.OEM_ROOT)], [ca(Role.OEM_SUB_CA_1), ca(Role.OEM_SUB_CA_2)])
        mo = TrustStore([ca(Role.MO_ROOT)], [ca(Role.MO_SUB_CA_1), ca(Role.MO_SUB_CA_2)])
        return cls(
            contract_issuer=pki[Role.MO_SUB_CA_2],
            contract_sub_cas=pki.chain(Role.MO_SUB_CA_2),
            provisioning=pki[Role.CPS],
            provisioning_sub_cas=pki.chain(Role.CPS)[1:],
            oem_trust=oem_trust or oem,
            mo_trust=mo_trust or mo,
            **options,
        )

    @property
    def sa_provisioning_chain(self) -> iso2.CertificateChainType:
        return self._sa_chain

    # --- the two operations -----------------------------------------------------------------

    def install(
        self,
        req: iso2.CertificateInstallationReqType,
        at: datetime | None = None,
        *,
        signature: xmldsig.SignatureType | None = None,
    ) -> ProvisioningResult[iso2.CertificateInstallationResType]:
        """CertificateInstallationRes for `req`. With `signature` (the request's
        Header.Signature) it is checked with the OEM provisioning key first."""
        when = at or self._clock()
        oem = _load(req.OEMProvisioningCert, "OEM provisioning certificate")
        if signature is not None:
            verify(
                signature,
                {req.Id: req},
                _p256_key(oem),
                message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_REQ,
            )
        if self._verify_requests:
            verify_chain(
                oem,
                [],
                self._oem_trust,
                at=when,
                standard=Standard.ISO2,
                purpose=Purpose.PROVISIONING,
            )
        parts = self._issue(self._emaids(), _p256_key(oem), when)
        body = iso2.CertificateInstallationResType(
            ResponseCode=iso2.responseCodeType.OK,
            SAProvisioningCertificateChain=self._sa_chain,
            ContractSignatureCertChain=parts.chain,
            ContractSignatureEncryptedPrivateKey=parts.encrypted,
            DHpublickey=parts.dh,
            eMAID=parts.emaid,
        )
        log.info("issued contract certificate for %s (installation)", parts.emaid.value)
        return ProvisioningResult(body, self._sign(body), parts.contract)

    def update(
        self,
        req: iso2.CertificateUpdateReqType,
        at: datetime | None = None,
        *,
        signature: xmldsig.SignatureType | None = None,
    ) -> ProvisioningResult[iso2.CertificateUpdateResType]:
        """CertificateUpdateRes for `req`: a new certificate for the same eMAID, its key
        wrapped for the old contract key. With `signature` it is checked with that key."""
        when = at or self._clock()
        old = _load(req.ContractSignatureCertChain.Certificate, "contract certificate")
        subs = req.ContractSignatureCertChain.SubCertificates
        sub_cas = [_load(c, "sub-CA certificate") for c in (subs.Certificate if subs else [])]
        if signature is not None:
            verify(
                signature,
                {req.Id: req},
                _p256_key(old),
                message=SignedMessage.ISO2_CERTIFICATE_UPDATE_REQ,
            )
        if self._verify_requests:
            verify_chain(
                old,
                sub_cas,
                self._mo_trust,
                at=when,
                standard=Standard.ISO2,
                purpose=Purpose.CONTRACT,
            )
        emaid = _with_check_digit(match_certificate(req.eMAID, old))
        parts = self._issue(emaid, _p256_key(old), when)
        body = iso2.CertificateUpdateResType(
            ResponseCode=iso2.responseCodeType.OK,
            SAProvisioningCertificateChain=self._sa_chain,
            ContractSignatureCertChain=parts.chain,
            ContractSignatureEncryptedPrivateKey=parts.encrypted,
            DHpublickey=parts.dh,
            eMAID=parts.emaid,
        )
        log.info("issued contract certificate for %s (update)", emaid)
        return ProvisioningResult(body, self._sign(body), parts.contract)

    # --- helpers ----------------------------------------------------------------------------

    def _issue(self, emaid: str, recipient: ec.EllipticCurvePublicKey, at: datetime) -> _Parts:
        key = ec.generate_private_key(ec.SECP256R1())
        template = template_for(
            Standard.ISO2, Role.CONTRACT, at=at, serial=self._serials(), common_name=emaid
        )
        issuer_end = self._issuer.certificate.not_valid_after_utc
        if template.not_after > issuer_end:  # never outlive the issuing CA
            template = replace(template, not_after=issuer_end)
        contract = issue(template, key, self._issuer, standard=Standard.ISO2)
        wrapped: WrappedKey = wrap_iso2(key, recipient, random_bytes=self._random_bytes)
        return _Parts(
            contract=contract,
            chain=_chain(contract, self._contract_subs, PART_IDS["ContractSignatureCertChain"]),
            encrypted=iso2.ContractSignatureEncryptedPrivateKeyType(
                Id=PART_IDS["ContractSignatureEncryptedPrivateKey"],
                value=wrapped.encrypted_private_key,
            ),
            dh=iso2.DiffieHellmanPublickeyType(
                Id=PART_IDS["DHpublickey"], value=wrapped.dh_public_key
            ),
            emaid=iso2.EMAIDType(Id=PART_IDS["eMAID"], value=emaid),
        )

    def _sign(
        self, body: iso2.CertificateInstallationResType | iso2.CertificateUpdateResType
    ) -> xmldsig.SignatureType:
        key = self._provisioning.key
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the SA provisioning key must be a P-256 key")
        return sign(
            list(signed_parts(body).items()),
            key,
            message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES,
        )


def _with_check_digit(emaid: Emaid) -> str:
    text = emaid.normalised
    return text if emaid.check is not None else text + check_digit(text)


def contract_emaid(certificate: x509.Certificate) -> str:
    """The normalised eMAID of a contract certificate (check digit added if absent)."""
    return _with_check_digit(emaid_from_certificate(certificate, require_check_digit=False))
