"""The test-PKI generator: every certificate passes the lint and the chain validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.chain import verify_chain
from pki.create import TestPki, create_pki, write_pki
from pki.lint import check_profile, guess_role, guess_standard, key_algorithm
from pki.profiles import PROFILES, PURPOSE_LEAF, STANDARDS, KeyAlgorithm, Role, Standard
from pki.store import TrustStore, load_certificates

AT = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=["iso2", "iso20", "iso20-ed448"])
def pki(request: pytest.FixtureRequest) -> TestPki:
    if request.param == "iso20-ed448":
        return create_pki(Standard.ISO20, at=AT, key_algorithm=KeyAlgorithm.ED448)
    return create_pki(Standard(request.param), at=AT)


def test_every_role_is_issued(pki: TestPki) -> None:
    assert set(pki.certificates) == set(PROFILES[pki.standard])


def test_every_certificate_passes_the_lint(pki: TestPki) -> None:
    for role, issued in pki.certificates.items():
        assert check_profile(issued.certificate, pki.standard, role) == [], role
        assert key_algorithm(issued.certificate) in STANDARDS[pki.standard].key_algorithms


def test_every_chain_validates(pki: TestPki) -> None:
    store = TrustStore(pki.roots())
    for purpose, leaf in PURPOSE_LEAF[pki.standard].items():
        first, *subs = pki.chain(leaf)
        verify_chain(first, subs, store, at=AT, standard=pki.standard, purpose=purpose)


def test_ocsp_signer_is_issued_by_its_ca(pki: TestPki) -> None:
    signer = pki[Role.OCSP_SIGNER].certificate
    signer.verify_directly_issued_by(pki[Role.MO_SUB_CA_2].certificate)
    assert guess_role(signer, pki.standard) is Role.OCSP_SIGNER


def test_lint_guesses_standard_and_leaf_roles(pki: TestPki) -> None:
    for role in (Role.SECC, Role.CONTRACT, Role.CPS):
        cert = pki[role].certificate
        assert guess_standard(cert) is pki.standard
        assert guess_role(cert, pki.standard) is role


def test_iso2_refuses_a_p521_pki() -> None:
    with pytest.raises(ValueError, match="does not use"):
        create_pki(Standard.ISO2, at=AT, key_algorithm=KeyAlgorithm.SECP521R1)


def test_write_pki(tmp_path: Path) -> None:
    pki = create_pki(Standard.ISO2, at=AT)
    written = write_pki(pki, tmp_path, password=b"secret")
    readme = (tmp_path / "README.txt").read_text()
    assert "contract" in readme and "encrypted" in readme
    for role in PROFILES[Standard.ISO2]:
        cert = x509.load_pem_x509_certificate((tmp_path / f"certs/{role.value}.pem").read_bytes())
        assert cert == pki[role].certificate
        key_pem = (tmp_path / f"keys/{role.value}.key.pem").read_bytes()
        assert b"ENCRYPTED" in key_pem
        key = serialization.load_pem_private_key(key_pem, b"secret")
        assert key.public_key() == cert.public_key()
    chain = load_certificates((tmp_path / "chains/contract.pem").read_bytes())
    assert chain == pki.chain(Role.CONTRACT)
    store = TrustStore.from_directory(tmp_path / "trust")
    assert len(store.roots) == 3 and not store.intermediates
    assert len(written) == len(set(written))


def test_write_pki_without_password(tmp_path: Path) -> None:
    write_pki(create_pki(Standard.ISO20, at=AT), tmp_path)
    key_pem = (tmp_path / "keys/secc.key.pem").read_bytes()
    serialization.load_pem_private_key(key_pem, None)
