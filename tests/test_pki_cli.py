"""`iso15118 pki create | verify-contract | lint`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from iso15118.cli import main
from pki.create import create_pki, issue, replace, template_for
from pki.emaid import emaid_from_certificate
from pki.profiles import Role, Standard


@pytest.fixture(scope="module", params=["iso2", "iso20"])
def pki_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(request.param)
    started = time.perf_counter()
    assert (
        main(["pki", "create", "--out", str(out), "--profile", request.param, "--password", "pw"])
        == 0
    )
    assert time.perf_counter() - started < 5  # "in seconds"
    return out


def _verify(
    pki_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str, chain: Path | None = None
) -> tuple[int, dict[str, object]]:
    code = main(
        [
            "pki",
            "verify-contract",
            "--trust",
            str(pki_dir / "trust"),
            "--chain",
            str(chain or pki_dir / "chains/contract.pem"),
            *extra,
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def test_create_writes_everything(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (pki_dir / "README.txt").is_file()
    assert (pki_dir / "certs/contract.pem").is_file()
    assert b"ENCRYPTED" in (pki_dir / "keys/contract.key.pem").read_bytes()


def test_verify_contract_ok(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verify(pki_dir, capsys)
    assert code == 0 and out["ok"] is True
    assert isinstance(out["emaid"], str) and len(out["emaid"]) == 15
    code, out = _verify(pki_dir, capsys, "--emaid", str(out["emaid"]).lower())
    assert code == 0


def test_verify_contract_emaid_mismatch(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verify(pki_dir, capsys, "--emaid", "DE83DUIEN83QGZD")
    assert code == 1 and out["ok"] is False
    assert out["error"] == "EmaidMismatchError"
    assert out["response_code"] in ("FAILED_CertChainError", "WARNING_CertificateValidationError")


def test_verify_contract_expired(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    later = (datetime.now(UTC) + timedelta(days=3000)).strftime("%Y-%m-%dT%H:%M:%S")
    code, out = _verify(pki_dir, capsys, "--at", later)
    assert code == 1
    assert out["response_code"] in ("FAILED_CertificateExpired", "WARNING_CertificateExpired")
    assert "expired" in str(out["reason"])


def test_verify_contract_der_chain_and_wrong_chain(
    pki_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from pki.store import load_certificates

    chain = load_certificates((pki_dir / "chains/contract.pem").read_bytes())
    der = tmp_path / "chain.der"
    der.write_bytes(b"".join(c.public_bytes(Encoding.DER) for c in chain))
    assert _verify(pki_dir, capsys, chain=der)[0] == 0
    code, out = _verify(pki_dir, capsys, chain=pki_dir / "chains/secc.pem")
    assert code == 1 and out["error"] == "DomainComponentError"


def test_verify_contract_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "pki",
                "verify-contract",
                "--trust",
                str(tmp_path),
                "--chain",
                str(tmp_path / "missing.pem"),
            ]
        )
        == 2
    )
    assert "cannot read" in capsys.readouterr().err
    assert main(["pki", "verify-contract", "--trust", str(tmp_path / "nope"), "--chain", "x"]) == 2
    assert (
        main(
            [
                "pki",
                "verify-contract",
                "--trust",
                str(tmp_path),
                "--chain",
                "x",
                "--at",
                "yesterday",
            ]
        )
        == 2
    )


def test_lint_clean(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for role in ("contract", "secc", "v2g-root", "mo-sub-ca-1", "ocsp-signer"):
        assert main(["pki", "lint", str(pki_dir / f"certs/{role}.pem")]) == 0, role
    out = capsys.readouterr().out
    assert "finding" not in out and ": ok" in out


def test_lint_reports_every_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    at = datetime.now(UTC)
    pki = create_pki(Standard.ISO2, at=at)
    t = replace(
        template_for(Standard.ISO2, Role.CONTRACT, at=at, serial=3),
        is_ca=True,
        subject_key_identifier=False,
        domain_component="XX",
        padding=500,
    )
    cert = issue(t, pki[Role.CONTRACT].key, pki[Role.MO_SUB_CA_2], standard=Standard.ISO2)
    path = tmp_path / "bad.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    assert main(["pki", "lint", str(path), "--role", "contract"]) == 1
    out = capsys.readouterr().out
    for name in (
        "CertificateTooLargeError",
        "MissingExtensionError",
        "CaFlagOnLeafError",
        "DomainComponentError",
    ):
        assert name in out
    assert main(["pki", "lint", str(path), "--profile", "iso2", "--role", "vehicle"]) == 2


def test_contract_emaid_is_valid(pki_dir: Path) -> None:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((pki_dir / "certs/contract.pem").read_bytes())
    assert emaid_from_certificate(cert).check is not None


def test_verify_contract_reports_expiry(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verify(pki_dir, capsys)
    assert code == 0 and out["expires_soon"] is False
    assert datetime.fromisoformat(str(out["not_after"])) > datetime.now(UTC)


def test_expiring(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trust = str(pki_dir / "trust")
    assert main(["pki", "expiring", "--trust", trust, "--days", "30"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["pki", "expiring", "--trust", trust, "--days", "4000"]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 3  # the three roots
    assert main(["pki", "expiring", "--trust", str(pki_dir / "nope")]) == 2
