"""Battery model and configuration validation."""

from __future__ import annotations

import pytest

from evcc.battery import Battery, BatteryParams
from evcc.common import from_physical, physical_parts
from evcc.config import EvccConfig
from evcc.din.timing import DIN_TIMING
from evcc.iso2.timing import ISO2_TIMING
from exi_schemas import iso2
from iso15118.sap import AppProtocol
from secc.evse import EnergyMode

PARAMS = BatteryParams(
    capacity_wh=50_000,
    empty_voltage=300,
    full_voltage=400,
    max_voltage=420,
    max_current=100,
    max_power=50_000,
    taper_soc=80,
    min_taper_current=10,
)


def test_voltage_follows_soc() -> None:
    assert Battery(PARAMS, 0).open_circuit_voltage() == 300
    assert Battery(PARAMS, 50).open_circuit_voltage() == 350
    assert Battery(PARAMS, 50).target_voltage() == 360
    assert Battery(PARAMS, 100).target_voltage() == 410


def test_current_is_power_limited_and_tapers() -> None:
    assert Battery(PARAMS, 10).target_current() == 100  # 100 A x 320 V < 50 kW
    high = BatteryParams(max_power=20_000, max_current=500)
    assert Battery(high, 50).target_current() == pytest.approx(20_000 / 375)
    assert Battery(PARAMS, 90).target_current() == pytest.approx(10 + (100 - 10) * 0.5)
    assert Battery(PARAMS, 100).target_current() == 0


def test_energy_integration() -> None:
    battery = Battery(PARAMS, 50)
    added = battery.charge(400, 100, 36)  # 40 kW for 36 s = 400 Wh
    assert added == pytest.approx(400)
    assert battery.soc == pytest.approx(50.8)
    assert battery.charge(400, -5, 10) == 0
    assert battery.charge(400, 5, -1) == 0
    full = Battery(PARAMS, 99.9)
    assert full.charge(400, 100, 3600) == pytest.approx(50)  # capped at full
    assert full.soc == 100
    assert full.energy_request_wh(80) == 0


def test_battery_params_validation() -> None:
    with pytest.raises(ValueError):
        BatteryParams(capacity_wh=0)
    with pytest.raises(ValueError):
        BatteryParams(empty_voltage=500)
    with pytest.raises(ValueError):
        Battery(PARAMS, 101)


def test_physical_values() -> None:
    assert physical_parts(230) == (0, 230)
    assert physical_parts(400.5) == (-1, 4005)
    assert physical_parts(80_000) == (1, 8000)
    assert physical_parts(1.234) == (-3, 1234)
    m, v = physical_parts(123_456.7)
    assert abs(v * 10**m - 123_456.7) < 10
    pv = iso2.PhysicalValueType(Multiplier=-1, Unit=iso2.unitSymbolType.V, Value=4005)
    assert from_physical(pv) == pytest.approx(400.5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"protocols": ()}, "1 to 20"),
        ({"protocols": (AppProtocol.DIN, AppProtocol.DIN)}, "distinct"),
        ({"protocols": (AppProtocol.DIN,), "energy_mode": EnergyMode.AC_THREE_PHASE_CORE}, "AC"),
        ({"evcc_id": b"\x01\x02"}, "MAC"),
        ({"target_soc": 101}, "0..100"),
        ({"loop_interval": -1}, "loop_interval"),
        ({"max_charge_loops": 0}, "max_charge_loops"),
        ({"departure_time": -1}, "departure_time"),
        ({"resume_session_id": bytes(9)}, "resume_session_id"),
    ],
)
def test_config_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvccConfig(**changes)  # type: ignore[arg-type]


def test_timing_tables_cite_their_sources() -> None:
    for table in (DIN_TIMING, ISO2_TIMING):
        assert table.message_timeout("CurrentDemandReq").seconds == 0.25
        assert table.message_timeout("SessionSetupReq").seconds == 2.0
        assert table.ongoing.seconds == 60.0
        assert table.communication_setup.seconds == 20.0
        assert table.phase["CableCheckReq"].seconds == 40.0
        assert table.phase["PreChargeReq"].seconds == 7.0
        for timeout in (*table.message.values(), table.ongoing, *table.phase.values()):
            assert timeout.source
    assert ISO2_TIMING.message_timeout("PowerDeliveryReq").seconds == 5.0
    assert DIN_TIMING.message_timeout("PowerDeliveryReq").seconds == 2.0
