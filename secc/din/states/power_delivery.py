"""PowerDeliveryReq (DIN SPEC 70121 9.4.2.5): ReadyToChargeState true starts the power
transfer after pre-charge, false ends it ([V2G-DC-459], [V2G-DC-462]). DIN has no
renegotiation and no pause.

Start needs CP state C/D and an EVSE able to deliver ([V2G-DC-401]), a ChargingProfile (if
any) naming the offered SAScheduleTupleID ([V2G-DC-400]) with entries in time order, and an
output that has reached the pre-charge target. Profile powers are not held against PMax:
DIN's PMax is capped at 32767 W, and real cars' profiles do not follow it.
"""

from __future__ import annotations

from exi_schemas import din
from secc.context import Context, Outcome, SessionData
from secc.din import convert
from secc.din.errors import PresentVoltageTooLowError
from secc.din.state import State
from secc.errors import ChargingProfileError, PowerDeliveryError, TariffSelectionError
from secc.steps import check_power_delivery_start, start_power_delivery, stop_power_delivery

R = din.responseCodeType


def handle_power_delivery(
    req: din.PowerDeliveryReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    if not req.ReadyToChargeState:
        step = stop_power_delivery(ctx, data)
        return Outcome(
            response=_response(ctx),
            next_state=State.WAIT_SESSION_STOP,
            data=step.data,
            commands=step.commands,
        )
    if data.charging:
        raise PowerDeliveryError("ReadyToChargeState=true while charging (DIN: no renegotiation)")
    _check_profile(req.ChargingProfile, data)
    check_power_delivery_start(ctx)
    _check_pre_charged(ctx, data)
    step = start_power_delivery(ctx, data)
    return Outcome(
        response=_response(ctx), next_state=State.CHARGING, data=step.data, commands=step.commands
    )


def _check_profile(profile: din.ChargingProfileType | None, data: SessionData) -> None:
    if profile is None:
        return
    if profile.SAScheduleTupleID != data.sa_schedule_tuple_id:
        raise TariffSelectionError(f"SAScheduleTupleID {profile.SAScheduleTupleID} was not offered")
    starts = [e.ChargingProfileEntryStart for e in profile.ProfileEntry]
    if starts != sorted(starts):
        raise ChargingProfileError("ChargingProfile entries are not in time order")


def _check_pre_charged(ctx: Context, data: SessionData) -> None:
    """The output is near the last pre-charge target (if the car pre-charged at all)."""
    status = ctx.status
    target = data.target_voltage
    if target <= 0 or status.voltage_reached:
        return
    if status.present_voltage < target - ctx.config.pre_charge_tolerance:
        raise PresentVoltageTooLowError(
            f"output at {status.present_voltage:.0f} V, pre-charge target {target:.0f} V"
        )


def _response(ctx: Context) -> din.PowerDeliveryResType:
    return din.PowerDeliveryResType(ResponseCode=R.OK, DC_EVSEStatus=convert.dc_evse_status(ctx))
