"""OCSP: request, answer verification (revoked, stale, unauthorised, nonce), cache, policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from pki import errors
from pki.create import IssuedCertificate, TestPki, create_pki
from pki.ocsp import (
    CertStatus,
    NoAnswerPolicy,
    RevocationChecker,
    build_request,
    make_response,
    ocsp_url,
    verify_response,
)
from pki.profiles import Role, Standard

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
URL = "http://ocsp.test/mo"


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return create_pki(Standard.ISO2, at=AT, ocsp_url=URL)


@pytest.fixture(scope="module")
def other() -> TestPki:
    return create_pki(Standard.ISO2, at=AT)


def _pair(pki: TestPki) -> tuple[x509.Certificate, x509.Certificate]:
    return pki[Role.CONTRACT].certificate, pki[Role.MO_SUB_CA_2].certificate


def _answer(
    pki: TestPki,
    status: CertStatus = CertStatus.GOOD,
    *,
    responder: IssuedCertificate | None = None,
    this_update: datetime = AT - HOUR,
    next_update: datetime | None = AT + HOUR,
    nonce: bytes | None = None,
) -> bytes:
    cert, issuer = _pair(pki)
    return make_response(
        cert,
        issuer,
        responder or pki[Role.MO_SUB_CA_2],
        status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=AT - 2 * HOUR if status is CertStatus.REVOKED else None,
        nonce=nonce,
    )


def test_request_names_the_certificate(pki: TestPki) -> None:
    cert, issuer = _pair(pki)
    request = ocsp.load_der_ocsp_request(build_request(cert, issuer, nonce=b"n" * 16))
    assert request.serial_number == cert.serial_number
    assert request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
    assert ocsp_url(cert) == URL


def test_good_from_issuer_and_from_delegated_signer(pki: TestPki) -> None:
    cert, issuer = _pair(pki)
    for responder in (pki[Role.MO_SUB_CA_2], pki[Role.OCSP_SIGNER]):
        answer = verify_response(_answer(pki, responder=responder), cert, issuer, at=AT)
        assert answer.status is CertStatus.GOOD
        assert answer.valid_until == AT + HOUR


def test_revoked(pki: TestPki) -> None:
    cert, issuer = _pair(pki)
    answer = verify_response(_answer(pki, CertStatus.REVOKED), cert, issuer, at=AT)
    assert answer.status is CertStatus.REVOKED
    checker = RevocationChecker(
        lambda url, req: _answer(pki, CertStatus.REVOKED), NoAnswerPolicy.REJECT
    )
    with pytest.raises(errors.CertificateRevokedError) as info:
        checker.check(cert, issuer, at=AT)
    assert info.value.response_code == "FAILED_CertificateRevoked"
    assert info.value.response_code_for(Standard.ISO20) == "WARNING_CertificateRevoked"


@pytest.mark.parametrize(
    ("this_update", "next_update"),
    [(AT - 3 * HOUR, AT - HOUR), (AT + 2 * HOUR, AT + 3 * HOUR), (AT - timedelta(days=8), None)],
    ids=["past nextUpdate", "thisUpdate in the future", "no nextUpdate, too old"],
)
def test_stale(pki: TestPki, this_update: datetime, next_update: datetime | None) -> None:
    cert, issuer = _pair(pki)
    der = _answer(pki, this_update=this_update, next_update=next_update)
    with pytest.raises(errors.OcspStaleError):
        verify_response(der, cert, issuer, at=AT)


def test_unauthorised_responders(pki: TestPki, other: TestPki) -> None:
    cert, issuer = _pair(pki)
    for responder in (
        pki[Role.SECC],  # issued elsewhere, no OCSPSigning
        pki[Role.CONTRACT],  # issued by the issuer, but no OCSPSigning
        other[Role.OCSP_SIGNER],  # a signer of another PKI
        other[Role.MO_SUB_CA_2],  # the issuer's namesake
    ):
        with pytest.raises(errors.OcspUnauthorisedResponderError):
            verify_response(_answer(pki, responder=responder), cert, issuer, at=AT)


def test_nonce(pki: TestPki) -> None:
    cert, issuer = _pair(pki)
    good = _answer(pki, nonce=b"a" * 16)
    assert verify_response(good, cert, issuer, at=AT, nonce=b"a" * 16).status is CertStatus.GOOD
    with pytest.raises(errors.OcspNonceError):
        verify_response(good, cert, issuer, at=AT, nonce=b"b" * 16)
    with pytest.raises(errors.OcspNonceError):
        verify_response(_answer(pki), cert, issuer, at=AT, nonce=b"a" * 16, require_nonce=True)


def test_answer_about_another_certificate_and_garbage(pki: TestPki) -> None:
    _, issuer = _pair(pki)
    with pytest.raises(errors.OcspUnavailableError):
        verify_response(_answer(pki), pki[Role.OCSP_SIGNER].certificate, issuer, at=AT)
    with pytest.raises(errors.OcspUnavailableError):
        verify_response(b"\x30\x00", pki[Role.CONTRACT].certificate, issuer, at=AT)


def test_cache_until_next_update(pki: TestPki) -> None:
    cert, issuer = _pair(pki)
    calls: list[str] = []

    def fetch(url: str, request: bytes) -> bytes:
        calls.append(url)
        return _answer(pki)

    checker = RevocationChecker(fetch, NoAnswerPolicy.REJECT, nonce=None)
    assert checker.check(cert, issuer, at=AT).from_cache is False
    assert checker.check(cert, issuer, at=AT + HOUR / 2).from_cache is True
    assert calls == [URL]
    with pytest.raises(errors.OcspStaleError):  # cache expired; the responder's answer is old
        checker.check(cert, issuer, at=AT + 2 * HOUR)
    assert len(calls) == 2


def test_no_answer_policy(pki: TestPki, other: TestPki) -> None:
    cert, issuer = _pair(pki)

    def unreachable(url: str, request: bytes) -> bytes:
        raise OSError("connection refused")

    with pytest.raises(errors.OcspUnavailableError, match="unreachable"):
        RevocationChecker(unreachable, NoAnswerPolicy.REJECT).check(cert, issuer, at=AT)
    lenient = RevocationChecker(unreachable, NoAnswerPolicy.ACCEPT_WITH_WARNING)
    result = lenient.check(cert, issuer, at=AT)
    assert result.status is None and result.warning and "unreachable" in result.warning
    no_url, no_url_issuer = other[Role.CONTRACT].certificate, other[Role.MO_SUB_CA_2].certificate
    result = lenient.check(no_url, no_url_issuer, at=AT)
    assert result.warning == "the certificate names no OCSP responder"
    unknown = RevocationChecker(
        lambda u, r: _answer(pki, CertStatus.UNKNOWN), NoAnswerPolicy.REJECT
    )
    with pytest.raises(errors.OcspUnavailableError, match="does not know"):
        unknown.check(cert, issuer, at=AT)


def test_chain_validation_with_revocation(pki: TestPki) -> None:
    from pki.chain import verify_chain
    from pki.profiles import Purpose
    from pki.store import TrustStore

    leaf, *subs = pki.chain(Role.CONTRACT)
    store = TrustStore(pki.roots())

    def fetch(url: str, request: bytes) -> bytes:
        req = ocsp.load_der_ocsp_request(request)
        revoked = req.serial_number == leaf.serial_number
        cert = leaf if revoked else next(c for c in subs if c.serial_number == req.serial_number)
        issuer = pki[Role.MO_SUB_CA_2] if revoked else None
        if issuer is None:
            issuer = pki[Role.MO_SUB_CA_1] if cert == subs[0] else pki[Role.MO_ROOT]
        return make_response(
            cert,
            issuer.certificate,
            issuer,
            status=CertStatus.REVOKED if revoked else CertStatus.GOOD,
            this_update=AT - HOUR,
            next_update=AT + HOUR,
            revocation_time=AT - HOUR,
        )

    checker = RevocationChecker(fetch, NoAnswerPolicy.REJECT)
    with pytest.raises(errors.CertificateRevokedError):
        verify_chain(
            leaf,
            subs,
            store,
            at=AT,
            standard=Standard.ISO2,
            purpose=Purpose.CONTRACT,
            revocation=checker,
        )
    lenient = RevocationChecker(lambda u, r: b"", NoAnswerPolicy.ACCEPT_WITH_WARNING)
    with pytest.raises(errors.OcspUnavailableError):  # garbage is not "no answer"
        verify_chain(
            leaf,
            subs,
            store,
            at=AT,
            standard=Standard.ISO2,
            purpose=Purpose.CONTRACT,
            revocation=lenient,
        )
