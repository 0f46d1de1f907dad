"""Reactions to the DC-specific responses, shared by DIN SPEC 70121 and ISO 15118-2.

The two standards' message types differ as Python classes but not in the fields read here,
and their enumerations are string tokens, so one reaction serves both.
"""

from __future__ import annotations

from typing import Any

from evcc.common import ChargeProgress, Done, EvContext, Next, Reaction, from_physical, repeat

__all__ = ["cable_check", "evse_halted", "pre_charge", "welding_detection"]

_HALTED = frozenset(
    {"EVSE_Shutdown", "EVSE_EmergencyShutdown", "EVSE_Malfunction", "EVSE_UtilityInterruptEvent"}
)
_WAITING = frozenset({"EVSE_NotReady", "EVSE_IsolationMonitoringActive"})


def evse_halted(status: Any) -> str | None:
    """The DC_EVSEStatusCode if it means the EVSE stopped, else None."""
    code = str(status.EVSEStatusCode)
    return code if code in _HALTED else None


def cable_check(res: Any, ctx: EvContext, now: float) -> Reaction:
    """Repeat while Ongoing; PreCharge once Finished with a usable isolation
    (DIN [V2G-DC-499]; ISO-2 [V2G2-617])."""
    status = res.DC_EVSEStatus
    halted = evse_halted(status)
    if halted:
        return Reaction(Done(False, f"cable check: {halted}"))
    if str(res.EVSEProcessing) != "Finished" or str(status.EVSEStatusCode) in _WAITING:
        return repeat("CableCheckReq", ctx)
    isolation = status.EVSEIsolationStatus
    if isolation is not None and str(isolation) in ("Fault", "Invalid"):
        return Reaction(Done(False, f"cable check: isolation {isolation}"))
    return Reaction(Next("PreChargeReq"))


def pre_charge(res: Any, ctx: EvContext, now: float) -> Reaction:
    """Repeat until EVSEPresentVoltage is within the tolerance of the battery voltage."""
    halted = evse_halted(res.DC_EVSEStatus)
    if halted:
        return Reaction(Done(False, f"pre-charge: {halted}"))
    present = from_physical(res.EVSEPresentVoltage)
    ctx.present_voltage = present
    target = ctx.battery.open_circuit_voltage()
    if abs(present - target) <= ctx.config.precharge_tolerance:
        ctx.charge_progress = ChargeProgress.START
        return Reaction(Next("PowerDeliveryReq"))
    return Reaction(Next("PreChargeReq", ctx.config.precharge_interval))


def welding_detection(res: Any, ctx: EvContext, now: float) -> Reaction:
    ctx.present_voltage = from_physical(res.EVSEPresentVoltage)
    ctx.welding_done += 1
    if ctx.welding_done < ctx.config.welding_detection_count:
        return Reaction(Next("WeldingDetectionReq", ctx.config.loop_interval))
    return Reaction(Next("SessionStopReq"))
