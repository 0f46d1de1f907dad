"""Site power allocation (`secc.site`): worked examples and the policy's properties.

Properties (hypothesis): the caps never sum above the site limit nor exceed an EVSE's or a
car's own maximum; the limit is used up unless every EVSE is at its ceiling (Pareto); the
shares are max-min fair (one EVSE below another only if it is at its ceiling or the other
at its departure-time floor); departure-time requirements are met when they fit, scaled in
proportion when not; the result does not depend on the order of the demands; a higher limit
never lowers a cap; applying a new allocation in `apply_order` never passes the limit.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secc.site import (
    DEFAULT_MINIMUM,
    Demand,
    allocate,
    apply_order,
    renegotiation_needed,
    required_power,
    session_demand,
)

KW = 1000.0


def car(evse_id: str, evse_max: float = 50 * KW, **fields: float | None) -> Demand:
    return Demand(evse_id=evse_id, evse_max_power=evse_max, active=True, **fields)  # type: ignore[arg-type]


def idle(evse_id: str, evse_max: float = 50 * KW) -> Demand:
    return Demand(evse_id=evse_id, evse_max_power=evse_max)


# --------------------------------------------------------------------------- examples


def test_four_equal_cars_share_the_limit_equally() -> None:
    caps = allocate(120 * KW, [car("A"), car("B"), car("C"), car("D")])
    assert caps == {"A": 30 * KW, "B": 30 * KW, "C": 30 * KW, "D": 30 * KW}


def test_a_small_car_leaves_its_unused_share_to_the_others() -> None:
    caps = allocate(120 * KW, [car("A", ev_max_power=11 * KW), car("B"), car("C"), car("D")])
    # 109 kW over three: 36 333.3 each; the watt left over goes to the first EVSEID
    assert caps == {"A": 11 * KW, "B": 36_334.0, "C": 36_333.0, "D": 36_333.0}


def test_idle_evses_get_the_reservation_and_the_rest_goes_to_the_cars() -> None:
    demands = [car("A"), car("B"), idle("C"), idle("D")]
    assert allocate(60 * KW, demands) == {"A": 30 * KW, "B": 30 * KW, "C": 0.0, "D": 0.0}
    reserved = allocate(60 * KW, demands, minimum=3.7 * KW)
    assert reserved == {"A": 26.3 * KW, "B": 26.3 * KW, "C": 3.7 * KW, "D": 3.7 * KW}


def test_the_reservation_shrinks_with_the_fair_level_when_the_limit_is_tight() -> None:
    caps = allocate(8 * KW, [car("A"), idle("B"), idle("C"), idle("D")], minimum=3.7 * KW)
    assert caps == {"A": 2 * KW, "B": 2 * KW, "C": 2 * KW, "D": 2 * KW}


def test_everyone_gets_their_ceiling_when_it_fits() -> None:
    demands = [car("A", ev_max_power=20 * KW), car("B", ev_max_power=30 * KW), idle("C")]
    assert allocate(120 * KW, demands) == {"A": 20 * KW, "B": 30 * KW, "C": 0.0}


def test_no_site_limit_gives_every_evse_its_maximum() -> None:
    demands = [car("A", ev_max_power=20 * KW), car("B"), idle("C", 22 * KW)]
    assert allocate(None, demands) == {"A": 20 * KW, "B": 50 * KW, "C": 22 * KW}


def test_the_car_maximum_counts_only_once_known() -> None:
    caps = allocate(90 * KW, [car("A"), car("B", ev_max_power=None)])
    assert caps == {"A": 45 * KW, "B": 45 * KW}


def test_departure_time_gets_its_required_power_first() -> None:
    # A needs 40 kWh within the hour: 40 kW; the other three share the remaining 20 kW
    caps = allocate(
        60 * KW,
        [car("A", departure_in=3600, energy_needed=40_000), car("B"), car("C"), car("D")],
    )
    assert caps["A"] == 40 * KW
    assert sorted(caps[k] for k in "BCD") == [6666.0, 6667.0, 6667.0]


def test_a_requirement_below_the_fair_share_changes_nothing() -> None:
    relaxed = [car("A", departure_in=8 * 3600, energy_needed=20_000), car("B"), car("C")]
    assert allocate(60 * KW, relaxed) == {"A": 20 * KW, "B": 20 * KW, "C": 20 * KW}


def test_requirements_beyond_the_limit_are_scaled_in_proportion() -> None:
    caps = allocate(
        60 * KW,
        [
            car("A", departure_in=3600, energy_needed=40_000),  # 40 kW
            car("B", departure_in=1800, energy_needed=20_000),  # 40 kW
            car("C"),
        ],
    )
    assert caps == {"A": 30 * KW, "B": 30 * KW, "C": 0.0}


def test_an_overdue_car_asks_for_its_whole_ceiling() -> None:
    caps = allocate(
        60 * KW, [car("A", ev_max_power=45 * KW, departure_in=-10, energy_needed=5), car("B")]
    )
    assert caps == {"A": 45 * KW, "B": 15 * KW}


def test_a_requirement_is_capped_at_the_ceiling() -> None:
    caps = allocate(
        60 * KW, [car("A", ev_max_power=20 * KW, departure_in=60, energy_needed=50_000), car("B")]
    )
    assert caps == {"A": 20 * KW, "B": 40 * KW}


def test_a_car_that_needs_nothing_more_still_gets_the_fair_share() -> None:
    caps = allocate(60 * KW, [car("A", departure_in=600, energy_needed=0), car("B")])
    assert caps == {"A": 30 * KW, "B": 30 * KW}


def test_idle_evses_yield_to_a_departure_requirement() -> None:
    caps = allocate(
        40 * KW,
        [car("A", departure_in=3600, energy_needed=40_000), idle("B"), idle("C")],
        minimum=5 * KW,
    )
    assert caps == {"A": 40 * KW, "B": 0.0, "C": 0.0}


def test_caps_are_whole_watts_summing_to_the_limit() -> None:
    caps = allocate(100_001.9, [car("A"), car("B"), car("C")])
    assert all(v == int(v) for v in caps.values())
    assert sum(caps.values()) == 100_001
    assert sorted(caps.values()) == [33_333.0, 33_334.0, 33_334.0]


def test_a_zero_limit_gives_nothing() -> None:
    assert allocate(0.0, [car("A"), idle("B")], minimum=1000) == {"A": 0.0, "B": 0.0}


def test_no_demands() -> None:
    assert allocate(50 * KW, []) == {}
    assert allocate(None, []) == {}


def test_default_minimum_is_no_reservation() -> None:
    assert DEFAULT_MINIMUM == 0.0


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "fields",
    [
        {"evse_max_power": -1.0},
        {"evse_max_power": math.nan},
        {"evse_max_power": math.inf},
        {"ev_max_power": -5.0},
        {"ev_max_power": math.nan},
        {"energy_needed": -1.0},
        {"energy_needed": math.inf},
        {"departure_in": math.nan},
        {"evse_id": ""},
    ],
)
def test_a_nonsensical_demand_is_refused(fields: dict[str, object]) -> None:
    values: dict[str, object] = {"evse_id": "A", "evse_max_power": 1000.0, "active": True}
    values.update(fields)
    with pytest.raises(ValueError):
        Demand(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [-1.0, math.nan, math.inf])
def test_a_nonsensical_limit_is_refused(limit: float) -> None:
    with pytest.raises(ValueError, match="site_limit"):
        allocate(limit, [car("A")])


def test_a_nonsensical_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="minimum"):
        allocate(10.0, [car("A")], minimum=-1.0)


def test_an_evse_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="once"):
        allocate(10 * KW, [car("A"), idle("A")])


# --------------------------------------------------------------------------- helpers


def test_required_power() -> None:
    assert required_power(10_000, 3600) == 10 * KW
    assert required_power(10_000, 1800) == 20 * KW
    assert required_power(0, 0) == 0.0
    assert required_power(1, 0) == math.inf
    assert required_power(1, -5) == math.inf
    assert required_power(None, 60) is None
    assert required_power(100, None) is None


def test_session_demand_counts_from_charge_parameter_discovery() -> None:
    d = session_demand(
        evse_id="A",
        evse_max_power=50 * KW,
        ev_max_power=40 * KW,
        departure_time=7200,
        energy_request=30_000,
        elapsed=1800,
        delivered=10_000,
    )
    assert d.active and d.ceiling == 40 * KW
    assert (d.departure_in, d.energy_needed) == (5400, 20_000)
    done = session_demand(
        evse_id="A", evse_max_power=1.0, ev_max_power=None, energy_request=5, delivered=9
    )
    assert done.energy_needed == 0.0 and done.departure_in is None


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, -math.inf])
def test_session_demand_ignores_a_cars_nonsense(bad: float) -> None:
    d = session_demand(
        evse_id="A",
        evse_max_power=50 * KW,
        ev_max_power=bad,
        departure_time=bad,
        energy_request=bad,
    )
    assert (d.ev_max_power, d.departure_in, d.energy_needed) == (None, None, None)
    assert allocate(10 * KW, [d]) == {"A": 10 * KW}


def test_renegotiation_hysteresis() -> None:
    assert renegotiation_needed(None, 30 * KW)
    assert not renegotiation_needed(30 * KW, 30 * KW)
    assert not renegotiation_needed(30 * KW, 31 * KW)  # 1 kW, 3 %
    assert not renegotiation_needed(30 * KW, 31.5 * KW)  # 5 %
    assert renegotiation_needed(30 * KW, 31.6 * KW)
    assert renegotiation_needed(30 * KW, 28 * KW)
    assert not renegotiation_needed(3 * KW, 3.9 * KW)  # 30 %, but under 1 kW
    assert renegotiation_needed(3 * KW, 4.1 * KW)
    assert renegotiation_needed(500.0, 0.0)  # power stops
    assert renegotiation_needed(0.0, 500.0)  # power starts
    assert not renegotiation_needed(0.0, 0.0)


def test_renegotiation_ignores_power_beyond_the_car() -> None:
    assert not renegotiation_needed(50 * KW, 30 * KW, ev_max_power=20 * KW)
    assert renegotiation_needed(50 * KW, 10 * KW, ev_max_power=20 * KW)


def test_apply_order_lowers_first() -> None:
    current = {"A": 30 * KW, "B": 30 * KW, "C": 30 * KW, "D": None}
    target = {"A": 40 * KW, "B": 20 * KW, "C": 30 * KW, "D": 10 * KW}
    assert apply_order(current, target) == [("B", 20 * KW), ("D", 10 * KW), ("A", 40 * KW)]
    assert apply_order({}, {"X": 5.0}) == [("X", 5.0)]


# --------------------------------------------------------------------------- properties

ids = st.sampled_from([f"EVSE{i}" for i in range(8)])
power = st.floats(min_value=0, max_value=400 * KW, allow_nan=False)


@st.composite
def demand_lists(draw: st.DrawFn) -> list[Demand]:
    names = draw(st.lists(ids, unique=True, max_size=8))
    out = []
    for name in names:
        active = draw(st.booleans())
        urgent = active and draw(st.booleans())
        out.append(
            Demand(
                evse_id=name,
                evse_max_power=draw(power),
                ev_max_power=draw(st.none() | power) if active else None,
                active=active,
                departure_in=draw(st.floats(-600, 86400)) if urgent else None,
                energy_needed=draw(st.floats(0, 150_000)) if urgent else None,
            )
        )
    return out


limits = st.none() | st.floats(min_value=0, max_value=1000 * KW, allow_nan=False)
minimums = st.sampled_from([0.0, 1400.0, 3700.0, 11_000.0])


def ceiling(d: Demand, minimum: float) -> int:
    return math.floor(d.ceiling if d.active else min(minimum, d.evse_max_power))


def floor_of(d: Demand, minimum: float) -> float:
    need = required_power(d.energy_needed, d.departure_in) if d.active else None
    return 0.0 if need is None else min(need, ceiling(d, minimum))


@settings(max_examples=400, deadline=None)
@given(demand_lists(), limits, minimums)
def test_within_every_limit(demands: list[Demand], limit: float | None, minimum: float) -> None:
    caps = allocate(limit, demands, minimum=minimum)
    assert set(caps) == {d.evse_id for d in demands}
    assert all(v >= 0 and v == int(v) for v in caps.values())
    for d in demands:
        own = d.ceiling if limit is None or d.active else min(minimum, d.evse_max_power)
        assert caps[d.evse_id] <= own
        assert caps[d.evse_id] <= d.evse_max_power
        if d.active and d.ev_max_power is not None:
            assert caps[d.evse_id] <= d.ev_max_power
    if limit is not None:
        assert sum(caps.values()) <= limit
    else:
        assert caps == {
            d.evse_id: math.floor(d.ceiling if d.active else d.evse_max_power) for d in demands
        }


@settings(max_examples=400, deadline=None)
@given(demand_lists(), st.floats(min_value=0, max_value=1000 * KW), minimums)
def test_pareto_efficient(demands: list[Demand], limit: float, minimum: float) -> None:
    """No cap could rise without the limit or the EVSE's own ceiling binding."""
    caps = allocate(limit, demands, minimum=minimum)
    total = sum(caps.values())
    if total < math.floor(limit):
        assert all(caps[d.evse_id] == ceiling(d, minimum) for d in demands)
    else:
        assert total == math.floor(limit)


@settings(max_examples=400, deadline=None)
@given(demand_lists(), st.floats(min_value=0, max_value=1000 * KW), minimums)
def test_max_min_fair(demands: list[Demand], limit: float, minimum: float) -> None:
    """An EVSE below another (by more than rounding) is at its own ceiling, or the other is
    held at its departure-time floor."""
    caps = allocate(limit, demands, minimum=minimum)
    floors = {d.evse_id: floor_of(d, minimum) for d in demands}
    scale = min(1.0, math.floor(limit) / s) if (s := math.fsum(floors.values())) else 1.0
    for low in demands:
        if caps[low.evse_id] >= ceiling(low, minimum):
            continue
        for high in demands:
            if caps[high.evse_id] > caps[low.evse_id] + 1:
                assert caps[high.evse_id] <= floors[high.evse_id] * scale + 1, (low, high, caps)


@settings(max_examples=400, deadline=None)
@given(demand_lists(), st.floats(min_value=0, max_value=1000 * KW), minimums)
def test_departure_requirements_honoured(
    demands: list[Demand], limit: float, minimum: float
) -> None:
    caps = allocate(limit, demands, minimum=minimum)
    floors = {d.evse_id: floor_of(d, minimum) for d in demands}
    needed = math.fsum(floors.values())
    if needed <= math.floor(limit):
        for evse_id, floor in floors.items():
            assert caps[evse_id] >= floor - 1
    else:  # not even the requirements fit: in proportion, nothing for the others
        for evse_id, floor in floors.items():
            assert abs(caps[evse_id] - floor * math.floor(limit) / needed) <= 1


@settings(max_examples=200, deadline=None)
@given(demand_lists(), limits, minimums, st.randoms(use_true_random=False))
def test_deterministic_and_order_independent(
    demands: list[Demand], limit: float | None, minimum: float, rnd: object
) -> None:
    caps = allocate(limit, demands, minimum=minimum)
    shuffled = list(demands)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert allocate(limit, shuffled, minimum=minimum) == caps
    assert allocate(limit, demands, minimum=minimum) == caps


@settings(max_examples=300, deadline=None)
@given(
    demand_lists(),
    st.floats(min_value=0, max_value=1000 * KW),
    st.floats(min_value=0, max_value=500 * KW),
    minimums,
)
def test_a_higher_limit_never_lowers_a_cap(
    demands: list[Demand], limit: float, more: float, minimum: float
) -> None:
    before = allocate(limit, demands, minimum=minimum)
    after = allocate(limit + more, demands, minimum=minimum)
    for evse_id, cap in before.items():
        assert after[evse_id] >= cap - 1  # whole-watt rounding may move one watt


@settings(max_examples=300, deadline=None)
@given(demand_lists(), demand_lists(), st.floats(min_value=0, max_value=1000 * KW))
def test_apply_order_never_passes_the_limit(
    old: list[Demand], new: list[Demand], limit: float
) -> None:
    before = allocate(limit, old)
    target = allocate(limit, new)
    current: dict[str, float | None] = {k: before.get(k) for k in target}  # None: uncapped
    state = dict(current)
    changes = apply_order(current, target)
    for evse_id, cap in changes:
        state[evse_id] = cap
        if all(v is not None for v in state.values()):
            assert sum(v for v in state.values() if v is not None) <= limit
    assert state == target
