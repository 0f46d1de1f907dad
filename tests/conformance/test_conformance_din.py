"""DIN SPEC 70121 SECC conformance (DC, ExternalPayment): the per-message families of
`families` and the DIN-specific failures.

Numbering: DIN SPEC 70122's test case IDs are not public, so every DIN case carries this
project's own number (`Source.OWN`) in the ISO 15118-4 layout: 001 good case,
002 sequence error, 003 unknown SessionID, 004 sequence timeout, 101 malformed EXI, 102 and
up message-specific cases. The IDs repeat ISO-2 ones; the protocol tells them apart
(`test_din[...]` in pytest, the DIN section of the README).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from families import Family, family_cases
from kit import (
    DIN_DC,
    SEQUENCE_TIMEOUT,
    Case,
    Env,
    IsolationFaultEVSE,
    PilotMappingEVSE,
    Source,
    assert_completed,
    assert_failed_and_closed,
    emergency_shutdown,
    evse_stops,
    expect_failed,
    mutate,
    operator_stop,
    params,
    rejecting,
    response_of,
    run,
    unique,
)
from secc_helpers import Harness

from exi_schemas import din
from iso15118 import sap
from secc.events import ConnectionClosing, SessionEnded
from secc.evse import ControlPilotState
from secc.records import StopReason

OWN = Source.OWN
CP = ControlPilotState


def _row(
    message: str,
    *,
    seq_send: str = "ServiceDiscoveryReq",
    occurrence: int = 1,
    good_code: str = "OK",
    session: bool = True,
    timeout: bool = True,
    numbers: tuple[str, str, str, str, str] = ("001", "002", "003", "004", "101"),
) -> Family:
    good, seq, unknown, silent, malformed = numbers
    name = message.removesuffix("Req")
    return Family(
        message=message,
        prefix=f"TC_SECC_DC_VTB_{name}",
        scenario=DIN_DC,
        protocol="din",
        occurrence=occurrence,
        good=(good, OWN),
        good_code=good_code,
        seq=(seq, OWN),
        seq_send=seq_send,
        session=(unknown if session else None, OWN),
        timeout=(silent if timeout else None, OWN),
        malformed=(malformed, OWN),
        label="ReadyToChargeState false" if occurrence == 2 else "",
    )


FAMILIES = [
    _row("SessionSetupReq", good_code="OK_NewSessionEstablished", session=False, timeout=False),
    _row("ServiceDiscoveryReq", seq_send="ContractAuthenticationReq"),
    _row("ServicePaymentSelectionReq"),
    _row("ContractAuthenticationReq"),
    _row("ChargeParameterDiscoveryReq"),
    _row("CableCheckReq"),
    _row("PreChargeReq"),
    _row("PowerDeliveryReq"),
    _row("PowerDeliveryReq", occurrence=2, numbers=("005", "006", "007", "008", "102")),
    _row("CurrentDemandReq"),
    _row("WeldingDetectionReq"),
    _row("SessionStopReq"),
]


def _session_setup_timeout(env: Env) -> None:
    """A DIN handshake, then silence: closed exactly 60 s after the response."""
    h = Harness(now=2.0)
    h.handshake([sap.AppProtocol.DIN])
    assert h.schema == "din"
    deadline = 2.0 + SEQUENCE_TIMEOUT
    assert h.session.get_timer() == deadline
    h.session.handle_timer(deadline - 0.001)
    assert not h.session.closed
    h.session.handle_timer(deadline)
    h.drain()
    (closing,) = [e for e in h.events if isinstance(e, ConnectionClosing)]
    assert closing.reason is StopReason.TIMEOUT
    assert not [e for e in h.events if isinstance(e, SessionEnded)]


def _external_payment_only(env: Env) -> None:
    pair = run(DIN_DC, env)
    assert_completed(pair)
    response = response_of(pair, "ServiceDiscoveryReq")
    assert [str(o) for o in response.PaymentOptions.PaymentOption] == ["ExternalPayment"]
    assert str(response.ChargeService.EnergyTransferType) == "DC_extended"


def _cable_check(mapping: dict[CP, CP], ok: bool) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        scenario = DIN_DC.with_(evse_kind=PilotMappingEVSE, evse_options={"mapping": mapping})
        pair = run(scenario, env)
        if ok:
            assert_completed(pair)
            last = response_of(pair, "CableCheckReq", -1)
            assert str(last.EVSEProcessing) == "Finished"
        else:
            assert_failed_and_closed(pair, "CableCheckReq", "FAILED")

    return check


def _isolation_fault(env: Env) -> None:
    pair = run(DIN_DC.with_(evse_kind=IsolationFaultEVSE), env)
    last = assert_failed_and_closed(pair, "CableCheckReq", "FAILED")
    assert str(last.response.DC_EVSEStatus.EVSEIsolationStatus) == "Fault"


def _transfer_type(value: str) -> Any:
    def change(req: Any) -> None:
        req.EVRequestedEnergyTransferType = din.EVRequestedEnergyTransferType(value)

    return mutate("ChargeParameterDiscoveryReq", change)


def _refused(env: Env) -> None:
    pair = run(DIN_DC, env, authorize=rejecting)
    assert_failed_and_closed(pair, "ContractAuthenticationReq", "FAILED")
    record = pair.ended
    assert record is not None and record.stop_reason is StopReason.AUTHORIZATION_REJECTED


def _c(number: str, title: str, check: Callable[[Env], None]) -> Case:
    return Case(number, title, OWN, check, protocol="din")


P = "TC_SECC_DC_VTB_"
CASES: list[Case] = list(
    unique(
        [
            *[c for f in FAMILIES for c in family_cases(f)],
            _c(
                P + "SessionSetup_004",
                "silence after the handshake: closed 60 s after supportedAppProtocolRes",
                _session_setup_timeout,
            ),
            _c(
                P + "ServiceDiscovery_102",
                "ExternalPayment only, the EVSE's DC transfer type",
                _external_payment_only,
            ),
            _c(
                P + "ContractAuthentication_102", "refused by the backend: FAILED, closed", _refused
            ),
            _c(
                P + "ChargeParameterDiscovery_102",
                "AC transfer type requested: FAILED_WrongEnergyTransferType",
                expect_failed(
                    DIN_DC,
                    "ChargeParameterDiscoveryReq",
                    "FAILED_WrongEnergyTransferType",
                    faults=(_transfer_type("AC_three_phase_core"),),
                ),
            ),
            _c(
                P + "CableCheck_102",
                "CP state D: CableCheck Finished",
                _cable_check({CP.C: CP.D}, True),
            ),
            _c(
                P + "CableCheck_103",
                "no CP state C/D: FAILED, closed",
                _cable_check({CP.C: CP.B}, False),
            ),
            _c(
                P + "CableCheck_104",
                "isolation fault: FAILED (isolation Fault), closed",
                _isolation_fault,
            ),
            _c(
                P + "CurrentDemand_102",
                "emergency shutdown: EVSE_EmergencyShutdown and StopCharging, the car stops",
                evse_stops(
                    DIN_DC,
                    "CurrentDemandReq",
                    emergency_shutdown,
                    "EVSE_EmergencyShutdown",
                    StopReason.EVSE_FAULT,
                ),
            ),
            _c(
                P + "CurrentDemand_103",
                "operator stop: EVSE_Shutdown and StopCharging, the car stops",
                evse_stops(
                    DIN_DC,
                    "CurrentDemandReq",
                    operator_stop,
                    "EVSE_Shutdown",
                    StopReason.EVSE_STOPPED,
                ),
            ),
        ]
    )
)


@pytest.mark.parametrize("case", params(CASES))
def test_din(case: Case, env: Env) -> None:
    case.run(env)
