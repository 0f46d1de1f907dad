"""Chain validation: a valid chain per profile and purpose, and one test per defect."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pki import errors
from pki.chain import verify_chain
from pki.create import (
    IssuedCertificate,
    TestPki,
    create_pki,
    generate_key,
    issue,
    replace,
    template_for,
)
from pki.profiles import (
    PROFILES,
    PURPOSE_LEAF,
    KeyAlgorithm,
    KeyUsageBit,
    Purpose,
    Role,
    Standard,
)
from pki.store import TrustStore

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def pkis() -> dict[str, TestPki]:
    """Two independent PKIs per standard (the second one is "someone else's")."""
    return {
        "iso2": create_pki(Standard.ISO2, at=AT),
        "iso2-other": create_pki(Standard.ISO2, at=AT),
        "iso20": create_pki(Standard.ISO20, at=AT),
        "iso20-other": create_pki(Standard.ISO20, at=AT),
        "iso20-ed448": create_pki(Standard.ISO20, at=AT, key_algorithm=KeyAlgorithm.ED448),
    }


# --- the test helper: re-issue one certificate of a PKI with changes -------------------------


def reissue(
    pki: TestPki,
    role: Role,
    *,
    key: KeyAlgorithm | None = None,
    issuer: IssuedCertificate | None = None,
    **changes: object,
) -> x509.Certificate:
    """`role`'s certificate again (same subject key and issuer unless told), with `changes`."""
    std = pki.standard
    p = PROFILES[std][role]
    template = replace(template_for(std, role, at=AT, serial=9999), **changes)
    subject_key = generate_key(key) if key else pki[role].key
    if issuer is None and p.issuer is not None:
        issuer = pki[p.issuer]
    return issue(template, subject_key, issuer, standard=std)


def flip_signature_bit(cert: x509.Certificate) -> x509.Certificate:
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature's last INTEGER: structure intact, value wrong
    return x509.load_der_x509_certificate(bytes(der))


@dataclass(frozen=True)
class Case:
    leaf: x509.Certificate
    sub_cas: list[x509.Certificate]
    store: TrustStore
    purpose: Purpose = Purpose.CONTRACT


def contract(pki: TestPki, **replaced: x509.Certificate) -> Case:
    """The contract chain with some certificates replaced (keys: leaf, sub2, sub1, root)."""
    leaf, sub2, sub1 = pki.chain(Role.CONTRACT)
    root = replaced.get("root", pki[Role.MO_ROOT].certificate)
    return Case(
        replaced.get("leaf", leaf),
        [replaced.get("sub2", sub2), replaced.get("sub1", sub1)],
        TrustStore([root]),
    )


def _verify(case: Case, standard: Standard) -> None:
    verify_chain(
        case.leaf, case.sub_cas, case.store, at=AT, standard=standard, purpose=case.purpose
    )


# --- valid chains ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["iso2", "iso20", "iso20-ed448"])
def test_every_purpose_of_every_profile_validates(pkis: dict[str, TestPki], name: str) -> None:
    pki = pkis[name]
    for purpose, leaf_role in PURPOSE_LEAF[pki.standard].items():
        leaf, *subs = pki.chain(leaf_role)
        result = verify_chain(
            leaf, subs, TrustStore(pki.roots()), at=AT, standard=pki.standard, purpose=purpose
        )
        assert result.leaf == leaf
        assert result.roles[0] is leaf_role
        assert len(result.path) == 4


def test_missing_sub_ca_is_completed_from_the_store(pkis: dict[str, TestPki]) -> None:
    pki = pkis["iso2"]
    leaf, sub2, sub1 = pki.chain(Role.CONTRACT)
    store = TrustStore(pki.roots(), [sub1])
    result = verify_chain(
        leaf, [sub2], store, at=AT, standard=Standard.ISO2, purpose=Purpose.CONTRACT
    )
    assert result.path[2] == sub1


def test_naive_time_is_refused(pkis: dict[str, TestPki]) -> None:
    leaf, *subs = pkis["iso2"].chain(Role.CONTRACT)
    with pytest.raises(ValueError, match="timezone"):
        verify_chain(
            leaf,
            subs,
            TrustStore(pkis["iso2"].roots()),
            at=AT.replace(tzinfo=None),
            standard=Standard.ISO2,
            purpose=Purpose.CONTRACT,
        )


def test_a_purpose_the_standard_lacks_is_misuse(pkis: dict[str, TestPki]) -> None:
    leaf, *subs = pkis["iso2"].chain(Role.CONTRACT)
    with pytest.raises(ValueError, match="no vehicle"):
        verify_chain(
            leaf,
            subs,
            TrustStore(pkis["iso2"].roots()),
            at=AT,
            standard=Standard.ISO2,
            purpose=Purpose.VEHICLE,
        )


# --- bad chains: one defect each ------------------------------------------------------------

Build = Callable[[dict[str, TestPki]], Case]
P2, P20 = "iso2", "iso20"
OLD = {"not_before": AT - 400 * DAY, "not_after": AT - DAY}
CA_BITS = frozenset({KeyUsageBit.KEY_CERT_SIGN, KeyUsageBit.CRL_SIGN})


def _leaf(name: str, **changes: object) -> Build:
    return lambda p: contract(p[name], leaf=reissue(p[name], Role.CONTRACT, **changes))


def _sub(name: str, which: str, role: Role, **changes: object) -> Build:
    return lambda p: contract(p[name], **{which: reissue(p[name], role, **changes)})


def _unknown_root(p: dict[str, TestPki]) -> Case:
    return contract(p[P2], root=p["iso2-other"][Role.MO_ROOT].certificate)


def _wrong_issuer(p: dict[str, TestPki]) -> Case:
    leaf, _, sub1 = p[P2].chain(Role.CONTRACT)
    cpo2 = p[P2][Role.CPO_SUB_CA_2].certificate
    return Case(leaf, [cpo2, sub1], TrustStore(p[P2].roots()))


def _other_pki_sub_ca(p: dict[str, TestPki]) -> Case:
    leaf, _, sub1 = p[P2].chain(Role.CONTRACT)
    other2 = p["iso2-other"][Role.MO_SUB_CA_2].certificate  # same name, another key
    return Case(leaf, [other2, sub1], TrustStore(p[P2].roots()))


def _broken(which: str) -> Build:
    def build(p: dict[str, TestPki]) -> Case:
        leaf, sub2, sub1 = p[P2].chain(Role.CONTRACT)
        certs = {"leaf": leaf, "sub2": sub2, "sub1": sub1}
        return contract(p[P2], **{which: flip_signature_bit(certs[which])})

    return build


def _missing_sub_ca(p: dict[str, TestPki]) -> Case:
    leaf, sub2, _ = p[P2].chain(Role.CONTRACT)
    return Case(leaf, [sub2], TrustStore(p[P2].roots()))


def _too_deep(p: dict[str, TestPki]) -> Case:
    leaf, sub2, sub1 = p[P2].chain(Role.CONTRACT)
    return Case(leaf, [sub2, sub1, sub1], TrustStore(p[P2].roots()))


def _empty_store(p: dict[str, TestPki]) -> Case:
    leaf, *subs = p[P2].chain(Role.CONTRACT)
    return Case(leaf, subs, TrustStore([]))


def _secc_as_contract(p: dict[str, TestPki]) -> Case:
    leaf, *subs = p[P2].chain(Role.SECC)
    return Case(leaf, subs, TrustStore(p[P2].roots()))


def _expired_root(p: dict[str, TestPki]) -> Case:
    return contract(p[P2], root=reissue(p[P2], Role.MO_ROOT, **OLD))


CASES: dict[str, tuple[str, Build, type[errors.PkiError], str]] = {
    "expired leaf": (
        P2,
        _leaf(P2, **OLD),
        errors.CertificateExpiredError,
        "FAILED_CertificateExpired",
    ),
    "expired sub-CA": (
        P2,
        _sub(P2, "sub2", Role.MO_SUB_CA_2, **OLD),
        errors.CertificateExpiredError,
        "FAILED_CertificateExpired",
    ),
    "expired root": (
        P2,
        _expired_root,
        errors.CertificateExpiredError,
        "FAILED_CertificateExpired",
    ),
    "not yet valid": (
        P2,
        _leaf(P2, not_before=AT + DAY, not_after=AT + 9 * DAY),
        errors.CertificateNotYetValidError,
        "FAILED_CertChainError",
    ),
    "unknown root": (P2, _unknown_root, errors.UnknownRootError, "FAILED_CertChainError"),
    "wrong issuer": (P2, _wrong_issuer, errors.WrongIssuerError, "FAILED_CertChainError"),
    "sub-CA of another PKI": (
        P2,
        _other_pki_sub_ca,
        errors.SignatureInvalidError,
        "FAILED_CertChainError",
    ),
    "broken leaf signature": (
        P2,
        _broken("leaf"),
        errors.SignatureInvalidError,
        "FAILED_CertChainError",
    ),
    "broken top sub-CA signature": (
        P2,
        _broken("sub1"),
        errors.SignatureInvalidError,
        "FAILED_CertChainError",
    ),
    "missing sub-CA": (P2, _missing_sub_ca, errors.MissingSubCaError, "FAILED_CertChainError"),
    "too deep": (P2, _too_deep, errors.PathTooDeepError, "FAILED_CertChainError"),
    "pathLen violated": (
        P2,
        _sub(P2, "sub1", Role.MO_SUB_CA_1, path_len=0),
        errors.PathLenViolatedError,
        "FAILED_CertChainError",
    ),
    "CA flag on leaf": (
        P2,
        _leaf(P2, is_ca=True),
        errors.CaFlagOnLeafError,
        "FAILED_CertChainError",
    ),
    "leaf may sign certificates": (
        P2,
        _leaf(P2, key_usage=frozenset({KeyUsageBit.DIGITAL_SIGNATURE, KeyUsageBit.KEY_CERT_SIGN})),
        errors.KeyUsageError,
        "FAILED_CertChainError",
    ),
    "leaf without digitalSignature": (
        P2,
        _leaf(P2, key_usage=frozenset({KeyUsageBit.KEY_AGREEMENT})),
        errors.KeyUsageError,
        "FAILED_CertChainError",
    ),
    "sub-CA without keyCertSign": (
        P2,
        _sub(P2, "sub2", Role.MO_SUB_CA_2, key_usage=frozenset({KeyUsageBit.CRL_SIGN})),
        errors.KeyUsageError,
        "FAILED_CertChainError",
    ),
    "sub-CA without CA flag": (
        P2,
        _sub(P2, "sub2", Role.MO_SUB_CA_2, is_ca=False, path_len=None),
        errors.BasicConstraintsError,
        "FAILED_CertChainError",
    ),
    "sub-CA 1 with wrong pathLen": (
        P2,
        _sub(P2, "sub1", Role.MO_SUB_CA_1, path_len=5),
        errors.BasicConstraintsError,
        "FAILED_CertChainError",
    ),
    "wrong curve": (
        P2,
        _leaf(P2, key=KeyAlgorithm.SECP384R1),
        errors.CurveError,
        "FAILED_CertChainError",
    ),
    "wrong hash": (
        P2,
        _sub(P2, "sub2", Role.MO_SUB_CA_2, hash_algorithm=hashes.SHA384()),
        errors.HashAlgorithmError,
        "FAILED_CertChainError",
    ),
    "oversized": (
        P2,
        _leaf(P2, padding=400),
        errors.CertificateTooLargeError,
        "FAILED_CertChainError",
    ),
    "missing keyUsage": (
        P2,
        _leaf(P2, key_usage_extension=False),
        errors.MissingExtensionError,
        "FAILED_CertChainError",
    ),
    "missing basicConstraints": (
        P2,
        _leaf(P2, basic_constraints=False),
        errors.MissingExtensionError,
        "FAILED_CertChainError",
    ),
    "missing subjectKeyIdentifier": (
        P2,
        _leaf(P2, subject_key_identifier=False),
        errors.MissingExtensionError,
        "FAILED_CertChainError",
    ),
    "extensions not critical": (
        P2,
        _leaf(P2, critical=False),
        errors.ExtensionCriticalityError,
        "FAILED_CertChainError",
    ),
    "wrong DC": (
        P2,
        _leaf(P2, domain_component="CPO"),
        errors.DomainComponentError,
        "FAILED_CertChainError",
    ),
    "missing DC": (
        P2,
        _leaf(P2, domain_component=None),
        errors.DomainComponentError,
        "FAILED_CertChainError",
    ),
    "SECC certificate as contract": (
        P2,
        _secc_as_contract,
        errors.DomainComponentError,
        "FAILED_CertChainError",
    ),
    "empty trust store": (
        P2,
        _empty_store,
        errors.NoCertificateAvailableError,
        "FAILED_NoCertificateAvailable",
    ),
    "ISO-20 expired": (
        P20,
        _leaf(P20, **OLD),
        errors.CertificateExpiredError,
        "WARNING_CertificateExpired",
    ),
    "ISO-20 not yet valid": (
        P20,
        _leaf(P20, not_before=AT + DAY, not_after=AT + 9 * DAY),
        errors.CertificateNotYetValidError,
        "WARNING_CertificateNotYetValid",
    ),
    "ISO-20 P-256 key": (
        P20,
        _leaf(P20, key=KeyAlgorithm.SECP256R1),
        errors.CurveError,
        "WARNING_CertificateValidationError",
    ),
    "ISO-20 SHA-256 signature": (
        P20,
        _sub(P20, "sub2", Role.MO_SUB_CA_2, hash_algorithm=hashes.SHA256()),
        errors.HashAlgorithmError,
        "WARNING_CertificateValidationError",
    ),
    "ISO-20 oversized": (
        P20,
        _leaf(P20, padding=1100),
        errors.CertificateTooLargeError,
        "WARNING_CertificateValidationError",
    ),
    "ISO-20 wrong DC": (
        P20,
        _leaf(P20, domain_component="OEM"),
        errors.DomainComponentError,
        "WARNING_CertificateValidationError",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_chain_is_rejected_with_its_error_and_code(pkis: dict[str, TestPki], name: str) -> None:
    std_name, build, error, code = CASES[name]
    standard = Standard(std_name)
    case = build(pkis)
    with pytest.raises(errors.PkiError) as info:
        _verify(case, standard)
    assert type(info.value) is error, info.value
    assert info.value.response_code_for(standard) == code


def test_at_least_25_distinct_defects() -> None:
    assert len(CASES) >= 25


def test_expires_soon(pkis: dict[str, TestPki]) -> None:
    for name, standard in (("iso2", Standard.ISO2), ("iso20", Standard.ISO20)):
        leaf, *subs = pkis[name].chain(Role.SECC)  # valid 60 days from AT - 1 day
        store = TrustStore(pkis[name].roots())
        result = verify_chain(leaf, subs, store, at=AT, standard=standard, purpose=Purpose.SECC)
        assert result.not_after == AT - DAY + timedelta(days=60)
        assert not result.expires_soon(AT)
        assert result.expires_soon(AT, within=timedelta(days=59))
        later = AT + timedelta(days=50)
        assert result.expires_soon(later) is (standard is Standard.ISO20)  # 14 days: -20 only


def test_a_trusted_root_sent_along_is_ignored(pkis: dict[str, TestPki]) -> None:
    pki = pkis["iso2"]
    leaf, *subs = pki.chain(Role.CONTRACT)
    root = pki[Role.MO_ROOT].certificate
    store = TrustStore(pki.roots())
    result = verify_chain(
        leaf, [*subs, root], store, at=AT, standard=Standard.ISO2, purpose=Purpose.CONTRACT
    )
    assert result.root == root and len(result.path) == 4
    foreign = pkis["iso2-other"][Role.MO_ROOT].certificate  # not trusted: counts, too deep
    with pytest.raises(errors.PathTooDeepError):
        verify_chain(
            leaf,
            [*subs, foreign],
            store,
            at=AT,
            standard=Standard.ISO2,
            purpose=Purpose.CONTRACT,
        )
