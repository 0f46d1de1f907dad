"""EV session timers with a fake clock: exact deadlines from the timing tables."""

from __future__ import annotations

from typing import Any

from test_evcc_scripted import DC_ISO2, ScriptedSecc, make_session

from evcc.config import EvccConfig
from evcc.din.timing import DIN_TIMING
from evcc.events import MessageSent, SessionFinished
from evcc.iso2.timing import ISO2_TIMING
from evcc.session import EvSession
from exi_schemas import din, iso2
from iso15118.sap import AppProtocol


def answer(session: EvSession, secc: ScriptedSecc, now: float) -> None:
    data = session.data_to_send()
    assert data, "the session had nothing to send"
    session.receive_data(secc.feed(data), now)


def drain(session: EvSession) -> list[Any]:
    events = []
    while (event := session.next_event()) is not None:
        events.append(event)
    return events


def test_handshake_timeout() -> None:
    session = make_session(DC_ISO2)
    session.start(10.0)
    assert session.get_timer() == 12.0  # V2G_EVCC_Msg_Timeout(supportedAppProtocolReq)
    session.handle_timer(11.999)
    assert session.finished is None
    session.handle_timer(12.0)
    assert session.finished is not None and not session.finished.ok
    assert session.finished.reason.startswith("V2G_EVCC_Msg_Timeout(supportedAppProtocolReq)")
    assert session.get_timer() is None


def run_until_sent(
    session: EvSession, secc: ScriptedSecc, request: str, now: float, latency: float = 0.01
) -> float:
    """Answer (after `latency`) and fire timers until `request` was sent; return its time."""
    while True:
        for event in drain(session):
            if isinstance(event, MessageSent) and event.name == request:
                return now
        data = session.data_to_send()
        if data:
            now += latency
            session.receive_data(secc.feed(data), now)
        else:
            timer = session.get_timer()
            assert timer is not None and session.finished is None
            now = timer
            session.handle_timer(now)


def test_message_timeouts_follow_the_table() -> None:
    session = make_session(DC_ISO2)
    secc = ScriptedSecc(AppProtocol.ISO2)
    session.start(0.0)
    answer(session, secc, 0.5)  # handshake answered; SessionSetupReq sent at 0.5
    assert session.get_timer() == 2.5
    answer(session, secc, 1.0)  # ServiceDiscoveryReq sent at 1.0
    assert session.get_timer() == 3.0
    sent_at = run_until_sent(session, secc, "CurrentDemandReq", 1.0)
    assert session.get_timer() == sent_at + 0.25
    assert ISO2_TIMING.message_timeout("CurrentDemandReq").seconds == 0.25
    session.data_to_send()  # the SECC never answers
    session.handle_timer(sent_at + 0.25)
    assert session.finished is not None
    assert "V2G_EVCC_Msg_Timeout(CurrentDemandReq) (0.25 s" in session.finished.reason


def test_charge_loop_interval() -> None:
    session = make_session(DC_ISO2)
    secc = ScriptedSecc(AppProtocol.ISO2)
    session.start(0.0)
    sent_at = run_until_sent(session, secc, "CurrentDemandReq", 0.0)
    session.receive_data(secc.feed(session.data_to_send()), sent_at + 0.05)
    assert session.get_timer() == sent_at + 0.05 + DC_ISO2.loop_interval


def test_ongoing_repetition_interval_and_timeout() -> None:
    def ongoing(r: Any, n: int) -> Any:
        return din.ContractAuthenticationResType(
            ResponseCode=din.responseCodeType.OK, EVSEProcessing=din.EVSEProcessingType.Ongoing
        )

    config = EvccConfig(protocols=(AppProtocol.DIN,), ongoing_interval=0.5)
    session = make_session(config)
    secc = ScriptedSecc(AppProtocol.DIN, {"ContractAuthenticationReq": ongoing})
    session.start(0.0)
    for now in (0.1, 0.2, 0.3, 0.4):  # handshake .. ServicePaymentSelection
        answer(session, secc, now)
    answer(session, secc, 1.0)  # first Ongoing at 1.0
    assert session.get_timer() == 1.5  # repetition after ongoing_interval
    now = 1.5
    while session.finished is None:
        session.handle_timer(now)
        if session.finished is None:
            answer(session, secc, now)
            now = session.get_timer() or now
    assert session.finished.reason.startswith("V2G_EVCC_Ongoing_Timeout (60 s")
    assert now == 1.0 + DIN_TIMING.ongoing.seconds


def test_cable_check_phase_timeout() -> None:
    def ongoing(r: Any, n: int) -> Any:
        return iso2.CableCheckResType(
            ResponseCode=iso2.responseCodeType.OK,
            DC_EVSEStatus=iso2.DC_EVSEStatusType(
                NotificationMaxDelay=0,
                EVSENotification=iso2.EVSENotificationType.None_,
                EVSEStatusCode=iso2.DC_EVSEStatusCodeType.EVSE_IsolationMonitoringActive,
            ),
            EVSEProcessing=iso2.EVSEProcessingType.Ongoing,
        )

    session = make_session(DC_ISO2)
    secc = ScriptedSecc(AppProtocol.ISO2, {"CableCheckReq": ongoing})
    session.start(0.0)
    first = run_until_sent(session, secc, "CableCheckReq", 0.0)
    assert first + 40.0 == first + ISO2_TIMING.phase["CableCheckReq"].seconds
    now = first
    while session.finished is None:
        data = session.data_to_send()
        if data:
            now += 0.01
            session.receive_data(secc.feed(data), now)
            continue
        timer = session.get_timer()
        assert timer is not None
        now = timer
        session.handle_timer(now)
    assert session.finished.reason.startswith("V2G_EVCC_CableCheck_Timeout (40 s")
    assert now == first + 40.0
    assert secc.counts["CableCheckReq"] > 100


def test_finished_session_ignores_input() -> None:
    session = make_session(DC_ISO2)
    session.start(0.0)
    session.close("test")
    events = drain(session)
    assert isinstance(events[-1], SessionFinished) and events[-1].reason == "test"
    session.receive_data(b"\x01\xfe", 1.0)
    session.handle_timer(5.0)
    assert drain(session) == []
