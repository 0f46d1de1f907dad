"""`iso15118 pki verify-contract --revocation off|ocsp|full`, against a local HTTP server that
serves generated CRLs (GET) and OCSP answers (POST)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from iso15118.cli import main
from pki.commands import http_fetch_crl, http_fetch_ocsp
from pki.create import TestPki, create_pki, write_pki
from pki.crl import make_crl
from pki.ocsp import CertStatus, make_response
from pki.profiles import PROFILES, Role, Standard

AT = datetime.now(UTC).replace(microsecond=0)
HOUR = timedelta(hours=1)
CRL_ROLES = (Role.CONTRACT, Role.MO_SUB_CA_2, Role.MO_SUB_CA_1)  # each names its issuer's CRL


@dataclass
class Backend:
    """What the server answers; set by each test."""

    pkis: list[TestPki] = field(default_factory=list)
    revoked: set[int] = field(default_factory=set)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def crl(self, path: str) -> bytes | None:
        """/crl/INDEX/ROLE.crl: the CRL of that CA of `pkis[INDEX]`."""
        index, _, name = path.removeprefix("/crl/").partition("/")
        try:
            issuer = self.pkis[int(index)][Role(name.removesuffix(".crl"))]
        except (ValueError, IndexError, KeyError):
            return None
        revoked = dict.fromkeys(self.revoked, AT - 2 * HOUR)
        return make_crl(
            issuer,
            revoked=revoked,
            this_update=AT - HOUR,
            next_update=AT + HOUR,
        )

    def ocsp(self, body: bytes) -> bytes:
        """The responder of `pkis[1]`, answering for the certificates of a contract chain."""
        request = ocsp.load_der_ocsp_request(body)
        pki = self.pkis[1]
        role = next(
            r for r in CRL_ROLES if pki[r].certificate.serial_number == request.serial_number
        )
        issuer_role = PROFILES[pki.standard][role].issuer
        assert issuer_role is not None
        issuer = pki[issuer_role]
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        status = CertStatus.REVOKED if request.serial_number in self.revoked else CertStatus.GOOD
        return make_response(
            pki[role].certificate,
            issuer.certificate,
            issuer,
            status=status,
            this_update=AT - HOUR,
            next_update=AT + HOUR,
            revocation_time=AT - 2 * HOUR,
            nonce=nonce,
        )


def _handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            backend.requests.append(("GET", self.path, None))
            self._send(backend.crl(self.path))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            backend.requests.append(("POST", self.path, self.headers["Content-Type"]))
            self._send(backend.ocsp(body))

        def _send(self, body: bytes | None) -> None:
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Backend]]:
    backend = Backend()
    httpd = HTTPServer(("127.0.0.1", 0), _handler(backend))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", backend
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class Pkis:
    crl: Path  # distribution points, no OCSP URL
    ocsp: Path  # OCSP URLs, no distribution point
    bare: Path  # neither
    down: Path  # distribution points on a port nobody listens on


@pytest.fixture(scope="module")
def pkis(server: tuple[str, Backend], tmp_path_factory: pytest.TempPathFactory) -> Pkis:
    base, backend = server
    dead = f"http://127.0.0.1:{_closed_port()}"

    def crl_urls(root: str, index: int) -> dict[Role, str]:
        issuers = {role: PROFILES[Standard.ISO2][role].issuer for role in CRL_ROLES}
        return {r: f"{root}/crl/{index}/{i.value}.crl" for r, i in issuers.items() if i}

    made = [
        create_pki(Standard.ISO2, at=AT, crl_url=crl_urls(base, 0)),
        create_pki(Standard.ISO2, at=AT, ocsp_url=f"{base}/ocsp"),
        create_pki(Standard.ISO2, at=AT),
        create_pki(Standard.ISO2, at=AT, crl_url=crl_urls(dead, 3)),
    ]
    backend.pkis[:] = made
    dirs = [tmp_path_factory.mktemp(name) for name in ("crl", "ocsp", "bare", "down")]
    for pki, directory in zip(made, dirs, strict=True):
        write_pki(pki, directory)
    return Pkis(*dirs)


@pytest.fixture
def backend(server: tuple[str, Backend]) -> Iterator[Backend]:
    server[1].revoked.clear()
    server[1].requests.clear()
    yield server[1]


def _verify(
    pki_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, object]]:
    argv = ["pki", "verify-contract", "--trust", str(pki_dir / "trust")]
    argv += ["--chain", str(pki_dir / "chains/contract.pem"), "--at", AT.isoformat(), *extra]
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def _serial(pki_dir: Path, role: Role) -> int:
    pem = (pki_dir / f"certs/{role.value}.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def test_off_by_default(pkis: Pkis, backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verify(pkis.crl, capsys)
    assert code == 0 and out["revocation"] == "off"
    assert backend.requests == []


def test_full_fetches_every_crl_by_get(
    pkis: Pkis, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _verify(pkis.crl, capsys, "--revocation", "full")
    assert (code, out["ok"], out["revocation"], out["revocation_warnings"]) == (0, True, "good", [])
    paths = ["/crl/0/mo-sub-ca-2.crl", "/crl/0/mo-sub-ca-1.crl", "/crl/0/mo-root.crl"]
    assert backend.requests == [("GET", path, None) for path in paths]


def test_full_revoked_by_crl(
    pkis: Pkis, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    backend.revoked.add(_serial(pkis.crl, Role.CONTRACT))
    code, out = _verify(pkis.crl, capsys, "--revocation", "full")
    assert code == 1 and out["ok"] is False
    assert out["response_code"] == "FAILED_CertificateRevoked"
    assert out["error"] == "CertificateRevokedError" and out["revocation"] == "revoked"


def test_ocsp_by_post(pkis: Pkis, backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    for mode in ("ocsp", "full"):
        code, out = _verify(pkis.ocsp, capsys, "--revocation", mode)
        assert code == 0 and out["revocation"] == "good"
    assert len(backend.requests) == 6
    assert set(backend.requests) == {("POST", "/ocsp", "application/ocsp-request")}
    backend.revoked.add(_serial(pkis.ocsp, Role.MO_SUB_CA_2))
    code, out = _verify(pkis.ocsp, capsys, "--revocation", "ocsp")
    assert code == 1 and out["revocation"] == "revoked"


def test_no_revocation_info(
    pkis: Pkis, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _verify(pkis.crl, capsys, "--revocation", "ocsp")  # CRLs only in `full`
    assert code == 0 and out["revocation"] == "unknown"
    warnings = out["revocation_warnings"]
    assert isinstance(warnings, list) and len(warnings) == 3
    assert "names no OCSP responder" in warnings[0]
    code, out = _verify(pkis.bare, capsys, "--revocation", "full", "--no-revocation-info", "reject")
    assert code == 1 and out["revocation"] == "unavailable"
    assert out["error"] == "RevocationUnavailableError"
    assert out["response_code"] == "FAILED_CertChainError"
    assert backend.requests == []


def test_unreachable(pkis: Pkis, backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verify(pkis.down, capsys, "--revocation", "full")
    assert code == 0 and out["revocation"] == "unknown"
    assert "unreachable" in str(out["revocation_warnings"])
    code, out = _verify(pkis.down, capsys, "--revocation", "full", "--no-revocation-info", "reject")
    assert code == 1 and out["error"] == "CrlUnavailableError"
    assert out["revocation"] == "unavailable"


def test_chain_error_comes_before_revocation(
    pkis: Pkis, backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    later = (AT + timedelta(days=3000)).isoformat()
    code, out = _verify(pkis.crl, capsys, "--revocation", "full", "--at", later)
    assert code == 1 and out["revocation"] == "not-checked"
    assert backend.requests == []


def test_fetchers_refuse_other_schemes_and_report_http_errors(
    server: tuple[str, Backend], backend: Backend, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for a certificate to read")
    with pytest.raises(OSError, match="only http and https"):
        http_fetch_crl(secret.as_uri())
    with pytest.raises(OSError, match="only http and https"):
        http_fetch_ocsp("ftp://127.0.0.1/ocsp", b"")
    with pytest.raises(OSError, match="404"):
        http_fetch_crl(f"{server[0]}/crl/9/mo-root.crl")
