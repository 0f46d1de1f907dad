"""Protocol-neutral records that leave the session: who is charging, what was metered.

These are the types the backend hook and the billing store see. They carry no protocol
classes, so DIN, ISO 15118-2 and ISO 15118-20 sessions produce the same records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum

__all__ = [
    "AuthorizationDecision",
    "AuthorizationRequest",
    "AuthorizationStatus",
    "BillingRecord",
    "CertificateHashData",
    "IdentificationKind",
    "MeterReading",
    "Price",
    "SignedReceipt",
    "StopReason",
]


class IdentificationKind(Enum):
    """How the car (or its driver) was identified."""

    CONTRACT = "contract"  # Plug & Charge: the eMAID of a verified contract certificate
    EXTERNAL = "external"  # External Identification Means: RFID card, app, free charging


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateHashData:
    """OCSP-style identification of one certificate of the contract chain (for the backend's
    revocation and contract checks): hash of the issuer name and key, and the serial."""

    hash_algorithm: str  # "SHA256"
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int
    responder_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationRequest:
    """Ask the operator whether this session may charge."""

    session_id: str  # hex of the SessionID
    evse_id: str
    kind: IdentificationKind
    contract_id: str | None = None  # eMAID, normalised (no hyphens, upper case), for CONTRACT
    certificate_hash_data: tuple[CertificateHashData, ...] = ()  # leaf first
    contract_certificate: bytes | None = None  # DER of the leaf, for CONTRACT
    id_token: str | None = None  # for EXTERNAL: the token the EVSE read, if any


class AuthorizationStatus(Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # unknown or blocked contract
    EXPIRED = "expired"  # contract no longer valid at the operator
    UNAVAILABLE = "unavailable"  # backend could not be asked and the policy refuses offline


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationDecision:
    status: AuthorizationStatus
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status is AuthorizationStatus.ACCEPTED


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterReading:
    """One reading of the EVSE's meter. `energy_wh` is the register (cumulative, not per
    session); `signature` is the meter's own signature over the reading, if it signs."""

    meter_id: str
    energy_wh: int
    at: datetime  # timezone-aware
    signature: bytes | None = None
    status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedReceipt:
    """A MeteringReceiptReq the car signed with its contract key, kept as received."""

    exi: bytes  # the whole V2G_Message as the car sent it (EXI)
    schema: str  # the grammar that decodes `exi` ("iso2")
    reading: MeterReading  # the MeterInfo it confirms
    signature_valid: bool
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """What the session costs under its tariff (`secc.tariff.Tariff.price`), in the
    tariff's currency; `total` is rounded to the currency's minor unit."""

    tariff_id: str
    currency: str  # ISO 4217, e.g. "EUR"
    energy: Decimal  # energy price x kWh delivered
    time: Decimal  # time price x hours
    fee: Decimal  # session fee
    total: Decimal

    @property
    def charged_fee(self) -> bool:
        return self.fee > 0


class StopReason(Enum):
    """Why a session ended."""

    EV_STOPPED = "ev-stopped"  # the car sent SessionStop(Terminate)
    EV_PAUSED = "ev-paused"  # SessionStop(Pause): the car will come back with the same SessionID
    EVSE_STOPPED = "evse-stopped"  # the operator or the controller asked to stop
    EVSE_FAULT = "evse-fault"  # emergency shutdown, isolation fault, hardware error
    PROTOCOL_ERROR = "protocol-error"  # the car broke the protocol; answered with FAILED
    TIMEOUT = "timeout"  # a sequence or ongoing timeout expired
    CONNECTION_LOST = "connection-lost"
    AUTHORIZATION_REJECTED = "authorization-rejected"
    #: the charger restarted during the session (e.g. it crashed): billed on restart up to the
    #: last meter reading known (`secc.recovery`)
    EVSE_RESTARTED = "evse-restarted"


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingRecord:
    """What the payment processor needs about one session, written durably before the
    session is reported done. `record_id` is unique and stable (the idempotency key)."""

    record_id: str
    session_id: str  # hex of the SessionID
    evse_id: str
    protocol: str  # "din", "iso2", ...
    kind: IdentificationKind
    contract_id: str | None
    started_at: datetime
    stopped_at: datetime
    meter_start: MeterReading | None
    meter_stop: MeterReading | None
    stop_reason: StopReason
    receipts: tuple[SignedReceipt, ...] = field(default=())
    id_token: str | None = None
    price: Price | None = None  # None: no tariff configured (free charging)

    @property
    def energy_wh(self) -> int:
        """Energy delivered in the session, from the first and last meter readings."""
        if self.meter_start is None or self.meter_stop is None:
            return 0
        return max(0, self.meter_stop.energy_wh - self.meter_start.energy_wh)
