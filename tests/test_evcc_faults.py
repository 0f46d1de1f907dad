"""Fault hooks: each changes exactly the request it names."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from test_evcc_scripted import (
    DC_ISO2,
    SESSION_ID,
    ScriptedSecc,
    finished,
    make_session,
    pump,
    sent,
)

from evcc.config import EvccConfig
from evcc.faults import (
    CustomMutate,
    EarlyStop,
    MalformedExi,
    MalformedKind,
    OutOfSequence,
    Silence,
    WrongSessionId,
)
from exi_schemas import iso2
from iso15118 import exi
from iso15118.sap import AppProtocol
from iso15118.v2gtp import V2GTPReassembler


def with_faults(*faults: Any) -> EvccConfig:
    return dataclasses.replace(DC_ISO2, max_charge_loops=2, faults=faults)


def test_wrong_session_id_on_one_message() -> None:
    secc = ScriptedSecc(AppProtocol.ISO2)
    fault = WrongSessionId(message="CurrentDemandReq", occurrence=2)
    pump(make_session(with_faults(fault)), secc)
    demands = [m for m in secc.requests if m.Body.CurrentDemandReq is not None]
    assert [m.Header.SessionID for m in demands] == [SESSION_ID, fault.session_id]


def test_out_of_sequence_refused() -> None:
    def refuse(r: Any, n: int) -> Any:
        return iso2.CableCheckResType(
            ResponseCode=iso2.responseCodeType.FAILED_SequenceError,
            DC_EVSEStatus=iso2.DC_EVSEStatusType(
                NotificationMaxDelay=0,
                EVSENotification=iso2.EVSENotificationType.None_,
                EVSEStatusCode=iso2.DC_EVSEStatusCodeType.EVSE_NotReady,
            ),
            EVSEProcessing=iso2.EVSEProcessingType.Finished,
        )

    secc = ScriptedSecc(AppProtocol.ISO2, {"CableCheckReq": refuse})
    fault = OutOfSequence(message="PaymentServiceSelectionReq", send="CableCheckReq")
    events, _ = pump(make_session(with_faults(fault)), secc)
    assert secc.received[-1] == "CableCheckReq"
    assert sent(events)[-1] == "CableCheckReq"
    assert finished(events).reason == "CableCheckRes: FAILED_SequenceError"


def test_out_of_sequence_accepted_is_reported() -> None:
    fault = OutOfSequence(message="ServiceDiscoveryReq", send="SessionStopReq")
    events, _ = pump(make_session(with_faults(fault)), ScriptedSecc(AppProtocol.ISO2))
    end = finished(events)
    assert end.ok  # SessionStopReq instead of X is an early stop
    fault = OutOfSequence(message="ServiceDiscoveryReq", send="PaymentServiceSelectionReq")
    events, _ = pump(make_session(with_faults(fault)), ScriptedSecc(AppProtocol.ISO2))
    end = finished(events)
    assert not end.ok and "accepted the out-of-sequence PaymentServiceSelectionReq" in end.reason


def test_early_stop_by_step_and_by_message() -> None:
    secc = ScriptedSecc(AppProtocol.ISO2)
    events, _ = pump(make_session(with_faults(EarlyStop(step=3))), secc)
    assert secc.received == [
        "supportedAppProtocolReq",
        "SessionSetupReq",
        "ServiceDiscoveryReq",
        "SessionStopReq",
    ]
    assert finished(events).reason == "stopped early (fault)"
    secc = ScriptedSecc(AppProtocol.ISO2)
    pump(make_session(with_faults(EarlyStop(message="CableCheckReq"))), secc)
    assert secc.received[-2:] == ["ChargeParameterDiscoveryReq", "SessionStopReq"]


def test_silence_after_a_message() -> None:
    session = make_session(with_faults(Silence(message="ChargeParameterDiscoveryReq")))
    secc = ScriptedSecc(AppProtocol.ISO2)
    pump(session, secc)
    assert secc.received[-1] == "ChargeParameterDiscoveryReq"
    assert session.finished is None and session.silent
    assert session.get_timer() is None
    session.close("the SECC closed the connection")
    assert session.finished is not None and not session.finished.ok


@pytest.mark.parametrize("kind", list(MalformedKind))
def test_malformed_exi(kind: MalformedKind) -> None:
    config = with_faults(MalformedExi(message="ServiceDiscoveryReq", kind=kind, length=12))
    session = make_session(config)
    secc = ScriptedSecc(AppProtocol.ISO2)
    session.start(0.0)
    session.receive_data(secc.feed(session.data_to_send()), 0.1)  # handshake
    session.receive_data(secc.feed(session.data_to_send()), 0.2)  # SessionSetup
    payload = V2GTPReassembler().feed(session.data_to_send())[0].payload
    if kind is MalformedKind.GARBAGE:
        assert payload == bytes(range(12))
    else:
        whole = exi.encode(
            "iso2",
            iso2.V2G_Message(
                Header=iso2.MessageHeaderType(SessionID=SESSION_ID),
                Body=iso2.BodyType(ServiceDiscoveryReq=iso2.ServiceDiscoveryReqType()),
            ),
        )
        assert payload == whole[: len(whole) // 2]
    with pytest.raises(exi.ExiError):
        exi.decode("iso2", payload)
    assert session.get_timer() == 0.2 + 2.0  # still waiting for an answer


def test_custom_mutate_before_encoding() -> None:
    def mutate(message: Any) -> None:
        message.Body.ChargeParameterDiscoveryReq.DC_EVChargeParameter.FullSOC = 42

    secc = ScriptedSecc(AppProtocol.ISO2)
    fault = CustomMutate(message="ChargeParameterDiscoveryReq", mutate=mutate)
    pump(make_session(with_faults(fault)), secc)
    cpd = next(m for m in secc.requests if m.Body.ChargeParameterDiscoveryReq is not None)
    assert cpd.Body.ChargeParameterDiscoveryReq.DC_EVChargeParameter.FullSOC == 42


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        EarlyStop()
    with pytest.raises(ValueError):
        EarlyStop(message="X", step=2)
    with pytest.raises(ValueError):
        Silence(message="CableCheckReq", occurrence=0)
    with pytest.raises(ValueError):
        WrongSessionId(message="CableCheckReq", session_id=bytes(9))
