"""A simple traction battery: state of charge, charging targets, energy bookkeeping.

Not a cell model; just enough for a charger under test to see plausible numbers:

* the pack voltage rises linearly with SoC from `empty_voltage` to `full_voltage`
  (`open_circuit_voltage`); the DC target voltage is that plus a small overhead, capped at
  `max_voltage`;
* the current request is `max_current`, limited by `max_power` at the target voltage, and
  tapers linearly from `taper_soc` down to `min_taper_current` at 100 % (a CV phase
  stand-in);
* energy is integrated from what the charger reports (present voltage and current) over the
  time between two reports; SoC follows from `capacity_wh`.

All quantities in SI units (V, A, W, Wh, s); SoC in percent.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Battery", "BatteryParams"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatteryParams:
    capacity_wh: float = 60_000.0
    empty_voltage: float = 330.0  # open-circuit voltage at 0 %
    full_voltage: float = 400.0  # open-circuit voltage at 100 %
    max_voltage: float = 420.0  # the EV's maximum voltage limit
    max_current: float = 200.0  # DC; AC: per phase, see `max_ac_current`
    max_power: float = 80_000.0
    max_ac_current: float = 32.0
    min_ac_current: float = 6.0
    taper_soc: float = 80.0
    min_taper_current: float = 10.0
    #: target voltage above the open-circuit voltage while charging
    charge_overhead_voltage: float = 10.0

    def __post_init__(self) -> None:
        if self.capacity_wh <= 0:
            raise ValueError("capacity_wh must be positive")
        if not 0 < self.empty_voltage <= self.full_voltage <= self.max_voltage:
            raise ValueError("need 0 < empty_voltage <= full_voltage <= max_voltage")
        if self.max_current <= 0 or self.max_power <= 0 or self.max_ac_current <= 0:
            raise ValueError("current and power limits must be positive")
        if not 0 <= self.min_ac_current <= self.max_ac_current:
            raise ValueError("need 0 <= min_ac_current <= max_ac_current")
        if not 0 <= self.taper_soc <= 100:
            raise ValueError("taper_soc must be within 0..100")
        if self.min_taper_current < 0:
            raise ValueError("min_taper_current must not be negative")


class Battery:
    """Mutable state of one simulated pack; the session core advances it with `charge`."""

    __slots__ = ("energy_wh", "params", "soc")

    def __init__(self, params: BatteryParams, soc: float) -> None:
        if not 0 <= soc <= 100:
            raise ValueError("soc must be within 0..100")
        self.params = params
        self.soc = float(soc)
        self.energy_wh = 0.0  # charged in this session

    @property
    def soc_percent(self) -> int:
        """SoC as the messages carry it (integer percent, 0..100)."""
        return max(0, min(100, int(self.soc)))

    def open_circuit_voltage(self) -> float:
        p = self.params
        return p.empty_voltage + (p.full_voltage - p.empty_voltage) * self.soc / 100.0

    def target_voltage(self) -> float:
        p = self.params
        return min(p.max_voltage, self.open_circuit_voltage() + p.charge_overhead_voltage)

    def target_current(self) -> float:
        """The DC current to ask for now: power-limited and tapering near full."""
        p = self.params
        current = min(p.max_current, p.max_power / self.target_voltage())
        if self.soc >= 100.0:
            return 0.0
        if self.soc > p.taper_soc:
            fraction = (100.0 - self.soc) / (100.0 - p.taper_soc)
            current = p.min_taper_current + (current - p.min_taper_current) * fraction
        return max(0.0, current)

    def energy_request_wh(self, target_soc: float) -> float:
        return max(0.0, (target_soc - self.soc) / 100.0 * self.params.capacity_wh)

    def remaining_seconds(self, target_soc: float, power: float) -> float | None:
        """Time to reach `target_soc` at `power` W, None if not charging."""
        if power <= 0:
            return None
        return self.energy_request_wh(target_soc) / power * 3600.0

    def charge(self, voltage: float, current: float, seconds: float) -> float:
        """Book `voltage` x `current` for `seconds` (negative values count as zero);
        return the energy added in Wh."""
        if seconds <= 0 or voltage <= 0 or current <= 0:
            return 0.0
        added = voltage * current * seconds / 3600.0
        room = (100.0 - self.soc) / 100.0 * self.params.capacity_wh
        added = min(added, room)
        self.energy_wh += added
        self.soc = min(100.0, self.soc + added / self.params.capacity_wh * 100.0)
        return added
