"""eMAID (e-mobility account identifier): parsing, check digit, and the contract certificate.

Syntax (ISO 15118-2 Annex H, DIN SPEC 91286): country code (2 letters), provider ID (3
alphanumerics), eMA instance (9 alphanumerics), check digit (1 alphanumeric); optional hyphens
between the parts (``DE-8AA-1A2B3C4D5-X``); letters compare case-insensitively. The normal
form is upper case without hyphens (``DE8AA1A2B3C4D5X``).

Check digit (DIN SPEC 91286, also the eMI3 "Contract-ID" check digit): each character c of
the 15 gets a value v (0-9, then A=10 .. Z=35) and is split into a pair over GF(2),
(q1, q2) = binary digits of v // 9, and a pair over GF(3), (r1, r2) = ternary digits of v % 9.
Position i (1..15) multiplies the pairs by P1^i (P1 = [[0,1],[1,1]] mod 2) and P2^i
(P2 = [[0,1],[1,2]] mod 3); the check digit is the one character for which both sums over
the 15 positions are zero. Cross-checked against the public examples FRXYZ1234567892,
ITA1B2C3E4F5G64, ESZU8WOX834H1DR, PT73902837ABCZZ, DE83DUIEN83QGZD, DE83DUIEN83ZGQM (test
vectors of kajedot/ema-id-tool, from the DIN SPEC).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.errors import EmaidCheckDigitError, EmaidMismatchError, EmaidSyntaxError

__all__ = [
    "Emaid",
    "check_digit",
    "emaid_from_certificate",
    "match_certificate",
    "parse_emaid",
]

_ALPHABET = string.digits + string.ascii_uppercase
_SYNTAX = re.compile(
    r"(?P<country>[A-Z]{2})-?(?P<provider>[A-Z0-9]{3})-?(?P<instance>[A-Z0-9]{9})"
    r"(?:-?(?P<check>[A-Z0-9]))?"
)

Matrix = tuple[tuple[int, int], tuple[int, int]]


def _mul(a: Matrix, b: Matrix, modulus: int) -> Matrix:
    return (
        (
            (a[0][0] * b[0][0] + a[0][1] * b[1][0]) % modulus,
            (a[0][0] * b[0][1] + a[0][1] * b[1][1]) % modulus,
        ),
        (
            (a[1][0] * b[0][0] + a[1][1] * b[1][0]) % modulus,
            (a[1][0] * b[0][1] + a[1][1] * b[1][1]) % modulus,
        ),
    )


def _powers(base: Matrix, modulus: int, count: int) -> list[Matrix]:
    out: list[Matrix] = [base]
    while len(out) < count:
        out.append(_mul(out[-1], base, modulus))
    return out


_P1 = _powers(((0, 1), (1, 1)), 2, 15)
_P2 = _powers(((0, 1), (1, 2)), 3, 15)


def _folded(text: str) -> tuple[int, int, int, int]:
    """Sum over positions of (q1 q2)·P1^i mod 2 and (r1 r2)·P2^i mod 3."""
    c1 = c2 = c3 = c4 = 0
    for i, char in enumerate(text):
        v = _ALPHABET.index(char)
        q1, q2 = divmod(v // 9, 2)
        r1, r2 = divmod(v % 9, 3)
        m, n = _P1[i], _P2[i]
        c1 += q1 * m[0][0] + q2 * m[1][0]
        c2 += q1 * m[0][1] + q2 * m[1][1]
        c3 += r1 * n[0][0] + r2 * n[1][0]
        c4 += r1 * n[0][1] + r2 * n[1][1]
    return c1 % 2, c2 % 2, c3 % 3, c4 % 3


def check_digit(first14: str) -> str:
    """The DIN SPEC 91286 check digit of 14 normalised characters."""
    if len(first14) != 14 or any(c not in _ALPHABET for c in first14):
        raise ValueError(f"expected 14 upper-case alphanumerics, got {first14!r}")
    for candidate in _ALPHABET:  # exactly one candidate zeroes the sums (P^15 is invertible)
        if _folded(first14 + candidate) == (0, 0, 0, 0):
            return candidate
    raise AssertionError("no check digit")  # pragma: no cover - the algebra excludes it


@dataclass(frozen=True, slots=True)
class Emaid:
    country: str
    provider: str
    instance: str
    check: str | None  # None: given without check digit (allowed only when asked)

    def __str__(self) -> str:
        return self.normalised

    @property
    def normalised(self) -> str:
        return self.country + self.provider + self.instance + (self.check or "")

    @property
    def hyphenated(self) -> str:
        tail = f"-{self.check}" if self.check else ""
        return f"{self.country}-{self.provider}-{self.instance}{tail}"


def parse_emaid(text: str, *, require_check_digit: bool = True) -> Emaid:
    """Parse, normalise and validate; EmaidSyntaxError or EmaidCheckDigitError."""
    match = _SYNTAX.fullmatch(text.strip().upper())
    if match is None:
        raise EmaidSyntaxError(
            f"{text!r} is not CC-PPP-IIIIIIIII-D (country, provider, instance, check digit)"
        )
    emaid = Emaid(match["country"], match["provider"], match["instance"], match["check"])
    if emaid.check is None:
        if require_check_digit:
            raise EmaidSyntaxError(f"{text!r} has no check digit")
        return emaid
    expected = check_digit(emaid.normalised[:14])
    if emaid.check != expected:
        raise EmaidCheckDigitError(f"{text!r}: check digit {emaid.check}, expected {expected}")
    return emaid


def emaid_from_certificate(
    certificate: x509.Certificate, *, require_check_digit: bool = True
) -> Emaid:
    """The eMAID in a contract certificate's subject CN."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise EmaidSyntaxError("the contract certificate subject has no single common name")
    return parse_emaid(names[0].value, require_check_digit=require_check_digit)


def match_certificate(stated: str, certificate: x509.Certificate) -> Emaid:
    """Compare the eMAID the EV states with its contract certificate's; the certificate's."""
    own = emaid_from_certificate(certificate, require_check_digit=False)
    claimed = parse_emaid(stated, require_check_digit=False)
    if claimed.check is not None and own.check is not None and claimed != own:
        raise EmaidMismatchError(f"stated eMAID {claimed} differs from certificate's {own}")
    if claimed.normalised[:14] != own.normalised[:14]:
        raise EmaidMismatchError(f"stated eMAID {claimed} differs from certificate's {own}")
    return own
