"""Between the EVSE's SI values and ISO 15118-2 types: physical values, EVSE status blocks,
charge parameters and schedules."""

from __future__ import annotations

from typing import Any

from exi_schemas import iso2
from secc.context import Context, SessionData
from secc.errors import SequenceError
from secc.evse import EnergyMode, EvseStatus, IsolationStatus, PowerLimit
from secc.steps import schedule_points
from secc.tariff import Tariff

__all__ = [
    "ac_evse_status",
    "dc_evse_status",
    "energy_mode",
    "notification",
    "physical",
    "require_mode",
    "sa_schedule_list",
    "sales_tariff",
    "status_fields",
    "value",
]

_U = iso2.unitSymbolType


def physical(amount: float, unit: iso2.unitSymbolType) -> iso2.PhysicalValueType:
    """`amount` as Value * 10^Multiplier: multiplier 0 when the amount is a whole number
    that fits 16 bits, else the most precise multiplier that fits."""
    if amount == int(amount) and -32768 <= amount <= 32767:
        return iso2.PhysicalValueType(Multiplier=0, Unit=unit, Value=int(amount))
    for multiplier in (-3, -2, -1, 0, 1, 2, 3):
        scaled = round(amount / 10**multiplier)
        if -32768 <= scaled <= 32767:
            return iso2.PhysicalValueType(Multiplier=multiplier, Unit=unit, Value=scaled)
    raise ValueError(f"{amount} {unit} does not fit a PhysicalValueType")


def value(pv: iso2.PhysicalValueType | None, default: float = 0.0) -> float:
    if pv is None:
        return default
    return (
        float(pv.Value * 10**pv.Multiplier)
        if pv.Multiplier >= 0
        else pv.Value / 10 ** (-pv.Multiplier)
    )


def volts(amount: float) -> iso2.PhysicalValueType:
    return physical(amount, _U.V)


def amps(amount: float) -> iso2.PhysicalValueType:
    return physical(amount, _U.A)


def watts(amount: float) -> iso2.PhysicalValueType:
    return physical(amount, _U.W)


def energy_mode(ctx: Context, data: SessionData) -> EnergyMode:
    return data.energy_mode or ctx.energy_modes[0]


def require_mode(ctx: Context, data: SessionData, *, dc: bool, request: str) -> None:
    """A DC request in an AC session, or the reverse, is not expected there [V2G2-538]."""
    if energy_mode(ctx, data).is_dc is not dc:
        raise SequenceError(f"{request} in an {'AC' if dc else 'DC'} session")


def notification(ctx: Context, data: SessionData) -> iso2.EVSENotificationType:
    """StopCharging when the EVSE or operator wants to stop; ReNegotiation when asked."""
    N = iso2.EVSENotificationType
    if ctx.status.stop is not None or ctx.status.emergency_shutdown or ctx.status.malfunction:
        return N.StopCharging
    if ctx.renegotiation_requested and data.charging:
        return N.ReNegotiation
    return N.None_


def ac_evse_status(ctx: Context, data: SessionData) -> iso2.AC_EVSEStatusType:
    return iso2.AC_EVSEStatusType(
        NotificationMaxDelay=ctx.status.notification_max_delay,
        EVSENotification=notification(ctx, data),
        RCD=ctx.status.malfunction,
    )


_ISOLATION = {
    IsolationStatus.INVALID: iso2.isolationLevelType.Invalid,
    IsolationStatus.VALID: iso2.isolationLevelType.Valid,
    IsolationStatus.WARNING: iso2.isolationLevelType.Warning,
    IsolationStatus.FAULT: iso2.isolationLevelType.Fault,
    IsolationStatus.NO_IMD: iso2.isolationLevelType.No_IMD,
}


def dc_status_code(status: EvseStatus) -> iso2.DC_EVSEStatusCodeType:
    C = iso2.DC_EVSEStatusCodeType
    if status.emergency_shutdown:
        return C.EVSE_EmergencyShutdown
    if status.malfunction or status.isolation is IsolationStatus.FAULT:
        return C.EVSE_Malfunction
    if status.stop is not None:
        return C.EVSE_Shutdown
    return C.EVSE_Ready


def dc_evse_status(
    ctx: Context, data: SessionData, *, isolation: bool = True
) -> iso2.DC_EVSEStatusType:
    level = _ISOLATION.get(ctx.status.isolation) if isolation else None
    return iso2.DC_EVSEStatusType(
        NotificationMaxDelay=ctx.status.notification_max_delay,
        EVSENotification=notification(ctx, data),
        EVSEIsolationStatus=level,
        EVSEStatusCode=dc_status_code(ctx.status),
    )


def ac_charge_parameter(ctx: Context, data: SessionData) -> iso2.AC_EVSEChargeParameterType:
    limits = ctx.status.limits
    return iso2.AC_EVSEChargeParameterType(
        AC_EVSEStatus=ac_evse_status(ctx, data),
        EVSENominalVoltage=volts(limits.nominal_voltage),
        EVSEMaxCurrent=amps(ac_max_current(ctx, data)),
    )


def dc_charge_parameter(ctx: Context, data: SessionData) -> iso2.DC_EVSEChargeParameterType:
    limits = ctx.status.limits
    return iso2.DC_EVSEChargeParameterType(
        DC_EVSEStatus=dc_evse_status(ctx, data),
        EVSEMaximumCurrentLimit=amps(limits.max_current),
        EVSEMaximumPowerLimit=watts(limits.max_power),
        EVSEMaximumVoltageLimit=volts(limits.max_voltage),
        EVSEMinimumCurrentLimit=amps(limits.min_current),
        EVSEMinimumVoltageLimit=volts(limits.min_voltage),
        EVSECurrentRegulationTolerance=(
            None
            if limits.current_regulation_tolerance is None
            else amps(limits.current_regulation_tolerance)
        ),
        EVSEPeakCurrentRipple=amps(limits.peak_current_ripple),
        EVSEEnergyToBeDelivered=(
            None
            if limits.energy_to_be_delivered is None
            else physical(limits.energy_to_be_delivered, _U.Wh)
        ),
    )


def sa_schedule_list(
    ctx: Context, *, max_entries: int | None = None, tuple_id: int = 1
) -> iso2.SAScheduleListType:
    """One SAScheduleTuple whose PMaxSchedule follows the EVSE's schedule (or its maximum
    power for the whole duration), at most `max_entries` entries (`secc.steps.schedule_points`
    says how a cut schedule stays within what the site allows)."""
    points = schedule_points(ctx.status, ctx.config.schedule_duration, max_entries=max_entries)
    entries = [
        iso2.PMaxScheduleEntryType(
            RelativeTimeInterval=iso2.RelativeTimeIntervalType(start=p.start, duration=p.duration),
            PMax=watts(p.max_power),
        )
        for p in points
    ]
    return iso2.SAScheduleListType(
        SAScheduleTuple=[
            iso2.SAScheduleTupleType(
                SAScheduleTupleID=tuple_id,
                PMaxSchedule=iso2.PMaxScheduleType(PMaxScheduleEntry=entries),
            )
        ]
    )


def schedule_end(schedule: iso2.PMaxScheduleType) -> int:
    """Seconds from now to the end of a PMaxSchedule (its last entry's start + duration)."""
    last = schedule.PMaxScheduleEntry[-1].RelativeTimeInterval
    assert last is not None  # sa_schedule_list always writes RelativeTimeInterval
    return last.start + (last.duration or 0)


def sales_tariff(
    tariff: Tariff, *, sales_tariff_id: int, duration: int, ident: str
) -> iso2.SalesTariffType:
    """`tariff` as an ISO 15118-2 SalesTariff: one flat entry over the schedule's `duration`
    (the PMaxSchedule's, so both cover the same time), one price level
    (NumEPriceLevels 1, EPriceLevel 1) and a ConsumptionCost of 100 %
    relativePricePercentage from 0 Wh on (a flat price: no part of the schedule is cheaper).
    The absolute prices are in SalesTariffDescription, the tariff's canonical text
    (`secc.tariff.Tariff.description`), which the car can show and parse. `ident` is the Id
    attribute a Plug & Charge signature references."""
    return iso2.SalesTariffType(
        Id=ident,
        SalesTariffID=sales_tariff_id,
        SalesTariffDescription=tariff.description,
        NumEPriceLevels=1,
        SalesTariffEntry=[
            iso2.SalesTariffEntryType(
                RelativeTimeInterval=iso2.RelativeTimeIntervalType(start=0, duration=duration),
                EPriceLevel=1,
                ConsumptionCost=[
                    iso2.ConsumptionCostType(
                        startValue=physical(0, _U.Wh),
                        Cost=[
                            iso2.CostType(
                                costKind=iso2.costKindType.relativePricePercentage,
                                amount=100,
                                amountMultiplier=0,
                            )
                        ],
                    )
                ],
            )
        ],
    )


def offered_schedule(schedules: iso2.SAScheduleListType) -> tuple[PowerLimit, ...]:
    """The PMaxSchedule as sent (first tuple), to check the car's ChargingProfile against."""
    tuple_ = schedules.SAScheduleTuple[0]
    out = []
    for entry in tuple_.PMaxSchedule.PMaxScheduleEntry:
        interval = entry.RelativeTimeInterval
        start = 0 if interval is None else interval.start
        out.append(PowerLimit(start=start, max_power=value(entry.PMax)))
    return tuple(out)


def ac_max_current(ctx: Context, data: SessionData) -> float:
    """EVSEMaxCurrent per phase: the EVSE's maximum, lower under a power limit (a site cap)
    at the nominal voltage on the phases of the session's energy mode."""
    limits = ctx.status.limits
    mode = energy_mode(ctx, data)
    phases = 1 if mode is EnergyMode.AC_SINGLE_PHASE_CORE else 3
    if limits.nominal_voltage <= 0:
        return limits.max_current
    return max(0.0, min(limits.max_current, limits.max_power / (limits.nominal_voltage * phases)))


def status_fields(response_type: type[Any], ctx: Context, data: SessionData) -> dict[str, Any]:
    """The mandatory status blocks of `response_type`, filled from the EVSE snapshot
    (used for FAILED responses and by handlers)."""
    names = {f.py for f in response_type._exi_fields_}
    dc = energy_mode(ctx, data).is_dc
    out: dict[str, Any] = {}
    if "DC_EVSEStatus" in names and ("AC_EVSEStatus" not in names or dc):
        out["DC_EVSEStatus"] = dc_evse_status(ctx, data)
    elif "AC_EVSEStatus" in names:
        out["AC_EVSEStatus"] = ac_evse_status(ctx, data)
    if "DC_EVSEChargeParameter" in names:
        if dc:
            out["DC_EVSEChargeParameter"] = dc_charge_parameter(ctx, data)
        else:
            out["AC_EVSEChargeParameter"] = ac_charge_parameter(ctx, data)
    if "EVSEID" in names:
        out["EVSEID"] = ctx.evse_id
    if "EVSEProcessing" in names:
        out["EVSEProcessing"] = iso2.EVSEProcessingType.Finished
    return out
