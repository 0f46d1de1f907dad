"""The asyncio adapter over loopback TCP against the scripted SECC."""

from __future__ import annotations

import asyncio
import dataclasses

from test_evcc_scripted import DC_ISO2, ScriptedSecc

from evcc.client import run_ev
from evcc.events import ControlPilotChange
from evcc.faults import Silence
from iso15118.sap import AppProtocol
from iso15118.transport.tcp import ServerConfig, V2GTPConnection, V2GTPServer
from iso15118.v2gtp import V2GTPReassembler
from secc.evse import ControlPilotState


def serve(secc: ScriptedSecc, *, stop_after: str | None = None) -> object:
    async def handler(conn: V2GTPConnection) -> None:
        framer = V2GTPReassembler()
        while True:
            message = await conn.receive()
            for answer in framer.feed(secc.feed(message.pack())):
                await conn.send(answer.payload_type, answer.payload)
            if stop_after is not None and secc.received[-1] == stop_after:
                await asyncio.sleep(0.2)  # the SECC gives up on a silent EV
                return

    return handler


def test_run_ev_over_tcp() -> None:
    secc = ScriptedSecc(AppProtocol.ISO2)
    seen: list[ControlPilotState] = []

    def hook(event: ControlPilotChange) -> None:
        seen.append(event.state)

    async def test() -> None:
        async with V2GTPServer(serve(secc), ServerConfig()) as server:  # type: ignore[arg-type]
            config = dataclasses.replace(DC_ISO2, loop_interval=0.01)
            result = await run_ev(config, "::1", server.endpoint.port, evse_hook=hook)
        assert result.ok, result.reason
        assert result.protocol is AppProtocol.ISO2
        assert result.requests_sent == result.responses_received == len(secc.received)
        assert result.energy_wh > 0 and result.final_soc > DC_ISO2.initial_soc
        assert seen == [ControlPilotState.C, ControlPilotState.B]

    asyncio.run(test())


def test_silent_ev_ends_when_the_secc_closes() -> None:
    secc = ScriptedSecc(AppProtocol.ISO2)

    async def test() -> None:
        handler = serve(secc, stop_after="AuthorizationReq")
        async with V2GTPServer(handler, ServerConfig()) as server:  # type: ignore[arg-type]
            config = dataclasses.replace(DC_ISO2, faults=(Silence(message="AuthorizationReq"),))
            result = await run_ev(config, "::1", server.endpoint.port)
        assert not result.ok and result.reason.startswith("connection closed")
        assert secc.received[-1] == "AuthorizationReq"

    asyncio.run(test())
