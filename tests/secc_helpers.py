"""A SECC session core driven directly by typed requests, with a fake clock (no sockets)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from exi_schemas import apphand, din, iso2
from iso15118 import exi, sap
from iso15118.v2gtp import PayloadType, V2GTPMessage, V2GTPReassembler
from secc.context import SeccConfig
from secc.din.spec import SPEC as DIN_SPEC
from secc.events import SessionEvent
from secc.evse import ControlPilotState, EnergyMode, EvseLimits, EvseStatus
from secc.iso2.spec import SPEC as ISO2_SPEC
from secc.records import MeterReading
from secc.session import SeccSession

SPECS = {sap.AppProtocol.ISO2: ISO2_SPEC, sap.AppProtocol.DIN: DIN_SPEC}
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LIMITS = EvseLimits(max_voltage=500, max_current=200, max_power=100_000, min_voltage=150)


def counter_random() -> Any:
    counter = itertools.count(1)

    def random(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return random


def status(**changes: Any) -> EvseStatus:
    base = EvseStatus(
        present_voltage=0.0,
        present_current=0.0,
        limits=LIMITS,
        cp_state=ControlPilotState.B,
        meter=MeterReading(meter_id="M1", energy_wh=1000, at=T0),
    )
    return replace(base, **changes)


class Harness:
    """Feeds typed requests into one SeccSession and returns typed responses."""

    def __init__(
        self,
        *,
        config: SeccConfig | None = None,
        modes: tuple[EnergyMode, ...] = (EnergyMode.DC_EXTENDED, EnergyMode.AC_THREE_PHASE_CORE),
        tls: bool = False,
        resumable: Any = None,
        now: float = 0.0,
    ) -> None:
        self.now = now
        self.wall = T0
        self.status = status()
        self.session = SeccSession(
            config or SeccConfig(),
            specs=SPECS,
            evse_id="DE*ABC*E0000001*1",
            energy_modes=modes,
            status=self.status,
            now=now,
            clock=lambda: self.wall,
            random=counter_random(),
            tls=tls,
            resumable=resumable,
        )
        self.events: list[SessionEvent] = []
        self.session_id = b"\x00"
        self.schema = "iso2"

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += timedelta(seconds=seconds)

    def set_status(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)

    def drain(self) -> list[SessionEvent]:
        out = []
        while (event := self.session.next_event()) is not None:
            out.append(event)
        self.events.extend(out)
        return out

    def _exchange(self, payload: bytes, schema: str) -> Any:
        self.session.update_status(self.status)
        self.session.receive_data(V2GTPMessage(PayloadType.SAP, payload).pack(), self.now)
        self.drain()
        data = self.session.data_to_send()
        if not data:
            return None
        (message,) = V2GTPReassembler().feed(data)
        return exi.decode(schema, message.payload)

    def handshake(self, protocols: list[sap.AppProtocol]) -> apphand.supportedAppProtocolRes:
        request = sap.offer(protocols)
        response = self._exchange(exi.encode("appHand", request), "appHand")
        chosen = sap.accepted(request, response)
        if chosen is not None:
            self.schema = chosen.schema
        return response  # type: ignore[no-any-return]

    def send(self, body: Any, *, session_id: bytes | None = None, signature: Any = None) -> Any:
        """Send one request body; return the response body (None if none was sent)."""
        module = iso2 if self.schema == "iso2" else din
        name = ISO2_SPEC.name_of(body)  # the element name (DIN: SessionStopType → SessionStopReq)
        header = module.MessageHeaderType(
            SessionID=self.session_id if session_id is None else session_id, Signature=signature
        )
        message = module.V2G_Message(Header=header, Body=module.BodyType(**{name: body}))
        response = self._exchange(exi.encode(self.schema, message, strict=False), self.schema)
        if response is None:
            return None
        if self.session_id == b"\x00" or name == "SessionSetupReq":
            self.session_id = response.Header.SessionID
        return (
            ISO2_SPEC.request_of(response)
            if self.schema == "iso2"
            else DIN_SPEC.request_of(response)
        )
