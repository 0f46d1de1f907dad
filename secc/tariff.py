"""Tariffs: what a session costs, and the one text that tells the car the same.

A `Tariff` has three prices, all `Decimal` in one ISO 4217 currency: an energy price per kWh,
a time price per hour of session, and a session fee. `Tariff.price(energy_wh, started_at,
stopped_at)` computes the `secc.records.Price` of a billing record:

* every component is computed exactly (rational arithmetic, no binary floats, no intermediate
  rounding) and then rounded half-up to the currency's minor unit (cents for EUR, yen for
  JPY, fils for BHD); ``total`` is the sum of the three rounded components, so the lines of
  a receipt always add up to its total (``energy + time + fee == total``, exactly);
* time is billed per microsecond of the session, ``time_price x seconds / 3600``;
* a session (or part of one) that delivered no energy costs nothing: no energy price, no time
  price and no session fee. A car whose charger failed before the contactors closed, whose
  authorisation was refused, or that never drew current does not pay for having been plugged
  in. (Idle or blocking fees are not modelled.)
* paused sessions (ISO 15118-2 SessionStop(Pause)) are billed per part: the SECC prices each
  part when it ends, for that part's energy and that part's duration (the pause between parts
  is not billed; a resumed part's billing record starts at its resumption), and charges the
  session fee once, with the first part that delivered energy (``with_fee=False`` for the
  parts after it): a first part that delivered nothing pays no fee, and the fee comes with
  the resumed part that does.

`Tariff.description` is the tariff's compact canonical text, at most 32 characters (the
length of ISO 15118-2 SalesTariffDescription), e.g. ``"EUR 0.39/kWh 2.40/h 1.00"``: the
currency, then the energy price per kWh, the time price per hour and the bare session fee,
each left out when zero (``"EUR 0.00"`` is the free tariff). Amounts show at least the
currency's minor digits when that fits in 32 characters and are written without trailing
zeros otherwise. `Tariff.from_description` parses such a text back, so that what the car
displays (the ISO-2 SalesTariff sent with the schedule, `secc.iso2.convert.sales_tariff`) and
what the SECC bills come from one object. A tariff whose text cannot fit is refused.

`SalesTariffSigner` holds the key and certificate that sign the ISO-2 SalesTariff in Plug &
Charge (the mobility operator's, usually its Sub-CA 2: the car verifies the signature against
its contract certificate chain).

`read_tariff_section` / `read_sales_tariff_signer` read the ``tariff:`` and
``sales_tariff_signer:`` sections of the SECC's YAML configuration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exi_schemas import xmldsig
from iso15118.yamlconf import ConfigError, Section
from pki.store import load_certificates
from pki.xmlsig import SignedMessage, sign
from secc.records import Price

__all__ = [
    "CURRENCY_EXPONENTS",
    "DESCRIPTION_LENGTH",
    "SalesTariffSigner",
    "Tariff",
    "TariffError",
    "read_sales_tariff_signer",
    "read_tariff_section",
]

#: SalesTariffDescription is at most 32 characters (ISO 15118-2 tariffDescriptionType)
DESCRIPTION_LENGTH: Final = 32

#: ISO 4217 codes and the exponent of their minor unit (digits after the decimal point).
#: Currencies not listed are refused; add one here with its ISO 4217 exponent.
# fmt: off
CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BAM": 2, "BGN": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2,
    "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "GEL": 2, "HKD": 2, "HUF": 2,
    "IDR": 2, "ILS": 2, "INR": 2, "KZT": 2, "MAD": 2, "MDL": 2, "MKD": 2, "MXN": 2, "MYR": 2,
    "NOK": 2, "NZD": 2, "PHP": 2, "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2,
    "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TRY": 2, "TWD": 2, "UAH": 2, "USD": 2, "ZAR": 2,
    "CLP": 0, "ISK": 0, "JPY": 0, "KRW": 0, "PYG": 0, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
# fmt: on

_MICROSECONDS_PER_HOUR: Final = 3_600_000_000
_ID_PATTERN: Final = re.compile(r"[!-~]{1,64}")  # printable ASCII, no spaces
_AMOUNT: Final = r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_DESCRIPTION: Final = re.compile(
    rf"(?P<currency>[A-Z]{{3}})"
    rf"(?: (?P<energy>{_AMOUNT})/kWh)?"
    rf"(?: (?P<time>{_AMOUNT})/h)?"
    rf"(?: (?P<fee>{_AMOUNT}))?"
)


class TariffError(ValueError):
    """A tariff, a tariff text or a price request that cannot be used."""


def _minor_units(value: Fraction, exponent: int) -> Decimal:
    """`value` (>= 0) rounded half-up to `exponent` decimal places, exactly."""
    scaled = value * 10**exponent
    units = (scaled + Fraction(1, 2)).__floor__()
    return Decimal(units).scaleb(-exponent)


def _amount_text(value: Decimal, exponent: int, *, padded: bool) -> str:
    """Plain decimal text: padded to the currency's minor digits, or without trailing zeros."""
    normal = value.normalize()
    places = normal.as_tuple().exponent
    assert isinstance(places, int)  # finite: checked by Tariff
    if padded:
        return f"{normal:.{max(exponent, -places)}f}"
    return f"{normal:f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tariff:
    """One flat tariff (see the module docstring). Prices are `Decimal`, non-negative."""

    id: str
    currency: str  # ISO 4217, upper case
    energy_price: Decimal = Decimal(0)  # per kWh
    time_price: Decimal = Decimal(0)  # per hour of session
    session_fee: Decimal = Decimal(0)  # once per charging session

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_PATTERN.fullmatch(self.id):
            raise TariffError(f"tariff id {self.id!r}: 1 to 64 printable characters, no spaces")
        if self.currency not in CURRENCY_EXPONENTS:
            raise TariffError(
                f"currency {self.currency!r} is not a known ISO 4217 code "
                "(upper case, e.g. EUR; see secc.tariff.CURRENCY_EXPONENTS)"
            )
        for name in ("energy_price", "time_price", "session_fee"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                raise TariffError(f"{name} must be a Decimal, got {type(value).__name__}")
            if not value.is_finite() or value < 0:
                raise TariffError(f"{name} {value} must be a finite amount >= 0")
            if value.is_zero():
                object.__setattr__(self, name, Decimal(0))  # no "-0"
        text = self.description  # refuse a tariff the car cannot be shown
        if len(text) > DESCRIPTION_LENGTH:
            raise TariffError(
                f"the tariff text {text!r} has {len(text)} characters; ISO 15118-2 "
                f"SalesTariffDescription allows {DESCRIPTION_LENGTH} (use fewer decimals)"
            )

    @property
    def exponent(self) -> int:
        """Digits of the currency's minor unit (2 for EUR)."""
        return CURRENCY_EXPONENTS[self.currency]

    # --- the text the car shows ----------------------------------------------------------------

    @property
    def description(self) -> str:
        """The canonical text (see the module docstring); may exceed 32 characters only
        while `__post_init__` checks it."""
        padded = self._text(padded=True)
        return padded if len(padded) <= DESCRIPTION_LENGTH else self._text(padded=False)

    def _text(self, *, padded: bool) -> str:
        parts = [self.currency]
        if self.energy_price:
            parts.append(_amount_text(self.energy_price, self.exponent, padded=padded) + "/kWh")
        if self.time_price:
            parts.append(_amount_text(self.time_price, self.exponent, padded=padded) + "/h")
        if self.session_fee or len(parts) == 1:
            parts.append(_amount_text(self.session_fee, self.exponent, padded=padded))
        return " ".join(parts)

    @classmethod
    def from_description(cls, text: str, *, tariff_id: str) -> Tariff:
        """Parse a tariff text (as `description` writes it); TariffError if it is not one."""
        if not isinstance(text, str) or len(text) > DESCRIPTION_LENGTH:
            raise TariffError(f"not a tariff text of at most {DESCRIPTION_LENGTH} characters")
        match = _DESCRIPTION.fullmatch(text)
        if match is None or not any(match[k] for k in ("energy", "time", "fee")):
            raise TariffError(f"{text!r} is not a tariff text like 'EUR 0.39/kWh 2.40/h 1.00'")
        return cls(
            id=tariff_id,
            currency=match["currency"],
            energy_price=Decimal(match["energy"] or 0),
            time_price=Decimal(match["time"] or 0),
            session_fee=Decimal(match["fee"] or 0),
        )

    # --- the price of a session ----------------------------------------------------------------

    def price(
        self,
        energy_wh: int,
        started_at: datetime,
        stopped_at: datetime,
        *,
        with_fee: bool = True,
    ) -> Price:
        """The price of a session (or of one part of a paused session) that delivered
        `energy_wh` between `started_at` and `stopped_at` (timezone-aware). `with_fee=False`
        for a resumed part (the fee was due with the first). TariffError for a negative or
        non-integer energy, naive times, or a stop before the start."""
        if isinstance(energy_wh, bool) or not isinstance(energy_wh, int) or energy_wh < 0:
            raise TariffError(f"energy {energy_wh!r} Wh must be a whole number >= 0")
        for name, at in (("started_at", started_at), ("stopped_at", stopped_at)):
            if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
                raise TariffError(f"{name} {at!r} must be a timezone-aware datetime")
        duration = stopped_at.astimezone(UTC) - started_at.astimezone(UTC)  # across DST too
        if duration < timedelta(0):
            raise TariffError(f"the session stops ({stopped_at}) before it starts ({started_at})")
        e = self.exponent
        if energy_wh == 0:
            zero = _minor_units(Fraction(0), e)
            return Price(
                tariff_id=self.id,
                currency=self.currency,
                energy=zero,
                time=zero,
                fee=zero,
                total=zero,
            )
        micros = duration // timedelta(microseconds=1)
        energy = _minor_units(Fraction(self.energy_price) * energy_wh / 1000, e)
        time = _minor_units(Fraction(self.time_price) * micros / _MICROSECONDS_PER_HOUR, e)
        fee = _minor_units(Fraction(self.session_fee) if with_fee else Fraction(0), e)
        return Price(
            tariff_id=self.id,
            currency=self.currency,
            energy=energy,
            time=time,
            fee=fee,
            total=energy + time + fee,
        )


# --- the SalesTariff signer ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class SalesTariffSigner:
    """The P-256 key (and its certificate) that signs ISO 15118-2 SalesTariffs in Plug &
    Charge. The car checks the signature with its contract chain's sub-CA, so in practice the
    key belongs to the mobility operator (in the test PKI: MO Sub-CA 2)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def __post_init__(self) -> None:
        if not isinstance(self.key, ec.EllipticCurvePrivateKey) or not isinstance(
            self.key.curve, ec.SECP256R1
        ):
            raise TariffError("the SalesTariff signing key must be an EC P-256 private key")
        public = self.certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.public_numbers() != (
            self.key.public_key().public_numbers()
        ):
            raise TariffError("the SalesTariff signing key does not match its certificate")

    @classmethod
    def from_files(
        cls, private_key: Path, certificate: Path, password: bytes | None = None
    ) -> SalesTariffSigner:
        """A PEM or DER key and certificate; TariffError if they cannot be used."""
        try:
            key_data = private_key.read_bytes()
            cert_data = certificate.read_bytes()
        except OSError as exc:
            raise TariffError(f"{exc.filename}: {exc.strerror or exc}") from None
        try:
            if key_data.lstrip().startswith(b"-----"):
                key = serialization.load_pem_private_key(key_data, password)
            else:
                key = serialization.load_der_private_key(key_data, password)
        except (ValueError, TypeError) as exc:
            raise TariffError(f"{private_key}: cannot load the private key ({exc})") from None
        try:
            certificates = load_certificates(cert_data)
        except ValueError as exc:
            raise TariffError(f"{certificate}: {exc}") from None
        if not certificates:
            raise TariffError(f"{certificate}: no certificate")
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TariffError(f"{private_key}: not an EC private key")
        return cls(key, certificates[0])

    def sign(self, sales_tariffs: Sequence[tuple[str, object]]) -> xmldsig.SignatureType:
        """The header Signature over the (Id, SalesTariff element) pairs, one reference each."""
        return sign(sales_tariffs, self.key, message=SignedMessage.ISO2_SALES_TARIFF)


# --- configuration ------------------------------------------------------------------------------


def _decimal(section: Section, key: str) -> Decimal:
    """A price given as a number (``0.39``) or as text (``"0.39"``); 0 when absent."""
    try:
        text = section.string(key)
    except ConfigError:
        text = str(section.number(key, 0.0))  # a YAML number: its shortest decimal text
    if text is None:
        return Decimal(0)
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ConfigError(f"tariff.{key}: {text!r} is not an amount") from None


def read_tariff_section(section: Section) -> Tariff | None:
    """The ``tariff:`` section, or None when it is absent or empty (no price: free charging)::

        tariff:
          id: standard          # names the tariff in billing records
          currency: EUR         # ISO 4217
          energy_price: 0.39    # per kWh
          time_price: 2.40      # per hour of session
          session_fee: 1.00     # once per charging session

    Amounts may be numbers or quoted text (``"0.39"``); absent ones are 0. ConfigError for
    unknown keys or a tariff that `Tariff` refuses."""
    empty = not any(section.has(k) for k in _TARIFF_KEYS)
    tariff_id = section.string("id")
    currency = section.string("currency")
    prices = {k: _decimal(section, k) for k in ("energy_price", "time_price", "session_fee")}
    section.done()
    if empty:
        return None
    if tariff_id is None or currency is None:
        raise ConfigError("tariff: id and currency are required")
    try:
        return Tariff(id=tariff_id, currency=currency.strip().upper(), **prices)
    except TariffError as exc:
        raise ConfigError(f"tariff: {exc}") from None


_TARIFF_KEYS: Final = ("id", "currency", "energy_price", "time_price", "session_fee")


def read_sales_tariff_signer(section: Section) -> SalesTariffSigner | None:
    """The ``sales_tariff_signer:`` section (Plug & Charge SalesTariff signature), or None::

        sales_tariff_signer:
          private_key: mo-sub-ca-2.key      # PEM or DER, P-256
          certificate: mo-sub-ca-2.pem
          password_file: mo.pass           # or password: ...; optional

    Paths are relative to the configuration file. ConfigError if the files cannot be used."""
    key = section.path("private_key")
    certificate = section.path("certificate")
    password = section.string("password")
    password_file = section.path("password_file")
    section.done()
    if key is None and certificate is None:
        return None
    if key is None or certificate is None:
        raise ConfigError("sales_tariff_signer needs both private_key and certificate")
    if password is not None and password_file is not None:
        raise ConfigError("sales_tariff_signer: give password or password_file, not both")
    secret = password.encode() if password is not None else None
    if password_file is not None:
        try:
            secret = password_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"sales_tariff_signer.password_file: {exc.strerror or exc}") from None
    try:
        return SalesTariffSigner.from_files(key, certificate, secret)
    except TariffError as exc:
        raise ConfigError(f"sales_tariff_signer: {exc}") from None
