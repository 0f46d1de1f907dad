"""ISO 15118-2 SECC conformance: the message-specific cases (payment, certificates,
signatures, charge parameters, cable check, power delivery, the charge loop, renegotiation,
pause and resume). Numbering as in `test_conformance_iso2_families`: ATS numbers where the
public ISO 15118-4 ATS has a case of that purpose, 101 and up for this project's own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kit import (
    AC_EIM,
    AC_PNC,
    DC_EIM,
    DC_EIM_DETAIL,
    DC_PNC,
    DC_PNC_INSTALL,
    Case,
    ConformancePair,
    Env,
    IsolationFaultEVSE,
    PilotMappingEVSE,
    Scenario,
    Source,
    assert_completed,
    assert_failed_and_closed,
    chain_credentials,
    emergency_shutdown,
    evse_stops,
    expect_failed,
    mutate,
    operator_stop,
    params,
    rejecting,
    renegotiate,
    response_of,
    run,
    unique,
)
from session_pair import Clock

from evcc.faults import BadSignature, CustomMutate, WrongGenChallenge
from exi_schemas import iso2
from pki.create import issue, template_for
from pki.profiles import PROFILES, Role, Standard
from pki.xmlsig import SignedMessage, sign
from secc.context import PaymentOption
from secc.events import ConnectionClosing, SessionPaused
from secc.evse import ControlPilotState
from secc.records import (
    StopReason,
)

ATS, OWN = Source.ATS, Source.OWN
CP = ControlPilotState


def resign(message: str, key: ec.EllipticCurvePrivateKey, kind: SignedMessage) -> CustomMutate:
    """Replace the header signature by one made with `key` (a key not the contract's)."""

    def apply(v2g: Any) -> None:
        element = getattr(v2g.Body, message)
        v2g.Header.Signature = sign([(element.Id, element)], key, message=kind)

    return CustomMutate(message=message, mutate=apply, after_signing=True)


def resigned(message: str, kind: SignedMessage, code: str) -> Callable[[Env], None]:
    """`message` signed with a key that is not the contract's: answered `code`, closed."""

    def check(env: Env) -> None:
        pair = run(DC_PNC, env, faults=(resign(message, foreign_key(env), kind),))
        assert_failed_and_closed(pair, message, code)

    return check


def foreign_key(env: Env) -> ec.EllipticCurvePrivateKey:
    key = env.foreign[Role.CONTRACT].key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


# --- ServiceDiscovery, PaymentServiceSelection ------------------------------------------------


def _contract_only_over_tls(env: Env) -> None:
    plain = response_of(run(DC_EIM, env), "ServiceDiscoveryReq")
    assert [str(o) for o in plain.PaymentOptionList.PaymentOption] == ["ExternalPayment"]
    assert plain.ServiceList is None
    secure = response_of(run(DC_EIM_DETAIL, env), "ServiceDiscoveryReq")
    assert sorted(str(o) for o in secure.PaymentOptionList.PaymentOption) == [
        "Contract",
        "ExternalPayment",
    ]
    assert [s.ServiceID for s in secure.ServiceList.Service] == [2]


def _energy_modes(env: Env) -> None:
    dc = response_of(run(DC_EIM, env), "ServiceDiscoveryReq")
    modes = [str(m) for m in dc.ChargeService.SupportedEnergyTransferMode.EnergyTransferMode]
    assert modes == ["DC_extended", "DC_core"]
    assert dc.ChargeService.ServiceID == 1


def _select(option: str) -> CustomMutate:
    def change(req: Any) -> None:
        req.SelectedPaymentOption = iso2.paymentOptionType(option)

    return mutate("PaymentServiceSelectionReq", change)


def _services(*ids: int) -> CustomMutate:
    def change(req: Any) -> None:
        req.SelectedServiceList = iso2.SelectedServiceListType(
            SelectedService=[iso2.SelectedServiceType(ServiceID=i) for i in ids]
        )

    return mutate("PaymentServiceSelectionReq", change)


def _contract_selected(env: Env) -> None:
    pair = run(DC_PNC, env)
    assert_completed(pair)
    request = pair.answers_to("PaymentServiceSelectionReq")[0].request
    assert str(request.SelectedPaymentOption) == "Contract"


EIM_ONLY = DC_EIM.with_(tls=True, secc={"payment_options": (PaymentOption.EXTERNAL_PAYMENT,)})
CONTRACT_ONLY = DC_PNC.with_(secc={"payment_options": (PaymentOption.CONTRACT,)})


# --- PaymentDetails ------------------------------------------------------------------------------


def _expired_chain(env: Env) -> tuple[list[Any], ec.EllipticCurvePrivateKey]:
    validity = PROFILES[Standard.ISO2][Role.CONTRACT].default_validity
    at = Clock().wall() - validity - timedelta(days=2)
    key = ec.generate_private_key(ec.SECP256R1())
    template = template_for(Standard.ISO2, Role.CONTRACT, at=at, serial=9001)
    leaf = issue(template, key, env.pki[Role.MO_SUB_CA_2], standard=Standard.ISO2)
    subs = env.pki.chain(Role.CONTRACT)[1:]
    return [leaf, *subs], key


def _certificate_expired(env: Env) -> None:
    chain, key = _expired_chain(env)
    pair = run(DC_PNC, env, credentials=chain_credentials(chain, key))
    assert_failed_and_closed(pair, "PaymentDetailsReq", "FAILED_CertificateExpired")


def _foreign_chain(env: Env) -> None:
    chain = env.foreign.chain(Role.CONTRACT)
    pair = run(DC_PNC, env, credentials=chain_credentials(chain, foreign_key(env)))
    assert_failed_and_closed(pair, "PaymentDetailsReq", "FAILED_CertChainError")


def _after_installation(request: str) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        pair = run(DC_PNC_INSTALL, env)
        assert_completed(pair)
        assert pair.answers_to(request)[-1].response_code == "OK"
        assert pair.ended is not None and pair.ended.contract_id is not None

    return check


# --- Authorization ---------------------------------------------------------------------------


def _refused(scenario: Scenario) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        pair = run(scenario, env, authorize=rejecting)
        assert_failed_and_closed(pair, "AuthorizationReq", "FAILED")
        record = pair.ended
        assert record is not None and record.stop_reason is StopReason.AUTHORIZATION_REJECTED

    return check


def _ongoing_timeout(env: Env) -> None:
    """The backend never answers: the SECC gives up V2G_SECC_Ongoing_Timeout (60 s) after
    its first Ongoing answer and closes the session."""
    pair = run(DC_EIM.with_(pair={"authorization_delay": 1e6}), env)
    first = pair.answers_to("AuthorizationReq")[0]
    first_at = next(at for at, e in pair.timeline if e is first)
    closing = pair.closing
    assert closing is not None and closing.reason is StopReason.TIMEOUT
    closed_at = pair.closed_at
    assert closed_at is not None and closed_at <= first_at + 60.0, (first_at, closed_at)


# --- ChargeParameterDiscovery ---------------------------------------------------------------


def _mode(mode: str) -> CustomMutate:
    def change(req: Any) -> None:
        req.RequestedEnergyTransferMode = iso2.EnergyTransferModeType(mode)

    return mutate("ChargeParameterDiscoveryReq", change)


def _negative_ac_current() -> CustomMutate:
    def change(req: Any) -> None:
        req.AC_EVChargeParameter.EVMaxCurrent = iso2.PhysicalValueType(
            Multiplier=0, Unit=iso2.unitSymbolType.A, Value=-100
        )

    return mutate("ChargeParameterDiscoveryReq", change)


def _renegotiated_schedule(scenario: Scenario) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        pair = run(scenario.with_(ev={"renegotiate_after_loops": 1}), env)
        assert_completed(pair)
        answers = pair.answers_to("ChargeParameterDiscoveryReq")
        assert len(answers) == 2 and answers[1].response_code == "OK"
        assert str(answers[1].response.EVSEProcessing) == "Finished"

    return check


# --- CableCheck ----------------------------------------------------------------------------------


def _cp_state_d(env: Env) -> None:
    scenario = DC_EIM.with_(evse_kind=PilotMappingEVSE, evse_options={"mapping": {CP.C: CP.D}})
    pair = run(scenario, env)
    assert_completed(pair)
    assert pair.evse.cp_state in (CP.D, CP.B)  # B again after PowerDelivery(Stop)
    assert str(response_of(pair, "CableCheckReq", -1).EVSEProcessing) == "Finished"


def _no_cp_state_c(env: Env) -> None:
    scenario = DC_EIM.with_(evse_kind=PilotMappingEVSE, evse_options={"mapping": {CP.C: CP.B}})
    pair = run(scenario, env)
    assert_failed_and_closed(pair, "CableCheckReq", "FAILED")
    assert len(pair.answers_to("CableCheckReq")) == 1


def _isolation_fault(env: Env) -> None:
    pair = run(DC_EIM.with_(evse_kind=IsolationFaultEVSE), env)
    last = assert_failed_and_closed(pair, "CableCheckReq", "FAILED")
    status = last.response.DC_EVSEStatus
    assert str(status.EVSEIsolationStatus) == "Fault"
    assert str(status.EVSEStatusCode) == "EVSE_Malfunction"


# --- PowerDelivery -------------------------------------------------------------------------------


def _profile_above_schedule() -> CustomMutate:
    def change(req: Any) -> None:
        for entry in req.ChargingProfile.ProfileEntry:
            entry.ChargingProfileEntryMaxPower = iso2.PhysicalValueType(
                Multiplier=3, Unit=iso2.unitSymbolType.W, Value=500
            )

    return mutate("PowerDeliveryReq", change)


def _tuple_id(value: int) -> CustomMutate:
    def change(req: Any) -> None:
        req.SAScheduleTupleID = value

    return mutate("PowerDeliveryReq", change)


def _renegotiate_first() -> CustomMutate:
    def change(req: Any) -> None:
        req.ChargeProgress = iso2.chargeProgressType.Renegotiate
        req.ChargingProfile = None

    return mutate("PowerDeliveryReq", change)


def _ev_renegotiation(scenario: Scenario, index: int, progress: str) -> Callable[[Env], None]:
    """EV-initiated renegotiation: PowerDelivery #index (0-based) carries `progress`."""

    def check(env: Env) -> None:
        pair = run(scenario.with_(ev={"renegotiate_after_loops": 1}), env)
        assert_completed(pair)
        answer = pair.answers_to("PowerDeliveryReq")[index]
        assert str(answer.request.ChargeProgress) == progress
        assert answer.response_code == "OK"

    return check


def _secc_renegotiation(scenario: Scenario, loop: str) -> Callable[[Env], None]:
    """The operator asks for a new schedule: the next loop response says ReNegotiation and
    the car renegotiates (PowerDelivery Renegotiate, ChargeParameterDiscovery, Start)."""

    def check(env: Env) -> None:
        pair = run(scenario, env, hooks={(loop, 1): renegotiate})
        assert_completed(pair)
        second = response_of(pair, loop, 1)
        status = second.DC_EVSEStatus if loop == "CurrentDemandReq" else second.AC_EVSEStatus
        assert str(status.EVSENotification) == "ReNegotiation"
        progress = [str(a.request.ChargeProgress) for a in pair.answers_to("PowerDeliveryReq")]
        assert progress == ["Start", "Renegotiate", "Start", "Stop"], progress
        assert len(pair.answers_to("ChargeParameterDiscoveryReq")) == 2

    return check


# --- the charge loop -------------------------------------------------------------------------


# --- MeteringReceipt --------------------------------------------------------------------------


def _wrong_meter_reading() -> CustomMutate:
    def change(req: Any) -> None:
        req.MeterInfo.MeterReading = (req.MeterInfo.MeterReading or 0) + 1

    return mutate("MeteringReceiptReq", change)


def _changed_after_signing() -> CustomMutate:
    def change(req: Any) -> None:
        req.MeterInfo.MeterStatus = (req.MeterInfo.MeterStatus or 0) + 1

    return mutate("MeteringReceiptReq", change, after_signing=True)


def _receipt_kept(scenario: Scenario) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        pair = run(scenario, env)
        assert_completed(pair)
        record = pair.ended
        assert record is not None
        (receipt,) = record.receipts
        assert receipt.signature_valid

    return check


# --- pause and resume -------------------------------------------------------------------------


def _paused(scenario: Scenario, env: Env) -> ConformancePair:
    pair = run(scenario.with_(ev={"pause_after_loops": 2}), env)
    finished = pair.outcome()
    assert finished.ok and finished.paused, finished
    return pair


def _pause(env: Env) -> None:
    pair = _paused(DC_EIM, env)
    request = pair.answers_to("SessionStopReq")[0].request
    assert str(request.ChargingSession) == "Pause"
    assert [type(e) for e in pair.secc_events if isinstance(e, SessionPaused)] == [SessionPaused]
    closing = pair.closing
    assert isinstance(closing, ConnectionClosing) and closing.reason is StopReason.EV_PAUSED
    assert pair.ended is None  # the session goes on after the pause


def _resume(scenario: Scenario, *, same_id: bool) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        first = _paused(scenario, env)
        session_id = first.outcome().session_id
        pair = run(scenario, env, resumable=first.paused, resume=session_id if same_id else None)
        assert_completed(pair)
        (setup,) = pair.answers_to("SessionSetupReq")
        if same_id:
            assert setup.response_code == "OK_OldSessionJoined"
            assert pair.outcome().session_id == session_id
        else:
            # (the injected counter random of a fresh pair may hand out the same ID again)
            assert setup.response_code == "OK_NewSessionEstablished"
            assert pair.evse.evse_id == setup.response.EVSEID
        record = pair.ended
        assert record is not None and record.stop_reason is StopReason.EV_STOPPED

    return check


def _c(
    number: str,
    title: str,
    source: Source,
    check: Callable[[Env], None],
    *,
    xfail: str | None = None,
) -> Case:
    return Case(number, title, source, check, xfail=xfail)


P = "TC_SECC_"
CASES: list[Case] = list(
    unique(
        [
            _c(
                P + "CMN_VTB_ServiceDiscovery_102",
                "Contract and the certificate service offered only over TLS",
                OWN,
                _contract_only_over_tls,
            ),
            _c(
                P + "CMN_VTB_ServiceDiscovery_103",
                "charge service 1 with the EVSE's DC modes",
                OWN,
                _energy_modes,
            ),
            _c(
                P + "CMN_VTB_PaymentServiceSelection_003",
                "Contract selected over TLS: OK",
                ATS,
                _contract_selected,
            ),
            _c(
                P + "CMN_VTB_PaymentServiceSelection_006",
                "unknown ServiceID selected: FAILED_ServiceSelectionInvalid",
                ATS,
                expect_failed(
                    DC_EIM_DETAIL,
                    "PaymentServiceSelectionReq",
                    "FAILED_ServiceSelectionInvalid",
                    faults=(_services(1, 99),),
                ),
            ),
            _c(
                P + "CMN_VTB_PaymentServiceSelection_007",
                "charge service not selected: FAILED_NoChargeServiceSelected",
                ATS,
                expect_failed(
                    DC_EIM_DETAIL,
                    "PaymentServiceSelectionReq",
                    "FAILED_NoChargeServiceSelected",
                    faults=(_services(2),),
                ),
            ),
            _c(
                P + "CMN_VTB_PaymentServiceSelection_009",
                "Contract selected, only ExternalPayment offered: FAILED_PaymentSelectionInvalid",
                ATS,
                expect_failed(
                    EIM_ONLY,
                    "PaymentServiceSelectionReq",
                    "FAILED_PaymentSelectionInvalid",
                    faults=(_select("Contract"),),
                ),
            ),
            _c(
                P + "CMN_VTB_PaymentServiceSelection_010",
                "ExternalPayment selected, only Contract offered: FAILED_PaymentSelectionInvalid",
                ATS,
                expect_failed(
                    CONTRACT_ONLY,
                    "PaymentServiceSelectionReq",
                    "FAILED_PaymentSelectionInvalid",
                    faults=(_select("ExternalPayment"),),
                ),
            ),
            _c(
                P + "CMN_VTB_PaymentServiceSelection_102",
                "Contract selected over plain TCP (PnC needs TLS): FAILED_PaymentSelectionInvalid",
                OWN,
                expect_failed(
                    DC_EIM,
                    "PaymentServiceSelectionReq",
                    "FAILED_PaymentSelectionInvalid",
                    faults=(_select("Contract"),),
                ),
            ),
            _c(
                P + "CMN_VTB_PaymentDetails_002",
                "PaymentDetails after CertificateInstallation: OK",
                ATS,
                _after_installation("PaymentDetailsReq"),
            ),
            _c(
                P + "CMN_VTB_PaymentDetails_007",
                "expired contract certificate: FAILED_CertificateExpired",
                ATS,
                _certificate_expired,
            ),
            _c(
                P + "CMN_VTB_PaymentDetails_102",
                "contract chain of a foreign MO root: FAILED_CertChainError",
                OWN,
                _foreign_chain,
            ),
            _c(
                P + "CMN_VTB_CertificateInstallation_102",
                "provisioning refuses the installation: FAILED_NoCertificateAvailable",
                OWN,
                expect_failed(
                    DC_PNC_INSTALL.with_(provisioning=False),
                    "CertificateInstallationReq",
                    "FAILED_NoCertificateAvailable",
                ),
            ),
            _c(
                P + "CMN_VTB_Authorization_007",
                "wrong GenChallenge: FAILED_ChallengeInvalid",
                ATS,
                expect_failed(
                    DC_PNC,
                    "AuthorizationReq",
                    "FAILED_ChallengeInvalid",
                    faults=(WrongGenChallenge(),),
                ),
            ),
            _c(
                P + "CMN_VTB_Authorization_010",
                "signed with a key not the contract's: FAILED_SignatureError",
                ATS,
                resigned(
                    "AuthorizationReq",
                    SignedMessage.ISO2_AUTHORIZATION_REQ,
                    "FAILED_SignatureError",
                ),
            ),
            _c(
                P + "CMN_VTB_Authorization_012",
                "PnC authorization after CertificateInstallation: OK",
                ATS,
                _after_installation("AuthorizationReq"),
            ),
            _c(
                P + "CMN_VTB_Authorization_014",
                "backend never answers: the SECC ends the session "
                "when V2G_SECC_Ongoing_Timer expires",
                ATS,
                _ongoing_timeout,
            ),
            _c(
                P + "CMN_VTB_Authorization_103",
                "SignatureValue corrupted: FAILED_SignatureError",
                OWN,
                expect_failed(
                    DC_PNC, "AuthorizationReq", "FAILED_SignatureError", faults=(BadSignature(),)
                ),
            ),
            _c(
                P + "CMN_VTB_Authorization_104",
                "EIM refused by the backend: FAILED, closed",
                OWN,
                _refused(DC_EIM),
            ),
            _c(
                P + "CMN_VTB_Authorization_105",
                "contract refused by the backend: FAILED, closed",
                OWN,
                _refused(DC_PNC),
            ),
            _c(
                P + "AC_VTB_ChargeParameterDiscovery_002",
                "ChargeParameterDiscovery in an EV-initiated renegotiation: OK",
                ATS,
                _renegotiated_schedule(AC_EIM),
            ),
            _c(
                P + "AC_VTB_ChargeParameterDiscovery_004",
                "DC_extended requested from an AC EVSE: FAILED_WrongEnergyTransferMode",
                ATS,
                expect_failed(
                    AC_EIM,
                    "ChargeParameterDiscoveryReq",
                    "FAILED_WrongEnergyTransferMode",
                    faults=(_mode("DC_extended"),),
                ),
            ),
            _c(
                P + "AC_VTB_ChargeParameterDiscovery_005",
                "EVMaxCurrent -100 A: FAILED_WrongChargeParameter",
                ATS,
                expect_failed(
                    AC_EIM,
                    "ChargeParameterDiscoveryReq",
                    "FAILED_WrongChargeParameter",
                    faults=(_negative_ac_current(),),
                ),
            ),
            _c(
                P + "DC_VTB_ChargeParameterDiscovery_002",
                "ChargeParameterDiscovery in an EV-initiated renegotiation: OK",
                OWN,
                _renegotiated_schedule(DC_EIM),
            ),
            _c(
                P + "DC_VTB_ChargeParameterDiscovery_104",
                "AC mode requested from a DC EVSE: FAILED_WrongEnergyTransferMode",
                OWN,
                expect_failed(
                    DC_EIM,
                    "ChargeParameterDiscoveryReq",
                    "FAILED_WrongEnergyTransferMode",
                    faults=(_mode("AC_three_phase_core"),),
                ),
            ),
            _c(P + "DC_VTB_CableCheck_002", "CP state D: CableCheck Finished", ATS, _cp_state_d),
            _c(P + "DC_VTB_CableCheck_008", "no CP state C/D: FAILED, closed", ATS, _no_cp_state_c),
            _c(
                P + "DC_VTB_CableCheck_102",
                "isolation fault during the cable check: FAILED "
                "(isolation Fault, EVSE_Malfunction), closed",
                OWN,
                _isolation_fault,
            ),
            _c(
                P + "AC_VTB_PowerDelivery_003",
                "EV-initiated Renegotiate: OK",
                ATS,
                _ev_renegotiation(AC_EIM, 1, "Renegotiate"),
            ),
            _c(
                P + "AC_VTB_PowerDelivery_004",
                "Start after a renegotiation: OK",
                ATS,
                _ev_renegotiation(AC_EIM, 2, "Start"),
            ),
            _c(
                P + "AC_VTB_PowerDelivery_010",
                "ChargingProfile above the schedule: FAILED_ChargingProfileInvalid",
                ATS,
                expect_failed(
                    AC_EIM,
                    "PowerDeliveryReq",
                    "FAILED_ChargingProfileInvalid",
                    faults=(_profile_above_schedule(),),
                ),
            ),
            _c(
                P + "AC_VTB_PowerDelivery_011",
                "SAScheduleTupleID not offered: FAILED_TariffSelectionInvalid",
                ATS,
                expect_failed(
                    AC_EIM,
                    "PowerDeliveryReq",
                    "FAILED_TariffSelectionInvalid",
                    faults=(_tuple_id(99),),
                ),
            ),
            _c(
                P + "AC_VTB_PowerDelivery_014",
                "Renegotiate before any Start: FAILED, closed",
                ATS,
                expect_failed(AC_EIM, "PowerDeliveryReq", "FAILED", faults=(_renegotiate_first(),)),
            ),
            _c(
                P + "AC_VTB_PowerDelivery_103",
                "SECC-initiated renegotiation (EVSENotification ReNegotiation)",
                OWN,
                _secc_renegotiation(AC_EIM, "ChargingStatusReq"),
            ),
            _c(
                P + "DC_VTB_PowerDelivery_007",
                "ChargingProfile above the schedule: FAILED_ChargingProfileInvalid",
                ATS,
                expect_failed(
                    DC_EIM,
                    "PowerDeliveryReq",
                    "FAILED_ChargingProfileInvalid",
                    faults=(_profile_above_schedule(),),
                ),
            ),
            _c(
                P + "DC_VTB_PowerDelivery_008",
                "SAScheduleTupleID not offered: FAILED_TariffSelectionInvalid",
                ATS,
                expect_failed(
                    DC_EIM,
                    "PowerDeliveryReq",
                    "FAILED_TariffSelectionInvalid",
                    faults=(_tuple_id(99),),
                ),
            ),
            _c(
                P + "DC_VTB_PowerDelivery_011",
                "EV-initiated Renegotiate: OK",
                ATS,
                _ev_renegotiation(DC_EIM, 1, "Renegotiate"),
            ),
            _c(
                P + "DC_VTB_PowerDelivery_012",
                "Start after a renegotiation: OK",
                ATS,
                _ev_renegotiation(DC_EIM, 2, "Start"),
            ),
            _c(
                P + "DC_VTB_PowerDelivery_103",
                "SECC-initiated renegotiation (EVSENotification ReNegotiation)",
                OWN,
                _secc_renegotiation(DC_EIM, "CurrentDemandReq"),
            ),
            _c(
                P + "DC_VTB_PowerDelivery_104",
                "Renegotiate before any Start: FAILED, closed",
                OWN,
                expect_failed(DC_EIM, "PowerDeliveryReq", "FAILED", faults=(_renegotiate_first(),)),
            ),
            _c(
                P + "AC_VTB_ChargingStatus_102",
                "operator stop: StopCharging, the car stops",
                OWN,
                evse_stops(
                    AC_EIM, "ChargingStatusReq", operator_stop, None, StopReason.EVSE_STOPPED
                ),
            ),
            _c(
                P + "AC_VTB_ChargingStatus_103",
                "emergency shutdown: StopCharging, the car stops",
                OWN,
                evse_stops(
                    AC_EIM, "ChargingStatusReq", emergency_shutdown, None, StopReason.EVSE_FAULT
                ),
            ),
            _c(
                P + "DC_VTB_CurrentDemand_102",
                "emergency shutdown: EVSE_EmergencyShutdown and StopCharging, the car stops",
                OWN,
                evse_stops(
                    DC_EIM,
                    "CurrentDemandReq",
                    emergency_shutdown,
                    "EVSE_EmergencyShutdown",
                    StopReason.EVSE_FAULT,
                ),
            ),
            _c(
                P + "DC_VTB_CurrentDemand_103",
                "operator stop: EVSE_Shutdown and StopCharging, the car stops",
                OWN,
                evse_stops(
                    DC_EIM,
                    "CurrentDemandReq",
                    operator_stop,
                    "EVSE_Shutdown",
                    StopReason.EVSE_STOPPED,
                ),
            ),
            _c(
                P + "DC_VTB_MeteringReceipt_004",
                "receipt of another meter reading: FAILED_MeteringSignatureNotValid",
                ATS,
                expect_failed(
                    DC_PNC,
                    "MeteringReceiptReq",
                    "FAILED_MeteringSignatureNotValid",
                    faults=(_wrong_meter_reading(),),
                ),
            ),
            _c(
                P + "DC_VTB_MeteringReceipt_006",
                "receipt signed with a key not the contract's: FAILED_MeteringSignatureNotValid",
                ATS,
                resigned(
                    "MeteringReceiptReq",
                    SignedMessage.ISO2_METERING_RECEIPT_REQ,
                    "FAILED_MeteringSignatureNotValid",
                ),
            ),
            _c(
                P + "DC_VTB_MeteringReceipt_007",
                "receipt changed after signing: FAILED_MeteringSignatureNotValid",
                ATS,
                expect_failed(
                    DC_PNC,
                    "MeteringReceiptReq",
                    "FAILED_MeteringSignatureNotValid",
                    faults=(_changed_after_signing(),),
                ),
            ),
            _c(
                P + "DC_VTB_MeteringReceipt_102",
                "SignatureValue corrupted: FAILED_MeteringSignatureNotValid",
                OWN,
                expect_failed(
                    DC_PNC,
                    "MeteringReceiptReq",
                    "FAILED_MeteringSignatureNotValid",
                    faults=(BadSignature(message="MeteringReceiptReq"),),
                ),
            ),
            _c(
                P + "DC_VTB_MeteringReceipt_103",
                "the signed receipt is kept in the billing record",
                OWN,
                _receipt_kept(DC_PNC),
            ),
            _c(
                P + "DC_VTB_SessionStop_102",
                "SessionStop(Pause): paused, no billing record yet",
                OWN,
                _pause,
            ),
            _c(
                P + "DC_VTB_SessionSetup_001",
                "resume a paused session with its SessionID: OK_OldSessionJoined",
                ATS,
                _resume(DC_EIM, same_id=True),
            ),
            _c(
                P + "AC_VTB_SessionSetup_001",
                "resume a paused session with its SessionID: OK_OldSessionJoined",
                ATS,
                _resume(AC_EIM, same_id=True),
            ),
            _c(
                P + "AC_VTB_SessionSetup_002",
                "after a pause, SessionID 0: OK_NewSessionEstablished",
                ATS,
                _resume(AC_EIM, same_id=False),
            ),
            _c(
                P + "DC_VTB_SessionSetup_102",
                "resume a paused Plug & Charge session: OK_OldSessionJoined",
                OWN,
                _resume(DC_PNC, same_id=True),
            ),
            _c(
                P + "AC_VTB_MeteringReceipt_102",
                "AC Plug & Charge: the signed receipt is kept in the billing record",
                OWN,
                _receipt_kept(AC_PNC),
            ),
        ]
    )
)


@pytest.mark.parametrize("case", params(CASES))
def test_iso2_specific(case: Case, env: Env) -> None:
    case.run(env)
