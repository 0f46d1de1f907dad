"""Reactions around the charge loop, shared by DIN and ISO-2, AC and DC: PowerDelivery,
CurrentDemand / ChargingStatus, MeteringReceipt, SessionStop."""

from __future__ import annotations

from typing import Any

from evcc.common import (
    ChargeProgress,
    Done,
    EvContext,
    Next,
    React,
    Reaction,
    charge_loop_decision,
    from_physical,
    record_charge,
)
from evcc.dc import evse_halted
from evcc.events import ControlPilotChange
from secc.evse import ControlPilotState

__all__ = [
    "charging_status",
    "current_demand",
    "metering_receipt",
    "power_delivery",
    "session_stop",
]


def power_delivery(*, loop_request: str, dc: bool) -> React:
    """After PowerDeliveryRes: Start → the charge loop (AC: the EV closes its S2 switch,
    CP state C); Stop → CP state B, DC welding detection, SessionStop; Renegotiate →
    ChargeParameterDiscovery."""

    def react(res: Any, ctx: EvContext, now: float) -> Reaction:
        progress = ctx.charge_progress
        if progress is ChargeProgress.START:
            ctx.last_update_at = None
            events = () if dc else (ControlPilotChange(ControlPilotState.C),)
            return Reaction(Next(loop_request), events)
        if progress is ChargeProgress.RENEGOTIATE:
            return Reaction(Next("ChargeParameterDiscoveryReq"))
        events = (ControlPilotChange(ControlPilotState.B),)
        if dc and ctx.config.welding_detection_count > 0:
            return Reaction(Next("WeldingDetectionReq"), events)
        return Reaction(Next("SessionStopReq"), events)

    return react


def _with_receipt(ctx: EvContext, res: Any, decision: Reaction) -> Reaction:
    if getattr(res, "ReceiptRequired", None) and getattr(res, "MeterInfo", None) is not None:
        ctx.meter_info = res.MeterInfo
        ctx.after_receipt = decision
        return Reaction(Next("MeteringReceiptReq"), decision.events)
    return decision


def current_demand(*, can_pause: bool) -> React:
    def react(res: Any, ctx: EvContext, now: float) -> Reaction:
        ctx.loops += 1
        status = res.DC_EVSEStatus
        update = record_charge(
            ctx, now, from_physical(res.EVSEPresentVoltage), from_physical(res.EVSEPresentCurrent)
        )
        notification = str(status.EVSENotification)
        following = charge_loop_decision(
            ctx,
            now,
            "CurrentDemandReq",
            evse_stop=evse_halted(status) is not None or notification == "StopCharging",
            renegotiation=can_pause and notification == "ReNegotiation",
            can_pause=can_pause,
        )
        return _with_receipt(ctx, res, Reaction(following, (update,)))

    return react


def charging_status(res: Any, ctx: EvContext, now: float) -> Reaction:
    """AC (ISO-2): the charger does not report present values; the EV books the current it
    is allowed (EVSEMaxCurrent, else its own maximum) at the nominal voltage, on every phase
    in use."""
    ctx.loops += 1
    params = ctx.battery.params
    limit = from_physical(res.EVSEMaxCurrent) if res.EVSEMaxCurrent is not None else None
    current = min(params.max_ac_current, limit if limit is not None else params.max_ac_current)
    if ctx.evse_max_current is not None:
        current = min(current, ctx.evse_max_current)
    phases = 3 if ctx.config.energy_mode.value == "AC_three_phase_core" else 1
    update = record_charge(ctx, now, ctx.evse_nominal_voltage * phases, current)
    notification = str(res.AC_EVSEStatus.EVSENotification)
    following = charge_loop_decision(
        ctx,
        now,
        "ChargingStatusReq",
        evse_stop=notification == "StopCharging",
        renegotiation=notification == "ReNegotiation",
        can_pause=True,
    )
    return _with_receipt(ctx, res, Reaction(following, (update,)))


def metering_receipt(res: Any, ctx: EvContext, now: float) -> Reaction:
    decision = ctx.after_receipt
    ctx.after_receipt = None
    ctx.meter_info = None
    if decision is None:  # pragma: no cover - the receipt is only asked from a loop response
        return Reaction(Done(False, "MeteringReceiptRes without a pending decision"))
    return Reaction(decision.then)


def session_stop(res: Any, ctx: EvContext, now: float) -> Reaction:
    if ctx.pausing:
        return Reaction(Done(True, "paused", paused=True))
    return Reaction(Done(True, ctx.stop_reason or "session stopped"))
