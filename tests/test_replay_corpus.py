"""Every recorded DIN SPEC 70121 and ISO 15118-2 car in the capture corpus, replayed against
our SECC core (in memory, fake clock, simulated EVSE; `replay_pair`).

One test per capture file; each replays every connection of the capture that has a
handshake and DIN or ISO-2 requests, in order (a connection after a paused one resumes it,
as on the recorded charger). A replay must reach the end of its recorded requests without
a FAILED code from our SECC, and end with a billing record (or, for a car that paused and
never came back in the capture, with the session kept for resumption).

Where our SECC answers a recorded request with a FAILED code, `DEVIATIONS` lists the
request, the code and why it is right (the recorded charger mostly answered the same);
a rejection we consider an SECC bug is an xfail(strict=True) in `SECC_BUGS`.

The corpus has no cleartext Plug & Charge session: the only recordings that select
Contract payment are the dSPACE TLS captures, whose V2G messages are encrypted. A recorded
PnC session would be answered FAILED_CertChainError (PaymentDetailsReq, chains of other
PKIs) or FAILED_SignatureError (AuthorizationReq over a new GenChallenge); see `_pnc`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import pytest
from paths import CORPUS
from replay_pair import ReplayOutcome, recordings, replay_capture

from evcc.replay import Recording
from secc.records import StopReason

PCAPS: Final = CORPUS / "pcaps"
#: captures this large (V2GTP messages, from the manifest) take seconds each: marked slow
SLOW_MESSAGES: Final = 3000


@dataclass(frozen=True, slots=True)
class Deviation:
    request: str
    code: str
    why: str


DEVIATIONS: Final[dict[tuple[str, int], Deviation]] = {
    (
        "EVerest+logfiles__Seres__2024-01-10T13_40_14.939Z-2_iso2_ac__ethernet-traffic.dump",
        0,
    ): Deviation(
        "ChargeParameterDiscoveryReq",
        "FAILED_WrongChargeParameter",
        "the car asks for AC_three_phase_core but sends DC_EVChargeParameter; the recorded "
        "charger answered FAILED_WrongChargeParameter too",
    ),
    **{
        (name, 0): Deviation(
            "SessionStopReq",
            "FAILED_SequenceError",
            "SessionStopReq right after PowerDeliveryReq(Start), without PowerDelivery(Stop); "
            "the recorded charger answered FAILED_SequenceError too",
        )
        for name in (
            "EVerest+logfiles__VW__id.3__iso_15118-2_AC__2023-04-14T12_45_39.624Z-3_config-"
            "ac-iso2__ethernet-traffic.dump",
            "EVerest+logfiles__VW__id.4__iso_15118-2_AC__2023-04-14T09_52_17.069Z-3_config-"
            "ac-iso2__ethernet-traffic.dump",
            "EVerest+logfiles__VW__id.4_fw_3.5__2023-04-18T15_42_52.604Z-3_config-ac-iso2__"
            "ethernet-traffic.dump",
        )
    },
    (
        "EVerest+logfiles__VW__id.4__iso_15118-2_DC__2023-04-14T09_53_34.808Z-4_config-dc-"
        "iso2-pnc__ethernet-traffic.dump",
        0,
    ): Deviation(
        "SessionStopReq",
        "FAILED_SequenceError",
        "the recorded charger offered Contract only and refused the car's ExternalPayment "
        "(FAILED_PaymentSelectionInvalid), so the car stopped; we accept ExternalPayment and "
        "then wait for AuthorizationReq, where SessionStopReq is not in the table",
    ),
    (
        "dspace-group+dsV2Gshark__Wireshark__dsV2Gshark_examples__ISO-2_DC_BatteryData"
        "Exchange_DS5366_RiseV2G.pcapng",
        0,
    ): Deviation(
        "ServiceDetailReq",
        "FAILED_ServiceIDInvalid",
        "the tester asks for the details of VAS 61000 ('Battery data VAS Korea'), which the "
        "recorded charger offered and we do not",
    ),
    (
        "dspace-group+dsV2Gshark__Wireshark__dsV2Gshark_examples__ISO-2_DC_SalesTariff"
        "Schedule_DS5366_RiseV2G.pcapng",
        0,
    ): Deviation(
        "PowerDeliveryReq",
        "FAILED_TariffSelectionInvalid",
        "the tester selects SAScheduleTupleID 10, which the recorded charger offered; ours is 1",
    ),
    ("uhi22+pyPLC__results__2022-11-25_v0.2_ABB_until_ChargeParamDiscovery.pcapng", 0): (
        Deviation(
            "ChargeParameterDiscoveryReq",
            "FAILED_SequenceError",
            "an early pyPLC (as the car) skips ContractAuthenticationReq; the capture ends "
            "without the ABB charger's answer",
        )
    ),
    ("uhi22+pyPLC__results__2022-12-20_alpi_currentDemandSequenceErrorShutdown.pcapng", 0): (
        Deviation(
            "CurrentDemandReq",
            "FAILED_SequenceError",
            "pyPLC (as the car) sends PowerDeliveryReq(ReadyToChargeState=false) and then "
            "CurrentDemandReq; the recorded Alpitronic answered FAILED_SequenceError too",
        )
    ),
}

SECC_BUGS: Final[dict[str, str]] = {}


def _captures() -> list[tuple[str, int]]:
    """(file, V2GTP messages) of every capture with a handshake and DIN or ISO-2 messages."""
    manifest = PCAPS / "MANIFEST.json"
    if not manifest.is_file():
        return []
    found: dict[str, int] = {}
    for entry in json.loads(manifest.read_text(encoding="utf-8")):
        name, counts = entry.get("copied_as"), entry.get("decoded_with_libcbv2g") or {}
        if name and "apphand" in counts and {"din", "iso2"} & set(counts):
            found[name] = entry.get("v2gtp_exi_messages", 0)
    return sorted(found.items())


def _params() -> list[object]:
    params: list[object] = []
    for name, messages in _captures():
        marks: list[pytest.MarkDecorator] = []
        if messages > SLOW_MESSAGES:
            marks.append(pytest.mark.slow)
        if name in SECC_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=SECC_BUGS[name]))
        params.append(pytest.param(name, marks=marks, id=name.removesuffix(".dump")))
    return params


def _selected_payment(recording: Recording) -> str | None:
    for step in recording.steps:
        if step.name in ("PaymentServiceSelectionReq", "ServicePaymentSelectionReq"):
            body = getattr(step.messages[0].Body, step.name)
            return str(body.SelectedPaymentOption)
    return None


def _pnc(outcome: ReplayOutcome) -> None:
    """A recorded Plug & Charge car: its chain and signatures belong to another PKI."""
    assert outcome.failed in {
        ("PaymentDetailsReq", "FAILED_CertChainError"),
        ("PaymentDetailsReq", "FAILED_NoCertificateAvailable"),
        ("AuthorizationReq", "FAILED_SignatureError"),
        ("CertificateInstallationReq", "FAILED_NoCertificateAvailable"),
    }, outcome.exchanged[-3:]


def _check_record(outcome: ReplayOutcome, recording: Recording) -> None:
    (record,) = outcome.records
    assert record.protocol == recording.protocol.schema
    last = recording.steps[-1].name
    expected = StopReason.EV_STOPPED if last == "SessionStopReq" else StopReason.CONNECTION_LOST
    assert record.stop_reason is expected, (last, record.stop_reason)
    if any(s.name in ("CurrentDemandReq", "ChargingStatusReq") for s in recording.steps):
        assert record.meter_start is not None and record.meter_stop is not None


def _check(outcome: ReplayOutcome, recording: Recording, previous: ReplayOutcome | None) -> None:
    label = f"{outcome.label}: {outcome.reason}"
    deviation = DEVIATIONS.get((outcome.capture, outcome.connection))
    if deviation is not None:
        assert outcome.failed == (deviation.request, deviation.code), label
        (record,) = outcome.records
        assert record.stop_reason is StopReason.PROTOCOL_ERROR
        return
    if _selected_payment(recording) == "Contract":
        _pnc(outcome)
        return
    assert outcome.failed is None, (label, outcome.failed)
    assert outcome.ok, label
    assert outcome.sent_requests >= len(recording.steps)
    if previous is not None and previous.paused:
        assert outcome.resumed, label
        if outcome.records:  # the one record covers both parts
            assert bytes.fromhex(outcome.records[0].session_id) in previous.paused
    if outcome.paused:  # billed on resumption, or the part so far billed at the pause
        assert [r.stop_reason for r in outcome.records] in ([], [StopReason.EV_PAUSED]), label
        return
    _check_record(outcome, recording)


@pytest.mark.parametrize("capture", _params())
def test_recorded_car_against_our_secc(capture: str) -> None:
    found = recordings(PCAPS / capture)
    assert found, "no connection with a handshake and a DIN or ISO-2 session"
    outcomes = replay_capture(found, capture)
    previous: ReplayOutcome | None = None
    for recording, outcome in zip(found, outcomes, strict=True):
        _check(outcome, recording, previous)
        previous = outcome
