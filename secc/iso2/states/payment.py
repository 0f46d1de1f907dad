"""PaymentDetailsReq and AuthorizationReq (ISO 15118-2 8.4.3.6-7): Plug & Charge contract
verification, the GenChallenge, the signed AuthorizationReq; and EIM authorization.

The backend's decision arrives as a control event; until then AuthorizationRes says
EVSEProcessing=Ongoing [V2G2-684].
"""

from __future__ import annotations

import dataclasses

from cryptography import x509

from exi_schemas import iso2
from pki.chain import verify_chain
from pki.emaid import match_certificate
from pki.errors import NoCertificateAvailableError
from pki.profiles import Purpose, Standard
from pki.xmlsig import SignatureError, SignedMessage, verify
from secc.context import Context, ContractInfo, Outcome, PaymentOption, SessionData
from secc.errors import (
    CertificateError,
    ChallengeError,
    SignatureInvalidError,
    V2GError,
)
from secc.iso2.state import State
from secc.records import AuthorizationRequest, IdentificationKind
from secc.steps import Progress, authorization_step

R = iso2.responseCodeType
P = iso2.EVSEProcessingType
GEN_CHALLENGE_LENGTH = 16  # [V2G2-825]


def handle_payment_details(
    req: iso2.PaymentDetailsReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    """Verify the contract chain to an MO/V2G root [V2G2-925] and the eMAID against the
    certificate; answer a fresh GenChallenge."""
    trust = ctx.config.contract_trust
    if trust is None:
        raise NoCertificateAvailableError("no contract trust anchors configured")
    chain = req.ContractSignatureCertChain
    subs_der = tuple(chain.SubCertificates.Certificate) if chain.SubCertificates else ()
    try:
        leaf = x509.load_der_x509_certificate(chain.Certificate)
        subs = [x509.load_der_x509_certificate(d) for d in subs_der]
    except ValueError as exc:  # the car's bytes are no DER certificate
        raise CertificateError(f"undecodable contract certificate: {exc}") from exc
    verify_chain(
        leaf,
        subs,
        trust,
        at=ctx.at,
        standard=Standard.ISO2,
        purpose=Purpose.CONTRACT,
        revocation=ctx.config.revocation,
    )
    emaid = match_certificate(req.eMAID, leaf)
    challenge = ctx.random(GEN_CHALLENGE_LENGTH)
    contract = ContractInfo(
        emaid=emaid.normalised,
        leaf_der=chain.Certificate,
        sub_ca_der=subs_der,
        public_key=leaf.public_key(),
    )
    new = dataclasses.replace(
        data, contract=contract, gen_challenge=challenge, authorization_requested=False
    )
    response = iso2.PaymentDetailsResType(
        ResponseCode=R.OK, GenChallenge=challenge, EVSETimeStamp=int(ctx.at.timestamp())
    )
    return Outcome(response=response, next_state=State.WAIT_AUTHORIZATION, data=new)


def _check_signed_request(req: iso2.AuthorizationReqType, ctx: Context, data: SessionData) -> None:
    """PnC: GenChallenge [V2G2-475] and the contract key's signature [V2G2-476]."""
    assert data.contract is not None
    if data.gen_challenge is None or req.GenChallenge != data.gen_challenge:
        raise ChallengeError("GenChallenge differs from the one sent in PaymentDetailsRes")
    signature = ctx.header_signature
    if signature is None or req.Id is None:
        raise SignatureInvalidError("AuthorizationReq carries no signature")
    try:
        verify(
            signature,
            {req.Id: req},
            data.contract.public_key,
            message=SignedMessage.ISO2_AUTHORIZATION_REQ,
        )
    except SignatureError as exc:
        raise SignatureInvalidError(str(exc)) from exc


def _authorization_request(ctx: Context, data: SessionData) -> AuthorizationRequest:
    session_id = data.session_id.hex().upper()
    if data.payment is PaymentOption.CONTRACT and data.contract is not None:
        return AuthorizationRequest(
            session_id=session_id,
            evse_id=ctx.evse_id,
            kind=IdentificationKind.CONTRACT,
            contract_id=data.contract.emaid,
            contract_certificate=data.contract.leaf_der,
        )
    return AuthorizationRequest(
        session_id=session_id,
        evse_id=ctx.evse_id,
        kind=IdentificationKind.EXTERNAL,
        id_token=ctx.status.id_token,
    )


def handle_authorization(
    req: iso2.AuthorizationReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    """PnC: GenChallenge and signature checked before the backend is asked (and again in a
    resumed session that was sent a new GenChallenge); then `secc.steps.authorization_step`."""
    if data.payment is PaymentOption.CONTRACT:
        accepted = data.authorization is not None and data.authorization.accepted
        if not accepted and data.contract is None:
            raise V2GError("Plug & Charge authorization without PaymentDetails")
        first = not accepted and not data.authorization_requested
        resumed = accepted and data.gen_challenge is not None and data.contract is not None
        if first or resumed:
            _check_signed_request(req, ctx, data)
    step = authorization_step(_authorization_request(ctx, data), ctx, data)
    if step.progress is Progress.FINISHED:
        return _finished(step.data)
    response = iso2.AuthorizationResType(ResponseCode=R.OK, EVSEProcessing=P.Ongoing)
    return Outcome(response=response, data=step.data, commands=step.commands)


def _finished(data: SessionData) -> Outcome[State]:
    return Outcome(
        response=iso2.AuthorizationResType(ResponseCode=R.OK, EVSEProcessing=P.Finished),
        next_state=State.WAIT_CHARGE_PARAMETER_DISCOVERY,
        data=data,
    )
