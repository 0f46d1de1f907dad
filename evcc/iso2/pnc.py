"""ISO 15118-2 Plug & Charge on the EV side: CertificateInstallation, CertificateUpdate,
PaymentDetails, and the signatures of AuthorizationReq, MeteringReceiptReq,
CertificateInstallationReq and CertificateUpdateReq.

CertificateInstallationRes / CertificateUpdateRes is accepted only if its signature verifies
with the SA provisioning certificate it carries (pki.xmlsig, the four signed parts) and the
wrapped contract key opens and matches the contract certificate (pki.keywrap.unwrap_iso2):
with the OEM provisioning key for an installation, with the present contract key for an
update (8.4.3.9). The SA provisioning chain itself is not validated against a V2G root here.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from evcc.common import Done, EvContext, Next, Reaction
from evcc.events import ContractInstalled, ContractUpdated
from exi_schemas import iso2, xmldsig
from iso15118 import exi
from pki.keywrap import KeyUnwrapError, WrappedKey, unwrap_iso2
from pki.xmlsig import SignatureError, SignedMessage, sign, verify
from secc.iso2.states.discovery import CertificateParameterSet

__all__ = [
    "certificate_action",
    "certificate_installation",
    "certificate_installation_request",
    "certificate_update",
    "certificate_update_request",
    "payment_details",
    "payment_details_request",
    "sign_request",
]

BODY = "urn:iso:15118:2:2013:MsgBody"
INSTALLATION_ID = "ID3"
UPDATE_ID = "ID4"


class InstallationRejected(Exception):
    """A CertificateInstallationRes or CertificateUpdateRes the EV cannot use."""


def certificate_action(ctx: EvContext) -> CertificateParameterSet | None:
    """What the EV wants of the ContractCertificate service in this session: INSTALLATION,
    UPDATE or nothing (EIM, a resumed session, a contract that needs no renewal)."""
    pnc = ctx.config.pnc
    if ctx.config.payment.value != "Contract" or pnc is None or ctx.resumed:
        return None
    if pnc.needs_installation:
        return CertificateParameterSet.INSTALLATION
    return CertificateParameterSet.UPDATE if pnc.needs_update(ctx.clock()) else None


def _root_ids(roots: tuple[bytes, ...]) -> iso2.ListOfRootCertificateIDsType:
    ids = []
    for der in roots[:20]:
        cert = x509.load_der_x509_certificate(der)
        ids.append(
            xmldsig.X509IssuerSerialType(
                X509IssuerName=cert.issuer.rfc4514_string(), X509SerialNumber=cert.serial_number
            )
        )
    return iso2.ListOfRootCertificateIDsType(RootCertificateID=ids)


def certificate_installation_request(ctx: EvContext) -> iso2.CertificateInstallationReqType:
    pnc = ctx.config.pnc
    assert pnc is not None and pnc.oem_provisioning_cert is not None  # config checks this
    return iso2.CertificateInstallationReqType(
        Id=INSTALLATION_ID,
        OEMProvisioningCert=pnc.oem_provisioning_cert,
        ListOfRootCertificateIDs=_root_ids(pnc.root_certificates),
    )


def certificate_update_request(ctx: EvContext) -> iso2.CertificateUpdateReqType:
    """The present contract chain and eMAID; signed later with the present contract key."""
    pnc = ctx.config.pnc
    assert pnc is not None  # certificate_action checked it
    leaf, *subs = ctx.contract_chain
    return iso2.CertificateUpdateReqType(
        Id=UPDATE_ID,
        ContractSignatureCertChain=iso2.CertificateChainType(
            Certificate=leaf,
            SubCertificates=iso2.SubCertificatesType(Certificate=list(subs)) if subs else None,
        ),
        eMAID=ctx.emaid or "",
        ListOfRootCertificateIDs=_root_ids(pnc.root_certificates),
    )


CertificateRes = iso2.CertificateInstallationResType | iso2.CertificateUpdateResType


def _signed_parts(res: CertificateRes) -> dict[str, object]:
    parts: dict[str, object] = {}
    for name, value in (
        ("ContractSignatureCertChain", res.ContractSignatureCertChain),
        ("ContractSignatureEncryptedPrivateKey", res.ContractSignatureEncryptedPrivateKey),
        ("DHpublickey", res.DHpublickey),
        ("eMAID", res.eMAID),
    ):
        if value.Id is None:
            raise InstallationRejected(f"{name} has no Id to sign")
        parts[value.Id] = exi.Element(BODY, name, value)
    return parts


def _unwrap(
    res: CertificateRes, ctx: EvContext, recipient: ec.EllipticCurvePrivateKey | None
) -> ec.EllipticCurvePrivateKey:
    """The new contract key, after the SA provisioning signature verified; `recipient` is
    the key it was wrapped for."""
    if recipient is None:
        raise InstallationRejected("no key to unwrap the contract key with")
    signature = ctx.response_header.Signature if ctx.response_header is not None else None
    if signature is None:
        raise InstallationRejected("no signature in the header")
    sa_key = x509.load_der_x509_certificate(res.SAProvisioningCertificateChain.Certificate)
    public = sa_key.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise InstallationRejected("the SA provisioning key is not an EC key")
    verify(
        signature,
        _signed_parts(res),
        public,
        message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES,
    )
    contract = x509.load_der_x509_certificate(res.ContractSignatureCertChain.Certificate)
    contract_public = contract.public_key()
    if not isinstance(contract_public, ec.EllipticCurvePublicKey):
        raise InstallationRejected("the contract key is not an EC key")
    wrapped = WrappedKey(res.DHpublickey.value, res.ContractSignatureEncryptedPrivateKey.value)
    return unwrap_iso2(wrapped, recipient, contract_public_key=contract_public)


def _take_contract(res: CertificateRes, ctx: EvContext, key: ec.EllipticCurvePrivateKey) -> None:
    chain = res.ContractSignatureCertChain
    subs = tuple(chain.SubCertificates.Certificate) if chain.SubCertificates else ()
    ctx.contract_chain = (chain.Certificate, *subs)
    ctx.contract_key = key
    ctx.emaid = res.eMAID.value


_REFUSED = (InstallationRejected, SignatureError, KeyUnwrapError, ValueError)


def certificate_installation(res: Any, ctx: EvContext, now: float) -> Reaction:
    pnc = ctx.config.pnc
    try:
        key = _unwrap(res, ctx, pnc.oem_provisioning_key if pnc is not None else None)
    except _REFUSED as exc:
        return Reaction(Done(False, f"CertificateInstallationRes rejected: {exc}"))
    _take_contract(res, ctx, key)
    event = ContractInstalled(res.eMAID.value, ctx.contract_chain, key)
    return Reaction(Next("PaymentDetailsReq"), (event,))


def certificate_update(res: Any, ctx: EvContext, now: float) -> Reaction:
    """The new contract replaces the present one for the rest of the session (PaymentDetails
    and the signed AuthorizationReq use it)."""
    try:
        key = _unwrap(res, ctx, ctx.contract_key)
    except _REFUSED as exc:
        return Reaction(Done(False, f"CertificateUpdateRes rejected: {exc}"))
    _take_contract(res, ctx, key)
    event = ContractUpdated(res.eMAID.value, ctx.contract_chain, key)
    return Reaction(Next("PaymentDetailsReq"), (event,))


def payment_details_request(ctx: EvContext) -> iso2.PaymentDetailsReqType:
    leaf, *subs = ctx.contract_chain or (b"",)
    return iso2.PaymentDetailsReqType(
        eMAID=ctx.emaid or "",
        ContractSignatureCertChain=iso2.CertificateChainType(
            Certificate=leaf,
            SubCertificates=iso2.SubCertificatesType(Certificate=list(subs)) if subs else None,
        ),
    )


def payment_details(res: Any, ctx: EvContext, now: float) -> Reaction:
    ctx.gen_challenge = res.GenChallenge
    return Reaction(Next("AuthorizationReq"))


_SIGNED = {
    "AuthorizationReq": SignedMessage.ISO2_AUTHORIZATION_REQ,
    "MeteringReceiptReq": SignedMessage.ISO2_METERING_RECEIPT_REQ,
    "CertificateInstallationReq": SignedMessage.ISO2_CERTIFICATE_INSTALLATION_REQ,
    "CertificateUpdateReq": SignedMessage.ISO2_CERTIFICATE_UPDATE_REQ,
}


def sign_request(name: str, message: Any, ctx: EvContext) -> None:
    """Put the header Signature on the requests PnC signs (in place): AuthorizationReq (with
    a GenChallenge), MeteringReceiptReq and CertificateUpdateReq with the (present) contract
    key, CertificateInstallationReq with the OEM provisioning key. Other requests, and EIM
    sessions, stay unsigned."""
    kind = _SIGNED.get(name)
    if kind is None or ctx.config.payment.value != "Contract" or ctx.config.pnc is None:
        return
    element = getattr(message.Body, name)
    if element.Id is None:
        return
    if name == "CertificateInstallationReq":
        key = ctx.config.pnc.oem_provisioning_key
    else:
        key = ctx.contract_key
    if key is None:
        return
    message.Header.Signature = sign([(element.Id, element)], key, message=kind)
