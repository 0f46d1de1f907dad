"""CRLs: distribution points, verification (listed, stale, wrong issuer), cache, policy, and the
combined OCSP-else-CRL check in chain validation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pki import errors
from pki.chain import verify_chain
from pki.create import IssuedCertificate, TestPki, create_pki, issue, replace, template_for
from pki.crl import CrlChecker, crl_urls, make_crl, verify_crl
from pki.lint import check_profile
from pki.ocsp import CertStatus, NoAnswerPolicy, make_response
from pki.profiles import KeyAlgorithm, Purpose, Role, Standard
from pki.revocation import CombinedChecker
from pki.store import TrustStore

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
BASE = "http://crl.test/"
CRL_URLS = {  # each certificate points at its issuer's CRL
    Role.CONTRACT: BASE + "mo-sub-ca-2.crl",
    Role.MO_SUB_CA_2: BASE + "mo-sub-ca-1.crl",
    Role.MO_SUB_CA_1: BASE + "mo-root.crl",
}
ISSUER_OF_URL = {
    BASE + "mo-sub-ca-2.crl": Role.MO_SUB_CA_2,
    BASE + "mo-sub-ca-1.crl": Role.MO_SUB_CA_1,
    BASE + "mo-root.crl": Role.MO_ROOT,
}
OCSP_URL = "http://ocsp.test/mo"


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return create_pki(Standard.ISO2, at=AT, crl_url=CRL_URLS)


@pytest.fixture(scope="module")
def other() -> TestPki:
    """Same names, other keys, no distribution points."""
    return create_pki(Standard.ISO2, at=AT)


def _pair(pki: TestPki) -> tuple[x509.Certificate, x509.Certificate]:
    return pki[Role.CONTRACT].certificate, pki[Role.MO_SUB_CA_2].certificate


def _crl(
    signer: IssuedCertificate,
    revoked: dict[int, datetime] | None = None,
    *,
    this_update: datetime = AT - HOUR,
    next_update: datetime = AT + HOUR,
) -> bytes:
    return make_crl(signer, revoked=revoked or {}, this_update=this_update, next_update=next_update)


def _server(pki: TestPki, revoked: dict[int, datetime] | None = None) -> Callable[[str], bytes]:
    """A fetcher that serves every CA's CRL of `pki`, fresh at AT."""
    return lambda url: _crl(pki[ISSUER_OF_URL[url]], revoked)


def _unreachable(url: str) -> bytes:
    raise OSError("connection refused")


def test_distribution_points(pki: TestPki, other: TestPki) -> None:
    assert crl_urls(pki[Role.CONTRACT].certificate) == (BASE + "mo-sub-ca-2.crl",)
    assert crl_urls(pki[Role.MO_ROOT].certificate) == ()
    assert crl_urls(pki[Role.SECC].certificate) == ()  # not in the per-role table
    assert crl_urls(other[Role.CONTRACT].certificate) == ()
    both = create_pki(Standard.ISO2, at=AT, crl_url=BASE + "all.crl", ocsp_url=OCSP_URL)
    assert crl_urls(both[Role.SECC].certificate) == (BASE + "all.crl",)
    assert crl_urls(both[Role.V2G_ROOT].certificate) == ()  # a single URL skips the roots
    for role, issued in both.certificates.items():  # the extensions keep every profile
        assert check_profile(issued.certificate, Standard.ISO2, role) == [], role


def test_points_for_some_reasons_or_another_issuer_are_not_used(pki: TestPki) -> None:
    uri = [x509.UniformResourceIdentifier(BASE + "x.crl")]
    partial = x509.DistributionPoint(uri, None, frozenset({x509.ReasonFlags.key_compromise}), None)
    indirect = x509.DistributionPoint(uri, None, None, [x509.DirectoryName(x509.Name([]))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(pki[Role.CONTRACT].key.public_key())
        .serial_number(9)
        .not_valid_before(AT)
        .not_valid_after(AT + HOUR)
        .add_extension(x509.CRLDistributionPoints([partial, indirect]), critical=False)
        .sign(pki[Role.MO_SUB_CA_2].key, hashes.SHA256())
    )
    assert crl_urls(cert) == ()


def test_listed_and_not_listed(pki: TestPki) -> None:
    cert, issuer = _pair(pki)
    answer = verify_crl(_crl(pki[Role.MO_SUB_CA_2], {cert.serial_number + 100: AT}), issuer, at=AT)
    assert answer.revocation_time(cert.serial_number) is None
    assert answer.valid_until == AT + HOUR
    checker = CrlChecker(_server(pki), NoAnswerPolicy.REJECT)
    assert checker.check(cert, issuer, at=AT).status is CertStatus.GOOD
    revoked = CrlChecker(_server(pki, {cert.serial_number: AT - 2 * HOUR}), NoAnswerPolicy.REJECT)
    with pytest.raises(errors.CertificateRevokedError, match="listed in the CRL") as info:
        revoked.check(cert, issuer, at=AT)
    assert info.value.response_code == "FAILED_CertificateRevoked"
    assert info.value.response_code_for(Standard.ISO20) == "WARNING_CertificateRevoked"


@pytest.mark.parametrize(
    ("this_update", "next_update"),
    [(AT - 3 * HOUR, AT - HOUR), (AT + 2 * HOUR, AT + 3 * HOUR)],
    ids=["past nextUpdate", "thisUpdate in the future"],
)
def test_stale(pki: TestPki, this_update: datetime, next_update: datetime) -> None:
    cert, issuer = _pair(pki)
    der = _crl(pki[Role.MO_SUB_CA_2], this_update=this_update, next_update=next_update)
    with pytest.raises(errors.CrlStaleError) as info:
        CrlChecker(lambda url: der, NoAnswerPolicy.ACCEPT_WITH_WARNING).check(cert, issuer, at=AT)
    assert isinstance(info.value, errors.RevocationError)
    assert info.value.response_code == "FAILED_CertChainError"
    assert info.value.iso20_response_code == "WARNING_CertificateValidationError"


def test_crl_of_another_ca_is_rejected(pki: TestPki, other: TestPki) -> None:
    cert, issuer = _pair(pki)
    lenient = NoAnswerPolicy.ACCEPT_WITH_WARNING  # a wrong CRL is never "no answer"
    namesake = _crl(other[Role.MO_SUB_CA_2])  # same issuer name, another key
    with pytest.raises(errors.CrlSignatureError):
        CrlChecker(lambda url: namesake, lenient).check(cert, issuer, at=AT)
    sibling = _crl(pki[Role.MO_SUB_CA_1])  # a CA of the same PKI, but not the issuer
    with pytest.raises(errors.CrlIssuerError):
        CrlChecker(lambda url: sibling, lenient).check(cert, issuer, at=AT)
    with pytest.raises(errors.CrlUnavailableError, match="not a DER CRL"):
        CrlChecker(lambda url: b"\x30\x00", lenient).check(cert, issuer, at=AT)


def test_issuer_without_crl_sign(pki: TestPki) -> None:
    issuer = pki[Role.MO_SUB_CA_2]
    t = template_for(Standard.ISO2, Role.MO_SUB_CA_2, at=AT, serial=77)
    t = replace(t, key_usage=frozenset(b for b in t.key_usage if b.value != "crl_sign"))
    no_crl_sign = issue(t, issuer.key, pki[Role.MO_SUB_CA_1], standard=Standard.ISO2)
    with pytest.raises(errors.CrlIssuerError, match="cRLSign"):
        verify_crl(_crl(issuer), no_crl_sign, at=AT)


def test_no_answer_policy(pki: TestPki, other: TestPki) -> None:
    cert, issuer = _pair(pki)
    with pytest.raises(errors.CrlUnavailableError, match="unreachable") as info:
        CrlChecker(_unreachable, NoAnswerPolicy.REJECT).check(cert, issuer, at=AT)
    assert isinstance(info.value, errors.RevocationUnavailableError)
    lenient = CrlChecker(_unreachable, NoAnswerPolicy.ACCEPT_WITH_WARNING)
    result = lenient.check(cert, issuer, at=AT)
    assert result.status is None and result.warning and "unreachable" in result.warning
    no_point, no_point_issuer = _pair(other)
    result = lenient.check(no_point, no_point_issuer, at=AT)
    assert result.warning == "the certificate names no CRL distribution point"
    with pytest.raises(errors.CrlUnavailableError, match="no CRL distribution point"):
        CrlChecker(_server(pki), NoAnswerPolicy.REJECT).check(no_point, no_point_issuer, at=AT)


def test_cache_until_next_update(pki: TestPki) -> None:
    cert, issuer = _pair(pki)
    calls: list[datetime] = []

    def fetch(url: str) -> bytes:  # a CRL every hour from AT - 30 min, each valid one hour
        published = AT - HOUR / 2 + len(calls) * HOUR
        calls.append(published)
        return _crl(pki[Role.MO_SUB_CA_2], this_update=published, next_update=published + HOUR)

    checker = CrlChecker(fetch, NoAnswerPolicy.REJECT)
    assert checker.check(cert, issuer, at=AT).from_cache is False
    assert checker.check(cert, issuer, at=AT + HOUR / 4).from_cache is True
    assert len(calls) == 1 and len(checker.cache) == 1
    result = checker.check(cert, issuer, at=AT + 3 * HOUR / 4)  # past nextUpdate: fetch again
    assert result.status is CertStatus.GOOD and result.from_cache is False
    assert len(calls) == 2
    assert checker.check(cert, issuer, at=AT + HOUR).from_cache is True
    assert len(calls) == 2


def test_second_point_when_the_first_is_unreachable(pki: TestPki) -> None:
    cert, issuer = _pair(pki)
    t = replace(
        template_for(Standard.ISO2, Role.CONTRACT, at=AT, serial=50), crl_url=BASE + "down.crl"
    )
    leaf = issue(t, pki[Role.CONTRACT].key, pki[Role.MO_SUB_CA_2], standard=Standard.ISO2)
    assert crl_urls(leaf) == (BASE + "down.crl",)

    def fetch(url: str) -> bytes:
        if url == BASE + "down.crl":
            raise TimeoutError("timed out")
        return _crl(pki[Role.MO_SUB_CA_2])

    checker = CrlChecker(fetch, NoAnswerPolicy.REJECT)
    with pytest.raises(errors.CrlUnavailableError, match="timed out"):
        checker.check(leaf, issuer, at=AT)
    assert checker.check(cert, issuer, at=AT).status is CertStatus.GOOD


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.SECP521R1, KeyAlgorithm.ED448])
def test_iso20_keys(algorithm: KeyAlgorithm) -> None:
    pki = create_pki(Standard.ISO20, at=AT, key_algorithm=algorithm, crl_url=CRL_URLS)
    cert, issuer = _pair(pki)
    der = _crl(pki[Role.MO_SUB_CA_2], {cert.serial_number: AT - HOUR})
    assert verify_crl(der, issuer, at=AT).revocation_time(cert.serial_number) == AT - HOUR


# --- OCSP, else CRL, else policy --------------------------------------------------------------


def _ocsp_good(pki: TestPki, calls: list[str]) -> Callable[[str, bytes], bytes]:
    def fetch(url: str, request: bytes) -> bytes:
        calls.append(url)
        cert, issuer = _pair(pki)
        return make_response(
            cert,
            issuer,
            pki[Role.MO_SUB_CA_2],
            status=CertStatus.GOOD,
            this_update=AT - HOUR,
            next_update=AT + HOUR,
        )

    return fetch


def test_combined_prefers_ocsp_then_crl_then_policy(pki: TestPki, other: TestPki) -> None:
    both = create_pki(Standard.ISO2, at=AT, ocsp_url=OCSP_URL, crl_url=CRL_URLS)
    ocsp_calls: list[str] = []
    crl_calls: list[str] = []

    def crl_fetch(url: str) -> bytes:
        crl_calls.append(url)
        return _server(pki)(url)

    def checker(source: TestPki, policy: NoAnswerPolicy) -> CombinedChecker:
        ocsp_fetch = _ocsp_good(source, ocsp_calls)
        return CombinedChecker.create(policy, ocsp_fetch=ocsp_fetch, crl_fetch=crl_fetch)

    assert checker(both, NoAnswerPolicy.REJECT).check(*_pair(both), at=AT).status is CertStatus.GOOD
    assert ocsp_calls == [OCSP_URL] and crl_calls == []
    assert checker(pki, NoAnswerPolicy.REJECT).check(*_pair(pki), at=AT).status is CertStatus.GOOD
    assert crl_calls == [CRL_URLS[Role.CONTRACT]]
    with pytest.raises(errors.RevocationUnavailableError, match="no OCSP responder nor CRL"):
        checker(other, NoAnswerPolicy.REJECT).check(*_pair(other), at=AT)
    result = checker(other, NoAnswerPolicy.ACCEPT_WITH_WARNING).check(*_pair(other), at=AT)
    assert (
        result.status is None and result.warning and "no revocation information" in result.warning
    )
    ocsp_only = CombinedChecker.create(NoAnswerPolicy.REJECT, ocsp_fetch=_ocsp_good(pki, []))
    with pytest.raises(errors.RevocationUnavailableError, match=r"names no OCSP responder$"):
        ocsp_only.check(*_pair(pki), at=AT)  # a distribution point, but CRLs are off


def test_chain_validation_with_crls(pki: TestPki) -> None:
    leaf, *subs = pki.chain(Role.CONTRACT)
    store = TrustStore(pki.roots())

    def verify(revoked: dict[int, datetime]) -> None:
        checker = CombinedChecker.create(NoAnswerPolicy.REJECT, crl_fetch=_server(pki, revoked))
        verify_chain(
            leaf,
            subs,
            store,
            at=AT,
            standard=Standard.ISO2,
            purpose=Purpose.CONTRACT,
            revocation=checker,
        )

    verify({})
    with pytest.raises(errors.CertificateRevokedError):
        verify({leaf.serial_number: AT - HOUR})
    with pytest.raises(errors.CertificateRevokedError) as info:
        verify({subs[0].serial_number: AT - HOUR})  # the sub-CA 2, listed in sub-CA 1's CRL
    assert info.value.subject == subs[0].subject.rfc4514_string()
