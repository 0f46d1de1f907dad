"""The simulated charger, driven by a fake clock: ramps, energy, cable check, faults."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secc.evse import (
    ControlPilotState,
    EnergyMode,
    EvseStatus,
    IsolationStatus,
    PowerLimit,
    load_controller,
)
from secc.records import StopReason
from secc.simulated import SimulatedEVSE, meter_signature

WALL = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0  # monotonic clocks do not start at 0

    def __call__(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return WALL + timedelta(seconds=self.t - 100.0)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def make(clock: FakeClock, **options: Any) -> SimulatedEVSE:
    return SimulatedEVSE(clock=clock, wall_clock=clock.wall, **options)


def at(evse: SimulatedEVSE, clock: FakeClock, t: float) -> EvseStatus:
    clock.t = 100.0 + t
    return evse.snapshot()


def charging(clock: FakeClock, **options: Any) -> SimulatedEVSE:
    """Cable check done, pre-charged to 400 V, contactors closed: ready for a charge target
    at t = 1.0."""
    evse = make(clock, **options)
    evse.set_cp_state("C")
    run(evse.start_cable_check())
    run(evse.set_target(400, 2, pre_charge=True))
    assert at(evse, clock, 0.8).voltage_reached
    run(evse.set_contactors(True))
    at(evse, clock, 1.0)
    return evse


def test_defaults_describe_a_dc_charger() -> None:
    evse = SimulatedEVSE()
    assert evse.evse_id == "DE*ABC*E0000001*1"
    assert evse.energy_modes == (EnergyMode.DC_EXTENDED, EnergyMode.DC_CORE)
    status = asyncio.run(evse.status())
    assert status.limits.max_voltage == 500 and status.limits.min_voltage == 150
    assert status.limits.max_current == 200 and status.limits.max_power == 100_000
    assert status.cp_state is ControlPilotState.B
    assert status.isolation is IsolationStatus.UNKNOWN
    assert status.present_voltage == 0 and status.present_current == 0
    assert status.meter is not None and status.meter.signature is None


def test_cable_check_needs_state_c_for_the_whole_duration() -> None:
    clock = FakeClock()
    evse = make(clock, isolation_check_duration=0.2)
    run(evse.start_cable_check())
    assert at(evse, clock, 1.0).isolation is IsolationStatus.UNKNOWN  # still CP state B
    evse.set_cp_state(ControlPilotState.C)
    assert at(evse, clock, 1.19).isolation is IsolationStatus.UNKNOWN
    evse.set_cp_state("B")  # interrupted: starts again
    assert at(evse, clock, 1.5).isolation is IsolationStatus.UNKNOWN
    evse.set_cp_state("D")
    assert at(evse, clock, 1.69).isolation is IsolationStatus.UNKNOWN
    assert at(evse, clock, 1.7).isolation is IsolationStatus.VALID
    run(evse.session_ended("S", StopReason.EV_STOPPED))
    assert evse.snapshot().isolation is IsolationStatus.UNKNOWN


def test_cable_check_started_in_state_c_takes_exactly_the_duration() -> None:
    clock = FakeClock()
    evse = make(clock, isolation_check_duration=0.5)
    evse.set_cp_state("C")
    at(evse, clock, 2.0)
    run(evse.start_cable_check())
    assert at(evse, clock, 2.49).isolation is IsolationStatus.UNKNOWN
    assert at(evse, clock, 2.5).isolation is IsolationStatus.VALID


def test_pre_charge_ramps_the_voltage_without_current() -> None:
    clock = FakeClock()
    evse = make(clock, voltage_ramp_rate=500)
    run(evse.set_target(400, 2, pre_charge=True))
    s = at(evse, clock, 0.4)
    assert s.present_voltage == pytest.approx(200) and not s.voltage_reached
    s = at(evse, clock, 0.79)
    assert s.present_voltage == pytest.approx(395) and s.voltage_reached  # within 5 V
    s = at(evse, clock, 2.0)
    assert s.present_voltage == 400 and s.present_current == 0
    run(evse.set_target(900, 2, pre_charge=True))  # clamped to the maximum
    assert at(evse, clock, 3.0).present_voltage == 500


def test_current_ramps_and_energy_integrates_exactly() -> None:
    clock = FakeClock()
    evse = charging(clock, current_ramp_rate=200, meter_wh=1000)
    assert evse.snapshot().present_current == 0  # pre-charge target: no current yet
    run(evse.set_target(400, 100, pre_charge=False))
    assert at(evse, clock, 1.25).present_current == pytest.approx(50)
    assert at(evse, clock, 1.5).present_current == pytest.approx(100)
    start = evse.energy_wh
    assert start == pytest.approx(1000 + 400 * 100 * 0.5 / 2 / 3600)
    status = at(evse, clock, 1.5 + 3600)  # one hour at 40 kW
    assert evse.energy_wh - start == pytest.approx(40_000)
    assert status.meter is not None and status.meter.energy_wh == int(evse.energy_wh)
    assert status.meter.at == WALL + timedelta(seconds=3601.5)


def test_current_is_limited_by_max_current_and_power() -> None:
    clock = FakeClock()
    evse = charging(clock, max_power=50_000)
    run(evse.set_target(400, 300, pre_charge=False))
    assert at(evse, clock, 10).present_current == pytest.approx(125)  # 50 kW / 400 V
    clock2 = FakeClock()
    evse2 = charging(clock2)
    run(evse2.set_target(400, 300, pre_charge=False))
    assert at(evse2, clock2, 10).present_current == pytest.approx(200)  # max_current


def test_schedule_limits_power_from_session_start() -> None:
    clock = FakeClock()
    evse = make(
        clock, schedule=[{"start": 0, "max_power": 20_000}, {"start": 60, "max_power": 40_000}]
    )
    run(evse.session_started("S"))
    evse.set_cp_state("C")
    run(evse.set_target(400, 2, pre_charge=True))
    at(evse, clock, 1)
    run(evse.set_contactors(True))
    run(evse.set_target(400, 150, pre_charge=False))
    s = at(evse, clock, 30)
    assert s.present_current == pytest.approx(50) and s.limits.max_power == 20_000
    assert s.schedule == (
        PowerLimit(start=0, max_power=20_000),
        PowerLimit(start=60, max_power=40_000),
    )
    s = at(evse, clock, 61)
    assert s.present_current == pytest.approx(100) and s.limits.max_power == 40_000
    evse.set_schedule([PowerLimit(start=0, max_power=8_000)])
    assert at(evse, clock, 70).present_current == pytest.approx(20)
    with pytest.raises(ValueError):
        evse.set_schedule([PowerLimit(start=5, max_power=1)])


def test_stop_output_ramps_down_then_contactors_open() -> None:
    clock = FakeClock()
    evse = charging(clock, current_ramp_rate=200, voltage_ramp_rate=500)
    run(evse.set_target(400, 100, pre_charge=False))
    at(evse, clock, 5)
    run(evse.stop_output())
    s = at(evse, clock, 5.25)
    assert s.present_current == pytest.approx(50)
    assert s.present_voltage == pytest.approx(275)
    s = at(evse, clock, 6)
    assert s.present_current == 0 and s.present_voltage == 0 and not s.voltage_reached
    run(evse.set_contactors(False))
    assert not evse.snapshot().contactors_closed


def test_opening_contactors_cuts_the_current() -> None:
    clock = FakeClock()
    evse = charging(clock)
    run(evse.set_target(400, 100, pre_charge=False))
    at(evse, clock, 5)
    run(evse.set_contactors(False))
    energy = evse.energy_wh
    s = at(evse, clock, 100)
    assert s.present_current == 0 and evse.energy_wh == energy


def test_ac_charger_meters_nominal_voltage_times_phases() -> None:
    clock = FakeClock()
    evse = make(clock, dc=False, phases=3, current_ramp_rate=1000)
    assert evse.energy_modes == (EnergyMode.AC_THREE_PHASE_CORE, EnergyMode.AC_SINGLE_PHASE_CORE)
    limits = evse.snapshot().limits
    assert limits.max_current == 32 and limits.max_power == pytest.approx(230 * 32 * 3)
    run(evse.set_target(0, 16, pre_charge=False))
    assert at(evse, clock, 1).present_current == 0  # contactors open
    run(evse.set_contactors(True))
    s = at(evse, clock, 2)
    assert s.present_current == 16 and s.present_voltage == 230
    run(evse.set_target(0, 50, pre_charge=False))  # more than the EVSE can give
    assert at(evse, clock, 3).present_current == 32
    before = evse.energy_wh
    at(evse, clock, 3 + 3600)
    assert evse.energy_wh - before == pytest.approx(230 * 32 * 3)


def test_isolation_fault_stops_everything_at_once() -> None:
    clock = FakeClock()
    evse = charging(clock)
    run(evse.set_target(400, 100, pre_charge=False))
    at(evse, clock, 5)
    evse.inject_isolation_fault()
    s = evse.snapshot()
    assert s.isolation is IsolationStatus.FAULT and s.stop is StopReason.EVSE_FAULT
    assert s.present_current == 0 and s.present_voltage == 0
    run(evse.set_target(400, 100, pre_charge=False))  # refused while faulted
    assert at(evse, clock, 10).present_voltage == 0
    run(evse.start_cable_check())
    assert at(evse, clock, 20).isolation is IsolationStatus.FAULT
    evse.clear_faults()
    run(evse.start_cable_check())
    assert at(evse, clock, 21).isolation is IsolationStatus.VALID
    assert evse.snapshot().stop is None


def test_emergency_shutdown_and_stop_requests() -> None:
    clock = FakeClock()
    evse = charging(clock)
    evse.request_stop()
    assert evse.snapshot().stop is StopReason.EVSE_STOPPED
    run(evse.session_ended("S", StopReason.EVSE_STOPPED))
    assert evse.snapshot().stop is None  # consumed by the session's end
    evse.emergency_shutdown()
    s = evse.snapshot()
    assert s.emergency_shutdown and s.stop is StopReason.EVSE_FAULT
    run(evse.session_ended("S", StopReason.EVSE_FAULT))
    assert evse.snapshot().emergency_shutdown  # until cleared
    evse.clear_faults()
    assert not evse.snapshot().emergency_shutdown
    evse.set_malfunction()
    assert evse.snapshot().malfunction


def test_unplugging_shuts_the_output_down() -> None:
    clock = FakeClock()
    evse = charging(clock)
    run(evse.set_target(400, 100, pre_charge=False))
    at(evse, clock, 5)
    evse.set_cp_state("A")
    s = evse.snapshot()
    assert s.cp_state is ControlPilotState.A and s.present_current == 0


def test_signed_meter_readings_are_deterministic() -> None:
    clock = FakeClock()
    evse = make(clock, sign_meter=True, meter_key="k", meter_id="M-7", meter_wh=12345)
    a, b = evse.snapshot().meter, evse.snapshot().meter
    assert a is not None and b is not None
    assert a.signature is not None and len(a.signature) == 64
    assert a == b and a.energy_wh == 12345
    assert a.signature == meter_signature(b"k", "M-7", 12345, WALL)
    assert a.signature != meter_signature(b"other", "M-7", 12345, WALL)


def test_a_long_steady_gap_is_cheap_and_exact() -> None:
    clock = FakeClock()
    evse = charging(clock)
    run(evse.set_target(400, 100, pre_charge=False))
    at(evse, clock, 2)
    start = evse.energy_wh
    at(evse, clock, 2 + 10 * 3600)
    assert evse.energy_wh - start == pytest.approx(400_000)


def test_loaded_from_configuration() -> None:
    evse = load_controller(
        "secc.simulated:SimulatedEVSE",
        evse_id="DE*XYZ*E1*1",
        energy_modes=["AC_single_phase_core"],
        dc=False,
        phases=1,
        max_current=16,
        schedule=[{"start": 0, "max_power": 3000}],
    )
    assert isinstance(evse, SimulatedEVSE)
    assert evse.energy_modes == (EnergyMode.AC_SINGLE_PHASE_CORE,)
    assert evse.snapshot().limits.max_power == 3000
    with pytest.raises(ValueError):
        SimulatedEVSE(phases=2)
