"""Site smart charging: sharing one site power limit among several EVSEs (pure, no I/O).

`allocate(site_limit, demands)` gives every EVSE a power cap in whole watts:

1. **Ceilings.** An EVSE with a session may get at most min(EVSE maximum, car maximum); the
   car's maximum counts once it is known (ChargeParameterDiscovery). An idle EVSE gets a
   reservation of `minimum` W (default 0), at most its own maximum. Without a site limit
   (None) every EVSE gets its ceiling and an idle one its full maximum.
2. **Enough for all.** When the ceilings fit within the limit, everyone gets their ceiling.
3. **Departure time first.** A session whose car gave a departure time and an energy need
   requires ``energy_needed / departure_in`` on average (its whole ceiling once the departure
   time has passed). That power, up to its ceiling, is its *floor*. When the floors together
   exceed the limit they are scaled down in proportion and nobody gets more.
4. **Max-min fair share** (water-filling) of the rest: a common level L is raised until the
   limit is used up; each EVSE gets its floor or L, whichever is higher, but never more than
   its ceiling. So a session whose requirement is below the fair share gets just the fair
   share, as if it had given no departure time; an idle EVSE's reservation counts as a small
   demand like any other and shrinks with the level when the limit is tight.
5. **Whole watts.** The shares are rounded down and the watts left over given one at a time
   to the largest fractional parts (ties in EVSEID order), so the caps sum to the limit
   exactly (unless everyone is at their ceiling) and the result depends only on the input.

Two helpers for applying a new allocation: `renegotiation_needed` (hysteresis: only a change
of more than max(1 kW, 5 %) of what the car was last told, or one to or from zero, is worth a
schedule renegotiation; the controller's hard cap always follows exactly), and `apply_order`
(decreases before increases, so that the caps in force never sum above the limit during the
change). `session_demand` turns what a session learnt from the car into a `Demand`,
dropping values a car could send that make no sense.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MINIMUM",
    "RENEGOTIATE_ABSOLUTE",
    "RENEGOTIATE_RELATIVE",
    "Demand",
    "allocate",
    "apply_order",
    "renegotiation_needed",
    "required_power",
    "session_demand",
]

#: W kept for an idle EVSE by default: none. The allocation is recomputed when a session
#: starts (SessionSetup), well before the car draws power, and the others' caps are lowered
#: before the newcomer's is raised, so a reservation would only leave site power unused.
DEFAULT_MINIMUM = 0.0
#: a new cap differs enough from what the car was told when it moves by more than both
RENEGOTIATE_ABSOLUTE = 1000.0  # W
RENEGOTIATE_RELATIVE = 0.05


def _check(name: str, value: float | None, *, negative: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if value < 0 and not negative:
        raise ValueError(f"{name} must not be negative, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Demand:
    """What one EVSE asks of the site (W, Wh, s)."""

    evse_id: str
    #: the EVSE's own limit (hardware)
    evse_max_power: float
    #: the car's maximum (None until ChargeParameterDiscovery)
    ev_max_power: float | None = None
    #: a session is running on this EVSE
    active: bool = False
    #: seconds until the car's departure time, if it gave one (negative: overdue)
    departure_in: float | None = None
    #: Wh the car still wants, if it said
    energy_needed: float | None = None

    def __post_init__(self) -> None:
        if not self.evse_id:
            raise ValueError("a demand needs an EVSEID")
        _check("evse_max_power", self.evse_max_power)
        _check("ev_max_power", self.ev_max_power)
        _check("departure_in", self.departure_in, negative=True)
        _check("energy_needed", self.energy_needed)

    @property
    def ceiling(self) -> float:
        """The most this session may get: min(EVSE maximum, car maximum)."""
        if self.ev_max_power is None:
            return self.evse_max_power
        return min(self.evse_max_power, self.ev_max_power)


def required_power(energy_needed: float | None, departure_in: float | None) -> float | None:
    """The average power (W) that delivers `energy_needed` Wh within `departure_in` s;
    infinite once the departure time has come; None without both values."""
    if energy_needed is None or departure_in is None:
        return None
    if energy_needed <= 0:
        return 0.0
    if departure_in <= 0:
        return math.inf
    return energy_needed * 3600.0 / departure_in


def _usable(value: float | None, *, negative: bool = False) -> float | None:
    if value is None or not math.isfinite(value) or (value < 0 and not negative):
        return None
    return value


def session_demand(
    *,
    evse_id: str,
    evse_max_power: float,
    ev_max_power: float | None,
    departure_time: float | None = None,
    energy_request: float | None = None,
    elapsed: float = 0.0,
    delivered: float = 0.0,
) -> Demand:
    """A running session's `Demand` from what the car said in ChargeParameterDiscoveryReq:
    `departure_time` (s from then), `energy_request` (Wh then: ISO-2 DC EVEnergyRequest, AC
    EAmount), `elapsed` s since and `delivered` Wh since. A car's value that is negative,
    infinite or NaN is ignored (as if not sent), so a car cannot make the allocation fail."""
    departure = _usable(departure_time)
    request = _usable(energy_request)
    return Demand(
        evse_id=evse_id,
        evse_max_power=evse_max_power,
        ev_max_power=_usable(ev_max_power),
        active=True,
        departure_in=None if departure is None else departure - max(elapsed, 0.0),
        energy_needed=None if request is None else max(request - max(delivered, 0.0), 0.0),
    )


def _level(limit: float, floors: Sequence[float], ceilings: Sequence[float]) -> float:
    """The water level L with sum(clamp(L, floor, ceiling)) == limit, for
    sum(floors) <= limit <= sum(ceilings)."""

    def filled(level: float) -> float:
        return math.fsum(max(f, min(c, level)) for f, c in zip(floors, ceilings, strict=True))

    points = sorted({0.0, *floors, *ceilings})
    low = points[0]
    for point in points:
        if filled(point) >= limit:
            below = filled(low)
            if point == low:
                return point
            # linear between breakpoints: the slope is the number of EVSEs at the level
            return low + (limit - below) * (point - low) / (filled(point) - below)
        low = point
    return points[-1]


def _whole_watts(
    ids: Sequence[str], shares: Sequence[float], ceilings: Sequence[int], limit: int
) -> list[int]:
    """Round `shares` down to whole watts and hand out the watts left (up to `limit`) one at
    a time by largest fractional part, never above a ceiling."""
    out = [min(math.floor(s + 1e-9), c) for s, c in zip(shares, ceilings, strict=True)]
    left = limit - sum(out)
    order = sorted(range(len(out)), key=lambda i: (-(shares[i] - math.floor(shares[i])), ids[i]))
    while left > 0:
        progressed = False
        for i in order:
            if left > 0 and out[i] < ceilings[i]:
                out[i] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    for i in reversed(order):  # float error the other way: take watts back
        while left < 0 and out[i] > 0:
            out[i] -= 1
            left += 1
    return out


def allocate(
    site_limit: float | None, demands: Sequence[Demand], *, minimum: float = DEFAULT_MINIMUM
) -> dict[str, float]:
    """Each EVSE's power cap (whole W) under `site_limit` (W; None: no site limit), by the
    policy in the module docstring. `minimum`: W reserved for an idle EVSE."""
    _check("site_limit", site_limit)
    _check("minimum", minimum)
    ids = [d.evse_id for d in demands]
    if len(set(ids)) != len(ids):
        raise ValueError("each EVSE may appear once among the demands")
    if site_limit is None:
        return {
            d.evse_id: float(math.floor(d.ceiling if d.active else d.evse_max_power))
            for d in demands
        }
    ceilings = [
        math.floor(d.ceiling if d.active else min(minimum, d.evse_max_power)) for d in demands
    ]
    limit = math.floor(site_limit)
    if sum(ceilings) <= limit:
        return {i: float(c) for i, c in zip(ids, ceilings, strict=True)}
    floors = []
    for d, ceiling in zip(demands, ceilings, strict=True):
        need = required_power(d.energy_needed, d.departure_in) if d.active else None
        floors.append(0.0 if need is None else min(need, float(ceiling)))
    floor_sum = math.fsum(floors)
    if floor_sum >= limit:  # (limit 0 included)
        shares = [f * limit / floor_sum if floor_sum > 0 else 0.0 for f in floors]
    else:
        level = _level(limit, floors, ceilings)
        shares = [max(f, min(c, level)) for f, c in zip(floors, ceilings, strict=True)]
    caps = _whole_watts(ids, shares, ceilings, limit)
    return {i: float(c) for i, c in zip(ids, caps, strict=True)}


def renegotiation_needed(
    announced: float | None,
    allocated: float,
    *,
    ev_max_power: float | None = None,
    absolute: float = RENEGOTIATE_ABSOLUTE,
    relative: float = RENEGOTIATE_RELATIVE,
) -> bool:
    """Whether a car told `announced` W (None: nothing yet) should be sent a new schedule for
    `allocated` W: when the change exceeds both `absolute` W and `relative` of `announced`,
    or power starts or stops (one of them is 0). Power above the car's own maximum
    (`ev_max_power`, if known) counts as that maximum: the car cannot use it. The EVSE's hard
    cap follows every change regardless; this only spares the cars renegotiating over small
    jitter."""
    if announced is None:
        return True
    if ev_max_power is not None and math.isfinite(ev_max_power) and ev_max_power >= 0:
        announced, allocated = min(announced, ev_max_power), min(allocated, ev_max_power)
    if (announced <= 0) != (allocated <= 0):
        return True
    return abs(allocated - announced) > max(absolute, relative * abs(announced))


def apply_order(
    current: Mapping[str, float | None], target: Mapping[str, float]
) -> list[tuple[str, float]]:
    """The cap changes from `current` to `target` as (EVSEID, cap): first the decreases, then
    the EVSEs not capped yet (missing from `current` or None there), then the increases,
    each group in EVSEID order; unchanged caps are left out. If both allocations fit a
    limit, so does every state in between in which every EVSE is capped."""
    uncapped: list[tuple[str, float]] = []
    down: list[tuple[str, float]] = []
    up: list[tuple[str, float]] = []
    for evse_id in sorted(target):
        new = target[evse_id]
        old = current.get(evse_id)
        if old is None:
            uncapped.append((evse_id, new))
        elif new < old:
            down.append((evse_id, new))
        elif new > old:
            up.append((evse_id, new))
    return down + uncapped + up
