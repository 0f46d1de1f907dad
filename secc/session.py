"""The SECC session core: one V2G connection from handshake to close, sans-IO.

Inputs: `receive_data(data, now)` (or `receive_message` for frames the transport already
cut), `update_status(status)` (the EVSE snapshot, before each request), `handle_event(event)`
(backend results), `handle_timer(now)`, `connection_lost(now)`. Outputs: `next_event()`
(commands and reports, `secc.events`), `data_to_send()` / `messages_to_send()` and
`get_timer()`. Layers, as wsproto composes them: V2GTP framing → the SupportedAppProtocol
handshake (`iso15118.sap`) → the chosen protocol's transition table (`secc.dispatch`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from exi_schemas import apphand
from iso15118 import exi, sap
from iso15118.v2gtp import PayloadType, V2GTPError, V2GTPMessage, V2GTPReassembler
from secc import dispatch
from secc.context import Context, ResumeState, SeccConfig, SessionData
from secc.events import (
    AuthorizationResult,
    CertificateResult,
    ConnectionClosing,
    ControlEvent,
    MessageExchanged,
    SessionEnded,
    SessionEvent,
    SessionPaused,
    SessionStarted,
)
from secc.evse import EnergyMode, EvseStatus
from secc.protocol import ProtocolSpec
from secc.records import BillingRecord, IdentificationKind, StopReason

__all__ = ["Phase", "SeccSession"]

logger = logging.getLogger("secc.session")


class Phase(Enum):
    HANDSHAKE = "handshake"  # waiting for supportedAppProtocolReq
    SESSION = "session"  # the negotiated protocol's messages
    CLOSED = "closed"


class SeccSession:
    """One connection's session core. Not thread-safe; one adapter drives it."""

    def __init__(
        self,
        config: SeccConfig,
        *,
        specs: Mapping[sap.AppProtocol, ProtocolSpec],
        evse_id: str,
        energy_modes: Sequence[EnergyMode],
        status: EvseStatus,
        now: float,
        clock: Callable[[], datetime],
        random: Callable[[int], bytes],
        tls: bool,
        resumable: Mapping[bytes, ResumeState] | None = None,
    ) -> None:
        self.config = config
        self._specs = {p: specs[p] for p in config.protocols if p in specs}
        self._evse_id = evse_id
        self._energy_modes = tuple(energy_modes)
        self._status = status
        self._clock = clock
        self._random = random
        self._tls = tls
        self._resumable = dict(resumable or {})
        self._reassembler = V2GTPReassembler()
        self._events: deque[SessionEvent] = deque()
        self._out: list[V2GTPMessage] = []
        self.phase = Phase.HANDSHAKE
        self.spec: ProtocolSpec | None = None
        self.state: Enum | None = None
        self.data: SessionData | None = None
        self._authorization: AuthorizationResult | None = None
        self._certificate: CertificateResult | None = None
        self._renegotiation = False
        self._deferred: tuple[Any, bytes] | None = None
        self._part_started_at: datetime | None = None  # a resumed part's start, for its price
        self._ongoing_since: float | None = None
        self._deadline: float | None = now + self._handshake_timeout()
        self._log = logging.LoggerAdapter(logger, {"session_id": "-"})

    # --- inputs ------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the connection (in-memory pumps; the TCP adapter uses the transport's
        own framing and calls `receive_message`)."""
        error: V2GTPError | None = None
        try:
            messages = self._reassembler.feed(data)
        except V2GTPError as exc:
            error, messages = exc, list(exc.messages)  # complete messages before the bad header
        for message in messages:
            self.receive_message(message.payload_type, message.payload, now)
        if error is not None and self.phase is not Phase.CLOSED:
            self._log.warning("bad V2GTP header: %s", error)
            self._end(StopReason.PROTOCOL_ERROR, f"V2GTP: {error}")  # keeps the billing record

    def receive_message(self, payload_type: int, payload: bytes, now: float) -> None:
        if self.phase is Phase.CLOSED:
            return
        if payload_type != PayloadType.SAP:
            self._log.warning("payload type 0x%04x ignored", payload_type)
            return
        if self.phase is Phase.HANDSHAKE:
            self._handshake(payload, now)
        else:
            self._request(payload, now)

    def update_status(self, status: EvseStatus) -> None:
        """The EVSE snapshot that the next request is answered with."""
        self._status = status

    def handle_event(self, event: ControlEvent, now: float) -> None:
        """A backend result. A held-back answer (certificate installation) is sent now."""
        if self.phase is Phase.CLOSED:
            return
        if isinstance(event, AuthorizationResult):
            self._authorization = event
        elif isinstance(event, CertificateResult):
            if self._deferred is None:  # no request waits for it: never answer a later one
                self._log.warning("certificate result without a pending request: ignored")
                return
            self._certificate = event
            message, payload = self._deferred
            self._deferred = None
            self._answer(message, payload, now)

    def request_renegotiation(self) -> None:
        """The operator or the site controller wants a new schedule (ISO 15118-2: the next
        response carries EVSENotification=ReNegotiation)."""
        self._renegotiation = True

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline or self.phase is Phase.CLOSED:
            return
        if self._deferred is not None:
            self._log.warning("no backend answer in time")
            self.handle_event(CertificateResult(error_code="FAILED"), now)
            return
        if self._ongoing_since is not None and now >= self._ongoing_deadline():
            self._log.warning("ongoing timeout: still Ongoing after %.1f s", self._ongoing_limit())
            self._end(StopReason.TIMEOUT, "ongoing timeout")
            return
        self._log.warning("sequence timeout: no request for %.1f s", self._sequence_timeout())
        self._end(StopReason.TIMEOUT, "sequence timeout")

    def connection_lost(self, now: float) -> None:
        if self.phase is not Phase.CLOSED:
            self._end(StopReason.CONNECTION_LOST, "connection lost", close=False)

    # --- outputs -----------------------------------------------------------------------------

    def next_event(self) -> SessionEvent | None:
        return self._events.popleft() if self._events else None

    def messages_to_send(self) -> list[V2GTPMessage]:
        out, self._out = self._out, []
        return out

    def data_to_send(self) -> bytes:
        return b"".join(m.pack() for m in self.messages_to_send())

    def get_timer(self) -> float | None:
        return None if self.phase is Phase.CLOSED else self._deadline

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    @property
    def session_id(self) -> str:
        return self.data.session_id.hex().upper() if self.data else "-"

    # --- the handshake -----------------------------------------------------------------------

    def _handshake(self, payload: bytes, now: float) -> None:
        try:
            request = exi.decode("appHand", payload)
        except exi.ExiDecodeError as exc:
            self._log.warning("undecodable handshake: %s", exc)
            self._close(StopReason.PROTOCOL_ERROR, "undecodable supportedAppProtocolReq")
            return
        if not isinstance(request, apphand.supportedAppProtocolReq):
            self._close(StopReason.PROTOCOL_ERROR, "expected supportedAppProtocolReq")
            return
        result = sap.negotiate(request, tuple(self._specs))
        self._send(exi.encode("appHand", result.response))
        if result.protocol is None:
            self._log.warning(
                "no common protocol in %s", [e.ProtocolNamespace for e in request.AppProtocol]
            )
            self._close(StopReason.PROTOCOL_ERROR, "Failed_NoNegotiation")
            return
        self.spec = self._specs[result.protocol]
        self.state = self.spec.initial_state
        self.phase = Phase.SESSION
        self._deadline = now + self._sequence_timeout()
        self._log.info("negotiated %s", result.protocol.title)

    # --- requests ----------------------------------------------------------------------------

    def _request(self, payload: bytes, now: float) -> None:
        spec = self.spec
        assert spec is not None
        if self._deferred is not None:
            self._log.warning("request while an answer is still pending: ignored")
            return
        try:
            message = exi.decode(spec.schema, payload)
        except exi.ExiDecodeError as exc:
            self._log.warning("undecodable request: %s", exc)
            self._end(StopReason.PROTOCOL_ERROR, f"undecodable request: {exc}")
            return
        if not isinstance(message, spec.module.V2G_Message):  # e.g. a bare body element
            self._log.warning("not a V2G_Message: %s", type(message).__name__)
            self._end(StopReason.PROTOCOL_ERROR, f"{type(message).__name__} is not a V2G_Message")
            return
        self._answer(message, payload, now)

    def _answer(self, message: Any, payload: bytes, now: float) -> None:
        spec = self.spec
        assert spec is not None and self.state is not None
        ctx = self._context(now, payload, message.Header)
        data = self.data or self._blank_data(ctx)
        try:
            result = dispatch.dispatch(spec, self.state, message, ctx, data)
        except dispatch.NoRequestError as exc:
            self._log.warning("unanswerable message: %s", exc)
            self._end(StopReason.PROTOCOL_ERROR, str(exc))
            return
        outcome = result.outcome
        if result.new_session is not None:
            self._start(result.new_session, result.resumed)
        if outcome.data is not None:
            self.data = outcome.data
        self._events.extend(outcome.commands)
        if outcome.response is None:  # the answer waits for a backend result
            self._deferred = (message, payload)
            self._deadline = now + spec.timing.backend_answer_timeout
            return
        self._deferred = None
        self._certificate = None
        session_id = self.data.session_id if self.data else bytes(1)
        response = spec.wrap(session_id, outcome.response, outcome.signature)
        self._send(exi.encode(spec.schema, response, strict=False))
        code = str(getattr(outcome.response, "ResponseCode", ""))
        self._events.append(
            MessageExchanged(
                self.session_id,
                result.request_name,
                spec.name_of(outcome.response),
                code,
                result.request,
                outcome.response,
            )
        )
        self._log.debug("%s -> %s %s", result.request_name, spec.name_of(outcome.response), code)
        if self.data is not None and self.data.authorization is not None:
            self._authorization = None
        if outcome.next_state is not None:
            self.state = outcome.next_state
        if self._renegotiation and self.data and self.data.renegotiating:
            self._renegotiation = False
        if result.request_name == "ChargeParameterDiscoveryReq" and code.startswith("OK"):
            self._renegotiation = False  # the car has just been sent the present schedule
        self._track_ongoing(outcome.response, now)
        self._deadline = now + self._sequence_timeout()
        if self._ongoing_since is not None:
            self._deadline = min(self._deadline, self._ongoing_deadline())
        if outcome.pause:
            self._pause()
        elif outcome.terminate is not None:
            self._end(outcome.terminate, code)

    def _context(self, now: float, payload: bytes, header: Any) -> Context:
        return Context(
            config=self.config,
            evse_id=self._evse_id,
            energy_modes=self._energy_modes,
            status=self._status,
            now=now,
            at=self._clock(),
            random=self._random,
            raw=payload,
            header_session_id=header.SessionID,
            header_signature=getattr(header, "Signature", None),
            authorization=self._authorization,
            certificate=self._certificate,
            renegotiation_requested=self._renegotiation,
            resumable=self._resumable,
        )

    def _blank_data(self, ctx: Context) -> SessionData:
        assert self.spec is not None
        return SessionData(
            session_id=b"", protocol=self.spec.protocol, tls=self._tls, started_at=ctx.at
        )

    def _start(self, data: SessionData, resumed: bool) -> None:
        self._resumable.pop(data.session_id, None)
        self._part_started_at = self._clock() if resumed else None
        self._log = logging.LoggerAdapter(logger, {"session_id": data.session_id.hex().upper()})
        self._log.info("session %s (%s)", "resumed" if resumed else "started", data.protocol.title)
        self._events.append(
            SessionStarted(data.session_id.hex().upper(), data.protocol.schema, resumed)
        )

    # --- endings -----------------------------------------------------------------------------

    def _pause(self) -> None:
        """Bill the part so far and keep what the resumed part needs (the contract and its
        authorisation; the meter starts afresh at the next PowerDelivery)."""
        assert self.data is not None and self.state is not None
        record = self._record(StopReason.EV_PAUSED)
        fee_charged = record.price is not None and record.price.charged_fee
        kept = dataclasses.replace(
            self.data,
            meter_start=None,
            meter_last=None,
            receipts=(),
            receipt_pending=None,
            fee_charged=self.data.fee_charged or fee_charged,
        )
        resume = ResumeState(data=kept, state=self.state)
        self._events.append(SessionPaused(self.session_id, resume, record))
        self._close(StopReason.EV_PAUSED, "paused")

    def _end(self, reason: StopReason, detail: str, *, close: bool = True) -> None:
        if self.data is not None and self.data.session_id:
            self._events.append(SessionEnded(self._record(reason)))
        if close:
            self._close(reason, detail)
        else:
            self.phase = Phase.CLOSED

    def _close(self, reason: StopReason, detail: str) -> None:
        self.phase = Phase.CLOSED
        self._deadline = None
        self._events.append(ConnectionClosing(reason, detail))

    def _record(self, reason: StopReason) -> BillingRecord:
        """The billing record of the session so far, priced under `SeccConfig.tariff`. A
        paused session is billed per part: each part for its own energy and its own duration
        (a resumed part starts at its resumption, as its record says, and as a record that
        crash recovery writes says), and the session fee once, with the first part that
        delivers energy (`SessionData.fee_charged`); see `secc.tariff`."""
        data = self.data
        assert data is not None
        contract = data.contract
        meter_stop = self._status.meter or data.meter_last
        started_at = self._part_started_at or data.started_at
        stopped_at = max(started_at, self._clock())  # a wall clock stepped back bills no time
        record = BillingRecord(
            record_id=self._random(16).hex(),
            session_id=data.session_id.hex().upper(),
            evse_id=self._evse_id,
            protocol=data.protocol.schema,
            kind=IdentificationKind.CONTRACT if contract else IdentificationKind.EXTERNAL,
            contract_id=contract.emaid if contract else None,
            started_at=started_at,
            stopped_at=stopped_at,
            meter_start=data.meter_start,
            meter_stop=meter_stop if data.meter_start is not None else None,
            stop_reason=data.stop_reason or reason,
            receipts=data.receipts,
            id_token=data.id_token,
        )
        tariff = self.config.tariff
        if tariff is None:
            return record
        price = tariff.price(
            record.energy_wh, started_at, stopped_at, with_fee=not data.fee_charged
        )
        return dataclasses.replace(record, price=price)

    # --- helpers -----------------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        self._out.append(V2GTPMessage(PayloadType.SAP, payload))

    def _track_ongoing(self, response: Any, now: float) -> None:
        """Since when the session answers EVSEProcessing=Ongoing without a break: the SECC
        gives up after the ongoing timeout (Timing.ongoing_timeout) even if the car keeps
        asking."""
        processing = getattr(response, "EVSEProcessing", None)
        if processing is not None and str(processing).startswith("Ongoing"):
            if self._ongoing_since is None:
                self._ongoing_since = now
        else:
            self._ongoing_since = None

    def _ongoing_limit(self) -> float:
        return self.spec.timing.ongoing_timeout if self.spec else 60.0

    def _ongoing_deadline(self) -> float:
        assert self._ongoing_since is not None
        return self._ongoing_since + self._ongoing_limit()

    def _sequence_timeout(self) -> float:
        spec = self.spec or next(iter(self._specs.values()), None)
        return spec.timing.sequence_timeout if spec else 60.0

    def _handshake_timeout(self) -> float:
        return self._sequence_timeout()
