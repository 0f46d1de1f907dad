"""eMAID syntax, normalisation, DIN SPEC 91286 check digit, certificate comparison."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pki import errors
from pki.create import create_pki, issue, replace, template_for
from pki.emaid import check_digit, emaid_from_certificate, match_certificate, parse_emaid
from pki.profiles import Role, Standard

# Valid eMAIDs cited publicly (DIN SPEC 91286 examples, the test vectors of kajedot/ema-id-tool).
KNOWN_VALID = [
    "FRXYZ1234567892",
    "ITA1B2C3E4F5G64",
    "ESZU8WOX834H1DR",
    "PT73902837ABCZZ",
    "DE83DUIEN83QGZD",
    "DE83DUIEN83ZGQM",
]
AT = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", KNOWN_VALID)
def test_known_valid_emaids(text: str) -> None:
    assert parse_emaid(text).normalised == text
    assert check_digit(text[:14]) == text[14]


def test_every_other_check_digit_is_refused() -> None:
    for text in KNOWN_VALID:
        for wrong in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            if wrong != text[14]:
                with pytest.raises(errors.EmaidCheckDigitError):
                    parse_emaid(text[:14] + wrong)


def test_normalisation_of_case_and_hyphens() -> None:
    emaid = parse_emaid(" de-83d-uien83qgz-d ")
    assert emaid.normalised == "DE83DUIEN83QGZD"
    assert emaid.hyphenated == "DE-83D-UIEN83QGZ-D"
    assert parse_emaid(emaid.hyphenated) == emaid
    assert (emaid.country, emaid.provider, emaid.instance, emaid.check) == (
        "DE",
        "83D",
        "UIEN83QGZ",
        "D",
    )


def test_bad_check_digit() -> None:
    with pytest.raises(errors.EmaidCheckDigitError) as info:
        parse_emaid("DE83DUIEN83QGZE")
    assert info.value.response_code == "FAILED_CertChainError"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "D183DUIEN83QGZD",
        "DE83DUIEN83QG",
        "DE83DUIEN83QGZDX",
        "DE_83D_UIEN83QGZ_D",
        "DE83DUIEN83QGZ!",
    ],
)
def test_bad_syntax(text: str) -> None:
    with pytest.raises(errors.EmaidSyntaxError):
        parse_emaid(text)


def test_check_digit_optional_only_when_asked() -> None:
    with pytest.raises(errors.EmaidSyntaxError, match="no check digit"):
        parse_emaid("DE83DUIEN83QGZ")
    assert parse_emaid("DE83DUIEN83QGZ", require_check_digit=False).check is None


def test_certificate_emaid_and_mismatch() -> None:
    pki = create_pki(Standard.ISO2, at=AT)
    cert = pki[Role.CONTRACT].certificate
    own = emaid_from_certificate(cert)
    assert match_certificate(own.hyphenated.lower(), cert) == own
    assert match_certificate(own.normalised[:14], cert) == own  # stated without check digit
    with pytest.raises(errors.EmaidMismatchError):
        match_certificate("DE83DUIEN83QGZD", cert)


def test_certificate_without_emaid() -> None:
    pki = create_pki(Standard.ISO2, at=AT)
    t = replace(template_for(Standard.ISO2, Role.CONTRACT, at=AT, serial=5), common_name="x")
    cert = issue(t, pki[Role.CONTRACT].key, pki[Role.MO_SUB_CA_2], standard=Standard.ISO2)
    with pytest.raises(errors.EmaidSyntaxError):
        emaid_from_certificate(cert)
