"""LocalBackend: allow-lists, wildcard, external ids, durable and idempotent billing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exi_schemas import iso2, xmldsig
from pki.create import create_pki
from pki.errors import NoCertificateAvailableError, PkiError
from pki.profiles import Role, Standard
from pki.xmlsig import SignedMessage, sign
from secc.backend import (
    Backend,
    CertificateInstallationRequest,
    CertificateUpdateRequest,
    LocalBackend,
    load_backend,
    normalise_emaid,
)
from secc.provisioning import EmaidGenerator, LocalProvisioning
from secc.records import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
    IdentificationKind,
    MeterReading,
    StopReason,
)
from secc.store import SessionStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EMAID = "DEABCC123456789"  # any check digit: the backend compares the first 14 characters


def contract(emaid: str | None) -> AuthorizationRequest:
    return AuthorizationRequest(
        session_id="00112233", evse_id="E1", kind=IdentificationKind.CONTRACT, contract_id=emaid
    )


def external(token: str | None) -> AuthorizationRequest:
    return AuthorizationRequest(
        session_id="00112233", evse_id="E1", kind=IdentificationKind.EXTERNAL, id_token=token
    )


def decide(backend: Backend, request: AuthorizationRequest) -> AuthorizationDecision:
    return asyncio.run(backend.authorize(request))


def backend(tmp_path: Path, **options: Any) -> LocalBackend:
    return LocalBackend(store=SessionStore(tmp_path / "secc.sqlite"), **options)


def billing(record_id: str = "rec-1", wh: int = 3000) -> BillingRecord:
    return BillingRecord(
        record_id=record_id,
        session_id="00112233",
        evse_id="E1",
        protocol="iso2",
        kind=IdentificationKind.CONTRACT,
        contract_id=EMAID,
        started_at=T0,
        stopped_at=T0 + timedelta(minutes=30),
        meter_start=MeterReading(meter_id="M", energy_wh=100, at=T0),
        meter_stop=MeterReading(meter_id="M", energy_wh=100 + wh, at=T0 + timedelta(minutes=30)),
        stop_reason=StopReason.EV_STOPPED,
    )


def test_contract_allow_list_in_any_spelling(tmp_path: Path) -> None:
    b = backend(tmp_path, allowed_emaids=["de-abc-c12345678-9", "NLXYZ000000001"])
    assert decide(b, contract(EMAID)).accepted
    assert decide(b, contract("DE-ABC-C12345678")).accepted  # without check digit
    assert decide(b, contract("NLXYZ0000000017")).accepted
    refused = decide(b, contract("FRXYZ1234567892"))
    assert refused.status is AuthorizationStatus.REJECTED and "FRXYZ1234567892" in refused.reason
    assert not decide(b, contract(None)).accepted
    assert not decide(b, external("card-1")).accepted  # no EIM allowed


def test_wildcard_accepts_every_verified_contract(tmp_path: Path) -> None:
    b = backend(tmp_path, allowed_emaids=["*"])
    assert decide(b, contract("FRXYZ1234567892")).accepted
    assert not decide(b, contract(None)).accepted
    assert not decide(b, external("x")).accepted


def test_external_tokens_and_free_charging(tmp_path: Path) -> None:
    b = backend(tmp_path, allowed_id_tokens=["04A1B2C3", " card-7 "])
    assert decide(b, external("04A1B2C3")).accepted
    assert decide(b, external("card-7")).accepted
    assert not decide(b, external("other")).accepted
    assert not decide(b, external(None)).accepted
    assert not decide(b, contract(EMAID)).accepted
    anyone = backend(tmp_path, allowed_id_tokens=["*"])
    assert decide(anyone, external("whatever")).accepted
    assert not decide(anyone, external(None)).accepted
    free = backend(tmp_path, free_charging=True)
    assert decide(free, external(None)).accepted
    assert not decide(free, contract(EMAID)).accepted  # free EIM does not open PnC


def test_session_ended_stores_durably_and_idempotently(tmp_path: Path) -> None:
    path = tmp_path / "secc.sqlite"
    b = LocalBackend(store=path)  # a path is enough (from configuration)
    asyncio.run(b.session_ended(billing()))
    asyncio.run(b.session_ended(billing()))  # handed over again after a crash
    b.store.close()
    reopened = SessionStore(path)
    assert reopened.billing_records() == [billing()]
    assert len(reopened.pending_outbox(datetime.now(UTC))) == 1
    assert reopened.billing_record("rec-1") is not None
    assert reopened.billing_record("rec-1").energy_wh == 3000  # type: ignore[union-attr]


def test_certificates_are_refused_without_provisioning(tmp_path: Path) -> None:
    b = backend(tmp_path)
    req = CertificateInstallationRequest(
        session_id="00",
        evse_id="E1",
        body=iso2.CertificateInstallationReqType(
            Id="ID1",
            OEMProvisioningCert=b"",
            ListOfRootCertificateIDs=iso2.ListOfRootCertificateIDsType(
                RootCertificateID=[
                    xmldsig.X509IssuerSerialType(X509IssuerName="CN=x", X509SerialNumber=1)
                ]
            ),
        ),
    )
    with pytest.raises(NoCertificateAvailableError) as caught:
        asyncio.run(b.certificate_installation(req))
    assert caught.value.response_code == "FAILED_NoCertificateAvailable"


def test_certificates_come_from_the_local_provisioning(tmp_path: Path) -> None:
    pki = create_pki(Standard.ISO2, at=T0)
    service = LocalProvisioning.from_test_pki(pki, emaids=EmaidGenerator(start=1), clock=lambda: T0)
    b = backend(tmp_path, allowed_emaids=["*"], provisioning=service)
    oem = pki[Role.OEM_PROVISIONING]
    assert isinstance(oem.key, ec.EllipticCurvePrivateKey)
    body = iso2.CertificateInstallationReqType(
        Id="ID1",
        OEMProvisioningCert=oem.certificate.public_bytes(serialization.Encoding.DER),
        ListOfRootCertificateIDs=iso2.ListOfRootCertificateIDsType(
            RootCertificateID=[
                xmldsig.X509IssuerSerialType(X509IssuerName="CN=V2G", X509SerialNumber=1)
            ]
        ),
    )
    signature = sign(
        [("ID1", body)], oem.key, message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_REQ
    )
    request = CertificateInstallationRequest(
        session_id="00", evse_id="E1", body=body, signature=signature
    )
    result = asyncio.run(b.certificate_installation(request))
    assert result.body.ResponseCode is iso2.responseCodeType.OK
    assert result.emaid.startswith("DESIMC")
    # the update with the new contract's chain, signed by a key that is not the contract's
    update = CertificateUpdateRequest(
        session_id="00",
        evse_id="E1",
        body=iso2.CertificateUpdateReqType(
            Id="U1",
            ContractSignatureCertChain=iso2.CertificateChainType(
                Certificate=result.body.ContractSignatureCertChain.Certificate,
                SubCertificates=result.body.ContractSignatureCertChain.SubCertificates,
            ),
            eMAID=result.emaid,
            ListOfRootCertificateIDs=body.ListOfRootCertificateIDs,
        ),
        signature=None,
    )
    renewed = asyncio.run(b.certificate_update(update))
    assert renewed.emaid == result.emaid
    forged = CertificateUpdateRequest(
        session_id="00",
        evse_id="E1",
        body=update.body,
        signature=sign(
            [("U1", update.body)], oem.key, message=SignedMessage.ISO2_CERTIFICATE_UPDATE_REQ
        ),
    )
    with pytest.raises(PkiError) as caught:
        asyncio.run(b.certificate_update(forged))
    assert caught.value.response_code == "FAILED_SignatureError"


def test_normalise_emaid() -> None:
    assert normalise_emaid("de-abc-c12345678-9") == EMAID
    assert normalise_emaid(" DE ABC C12345678 ") == "DEABCC12345678"
    assert normalise_emaid("not-an-emaid") == "NOTANEMAID"


def test_load_backend(tmp_path: Path) -> None:
    b = load_backend(
        "secc.backend:LocalBackend", store=str(tmp_path / "db"), allowed_id_tokens=["A"]
    )
    assert isinstance(b, LocalBackend)
    assert decide(b, external("A")).accepted
    with pytest.raises(ValueError):
        load_backend("secc.backend")
    with pytest.raises(ValueError):
        load_backend("secc.store:SessionStore")
    with pytest.raises(ValueError):
        load_backend("no_such_module_here:X")
