"""A recorded car (`evcc.replay.ReplaySession`) against our SECC core, pumped in memory on
the fake clock of `session_pair.SessionPair`.

The recorded car never switches its control pilot, so the simulated EVSE starts in CP state
C for DC recordings (the state a DC car is in from CableCheck on) and B for AC ones (ISO-2 AC
PowerDelivery does not need C). Authorisation is accepted (free charging). Each replayed request
reaches the SECC `request_gap` fake seconds after the previous answer, so the simulated
output has time to ramp; when the replay has sent its last request the car hangs up
(`connection_lost`), so a recording that stops mid-session still ends with a billing record.

    outcome = replay(recording, capture="x.pcap")
    assert outcome.ok and outcome.records
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from session_pair import Clock, SessionPair

from evcc.events import SessionFinished
from evcc.replay import Recording, ReplaySession, recording_from_messages
from iso15118.sap import AppProtocol
from iso15118.trace.capture import CapturedMessage, Direction, read_capture
from secc.context import ResumeState, SeccConfig
from secc.events import SessionStarted
from secc.evse import ControlPilotState
from secc.records import BillingRecord
from secc.simulated import SimulatedEVSE

__all__ = [
    "ReplayOutcome",
    "energy_mode",
    "recordings",
    "replay",
    "replay_capture",
    "replay_pair",
]


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What happened when one recorded connection was replayed against our SECC."""

    capture: str
    connection: int
    protocol: AppProtocol
    finished: SessionFinished | None
    #: (request name, response code) as our SECC answered them
    exchanged: tuple[tuple[str, str], ...]
    records: tuple[BillingRecord, ...]
    #: the car paused the session (ISO-2 SessionStop Pause): the record comes on resumption
    paused: dict[bytes, ResumeState]
    #: this replay resumed the previous connection's paused session
    resumed: bool
    recorded_requests: int
    sent_requests: int

    @property
    def ok(self) -> bool:
        return self.finished is not None and self.finished.ok

    @property
    def reason(self) -> str:
        return self.finished.reason if self.finished is not None else "did not finish"

    @property
    def failed(self) -> tuple[str, str] | None:
        """The first (request, code) our SECC answered with a FAILED code."""
        for name, code in self.exchanged:
            if code.startswith("FAILED"):
                return name, code
        return None

    @property
    def label(self) -> str:
        return f"{self.capture}#{self.connection}"


def recordings(path: str | os.PathLike[str]) -> list[Recording]:
    """Every connection of a capture with a handshake and DIN or ISO-2 requests (read once)."""
    messages = read_capture(path)
    return recordings_from(messages)


def recordings_from(messages: list[CapturedMessage]) -> list[Recording]:
    numbers = sorted(
        {
            m.connection
            for m in messages
            if m.direction is Direction.EV_TO_EVSE and m.schema is not None
        }
    )
    found: list[Recording] = []
    for number in numbers:
        try:
            found.append(recording_from_messages(messages, number))
        except ValueError:  # no handshake or no session on this connection
            continue
    return found


def energy_mode(recording: Recording) -> str | None:
    """The energy transfer mode the car asked for (DIN: the EVRequestedEnergyTransferType)."""
    for step in recording.steps:
        if step.name == "ChargeParameterDiscoveryReq":
            body: Any = step.messages[0].Body.ChargeParameterDiscoveryReq
            mode = getattr(body, "RequestedEnergyTransferMode", None) or getattr(
                body, "EVRequestedEnergyTransferType", None
            )
            return None if mode is None else str(mode)
    return None


def is_dc(recording: Recording) -> bool:
    if recording.protocol is AppProtocol.DIN:
        return True
    mode = energy_mode(recording)
    return mode is None or mode.startswith("DC")


def replay_pair(
    recording: Recording,
    *,
    request_gap: float = 0.05,
    secc_config: SeccConfig | None = None,
    resume: dict[bytes, ResumeState] | None = None,
) -> SessionPair:
    """`resume`: a paused session (from an earlier replay) that this recording's
    SessionSetupReq rejoins: its SessionID is put in the recorded header."""
    clock = Clock()
    dc = is_dc(recording)
    evse = SimulatedEVSE(
        dc=dc,
        clock=lambda: clock.now,
        wall_clock=clock.wall,
        meter_wh=10_000,
        # as capable as the chargers the cars were recorded on: 800 V cars (Taycan, Ioniq 5,
        # EV6), ChargingProfiles asking for 150 kW
        max_voltage=1000.0,
        max_current=500.0,
        max_power=400_000.0,
        voltage_ramp_rate=50_000.0,  # the car's PreCharge loop is as short as it was recorded
        current_ramp_rate=20_000.0,
    )
    if dc:
        evse.set_cp_state(ControlPilotState.C)
    session = ReplaySession(recording, ongoing_interval=0.25)
    if resume:
        session.session_id = next(iter(resume))
    # the recorded charger spoke the recorded protocol (several were configured for one only)
    config = secc_config or SeccConfig(protocols=(recording.protocol,))
    return SessionPair(
        None,
        config,
        evse=evse,
        clock=clock,
        ev=session,
        request_gap=request_gap,
        resumable=dict(resume or {}),
    )


def replay(
    recording: Recording,
    *,
    capture: str = "",
    request_gap: float = 0.05,
    secc_config: SeccConfig | None = None,
    resume: dict[bytes, ResumeState] | None = None,
) -> ReplayOutcome:
    """Replay one recorded connection to its end against a fresh SECC core."""
    pair = replay_pair(recording, request_gap=request_gap, secc_config=secc_config, resume=resume)
    recorded = len(recording.request_names)
    # generous: every request a gap apart plus every Ongoing round
    max_time = 600.0 + recorded * (request_gap + 0.25)
    finished = pair.run(max_time, hang_up=True)
    assert isinstance(pair.ev, ReplaySession)
    return ReplayOutcome(
        capture=capture,
        connection=recording.connection,
        protocol=recording.protocol,
        finished=finished,
        exchanged=tuple(pair.exchanged()),
        records=tuple(pair.records),
        paused=dict(pair.paused),
        resumed=any(isinstance(e, SessionStarted) and e.resumed for e in pair.secc_events),
        recorded_requests=recorded,
        sent_requests=pair.ev.requests_sent,
    )


def replay_capture(found: list[Recording], capture: str = "") -> list[ReplayOutcome]:
    """Replay a capture's connections in order; a connection that follows a paused one
    resumes it (as the car did on the recorded charger)."""
    outcomes: list[ReplayOutcome] = []
    resume: dict[bytes, ResumeState] = {}
    for recording in found:
        outcome = replay(recording, capture=capture, resume=resume)
        outcomes.append(outcome)
        resume = outcome.paused
    return outcomes
