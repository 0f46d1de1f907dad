"""The EV simulator's YAML configuration and `iso15118 ev run`: the example file, bad files,
certificate and key loading (PEM and DER), faults, and whole sessions against a running SECC
on ::1 (plain TCP, Plug & Charge over TLS, a replayed car)."""

from __future__ import annotations

import asyncio
import io
import re
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from paths import CORPUS, require

from evcc.commands import EvPlan, build, run_plan, summary_lines
from evcc.config import Payment
from evcc.config_file import FAULT_TYPES, read_ev_config
from evcc.faults import (
    BadSignature,
    EarlyStop,
    MalformedExi,
    MalformedKind,
    OutOfSequence,
    Silence,
    WrongGenChallenge,
    WrongSessionId,
)
from iso15118.cli import main
from iso15118.sap import AppProtocol
from iso15118.yamlconf import ConfigError
from pki.create import TestPki, create_pki, write_pki
from pki.profiles import Role, Standard
from pki.store import load_certificates
from secc.evse import EnergyMode

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ev.yaml"
KONA = "EVerest+logfiles__Hyundai__Kona_2017__din_spec_70121__kona1.dump"
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM


def write(tmp_path: Path, text: str, name: str = "ev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the example file -----------------------------------------------------------------------


def test_example_file_loads() -> None:
    file = read_ev_config(EXAMPLE)
    c = file.config
    assert c.protocols == (AppProtocol.ISO2, AppProtocol.DIN)
    assert c.energy_mode is EnergyMode.DC_EXTENDED and c.payment is Payment.EIM
    assert c.evcc_id == bytes.fromhex("020000000001") and c.pnc is None and c.faults == ()
    assert (c.initial_soc, c.target_soc, c.battery.capacity_wh) == (30.0, 80.0, 60_000.0)
    assert (file.network.host, file.network.port, file.network.interface) == ("::1", 15118, None)
    assert file.replay is None and not c.tls and file.log_level == "WARNING"


def test_example_file_checks_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ev", "run", "--config", str(EXAMPLE), "--check"]) == 0
    assert "OK" in capsys.readouterr().out


def test_example_fault_lines_parse(tmp_path: Path) -> None:
    """The commented fault examples are valid, one per type."""
    lines = [m.group(1) for m in re.finditer(r"^#   (- \{type: .*\})", EXAMPLE.read_text(), re.M)]
    faults = read_ev_config(write(tmp_path, "faults:\n" + "\n".join(f"  {x}" for x in lines)))
    assert {type(f) for f in faults.config.faults} == set(FAULT_TYPES.values())


def test_defaults_match_the_dataclasses(tmp_path: Path) -> None:
    from evcc.config import EvccConfig

    assert read_ev_config(write(tmp_path, "")).config == EvccConfig()


def test_keys_parse(tmp_path: Path) -> None:
    text = """
protocols: [din, iso2]
energy_mode: AC_three_phase_core
payment: EIM
evcc_id: "02:00:00:00:00:AB"
initial_soc: 10
target_soc: 90.5
departure_time: 3600
max_charge_loops: 7
charge_duration: 12.5
request_service_detail: true
ongoing_interval: 0.5
loop_interval: 0
precharge_interval: 0.2
precharge_tolerance: 5
welding_detection_count: 0
pause_after_loops: 2
resume_session_id: "0A0B0C0D"
renegotiate_after_loops: 3
max_schedule_entries: 4
battery: {capacity_wh: 40000, max_voltage: 450, max_power: 50000, taper_soc: 90}
log_level: debug
network: {interface: eth1}
"""
    c = read_ev_config(write(tmp_path, text)).config
    assert c.protocols == (AppProtocol.DIN, AppProtocol.ISO2)
    assert c.energy_mode is EnergyMode.AC_THREE_PHASE_CORE
    assert c.evcc_id == bytes.fromhex("0200000000AB")
    assert (c.initial_soc, c.target_soc, c.departure_time) == (10.0, 90.5, 3600)
    assert (c.max_charge_loops, c.charge_duration, c.request_service_detail) == (7, 12.5, True)
    assert (c.ongoing_interval, c.loop_interval, c.precharge_interval) == (0.5, 0.0, 0.2)
    assert (c.precharge_tolerance, c.welding_detection_count) == (5.0, 0)
    assert (c.pause_after_loops, c.renegotiate_after_loops, c.max_schedule_entries) == (2, 3, 4)
    assert c.resume_session_id == bytes.fromhex("0A0B0C0D")
    assert (c.battery.capacity_wh, c.battery.max_voltage, c.battery.taper_soc) == (40e3, 450, 90)
    assert c.battery.max_current == 200.0  # not given: the default
    assert c.payment is Payment.EIM and c.pnc is None


# --- bad files --------------------------------------------------------------------------------

BAD = [
    # unknown keys, anywhere
    ("netwrok: {}\n", "unknown key: netwrok"),
    ("battery: {capacity: 1}\n", "unknown key in battery: capacity"),
    ("network: {hots: x}\n", "unknown key in network: hots"),
    ("pnc: {contract: x}\n", "unknown key in pnc: contract"),
    ("replay: {file: x}\n", "unknown key in replay: file"),
    # values of the session keys
    ("protocols: [iso3]\n", "unknown application protocol"),
    ("protocols: iso2\n", "protocols: expected a non-empty list"),
    ("protocols: [iso2, iso2]\n", "distinct protocols"),
    ("energy_mode: DC_fast\n", "energy_mode: 'DC_fast' is not one of"),
    ("energy_mode: AC_three_phase_core\nprotocols: [din]\n", "AC charging needs ISO 15118-2"),
    ("payment: card\n", "payment: 'card' is not one of eim, pnc"),
    ("evcc_id: 020000000001\n", "evcc_id: expected text.*quotes"),
    ("evcc_id: '0200'\n", "evcc_id: expected 6 bytes, got 2"),
    ("evcc_id: 'zz0000000001'\n", "evcc_id: 'zz0000000001' is not hex"),
    ("resume_session_id: '00112233445566778899'\n", "resume_session_id: expected 1 to 8 bytes"),
    ("initial_soc: 120\n", "initial_soc: 120 is outside 0..100"),
    ("target_soc: high\n", "target_soc: expected a number"),
    ("departure_time: -1\n", "departure_time: -1 is outside 0..4294967295"),
    ("max_charge_loops: 0\n", "max_charge_loops: 0 is outside 1..None"),
    ("max_charge_loops: 2.5\n", "max_charge_loops: expected a whole number"),
    ("charge_duration: -1\n", "charge_duration: -1 is outside at least 0"),
    ("charge_duration: soon\n", "charge_duration: expected a number"),
    ("loop_interval: -0.1\n", "loop_interval: -0.1 is outside at least 0"),
    ("request_service_detail: yes please\n", "request_service_detail: expected true or false"),
    ("welding_detection_count: -1\n", "welding_detection_count: -1 is outside 0..None"),
    # battery
    ("battery: {capacity_wh: 0}\n", "battery: capacity_wh must be positive"),
    ("battery: {max_current: -5}\n", "battery.max_current: -5 is outside at least 0"),
    ("battery: {full_voltage: 500}\n", "battery: need 0 < empty_voltage <= full_voltage"),
    ("battery: {taper_soc: 101}\n", "battery.taper_soc: 101 is outside 0..100"),
    ("battery: 5\n", "battery: expected a mapping"),
    # network
    ("network: {port: 70000}\n", "network.port: 70000 is outside 1..65535"),
    ("network: {host: '::1'}\n", "network: give host and port together"),
    ("network: {tls: true}\n", "network.trust_anchors: TLS needs the V2G root"),
    ("network: {trust_anchors: [absent.pem]}\n", "network.trust_anchors: .*absent.pem does not"),
    ("network: {trust_anchors: [1, 2]}\n", "network.trust_anchors: expected a path or a list"),
    # payment and PnC
    ("payment: pnc\n", "Plug & Charge needs PncCredentials"),
    ("pnc: {contract_key: absent.pem}\n", "pnc.contract_key: .*absent.pem: No such file"),
    ("pnc: {contract_key_password: x}\n", "pnc.contract_key: a password but no key file"),
    (
        "pnc: {contract_key: k, contract_key_password: x, contract_key_password_file: f}\n",
        "pnc.contract_key: give a password or a password file, not both",
    ),
    ("pnc: {install_certificate: true}\n", "pnc: installing a contract needs"),
    ("pnc: {update_certificate: true}\n", "pnc: updating a contract needs"),
    ("pnc: {update_within_days: -1}\n", "pnc.update_within_days"),
    ("pnc: {root_certificates: ev.yaml}\n", "pnc.root_certificates: .*not a certificate"),
    # faults
    ("faults: {type: silence}\n", "faults: expected a list of mappings"),
    ("faults: [silence]\n", r"faults\[0\]: expected a mapping, got 'silence'"),
    ("faults: [{message: CableCheckReq}]\n", r"faults\[0\]\.type: missing \(one of wrong_"),
    ("faults: [{type: crash}]\n", r"faults\[0\]\.type: unknown fault 'crash' \(one of"),
    ("faults: [{type: custom_mutate, message: X}]\n", "custom_mutate takes a function: code"),
    ("faults: [{type: silence}]\n", r"faults\[0\]\.message: missing \(needed by silence\)"),
    ("faults: [{type: silence, message: null}]\n", r"faults\[0\]\.message: missing"),
    ("faults: [{type: silence, message: CableCheck}]\n", "'CableCheck' is not a DIN or ISO-2"),
    ("faults: [{type: silence, message: CableCheckReq, bit: 1}]\n", r"in faults\[0\]: bit"),
    ("faults: [{type: silence, message: CableCheckReq, occurrence: 0}]\n", "occurrence: 0 is"),
    (
        "faults: [{type: wrong_session_id, message: PreChargeReq,"
        " session_id: '001122334455667788'}]",
        r"faults\[0\]\.session_id: expected 1 to 8 bytes, got 9",
    ),
    (
        "faults: [{type: malformed_exi, message: CableCheckReq, kind: noise}]\n",
        r"faults\[0\]\.kind: 'noise' is not one of garbage, truncated",
    ),
    (
        "faults: [{type: early_stop, message: CableCheckReq, step: 2}]\n",
        r"faults\[0\]\.type early_stop: EarlyStop needs exactly one of message and step",
    ),
    ("faults: [{type: wrong_gen_challenge, challenge: '00'}]\n", "expected 16 bytes, got 1"),
    # replay
    ("replay: {capture: absent.pcap}\n", "replay.capture: .*absent.pcap is not a file"),
    ("replay: {connection: 1}\n", "replay.connection needs replay.capture"),
    ("replay: {capture: ev.yaml, connection: -1}\n", "replay.connection: -1 is outside 0"),
    # the file itself
    ("- a list\n", "top level must be a mapping"),
    ("key: [unclosed\n", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[t for t, _ in BAD])
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_ev_config(write(tmp_path, text))


def test_bad_file_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "battery: {bogus: 1}\n")
    assert main(["ev", "run", "--config", str(path), "--check"]) == 2
    assert "error: unknown key in battery: bogus" in capsys.readouterr().err


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        read_ev_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "arguments", "message"),
    [
        ("", {}, "give host and port, or an interface"),
        ("", {"host": "::1"}, "--host and --port go together"),
        ("", {"host": "::1", "port": 0}, "--port: 0 is outside"),
        ("replay: {capture: ev.yaml}\n", {"interface": "lo"}, "replay.capture: cannot read"),
    ],
)
def test_bad_plans(tmp_path: Path, text: str, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(write(tmp_path, text), **arguments)


def test_command_line_overrides_the_network(tmp_path: Path) -> None:
    path = write(tmp_path, "network: {host: '::1', port: 15118, interface: eth0}\n")
    plan = build(path, host="fe80::1", port=64109, interface="eth1")
    assert (plan.host, plan.port, plan.interface) == ("fe80::1", 64109, "eth1")
    assert plan.ssl_context is None and plan.recording is None
    plan = build(write(tmp_path, "network: {interface: eth0}\n"))
    assert (plan.host, plan.port, plan.interface) == (None, None, "eth0")  # SDP discovery


# --- faults -------------------------------------------------------------------------------------


def test_faults_parse_to_dataclasses(tmp_path: Path) -> None:
    text = """
faults:
  - {type: wrong_session_id, message: CableCheckReq, occurrence: 2, session_id: "0102"}
  - {type: wrong_session_id, message: PreChargeReq}
  - {type: out_of_sequence, message: PreChargeReq, send: CurrentDemandReq, occurrence: null}
  - {type: bad_signature, bit: 7}
  - {type: silence, message: AuthorizationReq}
  - {type: malformed_exi, message: ServiceDiscoveryReq, kind: truncated, length: 4}
  - {type: early_stop, step: 3}
  - {type: early_stop, message: CableCheckReq, occurrence: 2}
  - type: wrong_gen_challenge
    challenge: "000102030405060708090A0B0C0D0E0F"
"""
    faults = read_ev_config(write(tmp_path, text)).config.faults
    assert faults == (
        WrongSessionId(message="CableCheckReq", occurrence=2, session_id=b"\x01\x02"),
        WrongSessionId(message="PreChargeReq"),
        OutOfSequence(message="PreChargeReq", send="CurrentDemandReq", occurrence=None),
        BadSignature(bit=7),
        Silence(message="AuthorizationReq"),
        MalformedExi(message="ServiceDiscoveryReq", kind=MalformedKind.TRUNCATED, length=4),
        EarlyStop(step=3),
        EarlyStop(message="CableCheckReq", occurrence=2),
        WrongGenChallenge(challenge=bytes(range(16))),
    )


# --- certificates and keys ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return create_pki(Standard.ISO2, at=datetime.now(UTC))


@pytest.fixture(scope="module")
def pki_dir(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The PEM tree of `write_pki` (keys encrypted with "secret"), plus DER files in der/."""
    directory = tmp_path_factory.mktemp("ev-pki")
    write_pki(pki, directory, password=b"secret")
    der = directory / "der"
    der.mkdir()
    for role in (Role.CONTRACT, Role.MO_SUB_CA_2, Role.MO_SUB_CA_1, Role.OEM_PROVISIONING):
        (der / f"{role.value}.der").write_bytes(pki[role].certificate.public_bytes(DER))
    contract_key = pki[Role.CONTRACT].key
    (der / "contract.key.der").write_bytes(  # encrypted PKCS#8
        contract_key.private_bytes(
            DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    (der / "oem.key.der").write_bytes(  # SEC1, not encrypted
        pki[Role.OEM_PROVISIONING].key.private_bytes(
            DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    (directory / "password.txt").write_text("secret\n")
    (directory / "empty").mkdir()
    ed = ed25519.Ed25519PrivateKey.generate()
    (directory / "ed25519.key.pem").write_bytes(
        ed.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    yield directory


def _same_key(a: Any, b: Any) -> bool:
    assert isinstance(a, ec.EllipticCurvePrivateKey) and isinstance(b, ec.EllipticCurvePrivateKey)
    return a.private_numbers() == b.private_numbers()


def test_pem_material(pki: TestPki, pki_dir: Path) -> None:
    path = write(
        pki_dir,
        """
payment: pnc
pnc:
  contract_chain: chains/contract.pem
  contract_key: keys/contract.key.pem
  contract_key_password: secret
  oem_provisioning_cert: certs/oem-provisioning.pem
  oem_provisioning_key: keys/oem-provisioning.key.pem
  oem_provisioning_key_password_file: password.txt
  root_certificates: trust
""",
        "pem.yaml",
    )
    pnc = read_ev_config(path).config.pnc
    assert pnc is not None
    chain = [c.public_bytes(DER) for c in pki.chain(Role.CONTRACT)]
    assert list(pnc.contract_chain) == chain and len(chain) == 3
    assert _same_key(pnc.contract_key, pki[Role.CONTRACT].key)
    assert pnc.oem_provisioning_cert == pki[Role.OEM_PROVISIONING].certificate.public_bytes(DER)
    assert _same_key(pnc.oem_provisioning_key, pki[Role.OEM_PROVISIONING].key)
    assert set(pnc.root_certificates) == {c.public_bytes(DER) for c in pki.roots()}
    assert pnc.contract_emaid() is not None and not pnc.needs_installation
    assert pnc.update_within is None and not pnc.update_certificate


def test_contract_update_keys(pki: TestPki, pki_dir: Path) -> None:
    path = write(
        pki_dir,
        """
payment: pnc
pnc:
  contract_chain: chains/contract.pem
  contract_key: keys/contract.key.pem
  contract_key_password: secret
  root_certificates: trust
  update_within_days: 30
""",
        "update.yaml",
    )
    pnc = read_ev_config(path).config.pnc
    assert pnc is not None and pnc.update_within == timedelta(days=30)
    expires = pki[Role.CONTRACT].certificate.not_valid_after_utc
    assert pnc.needs_update(expires - timedelta(days=29))
    assert not pnc.needs_update(expires - timedelta(days=31))
    forced = read_ev_config(
        write(pki_dir, path.read_text() + "  update_certificate: true\n", "forced.yaml")
    ).config.pnc
    assert forced is not None and forced.needs_update(expires - timedelta(days=3650))


def test_der_material(pki: TestPki, pki_dir: Path) -> None:
    path = write(
        pki_dir,
        """
payment: pnc
pnc:
  contract_chain: [der/contract.der, der/mo-sub-ca-2.der, der/mo-sub-ca-1.der]
  contract_key: der/contract.key.der
  contract_key_password_file: password.txt
  oem_provisioning_cert: der/oem-provisioning.der
  oem_provisioning_key: der/oem.key.der
  root_certificates: [trust/v2g-root.pem]
  install_certificate: true
""",
        "der.yaml",
    )
    pnc = read_ev_config(path).config.pnc
    assert pnc is not None
    assert list(pnc.contract_chain) == [c.public_bytes(DER) for c in pki.chain(Role.CONTRACT)]
    assert _same_key(pnc.contract_key, pki[Role.CONTRACT].key)
    assert _same_key(pnc.oem_provisioning_key, pki[Role.OEM_PROVISIONING].key)
    assert pnc.root_certificates == (pki[Role.V2G_ROOT].certificate.public_bytes(DER),)
    assert pnc.needs_installation


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("contract_key: keys/contract.key.pem", "pnc.contract_key: .*not given"),
        (
            "contract_key: keys/contract.key.pem\n  contract_key_password: wrong",
            "pnc.contract_key: .*(password|decrypt)",
        ),
        (
            "contract_key: der/oem.key.der\n  contract_key_password: secret",
            "pnc.contract_key: .*not encrypted",
        ),
        ("contract_key: ed25519.key.pem", "pnc.contract_key: .*not an elliptic-curve key"),
        ("contract_key: certs/contract.pem", "pnc.contract_key: "),
        ("contract_key_password_file: absent.txt", "pnc.contract_key_password_file: No such"),
        ("contract_chain: chains/contract.pem", "give the contract chain and its key together"),
        ("oem_provisioning_cert: chains/contract.pem", "expected one certificate, found more"),
        ("root_certificates: empty", "pnc.root_certificates: no certificate files in"),
        ("root_certificates: keys", "pnc.root_certificates: .*contract.key.pem: not a cert"),
    ],
)
def test_bad_material(pki_dir: Path, keys: str, message: str) -> None:
    path = write(pki_dir, f"pnc:\n  {keys}\n", "bad.yaml")
    with pytest.raises(ConfigError, match=message):
        read_ev_config(path)


def test_tls_context(pki_dir: Path) -> None:
    path = write(
        pki_dir, "network: {host: '::1', port: 1, tls: true, trust_anchors: [trust]}\n", "t.yaml"
    )
    plan = build(path)
    assert plan.file.config.tls and isinstance(plan.ssl_context, ssl.SSLContext)
    assert len(plan.file.network.trust_anchors) == 3  # every root in the directory
    bad = write(
        pki_dir, "network: {host: '::1', port: 1, tls: true, trust_anchors: t.yaml}\n", "b.yaml"
    )
    with pytest.raises(ConfigError, match=r"network\.trust_anchors: .*t\.yaml"):
        build(bad)


# --- whole sessions against the SECC ---------------------------------------------------------


def _secc(tmp_path: Path, **evse_options: Any) -> tuple[Any, Any, Any]:
    from secc.backend import LocalBackend
    from secc.server import SeccServer, SeccServerConfig
    from secc.simulated import SimulatedEVSE
    from secc.store import SessionStore

    store = SessionStore(tmp_path / "db")
    evse = SimulatedEVSE(**evse_options)
    backend = LocalBackend(store=store, free_charging=True)
    server = SeccServer(
        SeccServerConfig(host="::1", tcp_port=0), controller=evse, backend=backend, store=store
    )
    return server, evse, store


def _run(tmp_path: Path, text: str, **evse_options: Any) -> tuple[Any, str, EvPlan]:
    async def session() -> tuple[Any, str, EvPlan]:
        server, evse, store = _secc(tmp_path, **evse_options)
        try:
            async with server:
                plan = build(write(tmp_path, text), host="::1", port=server.tcp_endpoint.port)
                out = io.StringIO()
                hook = None if plan.recording else (lambda c: evse.set_cp_state(c.state))
                if plan.recording:
                    evse.set_cp_state("C")  # a replayed car sends no CP changes
                result = await run_plan(plan, out, evse_hook=hook)
        finally:
            store.close()
        return result, out.getvalue(), plan

    return asyncio.run(session())


@pytest.mark.parametrize("protocol", ["iso2", "din"])
def test_session_against_the_secc(tmp_path: Path, protocol: str) -> None:
    text = f"protocols: [{protocol}]\nmax_charge_loops: 3\nloop_interval: 0.01\n"
    result, out, _plan = _run(tmp_path, text)
    assert result.ok, out
    assert result.protocol is AppProtocol.from_name(protocol)
    assert result.requests_sent == result.responses_received
    lines = out.splitlines()
    assert re.match(r"  SessionSetupReq +OK_NewSessionEstablished", lines[3])
    assert sum("CurrentDemandReq" in line for line in lines) == 3
    assert "EV sets CP state C" in out and re.search(r"SessionStopReq +OK", out)
    summary = summary_lines(result)
    assert summary[0] == "result:      ok (charge loop limit reached)"
    assert summary[-2] == f"session ID:  {result.session_id.hex().upper()}"


def test_failed_session(tmp_path: Path) -> None:
    text = "faults: [{type: wrong_session_id, message: ServiceDiscoveryReq}]\n"
    result, out, _plan = _run(tmp_path, text)
    assert not result.ok and "FAILED" in result.reason
    assert re.search(r"ServiceDiscoveryReq +FAILED_UnknownSession", out)
    assert summary_lines(result)[0].startswith("result:      FAILED")


def test_replayed_car(tmp_path: Path) -> None:
    capture = require(CORPUS / "pcaps" / KONA)
    text = f"replay: {{capture: '{capture}'}}\nloop_interval: 0.002\n"
    # the recorded car pre-charges at its own pace: ramp fast enough for any machine load
    result, out, plan = _run(tmp_path, text, voltage_ramp_rate=1e6, current_ramp_rate=5000)
    assert plan.recording is not None and plan.recording.protocol is AppProtocol.DIN
    assert result.ok and result.reason == "replay complete", out
    # every recorded request once, except repetitions of Ongoing steps the charger finished
    assert 100 < result.requests_sent <= len(plan.recording.request_names) + 1
    assert not any(line.startswith("energy") for line in summary_lines(result, replay=True))


def test_exit_codes_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "max_charge_loops: 1\nloop_interval: 0.01\n", "good.yaml")
    bad = write(tmp_path, "faults: [{type: wrong_session_id, message: CableCheckReq}]\n", "b.yaml")

    async def run_both() -> tuple[int, int, int]:
        server, evse, store = _secc(tmp_path)
        evse.set_cp_state("C")  # the command line has no EVSE to switch the pilot of
        try:
            async with server:
                port = str(server.tcp_endpoint.port)
                argv = ["ev", "run", "--host", "::1", "--port", port, "--config"]
                ok = await asyncio.to_thread(main, [*argv, str(good)])
                failed = await asyncio.to_thread(main, [*argv, str(bad)])
        finally:
            store.close()
        # the server is closed: nobody listens on its port any more
        unreachable = await asyncio.to_thread(main, [*argv, str(good)])
        return ok, failed, unreachable

    assert asyncio.run(run_both()) == (0, 1, 1)
    captured = capsys.readouterr()
    assert re.search(r"CurrentDemandReq +OK", captured.out)
    assert "result:      ok" in captured.out and "result:      FAILED" in captured.out
    assert re.search(r"CableCheckReq +FAILED_UnknownSession", captured.out)
    assert "error: cannot reach the SECC" in captured.err


def test_plug_and_charge_over_tls(pki: TestPki, pki_dir: Path, tmp_path: Path) -> None:
    """TLS and PnC material from the file: certificate installation, then a signed session;
    the installed contract is saved, and a second run renews it (CertificateUpdate)."""
    from iso15118.transport.tls import CertificateChain, Iso2ServerConfig, iso2_server_context
    from pki.store import TrustStore
    from secc.backend import LocalBackend
    from secc.context import SeccConfig
    from secc.provisioning import LocalProvisioning
    from secc.server import SeccServer, SeccServerConfig
    from secc.simulated import SimulatedEVSE
    from secc.store import SessionStore

    chain = CertificateChain(
        certificates=(pki_dir / "chains" / "secc.pem",),
        private_key=pki_dir / "keys" / "secc.key.pem",
        password=b"secret",
    )
    trust = TrustStore(
        [pki[Role.MO_ROOT].certificate, pki[Role.V2G_ROOT].certificate],
        [pki[Role.MO_SUB_CA_1].certificate, pki[Role.MO_SUB_CA_2].certificate],
    )
    text = """
payment: pnc
max_charge_loops: 2
loop_interval: 0.01
network: {tls: true, trust_anchors: [trust/v2g-root.pem]}
pnc:
  oem_provisioning_cert: certs/oem-provisioning.pem
  oem_provisioning_key: keys/oem-provisioning.key.pem
  oem_provisioning_key_password: secret
  root_certificates: trust/v2g-root.pem
  install_certificate: true
  save_contract_to: saved
"""

    async def session(text: str, name: str) -> tuple[Any, str]:
        store = SessionStore(tmp_path / "db")
        evse = SimulatedEVSE()
        backend = LocalBackend(
            store=store, allowed_emaids=["*"], provisioning=LocalProvisioning.from_test_pki(pki)
        )
        config = SeccServerConfig(
            protocol=SeccConfig(contract_trust=trust),
            host="::1",
            tcp_port=None,
            tls_port=0,
            tls_context=iso2_server_context(Iso2ServerConfig(chain=chain)),
        )
        server = SeccServer(config, controller=evse, backend=backend, store=store)
        try:
            async with server:
                assert server.tls_endpoint is not None
                port = server.tls_endpoint.port
                plan = build(write(pki_dir, text, name), host="::1", port=port)
                out = io.StringIO()
                result = await run_plan(plan, out, evse_hook=lambda c: evse.set_cp_state(c.state))
        finally:
            store.close()
        return result, out.getvalue()

    result, out = asyncio.run(session(text, "pnc-tls.yaml"))
    assert result.ok, out
    assert out.startswith("connected to [::1]:") and "(TLS)" in out.splitlines()[0]
    assert re.search(r"CertificateInstallationReq +OK", out) and "contract installed" in out
    assert re.search(r"PaymentServiceSelectionReq +OK +Contract", out)
    assert re.search(r"AuthorizationReq +OK +Finished", out)
    saved = pki_dir / "saved"
    assert f"saved to {saved / 'contract.pem'}" in out
    assert (saved / "contract.key.pem").stat().st_mode & 0o777 == 0o600
    assert len(load_certificates((saved / "contract.pem").read_bytes())) == 3  # and sub-CAs
    renew = """
payment: pnc
max_charge_loops: 2
loop_interval: 0.01
network: {tls: true, trust_anchors: [trust/v2g-root.pem]}
pnc:
  contract_chain: saved/contract.pem
  contract_key: saved/contract.key.pem
  root_certificates: trust/v2g-root.pem
  update_certificate: true
  save_contract_to: saved
"""
    installed = (saved / "contract.pem").read_bytes()
    result, out = asyncio.run(session(renew, "pnc-renew.yaml"))
    assert result.ok, out
    assert re.search(r"CertificateUpdateReq +OK", out) and "contract updated" in out
    assert re.search(r"AuthorizationReq +OK +Finished", out)
    assert (saved / "contract.pem").read_bytes() != installed  # the renewed one, saved

