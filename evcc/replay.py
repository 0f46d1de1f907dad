"""Replay a recorded car against a live charger, with the EV session core's sans-IO API.

`extract_requests(path)` reads a capture (`iso15118.trace.capture.read_capture`), picks one
V2G connection (the first with a handshake and a DIN or ISO-2 session, or the one asked
for), and returns the car's supportedAppProtocolReq payload and its V2G requests, grouped
into steps of consecutive requests of the same type. `ReplaySession(recording)` then sends
the recorded handshake as captured, and each recorded request decoded, with the
Header.SessionID (and a MeteringReceiptReq's body SessionID) replaced by the one the
charger assigned, re-encoded with `exi.encode(strict=False)`.

Policy for repetitions (the live charger's Ongoing loops will not line up with the
recording's):

* requests whose response carries EVSEProcessing (ContractAuthentication, Authorization,
  ChargeParameterDiscovery, CableCheck): while the charger says Ongoing, send the step's
  next recorded repetition (the last one again when the recording runs out); as soon as it
  says Finished, go to the next step and skip the step's remaining repetitions;
* every other request (PreCharge, PowerDelivery, CurrentDemand, ChargingStatus,
  WeldingDetection, ...): send each recorded repetition once, in order; a PreCharge or
  charge loop is as long as it was in the car.

The replay ends after the response to the last recorded request (ok), or with ok=False on a
FAILED response code, an undecodable or unexpected response, a message timeout (the
protocol's V2G_EVCC_Msg_Timeout table), or a charger choosing another protocol than the
recorded one. Signatures in a recorded PnC session are sent as recorded and will not verify
against a new GenChallenge.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from evcc.common import body_element
from evcc.events import EvEvent, MessageReceived, MessageSent, ProtocolNegotiated, SessionFinished
from evcc.session import DIALECTS, HANDSHAKE
from evcc.timing import TimingTable
from exi_schemas import apphand
from iso15118 import exi, sap
from iso15118.sap import AppProtocol
from iso15118.trace.capture import CapturedMessage, Direction, read_capture
from iso15118.v2gtp import PayloadType, V2GTPError, V2GTPMessage, V2GTPReassembler

__all__ = ["ONGOING_REQUESTS", "RecordedStep", "Recording", "ReplaySession", "extract_requests"]

logger = logging.getLogger("evcc.replay")

#: requests whose responses carry EVSEProcessing (Ongoing / Finished)
ONGOING_REQUESTS: Final = frozenset(
    {
        "ContractAuthenticationReq",
        "AuthorizationReq",
        "ChargeParameterDiscoveryReq",
        "CableCheckReq",
    }
)
_SCHEMA_PROTOCOLS: Final = {p.schema: p for p in AppProtocol}


@dataclass(frozen=True, slots=True)
class RecordedStep:
    """Consecutive recorded requests of one type (`messages`: the decoded V2G_Messages)."""

    name: str
    messages: tuple[Any, ...]

    @property
    def ongoing(self) -> bool:
        return self.name in ONGOING_REQUESTS


@dataclass(frozen=True, slots=True)
class Recording:
    protocol: AppProtocol
    handshake: bytes  # the car's supportedAppProtocolReq (EXI payload)
    steps: tuple[RecordedStep, ...]
    connection: int = 0

    @property
    def request_names(self) -> list[str]:
        return [s.name for s in self.steps for _ in s.messages]


def _steps(messages: Iterable[tuple[str, Any]]) -> tuple[RecordedStep, ...]:
    steps: list[RecordedStep] = []
    for name, message in messages:
        if steps and steps[-1].name == name:
            steps[-1] = RecordedStep(name, (*steps[-1].messages, message))
        else:
            steps.append(RecordedStep(name, (message,)))
    return tuple(steps)


def recording_from_messages(
    messages: Iterable[CapturedMessage], connection: int | None = None
) -> Recording:
    """The car's requests of one connection (see `extract_requests`)."""
    by_connection: dict[int, list[CapturedMessage]] = {}
    for m in messages:
        if m.direction is Direction.EV_TO_EVSE and m.schema is not None:
            by_connection.setdefault(m.connection, []).append(m)
    for number, ev_messages in by_connection.items():
        if connection is not None and number != connection:
            continue
        handshake = [m for m in ev_messages if m.schema == "appHand"]
        rest = [m for m in ev_messages if m.schema in _SCHEMA_PROTOCOLS]
        if not handshake or not rest:
            continue
        protocol = _SCHEMA_PROTOCOLS[str(rest[0].schema)]
        decoded: list[tuple[str, Any]] = []
        for m in rest:
            try:
                message = exi.decode(protocol.schema, m.payload)
                decoded.append((body_element(message)[0], message))
            except (exi.ExiError, ValueError) as exc:
                logger.warning("frame %d: recorded request skipped (%s)", m.frame, exc)
        return Recording(protocol, handshake[0].payload, _steps(decoded), number)
    raise ValueError("no connection with a handshake and a DIN or ISO-2 session")


def extract_requests(path: str | os.PathLike[str], connection: int | None = None) -> Recording:
    """The handshake request and the V2G requests of the car in a capture file."""
    return recording_from_messages(read_capture(path), connection)


class ReplaySession:
    """Sans-IO like `EvSession`: start, receive_data, next_event, data_to_send, get_timer,
    handle_timer, close."""

    def __init__(
        self, recording: Recording, *, ongoing_interval: float = 0.25, loop_interval: float = 0.0
    ) -> None:
        self.recording = recording
        self.ongoing_interval = ongoing_interval
        self.loop_interval = loop_interval
        self.timing: TimingTable = DIALECTS[recording.protocol].timing
        self.session_id = b""
        self.finished: SessionFinished | None = None
        self.requests_sent = 0
        self.responses_received = 0
        self._events: deque[EvEvent] = deque()
        self._out = bytearray()
        self._reassembler = V2GTPReassembler()
        self._step = 0
        self._index = 0  # repetition within the step
        self._awaiting: str | None = None
        self._deadline: float | None = None
        self._send_at: float | None = None

    @property
    def protocol(self) -> AppProtocol:
        return self.recording.protocol

    def start(self, now: float) -> None:
        self._emit_bytes(HANDSHAKE, self.recording.handshake, None, now)

    def next_event(self) -> EvEvent | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def get_timer(self) -> float | None:
        if self.finished is not None:
            return None
        times = [t for t in (self._deadline, self._send_at) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        if self.finished is not None:
            return
        if self._deadline is not None and now >= self._deadline:
            self._finish(False, f"V2G_EVCC_Msg_Timeout expired waiting for {self._awaiting}")
        elif self._send_at is not None and now >= self._send_at:
            self._send_at = None
            self._send_current(now)

    def close(self, reason: str = "the connection closed") -> None:
        self._finish(False, reason)

    def receive_data(self, data: bytes, now: float) -> None:
        if self.finished is not None:
            return
        try:
            messages = self._reassembler.feed(data)
        except V2GTPError as exc:
            self._finish(False, f"bad V2GTP header from the SECC: {exc}")
            return
        for message in messages:
            if self.finished is not None:
                return
            if self._awaiting is None:
                self._finish(False, "a message arrived while no request was outstanding")
            elif self._awaiting == HANDSHAKE:
                self._on_handshake(message.payload, now)
            else:
                self._on_response(message.payload, now)

    # --- internals ---------------------------------------------------------------------------

    def _on_handshake(self, payload: bytes, now: float) -> None:
        try:
            response = exi.decode("appHand", payload)
            request = exi.decode("appHand", self.recording.handshake)
        except exi.ExiError as exc:
            self._finish(False, f"undecodable handshake: {exc}")
            return
        if not isinstance(response, apphand.supportedAppProtocolRes):
            self._finish(False, "expected supportedAppProtocolRes")
            return
        self._received("supportedAppProtocolRes", response, str(response.ResponseCode))
        chosen = sap.accepted(request, response)
        if chosen is not self.recording.protocol:
            name = chosen.title if chosen else "nothing"
            self._finish(False, f"the charger chose {name}, the recording is {self.protocol.title}")
            return
        self._events.append(ProtocolNegotiated(chosen, response.SchemaID or 0))
        self._send_current(now)

    def _on_response(self, payload: bytes, now: float) -> None:
        assert self._awaiting is not None
        expected = self._awaiting[: -len("Req")] + "Res"
        try:
            message = exi.decode(self.protocol.schema, payload)
            name, element = body_element(message)
        except (exi.ExiError, ValueError) as exc:
            self._finish(False, f"undecodable response to {self._awaiting}: {exc}")
            return
        code = str(getattr(element, "ResponseCode", "")) or None
        self._received(name, message, code)
        if name != expected:
            self._finish(False, f"expected {expected}, got {name}")
            return
        if name == "SessionSetupRes":
            self.session_id = message.Header.SessionID
        if code is not None and code.startswith("FAILED"):
            self._finish(False, f"{name}: {code} (step {self._step + 1}: {expected})")
            return
        self._advance(element, now)

    def _advance(self, element: Any, now: float) -> None:
        step = self.recording.steps[self._step]
        delay = self.loop_interval
        if step.ongoing and str(getattr(element, "EVSEProcessing", "Finished")) != "Finished":
            self._index = min(self._index + 1, len(step.messages) - 1)
            delay = self.ongoing_interval
        elif not step.ongoing and self._index + 1 < len(step.messages):
            self._index += 1
        else:
            self._step, self._index, delay = self._step + 1, 0, 0.0
            if self._step >= len(self.recording.steps):
                self._finish(True, "replay complete")
                return
        if delay > 0:
            self._send_at = now + delay
        else:
            self._send_current(now)

    def _send_current(self, now: float) -> None:
        step = self.recording.steps[self._step]
        message = copy.deepcopy(step.messages[self._index])
        if self.session_id:
            message.Header.SessionID = self.session_id
            receipt = getattr(message.Body, "MeteringReceiptReq", None)
            if receipt is not None:
                receipt.SessionID = self.session_id
        try:
            payload = exi.encode(self.protocol.schema, message, strict=False)
        except exi.ExiError as exc:
            self._finish(False, f"cannot re-encode the recorded {step.name}: {exc}")
            return
        self._emit_bytes(step.name, payload, message, now)

    def _emit_bytes(self, name: str, payload: bytes, message: Any, now: float) -> None:
        self._out += V2GTPMessage(PayloadType.SAP, payload).pack()
        self.requests_sent += 1
        self._awaiting = name
        self._deadline = now + self.timing.message_timeout(name).seconds
        self._events.append(MessageSent(name, message))

    def _received(self, name: str, message: Any, code: str | None) -> None:
        self.responses_received += 1
        self._awaiting = None
        self._deadline = None
        self._events.append(MessageReceived(name, message, code))

    def _finish(self, ok: bool, reason: str) -> None:
        if self.finished is None:
            self.finished = SessionFinished(ok, reason, self.session_id)
            self._events.append(self.finished)
            self._deadline = self._send_at = None
            self._awaiting = None
