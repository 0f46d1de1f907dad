"""ChargeParameterDiscoveryReq (DIN SPEC 70121 9.4.2.2): the car's DC limits in, the EVSE's
limits and the SAScheduleList (mandatory in DIN) out."""

from __future__ import annotations

import dataclasses

from exi_schemas import din
from secc.context import Context, Outcome, SessionData
from secc.din import convert
from secc.din.errors import EnergyTransferTypeError
from secc.din.state import State
from secc.errors import WrongChargeParameterError
from secc.evse import EnergyMode

R = din.responseCodeType


def _requested_mode(req: din.ChargeParameterDiscoveryReqType, ctx: Context) -> EnergyMode:
    """A DC mode this EVSE offers ([V2G-DC-397])."""
    mode = EnergyMode(req.EVRequestedEnergyTransferType.value)
    if not mode.is_dc or mode not in ctx.energy_modes:
        raise EnergyTransferTypeError(f"{mode.value} is not offered by this EVSE")
    return mode


def handle_charge_parameter_discovery(
    req: din.ChargeParameterDiscoveryReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    mode = _requested_mode(req, ctx)
    ev = req.DC_EVChargeParameter
    if ev is None or req.AC_EVChargeParameter is not None:  # [V2G-DC-398]
        raise WrongChargeParameterError("DIN needs DC_EVChargeParameter (and no AC parameters)")
    max_voltage = convert.value(ev.EVMaximumVoltageLimit)
    max_current = convert.value(ev.EVMaximumCurrentLimit)
    max_power = convert.value(ev.EVMaximumPowerLimit, max_voltage * max_current)
    limits = ctx.status.limits
    if max_voltage < limits.min_voltage:
        raise WrongChargeParameterError(
            f"EV maximum voltage {max_voltage} V is below the EVSE minimum {limits.min_voltage} V"
        )
    new = dataclasses.replace(
        data,
        energy_mode=mode,
        ev_max_voltage=max_voltage,
        ev_max_current=max_current,
        ev_max_power=max_power,
        sa_schedule_tuple_id=convert.SA_SCHEDULE_TUPLE_ID,
    )
    response = din.ChargeParameterDiscoveryResType(
        ResponseCode=R.OK,
        EVSEProcessing=din.EVSEProcessingType.Finished,
        SAScheduleList=convert.sa_schedule_list(ctx),
        DC_EVSEChargeParameter=convert.dc_charge_parameter(ctx),
    )
    return Outcome(response=response, next_state=State.WAIT_CABLE_CHECK, data=new)
