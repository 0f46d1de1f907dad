"""`iso15118 trace`: the whole corpus against its MANIFEST (slow), golden output for a DIN, an
ISO 15118-2 and an ISO 15118-20 session, the JSON form, and captures that are damaged, unreadable
or hold payloads that do not decode; plus the field table (iso15118.trace.fields) on its own."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from corpus import PCAP_DIR, ManifestEntry, load_captures, manifest_entries
from paths import require

from iso15118.cli import main
from iso15118.trace.capture import Capture, parse_capture
from iso15118.trace.fields import format_value, summarize
from iso15118.trace.render import ASCII_ARROWS, json_lines, summary_line, text_lines
from iso15118.trace.report import Summary, build_trace, message_entries
from iso15118.v2gtp import PayloadType, V2GTPMessage

ROOT = Path(__file__).resolve().parent.parent
DIN_FILE = "dspace-group+dsV2Gshark__Wireshark__dsV2Gshark_examples__DIN_DC_DS5366_Josev.pcapng"
ISO2_FILE = (
    "EVerest+logfiles__Polestar__Polestar2__iso15118-2_DC__2023-04-06T06_38_18.654Z-"
    "polestar2-Josev-iso-2-DC__ethernet-traffic.dump"
)
ISO20_FILE = (
    "dspace-group+dsV2Gshark__Wireshark__dsV2Gshark_examples__ISO-20_BPT_AC_DS5366_Josev.pcapng"
)
TLS_FILE = (
    "dspace-group+dsV2Gshark__Wireshark__dsV2Gshark_examples__ISO-20_TLS13_DC_DS5366_Josev.pcapng"
)

ENTRIES = manifest_entries()
needs_corpus = pytest.mark.skipif(not ENTRIES, reason=f"no capture corpus in {PCAP_DIR}")
needs_codec = pytest.mark.usefixtures("codec")


@pytest.fixture(scope="session")
def codec() -> None:
    pytest.importorskip("scapy")
    pytest.importorskip("exi_schemas.iso2")


def run_trace(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["trace", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def corpus_file(name: str) -> str:
    return str(require(PCAP_DIR / name))


# --------------------------------------------------------------------------- the whole corpus


@pytest.fixture(scope="session")
def captures(codec: None) -> Mapping[str, Capture]:
    """All corpus captures, parsed once per test process (shared with test_trace_capture)."""
    return load_captures()


@dataclass(frozen=True, slots=True)
class Traced:
    """What the corpus test checks of one capture's trace (the trace itself is not kept: the
    decoded documents of the whole corpus would take hundreds of MB)."""

    summary: Summary
    lines_match_entries: bool  # one text line per entry, then the summary line
    every_message_decoded: bool  # every message entry has its document


@functools.cache
def traced(name: str) -> Traced:
    trace = build_trace(load_captures()[name])
    lines = list(text_lines(trace))
    return Traced(
        trace.summary,
        len(lines) == len(trace.entries) + 1 and lines[-1] == summary_line(trace.summary),
        all(e.document is not None for e in message_entries(trace)),
    )


@pytest.mark.slow
@needs_corpus
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.file for e in ENTRIES])
def test_trace_decodes_every_cleartext_message_of_the_manifest(
    captures: Mapping[str, Capture], entry: ManifestEntry
) -> None:
    result = traced(entry.file)
    summary = result.summary
    assert summary.decoded == entry.exi_messages
    assert (summary.undecodable, summary.without_schema) == (0, 0)
    assert (summary.stream_errors, summary.read_error) == (0, None)
    assert dict(summary.by_schema) == {s.value: n for s, n in entry.by_schema.items()}
    assert result.lines_match_entries
    assert result.every_message_decoded


# --------------------------------------------------------------------------- golden output

DIN_START = """\
    82.467  EV→EVSE  SDP request                    security=none transport=TCP from=[fe80::d268:d455:802a:22b6]:52706
    82.525  EVSE→EV  SDP response                   address=fe80::664d:70ff:fe01:3bf port=55118 security=none transport=TCP from=[fe80::664d:70ff:fe01:3bf]:15118
    82.540  EV↔EVSE  TCP connection                 connection=0 EV=[fe80::d268:d455:802a:22b6]:58472 EVSE=[fe80::664d:70ff:fe01:3bf]:55118
    82.593  EV→EVSE  supportedAppProtocolReq        offered=urn:din:70121:2012:MsgDef(v2.0,SchemaID=1,Priority=1)
    82.693  EVSE→EV  supportedAppProtocolRes        ResponseCode=OK_SuccessfulNegotiation SchemaID=1 protocol=urn:din:70121:2012:MsgDef
    82.894  EV→EVSE  SessionSetupReq                SessionID=00 EVCCID=00e04c68001d
    82.994  EVSE→EV  SessionSetupRes                SessionID=8fa57fde2bfafe78 ResponseCode=OK_NewSessionEstablished EVSEID=00
    83.075  EV→EVSE  ServiceDiscoveryReq
    83.175  EVSE→EV  ServiceDiscoveryRes            ResponseCode=OK payment=ExternalPayment transfer=DC_extended services=1
    83.258  EV→EVSE  ServicePaymentSelectionReq     payment=ExternalPayment
    83.358  EVSE→EV  ServicePaymentSelectionRes     ResponseCode=OK
    83.408  EV→EVSE  ContractAuthenticationReq
    83.508  EVSE→EV  ContractAuthenticationRes      ResponseCode=OK EVSEProcessing=Finished
    83.563  EV→EVSE  ChargeParameterDiscoveryReq    transfer=DC_extended EVMaximumVoltageLimit=500 V EVMaximumCurrentLimit=32 A SoC=10 %
    83.662  EVSE→EV  ChargeParameterDiscoveryRes    ResponseCode=OK EVSEProcessing=Finished EVSEMaximumVoltageLimit=1000 V EVSEMaximumCurrentLimit=500 A EVSEMaximumPowerLimit=150000 W
    83.712  EV→EVSE  CableCheckReq                  SoC=10 %
    83.812  EVSE→EV  CableCheckRes                  ResponseCode=OK EVSEProcessing=Ongoing EVSEIsolationStatus=Valid
"""  # noqa: E501
DIN_CHARGING = """\
    94.171  EVSE→EV  PreChargeRes                   ResponseCode=OK EVSEPresentVoltage=366 V
    94.209  EV→EVSE  PowerDeliveryReq               ReadyToChargeState=true ChargingComplete=true
    94.308  EVSE→EV  PowerDeliveryRes               ResponseCode=OK
    94.341  EV→EVSE  CurrentDemandReq               EVTargetVoltage=460 V EVTargetCurrent=1 A SoC=30 %
    94.361  EVSE→EV  CurrentDemandRes               ResponseCode=OK EVSEPresentVoltage=460 V EVSEPresentCurrent=1 A
"""  # noqa: E501
DIN_END = """\
    95.892  EV→EVSE  SessionStopReq
    95.992  EVSE→EV  SessionStopRes                 ResponseCode=OK
summary: 200 V2GTP messages, 200 decoded (appHand 2, din 198); 0 undecodable; 0 without grammar; 2 SDP; 1 TCP connection; 0 stream errors; 0 errors
"""  # noqa: E501

ISO2_START = """\
    18.095  EV→EVSE  SDP request                    security=none transport=TCP from=[fe80::4ac5:8dff:feb8:de5a]:49154
    18.116  EVSE→EV  SDP response                   address=fe80::a9e4:a250:1925:5326 port=54297 security=none transport=TCP from=[fe80::a9e4:a250:1925:5326]:15118
    18.150  EV↔EVSE  TCP connection                 connection=0 EV=[fe80::4ac5:8dff:feb8:de5a]:49154 EVSE=[fe80::a9e4:a250:1925:5326]:54297
    18.160  EV→EVSE  supportedAppProtocolReq        offered=urn:din:70121:2012:MsgDef(v2.0,SchemaID=1,Priority=1),urn:iso:15118:2:2013:MsgDef(v2.0,SchemaID=0,Priority=2)
    18.697  EVSE→EV  supportedAppProtocolRes        ResponseCode=OK_SuccessfulNegotiation SchemaID=0 protocol=urn:iso:15118:2:2013:MsgDef
    18.715  EV→EVSE  SessionSetupReq                SessionID=00 EVCCID=48c58db8de5a
    19.417  EVSE→EV  SessionSetupRes                SessionID=f0e5cb4e8e5fa0b5 ResponseCode=OK_NewSessionEstablished EVSEID=DE*PNX*E12345*1
    19.435  EV→EVSE  ServiceDiscoveryReq
    19.985  EVSE→EV  ServiceDiscoveryRes            ResponseCode=OK payment=ExternalPayment transfer=DC_extended services=1
    20.001  EV→EVSE  PaymentServiceSelectionReq     payment=ExternalPayment
    20.455  EVSE→EV  PaymentServiceSelectionRes     ResponseCode=OK
    20.471  EV→EVSE  AuthorizationReq
    21.001  EVSE→EV  AuthorizationRes               ResponseCode=OK EVSEProcessing=Ongoing_WaitingForCustomerInteraction
    21.522  EV→EVSE  AuthorizationReq
    22.015  EVSE→EV  AuthorizationRes               ResponseCode=OK EVSEProcessing=Finished
    22.053  EV→EVSE  ChargeParameterDiscoveryReq    transfer=DC_extended EVMaximumVoltageLimit=470 V EVMaximumCurrentLimit=375 A SoC=93 %
    22.461  EVSE→EV  ChargeParameterDiscoveryRes    ResponseCode=OK EVSEProcessing=Finished EVSEMaximumVoltageLimit=900 V EVSEMaximumCurrentLimit=25 A EVSEMaximumPowerLimit=10000 W
    22.743  EV→EVSE  CableCheckReq                  SoC=93 %
    23.149  EVSE→EV  CableCheckRes                  ResponseCode=OK EVSEProcessing=Ongoing EVSEIsolationStatus=Invalid EVSEStatusCode=EVSE_IsolationMonitoringActive
"""  # noqa: E501
ISO2_CHARGING = """\
    49.174  EVSE→EV  PreChargeRes                   ResponseCode=OK EVSEPresentVoltage=452 V
    49.212  EV→EVSE  PowerDeliveryReq               ChargeProgress=Start
    49.504  EVSE→EV  PowerDeliveryRes               ResponseCode=OK
    49.523  EV→EVSE  CurrentDemandReq               EVTargetVoltage=468 V EVTargetCurrent=1 A SoC=93 %
    49.849  EVSE→EV  CurrentDemandRes               ResponseCode=OK EVSEPresentVoltage=451.8 V EVSEPresentCurrent=0 A
    49.973  EV→EVSE  CurrentDemandReq               EVTargetVoltage=468 V EVTargetCurrent=3.2 A SoC=93 %
"""  # noqa: E501
ISO2_END = """\
   150.281  EV→EVSE  SessionStopReq                 ChargingSession=Terminate
   150.560  EVSE→EV  SessionStopRes                 ResponseCode=OK
summary: 570 V2GTP messages, 570 decoded (appHand 2, iso2 568); 0 undecodable; 0 without grammar; 2 SDP; 1 TCP connection; 0 stream errors; 0 errors
"""  # noqa: E501

ISO20_START = """\
    77.761  EV↔EVSE  TCP connection                 connection=0 EV=[fe80::d268:d455:802a:22b6]:54063 EVSE=[fe80::664d:70ff:fe01:3bf]:55118
    77.800  EV→EVSE  supportedAppProtocolReq        offered=urn:iso:std:iso:15118:-20:AC(v1.0,SchemaID=1,Priority=1)
    77.900  EVSE→EV  supportedAppProtocolRes        ResponseCode=OK_SuccessfulNegotiation SchemaID=1 protocol=urn:iso:std:iso:15118:-20:AC
    78.083  EV→EVSE  SessionSetupReq                SessionID=0000000000000000 EVCCID=WMIV1234567890ABCDEX
    78.183  EVSE→EV  SessionSetupRes                SessionID=242633a465952ff6 ResponseCode=OK_NewSessionEstablished EVSEID=ZZ00000
    78.273  EV→EVSE  AuthorizationSetupReq
    78.372  EVSE→EV  AuthorizationSetupRes          ResponseCode=OK services=EIM
    78.445  EV→EVSE  AuthorizationReq               service=EIM
    78.544  EVSE→EV  AuthorizationRes               ResponseCode=OK EVSEProcessing=Finished
    78.607  EV→EVSE  ServiceDiscoveryReq
    78.707  EVSE→EV  ServiceDiscoveryRes            ResponseCode=OK services=1,5
    78.758  EV→EVSE  ServiceDetailReq               service=5
    78.853  EVSE→EV  ServiceDetailRes               ResponseCode=OK
    78.921  EV→EVSE  ServiceSelectionReq            service=5 ParameterSetID=1
    79.021  EVSE→EV  ServiceSelectionRes            ResponseCode=OK
    79.091  EV→EVSE  AC_ChargeParameterDiscoveryReq EVMaximumChargePower=11000 W
    79.190  EVSE→EV  AC_ChargeParameterDiscoveryRes ResponseCode=OK EVSEMaximumChargePower=2990 W
    79.246  EV→EVSE  ScheduleExchangeReq
    79.348  EVSE→EV  ScheduleExchangeRes            ResponseCode=OK EVSEProcessing=Finished
    79.421  EV→EVSE  PowerDeliveryReq               EVProcessing=Finished ChargeProgress=Start
    79.521  EVSE→EV  PowerDeliveryRes               ResponseCode=OK
    79.559  EV→EVSE  AC_ChargeLoopReq               EVPresentActivePower=200000 W SoC=10 %
    79.659  EVSE→EV  AC_ChargeLoopRes               ResponseCode=OK EVSEPresentActivePower=0 W
"""  # noqa: E501
ISO20_END = """\
    81.465  EV→EVSE  AC_ChargeLoopReq               EVPresentActivePower=200000 W SoC=100 % ChargingComplete=true
    81.565  EVSE→EV  AC_ChargeLoopRes               ResponseCode=OK EVSEPresentActivePower=0 W
    81.601  EV→EVSE  PowerDeliveryReq               EVProcessing=Finished ChargeProgress=Stop
    81.701  EVSE→EV  PowerDeliveryRes               ResponseCode=OK
    81.742  EV→EVSE  SessionStopReq                 ChargingSession=Terminate
    81.841  EVSE→EV  SessionStopRes                 ResponseCode=OK
summary: 46 V2GTP messages, 46 decoded (appHand 2, iso20-common 20, iso20-ac 24); 0 undecodable; 0 without grammar; 2 SDP; 1 TCP connection; 0 stream errors; 0 errors
"""  # noqa: E501

TLS_OUTPUT = """\
    61.407  EV→EVSE  SDP request                    security=TLS transport=TCP from=[fe80::d268:d455:802a:22b6]:55497
    61.464  EVSE→EV  SDP response                   address=fe80::664d:70ff:fe01:3bf port=55119 security=TLS transport=TCP from=[fe80::664d:70ff:fe01:3bf]:15118
    61.499  EV↔EVSE  TLS connection (encrypted)     connection=0 EV=[fe80::d268:d455:802a:22b6]:58689 EVSE=[fe80::664d:70ff:fe01:3bf]:55119 records=123 bytes=11570
summary: 0 V2GTP messages, 0 decoded; 0 undecodable; 0 without grammar; 2 SDP; 1 TCP connection; 1 TLS (encrypted: 123 records, 11570 bytes); 0 stream errors; 0 errors
"""  # noqa: E501


@needs_codec
@pytest.mark.parametrize(
    ("name", "snippets"),
    [
        pytest.param(DIN_FILE, (DIN_START, DIN_CHARGING, DIN_END), id="din"),
        pytest.param(ISO2_FILE, (ISO2_START, ISO2_CHARGING, ISO2_END), id="iso2"),
        pytest.param(ISO20_FILE, (ISO20_START, ISO20_END), id="iso20"),
        pytest.param(TLS_FILE, (TLS_OUTPUT,), id="tls"),
    ],
)
def test_golden_output(
    name: str, snippets: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_trace([corpus_file(name)], capsys)
    assert (code, err) == (0, "")
    position = 0
    for snippet in snippets:
        found = out.find(snippet, position)
        assert found >= 0, snippet.splitlines()[0]
        position = found + len(snippet)
    assert out.endswith(snippets[-1])
    assert out.count("\n") == len(out.splitlines())  # one line per entry, nothing else


@needs_codec
def test_ascii_output_when_the_terminal_cannot_show_arrows() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    result = subprocess.run(
        [sys.executable, "-m", "iso15118", "trace", corpus_file(TLS_FILE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "EV->EVSE  SDP request" in result.stdout
    assert "EV<>EVSE  TLS connection" in result.stdout


# --------------------------------------------------------------------------- JSON


@needs_codec
@pytest.mark.parametrize("name", [DIN_FILE, ISO2_FILE, ISO20_FILE])
def test_json_lines_re_encode_to_the_captured_payload(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from iso15118 import exi

    code, out, err = run_trace(["--json", corpus_file(name)], capsys)
    assert (code, err) == (0, "")
    objects = [json.loads(line) for line in out.splitlines()]
    *entries, summary = objects
    assert summary["kind"] == "summary"
    messages = [o for o in entries if o["kind"] == "message"]
    assert len(messages) == summary["messages"] == summary["decoded"] > 0
    keys = {"time", "direction", "connection", "payload_type", "schema", "message", "document"}
    for obj in messages:
        assert keys <= obj.keys()
        assert obj["direction"] in ("EV->EVSE", "EVSE->EV")
        assert obj["message"] in json.dumps(obj["document"])
        encoded = exi.encode(obj["schema"], exi.from_json(obj["schema"], obj["document"]))
        assert encoded.hex() == obj["payload"]
    sdp = [o for o in entries if o["kind"] == "sdp"]
    assert [o["message"] for o in sdp] == ["SDP request", "SDP response"]
    assert isinstance(sdp[1]["document"]["port"], int)
    assert [o["time"] for o in entries] == sorted(o["time"] for o in entries)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("content", [None, b"", b"hello\n", b"\xd4\xc3\xb2"])
def test_unreadable_file_exits_2(
    tmp_path: Path, content: bytes | None, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("scapy")
    path = tmp_path / "capture.pcap"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_trace([str(path)], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("error: cannot read ")
    assert err.count("\n") == 1


def test_a_directory_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("scapy")
    code, _, err = run_trace([str(tmp_path)], capsys)
    assert code == 2
    assert err.startswith("error: cannot read ")


@needs_codec
@pytest.mark.parametrize(("name", "size"), [(DIN_FILE, 30_000), (ISO2_FILE, 60_007)])
def test_truncated_capture_prints_what_it_can(
    name: str, size: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_bytes(Path(corpus_file(name)).read_bytes()[:size])
    code, out, _ = run_trace([str(path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert "SDP response" in out
    assert "supportedAppProtocolRes" in out
    assert lines[-1].startswith("summary: ")
    decoded = int(lines[-1].split(", ")[1].split()[0])
    assert 10 < decoded < {DIN_FILE: 200, ISO2_FILE: 570}[name]


@needs_codec
def test_damaged_capture_is_reported_after_its_messages() -> None:
    capture = parse_capture(corpus_file(DIN_FILE))
    damaged = replace(capture, read_error="capture unreadable after frame 99: bad block")
    lines = list(text_lines(build_trace(damaged)))
    assert lines[-2].endswith(
        "capture damaged                error: capture unreadable after frame 99: bad block"
    )
    assert lines[-1].endswith("; capture damaged; 1 error")


@needs_codec
def test_json_summary_counts_the_errors_of_a_damaged_capture() -> None:
    capture = replace(parse_capture(corpus_file(TLS_FILE)), read_error="truncated")
    summary = json.loads(list(json_lines(build_trace(capture)))[-1])
    assert (summary["read_error"], summary["errors"]) == ("truncated", 1)


# --------------------------------------------------------------------------- synthetic sessions

DIN_NS = "urn:din:70121:2012:MsgDef"
TESLA_NS = "urn:tesla:din:2018:MsgDef"
EV, EVSE, EV_PORT, EVSE_PORT = "fe80::1", "fe80::2", 49152, 55000


def exi_payload(schema: str, document: dict[str, Any]) -> bytes:
    from iso15118 import exi

    return exi.encode(schema, exi.from_json(schema, document))


def handshake(namespace: str) -> tuple[bytes, bytes]:
    offer = {
        "ProtocolNamespace": namespace,
        "VersionNumberMajor": 2,
        "VersionNumberMinor": 0,
        "SchemaID": 1,
        "Priority": 1,
    }
    request = exi_payload("appHand", {"supportedAppProtocolReq": {"AppProtocol": [offer]}})
    answer = {"ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 1}
    return request, exi_payload("appHand", {"supportedAppProtocolRes": answer})


def session_setup() -> bytes:
    body = {"SessionSetupReq": {"EVCCID": "00e04c68001d"}}
    return exi_payload("din", {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": body}})


def v2gtp(payload: bytes) -> bytes:
    return V2GTPMessage(PayloadType.SAP, payload).pack()


def write_session(path: Path, segments: list[tuple[bool, bytes]]) -> str:
    """A capture of one TCP connection: SYN, then each (from the EV?, stream bytes) in its own
    segment, one millisecond apart."""
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    link = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    ends = {True: (EV, EV_PORT, EVSE, EVSE_PORT), False: (EVSE, EVSE_PORT, EV, EV_PORT)}
    seq = {True: 1000, False: 5000}
    frames = [
        link / IPv6(src=EV, dst=EVSE) / TCP(sport=EV_PORT, dport=EVSE_PORT, seq=999, flags="S")
    ]
    for from_ev, data in segments:
        src, sport, dst, dport = ends[from_ev]
        tcp = TCP(sport=sport, dport=dport, seq=seq[from_ev], flags="PA")
        frames.append(link / IPv6(src=src, dst=dst) / tcp / data)
        seq[from_ev] += len(data)
    for number, frame in enumerate(frames):
        frame.time = 1_700_000_000 + number / 1000
    wrpcap(str(path), frames)
    return str(path)


@needs_codec
def test_undecodable_payload_is_reported_counted_and_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request, response = handshake(DIN_NS)
    broken = bytes.fromhex("809a02ffffffffffff")
    path = write_session(
        tmp_path / "s.pcap",
        [
            (True, v2gtp(request)),
            (False, v2gtp(response)),
            (True, v2gtp(broken)),
            (True, v2gtp(session_setup())),
        ],
    )
    code, out, err = run_trace([path], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "(undecodable)" in lines[3]
    assert "schema=din payload=809a02ffffffffffff (9 bytes) error: ExiDecodeError: " in lines[3]
    assert lines[4].endswith("SessionSetupReq                SessionID=00 EVCCID=00e04c68001d")
    assert lines[-1].startswith(
        "summary: 4 V2GTP messages, 3 decoded (appHand 2, din 1); 1 undecodable;"
    )
    assert lines[-1].endswith("; 1 error")
    code, out, _ = run_trace(["--json", path], capsys)
    failed = json.loads(out.splitlines()[3])
    assert (failed["document"], failed["payload"]) == (None, broken.hex())
    assert failed["error"].startswith("ExiDecodeError: ")


@needs_codec
def test_schema_override_decodes_a_vendor_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request, response = handshake(TESLA_NS)
    path = write_session(
        tmp_path / "t.pcap",
        [(True, v2gtp(request)), (False, v2gtp(response)), (True, v2gtp(session_setup()))],
    )
    code, out, _ = run_trace([path], capsys)
    assert code == 0
    assert "(no grammar)" in out.splitlines()[3]
    assert "; 1 without grammar;" in out
    code, out, _ = run_trace(["--schema-override", f"{TESLA_NS}=din", path], capsys)
    assert code == 0
    assert out.splitlines()[3].endswith(
        "SessionSetupReq                SessionID=00 EVCCID=00e04c68001d"
    )
    assert "3 decoded (appHand 2, din 1); 0 undecodable; 0 without grammar;" in out


@needs_codec
def test_stream_errors_are_reported_on_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request, response = handshake(DIN_NS)
    cut = v2gtp(session_setup())[:10]
    path = write_session(
        tmp_path / "e.pcap", [(True, v2gtp(request)), (False, v2gtp(response)), (True, cut)]
    )
    code, out, _ = run_trace([path], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[3] == (
        "     0.003  EV→EVSE  stream error                   "
        "error: stream ends inside a V2GTP message (10 bytes)"
    )
    assert lines[-1].endswith("; 1 stream error; 1 error")


@pytest.mark.parametrize("override", ["din", "=din", f"{TESLA_NS}=iso20-dc", f"{TESLA_NS}=xyz"])
def test_bad_schema_override_exits_2(override: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_trace(["--schema-override", override, "x.pcap"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: --schema-override")


def test_trace_without_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_trace([], capsys)
    assert code == 2
    assert "usage: iso15118 trace" in err


# --------------------------------------------------------------------------- the field table


def test_physical_values_apply_multiplier_and_unit() -> None:
    assert format_value({"Multiplier": -1, "Unit": "A", "Value": 125}) == "12.5 A"
    assert format_value({"Multiplier": 1, "Unit": "W", "Value": 25000}) == "250000 W"
    assert format_value({"Multiplier": -2, "Unit": "A", "Value": 1106}) == "11.06 A"
    assert format_value({"Multiplier": 0, "Value": 400}, "V") == "400 V"  # DIN: Unit optional
    assert format_value({"Exponent": -5, "Value": 0}, "W") == "0 W"  # ISO-20 RationalNumber
    assert format_value({"Exponent": 3, "Value": 11}, "W") == "11000 W"
    assert format_value(["AC_three_phase_core", "AC_single_phase_core"]) == (
        "AC_three_phase_core,AC_single_phase_core"
    )
    assert format_value(True) == "true"
    assert format_value(93, "%") == "93 %"


def din_current_demand(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "DC_EVStatus": {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 86},
        "EVTargetCurrent": {"Multiplier": -1, "Unit": "A", "Value": 125},
        "EVMaximumVoltageLimit": {"Multiplier": -1, "Unit": "V", "Value": 3990},
        "ChargingComplete": False,
        "EVTargetVoltage": {"Multiplier": -1, "Unit": "V", "Value": 3893},
    }
    body.update(changes)
    header = {"SessionID": "03cdfff67dd9deb3"}
    return {"V2G_Message": {"Header": header, "Body": {"CurrentDemandReq": body}}}


def test_summarize_din_current_demand() -> None:
    summary = summarize(din_current_demand())
    assert (summary.name, summary.session_id) == ("CurrentDemandReq", "03cdfff67dd9deb3")
    assert summary.fields == (
        ("EVTargetVoltage", "389.3 V"),
        ("EVTargetCurrent", "12.5 A"),
        ("SoC", "86 %"),
    )


def test_abnormal_states_are_shown() -> None:
    status = {"EVReady": False, "EVErrorCode": "FAILED_RESSTemperatureInhibit", "EVRESSSOC": 86}
    summary = summarize(din_current_demand(DC_EVStatus=status, ChargingComplete=True))
    assert ("ChargingComplete", "true") in summary.fields
    assert summary.fields[-1] == ("EVErrorCode", "FAILED_RESSTemperatureInhibit")


def test_summarize_iso20_and_handshake() -> None:
    loop = {
        "DC_ChargeLoopReq": {
            "Header": {"SessionID": "242633a465952ff6", "TimeStamp": 1761474995},
            "DisplayParameters": {"PresentSOC": 42},
            "MeterInfoRequested": False,
            "EVPresentVoltage": {"Exponent": -1, "Value": 4012},
            "Scheduled_DC_CLReqControlMode": {
                "EVTargetCurrent": {"Exponent": 0, "Value": 125},
                "EVTargetVoltage": {"Exponent": 0, "Value": 410},
            },
        }
    }
    summary = summarize(loop)
    assert (summary.name, summary.session_id) == ("DC_ChargeLoopReq", "242633a465952ff6")
    assert summary.fields == (
        ("EVPresentVoltage", "401.2 V"),
        ("EVTargetVoltage", "410 V"),
        ("EVTargetCurrent", "125 A"),
        ("SoC", "42 %"),
    )
    response = summarize({"supportedAppProtocolRes": {"ResponseCode": "OK", "SchemaID": 2}})
    assert response == type(response)(
        "supportedAppProtocolRes", None, (("ResponseCode", "OK"), ("SchemaID", "2"))
    )


def test_unknown_messages_show_the_common_fields() -> None:
    document = {
        "V2G_Message": {
            "Header": {"SessionID": "01"},
            "Body": {"FooRes": {"ResponseCode": "FAILED"}},
        }
    }
    assert summarize(document).fields == (("ResponseCode", "FAILED"),)
    empty = summarize({"V2G_Message": {"Header": {"SessionID": "01"}, "Body": {}}})
    assert (empty.name, empty.fields) == ("V2G_Message", ())


def test_ascii_arrows_cover_every_direction() -> None:
    from iso15118.trace.render import ARROWS

    assert ASCII_ARROWS.keys() == ARROWS.keys()
    assert all(text.isascii() for text in ASCII_ARROWS.values())


def test_a_hex_evseid_shows_its_text() -> None:
    def setup_res(evse_id: str) -> dict[str, Any]:
        body = {"SessionSetupRes": {"ResponseCode": "OK", "EVSEID": evse_id}}
        return {"V2G_Message": {"Header": {"SessionID": "4707fddebb53f7fe"}, "Body": body}}

    din = summarize(setup_res("44452a504e582a4531323334352a31"))  # DIN: hexBinary
    assert din.fields[-1] == ("EVSEID", '44452a504e582a4531323334352a31 ("DE*PNX*E12345*1")')
    assert summarize(setup_res("DE*PNX*E12345*1")).fields[-1] == ("EVSEID", "DE*PNX*E12345*1")
    assert summarize(setup_res("00")).fields[-1] == ("EVSEID", "00")  # not text
