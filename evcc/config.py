"""The EV simulator's configuration: one keyword-only frozen dataclass, validated when built."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from evcc.battery import BatteryParams
from evcc.faults import Fault
from iso15118.sap import AppProtocol
from secc.evse import EnergyMode

__all__ = ["EvccConfig", "Payment", "PncCredentials"]


class Payment(Enum):
    """How the EV pays; the value is the XML token of paymentOptionType."""

    EIM = "ExternalPayment"  # external identification means (RFID, app, free)
    PNC = "Contract"  # Plug & Charge (ISO 15118-2 only)


def _common_name(der: bytes) -> str | None:
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME
        )
    except ValueError:
        return None
    if len(names) != 1 or not isinstance(names[0].value, str):
        return None
    return names[0].value


@dataclass(frozen=True, slots=True, kw_only=True)
class PncCredentials:
    """Certificate material for Plug & Charge. Certificates are DER bytes and are sent as
    given, never checked: a test may hand in an expired or foreign chain on purpose.

    `contract_chain` is the contract certificate first, then its sub-CAs (no root);
    `contract_key` its private key. Either may be empty/None when the EV must install a
    contract first (`install_certificate`, or no contract present), which needs the OEM
    provisioning certificate and key. `root_certificates` (V2G roots, DER) fill
    ListOfRootCertificateIDs. `emaid` defaults to the contract certificate's CN.

    The EV renews its contract with CertificateUpdateReq (ISO 15118-2 8.4.3.9), signed with
    the present contract key, when `update_certificate` is set or the contract certificate
    expires within `update_within`, and the charger offers the certificate service.
    """

    contract_chain: tuple[bytes, ...] = ()
    contract_key: ec.EllipticCurvePrivateKey | None = None
    emaid: str | None = None
    oem_provisioning_cert: bytes | None = None
    oem_provisioning_key: ec.EllipticCurvePrivateKey | None = None
    root_certificates: tuple[bytes, ...] = ()
    install_certificate: bool = False
    update_certificate: bool = False
    update_within: timedelta | None = None

    def __post_init__(self) -> None:
        if (self.update_certificate or self.update_within is not None) and (
            not self.contract_chain or not self.root_certificates
        ):
            raise ValueError(
                "updating a contract needs the contract chain and key and the V2G roots"
            )
        if bool(self.contract_chain) != (self.contract_key is not None):
            raise ValueError("give the contract chain and its key together")
        if self.needs_installation and (
            self.oem_provisioning_cert is None
            or self.oem_provisioning_key is None
            or not self.root_certificates
        ):
            raise ValueError(
                "installing a contract needs the OEM provisioning cert and key and the V2G roots"
            )
        if (
            self.contract_chain
            and self.emaid is None
            and _common_name(self.contract_chain[0]) is None
        ):
            raise ValueError("the contract certificate has no readable CN: give the eMAID")

    def contract_emaid(self) -> str | None:
        """`emaid`, else the contract certificate's subject CN."""
        if self.emaid is not None or not self.contract_chain:
            return self.emaid
        return _common_name(self.contract_chain[0])

    @property
    def needs_installation(self) -> bool:
        return self.install_certificate or not self.contract_chain

    def needs_update(self, now: datetime) -> bool:
        """Renew the present contract now? Never when it is to be installed first."""
        if self.needs_installation:
            return False
        if self.update_certificate:
            return True
        if self.update_within is None:
            return False
        try:
            expires = x509.load_der_x509_certificate(self.contract_chain[0]).not_valid_after_utc
        except ValueError:
            return False  # a chain given on purpose unreadable: nothing to go by
        return expires - now <= self.update_within


@dataclass(frozen=True, slots=True, kw_only=True)
class EvccConfig:
    """Everything the simulated car does and how it misbehaves.

    Charging ends when the SoC reaches `target_soc`, after `max_charge_loops` charge-loop
    requests (CurrentDemandReq / ChargingStatusReq), after `charge_duration` seconds in the
    loop, or when the charger asks, whichever comes first.
    """

    #: offered in the SupportedAppProtocolReq in this order (priority 1 first)
    protocols: tuple[AppProtocol, ...] = (AppProtocol.ISO2, AppProtocol.DIN)
    energy_mode: EnergyMode = EnergyMode.DC_EXTENDED
    payment: Payment = Payment.EIM
    pnc: PncCredentials | None = None
    evcc_id: bytes = bytes.fromhex("020000000001")  # the EV's MAC address
    battery: BatteryParams = field(default_factory=BatteryParams)
    initial_soc: float = 30.0
    target_soc: float = 80.0
    #: seconds from now until the driver wants to leave (DepartureTime), None: not sent
    departure_time: int | None = None
    max_charge_loops: int | None = None
    charge_duration: float | None = None
    #: ISO-2: ask ServiceDetail for the offered services before PaymentServiceSelection
    request_service_detail: bool = False
    #: ask the adapter for TLS (the SDP request's security byte; ISO-2 PnC needs TLS)
    tls: bool = False
    #: delay before repeating a request the SECC answered with Ongoing (not set by the
    #: standards; chargers expect a few hundred milliseconds)
    ongoing_interval: float = 0.25
    #: delay between a charge-loop response and the next charge-loop request
    loop_interval: float = 0.1
    #: delay between PreChargeReqs while the voltage is not reached
    precharge_interval: float = 0.1
    #: PreCharge is done when |EVSEPresentVoltage - target| <= this (V)
    precharge_tolerance: float = 10.0
    welding_detection_count: int = 1
    #: ISO-2: after this many charge-loop requests: PowerDelivery(Stop), SessionStop(Pause)
    pause_after_loops: int | None = None
    #: ISO-2: resume the paused session with this SessionID (SessionSetupReq header)
    resume_session_id: bytes | None = None
    #: ISO-2: after this many charge-loop requests the EV renegotiates once
    renegotiate_after_loops: int | None = None
    #: DIN/ISO-2 DC: how many PMaxSchedule tuples the EV accepts (ISO-2 MaxEntries...)
    max_schedule_entries: int | None = None
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        _check_protocols(self)
        _check_numbers(self)
        _check_payment(self)


def _check_protocols(c: EvccConfig) -> None:
    if not 1 <= len(c.protocols) <= 20 or len(set(c.protocols)) != len(c.protocols):
        raise ValueError("offer 1 to 20 distinct protocols")
    if not c.energy_mode.is_dc and AppProtocol.ISO2 not in c.protocols:
        raise ValueError("AC charging needs ISO 15118-2 among the protocols (DIN is DC only)")
    if len(c.evcc_id) != 6:
        raise ValueError("evcc_id is the EV's 6-byte MAC address")
    if c.resume_session_id is not None and not 1 <= len(c.resume_session_id) <= 8:
        raise ValueError("resume_session_id must have 1 to 8 bytes")


def _check_numbers(c: EvccConfig) -> None:
    if not 0 <= c.initial_soc <= 100 or not 0 <= c.target_soc <= 100:
        raise ValueError("SoC values are percentages within 0..100")
    for name in ("ongoing_interval", "loop_interval", "precharge_interval", "precharge_tolerance"):
        if getattr(c, name) < 0:
            raise ValueError(f"{name} must not be negative")
    for name in (
        "max_charge_loops",
        "pause_after_loops",
        "renegotiate_after_loops",
        "max_schedule_entries",
    ):
        value = getattr(c, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1")
    if c.charge_duration is not None and c.charge_duration < 0:
        raise ValueError("charge_duration must not be negative")
    if c.departure_time is not None and not 0 <= c.departure_time <= 0xFFFFFFFF:
        raise ValueError("departure_time is seconds as an unsigned 32-bit value")
    if c.welding_detection_count < 0:
        raise ValueError("welding_detection_count must not be negative")


def _check_payment(c: EvccConfig) -> None:
    if c.payment is Payment.PNC:
        if c.pnc is None:
            raise ValueError("Plug & Charge needs PncCredentials")
        if AppProtocol.ISO2 not in c.protocols:
            raise ValueError("Plug & Charge needs ISO 15118-2 among the protocols")
