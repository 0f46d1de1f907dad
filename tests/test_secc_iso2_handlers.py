"""ISO 15118-2 SECC handlers called directly: `handle_x(request, ctx, data) -> Outcome`.

No session, no encoding: each test builds the Context and SessionData it needs and checks
the response, the next state, the new session data, the commands, or the typed error (and
the wire code the dispatcher will answer with).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from secc_helpers import T0, status
from test_secc_iso2_support import (
    AC,
    EVCCID,
    SID,
    ac_cpd,
    accepted,
    cable_check,
    contract_chain,
    ctx,
    current_demand,
    data,
    dc_cpd,
    der,
    emaid_of,
    metering_receipt,
    payment_details,
    pki_for,
    power_delivery,
    pre_charge,
    refused,
    selection,
    session_stop,
    signed_authorization,
    signed_receipt,
    trust,
)

from exi_schemas import iso2
from pki import errors as pki_errors
from pki.profiles import Role, Standard
from secc import errors
from secc.context import Context, ContractInfo, PaymentOption, ResumeState, SeccConfig
from secc.events import (
    Authorize,
    CertificateKind,
    CertificateResult,
    RequestCertificate,
    SetContactors,
    SetTarget,
    StartCableCheck,
    StopOutput,
)
from secc.evse import ControlPilotState, EnergyMode, IsolationStatus, PowerLimit
from secc.iso2 import convert
from secc.iso2.state import State
from secc.iso2.states.certificates import (
    handle_certificate_installation,
    handle_certificate_update,
)
from secc.iso2.states.charge_parameters import handle_charge_parameter_discovery
from secc.iso2.states.charging import (
    handle_charging_status,
    handle_current_demand,
    handle_metering_receipt,
)
from secc.iso2.states.dc import handle_cable_check, handle_pre_charge, handle_welding_detection
from secc.iso2.states.discovery import (
    handle_payment_service_selection,
    handle_service_detail,
    handle_service_discovery,
)
from secc.iso2.states.payment import handle_authorization, handle_payment_details
from secc.iso2.states.power_delivery import handle_power_delivery
from secc.iso2.states.session_setup import handle_session_setup
from secc.iso2.states.session_stop import handle_session_stop
from secc.minimal import minimal
from secc.records import IdentificationKind, MeterReading, StopReason

R = iso2.responseCodeType
P = iso2.EVSEProcessingType
N = iso2.EVSENotificationType
CP = iso2.chargeProgressType
ET = iso2.EnergyTransferModeType


def code_of(exc: pytest.ExceptionInfo[Any]) -> str:
    """The code the dispatcher answers a handler's error with."""
    value = exc.value
    if isinstance(value, pki_errors.PkiError):
        return value.response_code_for(Standard.ISO2)
    assert isinstance(value, errors.V2GError)
    return value.wire_code


# --- SessionSetup -----------------------------------------------------------------------------


def test_session_setup_new_session() -> None:
    out = handle_session_setup(
        iso2.SessionSetupReqType(EVCCID=EVCCID), ctx(header_session_id=bytes(1)), data()
    )
    assert out.response.ResponseCode == R.OK_NewSessionEstablished
    assert out.response.EVSEID == "DE*ABC*E0000001*1"
    assert out.response.EVSETimeStamp == int(T0.timestamp())
    assert out.next_state is State.WAIT_SERVICE_DISCOVERY
    assert out.data is not None
    assert out.data.session_id == (1).to_bytes(8, "big")  # from the injected random source
    assert out.data.evcc_id == EVCCID
    assert not out.data.resumed


def test_session_setup_never_issues_the_zero_session_id() -> None:
    values = iter([bytes(8), b"\x00" * 7 + b"\x07"])
    c = ctx(random=lambda n: next(values), header_session_id=bytes(1))
    out = handle_session_setup(iso2.SessionSetupReqType(EVCCID=EVCCID), c, data())
    assert out.data is not None and out.data.session_id == b"\x00" * 7 + b"\x07"


def test_session_setup_unknown_session_id_gets_a_new_one() -> None:
    c = ctx(header_session_id=b"\x99" * 8)
    out = handle_session_setup(iso2.SessionSetupReqType(EVCCID=EVCCID), c, data())
    assert out.response.ResponseCode == R.OK_NewSessionEstablished
    assert out.data is not None and out.data.session_id != b"\x99" * 8


def test_session_setup_joins_a_paused_session() -> None:
    meter = MeterReading(meter_id="M1", energy_wh=500, at=T0)
    contract = ContractInfo(emaid="DEXYZC123456787", leaf_der=b"x", sub_ca_der=(), public_key=None)
    old = data(
        payment=PaymentOption.CONTRACT,
        contract=contract,
        meter_start=meter,
        charging=True,
        cable_check_started=True,
        gen_challenge=b"c" * 16,
        authorization_requested=True,
    )
    c = ctx(header_session_id=SID, resumable={SID: ResumeState(data=old, state=State.CHARGING)})
    out = handle_session_setup(
        iso2.SessionSetupReqType(EVCCID=EVCCID), c, data(session_id=b"", tls=True)
    )
    assert out.response.ResponseCode == R.OK_OldSessionJoined
    new = out.data
    assert new is not None
    assert (new.session_id, new.contract, new.meter_start) == (SID, contract, meter)
    assert new.resumed and new.tls
    assert not (new.charging or new.cable_check_started or new.authorization_requested)
    assert new.gen_challenge is None


# --- ServiceDiscovery, ServiceDetail, PaymentServiceSelection ---------------------------------


def test_service_discovery_over_tls_offers_contract_and_the_certificate_service() -> None:
    out = handle_service_discovery(iso2.ServiceDiscoveryReqType(), ctx(), data(tls=True))
    res = out.response
    assert res.PaymentOptionList.PaymentOption == [
        iso2.paymentOptionType.Contract,
        iso2.paymentOptionType.ExternalPayment,
    ]
    assert res.ChargeService.ServiceID == 1
    assert res.ChargeService.SupportedEnergyTransferMode.EnergyTransferMode == [
        ET.DC_extended,
        ET.AC_three_phase_core,
    ]
    assert [s.ServiceID for s in res.ServiceList.Service] == [2]
    assert out.next_state is State.WAIT_PAYMENT_SERVICE_SELECTION


def test_service_discovery_over_tcp_offers_no_contract() -> None:
    res = handle_service_discovery(iso2.ServiceDiscoveryReqType(), ctx(), data()).response
    assert res.PaymentOptionList.PaymentOption == [iso2.paymentOptionType.ExternalPayment]
    assert res.ServiceList is None


def test_service_discovery_without_the_certificate_service() -> None:
    c = ctx(config=SeccConfig(certificate_service=False))
    res = handle_service_discovery(iso2.ServiceDiscoveryReqType(), c, data(tls=True)).response
    assert iso2.paymentOptionType.Contract in res.PaymentOptionList.PaymentOption
    assert res.ServiceList is None


def test_service_detail_of_the_certificate_service() -> None:
    out = handle_service_detail(iso2.ServiceDetailReqType(ServiceID=2), ctx(), data(tls=True))
    assert out.response.ResponseCode == R.OK
    assert out.next_state is None  # ServiceDetailReq may repeat
    sets = out.response.ServiceParameterList.ParameterSet
    assert [(s.ParameterSetID, s.Parameter[0].stringValue) for s in sets] == [
        (1, "Installation"),
        (2, "Update"),
    ]


@pytest.mark.parametrize(("service_id", "tls"), [(1, True), (99, True), (2, False)])
def test_service_detail_unknown_service(service_id: int, tls: bool) -> None:
    with pytest.raises(errors.ServiceIdError) as exc:
        handle_service_detail(iso2.ServiceDetailReqType(ServiceID=service_id), ctx(), data(tls=tls))
    assert code_of(exc) == "FAILED_ServiceIDInvalid"


def test_payment_selection_external_payment() -> None:
    out = handle_payment_service_selection(selection(), ctx(), data())
    assert out.response.ResponseCode == R.OK
    assert out.next_state is State.WAIT_AUTHORIZATION
    assert out.data is not None
    assert (out.data.payment, out.data.services) == (PaymentOption.EXTERNAL_PAYMENT, (1,))


def test_payment_selection_contract_over_tls() -> None:
    out = handle_payment_service_selection(
        selection(PaymentOption.CONTRACT, (1, 2)), ctx(), data(tls=True)
    )
    assert out.next_state is State.WAIT_PAYMENT_DETAILS
    assert out.data is not None and out.data.services == (1, 2)


def test_payment_selection_contract_over_plain_tcp_is_refused() -> None:
    with pytest.raises(errors.PaymentSelectionError) as exc:
        handle_payment_service_selection(selection(PaymentOption.CONTRACT), ctx(), data())
    assert code_of(exc) == "FAILED_PaymentSelectionInvalid"


def test_payment_selection_contract_over_tcp_when_tls_is_not_required() -> None:
    c = ctx(config=SeccConfig(pnc_requires_tls=False))
    out = handle_payment_service_selection(selection(PaymentOption.CONTRACT), c, data())
    assert out.next_state is State.WAIT_PAYMENT_DETAILS


def test_payment_selection_option_not_configured() -> None:
    c = ctx(config=SeccConfig(payment_options=(PaymentOption.CONTRACT,)))
    with pytest.raises(errors.PaymentSelectionError):
        handle_payment_service_selection(selection(), c, data(tls=True))


def test_payment_selection_without_the_charge_service() -> None:
    with pytest.raises(errors.NoChargeServiceError) as exc:
        handle_payment_service_selection(selection(services=(2,)), ctx(), data(tls=True))
    assert code_of(exc) == "FAILED_NoChargeServiceSelected"


@pytest.mark.parametrize(("services", "tls"), [((1, 99), True), ((1, 2), False)])
def test_payment_selection_of_a_service_not_offered(services: tuple[int, ...], tls: bool) -> None:
    with pytest.raises(errors.ServiceSelectionError) as exc:
        handle_payment_service_selection(selection(services=services), ctx(), data(tls=tls))
    assert code_of(exc) == "FAILED_ServiceSelectionInvalid"


# --- Authorization (EIM) ----------------------------------------------------------------------

EIM = {"payment": PaymentOption.EXTERNAL_PAYMENT}


def test_eim_authorization_asks_the_backend_once_and_answers_ongoing() -> None:
    out = handle_authorization(iso2.AuthorizationReqType(), ctx(), data(**EIM))
    assert out.response.EVSEProcessing == P.Ongoing
    assert out.next_state is None
    (command,) = out.commands
    assert isinstance(command, Authorize)
    assert command.request.kind is IdentificationKind.EXTERNAL
    assert command.request.session_id == SID.hex().upper()
    assert out.data is not None and out.data.authorization_requested
    again = handle_authorization(iso2.AuthorizationReqType(), ctx(), out.data)
    assert again.response.EVSEProcessing == P.Ongoing
    assert again.commands == ()


def test_eim_authorization_finished_when_accepted() -> None:
    d = data(authorization_requested=True, **EIM)
    out = handle_authorization(iso2.AuthorizationReqType(), ctx(authorization=accepted()), d)
    assert out.response.EVSEProcessing == P.Finished
    assert out.next_state is State.WAIT_CHARGE_PARAMETER_DISCOVERY
    assert out.data is not None and out.data.authorization == accepted().decision


def test_eim_authorization_refused() -> None:
    d = data(authorization_requested=True, **EIM)
    with pytest.raises(errors.ContractError) as exc:
        handle_authorization(iso2.AuthorizationReqType(), ctx(authorization=refused()), d)
    assert code_of(exc) == "FAILED"
    assert exc.value.stop_reason is StopReason.AUTHORIZATION_REJECTED


def test_authorization_of_a_resumed_session_is_finished_at_once() -> None:
    d = data(authorization=accepted().decision, **EIM)
    out = handle_authorization(iso2.AuthorizationReqType(), ctx(), d)
    assert out.response.EVSEProcessing == P.Finished
    assert out.commands == ()


# --- PaymentDetails and Authorization (Plug & Charge) -----------------------------------------


def pnc_ctx(**changes: Any) -> Any:
    return ctx(config=SeccConfig(contract_trust=trust()), **changes)


def pnc_data() -> Any:
    """Session data after a successful PaymentDetails (GenChallenge 0..01)."""
    d = data(tls=True, payment=PaymentOption.CONTRACT)
    out = handle_payment_details(payment_details(pki_for()), pnc_ctx(), d)
    assert out.data is not None
    return out.data


def test_payment_details_valid_chain() -> None:
    d = data(tls=True, payment=PaymentOption.CONTRACT)
    out = handle_payment_details(payment_details(pki_for()), pnc_ctx(), d)
    assert out.response.ResponseCode == R.OK
    assert out.response.GenChallenge == (1).to_bytes(16, "big")
    assert out.response.EVSETimeStamp == int(T0.timestamp())
    assert out.next_state is State.WAIT_AUTHORIZATION
    assert out.data is not None and out.data.contract is not None
    assert out.data.contract.emaid == emaid_of(pki_for())
    assert out.data.contract.leaf_der == der(pki_for()[Role.CONTRACT].certificate)
    assert out.data.gen_challenge == out.response.GenChallenge


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("expired", pki_errors.CertificateExpiredError, "FAILED_CertificateExpired"),
        ("foreign", pki_errors.ChainError, "FAILED_CertChainError"),
    ],
)
def test_payment_details_bad_chain(kind: str, error: type[Exception], code: str) -> None:
    req = payment_details(pki_for(kind))
    with pytest.raises(error) as exc:
        handle_payment_details(req, pnc_ctx(), data(tls=True))
    assert code_of(exc) == code


def test_payment_details_without_trust_anchors() -> None:
    with pytest.raises(pki_errors.NoCertificateAvailableError) as exc:
        handle_payment_details(payment_details(pki_for()), ctx(), data(tls=True))
    assert code_of(exc) == "FAILED_NoCertificateAvailable"


def test_payment_details_emaid_mismatch() -> None:
    req = payment_details(pki_for(), emaid="DEXYZC99999999")
    with pytest.raises(pki_errors.EmaidMismatchError) as exc:
        handle_payment_details(req, pnc_ctx(), data(tls=True))
    assert code_of(exc) == "FAILED_CertChainError"


def test_payment_details_undecodable_certificate() -> None:
    chain = dataclasses.replace(contract_chain(pki_for()), Certificate=b"\x30\x03abc")
    req = iso2.PaymentDetailsReqType(eMAID=emaid_of(pki_for()), ContractSignatureCertChain=chain)
    with pytest.raises(errors.CertificateError) as exc:
        handle_payment_details(req, pnc_ctx(), data(tls=True))
    assert code_of(exc) == "FAILED_CertChainError"


def test_pnc_authorization_with_a_valid_signature() -> None:
    d = pnc_data()
    req, signature = signed_authorization(d.gen_challenge)
    out = handle_authorization(req, pnc_ctx(header_signature=signature), d)
    assert out.response.EVSEProcessing == P.Ongoing
    (command,) = out.commands
    assert isinstance(command, Authorize)
    assert command.request.kind is IdentificationKind.CONTRACT
    assert command.request.contract_id == emaid_of(pki_for())
    assert command.request.contract_certificate == d.contract.leaf_der


def test_pnc_authorization_wrong_challenge() -> None:
    req, signature = signed_authorization(b"\x55" * 16)
    with pytest.raises(errors.ChallengeError) as exc:
        handle_authorization(req, pnc_ctx(header_signature=signature), pnc_data())
    assert code_of(exc) == "FAILED_ChallengeInvalid"


def test_pnc_authorization_unsigned() -> None:
    d = pnc_data()
    req, _ = signed_authorization(d.gen_challenge)
    with pytest.raises(errors.SignatureInvalidError) as exc:
        handle_authorization(req, pnc_ctx(), d)
    assert code_of(exc) == "FAILED_SignatureError"


def test_pnc_authorization_signed_by_another_key() -> None:
    d = pnc_data()
    req, signature = signed_authorization(d.gen_challenge, pki_for("foreign"))
    with pytest.raises(errors.SignatureInvalidError) as exc:
        handle_authorization(req, pnc_ctx(header_signature=signature), d)
    assert code_of(exc) == "FAILED_SignatureError"


def test_pnc_authorization_without_payment_details() -> None:
    d = data(tls=True, payment=PaymentOption.CONTRACT)
    req, signature = signed_authorization(b"\x01" * 16)
    with pytest.raises(errors.V2GError) as exc:
        handle_authorization(req, pnc_ctx(header_signature=signature), d)
    assert code_of(exc) == "FAILED"


def test_resumed_pnc_authorization_with_a_new_challenge_checks_the_signature() -> None:
    d = dataclasses.replace(pnc_data(), authorization=accepted().decision)
    req, signature = signed_authorization(b"\x55" * 16)
    with pytest.raises(errors.ChallengeError):
        handle_authorization(req, pnc_ctx(header_signature=signature), d)
    req, signature = signed_authorization(d.gen_challenge)
    out = handle_authorization(req, pnc_ctx(header_signature=signature), d)
    assert out.response.EVSEProcessing == P.Finished


# --- ChargeParameterDiscovery -----------------------------------------------------------------


def test_charge_parameters_ac() -> None:
    out = handle_charge_parameter_discovery(ac_cpd(), ctx(), data())
    res = out.response
    assert (res.ResponseCode, res.EVSEProcessing) == (R.OK, P.Finished)
    # 200 A per phase, but 100 kW on three phases at 230 V allows only 144.93 A
    assert res.AC_EVSEChargeParameter.EVSEMaxCurrent == convert.amps(100_000 / 690)
    assert res.DC_EVSEChargeParameter is None
    # 32 A on each of three phases at the EVSE's 230 V (not EVMaxVoltage 400 V x 32 A)
    assert out.data is not None and out.data.ev_max_power == 230 * 32 * 3
    assert out.data.energy_request == 20_000
    (tup,) = res.SAScheduleList.SAScheduleTuple
    assert tup.SAScheduleTupleID == 1
    (entry,) = tup.PMaxSchedule.PMaxScheduleEntry
    assert convert.value(entry.PMax) == 100_000
    assert (entry.RelativeTimeInterval.start, entry.RelativeTimeInterval.duration) == (0, 86400)
    assert out.next_state is State.WAIT_POWER_DELIVERY
    d = out.data
    assert d is not None
    assert (d.energy_mode, d.ev_max_voltage, d.ev_max_current) == (
        EnergyMode.AC_THREE_PHASE_CORE,
        400,
        32,
    )
    assert d.sa_schedule_tuple_id == 1


def test_charge_parameters_dc() -> None:
    out = handle_charge_parameter_discovery(dc_cpd(), ctx(), data())
    param = out.response.DC_EVSEChargeParameter
    assert convert.value(param.EVSEMaximumVoltageLimit) == 500
    assert convert.value(param.EVSEMinimumVoltageLimit) == 150
    assert out.response.AC_EVSEChargeParameter is None
    assert out.next_state is State.WAIT_CABLE_CHECK
    assert out.data is not None and out.data.ev_max_power == 50_000


def test_charge_parameters_schedule_follows_the_evse_and_max_entries() -> None:
    schedule = (PowerLimit(start=0, max_power=50_000), PowerLimit(start=3600, max_power=11_000))
    c = ctx(status=status(schedule=schedule))
    entries = handle_charge_parameter_discovery(dc_cpd(), c, data()).response.SAScheduleList
    pmax = entries.SAScheduleTuple[0].PMaxSchedule.PMaxScheduleEntry
    assert [(e.RelativeTimeInterval.start, convert.value(e.PMax)) for e in pmax] == [
        (0, 50_000),
        (3600, 11_000),
    ]
    assert pmax[-1].RelativeTimeInterval.duration == 86400 - 3600


def test_charge_parameters_capped_schedule_never_offers_more_than_allowed() -> None:
    """MaxEntriesSAScheduleTuple=2 of three steps: the second entry runs to the end with
    the lowest of the powers it stands for (the site allows 11 kW after two hours)."""
    schedule = (
        PowerLimit(start=7200, max_power=11_000),  # out of order on purpose
        PowerLimit(start=0, max_power=50_000),
        PowerLimit(start=3600, max_power=22_000),
    )
    c = ctx(status=status(schedule=schedule))
    res = handle_charge_parameter_discovery(ac_cpd(max_entries=2), c, data()).response
    pmax = res.SAScheduleList.SAScheduleTuple[0].PMaxSchedule.PMaxScheduleEntry
    assert [(e.RelativeTimeInterval.start, convert.value(e.PMax)) for e in pmax] == [
        (0, 50_000),
        (3600, 11_000),
    ]
    assert pmax[-1].RelativeTimeInterval.duration == 86400 - 3600
    single = handle_charge_parameter_discovery(ac_cpd(max_entries=1), c, data()).response
    (only,) = single.SAScheduleList.SAScheduleTuple[0].PMaxSchedule.PMaxScheduleEntry
    assert convert.value(only.PMax) == 11_000
    assert only.RelativeTimeInterval.duration == 86400


def test_charge_parameters_wrong_energy_mode() -> None:
    with pytest.raises(errors.EnergyModeError) as exc:
        handle_charge_parameter_discovery(dc_cpd(), ctx(modes=AC), data())
    assert code_of(exc) == "FAILED_WrongEnergyTransferMode"


def test_charge_parameters_dc_without_dc_parameters() -> None:
    with pytest.raises(errors.WrongChargeParameterError) as exc:
        handle_charge_parameter_discovery(dc_cpd(with_parameter=False), ctx(), data())
    assert code_of(exc) == "FAILED_WrongChargeParameter"


def test_charge_parameters_ac_without_ac_parameters() -> None:
    req = dataclasses.replace(ac_cpd(), AC_EVChargeParameter=None)
    with pytest.raises(errors.WrongChargeParameterError):
        handle_charge_parameter_discovery(req, ctx(), data())


def test_charge_parameters_ev_max_voltage_below_evse_minimum() -> None:
    with pytest.raises(errors.WrongChargeParameterError) as exc:
        handle_charge_parameter_discovery(dc_cpd(max_voltage=100), ctx(), data())
    assert code_of(exc) == "FAILED_WrongChargeParameter"


def test_charge_parameters_in_a_renegotiation_skip_the_cable_check() -> None:
    d = data(energy_mode=EnergyMode.DC_EXTENDED, renegotiating=True, charging=True)
    out = handle_charge_parameter_discovery(dc_cpd(), ctx(), d)
    assert out.next_state is State.WAIT_POWER_DELIVERY


def test_charge_parameters_renegotiation_may_not_change_the_mode() -> None:
    d = data(energy_mode=EnergyMode.DC_EXTENDED, renegotiating=True, charging=True)
    with pytest.raises(errors.EnergyModeError):
        handle_charge_parameter_discovery(ac_cpd(), ctx(), d)


# --- CableCheck, PreCharge, WeldingDetection --------------------------------------------------

DC_DATA = {"energy_mode": EnergyMode.DC_EXTENDED, "sa_schedule_tuple_id": 1}


def test_cable_check_in_cp_state_b_fails() -> None:
    with pytest.raises(errors.V2GError) as exc:
        handle_cable_check(cable_check(), ctx(), data(**DC_DATA))
    assert code_of(exc) == "FAILED"


def test_cable_check_starts_once_and_answers_ongoing() -> None:
    c = ctx(status=status(cp_state=ControlPilotState.C))
    out = handle_cable_check(cable_check(), c, data(**DC_DATA))
    assert out.response.EVSEProcessing == P.Ongoing
    assert out.commands == (StartCableCheck(),)
    assert out.data is not None and out.data.cable_check_started
    again = handle_cable_check(cable_check(), c, out.data)
    assert (again.response.EVSEProcessing, again.commands) == (P.Ongoing, ())


def test_cable_check_gives_up_after_the_secc_limit() -> None:
    """No isolation result within Timing.cable_check_timeout (38 s, below the car's 40 s)."""
    from secc.iso2.timing import TIMING

    c = ctx(status=status(cp_state=ControlPilotState.C))
    out = handle_cable_check(cable_check(), c, data(**DC_DATA))
    assert out.data is not None
    waiting = handle_cable_check(
        cable_check(), ctx(status=c.status, now=TIMING.cable_check_timeout), out.data
    )
    assert waiting.response.EVSEProcessing == P.Ongoing
    with pytest.raises(errors.V2GError) as exc:
        late = ctx(status=c.status, now=TIMING.cable_check_timeout + 0.1)
        handle_cable_check(cable_check(), late, out.data)
    assert code_of(exc) == "FAILED"


@pytest.mark.parametrize(
    "isolation", [IsolationStatus.VALID, IsolationStatus.WARNING, IsolationStatus.NO_IMD]
)
def test_cable_check_finished(isolation: IsolationStatus) -> None:
    c = ctx(status=status(cp_state=ControlPilotState.D, isolation=isolation))
    out = handle_cable_check(cable_check(), c, data(cable_check_started=True, **DC_DATA))
    assert out.response.EVSEProcessing == P.Finished
    assert out.next_state is State.WAIT_PRE_CHARGE


@pytest.mark.parametrize("isolation", [IsolationStatus.FAULT, IsolationStatus.INVALID])
def test_cable_check_isolation_fault(isolation: IsolationStatus) -> None:
    c = ctx(status=status(cp_state=ControlPilotState.C, isolation=isolation))
    with pytest.raises(errors.V2GError) as exc:
        handle_cable_check(cable_check(), c, data(cable_check_started=True, **DC_DATA))
    assert code_of(exc) == "FAILED"


def test_pre_charge_sets_a_limited_target_once() -> None:
    c = ctx(status=status(present_voltage=200))
    out = handle_pre_charge(pre_charge(380, 500), c, data(**DC_DATA))
    assert out.commands == (SetTarget(380, 200, pre_charge=True),)
    assert out.response.EVSEPresentVoltage == convert.volts(200)
    assert out.data is not None
    assert handle_pre_charge(pre_charge(380, 500), c, out.data).commands == ()


def test_pre_charge_above_the_evse_maximum() -> None:
    with pytest.raises(errors.V2GError):
        handle_pre_charge(pre_charge(600), ctx(), data(**DC_DATA))


def test_welding_detection() -> None:
    c = ctx(status=status(present_voltage=12))
    out = handle_welding_detection(
        iso2.WeldingDetectionReqType(DC_EVStatus=pre_charge().DC_EVStatus), c, data(**DC_DATA)
    )
    assert out.response.ResponseCode == R.OK
    assert convert.value(out.response.EVSEPresentVoltage) == 12


# --- PowerDelivery ----------------------------------------------------------------------------

AC_DATA = {
    "energy_mode": EnergyMode.AC_THREE_PHASE_CORE,
    "sa_schedule_tuple_id": 1,
    "ev_max_current": 32.0,
}


def ready() -> Context:
    return ctx(status=status(cp_state=ControlPilotState.C))


def test_power_delivery_start_ac() -> None:
    out = handle_power_delivery(power_delivery(), ready(), data(**AC_DATA))
    assert out.response.ResponseCode == R.OK
    assert out.response.AC_EVSEStatus is not None
    assert out.next_state is State.CHARGING
    assert out.commands == (SetTarget(230, 32), SetContactors(True))
    assert out.data is not None and out.data.charging
    assert out.data.meter_start == status().meter


def test_power_delivery_start_dc_closes_the_contactors_only() -> None:
    out = handle_power_delivery(power_delivery(), ready(), data(**DC_DATA))
    assert out.commands == (SetContactors(True),)
    assert out.response.DC_EVSEStatus is not None


def test_power_delivery_start_with_a_tuple_not_offered() -> None:
    with pytest.raises(errors.TariffSelectionError) as exc:
        handle_power_delivery(power_delivery(tuple_id=2), ready(), data(**AC_DATA))
    assert code_of(exc) == "FAILED_TariffSelectionInvalid"


def test_power_delivery_start_dc_in_cp_state_b() -> None:
    with pytest.raises(errors.PowerDeliveryError) as exc:
        handle_power_delivery(power_delivery(), ctx(), data(**DC_DATA))
    assert code_of(exc) == "FAILED_PowerDeliveryNotApplied"


def test_power_delivery_start_ac_in_cp_state_b() -> None:
    """AC: the car switches to state C after PowerDeliveryRes (the EVSE closes on C)."""
    out = handle_power_delivery(power_delivery(), ctx(), data(**AC_DATA))
    assert out.next_state is State.CHARGING


def test_power_delivery_start_while_the_evse_stops() -> None:
    c = ctx(status=status(cp_state=ControlPilotState.C, stop=StopReason.EVSE_STOPPED))
    with pytest.raises(errors.PowerDeliveryError):
        handle_power_delivery(power_delivery(), c, data(**AC_DATA))


def test_power_delivery_profile_within_the_schedule() -> None:
    schedule = (PowerLimit(start=0, max_power=22_000), PowerLimit(start=3600, max_power=11_000))
    c = ctx(status=status(cp_state=ControlPilotState.C, schedule=schedule))
    req = power_delivery(profile=[(0, 22_000), (3600, 11_000)])
    assert handle_power_delivery(req, c, data(**AC_DATA)).response.ResponseCode == R.OK


@pytest.mark.parametrize(
    "profile",
    [
        [(0, 22_000), (3600, 22_000)],  # above PMax after the step
        [(0, 100_500)],  # above the EVSE's maximum
        [(3600, 11_000), (0, 11_000)],  # not in time order
    ],
)
def test_power_delivery_invalid_charging_profile(profile: list[tuple[int, float]]) -> None:
    schedule = (PowerLimit(start=0, max_power=22_000), PowerLimit(start=3600, max_power=11_000))
    c = ctx(status=status(cp_state=ControlPilotState.C, schedule=schedule))
    if profile == [(0, 100_500)]:
        c = ready()
    with pytest.raises(errors.ChargingProfileError) as exc:
        handle_power_delivery(power_delivery(profile=profile), c, data(**AC_DATA))
    assert code_of(exc) == "FAILED_ChargingProfileInvalid"


def test_power_delivery_renegotiate() -> None:
    out = handle_power_delivery(
        power_delivery(CP.Renegotiate), ready(), data(charging=True, **AC_DATA)
    )
    assert out.next_state is State.WAIT_CHARGE_PARAMETER_DISCOVERY
    assert out.data is not None and out.data.renegotiating and out.data.charging
    assert out.commands == ()


def test_power_delivery_renegotiate_while_not_charging() -> None:
    with pytest.raises(errors.V2GError) as raised:
        handle_power_delivery(power_delivery(CP.Renegotiate), ready(), data(**AC_DATA))
    assert raised.value.wire_code == "FAILED"


def test_power_delivery_start_after_renegotiation_keeps_the_contactors() -> None:
    d = data(charging=True, renegotiating=True, **AC_DATA)
    out = handle_power_delivery(power_delivery(), ready(), d)
    assert out.commands == (SetTarget(230, 32),)
    assert out.data is not None and not out.data.renegotiating


def test_power_delivery_start_after_a_renegotiation_the_operator_stopped() -> None:
    """Power still flows: the car is told StopCharging (not FAILED) and stops as asked."""
    c = ctx(status=status(cp_state=ControlPilotState.C, stop=StopReason.EVSE_STOPPED))
    d = data(charging=True, renegotiating=True, **AC_DATA)
    out = handle_power_delivery(power_delivery(), c, d)
    assert out.response.ResponseCode == R.OK
    assert out.response.AC_EVSEStatus.EVSENotification == N.StopCharging
    assert out.next_state is State.CHARGING and out.commands == ()
    assert out.data is not None and out.data.charging and not out.data.renegotiating
    # an emergency stop is no request: PowerDeliveryNotApplied as before
    c = ctx(status=status(cp_state=ControlPilotState.C, emergency_shutdown=True))
    with pytest.raises(errors.PowerDeliveryError):
        handle_power_delivery(power_delivery(), c, d)


def test_power_delivery_stop() -> None:
    out = handle_power_delivery(power_delivery(CP.Stop), ctx(), data(charging=True, **AC_DATA))
    assert out.next_state is State.WAIT_SESSION_STOP
    assert out.commands == (StopOutput(), SetContactors(False))
    assert out.data is not None and not out.data.charging


# --- the charge loop --------------------------------------------------------------------------


def test_charging_status() -> None:
    out = handle_charging_status(iso2.ChargingStatusReqType(), ctx(), data(**AC_DATA))
    res = out.response
    assert (res.EVSEID, res.SAScheduleTupleID) == ("DE*ABC*E0000001*1", 1)
    assert res.MeterInfo.MeterReading == 1000
    assert res.ReceiptRequired is False
    assert res.AC_EVSEStatus.EVSENotification == N.None_


def test_charging_status_stop_charging_notification() -> None:
    c = ctx(status=status(stop=StopReason.EVSE_STOPPED))
    out = handle_charging_status(iso2.ChargingStatusReqType(), c, data(**AC_DATA))
    assert out.response.AC_EVSEStatus.EVSENotification == N.StopCharging
    assert out.data is not None and out.data.stop_reason is StopReason.EVSE_STOPPED


def test_charging_status_renegotiation_notification() -> None:
    c = ctx(renegotiation_requested=True)
    out = handle_charging_status(iso2.ChargingStatusReqType(), c, data(charging=True, **AC_DATA))
    assert out.response.AC_EVSEStatus.EVSENotification == N.ReNegotiation


def test_charging_status_asks_a_pnc_car_for_one_receipt() -> None:
    d = data(payment=PaymentOption.CONTRACT, charging=True, **AC_DATA)
    out = handle_charging_status(iso2.ChargingStatusReqType(), ctx(), d)
    assert out.response.ReceiptRequired is True
    assert out.data is not None and out.data.receipt_pending == status().meter
    again = handle_charging_status(iso2.ChargingStatusReqType(), ctx(), out.data)
    assert again.response.ReceiptRequired is False


def test_current_demand_limits_the_target() -> None:
    c = ctx(status=status(present_voltage=400, present_current=100))
    out = handle_current_demand(current_demand(400, 300), c, data(**DC_DATA))
    res = out.response
    assert out.commands == (SetTarget(400, 200),)  # EVSE max current
    assert res.EVSECurrentLimitAchieved is True
    assert res.EVSEPowerLimitAchieved is True
    assert res.EVSEVoltageLimitAchieved is False
    assert res.DC_EVSEStatus.EVSEStatusCode == iso2.DC_EVSEStatusCodeType.EVSE_Ready
    assert out.data is not None
    assert handle_current_demand(current_demand(400, 300), c, out.data).commands == ()


def test_current_demand_power_limit() -> None:
    out = handle_current_demand(current_demand(500, 200), ctx(), data(**DC_DATA))
    assert out.commands == (SetTarget(500, 200),)
    limited = dataclasses.replace(status().limits, max_power=50_000)
    c = ctx(status=status(limits=limited))
    out = handle_current_demand(current_demand(400, 200), c, data(**DC_DATA))
    assert out.commands == (SetTarget(400, 125),)


def test_current_demand_stop_notification() -> None:
    c = ctx(status=status(stop=StopReason.EVSE_STOPPED))
    res = handle_current_demand(current_demand(), c, data(**DC_DATA)).response
    assert res.DC_EVSEStatus.EVSENotification == N.StopCharging
    assert res.DC_EVSEStatus.EVSEStatusCode == iso2.DC_EVSEStatusCodeType.EVSE_Shutdown


def test_current_demand_above_the_evse_maximum_voltage() -> None:
    with pytest.raises(errors.V2GError):
        handle_current_demand(current_demand(600), ctx(), data(**DC_DATA))


def test_metering_receipt_eim_is_kept_unsigned() -> None:
    c = ctx(raw=b"exi")
    out = handle_metering_receipt(metering_receipt(SID), c, data(**AC_DATA))
    assert out.response.ResponseCode == R.OK
    assert out.response.AC_EVSEStatus is not None
    assert out.data is not None
    (receipt,) = out.data.receipts
    assert (receipt.exi, receipt.signature_valid, receipt.reading.energy_wh) == (
        b"exi",
        False,
        1000,
    )


def test_metering_receipt_for_another_session() -> None:
    with pytest.raises(errors.V2GError):
        handle_metering_receipt(metering_receipt(b"\x01" * 8), ctx(), data(**AC_DATA))


def test_metering_receipt_signed_by_the_contract_key() -> None:
    d = dataclasses.replace(pnc_data(), **AC_DATA)
    req, signature = signed_receipt(SID)
    out = handle_metering_receipt(req, ctx(header_signature=signature), d)
    assert out.data is not None and out.data.receipts[0].signature_valid


@pytest.mark.parametrize("problem", ["unsigned", "foreign key", "other reading"])
def test_metering_receipt_bad_signature(problem: str) -> None:
    d = dataclasses.replace(pnc_data(), receipt_pending=status().meter, **AC_DATA)
    if problem == "foreign key":
        req, signature = signed_receipt(SID, pki=pki_for("foreign"))
    elif problem == "other reading":
        req, signature = signed_receipt(SID, energy_wh=999)
    else:
        req, signature = signed_receipt(SID)[0], None
    with pytest.raises(errors.MeteringSignatureError) as exc:
        handle_metering_receipt(req, ctx(header_signature=signature), d)
    assert code_of(exc) == "FAILED_MeteringSignatureNotValid"


# --- SessionStop ------------------------------------------------------------------------------


def test_session_stop_terminate() -> None:
    out = handle_session_stop(session_stop(), ctx(), data())
    assert out.response.ResponseCode == R.OK
    assert out.terminate is StopReason.EV_STOPPED
    assert not out.pause
    assert out.commands == ()


def test_session_stop_keeps_the_evse_stop_reason_and_stops_the_output() -> None:
    d = data(charging=True, stop_reason=StopReason.EVSE_STOPPED)
    out = handle_session_stop(session_stop(), ctx(), d)
    assert out.terminate is StopReason.EVSE_STOPPED
    assert out.commands == (StopOutput(), SetContactors(False))


def test_session_stop_pause() -> None:
    out = handle_session_stop(session_stop(pause=True), ctx(), data(charging=True))
    assert out.pause and out.terminate is None
    assert out.data is not None and not out.data.charging


# --- certificates -----------------------------------------------------------------------------

INSTALL = iso2.CertificateInstallationReqType(
    Id="ID1",
    OEMProvisioningCert=b"oem",
    ListOfRootCertificateIDs=iso2.ListOfRootCertificateIDsType(RootCertificateID=[]),
)


def test_certificate_installation_is_held_back_for_the_backend() -> None:
    out = handle_certificate_installation(INSTALL, ctx(), data(tls=True))
    assert out.response is None
    (command,) = out.commands
    assert isinstance(command, RequestCertificate)
    assert (command.kind, command.request, command.session_id) == (
        CertificateKind.INSTALLATION,
        INSTALL,
        SID.hex().upper(),
    )
    assert out.data is not None and out.data.certificate_requested
    again = handle_certificate_installation(INSTALL, ctx(), out.data)
    assert (again.response, again.commands) == (None, ())


def test_certificate_installation_answer_from_the_backend() -> None:
    body = minimal(iso2.CertificateInstallationResType, ResponseCode=R.OK)
    result = CertificateResult(body=body, signature="sig")
    out = handle_certificate_installation(
        INSTALL, ctx(certificate=result), data(certificate_requested=True)
    )
    assert (out.response, out.signature) == (body, "sig")
    assert out.data is not None and not out.data.certificate_requested


def test_certificate_update_backend_failure_code() -> None:
    result = CertificateResult(error_code="FAILED_NoCertificateAvailable")
    req = iso2.CertificateUpdateReqType(
        Id="ID1",
        ContractSignatureCertChain=contract_chain(pki_for()),
        eMAID=emaid_of(pki_for()),
        ListOfRootCertificateIDs=INSTALL.ListOfRootCertificateIDs,
    )
    with pytest.raises(errors.BackendFailure) as exc:
        handle_certificate_update(req, ctx(certificate=result), data(certificate_requested=True))
    assert code_of(exc) == "FAILED_NoCertificateAvailable"


# --- AC and DC requests stay apart ------------------------------------------------------------


def test_charge_loop_requests_of_the_other_energy_mode_are_sequence_errors() -> None:
    with pytest.raises(errors.SequenceError) as exc:
        handle_current_demand(current_demand(), ctx(), data(**AC_DATA))
    assert code_of(exc) == "FAILED_SequenceError"
    with pytest.raises(errors.SequenceError):
        handle_charging_status(iso2.ChargingStatusReqType(), ctx(), data(**DC_DATA))
    welding = iso2.WeldingDetectionReqType(DC_EVStatus=cable_check().DC_EVStatus)
    with pytest.raises(errors.SequenceError):
        handle_welding_detection(welding, ctx(), data(**AC_DATA))
