"""CurrentDemandReq (DIN SPEC 70121 9.4.3.2): the charge loop ([V2G-DC-465]).

The car's target current is clamped to the EVSE limits; the answer reports the present
output, which limit the request runs into, and EVSENotification=StopCharging when the
EVSE or the operator wants to end (the car then sends PowerDelivery(false)).
"""

from __future__ import annotations

import dataclasses

from exi_schemas import din
from secc.context import Context, Outcome, SessionData
from secc.din import convert
from secc.din.state import State
from secc.steps import current_demand_step, limits_achieved

R = din.responseCodeType


def handle_current_demand(
    req: din.CurrentDemandReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    status = ctx.status
    limits = status.limits
    voltage = convert.value(req.EVTargetVoltage)
    current = convert.value(req.EVTargetCurrent)
    step = current_demand_step(voltage, current, ctx, data)
    new = dataclasses.replace(
        step.data,
        meter_last=status.meter or data.meter_last,
        stop_reason=status.stop if status.stop is not None else data.stop_reason,
    )
    flags = limits_achieved(voltage, current, limits)
    response = din.CurrentDemandResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx),
        EVSEPresentVoltage=convert.volts(status.present_voltage),
        EVSEPresentCurrent=convert.amps(status.present_current),
        EVSECurrentLimitAchieved=flags.current,
        EVSEVoltageLimitAchieved=flags.voltage,
        EVSEPowerLimitAchieved=flags.power,
        EVSEMaximumVoltageLimit=convert.volts(limits.max_voltage),
        EVSEMaximumCurrentLimit=convert.amps(limits.max_current),
        EVSEMaximumPowerLimit=convert.watts(limits.max_power),
    )
    return Outcome(response=response, data=new, commands=step.commands)
