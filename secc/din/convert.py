"""Between the EVSE's SI values and DIN SPEC 70121 types: physical values, the EVSEID, the
DC_EVSEStatus block, charge parameters, the SAScheduleList and the status fields of FAILED
responses."""

from __future__ import annotations

import re
from typing import Any, Final

from exi_schemas import din
from secc.context import Context, SessionData
from secc.evse import EnergyMode, EvseStatus, IsolationStatus
from secc.steps import decimal, evse_unavailable, scaled, schedule_points

__all__ = [
    "PMAX_LIMIT",
    "SA_SCHEDULE_TUPLE_ID",
    "amps",
    "dc_charge_parameter",
    "dc_evse_status",
    "energy_transfer_type",
    "evse_id_bytes",
    "physical",
    "sa_schedule_list",
    "status_fields",
    "value",
    "volts",
    "watts",
]

_U = din.unitSymbolType
SA_SCHEDULE_TUPLE_ID: Final = 1
#: DIN's PMax is a bare xs:short in W, so 32.767 kW is the most a schedule entry can say;
#: cars follow EVSEMaximumPowerLimit (a PhysicalValue) for the real limit
PMAX_LIMIT: Final = 32767
#: the EVSEID is hexBinary of at most 32 octets
EVSEID_MAX_OCTETS: Final = 32
_DIN_91286 = re.compile(r"\+?[0-9*]+")  # "+49*89*6360": digits and '*' only
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")  # already the octets, as hex ("49A80737A45678")


def physical(amount: float, unit: din.unitSymbolType) -> din.PhysicalValueType:
    multiplier, number = scaled(amount)
    return din.PhysicalValueType(Multiplier=multiplier, Unit=unit, Value=number)


def value(pv: din.PhysicalValueType | None, default: float = 0.0) -> float:
    """The amount a physical value stands for; the Unit (optional in DIN, and left out by
    some cars) is not needed for that."""
    return default if pv is None else decimal(pv.Value, pv.Multiplier)


def volts(amount: float) -> din.PhysicalValueType:
    return physical(amount, _U.V)


def amps(amount: float) -> din.PhysicalValueType:
    return physical(amount, _U.A)


def watts(amount: float) -> din.PhysicalValueType:
    return physical(amount, _U.W)


def evse_id_bytes(evse_id: str) -> bytes:
    """The EVSEID octets of SessionSetupRes.

    DIN SPEC 70121 takes the DIN SPEC 91286 EVSE ID ("+49*89*6360") packed two digits per
    octet, '*' as the nibble 0xA and an odd count padded with 0xF ("49*89*6360" →
    49 A8 9A 63 60). An ID given as hex octets ("49A80737A45678") is taken as is; any other
    text (an ISO 15118-2 EVSEID such as "DE*ABC*E1234567*1") is sent as its ASCII octets; no
    ID at all, or one too long, as the single octet 0x00 that DIN prescribes for an SECC
    without an ID (and that real chargers send)."""
    text = evse_id.strip()
    if not text:
        return b"\x00"
    if _DIN_91286.fullmatch(text):
        digits = text.lstrip("+").replace("*", "A")
        if len(digits) % 2:
            digits += "F"
        octets = bytes.fromhex(digits)
    elif _HEX.fullmatch(text):
        octets = bytes.fromhex(text)
    else:
        octets = text.encode("ascii", errors="replace")
    return octets if len(octets) <= EVSEID_MAX_OCTETS else b"\x00"


def energy_transfer_type(ctx: Context) -> EnergyMode | None:
    """The one DC transfer type DIN lets the SECC offer: the EVSE's first DC mode that DIN
    knows (DC_unique has no DIN EVSESupportedEnergyTransferType)."""
    for mode in ctx.energy_modes:
        if mode.is_dc and mode.value in din.EVSESupportedEnergyTransferType.__members__:
            return mode
    return None


_ISOLATION = {
    IsolationStatus.INVALID: din.isolationLevelType.Invalid,
    IsolationStatus.VALID: din.isolationLevelType.Valid,
    IsolationStatus.WARNING: din.isolationLevelType.Warning,
    IsolationStatus.FAULT: din.isolationLevelType.Fault,
    # UNKNOWN (no test run yet) and NO_IMD have no DIN token: the field is left out
}


def _status_code(status: EvseStatus, monitoring: bool) -> din.DC_EVSEStatusCodeType:
    C = din.DC_EVSEStatusCodeType
    if status.emergency_shutdown:
        return C.EVSE_EmergencyShutdown
    if status.malfunction or status.isolation is IsolationStatus.FAULT:
        return C.EVSE_Malfunction
    if status.stop is not None:
        return C.EVSE_Shutdown
    return C.EVSE_IsolationMonitoringActive if monitoring else C.EVSE_Ready


def dc_evse_status(ctx: Context, *, monitoring: bool = False) -> din.DC_EVSEStatusType:
    """DC_EVSEStatus from the snapshot; `monitoring`: the insulation test is running
    (CableCheckRes Ongoing), reported as EVSE_IsolationMonitoringActive."""
    status = ctx.status
    notification = din.EVSENotificationType.None_
    if evse_unavailable(status):
        notification = din.EVSENotificationType.StopCharging
    return din.DC_EVSEStatusType(
        EVSEIsolationStatus=_ISOLATION.get(status.isolation),
        EVSEStatusCode=_status_code(status, monitoring),
        NotificationMaxDelay=status.notification_max_delay,
        EVSENotification=notification,
    )


def dc_charge_parameter(ctx: Context) -> din.DC_EVSEChargeParameterType:
    limits = ctx.status.limits
    tolerance = limits.current_regulation_tolerance
    energy = limits.energy_to_be_delivered
    return din.DC_EVSEChargeParameterType(
        DC_EVSEStatus=dc_evse_status(ctx),
        EVSEMaximumCurrentLimit=amps(limits.max_current),
        EVSEMaximumPowerLimit=watts(limits.max_power),
        EVSEMaximumVoltageLimit=volts(limits.max_voltage),
        EVSEMinimumCurrentLimit=amps(limits.min_current),
        EVSEMinimumVoltageLimit=volts(limits.min_voltage),
        EVSECurrentRegulationTolerance=None if tolerance is None else amps(tolerance),
        EVSEPeakCurrentRipple=amps(limits.peak_current_ripple),
        EVSEEnergyToBeDelivered=None if energy is None else physical(energy, _U.Wh),
    )


def sa_schedule_list(ctx: Context) -> din.SAScheduleListType:
    """The mandatory SAScheduleList: one tuple, no SalesTariff ([V2G-DC-554]), the EVSE's
    power allowance over the configured duration with PMax in W capped at `PMAX_LIMIT`."""
    points = schedule_points(ctx.status, ctx.config.schedule_duration)
    entries = [
        din.PMaxScheduleEntryType(
            RelativeTimeInterval=din.RelativeTimeIntervalType(start=p.start, duration=p.duration),
            PMax=max(0, min(PMAX_LIMIT, int(p.max_power))),
        )
        for p in points
    ]
    return din.SAScheduleListType(
        SAScheduleTuple=[
            din.SAScheduleTupleType(
                SAScheduleTupleID=SA_SCHEDULE_TUPLE_ID,
                PMaxSchedule=din.PMaxScheduleType(PMaxScheduleID=1, PMaxScheduleEntry=entries),
            )
        ]
    )


def status_fields(response_type: type[Any], ctx: Context, data: SessionData) -> dict[str, Any]:
    """The status blocks a response of `response_type` must carry, from the EVSE snapshot
    (used for FAILED responses; `secc.minimal` fills whatever else is mandatory)."""
    names = {f.py for f in response_type._exi_fields_}
    out: dict[str, Any] = {}
    if "DC_EVSEStatus" in names:
        out["DC_EVSEStatus"] = dc_evse_status(ctx)
    if "DC_EVSEChargeParameter" in names:
        out["DC_EVSEChargeParameter"] = dc_charge_parameter(ctx)
    if "SAScheduleList" in names:
        out["SAScheduleList"] = sa_schedule_list(ctx)
    if "EVSEPresentVoltage" in names:
        out["EVSEPresentVoltage"] = volts(ctx.status.present_voltage)
    if "EVSEPresentCurrent" in names:
        out["EVSEPresentCurrent"] = amps(ctx.status.present_current)
    if "EVSEID" in names:
        out["EVSEID"] = evse_id_bytes(ctx.evse_id)
    if "EVSEProcessing" in names:
        out["EVSEProcessing"] = din.EVSEProcessingType.Finished
    return out
