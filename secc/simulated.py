"""A simulated charger (`SimulatedEVSE`): plausible behaviour without hardware, for demos and tests.

This is adapter-side code: it reads a clock. Both clocks are injected (`clock`, monotonic
seconds; `wall_clock`, timezone-aware datetimes for meter timestamps), so tests drive it with
a fake clock and get exact numbers. Every `status()` first advances the model to `clock()`.

The model (DC unless ``dc=False``):

* **Output voltage** (DC) ramps towards the target of `set_target` at `voltage_ramp_rate` V/s,
  the target clamped to 0..`max_voltage`; `stop_output` and faults ramp it back to 0.
  `voltage_reached` is true while the voltage is within `voltage_tolerance` of a set target.
* **Current** ramps at `current_ramp_rate` A/s towards the allowed current, which is 0 unless
  the contactors are closed and the output is *delivering*. DC: delivering starts when the
  voltage first reaches a charge (not pre-charge) target with the contactors closed, and lasts
  until `stop_output`, opening the contactors or a fault; the allowed current is
  min(target, `max_current`, power limit / voltage). During pre-charge the car's contactors
  are open, so no current flows. AC: delivering whenever the contactors are closed; the
  allowed current is min(target, `max_current`) per phase, at `nominal_voltage`.
* **Power limit**: min(`max_power`, the site schedule's entry in force), the schedule's times
  counting from `session_started` (no session: the first entry). The output also stays
  within the site cap of `set_power_limit`, which the status's limits leave out: they are
  what the EVSE itself could deliver, from which the station shares the site limit.
* **Meter**: integrates V·I over time (AC: nominal voltage * current * phases), exactly for
  the piecewise-linear ramps (Simpson's rule over each linear piece). The register starts at
  `meter_wh`. With `sign_meter`, each reading carries a 64-byte HMAC-SHA512 over
  ``meter_id | energy_wh | unix seconds`` keyed with `meter_key`: a stand-in so that the
  SigMeterReading path is exercised, *not* a real meter signature (real ones are ECDSA by the
  meter's own key, e.g. per the Eichrecht / OCMF formats).
* **Cable check** (DC: the car switches its pilot to state C or D for the insulation test,
  which the EVSE runs with the connector locked): after `start_cable_check` the isolation
  status stays UNKNOWN until the CP state has been C or D for `isolation_check_duration`
  seconds without interruption, then becomes VALID (FAULT after `inject_isolation_fault`).
  If the CP state drops to A or B meanwhile, the check waits again from the start.
  `session_ended` resets it to UNKNOWN.
* **Identification** (`present_token`, or the `id_token` option for every session): the
  token of an RFID or prepaid card held to the reader, reported as `EvseStatus.id_token`
  until the session ends (the `id_token` option stays for the next session).
* **CP state** is set by the EV simulator or the test (`set_cp_state`), default B.

Faults for tests: `inject_isolation_fault()` (isolation FAULT, output off, stop EVSE_FAULT),
`request_stop(reason)` (the operator's stop button), `emergency_shutdown()` (output off at once,
`emergency_shutdown` and stop EVSE_FAULT until `clear_faults`), `set_malfunction()`,
`set_schedule(...)`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from secc.evse import (
    ControlPilotState,
    EnergyMode,
    EVSEController,
    EvseLimits,
    EvseStatus,
    IsolationStatus,
    PowerLimit,
)
from secc.records import MeterReading, StopReason

__all__ = ["SimulatedEVSE", "meter_signature"]

log = logging.getLogger(__name__)

_READY = frozenset({ControlPilotState.C, ControlPilotState.D})
_MAX_STEP = 0.05  # s: integration step while the power limit moves with the voltage
_EPS = 1e-9


def meter_signature(key: bytes, meter_id: str, energy_wh: int, at: datetime) -> bytes:
    """The simulated meter's 64-byte signature (HMAC-SHA512; a simulation, see module doc)."""
    message = f"{meter_id}|{energy_wh}|{int(at.timestamp())}".encode()
    return hmac.new(key, message, hashlib.sha512).digest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _schedule(entries: Iterable[PowerLimit | Mapping[str, Any]]) -> tuple[PowerLimit, ...]:
    out = tuple(
        e
        if isinstance(e, PowerLimit)
        else PowerLimit(start=int(e["start"]), max_power=e["max_power"])
        for e in entries
    )
    if out and out[0].start != 0:
        raise ValueError("a schedule's first entry starts at 0")
    if any(b.start <= a.start for a, b in pairwise(out)):
        raise ValueError("schedule entries must start at increasing times")
    return out


def _modes(
    energy_modes: Sequence[EnergyMode | str] | None, dc: bool, phases: int
) -> tuple[EnergyMode, ...]:
    if energy_modes is not None:
        return tuple(m if isinstance(m, EnergyMode) else EnergyMode(m) for m in energy_modes)
    if dc:
        return (EnergyMode.DC_EXTENDED, EnergyMode.DC_CORE)
    if phases == 3:
        return (EnergyMode.AC_THREE_PHASE_CORE, EnergyMode.AC_SINGLE_PHASE_CORE)
    return (EnergyMode.AC_SINGLE_PHASE_CORE,)


def _toward(value: float, target: float, rate: float, dt: float) -> float:
    step = rate * dt
    if abs(target - value) <= step:
        return target
    return value + step if target > value else value - step


class SimulatedEVSE(EVSEController):
    """A simulated DC (default) or AC charger; every option has a default and can come from
    YAML configuration (`secc.evse.load_controller("secc.simulated:SimulatedEVSE", ...)`)."""

    def __init__(
        self,
        *,
        evse_id: str = "DE*ABC*E0000001*1",
        dc: bool = True,
        phases: int = 3,
        energy_modes: Sequence[EnergyMode | str] | None = None,
        max_voltage: float = 500.0,
        min_voltage: float = 150.0,
        max_current: float | None = None,
        min_current: float = 0.0,
        max_power: float | None = None,
        nominal_voltage: float = 230.0,
        peak_current_ripple: float = 1.0,
        current_regulation_tolerance: float | None = 5.0,
        voltage_tolerance: float = 5.0,
        voltage_ramp_rate: float = 500.0,
        current_ramp_rate: float = 200.0,
        isolation_check_duration: float = 0.2,
        meter_id: str = "SIM-METER-1",
        meter_wh: int = 0,
        sign_meter: bool = False,
        meter_key: bytes | str = b"simulated meter key (not secret)",
        schedule: Iterable[PowerLimit | Mapping[str, Any]] | None = None,
        notification_max_delay: int = 0,
        cp_state: ControlPilotState | str = ControlPilotState.B,
        id_token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        self.evse_id = evse_id
        self.dc = dc
        self.phases = 1 if dc else phases
        self.energy_modes = _modes(energy_modes, dc, phases)
        self.max_voltage = max_voltage
        self.min_voltage = min_voltage
        self.max_current = max_current if max_current is not None else (200.0 if dc else 32.0)
        self.min_current = min_current
        self.nominal_voltage = nominal_voltage
        default_power = 100_000.0 if dc else nominal_voltage * self.max_current * self.phases
        self.max_power = max_power if max_power is not None else default_power
        self.peak_current_ripple = peak_current_ripple
        self.current_regulation_tolerance = current_regulation_tolerance
        self.voltage_tolerance = voltage_tolerance
        self.voltage_ramp_rate = voltage_ramp_rate
        self.current_ramp_rate = current_ramp_rate
        self.isolation_check_duration = isolation_check_duration
        self.meter_id = meter_id
        self.sign_meter = sign_meter
        self._meter_key = meter_key.encode() if isinstance(meter_key, str) else meter_key
        self.notification_max_delay = notification_max_delay
        self._clock = clock
        self._wall_clock = wall_clock
        self._schedule = _schedule(schedule or ())
        self._site_cap: float | None = None
        self.id_token = id_token  # the card every session is started with, if any
        self._token: str | None = id_token
        self._init_state(meter_wh)
        if ControlPilotState(cp_state) is not ControlPilotState.B:
            # a car in another process cannot move this EVSE's pilot: start it where the car
            # would put it (C: ready to charge), e.g. `ev run` against `secc run`
            self.set_cp_state(cp_state)

    def _init_state(self, meter_wh: int) -> None:
        self._now = self._clock()
        self._energy_wh = float(meter_wh)
        self._voltage = 0.0
        self._current = 0.0
        self._target_voltage: float | None = None
        self._target_current = 0.0
        self._pre_charge = False
        self._delivering = False
        self._contactors = False
        # control and faults
        self._cp_state = ControlPilotState.B
        self._isolation = IsolationStatus.UNKNOWN
        self._check_requested = False
        self._check_since: float | None = None  # when the CP state last became C/D
        self._isolation_fault = False
        self._stop: StopReason | None = None
        self._emergency = False
        self._malfunction = False
        self._session_start: float | None = None

    # --- test and EV-simulator controls ------------------------------------------------------

    @property
    def cp_state(self) -> ControlPilotState:
        return self._cp_state

    def set_cp_state(self, state: ControlPilotState | str) -> None:
        """What the EV (simulator) does with its pilot resistor: A, B, C, D (E, F: faults)."""
        self._advance()
        self._cp_state = ControlPilotState(state)
        if self._cp_state in _READY:
            if self._check_since is None:
                self._check_since = self._now
        else:
            self._check_since = None
            if self._cp_state is ControlPilotState.A:
                self._shut_down(immediately=True)

    def inject_isolation_fault(self) -> None:
        """The insulation monitor trips: isolation FAULT, output off at once, stop requested."""
        self._advance()
        self._isolation_fault = True
        self._isolation = IsolationStatus.FAULT
        self._stop = StopReason.EVSE_FAULT
        self._shut_down(immediately=True)
        log.warning("simulated EVSE %s: isolation fault", self.evse_id)

    def present_token(self, token: str | None) -> None:
        """A card held to the reader (None: taken away); reported until the session ends."""
        self._token = token

    def request_stop(self, reason: StopReason = StopReason.EVSE_STOPPED) -> None:
        """The operator (or a stop button) wants the session to end; the output is left to
        the session, which ramps it down."""
        self._stop = reason

    def emergency_shutdown(self) -> None:
        """Output off at once; reported until `clear_faults`."""
        self._advance()
        self._emergency = True
        self._stop = StopReason.EVSE_FAULT
        self._shut_down(immediately=True)
        log.warning("simulated EVSE %s: emergency shutdown", self.evse_id)

    def set_malfunction(self, malfunction: bool = True) -> None:
        self._malfunction = malfunction
        if malfunction:
            self._advance()
            self._shut_down(immediately=False)

    def clear_faults(self) -> None:
        """Reset emergency, malfunction, the isolation fault and any stop request."""
        self._emergency = self._malfunction = self._isolation_fault = False
        self._stop = None
        if self._isolation is IsolationStatus.FAULT:
            self._isolation = IsolationStatus.UNKNOWN

    def set_schedule(self, schedule: Iterable[PowerLimit | Mapping[str, Any]]) -> None:
        """The site's allowance from now on (first entry at 0 s)."""
        self._advance()
        self._schedule = _schedule(schedule)

    async def set_power_limit(self, max_power: float | None) -> None:
        """The site cap: the output current drops at once so that voltage x current stays
        within it (a power module regulates down within milliseconds)."""
        self._advance()
        self._site_cap = max_power
        voltage = self._output_voltage() * self.phases
        if max_power is not None and voltage > 0 and self._current * voltage > max_power:
            self._current = max_power / voltage

    @property
    def site_cap(self) -> float | None:
        return self._site_cap

    @property
    def energy_wh(self) -> float:
        """The meter register, unrounded (for tests)."""
        self._advance()
        return self._energy_wh

    # --- EVSEController ----------------------------------------------------------------------

    async def status(self) -> EvseStatus:
        return self.snapshot()

    def snapshot(self) -> EvseStatus:
        """`status()` without the coroutine (for the EV simulator and tests)."""
        self._advance()
        return EvseStatus(
            present_voltage=self._output_voltage(),
            present_current=self._current,
            limits=self._limits(),
            cp_state=self._cp_state,
            isolation=self._isolation,
            contactors_closed=self._contactors,
            voltage_reached=self._voltage_reached(),
            meter=self._reading(),
            schedule=self._schedule,
            stop=self._stop,
            emergency_shutdown=self._emergency,
            malfunction=self._malfunction,
            notification_max_delay=self.notification_max_delay,
            id_token=self._token,
        )

    async def start_cable_check(self) -> None:
        self._advance()
        self._check_requested = True
        self._isolation = (
            IsolationStatus.FAULT if self._isolation_fault else IsolationStatus.UNKNOWN
        )
        self._check_since = self._now if self._cp_state in _READY else None

    async def set_target(self, voltage: float, current: float, *, pre_charge: bool) -> None:
        self._advance()
        if self._emergency or self._isolation_fault or self._malfunction:
            return  # the hardware refuses to energise; the status shows why
        self._target_voltage = min(max(voltage, 0.0), self.max_voltage)
        self._target_current = max(current, 0.0)
        self._pre_charge = pre_charge

    async def set_contactors(self, closed: bool) -> None:
        self._advance()
        self._contactors = closed
        if not closed:
            self._delivering = False
            self._current = 0.0  # no current through open contactors

    async def stop_output(self) -> None:
        self._advance()
        self._shut_down(immediately=False)

    async def session_started(self, session_id: str) -> None:
        self._advance()
        self._session_start = self._now

    async def session_ended(self, session_id: str, reason: StopReason) -> None:
        """Unlock: output off, contactors open, cable check result forgotten, stop consumed."""
        self._advance()
        self._shut_down(immediately=True)
        self._contactors = False
        self._token = self.id_token
        self._check_requested = False
        if self._isolation is not IsolationStatus.FAULT:
            self._isolation = IsolationStatus.UNKNOWN
        if not self._emergency and not self._isolation_fault:
            self._stop = None
        self._session_start = None

    # --- the model ---------------------------------------------------------------------------

    def _shut_down(self, *, immediately: bool) -> None:
        self._target_voltage = None
        self._target_current = 0.0
        self._pre_charge = False
        self._delivering = False
        if immediately:
            self._current = 0.0
            self._voltage = 0.0

    def _limits(self) -> EvseLimits:
        return EvseLimits(
            max_voltage=self.max_voltage if self.dc else self.nominal_voltage,
            max_current=self.max_current,
            # the EVSE's own limit: the site cap is the station's to overlay (the station
            # shares the site limit out of what each EVSE could deliver without it)
            max_power=self._power_limit(site_cap=False),
            min_voltage=self.min_voltage if self.dc else 0.0,
            min_current=self.min_current,
            nominal_voltage=self.nominal_voltage,
            peak_current_ripple=self.peak_current_ripple,
            current_regulation_tolerance=self.current_regulation_tolerance,
        )

    def _power_limit(self, *, site_cap: bool = True) -> float:
        cap = self.max_power
        if site_cap and self._site_cap is not None:
            cap = min(cap, self._site_cap)
        if not self._schedule:
            return cap
        elapsed = 0.0 if self._session_start is None else self._now - self._session_start
        allowed = self._schedule[0].max_power
        for entry in self._schedule:
            if entry.start <= elapsed + _EPS:
                allowed = entry.max_power
        return min(cap, allowed)

    def _voltage_reached(self) -> bool:
        if not self.dc or self._target_voltage is None:
            return False
        return abs(self._voltage - self._target_voltage) <= self.voltage_tolerance

    def _output_voltage(self) -> float:
        """The voltage the meter sees: DC the output, AC the nominal voltage when connected."""
        if self.dc:
            return self._voltage
        return self.nominal_voltage if self._contactors else 0.0

    def _allowed_current(self) -> float:
        if not self._contactors or not self._delivering:
            return 0.0
        limit = min(self._target_current, self.max_current)
        if self.dc:
            return min(limit, self._power_limit() / max(self._voltage, 1.0))
        return min(limit, self._power_limit() / (self.nominal_voltage * self.phases))

    def _update_flags(self) -> None:
        if self._check_requested and self._isolation is IsolationStatus.UNKNOWN:
            since = self._check_since
            if since is not None and self._now - since >= self.isolation_check_duration - _EPS:
                self._isolation = IsolationStatus.VALID
        ready = not self.dc or self._voltage_reached()
        if self._contactors and not self._delivering and not self._pre_charge and ready:
            self._delivering = True

    def _advance(self) -> None:
        """Move the model from its last time to `clock()`, integrating energy exactly over
        each linear piece of the voltage and current ramps."""
        now = self._clock()
        while now - self._now > _EPS:
            self._update_flags()
            dt = self._piece(now - self._now)
            v0, i0 = self._output_voltage(), self._current
            target_v = self._target_voltage if self._target_voltage is not None else 0.0
            target_i = self._allowed_current()
            if self.dc:
                self._voltage = _toward(self._voltage, target_v, self.voltage_ramp_rate, dt)
            self._current = _toward(self._current, target_i, self.current_ramp_rate, dt)
            v1, i1 = self._output_voltage(), self._current
            mid = (v0 + v1) / 2 * (i0 + i1) / 2
            energy_ws = dt / 6 * (v0 * i0 + 4 * mid + v1 * i1) * self.phases
            self._energy_wh += energy_ws / 3600
            self._now += dt
        self._update_flags()

    def _piece(self, remaining: float) -> float:
        """The longest step over which voltage and current stay linear (ramps end at the
        step's end at the latest) and the power limit does not move."""
        dt = remaining
        target_v = self._target_voltage if self._target_voltage is not None else 0.0
        if self.dc and abs(target_v - self._voltage) > _EPS:
            dt = min(dt, abs(target_v - self._voltage) / self.voltage_ramp_rate)
            if self._delivering:
                dt = min(dt, _MAX_STEP)  # the power limit follows the voltage
        gap = abs(self._allowed_current() - self._current)
        if gap > _EPS:
            dt = min(dt, gap / self.current_ramp_rate)
        if self._check_since is not None and self._isolation is IsolationStatus.UNKNOWN:
            due = self._check_since + self.isolation_check_duration - self._now
            if due > _EPS:
                dt = min(dt, due)
        for entry in self._schedule:
            if self._session_start is not None:
                due = self._session_start + entry.start - self._now
                if due > _EPS:
                    dt = min(dt, due)
        return max(dt, _EPS)

    def _reading(self) -> MeterReading:
        at = self._wall_clock()
        energy = int(self._energy_wh)  # the register shows whole Wh, truncated like a meter
        signature = (
            meter_signature(self._meter_key, self.meter_id, energy, at) if self.sign_meter else None
        )
        return MeterReading(
            meter_id=self.meter_id, energy_wh=energy, at=at, signature=signature, status=0
        )
