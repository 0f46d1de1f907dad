"""The ``iso15118 pki ...`` commands; `iso15118.cli` registers them with `add_parser`.

    iso15118 pki create --out DIR [--profile iso2|iso20] [--password PW] [--key ALGORITHM]
    iso15118 pki verify-contract --trust DIR --chain FILE [--emaid EMAID] [--at TIME]
    iso15118 pki lint FILE [--profile iso2|iso20] [--role ROLE]
    iso15118 pki expiring --trust DIR [--days N] [--at TIME]

`verify-contract` prints one JSON object and exits 0 (valid) or 1 (rejected, with the
ResponseCode the charger would send); `lint` prints one line per finding and exits 1 if there is
any; `expiring` lists the trust store's certificates that expire within N days and exits 1 if
there is any. Usage errors and unreadable files are ValueErrors (exit code 2 in the CLI).
This is the edge of the PKI: the only place that reads the wall clock.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from pki.profiles import KeyAlgorithm, Purpose, Role, Standard

__all__ = ["add_parser"]

EXIT_OK = 0
EXIT_REJECTED = 1


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
    try:
        verified = verify_chain(
            leaf,
            subs,
            TrustStore.from_directory(trust),
            at=at,
            standard=standard,
            purpose=Purpose.CONTRACT,
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
        }
        print(json.dumps(result))
        return EXIT_REJECTED
    result = {
        "ok": True,
        "emaid": emaid.normalised,
        "standard": standard.value,
        "not_after": verified.not_after.isoformat(),
        "expires_soon": verified.expires_soon(at),
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
