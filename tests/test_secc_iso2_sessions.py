"""Whole ISO 15118-2 SECC sessions pumped in memory (Harness, fake clock): AC and DC with
External Identification Means, failures that end the session, renegotiation, pause and
resumption, and the EVSE's notifications."""

from __future__ import annotations

from typing import Any

from secc_helpers import T0, Harness
from test_secc_iso2_support import (
    ac_charging,
    ac_cpd,
    authorized_eim,
    cable_check,
    current_demand,
    dc_charging,
    dc_cpd,
    exchanged,
    of_type,
    power_delivery,
    pre_charge,
    refused,
    selection,
    session_stop,
    setup,
)

from exi_schemas import iso2
from secc.context import ResumeState
from secc.events import (
    Authorize,
    ConnectionClosing,
    SessionEnded,
    SessionPaused,
    SessionStarted,
    SetContactors,
    SetTarget,
    StartCableCheck,
    StopOutput,
)
from secc.evse import ControlPilotState, IsolationStatus
from secc.iso2 import convert
from secc.iso2.state import State
from secc.records import IdentificationKind, MeterReading, StopReason

R = iso2.responseCodeType
N = iso2.EVSENotificationType
CP = iso2.chargeProgressType


def commands(h: Harness) -> list[Any]:
    kinds = (StartCableCheck, SetTarget, SetContactors, StopOutput, Authorize)
    return [e for e in h.events if isinstance(e, kinds)]


def the_record(h: Harness) -> Any:
    (event,) = of_type(h.events, SessionEnded)
    return event.record


def state_of(h: Harness) -> Any:
    """The session's state (a fresh read: no narrowing between exchanges)."""
    return h.session.state


def meter(wh: int) -> MeterReading:
    return MeterReading(meter_id="M1", energy_wh=wh, at=T0)


# --- complete sessions ------------------------------------------------------------------------


def test_ac_eim_session() -> None:
    h = Harness()
    ac_charging(h)
    for _ in range(3):
        h.advance(1)
        res = h.send(iso2.ChargingStatusReqType())
        assert res.ResponseCode == R.OK and res.AC_EVSEStatus.EVSENotification == N.None_
        assert h.session.get_timer() == h.now + 60
    h.set_status(meter=meter(4500))
    h.send(power_delivery(CP.Stop))
    h.set_status(cp_state=ControlPilotState.B)
    assert h.send(session_stop()).ResponseCode == R.OK
    assert exchanged(h.events) == [
        ("SessionSetupReq", "OK_NewSessionEstablished"),
        ("ServiceDiscoveryReq", "OK"),
        ("PaymentServiceSelectionReq", "OK"),
        ("AuthorizationReq", "OK"),
        ("AuthorizationReq", "OK"),
        ("ChargeParameterDiscoveryReq", "OK"),
        ("PowerDeliveryReq", "OK"),
        *[("ChargingStatusReq", "OK")] * 3,
        ("PowerDeliveryReq", "OK"),
        ("SessionStopReq", "OK"),
    ]
    assert [type(c) for c in commands(h)] == [
        Authorize,
        SetTarget,
        SetContactors,
        StopOutput,
        SetContactors,
    ]
    assert commands(h)[1] == SetTarget(230, 32)
    record = the_record(h)
    assert (record.kind, record.contract_id, record.protocol) == (
        IdentificationKind.EXTERNAL,
        None,
        "iso2",
    )
    assert record.stop_reason is StopReason.EV_STOPPED
    assert record.energy_wh == 3500
    assert record.session_id == h.session_id.hex().upper()
    assert of_type(h.events, ConnectionClosing) == [ConnectionClosing(StopReason.EV_STOPPED, "OK")]
    assert h.session.closed and h.session.get_timer() is None


def test_dc_eim_session() -> None:
    h = Harness()
    dc_charging(h)
    assert state_of(h) is State.CHARGING
    h.set_status(present_voltage=380, present_current=80)
    res = h.send(current_demand(400, 80))
    assert res.ResponseCode == R.OK and res.EVSEID == "DE*ABC*E0000001*1"
    h.send(power_delivery(CP.Stop))
    h.send(iso2.WeldingDetectionReqType(DC_EVStatus=cable_check().DC_EVStatus))
    h.send(session_stop())
    assert [type(c) for c in commands(h)] == [
        Authorize,
        StartCableCheck,
        SetTarget,
        SetContactors,
        SetTarget,
        StopOutput,
        SetContactors,
    ]
    assert commands(h)[2] == SetTarget(380, 2, pre_charge=True)
    assert commands(h)[3] == SetContactors(True)
    assert commands(h)[4] == SetTarget(400, 80)
    assert [name for name, _ in exchanged(h.events)][-8:] == [
        "CableCheckReq",
        "CableCheckReq",
        "PreChargeReq",
        "PowerDeliveryReq",
        "CurrentDemandReq",
        "PowerDeliveryReq",
        "WeldingDetectionReq",
        "SessionStopReq",
    ]
    assert the_record(h).stop_reason is StopReason.EV_STOPPED


def test_pre_charge_repeats_until_power_delivery() -> None:
    h = Harness()
    dc_charging_until_pre_charge(h)
    h.set_status(present_voltage=300)
    for _ in range(3):
        h.advance(0.25)
        res = h.send(pre_charge())
        assert convert.value(res.EVSEPresentVoltage) == 300
        assert state_of(h) is State.WAIT_PRE_CHARGE
        assert h.session.get_timer() == h.now + 60
    assert len(of_type(h.events, SetTarget)) == 1  # the same target is not repeated
    assert h.send(power_delivery()).ResponseCode == R.OK
    assert state_of(h) is State.CHARGING


def test_service_detail_may_repeat() -> None:
    h = Harness(tls=True)
    setup(h)
    h.send(iso2.ServiceDiscoveryReqType())
    for _ in range(2):
        assert h.send(iso2.ServiceDetailReqType(ServiceID=2)).ResponseCode == R.OK
    assert h.send(selection()).ResponseCode == R.OK


# --- failures end the session -----------------------------------------------------------------


def assert_failed_and_closed(h: Harness, code: str, reason: StopReason) -> None:
    assert exchanged(h.events)[-1][1] == code
    assert h.session.closed and h.session.get_timer() is None
    assert the_record(h).stop_reason is reason
    assert of_type(h.events, ConnectionClosing)[0].reason is reason


def test_authorization_refused() -> None:
    h = Harness()
    setup(h)
    h.send(iso2.ServiceDiscoveryReqType())
    h.send(selection())
    h.send(iso2.AuthorizationReqType())
    h.advance(2)
    h.session.handle_event(refused(), h.now)
    assert h.send(iso2.AuthorizationReqType()).ResponseCode == R.FAILED
    assert_failed_and_closed(h, "FAILED", StopReason.AUTHORIZATION_REJECTED)


def test_authorization_stays_ongoing_without_an_answer() -> None:
    h = Harness()
    setup(h)
    h.send(iso2.ServiceDiscoveryReqType())
    h.send(selection())
    for _ in range(5):
        h.advance(2)
        res = h.send(iso2.AuthorizationReqType())
        assert res.EVSEProcessing == iso2.EVSEProcessingType.Ongoing
    assert len(of_type(h.events, Authorize)) == 1


def test_cable_check_in_cp_state_b() -> None:
    h = Harness()
    authorized_eim(h)
    h.send(dc_cpd())
    res = h.send(cable_check())
    assert res.ResponseCode == R.FAILED
    assert res.DC_EVSEStatus is not None
    assert_failed_and_closed(h, "FAILED", StopReason.PROTOCOL_ERROR)


def test_isolation_fault() -> None:
    h = Harness()
    authorized_eim(h)
    h.send(dc_cpd())
    h.set_status(cp_state=ControlPilotState.C)
    h.send(cable_check())
    h.set_status(isolation=IsolationStatus.FAULT)
    res = h.send(cable_check())
    assert res.ResponseCode == R.FAILED
    assert res.DC_EVSEStatus.EVSEIsolationStatus == iso2.isolationLevelType.Fault
    assert res.DC_EVSEStatus.EVSEStatusCode == iso2.DC_EVSEStatusCodeType.EVSE_Malfunction
    assert h.session.closed


def test_dc_power_delivery_in_cp_state_b() -> None:
    h = Harness()
    dc_charging_until_pre_charge(h)
    h.set_status(cp_state=ControlPilotState.B)
    assert h.send(power_delivery()).ResponseCode == R.FAILED_PowerDeliveryNotApplied
    assert_failed_and_closed(h, "FAILED_PowerDeliveryNotApplied", StopReason.PROTOCOL_ERROR)


def dc_charging_until_pre_charge(h: Harness) -> None:
    authorized_eim(h)
    h.send(dc_cpd())
    h.set_status(cp_state=ControlPilotState.C, isolation=IsolationStatus.VALID)
    h.send(cable_check())
    h.send(cable_check())
    h.send(pre_charge())
    assert state_of(h) is State.WAIT_PRE_CHARGE


def test_wrong_tuple_id() -> None:
    h = Harness()
    authorized_eim(h)
    h.send(ac_cpd())
    assert h.send(power_delivery(tuple_id=3)).ResponseCode == R.FAILED_TariffSelectionInvalid
    assert h.session.closed


# --- renegotiation ----------------------------------------------------------------------------


def test_renegotiation_requested_by_the_operator_ac() -> None:
    h = Harness()
    ac_charging(h)
    h.session.request_renegotiation()
    res = h.send(iso2.ChargingStatusReqType())
    assert res.AC_EVSEStatus.EVSENotification == N.ReNegotiation
    assert h.send(power_delivery(CP.Renegotiate)).ResponseCode == R.OK
    assert state_of(h) is State.WAIT_CHARGE_PARAMETER_DISCOVERY
    assert h.send(ac_cpd()).ResponseCode == R.OK
    assert state_of(h) is State.WAIT_POWER_DELIVERY
    assert h.send(power_delivery()).ResponseCode == R.OK
    assert state_of(h) is State.CHARGING
    res = h.send(iso2.ChargingStatusReqType())
    assert res.AC_EVSEStatus.EVSENotification == N.None_  # the request was served
    assert of_type(h.events, SetContactors) == [SetContactors(True)]  # closed once


def test_dc_renegotiation_skips_cable_check_and_pre_charge() -> None:
    h = Harness()
    dc_charging(h)
    h.send(current_demand())
    assert h.send(power_delivery(CP.Renegotiate)).ResponseCode == R.OK
    assert h.send(dc_cpd()).ResponseCode == R.OK
    assert state_of(h) is State.WAIT_POWER_DELIVERY
    assert h.send(power_delivery()).ResponseCode == R.OK
    assert state_of(h) is State.CHARGING
    assert len(of_type(h.events, StartCableCheck)) == 1
    assert h.send(current_demand()).ResponseCode == R.OK


def test_renegotiation_may_not_change_the_energy_mode() -> None:
    h = Harness()
    dc_charging(h)
    h.send(power_delivery(CP.Renegotiate))
    assert h.send(ac_cpd()).ResponseCode == R.FAILED_WrongEnergyTransferMode
    assert h.session.closed


# --- the EVSE stops ---------------------------------------------------------------------------


def test_stop_charging_notification_when_the_evse_stops() -> None:
    h = Harness()
    dc_charging(h)
    h.set_status(stop=StopReason.EVSE_STOPPED)
    res = h.send(current_demand())
    assert res.DC_EVSEStatus.EVSENotification == N.StopCharging
    assert res.DC_EVSEStatus.EVSEStatusCode == iso2.DC_EVSEStatusCodeType.EVSE_Shutdown
    h.send(power_delivery(CP.Stop))
    h.send(session_stop())
    assert the_record(h).stop_reason is StopReason.EVSE_STOPPED


# --- pause and resumption ---------------------------------------------------------------------


def paused_ac_session() -> tuple[Harness, ResumeState]:
    h = Harness()
    ac_charging(h)
    h.send(iso2.ChargingStatusReqType())
    h.set_status(meter=meter(2000))
    h.send(power_delivery(CP.Stop))
    assert h.send(session_stop(pause=True)).ResponseCode == R.OK
    (paused,) = of_type(h.events, SessionPaused)
    assert paused.session_id == h.session_id.hex().upper()
    return h, paused.resume


def test_pause_bills_the_part_so_far_and_reports_the_resume_state() -> None:
    h, resume = paused_ac_session()
    assert isinstance(resume, ResumeState)
    assert resume.data.session_id == h.session_id
    assert resume.data.meter_start is None  # the resumed part is metered afresh
    assert of_type(h.events, SessionEnded) == []
    (paused,) = of_type(h.events, SessionPaused)
    assert paused.record is not None
    assert paused.record.stop_reason is StopReason.EV_PAUSED
    assert paused.record.meter_start == meter(1000)
    assert paused.record.energy_wh == 1000
    assert of_type(h.events, ConnectionClosing) == [
        ConnectionClosing(StopReason.EV_PAUSED, "paused")
    ]
    assert h.session.closed


def test_resumed_session_joins_with_the_same_session_id() -> None:
    first, resume = paused_ac_session()
    sid = first.session_id
    h = Harness(resumable={sid: resume}, now=500.0)
    res = setup(h, session_id=sid)
    assert res.ResponseCode == R.OK_OldSessionJoined
    assert h.session_id == sid
    assert of_type(h.events, SessionStarted) == [SessionStarted(sid.hex().upper(), "iso2", True)]
    h.send(iso2.ServiceDiscoveryReqType())
    h.send(selection())
    res = h.send(iso2.AuthorizationReqType())  # authorised before the pause
    assert res.EVSEProcessing == iso2.EVSEProcessingType.Finished
    assert of_type(h.events, Authorize) == []
    h.send(ac_cpd())
    h.set_status(cp_state=ControlPilotState.C, meter=meter(2500))
    h.send(power_delivery())
    h.send(iso2.ChargingStatusReqType())
    h.set_status(meter=meter(3000))
    h.send(power_delivery(CP.Stop))
    h.send(session_stop())
    record = the_record(h)
    assert record.meter_start == meter(2500)  # the resumed part; the first part was billed
    assert record.energy_wh == 500
    assert record.session_id == sid.hex().upper()


def test_resumption_with_an_unknown_session_id_is_a_new_session() -> None:
    _first, resume = paused_ac_session()
    h = Harness(resumable={b"\x77" * 8: resume})
    res = setup(h, session_id=b"\x55" * 8)
    assert res.ResponseCode == R.OK_NewSessionEstablished
    assert h.session_id != b"\x55" * 8


def test_current_demand_in_an_ac_session_is_a_sequence_error() -> None:
    h = Harness()
    ac_charging(h)
    assert h.send(current_demand()).ResponseCode == R.FAILED_SequenceError
    assert_failed_and_closed(h, "FAILED_SequenceError", StopReason.PROTOCOL_ERROR)
    assert of_type(h.events, SetTarget) == [SetTarget(230, 32)]  # no DC target reached the EVSE


def test_charging_status_in_a_dc_session_is_a_sequence_error() -> None:
    h = Harness()
    dc_charging(h)
    res = h.send(iso2.ChargingStatusReqType())
    assert res.ResponseCode == R.FAILED_SequenceError
    assert h.session.closed
