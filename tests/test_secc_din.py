"""DIN SPEC 70121 SECC: whole sessions through the session core, each handler's failure
codes, sequence errors, the SessionID check, the sequence timeout, and the FAILED form of
every DIN response."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from secc_helpers import Harness

from exi_schemas import apphand, din
from iso15118 import exi, sap
from iso15118.v2gtp import PayloadType, V2GTPMessage, V2GTPReassembler
from secc.context import Context, SeccConfig
from secc.din import convert
from secc.din.spec import SPEC
from secc.din.state import State
from secc.din.table import TRANSITIONS
from secc.events import (
    AuthorizationResult,
    Authorize,
    ConnectionClosing,
    MessageExchanged,
    SessionEnded,
    SessionStarted,
    SetContactors,
    SetTarget,
    StartCableCheck,
    StopOutput,
)
from secc.evse import ControlPilotState, EnergyMode, IsolationStatus, PowerLimit
from secc.records import AuthorizationDecision, AuthorizationStatus, StopReason

R = din.responseCodeType
P = din.EVSEProcessingType
U = din.unitSymbolType
C = ControlPilotState
DIN = sap.AppProtocol.DIN


# --- requests as a car sends them -------------------------------------------------------------


def pv(value: int, unit: din.unitSymbolType | None, multiplier: int = 0) -> din.PhysicalValueType:
    return din.PhysicalValueType(Multiplier=multiplier, Unit=unit, Value=value)


def ev_status(ready: bool = True) -> din.DC_EVStatusType:
    return din.DC_EVStatusType(
        EVReady=ready, EVErrorCode=din.DC_EVErrorCodeType.NO_ERROR, EVRESSSOC=40
    )


def selection(
    option: din.paymentOptionType = din.paymentOptionType.ExternalPayment,
    ids: tuple[int, ...] = (1,),
) -> din.ServicePaymentSelectionReqType:
    return din.ServicePaymentSelectionReqType(
        SelectedPaymentOption=option,
        SelectedServiceList=din.SelectedServiceListType(
            SelectedService=[din.SelectedServiceType(ServiceID=i) for i in ids]
        ),
    )


def cpd(
    mode: din.EVRequestedEnergyTransferType = din.EVRequestedEnergyTransferType.DC_extended,
    max_voltage: int = 400,
    **changes: Any,
) -> din.ChargeParameterDiscoveryReqType:
    parameter = din.DC_EVChargeParameterType(
        DC_EVStatus=ev_status(),
        EVMaximumCurrentLimit=pv(125, U.A),
        EVMaximumVoltageLimit=pv(max_voltage, U.V),
    )
    request = din.ChargeParameterDiscoveryReqType(
        EVRequestedEnergyTransferType=mode, DC_EVChargeParameter=parameter
    )
    return replace(request, **changes)


def cable_check() -> din.CableCheckReqType:
    return din.CableCheckReqType(DC_EVStatus=ev_status())


def pre_charge(voltage: int = 380, current: int = 2) -> din.PreChargeReqType:
    return din.PreChargeReqType(
        DC_EVStatus=ev_status(),
        EVTargetVoltage=pv(voltage, U.V),
        EVTargetCurrent=pv(current, U.A),
    )


def power_delivery(ready: bool, profile: Any = None) -> din.PowerDeliveryReqType:
    return din.PowerDeliveryReqType(
        ReadyToChargeState=ready,
        ChargingProfile=profile,
        DC_EVPowerDeliveryParameter=din.DC_EVPowerDeliveryParameterType(
            DC_EVStatus=ev_status(), ChargingComplete=not ready
        ),
    )


def current_demand(voltage: int = 390, current: int = 100) -> din.CurrentDemandReqType:
    return din.CurrentDemandReqType(
        DC_EVStatus=ev_status(),
        EVTargetCurrent=pv(current, U.A),
        ChargingComplete=False,
        EVTargetVoltage=pv(voltage, U.V),
    )


def accepted() -> AuthorizationResult:
    return AuthorizationResult(AuthorizationDecision(status=AuthorizationStatus.ACCEPTED))


# --- driving a session to a state -------------------------------------------------------------


def harness(**kwargs: Any) -> Harness:
    h = Harness(**kwargs)
    response = h.handshake([DIN])
    assert response.ResponseCode == apphand.responseCodeType.OK_SuccessfulNegotiation
    return h


def to_authentication(h: Harness) -> None:
    assert h.send(din.SessionSetupReqType(EVCCID=bytes.fromhex("0002B0123456"))) is not None
    assert h.send(din.ServiceDiscoveryReqType()).ResponseCode == R.OK
    assert h.send(selection()).ResponseCode == R.OK


def to_charge_parameters(h: Harness) -> None:
    to_authentication(h)
    h.session.handle_event(accepted(), h.now)
    h.send(din.ContractAuthenticationReqType())
    assert h.send(din.ContractAuthenticationReqType()).EVSEProcessing == P.Finished


def to_cable_check(h: Harness) -> None:
    to_charge_parameters(h)
    assert h.send(cpd()).ResponseCode == R.OK


def to_pre_charge(h: Harness) -> None:
    to_cable_check(h)
    h.set_status(cp_state=C.C)
    h.send(cable_check())
    h.set_status(isolation=IsolationStatus.VALID)
    assert h.send(cable_check()).EVSEProcessing == P.Finished


def to_charging(h: Harness) -> None:
    to_pre_charge(h)
    h.send(pre_charge(380))
    h.set_status(present_voltage=380.0, voltage_reached=True)
    assert h.send(power_delivery(True)).ResponseCode == R.OK


def commands(h: Harness) -> list[Any]:
    return [e for e in h.events if not isinstance(e, MessageExchanged | SessionStarted)]


def ended(h: Harness) -> SessionEnded:
    (event,) = [e for e in h.events if isinstance(e, SessionEnded)]
    return event


def closed(h: Harness) -> bool:
    return h.session.closed and any(isinstance(e, ConnectionClosing) for e in h.events)


# --- whole sessions ---------------------------------------------------------------------------


def test_a_whole_dc_session() -> None:
    h = harness()
    assert h.schema == "din"
    setup = h.send(din.SessionSetupReqType(EVCCID=bytes.fromhex("0002B0123456")))
    assert setup.ResponseCode == R.OK_NewSessionEstablished
    assert setup.EVSEID == b"DE*ABC*E0000001*1"
    assert h.session_id == bytes.fromhex("0000000000000001")
    discovery = h.send(
        din.ServiceDiscoveryReqType(ServiceCategory=din.serviceCategoryType.EVCharging)
    )
    assert discovery.PaymentOptions.PaymentOption == [din.paymentOptionType.ExternalPayment]
    service = discovery.ChargeService
    assert service.EnergyTransferType == din.EVSESupportedEnergyTransferType.DC_extended
    assert (service.ServiceTag.ServiceID, service.ServiceTag.ServiceName) == (1, None)
    assert discovery.ServiceList is None
    assert h.send(selection()).ResponseCode == R.OK

    first = h.send(din.ContractAuthenticationReqType())
    assert (first.ResponseCode, first.EVSEProcessing) == (R.OK, P.Ongoing)
    (authorize,) = [e for e in h.events if isinstance(e, Authorize)]
    assert authorize.request.session_id == "0000000000000001"
    assert h.send(din.ContractAuthenticationReqType()).EVSEProcessing == P.Ongoing
    assert len([e for e in h.events if isinstance(e, Authorize)]) == 1  # asked once
    h.session.handle_event(accepted(), h.now)
    assert h.send(din.ContractAuthenticationReqType()).EVSEProcessing == P.Finished

    parameters = h.send(cpd())
    assert (parameters.ResponseCode, parameters.EVSEProcessing) == (R.OK, P.Finished)
    (schedule,) = parameters.SAScheduleList.SAScheduleTuple
    (entry,) = schedule.PMaxSchedule.PMaxScheduleEntry
    assert (entry.PMax, entry.RelativeTimeInterval.duration) == (convert.PMAX_LIMIT, 86400)
    assert schedule.SalesTariff is None
    limits = parameters.DC_EVSEChargeParameter
    assert convert.value(limits.EVSEMaximumPowerLimit) == 100_000
    assert convert.value(limits.EVSEMaximumVoltageLimit) == 500

    h.set_status(cp_state=C.C)
    check = h.send(cable_check())
    assert check.EVSEProcessing == P.Ongoing
    assert (
        check.DC_EVSEStatus.EVSEStatusCode
        == din.DC_EVSEStatusCodeType.EVSE_IsolationMonitoringActive
    )
    assert h.send(cable_check()).EVSEProcessing == P.Ongoing
    h.set_status(isolation=IsolationStatus.VALID)
    done = h.send(cable_check())
    assert done.EVSEProcessing == P.Finished
    assert done.DC_EVSEStatus.EVSEStatusCode == din.DC_EVSEStatusCodeType.EVSE_Ready
    assert done.DC_EVSEStatus.EVSEIsolationStatus == din.isolationLevelType.Valid

    assert h.send(pre_charge(380)).ResponseCode == R.OK
    h.set_status(present_voltage=378.0)
    assert convert.value(h.send(pre_charge(380)).EVSEPresentVoltage) == 378.0
    assert h.send(power_delivery(True)).ResponseCode == R.OK
    h.set_status(present_voltage=390.0, present_current=99.0, contactors_closed=True)
    demand = h.send(current_demand(390, 100))
    assert demand.ResponseCode == R.OK
    assert convert.value(demand.EVSEPresentCurrent) == 99.0
    assert not (demand.EVSECurrentLimitAchieved or demand.EVSEPowerLimitAchieved)
    assert h.send(power_delivery(False)).ResponseCode == R.OK
    welding = h.send(din.WeldingDetectionReqType(DC_EVStatus=ev_status(False)))
    assert welding.ResponseCode == R.OK
    assert h.send(din.SessionStopType()).ResponseCode == R.OK

    assert [type(e) for e in commands(h)] == [
        Authorize,
        StartCableCheck,
        SetTarget,
        SetContactors,
        SetTarget,
        StopOutput,
        SetContactors,
        SessionEnded,
        ConnectionClosing,
    ]
    targets = [e for e in h.events if isinstance(e, SetTarget)]
    assert targets == [SetTarget(380.0, 2.0, pre_charge=True), SetTarget(390.0, 100.0)]
    contactors = [e.closed for e in h.events if isinstance(e, SetContactors)]
    assert contactors == [True, False]
    record = ended(h).record
    assert (record.protocol, record.stop_reason) == ("din", StopReason.EV_STOPPED)
    assert record.meter_start is not None and record.session_id == "0000000000000001"
    names = [e.request_name for e in h.events if isinstance(e, MessageExchanged)]
    assert names[-1] == "SessionStopReq"
    assert h.session.closed


def test_din_preferred_over_iso2_is_chosen() -> None:
    h = Harness()
    response = h.handshake([DIN, sap.AppProtocol.ISO2])
    assert response.SchemaID == 1 and h.schema == "din"
    assert h.send(din.SessionSetupReqType(EVCCID=bytes(6))).ResponseCode == (
        R.OK_NewSessionEstablished
    )


def test_iso2_preferred_over_din_is_chosen() -> None:
    h = Harness()
    h.handshake([sap.AppProtocol.ISO2, DIN])
    assert h.schema == "iso2"


def _raw_handshake(h: Harness, request: apphand.supportedAppProtocolReq) -> Any:
    payload = exi.encode("appHand", request)
    h.session.receive_data(V2GTPMessage(PayloadType.SAP, payload).pack(), h.now)
    (message,) = V2GTPReassembler().feed(h.session.data_to_send())
    return exi.decode("appHand", message.payload)


def test_an_unknown_vendor_namespace_is_ignored() -> None:
    h = Harness()
    vendor = apphand.AppProtocolType(
        ProtocolNamespace="urn:tesla:din:2018:MsgDef",
        VersionNumberMajor=2,
        VersionNumberMinor=0,
        SchemaID=1,
        Priority=1,
    )
    official = replace(sap.offer([DIN]).AppProtocol[0], SchemaID=2, Priority=2)
    request = apphand.supportedAppProtocolReq(AppProtocol=[vendor, official])
    response = _raw_handshake(h, request)
    assert response.ResponseCode == apphand.responseCodeType.OK_SuccessfulNegotiation
    assert response.SchemaID == 2
    assert h.session.spec is SPEC


def test_a_charger_without_din_refuses_a_din_only_car() -> None:
    h = Harness(config=SeccConfig(protocols=(sap.AppProtocol.ISO2,)))
    response = h.handshake([DIN])
    assert response.ResponseCode == apphand.responseCodeType.Failed_NoNegotiation
    assert h.session.closed


# --- SessionID, sequence, timeout -------------------------------------------------------------


def test_a_wrong_session_id_is_unknown_session() -> None:
    h = harness()
    h.send(din.SessionSetupReqType(EVCCID=bytes(6)))
    response = h.send(din.ServiceDiscoveryReqType(), session_id=bytes.fromhex("DEADBEEF00000001"))
    assert response.ResponseCode == R.FAILED_UnknownSession
    assert closed(h)
    assert ended(h).record.stop_reason is StopReason.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("drive", "request_body", "response_type"),
    [
        (lambda h: None, din.ServiceDiscoveryReqType(), din.ServiceDiscoveryResType),
        (to_authentication, cable_check(), din.CableCheckResType),
        (to_cable_check, pre_charge(), din.PreChargeResType),
        (to_pre_charge, current_demand(), din.CurrentDemandResType),
        (to_charging, din.SessionStopType(), din.SessionStopResType),
        (to_charging, cpd(), din.ChargeParameterDiscoveryResType),
        (to_charging, din.ChargingStatusReqType(), din.ChargingStatusResType),
        (to_authentication, din.ServiceDetailReqType(ServiceID=1), din.ServiceDetailResType),
    ],
    ids=[
        "before-setup",
        "cable-check-early",
        "pre-charge-early",
        "demand-early",
        "stop-while-charging",
        "cpd-while-charging",
        "ac-request",
        "service-detail",
    ],
)
def test_a_request_out_of_sequence_is_a_sequence_error(
    drive: Any, request_body: Any, response_type: type[Any]
) -> None:
    h = harness()
    drive(h)
    response = h.send(request_body)
    assert isinstance(response, response_type)
    assert response.ResponseCode == R.FAILED_SequenceError
    assert closed(h)


def test_the_sequence_timeout_has_exact_deadlines() -> None:
    h = Harness(now=10.0)
    assert h.session.get_timer() == 70.0  # handshake: V2G_SECC_Sequence_Timeout too
    h.advance(2.0)
    h.handshake([DIN])
    assert h.session.get_timer() == 72.0
    h.advance(5.0)
    h.send(din.SessionSetupReqType(EVCCID=bytes(6)))
    assert h.session.get_timer() == 77.0
    h.session.handle_timer(76.999)
    assert not h.session.closed
    h.session.handle_timer(77.0)
    h.drain()
    assert closed(h)
    assert ended(h).record.stop_reason is StopReason.TIMEOUT
    assert h.session.get_timer() is None


# --- handler failures -------------------------------------------------------------------------


def test_contract_payment_is_refused() -> None:
    h = harness()
    h.send(din.SessionSetupReqType(EVCCID=bytes(6)))
    h.send(din.ServiceDiscoveryReqType())
    response = h.send(selection(din.paymentOptionType.Contract))
    assert response.ResponseCode == R.FAILED_PaymentSelectionInvalid
    assert closed(h)


@pytest.mark.parametrize("ids", [(1, 2), (2,), (1, 1)])
def test_only_the_charge_service_may_be_selected(ids: tuple[int, ...]) -> None:
    h = harness()
    h.send(din.SessionSetupReqType(EVCCID=bytes(6)))
    h.send(din.ServiceDiscoveryReqType())
    assert h.send(selection(ids=ids)).ResponseCode == R.FAILED_ServiceSelectionInvalid


def test_an_ac_only_evse_has_no_din_service() -> None:
    h = harness(modes=(EnergyMode.AC_THREE_PHASE_CORE,))
    h.send(din.SessionSetupReqType(EVCCID=bytes(6)))
    response = h.send(din.ServiceDiscoveryReqType())
    assert response.ResponseCode == R.FAILED
    assert closed(h)


def test_a_refused_authorization_fails_the_session() -> None:
    h = harness()
    to_authentication(h)
    h.send(din.ContractAuthenticationReqType())
    refused = AuthorizationDecision(status=AuthorizationStatus.REJECTED, reason="blocked")
    h.session.handle_event(AuthorizationResult(refused), h.now)
    response = h.send(din.ContractAuthenticationReqType())
    assert (response.ResponseCode, response.EVSEProcessing) == (R.FAILED, P.Finished)
    assert ended(h).record.stop_reason is StopReason.AUTHORIZATION_REJECTED


def test_authorization_ongoing_for_too_long_fails() -> None:
    h = harness()
    to_authentication(h)
    for _ in range(7):  # 0 s ... 60 s: Ongoing
        assert h.send(din.ContractAuthenticationReqType()).EVSEProcessing == P.Ongoing
        h.advance(10.0)
    response = h.send(din.ContractAuthenticationReqType())  # 70 s after the first
    assert response.ResponseCode == R.FAILED
    assert ended(h).record.stop_reason is StopReason.TIMEOUT


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        (
            cpd(din.EVRequestedEnergyTransferType.AC_three_phase_core),
            R.FAILED_WrongEnergyTransferType,
        ),
        (cpd(din.EVRequestedEnergyTransferType.DC_core), R.FAILED_WrongEnergyTransferType),
        (
            cpd(
                DC_EVChargeParameter=None,
                AC_EVChargeParameter=din.AC_EVChargeParameterType(
                    DepartureTime=0,
                    EAmount=pv(10, U.Wh, 3),
                    EVMaxVoltage=pv(400, U.V),
                    EVMaxCurrent=pv(16, U.A),
                    EVMinCurrent=pv(1, U.A),
                ),
            ),
            R.FAILED_WrongChargeParameter,
        ),
        (cpd(max_voltage=100), R.FAILED_WrongChargeParameter),  # below the EVSE's 150 V
    ],
    ids=["ac-mode", "dc-core-not-offered", "ac-parameter", "voltage-too-low"],
)
def test_charge_parameter_failures(request_body: Any, code: din.responseCodeType) -> None:
    h = harness()
    to_charge_parameters(h)
    response = h.send(request_body)
    assert response.ResponseCode == code
    assert response.SAScheduleList is not None and response.DC_EVSEChargeParameter is not None
    assert closed(h)


def test_cable_check_waits_for_cp_state_c_within_the_detection_time() -> None:
    h = harness()
    to_cable_check(h)
    assert h.send(cable_check()).EVSEProcessing == P.Ongoing  # CP B: not started yet
    assert not [e for e in h.events if isinstance(e, StartCableCheck)]
    h.advance(1.0)
    h.set_status(cp_state=C.C)
    assert h.send(cable_check()).EVSEProcessing == P.Ongoing
    assert len([e for e in h.events if isinstance(e, StartCableCheck)]) == 1


def test_cable_check_fails_without_cp_state_c() -> None:
    h = harness()
    to_cable_check(h)
    h.send(cable_check())
    h.advance(1.5)
    response = h.send(cable_check())
    assert (response.ResponseCode, response.EVSEProcessing) == (R.FAILED, P.Finished)
    assert closed(h)


def test_cable_check_fails_on_an_isolation_fault() -> None:
    h = harness()
    to_cable_check(h)
    h.set_status(cp_state=C.D)
    h.send(cable_check())
    h.set_status(isolation=IsolationStatus.FAULT)
    response = h.send(cable_check())
    assert response.ResponseCode == R.FAILED
    assert response.DC_EVSEStatus.EVSEStatusCode == din.DC_EVSEStatusCodeType.EVSE_Malfunction


def test_cable_check_gives_up_after_its_performance_time() -> None:
    h = harness()
    to_cable_check(h)
    h.set_status(cp_state=C.C)
    for _ in range(20):  # 0 ... 38 s
        assert h.send(cable_check()).EVSEProcessing == P.Ongoing
        h.advance(2.0)
    assert h.send(cable_check()).ResponseCode == R.FAILED  # 40 s


def test_pre_charge_above_the_evse_maximum_fails() -> None:
    h = harness()
    to_pre_charge(h)
    assert h.send(pre_charge(501)).ResponseCode == R.FAILED


def test_pre_charge_current_is_limited_to_the_evse_maximum() -> None:
    h = harness()
    to_pre_charge(h)
    h.send(pre_charge(380, 300))
    assert h.events[-2] == SetTarget(380.0, 200.0, pre_charge=True)
    h.send(pre_charge(380, 300))  # same target: no new command
    assert [e for e in h.events if isinstance(e, SetTarget)] == [SetTarget(380.0, 200.0, True)]


def _profile(tuple_id: int, starts: list[int]) -> din.ChargingProfileType:
    return din.ChargingProfileType(
        SAScheduleTupleID=tuple_id,
        ProfileEntry=[
            din.ProfileEntryType(ChargingProfileEntryStart=s, ChargingProfileEntryMaxPower=4140)
            for s in starts
        ],
    )


@pytest.mark.parametrize(
    ("status", "request_body", "code"),
    [
        ({"cp_state": C.B}, power_delivery(True), R.FAILED_PowerDeliveryNotApplied),
        ({"stop": StopReason.EVSE_STOPPED}, power_delivery(True), R.FAILED_PowerDeliveryNotApplied),
        ({"malfunction": True}, power_delivery(True), R.FAILED_PowerDeliveryNotApplied),
        ({}, power_delivery(True, _profile(2, [0])), R.FAILED_TariffSelectionInvalid),
        ({}, power_delivery(True, _profile(1, [600, 0])), R.FAILED_ChargingProfileInvalid),
        (
            {"present_voltage": 300.0, "voltage_reached": False},
            power_delivery(True),
            R.FAILED_EVSEPresentVoltageToLow,
        ),
    ],
    ids=["cp-b", "evse-stop", "malfunction", "tuple-id", "profile-order", "voltage-low"],
)
def test_power_delivery_start_failures(
    status: dict[str, Any], request_body: Any, code: din.responseCodeType
) -> None:
    h = harness()
    to_pre_charge(h)
    h.send(pre_charge(380))
    h.set_status(**{"present_voltage": 380.0, **status})
    response = h.send(request_body)
    assert response.ResponseCode == code
    assert response.DC_EVSEStatus is not None
    assert not [e for e in h.events if isinstance(e, SetContactors)]
    assert closed(h)


def test_power_delivery_start_with_a_valid_profile() -> None:
    h = harness()
    to_pre_charge(h)
    h.send(pre_charge(380))
    h.set_status(present_voltage=375.0)  # within the pre-charge tolerance
    assert h.send(power_delivery(True, _profile(1, [0, 600]))).ResponseCode == R.OK
    assert h.session.state is State.CHARGING


def test_power_delivery_start_twice_is_refused() -> None:
    h = harness()
    to_charging(h)
    response = h.send(power_delivery(True))
    assert response.ResponseCode == R.FAILED_PowerDeliveryNotApplied


def test_power_delivery_stop_before_charging_goes_to_session_stop() -> None:
    h = harness()
    to_pre_charge(h)
    assert h.send(power_delivery(False)).ResponseCode == R.OK
    assert h.session.state is State.WAIT_SESSION_STOP
    assert h.send(din.SessionStopType()).ResponseCode == R.OK
    assert ended(h).record.stop_reason is StopReason.EV_STOPPED


def test_session_stop_before_charging_ends_the_session() -> None:
    h = harness()
    to_cable_check(h)
    assert h.send(din.SessionStopType()).ResponseCode == R.OK
    assert closed(h)


def test_current_demand_is_clamped_and_reports_the_limits() -> None:
    h = harness()
    to_charging(h)
    response = h.send(current_demand(400, 300))  # 300 A: above 200 A and 100 kW / 400 V
    assert response.EVSECurrentLimitAchieved and response.EVSEPowerLimitAchieved
    assert not response.EVSEVoltageLimitAchieved
    assert h.events[-2] == SetTarget(400.0, 200.0)
    response = h.send(current_demand(500, 250))  # 250 A at 500 V: the power limit clamps
    assert response.EVSEVoltageLimitAchieved
    assert h.events[-2] == SetTarget(500.0, 200.0)


def test_current_demand_above_the_maximum_voltage_fails() -> None:
    h = harness()
    to_charging(h)
    response = h.send(current_demand(502, 10))
    assert response.ResponseCode == R.FAILED
    assert convert.value(response.EVSEPresentVoltage) == 380.0


def test_an_evse_stop_is_notified_in_the_charge_loop() -> None:
    h = harness()
    to_charging(h)
    h.set_status(stop=StopReason.EVSE_STOPPED)
    status = h.send(current_demand()).DC_EVSEStatus
    assert status.EVSENotification == din.EVSENotificationType.StopCharging
    assert status.EVSEStatusCode == din.DC_EVSEStatusCodeType.EVSE_Shutdown
    h.send(power_delivery(False))
    h.send(din.SessionStopType())
    assert ended(h).record.stop_reason is StopReason.EVSE_STOPPED


# --- conversions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evse_id", "octets"),
    [
        ("", b"\x00"),
        ("49*89*6360", bytes.fromhex("49A89A6360")),
        ("+49*810*000*438", bytes.fromhex("49A810A000A438")),
        ("49*89*636", bytes.fromhex("49A89A636F")),
        ("49A80737A45678", bytes.fromhex("49A80737A45678")),
        ("DE*ABC*E1234567*1", b"DE*ABC*E1234567*1"),
        ("DE*ABC*E" + "1" * 30, b"\x00"),  # 38 octets do not fit
    ],
)
def test_evse_id_octets(evse_id: str, octets: bytes) -> None:
    assert convert.evse_id_bytes(evse_id) == octets


def test_physical_values_without_unit_and_with_odd_multipliers() -> None:
    assert convert.value(pv(3955, None, -1)) == 395.5
    assert convert.value(pv(4, U.V, 2)) == 400.0
    assert convert.value(pv(-5, U.A, -3)) == -0.005
    assert convert.value(None, 7.0) == 7.0
    assert convert.volts(395.5) == pv(3955, U.V, -1)
    assert convert.watts(150_000) == pv(15000, U.W, 1)


def test_the_schedule_follows_the_evse_allowance_with_pmax_capped() -> None:
    h = harness()
    to_charge_parameters(h)
    h.set_status(
        schedule=(PowerLimit(start=0, max_power=11_000), PowerLimit(start=3600, max_power=50_000))
    )
    entries = h.send(cpd()).SAScheduleList.SAScheduleTuple[0].PMaxSchedule.PMaxScheduleEntry
    assert [
        (e.RelativeTimeInterval.start, e.RelativeTimeInterval.duration, e.PMax) for e in entries
    ] == [
        (0, None, 11_000),
        (3600, 86400 - 3600, convert.PMAX_LIMIT),
    ]


# --- the table and the FAILED forms -----------------------------------------------------------

DIN_REQUESTS = {
    din.SessionSetupReqType,
    din.ServiceDiscoveryReqType,
    din.ServicePaymentSelectionReqType,
    din.ContractAuthenticationReqType,
    din.ChargeParameterDiscoveryReqType,
    din.CableCheckReqType,
    din.PreChargeReqType,
    din.PowerDeliveryReqType,
    din.CurrentDemandReqType,
    din.WeldingDetectionReqType,
    din.SessionStopType,
}


def test_the_table_covers_every_state_and_every_din_dc_request() -> None:
    assert set(TRANSITIONS) == set(State)
    taken = {request for row in TRANSITIONS.values() for request in row}
    assert taken == DIN_REQUESTS
    assert SPEC.response_type(din.SessionStopType) is din.SessionStopResType
    assert SPEC.name_of(din.SessionStopType()) == "SessionStopReq"


def _all_response_pairs() -> list[tuple[type[Any], type[Any]]]:
    pairs = []
    for f in din.BodyType._exi_fields_:
        if f.py.endswith("Req") and isinstance(f.kind, type):
            response = SPEC.response_type(f.kind)
            assert response is not None, f.py
            pairs.append((f.kind, response))
    return pairs


@pytest.mark.parametrize(
    ("request_type", "response_type"), _all_response_pairs(), ids=lambda t: t.__name__
)
def test_every_din_response_has_an_encodable_failed_form(
    request_type: type[Any], response_type: type[Any]
) -> None:
    h = harness()
    h.send(din.SessionSetupReqType(EVCCID=bytes(6)))
    ctx = Context(
        config=h.session.config,
        evse_id="DE*ABC*E0000001*1",
        energy_modes=(EnergyMode.DC_EXTENDED,),
        status=h.status,
        now=0.0,
        at=h.wall,
        random=lambda n: bytes(n),
    )
    assert h.session.data is not None
    response = SPEC.failed_response(request_type, "FAILED_SequenceError", ctx, h.session.data)
    assert isinstance(response, response_type)
    message = SPEC.wrap(b"\x01" * 8, response)
    decoded = exi.decode("din", exi.encode("din", message))
    assert decoded == message
    body = SPEC.request_of(decoded)
    assert body is not None and body.ResponseCode == R.FAILED_SequenceError


def test_unknown_codes_fall_back_to_failed_and_din_codes_are_kept() -> None:
    assert SPEC.response_code("FAILED_WrongEnergyTransferMode") is R.FAILED  # ISO-2's name
    assert SPEC.response_code("FAILED_EVSEPresentVoltageToLow") is R.FAILED_EVSEPresentVoltageToLow
