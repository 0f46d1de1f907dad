"""The ``iso15118 pki ...`` commands; `iso15118.cli` registers them with `add_parser`.

    iso15118 pki create --out DIR [--profile iso2|iso20] [--password PW] [--key ALGORITHM]
    iso15118 pki verify-contract --trust DIR --chain FILE [--emaid EMAID] [--at TIME]
                                 [--revocation off|ocsp|full] [--no-revocation-info accept|reject]
    iso15118 pki lint FILE [--profile iso2|iso20] [--role ROLE]
    iso15118 pki expiring --trust DIR [--days N] [--at TIME]

`verify-contract` prints one JSON object and exits 0 (valid) or 1 (rejected, with the
ResponseCode the charger would send); with `--revocation ocsp` every certificate below the root
is checked with its OCSP responder, with `full` by OCSP or else the CRL of its distribution point
(`pki.revocation.CombinedChecker`), and `--no-revocation-info` says what to do when neither gives
an answer; the JSON says ``"revocation": "off"|"good"|"unknown"|"revoked"|...``.
`lint` prints one line per finding and exits 1 if there is
any; `expiring` lists the trust store's certificates that expire within N days and exits 1 if
there is any. Usage errors and unreadable files are ValueErrors (exit code 2 in the CLI).
This is the edge of the PKI: the only place that reads the wall clock or the network
(`http_fetch_ocsp`, `http_fetch_crl`: urllib, http/https only, a short timeout).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pki.profiles import KeyAlgorithm, Purpose, Role, Standard

if TYPE_CHECKING:
    from cryptography import x509

    from pki.errors import PkiError
    from pki.ocsp import RevocationResult
    from pki.revocation import CombinedChecker

__all__ = ["add_parser", "http_fetch_crl", "http_fetch_ocsp"]

EXIT_OK = 0
EXIT_REJECTED = 1
HTTP_TIMEOUT = 3.0  # seconds per OCSP request or CRL download
HTTP_MAX_BYTES = 8 * 1024 * 1024  # a CRL (or OCSP answer) larger than this is refused


_SCHEMES = ("http", "https")  # never file: or ftp: from a URL a certificate names


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in _SCHEMES:
            return None  # urllib then raises HTTPError for the 3xx
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _http(request: urllib.request.Request) -> bytes:
    """The response body; every failure (scheme, connection, status, size) is an OSError,
    which the revocation checkers treat as "unreachable" and hand to their policy."""
    if request.type not in _SCHEMES:
        raise OSError(f"{request.full_url}: only http and https URLs are fetched")
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    try:
        with opener.open(request, timeout=HTTP_TIMEOUT) as response:
            body: bytes = response.read(HTTP_MAX_BYTES + 1)
    except (http.client.HTTPException, ValueError) as exc:
        raise OSError(f"{request.full_url}: {exc}") from exc
    if len(body) > HTTP_MAX_BYTES:
        raise OSError(f"{request.full_url}: answer larger than {HTTP_MAX_BYTES} bytes")
    return body


def http_fetch_ocsp(url: str, der_request: bytes) -> bytes:
    """POST an OCSP request (RFC 6960 Appendix A.1) and return the DER answer."""
    headers = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
    return _http(urllib.request.Request(url, der_request, headers, method="POST"))


def http_fetch_crl(url: str) -> bytes:
    """GET a CRL from a distribution point; DER as RFC 5280 4.2.1.13 says."""
    return _http(urllib.request.Request(url, method="GET"))


@dataclass(slots=True)
class _RecordedRevocation:
    """Remembers every answer of the checker that `verify_chain` calls."""

    checker: CombinedChecker
    results: list[RevocationResult] = field(default_factory=list)

    def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, at: datetime
    ) -> RevocationResult:
        result = self.checker.check(cert, issuer, at=at)
        self.results.append(result)
        return result

    def summary(self) -> dict[str, object]:
        warnings = [r.warning for r in self.results if r.warning]
        state = "unknown" if any(r.status is None for r in self.results) else "good"
        return {"revocation": state, "revocation_warnings": warnings}


def _revocation(args: argparse.Namespace) -> _RecordedRevocation | None:
    if args.revocation == "off":
        return None
    from pki.ocsp import NoAnswerPolicy
    from pki.revocation import CombinedChecker

    policy = {"accept": NoAnswerPolicy.ACCEPT_WITH_WARNING, "reject": NoAnswerPolicy.REJECT}
    checker = CombinedChecker.create(
        policy[args.no_revocation_info],
        ocsp_fetch=http_fetch_ocsp,
        crl_fetch=http_fetch_crl if args.revocation == "full" else None,
        nonce=lambda: os.urandom(16),
    )
    return _RecordedRevocation(checker)


def _revocation_failure(exc: PkiError, revocation: _RecordedRevocation | None) -> str:
    from pki import errors

    if revocation is None:
        return "off"
    if isinstance(exc, errors.CertificateRevokedError):
        return "revoked"
    if isinstance(exc, errors.RevocationUnavailableError):
        return "unavailable"
    if isinstance(exc, errors.RevocationError):
        return "invalid"  # an answer that came but cannot be used (stale, wrong signer)
    return "not-checked"  # the chain failed before revocation (which comes last)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"--at {text!r}: expected ISO 8601, e.g. 2026-06-01T12:00:00Z") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _need_cryptography() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"the pki commands need `cryptography` ({exc})") from exc


def _create(args: argparse.Namespace) -> int:
    _need_cryptography()
    from pki.create import create_pki, write_pki

    standard = Standard(args.profile)
    algorithm = KeyAlgorithm(args.key) if args.key else None
    pki = create_pki(standard, at=datetime.now(UTC), key_algorithm=algorithm)
    out = Path(args.out)
    password = args.password.encode() if args.password else None
    written = write_pki(pki, out, password=password)
    print(f"wrote {len(written)} files for {len(pki.certificates)} roles to {out}")
    print(f"see {out / 'README.txt'}")
    return EXIT_OK


def _verify_contract(args: argparse.Namespace) -> int:
    _need_cryptography()
    from pki.chain import verify_chain
    from pki.emaid import emaid_from_certificate, match_certificate
    from pki.errors import PkiError
    from pki.lint import guess_standard
    from pki.store import TrustStore, load_certificates

    at = _parse_time(args.at)
    trust = Path(args.trust)
    if not trust.is_dir():
        raise ValueError(f"--trust {args.trust}: not a directory")
    chain = load_certificates(_read(args.chain))
    leaf, *subs = chain
    standard = Standard(args.profile) if args.profile else guess_standard(leaf)
    revocation = _revocation(args)
    try:
        verified = verify_chain(
            leaf,
            subs,
            TrustStore.from_directory(trust),
            at=at,
            standard=standard,
            purpose=Purpose.CONTRACT,
            revocation=revocation,
        )
        if args.emaid is not None:
            emaid = match_certificate(args.emaid, leaf)
        else:
            emaid = emaid_from_certificate(leaf, require_check_digit=False)
    except PkiError as exc:
        result = {
            "ok": False,
            "response_code": exc.response_code_for(standard),
            "error": type(exc).__name__,
            "reason": str(exc),
            "revocation": _revocation_failure(exc, revocation),
        }
        print(json.dumps(result))
        return EXIT_REJECTED
    result = {
        "ok": True,
        "emaid": emaid.normalised,
        "standard": standard.value,
        "not_after": verified.not_after.isoformat(),
        "expires_soon": verified.expires_soon(at),
        **(revocation.summary() if revocation else {"revocation": "off"}),
    }
    print(json.dumps(result))
    return EXIT_OK


def _expiring(args: argparse.Namespace) -> int:
    _need_cryptography()
    from datetime import timedelta

    from pki.store import TrustStore

    directory = Path(args.trust)
    if not directory.is_dir():
        raise ValueError(f"--trust {args.trust}: not a directory")
    notices = TrustStore.from_directory(directory).expiring(
        timedelta(days=args.days), at=_parse_time(args.at)
    )
    for notice in notices:
        days = notice.remaining.total_seconds() / 86400
        print(
            f"{notice.not_after.isoformat()}  {days:8.1f} days  {notice.source}  {notice.subject}"
        )
    return EXIT_REJECTED if notices else EXIT_OK


def _lint(args: argparse.Namespace) -> int:
    _need_cryptography()
    from pki.lint import check_profile, guess_role, guess_standard
    from pki.profiles import PROFILES
    from pki.store import load_certificates

    findings = 0
    for index, cert in enumerate(load_certificates(_read(args.file))):
        standard = Standard(args.profile) if args.profile else guess_standard(cert)
        role = Role(args.role) if args.role else guess_role(cert, standard)
        if role not in PROFILES[standard]:
            raise ValueError(f"{standard.value} has no {role.value} certificate")
        found = check_profile(cert, standard, role)
        subject = cert.subject.rfc4514_string()
        status = "ok" if not found else f"{len(found)} finding(s)"
        guessed = "" if args.role else " (guessed)"
        print(f"[{index}] {subject}: {standard.value} {role.value}{guessed}: {status}")
        for finding in found:
            print(f"    {finding.error.__name__}: {finding.message}")
        findings += len(found)
    return EXIT_REJECTED if findings else EXIT_OK


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pki`` and its commands to the top-level command table."""
    pki = commands.add_parser("pki", help="Plug & Charge PKI", description="Plug & Charge PKI.")
    sub = pki.add_subparsers(title="commands", required=True, metavar="COMMAND")
    standards = [s.value for s in Standard]

    create = sub.add_parser("create", help="write a complete test PKI")
    create.add_argument("--out", required=True, metavar="DIR", help="output directory")
    create.add_argument("--profile", choices=standards, default="iso2")
    create.add_argument("--password", help="encrypt the private keys with this password")
    create.add_argument(
        "--key", choices=[k.value for k in KeyAlgorithm], help="key algorithm (iso20: ed448)"
    )
    create.set_defaults(run=_create)

    verify = sub.add_parser("verify-contract", help="validate a contract certificate chain")
    verify.add_argument("--trust", required=True, metavar="DIR", help="trust store directory")
    verify.add_argument(
        "--chain", required=True, metavar="FILE", help="leaf first, then sub-CAs; PEM or DER"
    )
    verify.add_argument("--emaid", help="the eMAID the EV states, compared with the certificate's")
    verify.add_argument("--at", metavar="TIME", help="validation time, ISO 8601 (default: now)")
    verify.add_argument("--profile", choices=standards, help="default: from the leaf's key")
    verify.add_argument(
        "--revocation",
        choices=["off", "ocsp", "full"],
        default="off",
        help="check every certificate below the root by OCSP (ocsp), or by OCSP where it names "
        "a responder and else by its CRL distribution point (full); default off",
    )
    verify.add_argument(
        "--no-revocation-info",
        choices=["accept", "reject"],
        default="accept",
        help="when a certificate names no responder/CRL or none can be reached: accept with a "
        "warning (default; real contract certificates exist without an OCSP URL) or reject",
    )
    verify.set_defaults(run=_verify_contract)

    expiring = sub.add_parser("expiring", help="list trust-store certificates expiring soon")
    expiring.add_argument("--trust", required=True, metavar="DIR", help="trust store directory")
    expiring.add_argument("--days", type=int, default=30, help="window in days (default 30)")
    expiring.add_argument("--at", metavar="TIME", help="reference time, ISO 8601 (default: now)")
    expiring.set_defaults(run=_expiring)

    lint = sub.add_parser("lint", help="report how certificates depart from their profile")
    lint.add_argument("file", metavar="FILE", help="PEM (one or more) or DER certificates")
    lint.add_argument("--profile", choices=standards, help="default: from the key")
    lint.add_argument("--role", choices=[r.value for r in Role], help="default: guessed")
    lint.set_defaults(run=_lint)
