"""The EV session core (sans-IO): SupportedAppProtocol handshake, then the negotiated
protocol's request/response sequence, with the EV-side timers.

    session = EvSession(config, random=os.urandom, clock=lambda: datetime.now(UTC))
    session.start(now)                       # queues the supportedAppProtocolReq
    send(session.data_to_send())             # V2GTP-framed bytes
    session.receive_data(data, now)          # bytes from the SECC, cut anywhere
    while (event := session.next_event()) is not None: ...
    timer = session.get_timer()              # call handle_timer(now) at that time

Layers: V2GTP framing (`iso15118.v2gtp`) → handshake (`iso15118.sap`, schema appHand) → the
protocol `Dialect` (`evcc.din`, `evcc.iso2`), whose table builds each request and reacts to
its response. This module encodes, frames, keeps the deadlines and applies the fault hooks;
it imports no asyncio, socket, ssl or time.

Deadlines (values in `evcc.din.timing` / `evcc.iso2.timing`): the response to each request
(message timeout), the ongoing timer while the SECC keeps answering Ongoing, the CableCheck
and PreCharge phase timers, and communication setup (start → SessionSetupRes). Scheduled
sends (repetitions after Ongoing, the charge loop) are one more deadline. A timeout, a
FAILED response code, an undecodable or unexpected response ends the session with
`SessionFinished(ok=False, reason)`.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from evcc.battery import Battery
from evcc.common import Dialect, Done, EvContext, Next, Reaction, body_element
from evcc.config import EvccConfig
from evcc.din import DIN_DIALECT
from evcc.events import (
    EvEvent,
    MessageReceived,
    MessageSent,
    ProtocolNegotiated,
    SessionFinished,
)
from evcc.injector import Injector
from evcc.iso2 import ISO2_DIALECT
from evcc.timing import Timeout
from exi_schemas import apphand
from iso15118 import exi, sap
from iso15118.sap import AppProtocol
from iso15118.v2gtp import PayloadType, V2GTPError, V2GTPMessage, V2GTPReassembler

__all__ = ["DIALECTS", "HANDSHAKE", "EvSession"]

logger = logging.getLogger("evcc.session")

DIALECTS: Final[dict[AppProtocol, Dialect]] = {
    AppProtocol.DIN: DIN_DIALECT,
    AppProtocol.ISO2: ISO2_DIALECT,
}
HANDSHAKE: Final = "supportedAppProtocolReq"


class EvSession:
    """One EV charging session over one V2G connection (see the module docstring)."""

    def __init__(
        self,
        config: EvccConfig,
        *,
        random: Callable[[int], bytes],
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self._random = random
        self.ctx = EvContext(
            config=config,
            battery=Battery(config.battery, config.initial_soc),
            clock=clock,
            random=random,
            session_id=config.resume_session_id or b"\x00",
        )
        if config.pnc is not None:
            self.ctx.contract_chain = config.pnc.contract_chain
            self.ctx.contract_key = config.pnc.contract_key
            self.ctx.emaid = config.pnc.contract_emaid()
        self._injector = Injector(config.faults)
        self._reassembler = V2GTPReassembler()
        self._out = bytearray()
        self._events: deque[EvEvent] = deque()
        self._offer: apphand.supportedAppProtocolReq | None = None
        self.dialect: Dialect | None = None
        self._awaiting: str | None = None
        self._substituted = False
        self._response_deadline: tuple[float, Timeout] | None = None
        self._setup_deadline: tuple[float, Timeout] | None = None
        #: (deadline, timeout, request) while the SECC keeps answering Ongoing / in a phase
        self._ongoing: tuple[float, Timeout, str] | None = None
        self._phase: tuple[float, Timeout, str] | None = None
        self._send_at: tuple[float, str] | None = None
        self._counts: Counter[str] = Counter()
        self._steps = 0
        self._silence_armed = False
        self.silent = False
        self.finished: SessionFinished | None = None
        self.requests_sent = 0
        self.responses_received = 0

    # --- public API --------------------------------------------------------------------------

    @property
    def protocol(self) -> AppProtocol | None:
        return self.dialect.protocol if self.dialect is not None else None

    @property
    def session_id(self) -> bytes:
        return self.ctx.session_id

    def start(self, now: float) -> None:
        """Queue the supportedAppProtocolReq and arm the communication setup timer."""
        if self._offer is not None:
            raise RuntimeError("the session was already started")
        self._offer = sap.offer(self.config.protocols)
        table = DIALECTS[self.config.protocols[0]].timing
        setup = table.communication_setup
        self._setup_deadline = (now + setup.seconds, setup)
        self._counts[HANDSHAKE] += 1
        message = self._injector.before_signing(HANDSHAKE, 1, self._offer)
        self._queue(HANDSHAKE, 1, "appHand", message, table.message_timeout(HANDSHAKE), now)

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the SECC (any chunking)."""
        if self.finished is not None:
            return
        try:
            messages = self._reassembler.feed(data)
        except V2GTPError as exc:
            for message in exc.messages:
                self._on_message(message, now)
            self._finish(False, f"bad V2GTP header from the SECC: {exc}")
            return
        for message in messages:
            if self.finished is not None:
                return
            self._on_message(message, now)

    def next_event(self) -> EvEvent | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def get_timer(self) -> float | None:
        """The earliest deadline, or None (finished, silenced, or nothing pending)."""
        if self.finished is not None or self.silent:
            return None
        times = [d[0] for d in self._deadlines() if d is not None]
        if self._send_at is not None:
            times.append(self._send_at[0])
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        if self.finished is not None or self.silent:
            return
        for deadline in self._deadlines():
            if deadline is not None and now >= deadline[0]:
                self._finish(False, _expired(deadline[1], self._awaiting))
                return
        if self._send_at is not None and now >= self._send_at[0]:
            request = self._send_at[1]
            self._send_at = None
            self._send(request, now)

    def close(self, reason: str = "the connection closed") -> None:
        """The connection is gone (or the user gives up): end the session if still open."""
        self._finish(False, reason)

    # --- receiving ---------------------------------------------------------------------------

    def _deadlines(self) -> tuple[tuple[float, Timeout, *tuple[str, ...]] | None, ...]:
        return (self._response_deadline, self._setup_deadline, self._ongoing, self._phase)

    def _on_message(self, message: V2GTPMessage, now: float) -> None:
        if message.payload_type is not PayloadType.SAP:
            self._finish(False, f"unexpected V2GTP payload type {message.payload_type.name}")
        elif self._awaiting is None:
            self._finish(False, "a message arrived while no request was outstanding")
        elif self._awaiting == HANDSHAKE:
            self._on_handshake(message.payload, now)
        else:
            self._on_response(message.payload, now)

    def _on_handshake(self, payload: bytes, now: float) -> None:
        try:
            response = exi.decode("appHand", payload)
        except exi.ExiError as exc:
            self._finish(False, f"undecodable supportedAppProtocolRes: {exc}")
            return
        if not isinstance(response, apphand.supportedAppProtocolRes):
            self._finish(False, f"expected supportedAppProtocolRes, got {type(response).__name__}")
            return
        self._received("supportedAppProtocolRes", response, str(response.ResponseCode))
        assert self._offer is not None
        protocol = sap.accepted(self._offer, response)
        if protocol is None:
            self._finish(False, f"no protocol negotiated ({response.ResponseCode})")
            return
        self._events.append(ProtocolNegotiated(protocol, response.SchemaID or 0))
        problem = _unusable(self.config, protocol)
        if problem:
            self._finish(False, problem)
            return
        self.dialect = DIALECTS[protocol]
        self._schedule(Next(self.dialect.first), now)

    def _on_response(self, payload: bytes, now: float) -> None:
        assert self.dialect is not None and self._awaiting is not None
        request = self._awaiting
        expected = request[: -len("Req")] + "Res"
        try:
            message = exi.decode(self.dialect.schema, payload)
            name, element = body_element(message)
        except (exi.ExiError, ValueError, AttributeError) as exc:
            self._finish(False, f"undecodable response to {request}: {exc}")
            return
        code = getattr(element, "ResponseCode", None)
        code_text = str(code) if code is not None else None
        self._received(name, message, code_text)
        if name != expected:
            self._finish(False, f"expected {expected}, got {name}")
            return
        if name == "SessionSetupRes":
            self.ctx.session_id = message.Header.SessionID
            self._setup_deadline = None
        elif message.Header.SessionID != self.ctx.session_id:
            self._log(logging.WARNING, "%s carries SessionID %s", name, message.Header.SessionID)
        if code_text is not None and code_text.startswith("FAILED"):
            self._finish(False, f"{name}: {code_text}")
            return
        if self._substituted:
            self._react_to_fault(request, name)
            return
        if self._silence_armed:
            self.silent = True
            self._log(logging.INFO, "silent after %s (fault)", name)
            return
        self.ctx.response_header = message.Header
        try:
            reaction = self.dialect.requests[request].react(element, self.ctx, now)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            self._finish(False, f"cannot use {name}: {exc!r}")
            return
        self._apply(reaction, now)

    def _react_to_fault(self, request: str, name: str) -> None:
        if request == "SessionStopReq":
            self._finish(True, "stopped early (fault)")
        else:
            self._finish(False, f"the SECC accepted the out-of-sequence {request} ({name} OK)")

    def _received(self, name: str, message: Any, code: str | None) -> None:
        self.responses_received += 1
        self._response_deadline = None
        self._awaiting = None
        self._events.append(MessageReceived(name, message, code))

    def _apply(self, reaction: Reaction, now: float) -> None:
        self._events.extend(reaction.events)
        then = reaction.then
        if isinstance(then, Done):
            self._finish(then.ok, then.reason, paused=then.paused)
        else:
            self._schedule(then, now)

    # --- sending -----------------------------------------------------------------------------

    def _schedule(self, following: Next, now: float) -> None:
        assert self.dialect is not None
        if not following.ongoing:
            self._ongoing = None
        elif self._ongoing is None or self._ongoing[2] != following.request:
            limit = self.dialect.timing.ongoing
            self._ongoing = (now + limit.seconds, limit, following.request)
        if following.delay > 0:
            self._send_at = (now + following.delay, following.request)
        else:
            self._send(following.request, now)

    def _send(self, planned: str, now: float) -> None:
        assert self.dialect is not None
        self._steps += 1
        self._counts[planned] += 1
        occurrence = self._counts[planned]
        request = self._injector.substitute(planned, occurrence, self._steps)
        self._substituted = request != planned
        self._track_phase(request, now)
        spec = self.dialect.requests.get(request)
        if spec is None:
            self._finish(False, f"{request} is not a {self.dialect.protocol.title} request")
            return
        try:
            element = spec.build(self.ctx)
            message = self.dialect.wrap(self.ctx.session_id, request, element)
            message = self._injector.before_signing(planned, occurrence, message)
            self.dialect.sign(request, message, self.ctx)
            message = self._injector.after_signing(planned, occurrence, message)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            self._finish(False, f"cannot build {request}: {exc!r}")
            return
        self._silence_armed = self._injector.silences(planned, occurrence)
        timeout = self.dialect.timing.message_timeout(request)
        self._queue(request, occurrence, self.dialect.schema, message, timeout, now, planned)

    def _track_phase(self, request: str, now: float) -> None:
        assert self.dialect is not None
        limit = self.dialect.timing.phase.get(request)
        if limit is None:
            self._phase = None
        elif self._phase is None or self._phase[2] != request:
            self._phase = (now + limit.seconds, limit, request)

    def _queue(
        self,
        request: str,
        occurrence: int,
        schema: str,
        message: Any,
        timeout: Timeout,
        now: float,
        planned: str | None = None,
    ) -> None:
        try:
            payload = exi.encode(schema, message)
        except exi.ExiError as exc:
            self._finish(False, f"cannot encode {request}: {exc}")
            return
        replaced = self._injector.payload(planned or request, occurrence, payload, self._random)
        self._out += V2GTPMessage(PayloadType.SAP, replaced or payload).pack()
        self.requests_sent += 1
        self._awaiting = request
        self._response_deadline = (now + timeout.seconds, timeout)
        self._events.append(MessageSent(request, None if replaced is not None else message))

    # --- the end -----------------------------------------------------------------------------

    def _finish(self, ok: bool, reason: str, *, paused: bool = False) -> None:
        if self.finished is not None:
            return
        self.finished = SessionFinished(ok, reason, self.ctx.session_id, paused)
        self._response_deadline = self._setup_deadline = self._ongoing = self._phase = None
        self._send_at = None
        self._awaiting = None
        self._events.append(self.finished)
        self._log(logging.INFO if ok else logging.WARNING, "session finished: %s", reason)

    def _log(self, level: int, text: str, *args: object) -> None:
        logger.log(
            level,
            "[%s] " + text,
            self.ctx.session_id.hex(),
            *args,
            extra={"session_id": self.ctx.session_id.hex()},
        )


def _expired(timeout: Timeout, awaiting: str | None) -> str:
    what = f" waiting for the response to {awaiting}" if awaiting else ""
    return f"{timeout.name} ({timeout.seconds:g} s, {timeout.source}) expired{what}"


def _unusable(config: EvccConfig, protocol: AppProtocol) -> str | None:
    if protocol is AppProtocol.DIN:
        if not config.energy_mode.is_dc:
            return "DIN SPEC 70121 was negotiated but the EV charges AC"
        if config.payment.value == "Contract":
            return "DIN SPEC 70121 was negotiated but the EV wants Plug & Charge"
    return None
