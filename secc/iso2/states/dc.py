"""DC steps around the charge loop: CableCheckReq, PreChargeReq, WeldingDetectionReq
(ISO 15118-2 8.4.5.2, 8.4.5.3, 8.4.5.5)."""

from __future__ import annotations

import dataclasses

from exi_schemas import iso2
from secc.context import Context, Outcome, SessionData
from secc.errors import V2GError
from secc.events import SetTarget, StartCableCheck
from secc.evse import ControlPilotState, IsolationStatus
from secc.iso2 import convert
from secc.iso2.state import State

R = iso2.responseCodeType
P = iso2.EVSEProcessingType
_READY = (ControlPilotState.C, ControlPilotState.D)


class CableCheckFailed(V2GError):
    """The insulation test failed, or the car is not in CP state C/D [V2G2-?, 8.4.5.2]."""


def handle_cable_check(
    req: iso2.CableCheckReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    status = ctx.status
    if status.cp_state not in _READY:
        raise CableCheckFailed(
            f"CP state {status.cp_state.value} during CableCheck (C or D needed)"
        )
    if not data.cable_check_started:
        new = dataclasses.replace(data, cable_check_started=True)
        return Outcome(
            response=_cable_check_response(ctx, new, P.Ongoing),
            data=new,
            commands=(StartCableCheck(),),
        )
    if status.isolation in (IsolationStatus.FAULT, IsolationStatus.INVALID):
        raise CableCheckFailed(f"insulation test: {status.isolation.value}")
    if status.isolation in (IsolationStatus.VALID, IsolationStatus.WARNING, IsolationStatus.NO_IMD):
        return Outcome(
            response=_cable_check_response(ctx, data, P.Finished), next_state=State.WAIT_PRE_CHARGE
        )
    return Outcome(response=_cable_check_response(ctx, data, P.Ongoing))


def _cable_check_response(
    ctx: Context, data: SessionData, processing: iso2.EVSEProcessingType
) -> iso2.CableCheckResType:
    return iso2.CableCheckResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx, data),
        EVSEProcessing=processing,
    )


def handle_pre_charge(
    req: iso2.PreChargeReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    voltage = convert.value(req.EVTargetVoltage)
    current = convert.value(req.EVTargetCurrent)
    limits = ctx.status.limits
    if voltage > limits.max_voltage:
        raise V2GError(
            f"pre-charge target {voltage} V above the EVSE maximum {limits.max_voltage} V"
        )
    commands: tuple[SetTarget, ...] = ()
    if (voltage, current) != (data.target_voltage, data.target_current):
        commands = (SetTarget(voltage, min(current, limits.max_current), pre_charge=True),)
    new = dataclasses.replace(data, target_voltage=voltage, target_current=current)
    response = iso2.PreChargeResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx, new),
        EVSEPresentVoltage=convert.volts(ctx.status.present_voltage),
    )
    return Outcome(response=response, data=new, commands=commands)


def handle_welding_detection(
    req: iso2.WeldingDetectionReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    response = iso2.WeldingDetectionResType(
        ResponseCode=R.OK,
        DC_EVSEStatus=convert.dc_evse_status(ctx, data),
        EVSEPresentVoltage=convert.volts(ctx.status.present_voltage),
    )
    return Outcome(response=response)
