"""What a handler sees: the configuration, the EVSE snapshot, the session so far, and the
results fed in; and what it returns: an `Outcome`.

Handlers are pure: `handler(request, ctx, data) -> Outcome`. `SessionData` is frozen; a
handler that changes it returns the new value in `Outcome.data` (`dataclasses.replace`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from iso15118.sap import AppProtocol
from pki.chain import RevocationCheck, TrustAnchors
from secc.events import AuthorizationResult, CertificateResult, Command
from secc.evse import EnergyMode, EvseStatus, PowerLimit
from secc.records import AuthorizationDecision, MeterReading, SignedReceipt, StopReason
from secc.tariff import SalesTariffSigner, Tariff

__all__ = [
    "Context",
    "ContractInfo",
    "Handler",
    "Outcome",
    "PaymentOption",
    "ResumeState",
    "SeccConfig",
    "SessionData",
]


class PaymentOption(Enum):
    """ISO 15118-2 paymentOptionType / DIN paymentOptionType tokens."""

    CONTRACT = "Contract"  # Plug & Charge
    EXTERNAL_PAYMENT = "ExternalPayment"  # EIM: RFID, app, free


@dataclass(frozen=True, slots=True, kw_only=True)
class SeccConfig:
    """Per-charger protocol settings (one instance shared by all sessions)."""

    protocols: tuple[AppProtocol, ...] = (AppProtocol.ISO2, AppProtocol.DIN)
    payment_options: tuple[PaymentOption, ...] = (
        PaymentOption.CONTRACT,
        PaymentOption.EXTERNAL_PAYMENT,
    )
    #: offer Contract payment only over TLS ([V2G2-?] PnC requires TLS)
    pnc_requires_tls: bool = True
    #: offer the Certificate service (installation/update) in ServiceDiscovery
    certificate_service: bool = True
    #: ask the car for a signed MeteringReceipt in PnC sessions
    receipt_required: bool = True
    #: the roots a contract chain must reach (MO roots, and V2G roots) [V2G2-925]
    contract_trust: TrustAnchors | None = None
    revocation: RevocationCheck | None = None
    #: External Identification needs a token from the EVSE (`EvseStatus.id_token`: RFID or
    #: prepaid card): the SECC answers Ongoing until one is read (or the ongoing timeout)
    eim_token_required: bool = False
    #: the SAScheduleList covers this many seconds
    schedule_duration: int = 86400
    #: SECC-side voltage tolerance for PreCharge "reached" when the EVSE does not say so
    pre_charge_tolerance: float = 20.0
    #: what sessions cost (billing records carry its `Price`; ISO-2 cars are shown it as a
    #: SalesTariff); None: no price, and no SalesTariff
    tariff: Tariff | None = None
    #: signs the ISO-2 SalesTariff in Plug & Charge sessions ([V2G2-905]); without it a PnC
    #: car is sent no SalesTariff
    sales_tariff_signer: SalesTariffSigner | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractInfo:
    """The contract the car presented in PaymentDetails, after its chain was verified."""

    emaid: str
    leaf_der: bytes
    sub_ca_der: tuple[bytes, ...]
    public_key: Any  # cryptography public key of the contract certificate


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionData:
    """Everything the session has learnt so far. Frozen; handlers return a new one."""

    session_id: bytes
    protocol: AppProtocol
    tls: bool
    started_at: datetime
    evcc_id: bytes = b""
    resumed: bool = False
    #: an earlier part of this (paused and resumed) session was billed the session fee
    fee_charged: bool = False
    payment: PaymentOption | None = None
    services: tuple[int, ...] = ()  # ServiceIDs selected in PaymentServiceSelection
    energy_mode: EnergyMode | None = None
    gen_challenge: bytes | None = None
    contract: ContractInfo | None = None
    authorization_requested: bool = False
    authorization: AuthorizationDecision | None = None
    id_token: str | None = None  # the EVSE's identification token the session was authorised with
    certificate_requested: bool = False
    cable_check_started: bool = False
    sa_schedule_tuple_id: int | None = None
    departure_time: int | None = None  # s after `discovery_at`, as the car said
    #: Wh the car asked for in ChargeParameterDiscovery (DC EVEnergyRequest, AC EAmount)
    energy_request: float | None = None
    #: when the last ChargeParameterDiscoveryReq was answered, and the meter then
    discovery_at: datetime | None = None
    discovery_meter_wh: int | None = None
    #: the PMaxSchedule sent with it (what the car's ChargingProfile must respect)
    offered_schedule: tuple[PowerLimit, ...] = ()
    ev_max_voltage: float | None = None
    ev_max_current: float | None = None
    ev_max_power: float | None = None
    target_voltage: float = 0.0
    target_current: float = 0.0
    charging: bool = False  # PowerDelivery(Start) accepted, not stopped
    meter_start: MeterReading | None = None
    meter_last: MeterReading | None = None
    receipt_pending: MeterReading | None = None  # MeterInfo sent with ReceiptRequired
    receipts: tuple[SignedReceipt, ...] = ()
    renegotiating: bool = False
    stop_reason: StopReason | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeState:
    """What a paused session leaves for its resumption with the same SessionID."""

    data: SessionData
    state: Any  # the protocol's state enum member to resume in


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """Read-only inputs of one handler call."""

    config: SeccConfig
    evse_id: str
    energy_modes: tuple[EnergyMode, ...]
    status: EvseStatus
    now: float  # monotonic seconds
    at: datetime  # wall clock (timezone-aware), for timestamps and certificate validity
    random: Callable[[int], bytes]
    raw: bytes = b""  # the request's EXI payload as received (signed receipts keep it)
    header_session_id: bytes = b""  # the SessionID in the request's header
    header_signature: Any = None  # the request header's xmldsig Signature, if any
    authorization: AuthorizationResult | None = None
    certificate: CertificateResult | None = None
    #: the operator asked to renegotiate the schedule (ISO 15118-2 EVSENotification)
    renegotiation_requested: bool = False
    resumable: Mapping[bytes, ResumeState] = field(default_factory=dict)


S = TypeVar("S")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome(Generic[S]):
    """A handler's result: the response body, the next state (None: stay), the new session
    data (None: unchanged), commands for the EVSE or backend, and whether the session ends
    (`terminate`) after this response. `signature` goes into the response header."""

    response: Any
    next_state: S | None = None
    data: SessionData | None = None
    commands: tuple[Command, ...] = ()
    terminate: StopReason | None = None
    pause: bool = False
    signature: Any = None


Handler = Callable[[Any, Context, SessionData], Outcome[Any]]
