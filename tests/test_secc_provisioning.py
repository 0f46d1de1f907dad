"""Local certificate provisioning (ISO 15118-2): the EV side must be able to use what it gets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from exi_schemas import iso2, xmldsig
from iso15118 import exi
from pki import errors
from pki.chain import verify_chain
from pki.create import TestPki, create_pki
from pki.emaid import emaid_from_certificate, parse_emaid
from pki.keywrap import WrappedKey, unwrap_iso2
from pki.profiles import Purpose, Role, Standard
from pki.store import TrustStore
from pki.xmlsig import SignatureError, SignedMessage, sign, verify
from secc.provisioning import (
    PART_IDS,
    EmaidGenerator,
    LocalProvisioning,
    ProvisioningResult,
    signed_parts,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
#: OCPP 2.0.1 Get15118EVCertificate carries the response as base64 of at most 5500 characters
OCPP_EXI_RESPONSE_MAX = 5500


@cache
def pki() -> TestPki:
    return create_pki(Standard.ISO2, at=NOW)


@cache
def foreign_pki() -> TestPki:
    return create_pki(Standard.ISO2, at=NOW)


def provisioning(**options: Any) -> LocalProvisioning:
    return LocalProvisioning.from_test_pki(
        pki(), emaids=EmaidGenerator("DE", "SIM", start=42), **options
    )


def der(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.DER)


def root_ids() -> iso2.ListOfRootCertificateIDsType:
    root = pki()[Role.V2G_ROOT].certificate
    return iso2.ListOfRootCertificateIDsType(
        RootCertificateID=[
            xmldsig.X509IssuerSerialType(
                X509IssuerName=root.issuer.rfc4514_string(), X509SerialNumber=root.serial_number
            )
        ]
    )


def installation_req(
    source: TestPki | None = None,
) -> tuple[iso2.CertificateInstallationReqType, xmldsig.SignatureType]:
    oem = (source or pki())[Role.OEM_PROVISIONING]
    req = iso2.CertificateInstallationReqType(
        Id="ID1", OEMProvisioningCert=der(oem.certificate), ListOfRootCertificateIDs=root_ids()
    )
    key = oem.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = sign([("ID1", req)], key, message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_REQ)
    return req, signature


def contract_of(
    result: ProvisioningResult[iso2.CertificateInstallationResType]
    | ProvisioningResult[iso2.CertificateUpdateResType],
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    chain = result.body.ContractSignatureCertChain
    subs = chain.SubCertificates.Certificate if chain.SubCertificates else []
    return (
        x509.load_der_x509_certificate(chain.Certificate),
        [x509.load_der_x509_certificate(c) for c in subs],
    )


def unwrap(
    result: ProvisioningResult[iso2.CertificateInstallationResType]
    | ProvisioningResult[iso2.CertificateUpdateResType],
    key: object,
) -> ec.EllipticCurvePrivateKey:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    leaf, _ = contract_of(result)
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    wrapped = WrappedKey(
        result.body.DHpublickey.value, result.body.ContractSignatureEncryptedPrivateKey.value
    )
    return unwrap_iso2(wrapped, key, contract_public_key=public)


# --- installation ---------------------------------------------------------------------------


def test_the_ev_unwraps_a_key_matching_the_new_contract_certificate() -> None:
    req, signature = installation_req()
    result = provisioning().install(req, NOW, signature=signature)
    assert result.body.ResponseCode is iso2.responseCodeType.OK
    key = unwrap(result, pki()[Role.OEM_PROVISIONING].key)
    leaf, _ = contract_of(result)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    assert leaf == result.contract_certificate


def test_the_response_signature_verifies_with_the_sa_provisioning_key() -> None:
    req, _ = installation_req()
    result = provisioning().install(req, NOW)
    parts = signed_parts(result.body)
    assert sorted(parts) == sorted(PART_IDS.values()) == ["id1", "id2", "id3", "id4"]
    cps = pki()[Role.CPS].certificate.public_key()
    assert isinstance(cps, ec.EllipticCurvePublicKey)
    verify(result.signature, parts, cps, message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES)
    # the SA provisioning chain the EV gets leads to the V2G root (Purpose.CPS)
    sa = result.body.SAProvisioningCertificateChain
    assert sa.SubCertificates is not None
    verify_chain(
        x509.load_der_x509_certificate(sa.Certificate),
        [x509.load_der_x509_certificate(c) for c in sa.SubCertificates.Certificate],
        TrustStore([pki()[Role.V2G_ROOT].certificate]),
        at=NOW,
        standard=Standard.ISO2,
        purpose=Purpose.CPS,
    )
    # any change to a signed part breaks it
    result.body.eMAID.value = "DESIMC00000000X"
    with pytest.raises(SignatureError):
        verify(
            result.signature,
            signed_parts(result.body),
            cps,
            message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES,
        )


def test_the_new_contract_chain_verifies_against_the_mo_root() -> None:
    req, _ = installation_req()
    result = provisioning().install(req, NOW)
    leaf, subs = contract_of(result)
    chain = verify_chain(
        leaf,
        subs,
        TrustStore([pki()[Role.MO_ROOT].certificate]),
        at=NOW,
        standard=Standard.ISO2,
        purpose=Purpose.CONTRACT,
    )
    assert chain.roles[0] is Role.CONTRACT
    emaid = emaid_from_certificate(leaf)  # with a valid check digit
    assert emaid.normalised == result.body.eMAID.value == result.emaid
    assert parse_emaid(result.emaid).normalised.startswith("DESIMC")
    # the contract never outlives MO Sub-CA 2
    assert leaf.not_valid_after_utc <= pki()[Role.MO_SUB_CA_2].certificate.not_valid_after_utc


def test_each_installation_gets_a_new_emaid_and_key() -> None:
    service = provisioning()
    req, _ = installation_req()
    a, b = service.install(req, NOW), service.install(req, NOW)
    assert a.emaid != b.emaid
    assert contract_of(a)[0].public_key() != contract_of(b)[0].public_key()


def test_the_whole_message_encodes_within_the_size_limits() -> None:
    req, _ = installation_req()
    result = provisioning().install(req, NOW)
    message = iso2.V2G_Message(
        Header=iso2.MessageHeaderType(SessionID=bytes(8), Signature=result.signature),
        Body=iso2.BodyType(CertificateInstallationRes=result.body),
    )
    data = exi.encode("iso2", message)  # strict: every facet of the schema holds
    assert len(base64.b64encode(data)) <= OCPP_EXI_RESPONSE_MAX
    for chain in (
        result.body.ContractSignatureCertChain,
        result.body.SAProvisioningCertificateChain,
    ):
        assert len(chain.Certificate) <= 800
        assert chain.SubCertificates is not None and len(chain.SubCertificates.Certificate) == 2
    # the EV decodes it and checks the header signature over the decoded parts
    decoded = exi.decode("iso2", data)
    body = decoded.Body.CertificateInstallationRes
    assert body == result.body
    cps = pki()[Role.CPS].certificate.public_key()
    assert isinstance(cps, ec.EllipticCurvePublicKey)
    verify(
        decoded.Header.Signature,
        signed_parts(body),
        cps,
        message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES,
    )


def test_a_foreign_oem_chain_is_refused() -> None:
    req, signature = installation_req(foreign_pki())
    with pytest.raises(errors.ChainError) as caught:
        provisioning().install(req, NOW, signature=signature)
    assert caught.value.response_code == "FAILED_CertChainError"
    # a relaying charger may leave the check to the CPS
    result = provisioning(verify_requests=False).install(req, NOW)
    unwrap(result, foreign_pki()[Role.OEM_PROVISIONING].key)


def test_an_expired_oem_certificate_and_a_bad_request_signature_are_refused() -> None:
    req, signature = installation_req()
    with pytest.raises(errors.CertificateExpiredError) as caught:
        provisioning().install(req, NOW + timedelta(days=5000))
    assert caught.value.response_code == "FAILED_CertificateExpired"
    forged = installation_req(foreign_pki())[1]  # signed by another key
    with pytest.raises(SignatureError) as bad:
        provisioning().install(req, NOW, signature=forged)
    assert bad.value.response_code == "FAILED_SignatureError"
    garbage = iso2.CertificateInstallationReqType(
        Id="ID1", OEMProvisioningCert=b"\x30\x03abc", ListOfRootCertificateIDs=root_ids()
    )
    with pytest.raises(errors.ChainError):
        provisioning().install(garbage, NOW)
    assert signature is not None


def test_the_injected_clock_is_used_without_at() -> None:
    req, _ = installation_req()
    with pytest.raises(errors.CertificateExpiredError):
        provisioning(clock=lambda: NOW + timedelta(days=5000)).install(req)


# --- update ---------------------------------------------------------------------------------


def installed() -> tuple[
    ProvisioningResult[iso2.CertificateInstallationResType], ec.EllipticCurvePrivateKey
]:
    req, _ = installation_req()
    result = provisioning().install(req, NOW)
    return result, unwrap(result, pki()[Role.OEM_PROVISIONING].key)


def update_req(
    result: ProvisioningResult[iso2.CertificateInstallationResType],
    key: ec.EllipticCurvePrivateKey,
    emaid: str | None = None,
) -> tuple[iso2.CertificateUpdateReqType, xmldsig.SignatureType]:
    chain = result.body.ContractSignatureCertChain
    req = iso2.CertificateUpdateReqType(
        Id="U1",
        ContractSignatureCertChain=iso2.CertificateChainType(
            Certificate=chain.Certificate, SubCertificates=chain.SubCertificates
        ),
        eMAID=emaid or result.emaid,
        ListOfRootCertificateIDs=root_ids(),
    )
    signature = sign([("U1", req)], key, message=SignedMessage.ISO2_CERTIFICATE_UPDATE_REQ)
    return req, signature


def test_update_keeps_the_emaid_and_wraps_for_the_old_contract_key() -> None:
    old, old_key = installed()
    req, signature = update_req(old, old_key)
    later = NOW + timedelta(days=30)
    result = provisioning().update(req, later, signature=signature)
    assert isinstance(result.body, iso2.CertificateUpdateResType)
    assert result.emaid == old.emaid
    new_key = unwrap(result, old_key)
    leaf, subs = contract_of(result)
    assert leaf.serial_number != contract_of(old)[0].serial_number
    assert new_key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    verify_chain(
        leaf,
        subs,
        TrustStore([pki()[Role.MO_ROOT].certificate]),
        at=later,
        standard=Standard.ISO2,
        purpose=Purpose.CONTRACT,
    )
    cps = pki()[Role.CPS].certificate.public_key()
    assert isinstance(cps, ec.EllipticCurvePublicKey)
    verify(
        result.signature,
        signed_parts(result.body),
        cps,
        message=SignedMessage.ISO2_CERTIFICATE_INSTALLATION_RES,
    )
    message = iso2.V2G_Message(
        Header=iso2.MessageHeaderType(SessionID=bytes(8), Signature=result.signature),
        Body=iso2.BodyType(CertificateUpdateRes=result.body),
    )
    assert exi.decode("iso2", exi.encode("iso2", message)).Body.CertificateUpdateRes == result.body


def test_update_refuses_a_wrong_emaid_a_foreign_chain_and_a_bad_signature() -> None:
    old, old_key = installed()
    req, _ = update_req(old, old_key, emaid="DEXYZC123456787")
    with pytest.raises(errors.EmaidMismatchError):
        provisioning().update(req, NOW)
    foreign = LocalProvisioning.from_test_pki(foreign_pki())
    other, _ = installation_req(foreign_pki())
    foreign_result = foreign.install(other, NOW)
    foreign_key = unwrap(foreign_result, foreign_pki()[Role.OEM_PROVISIONING].key)
    req, signature = update_req(foreign_result, foreign_key)
    with pytest.raises(errors.ChainError):
        provisioning().update(req, NOW, signature=signature)
    req, _ = update_req(old, old_key)
    with pytest.raises(SignatureError):
        provisioning().update(req, NOW, signature=signature)


def test_emaid_generator_is_deterministic_with_valid_check_digits() -> None:
    gen = EmaidGenerator("NL", "ABC", prefix="X", start=35)
    first, second = gen(), gen()
    assert first[:14] == "NLABCX0000000Z" and len(first) == 15
    assert second[:14] == "NLABCX00000010"
    for value in (first, second):
        assert parse_emaid(value).normalised == value
    assert EmaidGenerator("NL", "ABC", prefix="X", start=35)() == first
    with pytest.raises(ValueError):
        EmaidGenerator("NLD", "ABC")
