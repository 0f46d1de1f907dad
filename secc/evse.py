"""The EVSE controller interface: what a charger maker implements for their hardware.

The session core never awaits hardware. It emits *commands* (start the cable check, close
the contactors, follow these targets) and reads a *status* snapshot that the asyncio adapter
takes from the controller before each request is handled. A controller therefore has two
sides, both small:

* `status()` — the present values, limits, control pilot and isolation state, the meter and
  any stop the hardware or the operator wants; cheap, called once per message;
* the commands, each returning as soon as the hardware has taken it (the result shows in a
  later `status()`: e.g. `isolation` goes from `UNKNOWN` to `VALID` when the cable check ends).

Units are SI (V, A, W, Wh, s); the protocol layers convert to each standard's
PhysicalValueType. The controller keeps no session state and makes no protocol decisions.
Load an implementation from configuration as `module:Class` (`load_controller`).
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from secc.records import MeterReading, StopReason

__all__ = [
    "ControlPilotState",
    "EVSEController",
    "EnergyMode",
    "EvseLimits",
    "EvseStatus",
    "IsolationStatus",
    "PowerLimit",
    "load_controller",
    "load_plugin",
]


class EnergyMode(Enum):
    """Energy transfer modes (ISO 15118-2 EnergyTransferModeType; DIN names DC_core etc.
    the same way). The value is the XML token."""

    AC_SINGLE_PHASE_CORE = "AC_single_phase_core"
    AC_THREE_PHASE_CORE = "AC_three_phase_core"
    DC_CORE = "DC_core"
    DC_EXTENDED = "DC_extended"
    DC_COMBO_CORE = "DC_combo_core"
    DC_UNIQUE = "DC_unique"

    @property
    def is_dc(self) -> bool:
        return self.name.startswith("DC")


class ControlPilotState(Enum):
    """IEC 61851-1 control pilot states as the EVSE measures them."""

    A = "A"  # no vehicle
    B = "B"  # vehicle connected, not ready
    C = "C"  # vehicle ready, charging allowed
    D = "D"  # ready, ventilation required
    E = "E"  # short / no pilot
    F = "F"  # EVSE fault


class IsolationStatus(Enum):
    """Result of the insulation monitoring (ISO 15118-2 isolationLevelType, plus UNKNOWN
    while no check has run)."""

    UNKNOWN = "unknown"
    INVALID = "Invalid"
    VALID = "Valid"
    WARNING = "Warning"
    FAULT = "Fault"
    NO_IMD = "No_IMD"


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerLimit:
    """From `start` seconds after the schedule's start, at most `max_power` W."""

    start: int
    max_power: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseLimits:
    """What the EVSE can deliver now. AC EVSEs set `nominal_voltage` and `max_current`
    (per phase); DC EVSEs set the voltage, current and power ranges."""

    max_voltage: float
    max_current: float
    max_power: float
    min_voltage: float = 0.0
    min_current: float = 0.0
    nominal_voltage: float = 230.0  # AC
    peak_current_ripple: float = 1.0  # DC, A
    current_regulation_tolerance: float | None = None  # DC, A
    energy_to_be_delivered: float | None = None  # Wh


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseStatus:
    """One snapshot of the EVSE, taken by the adapter before a request is handled."""

    present_voltage: float
    present_current: float
    limits: EvseLimits
    cp_state: ControlPilotState = ControlPilotState.B
    isolation: IsolationStatus = IsolationStatus.UNKNOWN
    contactors_closed: bool = False
    #: True while the DC output follows the pre-charge or charge target within tolerance
    voltage_reached: bool = False
    meter: MeterReading | None = None
    #: the site's allowance over time, from which SAScheduleList is built (first entry at 0)
    schedule: tuple[PowerLimit, ...] = ()
    #: the hardware or the operator wants the session to end (e.g. stop button, fault)
    stop: StopReason | None = None
    emergency_shutdown: bool = False
    #: the hardware cannot deliver now (power module fault, overtemperature)
    malfunction: bool = False
    #: seconds the SECC asks the car to wait before it may resume after a pause
    notification_max_delay: int = 0
    #: the identification the EVSE took for this session outside ISO 15118 (an RFID or
    #: prepaid card at its reader, a start from an app): sent to the backend and payment
    #: processor with External Identification, kept on the billing record
    id_token: str | None = None


class EVSEController(abc.ABC):
    """Implement this for your hardware (see `secc.simulated.SimulatedEVSE`).

    Commands return once the hardware has accepted them; their effects appear in
    `status()`. None of them is given session data beyond what it needs.
    """

    #: EVSEID as ISO 15118-2 Annex H (e.g. "DE*ABC*E1234567*1"); DIN uses its hex form
    evse_id: str
    energy_modes: tuple[EnergyMode, ...]

    @abc.abstractmethod
    async def status(self) -> EvseStatus:
        """The present snapshot; called before every request, so keep it cheap."""

    @abc.abstractmethod
    async def start_cable_check(self) -> None:
        """Lock the connector, check the cable and run the insulation test (DC). The result
        appears as `status().isolation`."""

    @abc.abstractmethod
    async def set_target(self, voltage: float, current: float, *, pre_charge: bool) -> None:
        """DC: regulate towards `voltage` limited to `current` (pre-charge: a small current
        until the battery voltage is reached). AC: `current` is the per-phase maximum."""

    @abc.abstractmethod
    async def set_contactors(self, closed: bool) -> None:
        """Close (start of power delivery) or open (end, pause) the output contactors."""

    @abc.abstractmethod
    async def stop_output(self) -> None:
        """Ramp the output down to zero current (before opening contactors, or on a fault)."""

    async def set_power_limit(self, max_power: float | None) -> None:  # noqa: B027 - optional
        """The site's allocation for this EVSE changed (`secc.site`): cap the output at
        `max_power` W at once (None: no site cap). The sessions follow the new limit with
        their next request; a controller that ignores this hook stays within the old
        limit until then. `status().limits` keeps reporting the EVSE's own limits, without
        the site cap (the station reads them as what the EVSE could give; the SECC applies
        the cap to what the sessions see). Default: nothing."""

    async def session_started(self, session_id: str) -> None:  # noqa: B027 - optional hook
        """A session began (after SessionSetup). Default: nothing."""

    async def session_ended(self, session_id: str, reason: StopReason) -> None:  # noqa: B027
        """A session ended: unlock the connector, reset the isolation result. Default:
        nothing."""


def load_plugin(spec: str, base: type, what: str, options: Mapping[str, Any]) -> Any:
    """Import `module:Class`, check it is a `base` subclass, build it with `options` (from
    configuration); ValueError names what went wrong."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"{what} must be given as module:Class, not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {what} module {module_name!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise ValueError(f"{spec} is not a {base.__name__} subclass")
    return cls(**options)


def load_controller(spec: str, **options: Any) -> EVSEController:
    """Import `module:Class` and build it with `options` (from configuration)."""
    controller: EVSEController = load_plugin(spec, EVSEController, "EVSE controller", options)
    return controller
