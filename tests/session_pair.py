"""An SECC session core and an EV session core pumped back to back in memory, with one
fake clock: the simulated EVSE, the backend and the car all run on it, so a whole session
takes milliseconds and every deadline is exact."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from evcc.client import EvCore
from evcc.config import EvccConfig
from evcc.events import ControlPilotChange, EvEvent, SessionFinished
from evcc.session import EvSession
from iso15118 import sap
from secc.context import ResumeState, SeccConfig
from secc.events import (
    AuthorizationResult,
    Authorize,
    CertificateKind,
    CertificateResult,
    ConnectionClosing,
    RequestCertificate,
    SessionEnded,
    SessionEvent,
    SessionPaused,
    SetContactors,
    SetTarget,
    StartCableCheck,
    StopOutput,
)
from secc.records import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationStatus,
    BillingRecord,
)
from secc.session import SeccSession
from secc.simulated import SimulatedEVSE

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def run_sync(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (the simulated EVSE's methods)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def counter_random(start: int = 1) -> Callable[[int], bytes]:
    counter = itertools.count(start)
    return lambda n: next(counter).to_bytes(n, "big")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.now)


def _accept(request: AuthorizationRequest) -> AuthorizationDecision:
    return AuthorizationDecision(status=AuthorizationStatus.ACCEPTED, reason="test")


class SessionPair:
    """Drive both cores until the EV finishes (or `max_time` passes)."""

    def __init__(
        self,
        ev_config: EvccConfig | None,
        secc_config: SeccConfig | None = None,
        *,
        evse: SimulatedEVSE | None = None,
        tls: bool = False,
        authorize: Callable[[AuthorizationRequest], AuthorizationDecision] = _accept,
        authorization_delay: float = 0.3,
        provisioning: Any = None,
        resumable: dict[bytes, ResumeState] | None = None,
        specs: Any = None,
        clock: Clock | None = None,
        ev: EvCore | None = None,
        request_gap: float = 0.0,
    ) -> None:
        """`ev`: another EV core with the same sans-IO API (e.g. a `ReplaySession`) instead
        of an `EvSession` built from `ev_config`. `request_gap`: fake seconds that pass
        between the EV sending and the SECC receiving (a recorded car's requests follow
        each other at once; the simulated output needs time to ramp)."""
        from secc.server import default_specs

        self.clock = clock or Clock()
        self.evse = evse or SimulatedEVSE(
            clock=lambda: self.clock.now, wall_clock=self.clock.wall, meter_wh=10_000
        )
        self.authorize = authorize
        self.authorization_delay = authorization_delay
        self.provisioning = provisioning
        self.request_gap = request_gap
        self.secc = SeccSession(
            secc_config or SeccConfig(),
            specs=specs or default_specs(),
            evse_id=self.evse.evse_id,
            energy_modes=self.evse.energy_modes,
            status=self.evse.snapshot(),
            now=self.clock.now,
            clock=self.clock.wall,
            random=counter_random(),
            tls=tls,
            resumable=resumable,
        )
        if ev is None:
            if ev_config is None:
                raise ValueError("give ev_config or ev")
            ev = EvSession(ev_config, random=counter_random(1000), clock=self.clock.wall)
        self.ev: EvCore = ev
        self.secc_events: list[SessionEvent] = []
        self.ev_events: list[EvEvent] = []
        self.records: list[BillingRecord] = []
        self.paused: dict[bytes, ResumeState] = {}
        self._pending: list[tuple[float, Any]] = []  # (due, control event)
        self.closed = False
        self._finished: SessionFinished | None = None

    # --- pumping -----------------------------------------------------------------------------

    def run(
        self, max_time: float = 600.0, *, silence_ok: bool = False, hang_up: bool = False
    ) -> SessionFinished | None:
        """`hang_up`: once the EV has finished, drop the connection (the SECC sees
        `connection_lost`) instead of waiting for the SECC to close or time out."""
        self.ev.start(self.clock.now)
        while self.clock.now <= max_time:
            while not self._exchange() and self.clock.now <= max_time:
                pass  # a long burst without timers (a replayed car's requests)
            finished = self.finished
            if finished is not None and hang_up and not self.secc.closed:
                self.secc.connection_lost(self.clock.now)
                self._drain_secc()
            if finished is not None and (self.closed or self.secc.closed):
                return finished
            deadline = self._next_deadline()
            if deadline is None:
                return finished
            self.clock.now = max(self.clock.now, deadline)
            self._fire(deadline)
        return self.finished

    @property
    def finished(self) -> SessionFinished | None:
        return self._finished

    def _exchange(self) -> bool:
        """Move messages until nothing moves (True) or for at most 1000 rounds (False)."""
        for _ in range(1000):
            moved = False
            data = self.ev.data_to_send()
            self._drain_ev()
            if data and not self.secc.closed:
                self.clock.now += self.request_gap
                self.secc.update_status(self.evse.snapshot())
                self.secc.receive_data(data, self.clock.now)
                moved = True
            self._drain_secc()
            reply = self.secc.data_to_send()
            if reply:
                self.ev.receive_data(reply, self.clock.now)
                moved = True
            self._drain_ev()
            if self.secc.closed and not self.closed:
                self.closed = True
                self.ev.close("the SECC closed the connection")
                self._drain_ev()
            if not moved:
                return True
        return False

    def _next_deadline(self) -> float | None:
        candidates = [t for t in (self.ev.get_timer(), self.secc.get_timer()) if t is not None]
        candidates += [due for due, _ in self._pending]
        if self.finished is not None:
            candidates = [t for t in candidates if t is not None]
        return min(candidates) if candidates else None

    def _fire(self, now: float) -> None:
        due = [(t, e) for t, e in self._pending if t <= now]
        self._pending = [(t, e) for t, e in self._pending if t > now]
        for _, event in due:
            self.secc.handle_event(event, now)
        if (timer := self.ev.get_timer()) is not None and timer <= now:
            self.ev.handle_timer(now)
        if (timer := self.secc.get_timer()) is not None and timer <= now:
            self.secc.handle_timer(now)
        self._drain_secc()
        self._drain_ev()

    def _drain_ev(self) -> None:
        while (event := self.ev.next_event()) is not None:
            self.ev_events.append(event)
            if isinstance(event, SessionFinished) and self._finished is None:
                self._finished = event
            if isinstance(event, ControlPilotChange):
                self.evse.set_cp_state(event.state)

    def _drain_secc(self) -> None:
        while (event := self.secc.next_event()) is not None:
            self.secc_events.append(event)
            self._run(event)

    def _run(self, event: SessionEvent) -> None:
        evse = self.evse
        match event:
            case StartCableCheck():
                run_sync(evse.start_cable_check())
            case SetTarget(voltage, current, pre_charge):
                run_sync(evse.set_target(voltage, current, pre_charge=pre_charge))
            case SetContactors(closed):
                run_sync(evse.set_contactors(closed))
            case StopOutput():
                run_sync(evse.stop_output())
            case Authorize(request):
                decision = self.authorize(request)
                due = self.clock.now + self.authorization_delay
                self._pending.append((due, AuthorizationResult(decision)))
            case RequestCertificate():
                self._pending.append((self.clock.now + 0.2, self._certificate(event)))
            case SessionPaused(session_id, resume, record):
                self.paused[bytes.fromhex(session_id)] = resume
                if record is not None:
                    self.records.append(record)
            case SessionEnded(record):
                self.records.append(record)
            case ConnectionClosing():
                pass

    def _certificate(self, event: RequestCertificate) -> CertificateResult:
        if self.provisioning is None:
            return CertificateResult(error_code="FAILED_NoCertificateAvailable")
        try:
            if event.kind == CertificateKind.INSTALLATION:
                result = self.provisioning.install(event.request, signature=event.signature)
            else:
                result = self.provisioning.update(event.request, signature=event.signature)
        except Exception as exc:  # a PkiError carries its code
            return CertificateResult(error_code=getattr(exc, "response_code", "FAILED"))
        return CertificateResult(body=result.body, signature=result.signature)

    # --- views -------------------------------------------------------------------------------

    def exchanged(self) -> list[tuple[str, str]]:
        """(request name, response code) as the SECC answered them."""
        from secc.events import MessageExchanged

        return [
            (e.request_name, e.response_code)
            for e in self.secc_events
            if isinstance(e, MessageExchanged)
        ]


def ev_config(**changes: Any) -> EvccConfig:
    base = EvccConfig(protocols=(sap.AppProtocol.ISO2,))
    return dataclasses.replace(base, **changes)
