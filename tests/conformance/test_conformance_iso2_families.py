"""ISO 15118-2 SECC conformance: the per-message families (see `families`), one row per
message and charging mode.

Numbering: where the public implementation of the ISO 15118-4 abstract test suite has a
test case of the same purpose, its number is used (`Source.ATS`); where the message's
family follows the ATS layout but the case was not confirmed one by one, the number is
marked `Source.PATTERN`; cases without a public counterpart are numbered from 101 up
(`Source.OWN`). The sequence-timeout case of a message is the one where the tester is
silent while that message is due, as in the ATS (e.g. CableCheck_005: silence after
ChargeParameterDiscoveryRes).
"""

from __future__ import annotations

from typing import Any

import pytest
from families import Family, family_cases
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
    Source,
    params,
    unique,
)

ATS, PATTERN, OWN = Source.ATS, Source.PATTERN, Source.OWN


def _cable_check_finished(pair: ConformancePair) -> None:
    answers = pair.answers_to("CableCheckReq")
    assert str(answers[-1].response.EVSEProcessing) == "Finished"
    assert all(str(a.response.EVSEProcessing) == "Ongoing" for a in answers[:-1])


def _authorization_finished(pair: ConformancePair) -> None:
    assert str(pair.answers_to("AuthorizationReq")[-1].response.EVSEProcessing) == "Finished"


def _new_session_id(pair: ConformancePair) -> None:
    (answer,) = pair.answers_to("SessionSetupReq")
    assert pair.evse.evse_id == answer.response.EVSEID
    session_id = pair.outcome().session_id
    assert len(session_id) == 8 and any(session_id)


def _gen_challenge(pair: ConformancePair) -> None:
    (answer,) = pair.answers_to("PaymentDetailsReq")
    assert len(answer.response.GenChallenge) == 16


def _receipt_asked(pair: ConformancePair) -> None:
    first = pair.answers_to("CurrentDemandReq")[0].response
    assert first.ReceiptRequired is True and first.MeterInfo is not None


def _schedule(pair: ConformancePair) -> None:
    response = pair.answers_to("ChargeParameterDiscoveryReq")[0].response
    assert str(response.EVSEProcessing) == "Finished"
    assert response.SAScheduleList.SAScheduleTuple[0].SAScheduleTupleID == 1


def _f(**kw: Any) -> Family:
    return Family(**kw)


def _p(name: str, mode: str = "CMN") -> str:
    return f"TC_SECC_{mode}_VTB_{name}"


FAMILIES: list[Family] = [
    _f(
        message="SessionSetupReq",
        prefix=_p("SessionSetup"),
        scenario=DC_EIM,
        good=("001", ATS),
        good_code="OK_NewSessionEstablished",
        good_check=_new_session_id,
        seq=("002", ATS),
    ),
    _f(
        message="ServiceDiscoveryReq",
        prefix=_p("ServiceDiscovery"),
        scenario=DC_EIM,
        good=("001", ATS),
        seq=("002", ATS),
        seq_send="AuthorizationReq",
        session=("003", ATS),
        timeout=("004", ATS),
    ),
    _f(
        message="ServiceDetailReq",
        prefix=_p("ServiceDetail"),
        scenario=DC_EIM_DETAIL,
        good=("001", PATTERN),
        seq=("002", PATTERN),
        session=("003", PATTERN),
        timeout=("004", PATTERN),
    ),
    _f(
        message="PaymentServiceSelectionReq",
        prefix=_p("PaymentServiceSelection"),
        scenario=DC_EIM_DETAIL,
        good=("001", ATS),
        seq=("004", ATS),
        session=("005", ATS),
        timeout=("008", ATS),
    ),
    _f(
        message="PaymentDetailsReq",
        prefix=_p("PaymentDetails"),
        scenario=DC_PNC,
        good=("001", ATS),
        good_check=_gen_challenge,
        seq=("004", ATS),
        session=("005", ATS),
        timeout=("006", ATS),
    ),
    _f(
        message="CertificateInstallationReq",
        prefix=_p("CertificateInstallation"),
        scenario=DC_PNC_INSTALL,
        good=("001", PATTERN),
        seq=("002", PATTERN),
        session=("003", PATTERN),
        timeout=("004", PATTERN),
    ),
    # Authorization: EIM (001, 003, 005, 008) and Plug & Charge (002, 004, 006, 009)
    _f(
        message="AuthorizationReq",
        prefix=_p("Authorization"),
        scenario=DC_EIM,
        good=("001", ATS),
        good_check=_authorization_finished,
        seq=("003", ATS),
        session=("005", ATS),
        timeout=("008", ATS),
    ),
    _f(
        message="AuthorizationReq",
        prefix=_p("Authorization"),
        scenario=DC_PNC,
        label="Plug & Charge",
        good=("002", ATS),
        good_check=_authorization_finished,
        seq=("004", ATS),
        session=("006", ATS),
        timeout=("009", ATS),
        malformed=("102", OWN),
    ),
    _f(
        message="ChargeParameterDiscoveryReq",
        prefix=_p("ChargeParameterDiscovery", "AC"),
        scenario=AC_EIM,
        good=("001", ATS),
        good_check=_schedule,
        seq=("101", OWN),
        session=("003", ATS),
        timeout=("102", OWN),
        malformed=("103", OWN),
    ),
    _f(
        message="ChargeParameterDiscoveryReq",
        prefix=_p("ChargeParameterDiscovery", "DC"),
        scenario=DC_EIM,
        good=("001", PATTERN),
        good_check=_schedule,
        seq=("101", OWN),
        session=("003", PATTERN),
        timeout=("102", OWN),
        malformed=("103", OWN),
    ),
    _f(
        message="CableCheckReq",
        prefix=_p("CableCheck", "DC"),
        scenario=DC_EIM,
        good=("001", ATS),
        good_check=_cable_check_finished,
        seq=("003", ATS),
        session=("004", ATS),
        timeout=("005", ATS),
    ),
    _f(
        message="PreChargeReq",
        prefix=_p("PreCharge", "DC"),
        scenario=DC_EIM,
        good=("001", ATS),
        seq=("002", ATS),
        session=("003", ATS),
        timeout=("004", ATS),
    ),
    # PowerDelivery: the first sending is Start, the second Stop
    _f(
        message="PowerDeliveryReq",
        prefix=_p("PowerDelivery", "AC"),
        scenario=AC_EIM,
        good=("001", ATS),
        seq=("006", ATS),
        session=("008", ATS),
        timeout=("012", ATS),
    ),
    _f(
        message="PowerDeliveryReq",
        prefix=_p("PowerDelivery", "AC"),
        scenario=AC_EIM,
        occurrence=2,
        label="ChargeProgress Stop",
        good=("005", ATS),
        seq=("007", ATS),
        session=("009", ATS),
        timeout=("013", ATS),
        malformed=("102", OWN),
    ),
    _f(
        message="PowerDeliveryReq",
        prefix=_p("PowerDelivery", "DC"),
        scenario=DC_EIM,
        good=("001", ATS),
        seq=("003", ATS),
        session=("005", ATS),
        timeout=("009", ATS),
    ),
    _f(
        message="PowerDeliveryReq",
        prefix=_p("PowerDelivery", "DC"),
        scenario=DC_EIM,
        occurrence=2,
        label="ChargeProgress Stop",
        good=("002", ATS),
        seq=("004", ATS),
        session=("006", ATS),
        timeout=("010", ATS),
        malformed=("102", OWN),
    ),
    _f(
        message="ChargingStatusReq",
        prefix=_p("ChargingStatus", "AC"),
        scenario=AC_EIM,
        good=("001", PATTERN),
        seq=("002", PATTERN),
        session=("003", PATTERN),
        timeout=("004", PATTERN),
    ),
    _f(
        message="CurrentDemandReq",
        prefix=_p("CurrentDemand", "DC"),
        scenario=DC_EIM,
        good=("001", ATS),
        seq=("003", ATS),
        session=("004", ATS),
        timeout=("005", ATS),
    ),
    _f(
        message="CurrentDemandReq",
        prefix=_p("CurrentDemand", "DC"),
        scenario=DC_PNC,
        label="Plug & Charge: ReceiptRequired",
        good=("002", ATS),
        good_check=_receipt_asked,
        malformed=(None, OWN),
    ),
    _f(
        message="MeteringReceiptReq",
        prefix=_p("MeteringReceipt", "DC"),
        scenario=DC_PNC,
        good=("001", ATS),
        seq=("002", ATS),
        session=("003", ATS),
        timeout=("005", ATS),
    ),
    _f(
        message="MeteringReceiptReq",
        prefix=_p("MeteringReceipt", "AC"),
        scenario=AC_PNC,
        label="Plug & Charge",
        good=("001", ATS),
        seq=("002", ATS),
        session=("003", ATS),
        timeout=("005", ATS),
    ),
    _f(
        message="WeldingDetectionReq",
        prefix=_p("WeldingDetection", "DC"),
        scenario=DC_EIM,
        good=("001", ATS),
        seq=("002", ATS),
        session=("003", PATTERN),
        timeout=("004", PATTERN),
    ),
    _f(
        message="SessionStopReq",
        prefix=_p("SessionStop", "AC"),
        scenario=AC_EIM,
        good=("001", ATS),
        seq=("002", ATS),
        session=("003", PATTERN),
        timeout=("004", PATTERN),
    ),
    _f(
        message="SessionStopReq",
        prefix=_p("SessionStop", "DC"),
        scenario=DC_EIM,
        good=("001", ATS),
        seq=("002", PATTERN),
        session=("003", PATTERN),
        timeout=("004", PATTERN),
    ),
]

CASES: list[Case] = list(unique([c for f in FAMILIES for c in family_cases(f)]))


@pytest.mark.parametrize("case", params(CASES))
def test_iso2(case: Case, env: Env) -> None:
    case.run(env)
