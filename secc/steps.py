"""Decisions that DIN SPEC 70121 and ISO 15118-2 make alike, written once.

Each step takes the EVSE snapshot (`Context.status`) and the session so far and returns what
to do: the new `SessionData`, the commands for the EVSE or the backend, and whether the
phase is over. Steps raise the typed errors of `secc.errors`; the protocol handlers only
turn a step's result into their own schema's response. Nothing here knows a schema.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from secc.context import Context, SessionData
from secc.errors import ContractError, PowerDeliveryError, V2GError
from secc.events import Authorize, Command, SetContactors, SetTarget, StartCableCheck, StopOutput
from secc.evse import ControlPilotState, EvseLimits, EvseStatus, IsolationStatus
from secc.records import AuthorizationRequest, IdentificationKind

__all__ = [
    "CURRENT_DEMAND_VOLTAGE_MARGIN",
    "READY_CP_STATES",
    "AuthorizationStep",
    "CableCheckFailed",
    "CableCheckStep",
    "LimitFlags",
    "Progress",
    "SchedulePoint",
    "TargetStep",
    "authorization_step",
    "cable_check_step",
    "check_power_delivery_start",
    "current_demand_step",
    "decimal",
    "evse_unavailable",
    "limits_achieved",
    "pre_charge_step",
    "scaled",
    "schedule_points",
    "start_power_delivery",
    "stop_power_delivery",
]

#: CP states in which the car allows power transfer (IEC 61851-1)
READY_CP_STATES = (ControlPilotState.C, ControlPilotState.D)
#: isolation results after which the cable check is over
_ISOLATION_DONE = (IsolationStatus.VALID, IsolationStatus.WARNING, IsolationStatus.NO_IMD)
_ISOLATION_FAILED = (IsolationStatus.FAULT, IsolationStatus.INVALID)
#: a CurrentDemand target may exceed the EVSE maximum by this much (rounding of multipliers)
CURRENT_DEMAND_VOLTAGE_MARGIN = 1.0


class Progress(Enum):
    """Where a request that may be answered Ongoing stands."""

    ONGOING = "Ongoing"
    FINISHED = "Finished"


# --- physical values -------------------------------------------------------------------------


def scaled(amount: float) -> tuple[int, int]:
    """`amount` as (multiplier, value) with value * 10**multiplier ≈ amount and value an
    int16: multiplier 0 for a whole number that fits, else the most precise that fits."""
    if amount == int(amount) and -32768 <= amount <= 32767:
        return 0, int(amount)
    for multiplier in (-3, -2, -1, 0, 1, 2, 3):
        value = round(amount / 10**multiplier)
        if -32768 <= value <= 32767:
            return multiplier, value
    raise ValueError(f"{amount} does not fit a PhysicalValueType")


def decimal(value: int, multiplier: int) -> float:
    """value * 10**multiplier without binary rounding surprises for negative multipliers."""
    return float(value * 10**multiplier) if multiplier >= 0 else value / 10 ** (-multiplier)


# --- authorization (EIM) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizationStep:
    progress: Progress
    data: SessionData
    commands: tuple[Command, ...] = ()


def authorization_step(
    request: AuthorizationRequest, ctx: Context, data: SessionData
) -> AuthorizationStep:
    """Ask the backend once (`Authorize`), stay Ongoing until its `AuthorizationResult` is fed
    in; a refusal raises `ContractError`. An accepted decision is kept in the session data."""
    if data.authorization is not None and data.authorization.accepted:
        return AuthorizationStep(Progress.FINISHED, data)
    if not data.authorization_requested:
        external = request.kind is IdentificationKind.EXTERNAL
        if external and request.id_token is None and ctx.config.eim_token_required:
            return AuthorizationStep(Progress.ONGOING, data)  # waiting for a card
        new = dataclasses.replace(data, authorization_requested=True, id_token=request.id_token)
        return AuthorizationStep(Progress.ONGOING, new, (Authorize(request),))
    result = ctx.authorization
    if result is None:
        return AuthorizationStep(Progress.ONGOING, data)
    if not result.decision.accepted:
        raise ContractError(f"authorization refused: {result.decision.status.value}")
    return AuthorizationStep(
        Progress.FINISHED, dataclasses.replace(data, authorization=result.decision)
    )


# --- cable check -----------------------------------------------------------------------------


class CableCheckFailed(V2GError):
    """The insulation test failed or took too long, or the car is not in CP state C/D."""


@dataclass(frozen=True, slots=True)
class CableCheckStep:
    progress: Progress
    data: SessionData
    commands: tuple[Command, ...] = ()


def cable_check_step(
    ctx: Context,
    data: SessionData,
    *,
    elapsed: float = 0.0,
    cp_grace: float = 0.0,
    time_limit: float | None = None,
) -> CableCheckStep:
    """One CableCheckReq. `elapsed`: seconds since the first CableCheckReq. The car must be in
    CP state C/D, within `cp_grace` of the first request (V2G_SECC_CPState_Detection_Timeout;
    0: at once); then `StartCableCheck` once, Ongoing until the isolation result is in, which
    must come within `time_limit` (None: no limit of our own)."""
    status = ctx.status
    if status.cp_state not in READY_CP_STATES:
        if elapsed < cp_grace and not data.cable_check_started:
            return CableCheckStep(Progress.ONGOING, data)
        raise CableCheckFailed(
            f"CP state {status.cp_state.value} during CableCheck (C or D needed)"
        )
    if not data.cable_check_started:
        new = dataclasses.replace(data, cable_check_started=True)
        return CableCheckStep(Progress.ONGOING, new, (StartCableCheck(),))
    if status.isolation in _ISOLATION_FAILED:
        raise CableCheckFailed(f"insulation test: {status.isolation.value}")
    if status.isolation in _ISOLATION_DONE:
        return CableCheckStep(Progress.FINISHED, data)
    if time_limit is not None and elapsed > time_limit:
        raise CableCheckFailed(f"no insulation result within {time_limit:.0f} s")
    return CableCheckStep(Progress.ONGOING, data)


# --- targets: pre-charge and the charge loop -------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetStep:
    data: SessionData
    commands: tuple[Command, ...] = ()


def pre_charge_step(voltage: float, current: float, ctx: Context, data: SessionData) -> TargetStep:
    """PreChargeReq: follow the car's target voltage with its (small) current, limited to the
    EVSE maximum current; a target above the EVSE maximum voltage fails the request."""
    limits = ctx.status.limits
    if voltage > limits.max_voltage:
        raise V2GError(
            f"pre-charge target {voltage} V above the EVSE maximum {limits.max_voltage} V"
        )
    commands: tuple[Command, ...] = ()
    if (voltage, current) != (data.target_voltage, data.target_current):
        commands = (SetTarget(voltage, min(current, limits.max_current), pre_charge=True),)
    new = dataclasses.replace(data, target_voltage=voltage, target_current=current)
    return TargetStep(new, commands)


def current_demand_step(
    voltage: float, current: float, ctx: Context, data: SessionData
) -> TargetStep:
    """CurrentDemandReq: the car's target current clamped to the EVSE maximum current and
    power; a target voltage above the EVSE maximum (plus rounding) fails the request."""
    limits = ctx.status.limits
    if voltage > limits.max_voltage + CURRENT_DEMAND_VOLTAGE_MARGIN:
        raise V2GError(f"target {voltage} V above the EVSE maximum {limits.max_voltage} V")
    allowed = min(current, limits.max_current)
    if voltage > 0:
        allowed = min(allowed, limits.max_power / voltage)
    commands: tuple[Command, ...] = ()
    if (voltage, allowed) != (data.target_voltage, data.target_current):
        commands = (SetTarget(voltage, allowed),)
    new = dataclasses.replace(data, target_voltage=voltage, target_current=allowed)
    return TargetStep(new, commands)


@dataclass(frozen=True, slots=True)
class LimitFlags:
    """CurrentDemandRes's EVSE{Current,Voltage,Power}LimitAchieved."""

    current: bool
    voltage: bool
    power: bool


def limits_achieved(voltage: float, current: float, limits: EvseLimits) -> LimitFlags:
    """Which EVSE limit the car's request runs into."""
    return LimitFlags(
        current=current > limits.max_current,
        voltage=voltage >= limits.max_voltage,
        power=voltage * current > limits.max_power,
    )


# --- power delivery --------------------------------------------------------------------------


def evse_unavailable(status: EvseStatus) -> bool:
    """The EVSE or the operator wants no (more) power transfer."""
    return status.stop is not None or status.emergency_shutdown or status.malfunction


def check_power_delivery_start(ctx: Context, *, dc: bool = True) -> None:
    """PowerDelivery(start) needs an EVSE able to deliver and, for DC, CP state C/D (the car
    is in C since CableCheck; an AC car switches to C only after PowerDeliveryRes, and the
    EVSE closes its contactor when it sees C)."""
    if dc and ctx.status.cp_state not in READY_CP_STATES:
        raise PowerDeliveryError(f"CP state {ctx.status.cp_state.value}: C or D needed")
    if evse_unavailable(ctx.status):
        raise PowerDeliveryError("the EVSE cannot deliver power now")


def start_power_delivery(ctx: Context, data: SessionData) -> TargetStep:
    """Close the contactors (unless already charging) and take the meter start."""
    commands: tuple[Command, ...] = () if data.charging else (SetContactors(True),)
    meter_start = data.meter_start or ctx.status.meter
    new = dataclasses.replace(
        data, charging=True, renegotiating=False, meter_start=meter_start, meter_last=meter_start
    )
    return TargetStep(new, commands)


def stop_power_delivery(ctx: Context, data: SessionData) -> TargetStep:
    """Ramp the current down and open the contactors; keep the last meter reading."""
    new = dataclasses.replace(data, charging=False, meter_last=ctx.status.meter or data.meter_last)
    return TargetStep(new, (StopOutput(), SetContactors(False)))


# --- schedules -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchedulePoint:
    """From `start` s, at most `max_power` W; the last point carries the `duration` left."""

    start: int
    max_power: float
    duration: int | None


def schedule_points(
    status: EvseStatus, duration: int, *, max_entries: int | None = None
) -> Sequence[SchedulePoint]:
    """The EVSE's power allowance over `duration` s in time order (its maximum power
    throughout when it has no schedule), at most `max_entries` points (1024: the schema's
    bound), the first at 0. When the cap cuts the schedule short, the last point kept runs
    to the end with the lowest power of the points it replaces, so the car is never offered
    more than the site allows at any time."""
    ordered = sorted(status.schedule, key=lambda p: p.start)
    points = [(p.start, p.max_power) for p in ordered if p.start < duration]
    if not points or points[0][0] != 0:
        points.insert(0, (0, status.limits.max_power))
    cap = max_entries or 1024
    if len(points) > cap:
        rest = min(power for _start, power in points[cap - 1 :])
        points = [*points[: cap - 1], (points[cap - 1][0], rest)]
    last = len(points) - 1
    return [
        SchedulePoint(start, power, duration - start if i == last else None)
        for i, (start, power) in enumerate(points)
    ]
