"""Replay of recorded cars: extraction from DIN and ISO-2 captures, and the repetition
policy against a scripted charger."""

from __future__ import annotations

from typing import Any

import pytest
from paths import CORPUS, require
from test_evcc_scripted import SESSION_ID, ScriptedSecc, collapse

from evcc.events import EvEvent, MessageSent, SessionFinished
from evcc.replay import Recording, ReplaySession, extract_requests
from exi_schemas import din
from iso15118.sap import AppProtocol

KONA = "EVerest+logfiles__Hyundai__Kona_2017__din_spec_70121__kona1.dump"
AUDI_AC = "EVerest+logfiles__Audi__Q4__ac_iso2-1.dump"


@pytest.fixture(scope="module")
def kona() -> Recording:
    return extract_requests(require(CORPUS / "pcaps" / KONA))


def drive(session: ReplaySession, secc: ScriptedSecc) -> list[EvEvent]:
    now = 0.0
    session.start(now)
    events: list[EvEvent] = []
    for _ in range(10_000):
        data = session.data_to_send()
        if data:
            now += 0.01
            session.receive_data(secc.feed(data), now)
        else:
            timer = session.get_timer()
            if timer is None:
                break
            now = timer
            session.handle_timer(now)
        while (event := session.next_event()) is not None:
            events.append(event)
        if session.finished is not None:
            break
    return events


def test_extract_din(kona: Recording) -> None:
    assert kona.protocol is AppProtocol.DIN
    assert [(s.name, len(s.messages)) for s in kona.steps] == [
        ("SessionSetupReq", 1),
        ("ServiceDiscoveryReq", 1),
        ("ServicePaymentSelectionReq", 1),
        ("ContractAuthenticationReq", 2),
        ("ChargeParameterDiscoveryReq", 1),
        ("CableCheckReq", 134),
        ("PreChargeReq", 7),
        ("PowerDeliveryReq", 1),
        ("CurrentDemandReq", 374),
        ("PowerDeliveryReq", 1),
        ("SessionStopReq", 1),
    ]


def test_extract_iso2_connection() -> None:
    path = require(CORPUS / "pcaps" / AUDI_AC)
    first = extract_requests(path)
    assert first.protocol is AppProtocol.ISO2 and first.connection == 0
    chosen = extract_requests(path, connection=33)
    assert chosen.connection == 33
    assert collapse(chosen.request_names) == [
        "SessionSetupReq",
        "ServiceDiscoveryReq",
        "PaymentServiceSelectionReq",
        "AuthorizationReq",
        "ChargeParameterDiscoveryReq",
        "PowerDeliveryReq",
        "ChargingStatusReq",
        "PowerDeliveryReq",
        "SessionStopReq",
    ]
    assert chosen.request_names.count("ChargingStatusReq") == 44


def test_replay_din_against_a_charger(kona: Recording) -> None:
    ongoing = din.EVSEProcessingType.Ongoing
    fin = din.EVSEProcessingType.Finished

    def auth(r: Any, n: int) -> Any:  # the live charger needs 4 rounds, the car recorded 2
        return din.ContractAuthenticationResType(
            ResponseCode=din.responseCodeType.OK, EVSEProcessing=ongoing if n < 4 else fin
        )

    secc = ScriptedSecc(AppProtocol.DIN, {"ContractAuthenticationReq": auth})
    events = drive(ReplaySession(kona, ongoing_interval=0.1), secc)
    end = events[-1]
    assert isinstance(end, SessionFinished) and end.ok and end.reason == "replay complete"
    assert secc.counts["ContractAuthenticationReq"] == 4  # kept resending while Ongoing
    assert secc.counts["CableCheckReq"] == 1  # Finished at once: 133 recorded repeats skipped
    assert secc.counts["PreChargeReq"] == 7  # as recorded
    assert secc.counts["CurrentDemandReq"] == 374
    assert all(m.Header.SessionID == SESSION_ID for m in secc.requests[1:])
    sent = [e.name for e in events if isinstance(e, MessageSent)]
    assert sent[0] == "supportedAppProtocolReq" and sent[-1] == "SessionStopReq"


def test_replay_stops_on_failed(kona: Recording) -> None:
    def refuse(r: Any, n: int) -> Any:
        return din.ServicePaymentSelectionResType(
            ResponseCode=din.responseCodeType.FAILED_PaymentSelectionInvalid
        )

    secc = ScriptedSecc(AppProtocol.DIN, {"ServicePaymentSelectionReq": refuse})
    end = drive(ReplaySession(kona), secc)[-1]
    assert isinstance(end, SessionFinished) and not end.ok
    assert end.reason.startswith("ServicePaymentSelectionRes: FAILED_PaymentSelectionInvalid")


def test_replay_refuses_another_protocol(kona: Recording) -> None:
    end = drive(ReplaySession(kona), ScriptedSecc(AppProtocol.ISO2))[-1]
    assert isinstance(end, SessionFinished) and not end.ok
