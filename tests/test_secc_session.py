"""The SECC session core (secc.session): handshake, framing, deadlines, endings, and the
sans-IO rule for the core modules. A fake clock (`Harness.now`) drives every deadline."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from secc_helpers import SPECS, Harness
from test_secc_iso2_support import EVCCID, of_type, setup

from exi_schemas import apphand, iso2
from iso15118 import exi, sap
from iso15118.v2gtp import PayloadType, V2GTPMessage, V2GTPReassembler
from secc.context import SeccConfig
from secc.events import (
    ConnectionClosing,
    MessageExchanged,
    SessionEnded,
    SessionStarted,
)
from secc.records import StopReason
from secc.session import Phase

ROOT = Path(__file__).resolve().parent.parent
ISO2_NS = sap.AppProtocol.ISO2.namespace
DIN_NS = sap.AppProtocol.DIN.namespace
AH = apphand.responseCodeType


def entry(namespace: str, schema_id: int, priority: int, major: int = 2, minor: int = 0) -> Any:
    return apphand.AppProtocolType(
        ProtocolNamespace=namespace,
        VersionNumberMajor=major,
        VersionNumberMinor=minor,
        SchemaID=schema_id,
        Priority=priority,
    )


def feed(h: Harness, data: bytes) -> list[V2GTPMessage]:
    """Bytes in at `h.now`; the V2GTP messages the session answers with."""
    h.session.update_status(h.status)
    h.session.receive_data(data, h.now)
    h.drain()
    return V2GTPReassembler().feed(h.session.data_to_send())


def handshake(h: Harness, *entries: Any) -> apphand.supportedAppProtocolRes | None:
    request = apphand.supportedAppProtocolReq(AppProtocol=list(entries))
    out = feed(h, V2GTPMessage(PayloadType.SAP, exi.encode("appHand", request)).pack())
    if not out:
        return None
    response = exi.decode("appHand", out[0].payload)
    assert isinstance(response, apphand.supportedAppProtocolRes)
    return response


def message(body: Any, session_id: bytes) -> bytes:
    """A V2GTP-framed ISO-2 V2G_Message carrying `body`."""
    name = type(body).__name__.removesuffix("Type")
    v2g = iso2.V2G_Message(
        Header=iso2.MessageHeaderType(SessionID=session_id), Body=iso2.BodyType(**{name: body})
    )
    return V2GTPMessage(PayloadType.SAP, exi.encode("iso2", v2g)).pack()


def closing(h: Harness) -> list[ConnectionClosing]:
    return of_type(h.events, ConnectionClosing)


def ended(h: Harness) -> list[SessionEnded]:
    return of_type(h.events, SessionEnded)


# --- the SupportedAppProtocol handshake -------------------------------------------------------


def test_handshake_iso2() -> None:
    h = Harness(now=100.0)
    response = handshake(h, entry(ISO2_NS, 7, 1))
    assert response is not None
    assert (response.ResponseCode, response.SchemaID) == (AH.OK_SuccessfulNegotiation, 7)
    assert h.session.phase is Phase.SESSION
    assert h.session.spec is SPECS[sap.AppProtocol.ISO2]
    assert h.session.get_timer() == 160.0
    assert h.events == []


def test_handshake_follows_the_ev_priorities() -> None:
    h = Harness()
    response = handshake(h, entry(ISO2_NS, 1, 2), entry(DIN_NS, 2, 1))
    assert response is not None and response.SchemaID == 2
    assert h.session.spec is SPECS[sap.AppProtocol.DIN]


def test_handshake_only_among_configured_protocols() -> None:
    h = Harness(config=SeccConfig(protocols=(sap.AppProtocol.ISO2,)))
    response = handshake(h, entry(DIN_NS, 1, 1), entry(ISO2_NS, 2, 2))
    assert response is not None and response.SchemaID == 2
    assert h.session.spec is SPECS[sap.AppProtocol.ISO2]


def test_handshake_minor_deviation() -> None:
    h = Harness()
    response = handshake(h, entry(ISO2_NS, 3, 1, minor=1))
    assert response is not None
    assert response.ResponseCode == AH.OK_SuccessfulNegotiationWithMinorDeviation
    assert response.SchemaID == 3
    assert h.session.phase is Phase.SESSION


def test_handshake_ignores_unknown_namespaces_and_other_majors() -> None:
    h = Harness()
    response = handshake(
        h,
        entry("urn:tesla:din:2018:MsgDef", 1, 1),
        entry(ISO2_NS, 2, 2, major=3),
        entry(ISO2_NS, 3, 3),
    )
    assert response is not None
    assert (response.ResponseCode, response.SchemaID) == (AH.OK_SuccessfulNegotiation, 3)


def test_handshake_without_a_common_protocol_answers_and_closes() -> None:
    h = Harness()
    response = handshake(h, entry("urn:tesla:din:2018:MsgDef", 1, 1))
    assert response is not None
    assert response.ResponseCode == AH.Failed_NoNegotiation and response.SchemaID is None
    assert h.session.closed and h.session.get_timer() is None
    assert [c.reason for c in closing(h)] == [StopReason.PROTOCOL_ERROR]
    assert ended(h) == []  # no session was started, so there is nothing to bill


A_RESPONSE = apphand.supportedAppProtocolRes(ResponseCode=AH.OK_SuccessfulNegotiation, SchemaID=1)


@pytest.mark.parametrize(
    "payload",
    [b"\x80\xff\xff\xff", exi.encode("appHand", A_RESPONSE)],
    ids=["undecodable", "a response"],
)
def test_a_bad_handshake_closes_without_an_answer(payload: bytes) -> None:
    h = Harness()
    assert feed(h, V2GTPMessage(PayloadType.SAP, payload).pack()) == []
    assert h.session.closed
    assert [c.reason for c in closing(h)] == [StopReason.PROTOCOL_ERROR]


def test_handshake_deadline() -> None:
    h = Harness(now=5.0)
    assert h.session.get_timer() == 65.0
    h.session.handle_timer(64.999)
    assert not h.session.closed
    h.session.handle_timer(65.0)
    h.drain()
    assert h.session.closed
    assert [c.reason for c in closing(h)] == [StopReason.TIMEOUT]
    assert ended(h) == []


# --- the sequence timeout ---------------------------------------------------------------------


def test_every_response_sets_the_sequence_deadline() -> None:
    h = Harness()
    h.handshake([sap.AppProtocol.ISO2])
    assert h.session.get_timer() == 60.0
    h.advance(10)
    h.send(iso2.SessionSetupReqType(EVCCID=EVCCID))
    assert h.session.get_timer() == 70.0
    h.advance(59.5)
    h.session.handle_timer(h.now)  # before the deadline: nothing
    assert h.drain() == []
    h.send(iso2.ServiceDiscoveryReqType())
    assert h.session.get_timer() == h.now + 60 == 129.5


def test_the_sequence_timeout_ends_the_session() -> None:
    h = Harness()
    setup(h)
    h.advance(3)
    h.send(iso2.ServiceDiscoveryReqType())
    deadline = h.session.get_timer()
    assert deadline == 63.0
    h.session.handle_timer(62.9)
    assert h.drain() == [] and not h.session.closed
    h.session.handle_timer(deadline)
    events = h.drain()
    assert [type(e) for e in events] == [SessionEnded, ConnectionClosing]
    record = ended(h)[0].record
    assert record.stop_reason is StopReason.TIMEOUT
    assert record.session_id == h.session.session_id
    assert closing(h)[0].reason is StopReason.TIMEOUT
    assert h.session.get_timer() is None
    # nothing more happens after the end
    h.session.handle_timer(deadline + 100)
    assert h.send(iso2.ServiceDiscoveryReqType()) is None
    assert h.drain() == []


# --- bad input mid-session --------------------------------------------------------------------


def assert_ended_by_protocol_error(h: Harness) -> None:
    assert h.session.closed and h.session.get_timer() is None
    assert [e.record.stop_reason for e in ended(h)] == [StopReason.PROTOCOL_ERROR]
    assert [c.reason for c in closing(h)] == [StopReason.PROTOCOL_ERROR]


def test_undecodable_exi_mid_session_ends_the_session() -> None:
    h = Harness()
    setup(h)
    assert feed(h, V2GTPMessage(PayloadType.SAP, b"\x80\x98\x02\x10garbage").pack()) == []
    assert_ended_by_protocol_error(h)


def test_a_bare_body_element_ends_the_session() -> None:
    """A document of a body element (legal EXI for the iso2 grammar) is no V2G_Message."""
    h = Harness()
    setup(h)
    payload = exi.encode("iso2", iso2.ServiceDiscoveryReqType())
    assert feed(h, V2GTPMessage(PayloadType.SAP, payload).pack()) == []
    assert_ended_by_protocol_error(h)


def test_a_response_from_the_car_ends_the_session() -> None:
    h = Harness()
    setup(h)
    body = iso2.SessionStopResType(ResponseCode=iso2.responseCodeType.OK)
    assert feed(h, message(body, h.session_id)) == []
    assert_ended_by_protocol_error(h)


def test_random_payloads_never_crash_the_session() -> None:
    rng = random.Random(15118)
    for _ in range(300):
        h = Harness()
        setup(h)
        payload = bytes([0x80]) + rng.randbytes(rng.randrange(0, 40))
        feed(h, V2GTPMessage(PayloadType.SAP, payload).pack())
        assert h.session.closed or of_type(h.events, MessageExchanged)


def test_bad_v2gtp_header_mid_session() -> None:
    h = Harness()
    setup(h)
    assert feed(h, b"\x02\xfd\x80\x01\x00\x00\x00\x01\x00") == []
    assert_ended_by_protocol_error(h)


def test_bad_v2gtp_header_during_the_handshake() -> None:
    h = Harness()
    assert feed(h, b"\x01\xfe\x12\x34\x00\x00\x00\x00") == []  # unknown payload type
    assert h.session.closed
    assert ended(h) == [] and len(closing(h)) == 1


def test_messages_before_a_bad_header_are_answered() -> None:
    h = Harness()
    setup(h)
    data = message(iso2.ServiceDiscoveryReqType(), h.session_id) + b"\x00" * 8
    (answer,) = feed(h, data)
    response = exi.decode("iso2", answer.payload)
    assert response.Body.ServiceDiscoveryRes is not None
    assert_ended_by_protocol_error(h)


def test_a_message_in_pieces() -> None:
    h = Harness()
    setup(h)
    data = message(iso2.ServiceDiscoveryReqType(), h.session_id)
    for byte in data[:-1]:
        assert feed(h, bytes([byte])) == []
    (answer,) = feed(h, data[-1:])
    assert exi.decode("iso2", answer.payload).Body.ServiceDiscoveryRes is not None


def test_other_payload_types_are_ignored() -> None:
    h = Harness()
    setup(h)
    assert feed(h, V2GTPMessage(PayloadType.SDP_REQUEST, b"\x10\x00").pack()) == []
    assert not h.session.closed
    assert h.send(iso2.ServiceDiscoveryReqType()) is not None


# --- the connection going away ----------------------------------------------------------------


def test_connection_lost_ends_the_session_once() -> None:
    h = Harness()
    setup(h)
    h.advance(1)
    h.session.connection_lost(h.now)
    h.session.connection_lost(h.now)
    h.session.handle_timer(1000.0)
    h.drain()
    assert [e.record.stop_reason for e in ended(h)] == [StopReason.CONNECTION_LOST]
    assert closing(h) == []  # the connection is gone already
    assert h.session.closed and h.session.get_timer() is None


def test_connection_lost_before_session_setup_reports_no_session() -> None:
    h = Harness()
    h.handshake([sap.AppProtocol.ISO2])
    h.session.connection_lost(h.now)
    h.drain()
    assert h.events == [] and h.session.closed


def test_session_started_is_reported_once() -> None:
    h = Harness()
    setup(h)
    h.send(iso2.ServiceDiscoveryReqType())
    (started,) = of_type(h.events, SessionStarted)
    assert started == SessionStarted(h.session.session_id, "iso2", False)
    assert h.session.session_id == h.session_id.hex().upper()


# --- sans-IO ----------------------------------------------------------------------------------

CORE = ["secc/session.py", "secc/dispatch.py", "secc/context.py", "secc/protocol.py"]
CORE += ["secc/events.py", "secc/errors.py", "secc/minimal.py", "secc/common.py"]
CORE += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "secc" / "iso2").rglob("*.py"))
FORBIDDEN = {"asyncio", "socket", "ssl", "time"}


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", CORE)
def test_core_module_imports_no_io(path: str) -> None:
    assert _imported(ROOT / path) & FORBIDDEN == set()


def test_importing_the_core_loads_no_event_loop_or_tls() -> None:
    """`socket` and `time` come in through the standard library (logging, and email.utils
    for cryptography.x509), which the source check above covers for our own modules;
    asyncio and ssl must not be loaded at all."""
    modules = [p.removesuffix(".py").replace("/", ".") for p in CORE]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m.removesuffix('.__init__'))\n"
        "print(' '.join(sorted(m for m in ('asyncio', 'ssl') if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
