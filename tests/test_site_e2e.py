"""A site of four simulated EVSEs under one site limit, four cars over real sockets on ::1.

The `Station` runs four `SeccServer`s: 50 kW DC (ISO 15118-2), 50 kW DC (ISO 15118-2), 11 kW AC
three-phase (ISO 15118-2) and 50 kW DC (DIN SPEC 70121), 161 kW in all, under a 120 kW site
limit. The cars arrive one after the other (each joining shrinks the others' shares, and the
ISO-2 cars already charging renegotiate), then all four charge at once. A sampler reads every
EVSE's delivered power (the simulated EVSE's voltage x current x phases) every few
milliseconds throughout.

Then the limit drops to 32 kW and goes back up to 120 kW mid-session. After each change
every ISO 15118-2 car renegotiates exactly once and receives a PMaxSchedule whose PMax is its
new allocation; every DC car (the DIN one too, which cannot renegotiate) sees the new limit
as EVSEMaximumPowerLimit in each CurrentDemandRes after the change. At every sample the
powers sum to no more than the site limit and each EVSE stays within the cap it was given
(the station lowers caps before it raises others, and the simulated EVSE cuts its current at
once, so no allowance for ramps is needed), and the limit is actually used (it binds).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evcc.client import EvResult, run_ev
from evcc.config import EvccConfig
from evcc.events import MessageReceived
from exi_schemas import SCHEMA_CODECS
from iso15118.sap import AppProtocol
from secc.backend import LocalBackend
from secc.context import SeccConfig
from secc.events import MessageExchanged, SessionEvent
from secc.evse import EnergyMode
from secc.server import SeccServer, SeccServerConfig
from secc.simulated import SimulatedEVSE
from secc.site import renegotiation_needed
from secc.station import Station
from secc.store import SessionStore

KW = 1000.0
SITE_LIMIT = 120 * KW
LOW_LIMIT = 32 * KW
#: how often the sampler reads the four EVSEs (s)
SAMPLE_INTERVAL = 0.005
LOOP_REQUESTS = ("CurrentDemandReq", "ChargingStatusReq")
#: float slack when comparing watts (V x A products of binary floats)
SLACK = 1e-6


@dataclass(frozen=True, slots=True)
class Plan:
    """One EVSE of the site and the car that plugs into it."""

    evse_id: str
    protocol: AppProtocol
    dc: bool
    max_power: float

    @property
    def renegotiates(self) -> bool:
        return self.protocol is AppProtocol.ISO2


PLANS = (
    Plan("DE*ABC*E0000001*1", AppProtocol.ISO2, True, 50 * KW),
    Plan("DE*ABC*E0000002*1", AppProtocol.ISO2, True, 50 * KW),
    Plan("DE*ABC*E0000003*1", AppProtocol.ISO2, False, 230.0 * 16 * 3),  # 11 kW, 16 A
    Plan("DE*ABC*E0000004*1", AppProtocol.DIN, True, 50 * KW),
)

#: a car that charges until the operator stops it (a large battery, quick intervals)
CAR = EvccConfig(
    loop_interval=0.04,
    ongoing_interval=0.05,
    precharge_interval=0.02,
    initial_soc=30.0,
    target_soc=100.0,
    charge_duration=30.0,  # a safety net only: the test stops the sessions
)


@dataclass(frozen=True, slots=True)
class Sample:
    limit: float | None
    power: dict[str, float]
    caps: dict[str, float | None]


@dataclass
class Site:
    station: Station
    evses: dict[str, SimulatedEVSE]
    #: per EVSE: (request name, response) as the SECC answered them, in order
    exchanged: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    #: responses that were not OK (EVSEID, request, response code)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    cars: list[asyncio.Task[EvResult]] = field(default_factory=list)

    def observer(self, evse_id: str) -> Callable[[SessionEvent], None]:
        log = self.exchanged.setdefault(evse_id, [])

        def observe(event: SessionEvent) -> None:
            if isinstance(event, MessageExchanged):
                if not event.response_code.startswith("OK"):
                    self.failures.append((evse_id, event.request_name, event.response_code))
                log.append((event.request_name, event.response))

        return observe

    def count(self, evse_id: str, request: str) -> int:
        return sum(1 for name, _ in self.exchanged.get(evse_id, []) if name == request)

    def loops_since(self, evse_id: str, mark: int) -> int:
        return sum(1 for name, _ in self.exchanged[evse_id][mark:] if name in LOOP_REQUESTS)

    def describe(self) -> str:
        """Each EVSE's cap, the last request answered, the schedules sent (for failures)."""
        out = []
        for plan in PLANS:
            log = self.exchanged.get(plan.evse_id, [])
            sent = [_pmax(r) for n, r in log if n == "ChargeParameterDiscoveryReq"]
            last = log[-1][0] if log else None
            cap = self.station.servers[plan.evse_id].power_cap
            out.append(f"{plan.evse_id}: cap {cap}, last {last}, schedules {sent}")
        for car in self.cars:
            if car.done():
                out.append(repr(car.exception() or car.result().reason))
        return "; ".join([*out, f"failed: {self.failures}"])

    def allocation(self) -> dict[str, float | None]:
        return {p.evse_id: self.station.servers[p.evse_id].power_cap for p in PLANS}

    def sample(self) -> None:
        power = {}
        for evse_id, evse in self.evses.items():
            status = evse.snapshot()
            power[evse_id] = status.present_voltage * status.present_current * evse.phases
        caps = {evse_id: evse.site_cap for evse_id, evse in self.evses.items()}
        self.samples.append(Sample(self.station.site_limit_w, power, caps))


def _evse(plan: Plan) -> SimulatedEVSE:
    return SimulatedEVSE(
        evse_id=plan.evse_id,
        dc=plan.dc,
        max_power=plan.max_power,
        max_current=None if plan.dc else plan.max_power / 230.0 / 3,
        voltage_ramp_rate=20_000.0,
        current_ramp_rate=20_000.0,
        isolation_check_duration=0.05,
    )


@contextlib.asynccontextmanager
async def running_site(directory: Path) -> AsyncIterator[Site]:
    store = SessionStore(directory / "site.db")
    backend = LocalBackend(store=store, free_charging=True)
    evses = {plan.evse_id: _evse(plan) for plan in PLANS}
    servers = [
        SeccServer(
            SeccServerConfig(protocol=SeccConfig(protocols=(plan.protocol,)), tcp_port=0),
            controller=evses[plan.evse_id],
            backend=backend,
            store=store,
        )
        for plan in PLANS
    ]
    station = Station(servers, store=store, site_limit=SITE_LIMIT, poll_interval=0.05)
    site = Site(station, evses)
    for plan, server in zip(PLANS, servers, strict=True):
        server.observers.append(site.observer(plan.evse_id))
    try:
        async with station:
            yield site
    finally:
        store.close()


def _load_codecs() -> None:
    """Import the generated codecs before any car connects: the first import takes long
    enough on a loaded machine to hold the loop past a car's SessionSetup timeout."""
    for schema in ("appHand", "iso2", "din"):
        importlib.import_module("exi_schemas." + SCHEMA_CODECS[schema])


async def _car(site: Site, plan: Plan) -> EvResult:
    server = site.station.servers[plan.evse_id]
    endpoint = server.tcp_endpoint
    assert endpoint is not None
    evse = site.evses[plan.evse_id]
    mode = EnergyMode.DC_EXTENDED if plan.dc else EnergyMode.AC_THREE_PHASE_CORE
    config = dataclasses.replace(CAR, protocols=(plan.protocol,), energy_mode=mode)
    return await run_ev(
        config,
        endpoint.host,
        endpoint.port,
        evse_hook=lambda change: evse.set_cp_state(change.state),
    )


async def _until(
    condition: Callable[[], bool], what: str, site: Site | None = None, timeout: float = 8.0
) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        state = "" if site is None else f": {site.describe()}"
        raise AssertionError(f"timed out waiting until {what}{state}") from None


async def _sampler(site: Site, stop: asyncio.Event) -> None:
    while not stop.is_set():
        site.sample()
        await asyncio.sleep(SAMPLE_INTERVAL)


def _pmax(response: Any) -> list[float]:
    """The PMax values of the first SAScheduleTuple of a ChargeParameterDiscoveryRes (W;
    ISO-2 a PhysicalValue, DIN a number)."""
    schedule = response.SAScheduleList.SAScheduleTuple[0].PMaxSchedule
    return [
        float(e.PMax) if isinstance(e.PMax, int) else _watts(e.PMax)
        for e in schedule.PMaxScheduleEntry
    ]


def _watts(pv: Any) -> float:
    return float(pv.Value * 10.0**pv.Multiplier)


def _received(result: EvResult, name: str) -> list[Any]:
    """The bodies of the responses called `name` the car received, in order."""
    return [
        getattr(e.message.Body, name)
        for e in result.events
        if isinstance(e, MessageReceived) and e.name == name
    ]


def _check_samples(samples: list[Sample], *, at_least: int = 200) -> None:
    assert len(samples) > at_least, len(samples)
    for sample in samples:
        assert sample.limit is not None
        total = sum(sample.power.values())
        assert total <= sample.limit * (1 + SLACK), sample
        caps = [c for c in sample.caps.values() if c is not None]
        assert len(caps) == len(PLANS) and sum(caps) <= sample.limit, sample
        for evse_id, power in sample.power.items():
            cap = sample.caps[evse_id]
            assert cap is not None and power <= cap * (1 + SLACK) + SLACK, (evse_id, sample)


def _binds(samples: list[Sample], limit: float) -> None:
    """The limit was used: at some sample under it the EVSEs delivered nearly all of it."""
    best = max(sum(s.power.values()) for s in samples if s.limit == limit)
    assert best >= 0.97 * limit, (limit, best)


def _settled(site: Site, plans: Sequence[Plan]) -> bool:
    """Every car of `plans` is in its charge loop and was last told its present allocation
    (an ISO-2 car in its latest PMaxSchedule, within the renegotiation hysteresis)."""
    for plan in plans:
        log = site.exchanged.get(plan.evse_id, [])
        if site.loops_since(plan.evse_id, 0) < 10 or log[-1][0] not in LOOP_REQUESTS:
            return False
        cap = site.station.servers[plan.evse_id].power_cap
        if plan.renegotiates:
            told = [_pmax(r)[0] for n, r in log if n == "ChargeParameterDiscoveryReq"][-1]
            if cap is None or renegotiation_needed(told, cap):
                return False
    return True


def test_four_evses_share_the_site_limit_and_follow_its_changes(tmp_path: Path) -> None:
    _load_codecs()

    async def test() -> None:
        async with running_site(tmp_path) as site:
            stop_sampling = asyncio.Event()
            sampler = asyncio.create_task(_sampler(site, stop_sampling))
            cars = site.cars
            ids = [p.evse_id for p in PLANS]
            iso2 = [p.evse_id for p in PLANS if p.renegotiates]
            allocations: list[dict[str, float | None]] = []
            marks: list[dict[str, int]] = []
            try:
                # 1. the cars arrive one after the other; the others' shares shrink and
                # they renegotiate; at last all four charge under 120 kW
                for n, plan in enumerate(PLANS, start=1):
                    cars.append(asyncio.create_task(_car(site, plan)))
                    await _until(
                        lambda n=n: _settled(site, PLANS[:n]),  # type: ignore[misc]
                        f"{n} cars charge",
                        site,
                    )
                assert sum(c or 0 for c in site.allocation().values()) == SITE_LIMIT
                allocations.append(site.allocation())
                base = {i: site.count(i, "ChargeParameterDiscoveryReq") for i in iso2}
                # 2. the limit drops, then rises: each time every ISO-2 car renegotiates once
                for step, limit in enumerate((LOW_LIMIT, SITE_LIMIT), start=1):
                    marks.append({i: len(site.exchanged[i]) for i in ids})
                    await site.station.set_site_limit(limit)
                    allocations.append(site.allocation())
                    await _until(
                        lambda n=step: all(  # type: ignore[misc]
                            site.count(i, "ChargeParameterDiscoveryReq") >= base[i] + n
                            for i in iso2
                        ),
                        f"every ISO-2 car renegotiated under {limit} W",
                        site,
                    )
                    await _until(
                        lambda m=marks[-1]: all(  # type: ignore[misc]
                            site.loops_since(i, m[i]) >= 15 for i in ids
                        ),
                        f"all charge on under {limit} W",
                        site,
                    )
                marks.append({i: len(site.exchanged[i]) for i in ids})
                # 3. the operator stops the four sessions
                for server in site.station.servers.values():
                    for session_id in list(server.live):
                        assert await site.station.stop_session(session_id)
                async with asyncio.timeout(10):
                    results = await asyncio.gather(*cars)
            finally:
                stop_sampling.set()
                await sampler
                for task in cars:
                    task.cancel()
                await asyncio.gather(*cars, return_exceptions=True)

            assert not site.failures
            for plan, result in zip(PLANS, results, strict=True):
                assert result.ok, (plan.evse_id, result.reason)
                assert result.protocol is plan.protocol

            # what the station allocated: 120 kW: the 11 kW AC EVSE its maximum, the three
            # DC ones the rest in equal parts; 32 kW: 8 kW each
            high, low, again = allocations
            assert sum(c or 0 for c in high.values()) == SITE_LIMIT
            assert low == {i: 8 * KW for i in ids}
            assert again == high
            ac = PLANS[2].evse_id
            assert high[ac] == 11_040
            dc_share = (SITE_LIMIT - 11_040) / 3
            assert all(abs((high[i] or 0) - dc_share) <= 1 for i in ids if i != ac)

            for plan, result in zip(PLANS, results, strict=True):
                log = site.exchanged[plan.evse_id]
                for step in (1, 2):
                    cap = allocations[step][plan.evse_id]
                    during = log[marks[step - 1][plan.evse_id] : marks[step][plan.evse_id]]
                    names = [n for n, _ in during]
                    if plan.renegotiates:  # exactly one renegotiation, to the new PMax
                        assert names.count("ChargeParameterDiscoveryReq") == 1, names
                        (discovery,) = (r for n, r in during if n == "ChargeParameterDiscoveryReq")
                        assert _pmax(discovery) == [cap]
                    else:  # DIN cannot renegotiate
                        assert "ChargeParameterDiscoveryReq" not in names
                    if plan.dc:  # every CurrentDemandRes after the change carries the new limit
                        limits = [
                            _watts(r.EVSEMaximumPowerLimit)
                            for n, r in during
                            if n == "CurrentDemandReq"
                        ]
                        assert limits and set(limits) == {cap}, (plan.evse_id, set(limits))
                # the car received what the SECC sent: its last two schedules are the changes
                received = [_pmax(r) for r in _received(result, "ChargeParameterDiscoveryRes")]
                if plan.renegotiates:
                    assert received[-2:] == [[low[plan.evse_id]], [again[plan.evse_id]]]
                    assert len(received) == site.count(plan.evse_id, "ChargeParameterDiscoveryReq")
                else:
                    assert len(received) == 1
                    seen = [
                        _watts(r.EVSEMaximumPowerLimit)
                        for r in _received(result, "CurrentDemandRes")
                    ]
                    runs = [v for k, v in enumerate(seen) if k == 0 or seen[k - 1] != v]
                    evse_id = plan.evse_id
                    wanted = [high[evse_id], low[evse_id], again[evse_id]]
                    assert any(runs[k : k + 3] == wanted for k in range(len(runs))), runs

            _check_samples(site.samples)
            _binds(site.samples, SITE_LIMIT)
            _binds(site.samples, LOW_LIMIT)

    asyncio.run(test())


def test_four_cars_arriving_together_share_the_limit(tmp_path: Path) -> None:
    """All four cars plug in at once: each one's arrival moves the others' caps between their
    ChargeParameterDiscovery and PowerDelivery; every request is still answered OK, the site
    limit holds at every sample, and all settle on their shares."""
    _load_codecs()

    async def test() -> None:
        async with running_site(tmp_path) as site:
            stop_sampling = asyncio.Event()
            sampler = asyncio.create_task(_sampler(site, stop_sampling))
            cars = site.cars
            try:
                cars.extend(asyncio.create_task(_car(site, plan)) for plan in PLANS)
                await _until(lambda: _settled(site, PLANS), "all four cars charge", site)
                settled = site.allocation()
                for server in site.station.servers.values():
                    for session_id in list(server.live):
                        assert await site.station.stop_session(session_id)
                async with asyncio.timeout(10):
                    results = await asyncio.gather(*cars)
            finally:
                stop_sampling.set()
                await sampler
                for task in cars:
                    task.cancel()
                await asyncio.gather(*cars, return_exceptions=True)
            assert not site.failures
            for plan, result in zip(PLANS, results, strict=True):
                assert result.ok, (plan.evse_id, result.reason)
                codes = {
                    code
                    for _name, code in (
                        (n, getattr(r, "ResponseCode", "OK"))
                        for n, r in site.exchanged[plan.evse_id]
                    )
                }
                assert all(str(c).startswith("OK") for c in codes), (plan.evse_id, codes)
            _check_samples(site.samples, at_least=50)
            assert sum(c or 0 for c in settled.values()) == SITE_LIMIT

    asyncio.run(test())


# --------------------------------------------------------------------------- a cap that moves
# between ChargeParameterDiscovery and PowerDelivery(Start): cars that arrive together, or a
# limit change during a renegotiation. Deterministic: the cap moves as soon as the SECC has
# answered ChargeParameterDiscoveryReq, before the car's next request.


async def _moved_cap_session(tmp_path: Path, *, dc: bool, first: float, then: float) -> Any:
    """One ISO-2 car on one `SeccServer` capped at `first` W; the cap becomes `then` W right
    after ChargeParameterDiscoveryRes. The car charges 40 loops unless stopped."""
    store = SessionStore(tmp_path / "moved.db")
    evse = _evse(Plan("DE*ABC*E0000009*1", AppProtocol.ISO2, dc, 50 * KW if dc else 11_040.0))
    server = SeccServer(
        SeccServerConfig(protocol=SeccConfig(protocols=(AppProtocol.ISO2,)), tcp_port=0),
        controller=evse,
        backend=LocalBackend(store=store, free_charging=True),
        store=store,
    )
    await server.set_power_cap(first)
    exchanged: list[tuple[str, str]] = []

    def observe(event: SessionEvent) -> None:
        if isinstance(event, MessageExchanged):
            exchanged.append((event.request_name, event.response_code))
            if event.request_name == "ChargeParameterDiscoveryReq" and len(exchanged) < 8:
                server.spawn(server.set_power_cap(then))

    server.observers.append(observe)
    mode = EnergyMode.DC_EXTENDED if dc else EnergyMode.AC_THREE_PHASE_CORE
    config = dataclasses.replace(
        CAR, protocols=(AppProtocol.ISO2,), energy_mode=mode, max_charge_loops=40
    )
    try:
        async with server:
            endpoint = server.tcp_endpoint
            assert endpoint is not None
            result = await run_ev(
                config,
                endpoint.host,
                endpoint.port,
                evse_hook=lambda change: evse.set_cp_state(change.state),
            )
    finally:
        store.close()
    return result, exchanged


def test_a_cap_lowered_before_power_delivery_is_renegotiated(tmp_path: Path) -> None:
    _load_codecs()

    async def test() -> None:
        result, exchanged = await _moved_cap_session(tmp_path, dc=False, first=11_040, then=6000)
        assert all(code.startswith("OK") for _, code in exchanged), exchanged
        assert result.ok, result.reason
        schedules = [_pmax(r) for r in _received(result, "ChargeParameterDiscoveryRes")]
        assert schedules == [[11_040.0], [6000.0]]

    asyncio.run(test())


def test_a_cap_raised_before_power_delivery_is_renegotiated(tmp_path: Path) -> None:
    _load_codecs()

    async def test() -> None:
        result, exchanged = await _moved_cap_session(tmp_path, dc=True, first=20_000, then=40_000)
        assert all(code.startswith("OK") for _, code in exchanged), exchanged
        assert result.ok, result.reason
        schedules = [_pmax(r) for r in _received(result, "ChargeParameterDiscoveryRes")]
        assert schedules == [[20_000.0], [40_000.0]]

    asyncio.run(test())
