"""Plug & Charge on the EV side: signed AuthorizationReq and MeteringReceiptReq, contract
certificate installation, and the signature faults."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from test_evcc_scripted import (
    DC_ISO2,
    ScriptedSecc,
    finished,
    iso2_defaults,
    make_session,
    pump,
    sent,
)

from evcc.config import EvccConfig, Payment, PncCredentials
from evcc.events import ContractInstalled, ContractUpdated
from evcc.faults import BadSignature, WrongGenChallenge
from exi_schemas import iso2
from iso15118 import exi
from iso15118.sap import AppProtocol
from pki.create import TestPki, create_pki
from pki.keywrap import wrap_iso2
from pki.profiles import Role, Standard
from pki.xmlsig import SignatureError, SignedMessage, sign, verify
from secc.provisioning import LocalProvisioning, signed_parts

BODY = "urn:iso:15118:2:2013:MsgBody"
CHALLENGE = bytes(range(100, 116))


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return create_pki(Standard.ISO2, at=datetime(2025, 1, 1, tzinfo=UTC))


def _der(pki: TestPki, role: Role) -> bytes:
    return pki[role].certificate.public_bytes(Encoding.DER)


def _public(pki: TestPki, role: Role) -> ec.EllipticCurvePublicKey:
    key = pki[role].certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _key(pki: TestPki, role: Role) -> ec.EllipticCurvePrivateKey:
    key = pki[role].key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _chain(pki: TestPki, leaf: Role) -> tuple[bytes, ...]:
    return tuple(c.public_bytes(Encoding.DER) for c in pki.chain(leaf))


def pnc_config(pki: TestPki, *, install: bool = False, faults: tuple[Any, ...] = ()) -> EvccConfig:
    key = _key(pki, Role.CONTRACT)
    credentials = PncCredentials(
        contract_chain=() if install else _chain(pki, Role.CONTRACT),
        contract_key=None if install else key,
        oem_provisioning_cert=_der(pki, Role.OEM_PROVISIONING),
        oem_provisioning_key=_key(pki, Role.OEM_PROVISIONING),
        root_certificates=(_der(pki, Role.V2G_ROOT),),
        install_certificate=install,
    )
    return dataclasses.replace(
        DC_ISO2, payment=Payment.PNC, pnc=credentials, max_charge_loops=2, tls=True, faults=faults
    )


def pnc_script(pki: TestPki, *, sa_role: Role = Role.CPS) -> dict[str, Any]:
    def details(r: Any, n: int) -> Any:
        return iso2.PaymentDetailsResType(
            ResponseCode=iso2.responseCodeType.OK, GenChallenge=CHALLENGE, EVSETimeStamp=0
        )

    def demand(r: Any, n: int) -> Any:
        answer = iso2_defaults("Contract")["CurrentDemandReq"](r, n)
        answer.MeterInfo = iso2.MeterInfoType(MeterID="M1", MeterReading=5000)
        answer.ReceiptRequired = n == 1
        return answer

    def install(r: Any, n: int) -> Any:
        wrapped = wrap_iso2(
            _key(pki, Role.CONTRACT),
            _public(pki, Role.OEM_PROVISIONING),
        )
        leaf, *subs = _chain(pki, Role.CONTRACT)
        chain = iso2.CertificateChainType(
            Id="id1", Certificate=leaf, SubCertificates=iso2.SubCertificatesType(Certificate=subs)
        )
        key = iso2.ContractSignatureEncryptedPrivateKeyType(
            Id="id2", value=wrapped.encrypted_private_key
        )
        dh = iso2.DiffieHellmanPublickeyType(Id="id3", value=wrapped.dh_public_key)
        emaid = iso2.EMAIDType(Id="id4", value="DEXYZC123456789")
        parts = [
            ("id1", exi.Element(BODY, "ContractSignatureCertChain", chain)),
            ("id2", exi.Element(BODY, "ContractSignatureEncryptedPrivateKey", key)),
            ("id3", exi.Element(BODY, "DHpublickey", dh)),
            ("id4", exi.Element(BODY, "eMAID", emaid)),
        ]
        signature = sign(
            parts,
            pki[sa_role].key,
            message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES,
        )
        response = iso2.CertificateInstallationResType(
            ResponseCode=iso2.responseCodeType.OK,
            SAProvisioningCertificateChain=iso2.CertificateChainType(
                Certificate=_der(pki, Role.CPS)
            ),
            ContractSignatureCertChain=chain,
            ContractSignatureEncryptedPrivateKey=key,
            DHpublickey=dh,
            eMAID=emaid,
        )
        return response, signature

    script = iso2_defaults("Contract")
    script.update(
        {
            "PaymentDetailsReq": details,
            "CurrentDemandReq": demand,
            "CertificateInstallationReq": install,
        }
    )
    return script


def _signed(secc: ScriptedSecc, name: str) -> tuple[Any, Any]:
    message = next(m for m in secc.requests if getattr(m.Body, name) is not None)
    return message, getattr(message.Body, name)


def test_pnc_with_a_contract(pki: TestPki) -> None:
    secc = ScriptedSecc(AppProtocol.ISO2, pnc_script(pki))
    events, _ = pump(make_session(pnc_config(pki)), secc)
    assert finished(events).ok
    assert sent(events)[3:6] == [
        "PaymentServiceSelectionReq",
        "PaymentDetailsReq",
        "AuthorizationReq",
    ]
    _, details = _signed(secc, "PaymentDetailsReq")
    assert details.eMAID == "DEXYZC123456787"  # the test contract certificate's CN
    assert details.ContractSignatureCertChain.Certificate == _der(pki, Role.CONTRACT)
    public = _public(pki, Role.CONTRACT)
    message, auth = _signed(secc, "AuthorizationReq")
    assert auth.GenChallenge == CHALLENGE
    verify(
        message.Header.Signature,
        {auth.Id: auth},
        public,
        message=SignedMessage.ISO2_AUTHORIZATION_REQ,
    )
    message, receipt = _signed(secc, "MeteringReceiptReq")
    assert receipt.MeterInfo.MeterReading == 5000
    verify(
        message.Header.Signature,
        {receipt.Id: receipt},
        public,
        message=SignedMessage.ISO2_METERING_RECEIPT_REQ,
    )


def test_certificate_installation(pki: TestPki) -> None:
    secc = ScriptedSecc(AppProtocol.ISO2, pnc_script(pki))
    events, _ = pump(make_session(pnc_config(pki, install=True)), secc)
    assert finished(events).ok
    assert sent(events)[4:7] == [
        "CertificateInstallationReq",
        "PaymentDetailsReq",
        "AuthorizationReq",
    ]
    assert ContractInstalled("DEXYZC123456789") in events
    _, selection = _signed(secc, "PaymentServiceSelectionReq")
    assert [
        (s.ServiceID, s.ParameterSetID) for s in selection.SelectedServiceList.SelectedService
    ] == [(1, None), (2, 1)]
    message, request = _signed(secc, "CertificateInstallationReq")
    oem = _public(pki, Role.OEM_PROVISIONING)
    verify(
        message.Header.Signature,
        {request.Id: request},
        oem,
        message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_REQ,
    )
    root = request.ListOfRootCertificateIDs.RootCertificateID[0]
    assert root.X509SerialNumber == pki[Role.V2G_ROOT].certificate.serial_number
    _, details = _signed(secc, "PaymentDetailsReq")
    assert details.eMAID == "DEXYZC123456789"
    message, auth = _signed(secc, "AuthorizationReq")
    public = _public(pki, Role.CONTRACT)
    verify(
        message.Header.Signature,
        {auth.Id: auth},
        public,
        message=SignedMessage.ISO2_AUTHORIZATION_REQ,
    )


def test_installation_signed_by_the_wrong_key_is_rejected(pki: TestPki) -> None:
    secc = ScriptedSecc(AppProtocol.ISO2, pnc_script(pki, sa_role=Role.SECC))
    events, _ = pump(make_session(pnc_config(pki, install=True)), secc)
    end = finished(events)
    assert not end.ok and end.reason.startswith("CertificateInstallationRes rejected")
    assert sent(events)[-1] == "CertificateInstallationReq"


def test_bad_signature_fault(pki: TestPki) -> None:
    secc = ScriptedSecc(AppProtocol.ISO2, pnc_script(pki))
    pump(make_session(pnc_config(pki, faults=(BadSignature(bit=3),))), secc)
    message, auth = _signed(secc, "AuthorizationReq")
    public = _public(pki, Role.CONTRACT)
    with pytest.raises(SignatureError):
        verify(
            message.Header.Signature,
            {auth.Id: auth},
            public,
            message=SignedMessage.ISO2_AUTHORIZATION_REQ,
        )


def test_wrong_gen_challenge_fault(pki: TestPki) -> None:
    secc = ScriptedSecc(AppProtocol.ISO2, pnc_script(pki))
    pump(make_session(pnc_config(pki, faults=(WrongGenChallenge(),))), secc)
    message, auth = _signed(secc, "AuthorizationReq")
    assert auth.GenChallenge == bytes(16)
    public = _public(pki, Role.CONTRACT)
    verify(
        message.Header.Signature,
        {auth.Id: auth},
        public,
        message=SignedMessage.ISO2_AUTHORIZATION_REQ,
    )


def test_pnc_config_needs_credentials(pki: TestPki) -> None:
    with pytest.raises(ValueError, match="PncCredentials"):
        EvccConfig(payment=Payment.PNC)
    with pytest.raises(ValueError, match="OEM provisioning"):
        PncCredentials(install_certificate=True)
    with pytest.raises(ValueError, match="together"):
        PncCredentials(contract_chain=_chain(pki, Role.CONTRACT))
    with pytest.raises(ValueError, match="eMAID"):
        PncCredentials(contract_chain=(b"garbage",), contract_key=_key(pki, Role.CONTRACT))
    # any chain is accepted when the eMAID is given (expired / foreign chains on purpose)
    PncCredentials(
        contract_chain=(b"garbage",), contract_key=_key(pki, Role.CONTRACT), emaid="DEXYZC123456789"
    )


# --------------------------------------------------------------------------- CertificateUpdate


def update_script(pki: TestPki, *, sa_role: Role = Role.CPS) -> dict[str, Any]:
    """The PnC script with a CertificateUpdateRes from the local provisioning service (a new
    contract certificate for the same eMAID, its key wrapped for the old contract key)."""
    provisioning = LocalProvisioning.from_test_pki(pki)

    def update(r: Any, n: int) -> Any:
        result = provisioning.update(r, at=datetime(2025, 1, 1, tzinfo=UTC))
        if sa_role is Role.CPS:
            return result.body, result.signature
        forged = sign(
            list(signed_parts(result.body).items()),
            pki[sa_role].key,
            message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES,
        )
        return result.body, forged

    script = pnc_script(pki)
    script["CertificateUpdateReq"] = update
    return script


def update_config(pki: TestPki, **options: Any) -> EvccConfig:
    config = pnc_config(pki)
    assert config.pnc is not None
    return dataclasses.replace(config, pnc=dataclasses.replace(config.pnc, **options))


def test_certificate_update(pki: TestPki) -> None:
    secc = ScriptedSecc(AppProtocol.ISO2, update_script(pki))
    events, _ = pump(make_session(update_config(pki, update_certificate=True)), secc)
    assert finished(events).ok
    assert sent(events)[3:7] == [
        "PaymentServiceSelectionReq",
        "CertificateUpdateReq",
        "PaymentDetailsReq",
        "AuthorizationReq",
    ]
    _, selection = _signed(secc, "PaymentServiceSelectionReq")
    assert [
        (s.ServiceID, s.ParameterSetID) for s in selection.SelectedServiceList.SelectedService
    ] == [(1, None), (2, 2)]
    # the request: the present contract, signed with the present contract key
    old_chain = _chain(pki, Role.CONTRACT)
    message, request = _signed(secc, "CertificateUpdateReq")
    verify(
        message.Header.Signature,
        {request.Id: request},
        _public(pki, Role.CONTRACT),
        message=SignedMessage.ISO2_CERTIFICATE_UPDATE_REQ,
    )
    sent_chain = request.ContractSignatureCertChain
    assert (sent_chain.Certificate, *sent_chain.SubCertificates.Certificate) == old_chain
    assert request.eMAID == update_config(pki).pnc.contract_emaid()  # type: ignore[union-attr]
    root = request.ListOfRootCertificateIDs.RootCertificateID[0]
    assert root.X509SerialNumber == pki[Role.V2G_ROOT].certificate.serial_number
    # the new contract: a new certificate and key, used from PaymentDetails on
    (updated,) = [e for e in events if isinstance(e, ContractUpdated)]
    assert updated.contract_key is not None
    assert updated.contract_chain[0] != old_chain[0]
    new_leaf = x509.load_der_x509_certificate(updated.contract_chain[0])
    assert new_leaf.public_key().public_numbers() == (
        updated.contract_key.public_key().public_numbers()
    )
    assert updated.emaid.replace("-", "")[:14] == request.eMAID.replace("-", "")[:14]
    _, details = _signed(secc, "PaymentDetailsReq")
    assert details.ContractSignatureCertChain.Certificate == updated.contract_chain[0]
    assert details.eMAID == updated.emaid
    message, auth = _signed(secc, "AuthorizationReq")
    verify(
        message.Header.Signature,
        {auth.Id: auth},
        updated.contract_key.public_key(),
        message=SignedMessage.ISO2_AUTHORIZATION_REQ,
    )


def test_update_when_the_contract_is_about_to_expire(pki: TestPki) -> None:
    expires = pki[Role.CONTRACT].certificate.not_valid_after_utc
    left = expires - datetime(2025, 1, 1, tzinfo=UTC)  # the session's clock
    for within, updates in ((left + timedelta(days=1), True), (left - timedelta(days=1), False)):
        secc = ScriptedSecc(AppProtocol.ISO2, update_script(pki))
        events, _ = pump(make_session(update_config(pki, update_within=within)), secc)
        assert finished(events).ok
        assert ("CertificateUpdateReq" in sent(events)) is updates
        _, selection = _signed(secc, "PaymentServiceSelectionReq")
        services = [s.ServiceID for s in selection.SelectedServiceList.SelectedService]
        assert services == ([1, 2] if updates else [1])


def test_update_signed_by_the_wrong_key_is_rejected(pki: TestPki) -> None:
    secc = ScriptedSecc(AppProtocol.ISO2, update_script(pki, sa_role=Role.SECC))
    events, _ = pump(make_session(update_config(pki, update_certificate=True)), secc)
    end = finished(events)
    assert not end.ok and end.reason.startswith("CertificateUpdateRes rejected")
    assert sent(events)[-1] == "CertificateUpdateReq"
    assert not any(isinstance(e, ContractUpdated) for e in events)


def test_update_wrapped_for_another_key_is_rejected(pki: TestPki) -> None:
    """The CPS wrapped the new key for the OEM provisioning key, not the car's contract key."""
    script = update_script(pki)
    install = script["CertificateInstallationReq"]

    def update(r: Any, n: int) -> Any:
        body, signature = install(r, n)
        return iso2.CertificateUpdateResType(
            ResponseCode=body.ResponseCode,
            SAProvisioningCertificateChain=body.SAProvisioningCertificateChain,
            ContractSignatureCertChain=body.ContractSignatureCertChain,
            ContractSignatureEncryptedPrivateKey=body.ContractSignatureEncryptedPrivateKey,
            DHpublickey=body.DHpublickey,
            eMAID=body.eMAID,
        ), signature

    script["CertificateUpdateReq"] = update
    secc = ScriptedSecc(AppProtocol.ISO2, script)
    events, _ = pump(make_session(update_config(pki, update_certificate=True)), secc)
    end = finished(events)
    assert not end.ok and end.reason.startswith("CertificateUpdateRes rejected")


def test_no_update_without_the_certificate_service(pki: TestPki) -> None:
    """A charger that offers no ContractCertificate service: the car keeps its contract."""
    script = update_script(pki)
    discovery = script["ServiceDiscoveryReq"]

    def no_services(r: Any, n: int) -> Any:
        answer = discovery(r, n)
        answer.ServiceList = None
        return answer

    script["ServiceDiscoveryReq"] = no_services
    secc = ScriptedSecc(AppProtocol.ISO2, script)
    events, _ = pump(make_session(update_config(pki, update_certificate=True)), secc)
    assert finished(events).ok
    assert "CertificateUpdateReq" not in sent(events)
    _, details = _signed(secc, "PaymentDetailsReq")
    assert details.ContractSignatureCertChain.Certificate == _chain(pki, Role.CONTRACT)[0]


def test_update_config_needs_a_contract(pki: TestPki) -> None:
    with pytest.raises(ValueError, match="updating a contract needs"):
        PncCredentials(update_certificate=True, root_certificates=(_der(pki, Role.V2G_ROOT),))
    with pytest.raises(ValueError, match="updating a contract needs"):
        PncCredentials(
            contract_chain=_chain(pki, Role.CONTRACT),
            contract_key=_key(pki, Role.CONTRACT),
            update_within=timedelta(days=30),
        )
