"""Shared pieces of the SECC conformance cases: the case record, the scenario builders
(an SECC core and the EV simulator pumped back to back on one fake clock), the EVSE
variants the cases need, and the views the assertions read.

A `Case` is one test case of the catalogue: its ISO 15118-4 style ID, one line saying what
it checks, where its number comes from (`Source`), and `run(env)`, which builds the
scenario, runs it and asserts. `params(cases)` turns a table of cases into pytest
parameters whose ids are the case IDs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from session_pair import Clock, SessionPair

from evcc.config import EvccConfig, Payment, PncCredentials
from evcc.events import SessionFinished
from evcc.faults import CustomMutate, Fault
from iso15118 import sap
from pki.create import TestPki
from pki.profiles import Role
from pki.store import TrustStore
from secc.context import ResumeState, SeccConfig
from secc.events import (
    ConnectionClosing,
    MessageExchanged,
    SessionEnded,
    SessionEvent,
)
from secc.evse import ControlPilotState, EnergyMode
from secc.provisioning import LocalProvisioning
from secc.records import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
    StopReason,
)
from secc.simulated import SimulatedEVSE

DER = serialization.Encoding.DER
SEQUENCE_TIMEOUT = 60.0  # V2G_SECC_Sequence_Timeout, ISO 15118-2 Table 109 / DIN [V2G-DC-432]
ISO2 = sap.AppProtocol.ISO2
DIN = sap.AppProtocol.DIN
AC = EnergyMode.AC_THREE_PHASE_CORE


class Source(Enum):
    """Where a case's number comes from."""

    #: the number and purpose of a test case of the public ISO 15118-4 ATS implementation
    ATS = "ISO 15118-4 ATS"
    #: the ATS numbering pattern of that message's test family (001 good, then sequence
    #: error, unknown session, timeout), not confirmed case by case
    PATTERN = "ATS pattern"
    #: this project's own number (101 and up): no public test case of that purpose found
    OWN = "own"


@dataclass(frozen=True, slots=True)
class Env:
    """What every case may use: the module's test PKI and a second, foreign one."""

    pki: TestPki
    foreign: TestPki


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    title: str
    source: Source
    run: Callable[[Env], None]
    protocol: str = "iso2"  # "iso2", "din" or "cmn" (the handshake)
    xfail: str | None = None


def params(cases: Iterable[Case]) -> list[Any]:
    out = []
    for case in cases:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def unique(cases: Sequence[Case]) -> Sequence[Case]:
    ids = [c.id for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"duplicate case IDs: {sorted(duplicates)}"
    return cases


# --- the pair ------------------------------------------------------------------------------

Hook = Callable[["ConformancePair"], None]


class ConformancePair(SessionPair):
    """A `SessionPair` that keeps the fake-clock time of every SECC event and calls a hook
    after the SECC answered the n-th request of a kind: hooks[(request name, n)]."""

    def __init__(
        self,
        ev_config: EvccConfig,
        secc_config: SeccConfig | None = None,
        *,
        hooks: Mapping[tuple[str, int], Hook] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(ev_config, secc_config, **kwargs)
        self.hooks = dict(hooks or {})
        self.timeline: list[tuple[float, SessionEvent]] = []
        self._answered: dict[str, int] = {}

    def _drain_secc(self) -> None:
        while (event := self.secc.next_event()) is not None:
            self.secc_events.append(event)
            self.timeline.append((self.clock.now, event))
            self._run(event)
            if isinstance(event, MessageExchanged):
                count = self._answered.get(event.request_name, 0) + 1
                self._answered[event.request_name] = count
                hook = self.hooks.get((event.request_name, count))
                if hook is not None:
                    hook(self)

    # --- views ---------------------------------------------------------------------------

    @property
    def exchanges(self) -> list[MessageExchanged]:
        return [e for e in self.secc_events if isinstance(e, MessageExchanged)]

    def answers_to(self, request: str) -> list[MessageExchanged]:
        return [e for e in self.exchanges if e.request_name == request]

    @property
    def closing(self) -> ConnectionClosing | None:
        found = [e for e in self.secc_events if isinstance(e, ConnectionClosing)]
        assert len(found) <= 1, found
        return found[0] if found else None

    @property
    def closed_at(self) -> float | None:
        for at, event in self.timeline:
            if isinstance(event, ConnectionClosing):
                return at
        return None

    @property
    def last_response_at(self) -> float:
        times = [at for at, e in self.timeline if isinstance(e, MessageExchanged)]
        assert times, "the SECC answered nothing"
        return times[-1]

    @property
    def ended(self) -> BillingRecord | None:
        found = [e.record for e in self.secc_events if isinstance(e, SessionEnded)]
        assert len(found) <= 1, found
        return found[0] if found else None

    def outcome(self) -> SessionFinished:
        finished = self.finished
        assert finished is not None, "the EV simulator did not finish"
        return finished


# --- EVSE variants -------------------------------------------------------------------------


class PilotMappingEVSE(SimulatedEVSE):
    """A simulated EVSE that measures `mapping[state]` when the car sets `state` (a car
    that does not switch to C, or switches to D)."""

    def __init__(self, mapping: Mapping[ControlPilotState, ControlPilotState], **kw: Any):
        super().__init__(**kw)
        self._mapping = dict(mapping)

    def set_cp_state(self, state: ControlPilotState | str) -> None:
        wanted = ControlPilotState(state)
        super().set_cp_state(self._mapping.get(wanted, wanted))


class IsolationFaultEVSE(SimulatedEVSE):
    """The insulation monitor trips as soon as the cable check starts."""

    async def start_cable_check(self) -> None:
        await super().start_cable_check()
        self.inject_isolation_fault()


def evse_for(
    clock: Clock, *, dc: bool = True, kind: type[SimulatedEVSE] = SimulatedEVSE, **kw: Any
) -> SimulatedEVSE:
    return kind(dc=dc, clock=lambda: clock.now, wall_clock=clock.wall, meter_wh=10_000, **kw)


def emergency_shutdown(pair: ConformancePair) -> None:
    pair.evse.emergency_shutdown()


def operator_stop(pair: ConformancePair) -> None:
    pair.evse.request_stop(StopReason.EVSE_STOPPED)


def renegotiate(pair: ConformancePair) -> None:
    pair.secc.request_renegotiation()


# --- scenarios -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """How to build one pair: the car's settings, the charger's, and the pair's options."""

    protocol: sap.AppProtocol = ISO2
    dc: bool = True
    pnc: bool = False
    install: bool = False  # PnC: install a contract first (CertificateInstallation)
    tls: bool = False
    service_detail: bool = False
    loops: int = 3
    ev: Mapping[str, Any] = field(default_factory=dict)
    secc: Mapping[str, Any] = field(default_factory=dict)
    pair: Mapping[str, Any] = field(default_factory=dict)
    evse_kind: type[SimulatedEVSE] = SimulatedEVSE
    evse_options: Mapping[str, Any] = field(default_factory=dict)
    provisioning: bool = True

    def with_(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)


DC_EIM = Scenario()
AC_EIM = Scenario(dc=False)
DC_EIM_DETAIL = Scenario(tls=True, service_detail=True)
DC_PNC = Scenario(pnc=True, tls=True)
AC_PNC = Scenario(pnc=True, tls=True, dc=False)
DC_PNC_INSTALL = Scenario(pnc=True, tls=True, install=True)
DIN_DC = Scenario(protocol=DIN)


def contract_credentials(pki: TestPki, *, install: bool) -> PncCredentials:
    oem = pki[Role.OEM_PROVISIONING]
    roots = (pki[Role.V2G_ROOT].certificate.public_bytes(DER),)
    if install:
        return PncCredentials(
            oem_provisioning_cert=oem.certificate.public_bytes(DER),
            oem_provisioning_key=oem.key,  # type: ignore[arg-type]
            root_certificates=roots,
            install_certificate=True,
        )
    chain = tuple(c.public_bytes(DER) for c in pki.chain(Role.CONTRACT))
    key = pki[Role.CONTRACT].key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return PncCredentials(contract_chain=chain, contract_key=key, root_certificates=roots)


def chain_credentials(
    chain: Sequence[x509.Certificate], key: ec.EllipticCurvePrivateKey
) -> PncCredentials:
    return PncCredentials(
        contract_chain=tuple(c.public_bytes(DER) for c in chain), contract_key=key
    )


def contract_trust(pki: TestPki) -> TrustStore:
    return TrustStore(
        [pki[Role.MO_ROOT].certificate],
        [pki[Role.MO_SUB_CA_1].certificate, pki[Role.MO_SUB_CA_2].certificate],
    )


def build(
    scenario: Scenario,
    env: Env,
    *,
    faults: Sequence[Fault] = (),
    hooks: Mapping[tuple[str, int], Hook] | None = None,
    credentials: PncCredentials | None = None,
    authorize: Callable[[AuthorizationRequest], AuthorizationDecision] | None = None,
    resumable: Mapping[bytes, ResumeState] | None = None,
    resume: bytes | None = None,
) -> ConformancePair:
    s = scenario
    clock = Clock()
    ev: dict[str, Any] = {
        "protocols": (s.protocol,),
        "max_charge_loops": s.loops,
        "energy_mode": EnergyMode.DC_EXTENDED if s.dc else AC,
        "tls": s.tls,
        "request_service_detail": s.service_detail,
        "faults": tuple(faults),
        "resume_session_id": resume,
    }
    if s.pnc:
        ev["payment"] = Payment.PNC
        ev["pnc"] = credentials or contract_credentials(env.pki, install=s.install)
    ev.update(s.ev)
    secc: dict[str, Any] = {"protocols": (s.protocol,)}
    if s.pnc:
        secc["contract_trust"] = contract_trust(env.pki)
    secc.update(s.secc)
    options: dict[str, Any] = dict(s.pair)
    if authorize is not None:
        options["authorize"] = authorize
    if s.provisioning:
        options.setdefault(
            "provisioning", LocalProvisioning.from_test_pki(env.pki, clock=clock.wall)
        )
    return ConformancePair(
        EvccConfig(**ev),
        SeccConfig(**secc),
        evse=evse_for(clock, dc=s.dc, kind=s.evse_kind, **s.evse_options),
        tls=s.tls,
        clock=clock,
        hooks=hooks,
        resumable=resumable,
        **options,
    )


def run(scenario: Scenario, env: Env, **kw: Any) -> ConformancePair:
    pair = build(scenario, env, **kw)
    pair.run()
    return pair


# --- assertions ------------------------------------------------------------------------------


def response_name(request: str) -> str:
    return request.removesuffix("Req") + "Res"


def assert_completed(pair: ConformancePair) -> None:
    """The EV simulator got through the whole session; every answer was OK."""
    finished = pair.outcome()
    assert finished.ok, finished
    bad = [
        (e.request_name, e.response_code)
        for e in pair.exchanges
        if e.response_code and not e.response_code.startswith("OK")
    ]
    assert not bad, bad


def assert_failed_and_closed(
    pair: ConformancePair, request: str, code: str, *, reason: StopReason | None = None
) -> MessageExchanged:
    """The last answer is `request`'s own response type carrying `code`, and the SECC
    closed the session right after it [V2G2-539] / [V2G-DC-665]."""
    last = pair.exchanges[-1]
    assert (last.request_name, last.response_name, last.response_code) == (
        request,
        response_name(request),
        code,
    ), (last.request_name, last.response_name, last.response_code)
    closing = pair.closing
    assert closing is not None, "the SECC did not close the session"
    assert pair.closed_at == pair.last_response_at
    if reason is not None:
        assert closing.reason is reason, closing
    assert not pair.outcome().ok
    return last


def assert_sequence_timeout(pair: ConformancePair, *, session: bool = True) -> None:
    """The SECC closed the connection exactly V2G_SECC_Sequence_Timeout after its last
    response, with a TIMEOUT billing record when a session existed."""
    closing = pair.closing
    assert closing is not None and closing.reason is StopReason.TIMEOUT, closing
    assert pair.closed_at == pair.last_response_at + SEQUENCE_TIMEOUT, (
        pair.closed_at,
        pair.last_response_at,
    )
    record = pair.ended
    if session:
        assert record is not None and record.stop_reason is StopReason.TIMEOUT, record
    else:
        assert record is None


def assert_protocol_error(pair: ConformancePair, *, answered: int) -> None:
    """Undecodable input: no answer to it, the session ended with a PROTOCOL_ERROR
    record (when one existed) and the connection closed, at the time it arrived."""
    assert len(pair.exchanges) == answered, [e.request_name for e in pair.exchanges]
    closing = pair.closing
    assert closing is not None and closing.reason is StopReason.PROTOCOL_ERROR, closing
    record = pair.ended
    if answered:
        assert record is not None and record.stop_reason is StopReason.PROTOCOL_ERROR
    assert not pair.outcome().ok


# --- building blocks of cases -------------------------------------------------------------


def mutate(
    message: str, change: Callable[[Any], None], *, after_signing: bool = False, occurrence: int = 1
) -> CustomMutate:
    """Change the body element of `message` in place."""

    def apply(v2g: Any) -> None:
        change(getattr(v2g.Body, message))

    return CustomMutate(
        message=message, mutate=apply, after_signing=after_signing, occurrence=occurrence
    )


def rejecting(request: AuthorizationRequest) -> AuthorizationDecision:
    return AuthorizationDecision(status=AuthorizationStatus.REJECTED, reason="blocked")


def expect_failed(scenario: Scenario, request: str, code: str, **kw: Any) -> Callable[[Env], None]:
    """The run ends with `request` answered `code` and the session closed."""

    def check(env: Env) -> None:
        assert_failed_and_closed(run(scenario, env, **kw), request, code)

    return check


def response_of(pair: ConformancePair, request: str, index: int = 0) -> Any:
    return pair.answers_to(request)[index].response


def evse_stops(
    scenario: Scenario,
    loop: str,
    hook: Callable[[ConformancePair], None],
    status_code: str | None,
    reason: StopReason,
) -> Callable[[Env], None]:
    """After the first loop response the EVSE stops (operator or emergency): the next loop
    response says StopCharging (DC: with `status_code`), the car stops, and the billing
    record names the EVSE's reason."""

    def check(env: Env) -> None:
        pair = run(scenario.with_(loops=10), env, hooks={(loop, 1): hook})
        assert len(pair.answers_to(loop)) == 2
        second = response_of(pair, loop, 1)
        if loop == "CurrentDemandReq":
            status = second.DC_EVSEStatus
            assert str(status.EVSEStatusCode) == status_code
        else:
            status = second.AC_EVSEStatus
        assert str(status.EVSENotification) == "StopCharging"
        after = [e.request_name for e in pair.exchanges][-3:]
        assert after[-1] == "SessionStopReq" and "PowerDeliveryReq" in after
        stop = pair.answers_to("PowerDeliveryReq")[-1].request
        if hasattr(stop, "ChargeProgress"):  # ISO-2
            assert str(stop.ChargeProgress) == "Stop"
        else:  # DIN
            assert stop.ReadyToChargeState is False
        record = pair.ended
        assert record is not None and record.stop_reason is reason, record

    return check
