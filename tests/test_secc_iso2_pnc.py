"""Plug & Charge over TLS, whole sessions (Harness, fake clock): contract chain checks,
GenChallenge and the signed AuthorizationReq, signed metering receipts in the billing record,
and certificate installation held back for the backend."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from secc_helpers import T0, Harness
from test_secc_iso2_support import (
    accepted,
    cable_check,
    contract_chain,
    current_demand,
    dc_cpd,
    der,
    emaid_of,
    of_type,
    payment_details,
    pki_for,
    pnc_harness,
    pnc_to_payment_details,
    power_delivery,
    pre_charge,
    refused,
    selection,
    session_stop,
    setup,
    signed_authorization,
    signed_receipt,
)

from exi_schemas import iso2, xmldsig
from iso15118 import exi
from iso15118.v2gtp import V2GTPReassembler
from pki.create import TestPki
from pki.profiles import Role
from pki.xmlsig import SignedMessage, sign
from secc.context import PaymentOption
from secc.events import (
    Authorize,
    CertificateKind,
    CertificateResult,
    ConnectionClosing,
    MessageExchanged,
    RequestCertificate,
    SessionEnded,
    SessionPaused,
)
from secc.evse import ControlPilotState, IsolationStatus
from secc.iso2.state import State
from secc.provisioning import EmaidGenerator, LocalProvisioning
from secc.records import IdentificationKind, MeterReading, StopReason

R = iso2.responseCodeType
P = iso2.EVSEProcessingType
CP = iso2.chargeProgressType


def last_code(h: Harness) -> str:
    return str(of_type(h.events, MessageExchanged)[-1].response_code)


def the_record(h: Harness) -> Any:
    (event,) = of_type(h.events, SessionEnded)
    return event.record


def assert_closed_with(h: Harness, code: str) -> None:
    assert last_code(h) == code
    assert h.session.closed and h.session.get_timer() is None
    assert len(of_type(h.events, ConnectionClosing)) == 1
    assert len(of_type(h.events, SessionEnded)) == 1


def authorized(h: Harness) -> None:
    """A PnC session up to AuthorizationRes(Finished)."""
    pnc_to_payment_details(h)
    res = h.send(payment_details(pki_for()))
    assert res.ResponseCode == R.OK
    req, signature = signed_authorization(res.GenChallenge)
    assert h.send(req, signature=signature).EVSEProcessing == P.Ongoing
    h.session.handle_event(accepted(), h.now)
    assert h.send(req, signature=signature).EVSEProcessing == P.Finished


def dc_charging(h: Harness) -> None:
    authorized(h)
    h.send(dc_cpd())
    h.set_status(cp_state=ControlPilotState.C)
    h.send(cable_check())
    h.set_status(isolation=IsolationStatus.VALID)
    h.send(cable_check())
    h.send(pre_charge())
    assert h.send(power_delivery()).ResponseCode == R.OK


# --- a complete session -----------------------------------------------------------------------


def test_pnc_dc_session_with_a_signed_receipt() -> None:
    h = pnc_harness()
    dc_charging(h)
    (authorize,) = of_type(h.events, Authorize)
    request = authorize.request
    assert request.kind is IdentificationKind.CONTRACT
    assert request.contract_id == emaid_of(pki_for())
    assert request.contract_certificate == der(pki_for()[Role.CONTRACT].certificate)
    res = h.send(current_demand())
    assert res.ReceiptRequired is True and res.MeterInfo.MeterReading == 1000
    req, signature = signed_receipt(h.session_id, energy_wh=1000)
    assert h.send(req, signature=signature).ResponseCode == R.OK
    raw = of_type(h.events, MessageExchanged)[-1]
    assert raw.request_name == "MeteringReceiptReq"
    assert h.send(current_demand()).ReceiptRequired is False  # one receipt per session
    h.set_status(meter=MeterReading(meter_id="M1", energy_wh=9000, at=T0))
    h.send(power_delivery(CP.Stop))
    h.send(session_stop())
    record = the_record(h)
    assert (record.kind, record.contract_id) == (IdentificationKind.CONTRACT, emaid_of(pki_for()))
    assert record.energy_wh == 8000
    (receipt,) = record.receipts
    assert receipt.signature_valid and receipt.schema == "iso2"
    assert receipt.reading.energy_wh == 1000
    message = exi.decode("iso2", receipt.exi)  # kept as the car sent it
    assert message.Body.MeteringReceiptReq == req
    assert message.Header.Signature == signature


def test_contract_is_not_offered_over_plain_tcp() -> None:
    h = Harness()
    setup(h)
    res = h.send(iso2.ServiceDiscoveryReqType())
    assert res.PaymentOptionList.PaymentOption == [iso2.paymentOptionType.ExternalPayment]
    assert (
        h.send(selection(PaymentOption.CONTRACT)).ResponseCode == R.FAILED_PaymentSelectionInvalid
    )
    assert_closed_with(h, "FAILED_PaymentSelectionInvalid")


# --- PaymentDetails ---------------------------------------------------------------------------


def bad_chain(kind: str) -> iso2.PaymentDetailsReqType:
    if kind == "emaid":
        return payment_details(pki_for(), emaid="DEXYZC99999999")
    if kind == "garbage":
        chain = dataclasses.replace(contract_chain(pki_for()), Certificate=b"\x30\x01\x00")
        return iso2.PaymentDetailsReqType(
            eMAID=emaid_of(pki_for()), ContractSignatureCertChain=chain
        )
    return payment_details(pki_for(kind))


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("expired", "FAILED_CertificateExpired"),
        ("foreign", "FAILED_CertChainError"),
        ("emaid", "FAILED_CertChainError"),
        ("garbage", "FAILED_CertChainError"),
    ],
)
def test_payment_details_refused(kind: str, code: str) -> None:
    h = pnc_harness()
    pnc_to_payment_details(h)
    res = h.send(bad_chain(kind))
    assert res.ResponseCode == R(code)
    assert res.GenChallenge == bytes(16)  # the minimal filler of a FAILED response
    assert_closed_with(h, code)
    assert the_record(h).stop_reason is StopReason.PROTOCOL_ERROR


# --- AuthorizationReq -------------------------------------------------------------------------


def at_authorization(h: Harness) -> bytes:
    pnc_to_payment_details(h)
    res = h.send(payment_details(pki_for()))
    assert h.session.state is State.WAIT_AUTHORIZATION
    return bytes(res.GenChallenge)


def test_wrong_gen_challenge() -> None:
    h = pnc_harness()
    at_authorization(h)
    req, signature = signed_authorization(b"\x42" * 16)
    assert h.send(req, signature=signature).ResponseCode == R.FAILED_ChallengeInvalid
    assert_closed_with(h, "FAILED_ChallengeInvalid")
    assert of_type(h.events, Authorize) == []


def test_authorization_signed_by_another_key() -> None:
    h = pnc_harness()
    challenge = at_authorization(h)
    req, signature = signed_authorization(challenge, pki_for("foreign"))
    assert h.send(req, signature=signature).ResponseCode == R.FAILED_SignatureError
    assert_closed_with(h, "FAILED_SignatureError")


def test_authorization_with_a_tampered_signature_value() -> None:
    h = pnc_harness()
    challenge = at_authorization(h)
    req, signature = signed_authorization(challenge)
    value = bytearray(signature.SignatureValue.value)
    value[10] ^= 0xFF
    signature.SignatureValue = xmldsig.SignatureValueType(value=bytes(value))
    assert h.send(req, signature=signature).ResponseCode == R.FAILED_SignatureError
    assert h.session.closed


def test_authorization_without_a_signature() -> None:
    h = pnc_harness()
    challenge = at_authorization(h)
    req, _ = signed_authorization(challenge)
    assert h.send(req).ResponseCode == R.FAILED_SignatureError


def test_authorization_refused_by_the_backend() -> None:
    h = pnc_harness()
    challenge = at_authorization(h)
    req, signature = signed_authorization(challenge)
    h.send(req, signature=signature)
    h.session.handle_event(refused(), h.now)
    assert h.send(req, signature=signature).ResponseCode == R.FAILED
    assert the_record(h).stop_reason is StopReason.AUTHORIZATION_REJECTED
    assert the_record(h).contract_id == emaid_of(pki_for())


# --- MeteringReceipt --------------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["foreign key", "other reading", "unsigned"])
def test_bad_metering_receipt(problem: str) -> None:
    h = pnc_harness()
    dc_charging(h)
    assert h.send(current_demand()).ReceiptRequired is True
    if problem == "foreign key":
        req, signature = signed_receipt(h.session_id, pki=pki_for("foreign"))
    elif problem == "other reading":
        req, signature = signed_receipt(h.session_id, energy_wh=5)
    else:
        req, signature = signed_receipt(h.session_id)[0], None
    res = h.send(req, signature=signature)
    assert res.ResponseCode == R.FAILED_MeteringSignatureNotValid
    assert res.DC_EVSEStatus is not None
    assert_closed_with(h, "FAILED_MeteringSignatureNotValid")
    assert the_record(h).receipts == ()


# --- pause and resumption keep the contract ---------------------------------------------------


def test_resumed_pnc_session_keeps_the_contract() -> None:
    first = pnc_harness()
    dc_charging(first)
    first.send(power_delivery(CP.Stop))
    first.send(session_stop(pause=True))
    (paused,) = of_type(first.events, SessionPaused)
    h = pnc_harness(resumable={first.session_id: paused.resume})
    assert setup(h, session_id=first.session_id).ResponseCode == R.OK_OldSessionJoined
    h.send(iso2.ServiceDiscoveryReqType())
    h.send(selection(PaymentOption.CONTRACT))
    res = h.send(payment_details(pki_for()))
    req, signature = signed_authorization(res.GenChallenge)
    assert h.send(req, signature=signature).EVSEProcessing == P.Finished
    assert of_type(h.events, Authorize) == []
    h.send(session_stop())
    record = the_record(h)
    assert record.contract_id == emaid_of(pki_for())
    assert record.meter_start is None  # no energy in the resumed part; the first was billed
    assert paused.record is not None and paused.record.contract_id == record.contract_id


# --- certificate installation: the answer waits for the backend -------------------------------


def installation_request(pki: TestPki) -> tuple[Any, xmldsig.SignatureType]:
    oem = pki[Role.OEM_PROVISIONING]
    root = pki[Role.V2G_ROOT].certificate
    req = iso2.CertificateInstallationReqType(
        Id="ID1",
        OEMProvisioningCert=der(oem.certificate),
        ListOfRootCertificateIDs=iso2.ListOfRootCertificateIDsType(
            RootCertificateID=[
                xmldsig.X509IssuerSerialType(
                    X509IssuerName=root.issuer.rfc4514_string(),
                    X509SerialNumber=root.serial_number,
                )
            ]
        ),
    )
    assert isinstance(oem.key, ec.EllipticCurvePrivateKey)
    signature = sign(
        [("ID1", req)], oem.key, message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_REQ
    )
    return req, signature


def sent(h: Harness) -> Any:
    """The response the session sent since the last exchange (None: nothing)."""
    h.drain()
    data = h.session.data_to_send()
    if not data:
        return None
    (message,) = V2GTPReassembler().feed(data)
    return exi.decode("iso2", message.payload)


def test_certificate_installation_answered_when_the_backend_answers() -> None:
    h = pnc_harness()
    pnc_to_payment_details(h)
    req, signature = installation_request(pki_for())
    h.advance(1)
    assert h.send(req, signature=signature) is None
    (command,) = of_type(h.events, RequestCertificate)
    assert command.kind == CertificateKind.INSTALLATION and command.request == req
    assert command.session_id == h.session_id.hex().upper()
    assert h.session.get_timer() == h.now + 4.5
    # a request while the answer is pending is ignored
    assert h.send(payment_details(pki_for())) is None
    h.advance(2)
    provisioning = LocalProvisioning.from_test_pki(pki_for(), emaids=EmaidGenerator("DE", "SIM"))
    result = provisioning.install(req, T0, signature=signature)
    h.session.handle_event(CertificateResult(body=result.body, signature=result.signature), h.now)
    message = sent(h)
    assert message.Body.CertificateInstallationRes == result.body
    assert message.Header.Signature == result.signature
    assert h.session.get_timer() == h.now + 60
    assert h.session.state is State.WAIT_PAYMENT_DETAILS
    assert last_code(h) == "OK"
    # the session goes on with the new contract's PaymentDetails
    assert h.send(payment_details(pki_for())).ResponseCode == R.OK


def test_certificate_installation_backend_timeout() -> None:
    h = pnc_harness()
    pnc_to_payment_details(h)
    req, signature = installation_request(pki_for())
    assert h.send(req, signature=signature) is None
    deadline = h.session.get_timer()
    assert deadline == h.now + 4.5
    h.session.handle_timer(deadline - 0.001)
    assert sent(h) is None and not h.session.closed
    h.session.handle_timer(deadline)
    message = sent(h)
    assert message.Body.CertificateInstallationRes.ResponseCode == R.FAILED
    assert_closed_with(h, "FAILED")
    # a late answer changes nothing
    h.session.handle_event(CertificateResult(error_code="FAILED"), deadline + 1)
    assert sent(h) is None


def test_certificate_installation_backend_failure_code() -> None:
    h = pnc_harness()
    pnc_to_payment_details(h)
    req, signature = installation_request(pki_for())
    h.send(req, signature=signature)
    h.session.handle_event(CertificateResult(error_code="FAILED_NoCertificateAvailable"), h.now)
    message = sent(h)
    assert message.Body.CertificateInstallationRes.ResponseCode == R.FAILED_NoCertificateAvailable
    assert h.session.closed


def test_a_certificate_result_without_a_request_is_not_kept() -> None:
    h = pnc_harness()
    pnc_to_payment_details(h)
    h.session.handle_event(CertificateResult(error_code="FAILED_NoCertificateAvailable"), h.now)
    assert sent(h) is None
    req, signature = installation_request(pki_for())
    assert h.send(req, signature=signature) is None  # asks the backend, not the stale answer
    assert len(of_type(h.events, RequestCertificate)) == 1
    assert not h.session.closed
