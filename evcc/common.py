"""Shared pieces of the EV protocol machines: what a reaction to a response is, the
session data the machines read and update, physical values, the charge-loop decision.

A protocol (DIN, ISO-2) is a `Dialect`: a table `request name -> RequestSpec(build, react)`.
`build(ctx)` makes the request's body element from the session data; `react(response, ctx,
now)` looks at the matching response and returns a `Reaction`: the next request (`Next`,
maybe after a delay) or the end (`Done`), plus events for the user. Reactions never encode,
send or read a clock; the session core does that around them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from evcc.battery import Battery
from evcc.config import EvccConfig
from evcc.events import ChargingUpdate, EvEvent
from evcc.timing import TimingTable
from iso15118.sap import AppProtocol

__all__ = [
    "Build",
    "ChargeProgress",
    "Dialect",
    "Done",
    "EvContext",
    "Next",
    "React",
    "Reaction",
    "RequestSpec",
    "body_element",
    "charge_loop_decision",
    "from_physical",
    "physical_parts",
    "repeat",
]


@dataclass(frozen=True, slots=True)
class Next:
    """Send `request` after `delay` seconds. `ongoing`: a repetition because the SECC said
    Ongoing (keeps the ongoing timer running)."""

    request: str
    delay: float = 0.0
    ongoing: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    ok: bool
    reason: str
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Reaction:
    then: Next | Done
    events: tuple[EvEvent, ...] = ()


class ChargeProgress(Enum):
    """What the next PowerDeliveryReq asks for (ISO-2 chargeProgressType; DIN
    ReadyToChargeState true for START)."""

    START = "Start"
    STOP = "Stop"
    RENEGOTIATE = "Renegotiate"


@dataclass(slots=True, kw_only=True)
class EvContext:
    """The session data the protocol machines share; the session core owns it."""

    config: EvccConfig
    battery: Battery
    clock: Callable[[], datetime]
    random: Callable[[int], bytes]
    session_id: bytes = b"\x00"
    resumed: bool = False
    evse_id: str = ""
    charge_service_id: int = 1
    #: ServiceIDs whose ServiceDetail is still to ask
    detail_queue: list[int] = field(default_factory=list)
    #: (ServiceID, ParameterSetID) of the certificate service, when offered and wanted:
    #: installation or update (evcc.iso2.pnc.certificate_action)
    certificate_service: tuple[int, int] | None = None
    contract_chain: tuple[bytes, ...] = ()
    contract_key: ec.EllipticCurvePrivateKey | None = None
    emaid: str | None = None
    gen_challenge: bytes | None = None
    evse_max_voltage: float | None = None
    evse_max_current: float | None = None
    evse_max_power: float | None = None
    evse_nominal_voltage: float = 230.0
    schedule_id: int = 1
    #: (start s, max power W) of the chosen PMaxSchedule
    schedule: tuple[tuple[int, float], ...] = ()
    #: ISO-2: the SalesTariff of the chosen SAScheduleTuple, as the SECC sent it (or None)
    sales_tariff: Any = None
    #: its Plug & Charge signature checked with the contract chain's sub-CA: True / False;
    #: None when there was nothing to check (no SalesTariff, or EIM)
    sales_tariff_verified: bool | None = None
    charge_progress: ChargeProgress = ChargeProgress.START
    loops: int = 0
    loop_started_at: float | None = None
    last_update_at: float | None = None
    present_voltage: float = 0.0
    present_current: float = 0.0
    welding_done: int = 0
    renegotiated: bool = False
    pausing: bool = False
    stop_reason: str = ""
    #: MeterInfo of the response that asked for a receipt
    meter_info: Any = None
    after_receipt: Reaction | None = None
    #: the Header of the response being reacted to (for its Signature)
    response_header: Any = None


Build = Callable[[EvContext], Any]
React = Callable[[Any, EvContext, float], Reaction]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    build: Build
    react: React


@dataclass(frozen=True, slots=True)
class Dialect:
    """One protocol's request table and message wrapping."""

    protocol: AppProtocol
    timing: TimingTable
    requests: Mapping[str, RequestSpec]
    #: (session_id, request name, body element) -> V2G_Message
    wrap: Callable[[bytes, str, Any], Any]
    #: put the header Signature on a request that needs one (PnC), in place
    sign: Callable[[str, Any, EvContext], None]
    first: str = "SessionSetupReq"

    @property
    def schema(self) -> str:
        return self.protocol.schema


def body_element(message: Any) -> tuple[str, Any]:
    """The one element in a V2G_Message's Body: (name, value)."""
    body = message.Body
    for f in dataclasses.fields(body):
        value = getattr(body, f.name)
        if value is not None:
            return f.name, value
    raise ValueError("empty Body")


def repeat(request: str, ctx: EvContext) -> Reaction:
    """The SECC said Ongoing: ask again after the configured interval."""
    return Reaction(Next(request, ctx.config.ongoing_interval, ongoing=True))


# --- physical values -------------------------------------------------------------------------

_MULTIPLIERS = (0, -1, -2, -3, 1, 2, 3)


def physical_parts(value: float) -> tuple[int, int]:
    """(Multiplier, Value) for a PhysicalValueType: exact where possible, otherwise the
    finest multiplier whose value fits a signed 16-bit integer."""
    for m in _MULTIPLIERS:
        scaled = value / 10.0**m
        if abs(scaled) <= 32767 and abs(scaled - round(scaled)) < 1e-9:
            return m, round(scaled)
    for m in range(-3, 4):
        scaled = round(value / 10.0**m)
        if abs(scaled) <= 32767:
            return m, scaled
    raise ValueError(f"{value} does not fit a PhysicalValueType")


def from_physical(pv: Any) -> float:
    """The value of a PhysicalValueType (Value x 10^Multiplier)."""
    return float(pv.Value) * 10.0 ** int(pv.Multiplier)


# --- the charge loop ---------------------------------------------------------------------------


def record_charge(ctx: EvContext, now: float, voltage: float, current: float) -> ChargingUpdate:
    """Book the energy since the previous loop response and report it."""
    if ctx.loop_started_at is None:
        ctx.loop_started_at = now
    if ctx.last_update_at is not None:
        ctx.battery.charge(voltage, current, now - ctx.last_update_at)
    ctx.last_update_at = now
    ctx.present_voltage, ctx.present_current = voltage, current
    return ChargingUpdate(
        soc=ctx.battery.soc,
        energy_wh=ctx.battery.energy_wh,
        present_voltage=voltage,
        present_current=current,
        target_voltage=ctx.battery.target_voltage(),
        target_current=ctx.battery.target_current(),
        loop=ctx.loops,
    )


def _stop_reason(ctx: EvContext, now: float, evse_stop: bool) -> str | None:
    c = ctx.config
    if evse_stop:
        return "the EVSE asked to stop"
    if ctx.battery.soc >= c.target_soc:
        return "target SoC reached"
    if c.max_charge_loops is not None and ctx.loops >= c.max_charge_loops:
        return "charge loop limit reached"
    started = ctx.loop_started_at if ctx.loop_started_at is not None else now
    if c.charge_duration is not None and now - started >= c.charge_duration:
        return "charge duration reached"
    return None


def charge_loop_decision(
    ctx: EvContext,
    now: float,
    loop_request: str,
    *,
    evse_stop: bool,
    renegotiation: bool,
    can_pause: bool,
) -> Next:
    """After a charge-loop response: go on, stop, pause or renegotiate (ISO-2)."""
    c = ctx.config
    reason = _stop_reason(ctx, now, evse_stop)
    pause_due = c.pause_after_loops is not None and ctx.loops >= c.pause_after_loops
    if reason is None and can_pause and pause_due:
        reason, ctx.pausing = "pause", True
    if reason is not None:
        ctx.stop_reason = reason
        ctx.charge_progress = ChargeProgress.STOP
        return Next("PowerDeliveryReq")
    wanted = c.renegotiate_after_loops is not None and ctx.loops >= c.renegotiate_after_loops
    if renegotiation or (wanted and not ctx.renegotiated):
        ctx.renegotiated = True
        ctx.charge_progress = ChargeProgress.RENEGOTIATE
        return Next("PowerDeliveryReq")
    return Next(loop_request, c.loop_interval)
