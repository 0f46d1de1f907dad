"""PowerDeliveryReq (ISO 15118-2 8.4.3.11): start, stop or renegotiate power transfer."""

from __future__ import annotations

import dataclasses

from exi_schemas import iso2
from secc.context import Context, Outcome, SessionData
from secc.errors import ChargingProfileError, TariffSelectionError, V2GError
from secc.events import Command, SetTarget
from secc.iso2 import convert
from secc.iso2.state import State
from secc.steps import check_power_delivery_start, start_power_delivery, stop_power_delivery

R = iso2.responseCodeType
C = iso2.chargeProgressType
PROFILE_TOLERANCE_W = 1.0  # rounding of PhysicalValue multipliers


def handle_power_delivery(
    req: iso2.PowerDeliveryReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    if req.ChargeProgress == C.Start:
        return _start(req, ctx, data)
    if req.ChargeProgress == C.Renegotiate:
        if not data.charging:
            # ISO 15118-4 TC_SECC_AC_VTB_PowerDelivery_014 expects plain FAILED here
            raise V2GError("Renegotiate while not charging")
        new = dataclasses.replace(data, renegotiating=True)
        return Outcome(
            response=_response(ctx, new),
            next_state=State.WAIT_CHARGE_PARAMETER_DISCOVERY,
            data=new,
        )
    step = stop_power_delivery(ctx, data)
    return Outcome(
        response=_response(ctx, step.data),
        next_state=State.WAIT_SESSION_STOP,
        data=step.data,
        commands=step.commands,
    )


def _start(req: iso2.PowerDeliveryReqType, ctx: Context, data: SessionData) -> Outcome[State]:
    if req.SAScheduleTupleID != data.sa_schedule_tuple_id:
        raise TariffSelectionError(f"SAScheduleTupleID {req.SAScheduleTupleID} was not offered")
    dc = data.energy_mode is not None and data.energy_mode.is_dc
    if data.renegotiating and data.charging and ctx.status.stop is not None:
        # stopped (by the operator or the EVSE) during a renegotiation, power still flowing:
        # the car is told StopCharging (in this response's EVSEStatus, then in the loop) and
        # ends the session as asked, rather than by a FAILED response code
        new = dataclasses.replace(data, renegotiating=False)
        return Outcome(response=_response(ctx, new), next_state=State.CHARGING, data=new)
    check_power_delivery_start(ctx, dc=dc)
    _check_profile(req.ChargingProfile, ctx, data)
    commands: tuple[Command, ...] = ()
    if data.energy_mode is not None and not data.energy_mode.is_dc:
        current = min(data.ev_max_current or 0.0, ctx.status.limits.max_current)
        commands = (SetTarget(ctx.status.limits.nominal_voltage, current),)
    step = start_power_delivery(ctx, data)
    return Outcome(
        response=_response(ctx, step.data),
        next_state=State.CHARGING,
        data=step.data,
        commands=commands + step.commands,
    )


def _check_profile(
    profile: iso2.ChargingProfileType | None, ctx: Context, data: SessionData
) -> None:
    """Every ChargingProfile entry within the PMaxSchedule in force at its start [V2G2-?]:
    the schedule sent in ChargeParameterDiscoveryRes (a site cap that moved since is
    renegotiated afterwards), or the EVSE's present one for a session that has none."""
    if profile is None:
        return
    schedule = data.offered_schedule or ctx.status.schedule
    limits = sorted(schedule, key=lambda p: p.start)
    starts = [p.ChargingProfileEntryStart for p in profile.ProfileEntry]
    if starts != sorted(starts):
        raise ChargingProfileError("ChargingProfile entries are not in time order")
    for entry in profile.ProfileEntry:
        allowed = limits[0].max_power if data.offered_schedule else ctx.status.limits.max_power
        for limit in limits:
            if limit.start <= entry.ChargingProfileEntryStart:
                allowed = limit.max_power
        power = convert.value(entry.ChargingProfileEntryMaxPower)
        if power > allowed + PROFILE_TOLERANCE_W:
            raise ChargingProfileError(
                f"profile asks {power:.0f} W at {entry.ChargingProfileEntryStart} s; "
                f"the schedule allows {allowed:.0f} W"
            )


def _response(ctx: Context, data: SessionData) -> iso2.PowerDeliveryResType:
    return iso2.PowerDeliveryResType(
        ResponseCode=R.OK, **convert.status_fields(iso2.PowerDeliveryResType, ctx, data)
    )
