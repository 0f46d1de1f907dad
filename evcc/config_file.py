"""`iso15118 ev run --config FILE`: the EV simulator's YAML configuration.

Every key, with its default, is in `examples/ev.yaml`. Unknown keys and bad values are
errors naming the key (`iso15118.yamlconf.ConfigError`). Paths are relative to the file.
Certificates are PEM or DER files; a directory stands for the certificate files in it
(``*.pem``, ``*.crt``, ``*.cer``, ``*.der``), read in name order. Private keys are PEM or DER
(PKCS#8 or SEC1), encrypted or not (`<key>_password` or `<key>_password_file`).

`faults` is a list of mappings, one per fault: `type` names the class (`FAULT_TYPES`), the
other keys are its fields (`evcc.faults`). `CustomMutate` takes a Python function and is
therefore code-only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evcc.battery import BatteryParams
from evcc.config import EvccConfig, Payment, PncCredentials
from evcc.faults import (
    BadSignature,
    EarlyStop,
    Fault,
    MalformedExi,
    MalformedKind,
    OutOfSequence,
    Silence,
    WrongGenChallenge,
    WrongSessionId,
)
from exi_schemas import din, iso2
from iso15118.sap import AppProtocol
from iso15118.yamlconf import ConfigError, Section, load_yaml
from pki.store import load_certificates
from secc.evse import EnergyMode

__all__ = [
    "CERTIFICATE_SUFFIXES",
    "FAULT_TYPES",
    "EvFile",
    "NetworkSettings",
    "ReplaySettings",
    "read_ev_config",
]

CERTIFICATE_SUFFIXES: Final = frozenset({".pem", ".crt", ".cer", ".der"})

#: the `type` of a fault in the file -> its class
FAULT_TYPES: Final[Mapping[str, type[Fault]]] = {
    "wrong_session_id": WrongSessionId,
    "out_of_sequence": OutOfSequence,
    "bad_signature": BadSignature,
    "silence": Silence,
    "malformed_exi": MalformedExi,
    "early_stop": EarlyStop,
    "wrong_gen_challenge": WrongGenChallenge,
}

_DEFAULT: Final = EvccConfig()
_BATTERY: Final = BatteryParams()
_PAYMENTS: Final = {
    "eim": Payment.EIM,
    "externalpayment": Payment.EIM,
    "pnc": Payment.PNC,
    "contract": Payment.PNC,
}
_REQUESTS: Final = frozenset(
    f.name
    for body in (iso2.BodyType, din.BodyType)
    for f in dataclasses.fields(body)
    if f.name.endswith("Req")
)
_BATTERY_LIMITS: Final = (
    "capacity_wh",
    "empty_voltage",
    "full_voltage",
    "max_voltage",
    "max_current",
    "max_power",
    "max_ac_current",
    "min_ac_current",
    "min_taper_current",
    "charge_overhead_voltage",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkSettings:
    """Where the SECC is: `host` and `port` directly, else SDP discovery on `interface`.
    Whether to use TLS is `EvccConfig.tls`; `trust_anchors` are the V2G roots (files)."""

    interface: str | None = None
    host: str | None = None
    port: int | None = None
    trust_anchors: tuple[Path, ...] = ()
    keylog_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySettings:
    """Replay the car recorded in `capture` (its connection number `connection`, or the
    first with a DIN or ISO-2 session) instead of simulating one."""

    capture: Path
    connection: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EvFile:
    """What the file says, resolved; certificates and keys are loaded."""

    config: EvccConfig
    network: NetworkSettings
    replay: ReplaySettings | None
    log_level: str
    #: where `iso15118 ev run` writes a contract it installed or renewed (pnc.save_contract_to)
    save_contract: Path | None = None


class _Section(Section):
    """`Section` plus the getters this file needs: a list of mappings, an optional number,
    one path or a list of them, and the dotted name of a key for messages."""

    @classmethod
    def of(cls, section: Section) -> _Section:
        return cls(section._mapping, section._path, base=section.base)

    def name(self, key: str) -> str:
        return self._name(key)

    def section(self, key: str) -> _Section:
        return _Section.of(super().section(key))

    def sections(self, key: str) -> list[_Section]:
        value = self._get(key, None)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{self.name(key)}: expected a list of mappings")
        out = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise ConfigError(f"{self.name(key)}[{index}]: expected a mapping, got {item!r}")
            out.append(_Section(item, f"{self.name(key)}[{index}]", base=self.base))
        return out

    def optional_number(self, key: str, *, low: float = 0.0) -> float | None:
        value = self._get(key, None)
        if value is None:
            return None
        return _bounded(self, key, math.nan, low)

    def paths(self, key: str) -> list[Path]:
        value = self._get(key, None)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise ConfigError(f"{self.name(key)}: expected a path or a list of paths")
        paths = [Path(item).expanduser() for item in items]
        return [p if p.is_absolute() else self.base / p for p in paths]


def read_ev_config(path: Path) -> EvFile:
    root = _Section.of(load_yaml(path))
    network, tls = _network(root.section("network"))
    pnc_section = root.section("pnc")
    save_contract = pnc_section.path("save_contract_to")
    pnc = _pnc(pnc_section)
    faults = tuple(_fault(item) for item in root.sections("faults"))
    replay = _replay(root.section("replay"))
    battery = _battery(root.section("battery"))
    fields = _session_fields(root)
    log_level = (root.string("log_level", "warning") or "warning").upper()
    root.done()
    try:
        config = EvccConfig(**fields, pnc=pnc, battery=battery, faults=faults, tls=tls)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return EvFile(
        config=config,
        network=network,
        replay=replay,
        log_level=log_level,
        save_contract=save_contract,
    )


# --- values ---------------------------------------------------------------------------------


def _bounded(
    section: _Section, key: str, default: float, low: float, high: float | None = None
) -> float:
    value = section.number(key, default)
    if value < low or (high is not None and value > high) or math.isnan(value):
        bounds = f"{low:g}..{high:g}" if high is not None else f"at least {low:g}"
        raise ConfigError(f"{section.name(key)}: {value:g} is outside {bounds}")
    return value


def _hex(section: _Section, key: str, default: str | None, sizes: tuple[int, int]) -> bytes | None:
    try:
        text = section.string(key, default)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (write hex values in quotes)") from None
    if text is None:
        return None
    digits = "".join(text.replace(":", "").replace("-", "").split())
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        raise ConfigError(f"{section.name(key)}: {text!r} is not hex") from None
    low, high = sizes
    if not low <= len(data) <= high:
        count = f"{low}" if low == high else f"{low} to {high}"
        raise ConfigError(f"{section.name(key)}: expected {count} bytes, got {len(data)}")
    return data


# --- the session --------------------------------------------------------------------------------


def _session_fields(root: _Section) -> dict[str, Any]:
    d = _DEFAULT
    return {
        "protocols": tuple(root.choices("protocols", AppProtocol.from_name, list(d.protocols))),
        "energy_mode": root.choice("energy_mode", EnergyMode, d.energy_mode),
        "payment": _payment(root),
        "evcc_id": _hex(root, "evcc_id", d.evcc_id.hex(), (6, 6)),
        "initial_soc": _bounded(root, "initial_soc", d.initial_soc, 0, 100),
        "target_soc": _bounded(root, "target_soc", d.target_soc, 0, 100),
        "departure_time": root.integer("departure_time", None, low=0, high=0xFFFFFFFF),
        "max_charge_loops": root.integer("max_charge_loops", None, low=1),
        "charge_duration": root.optional_number("charge_duration"),
        "request_service_detail": root.boolean("request_service_detail", False),
        "ongoing_interval": _bounded(root, "ongoing_interval", d.ongoing_interval, 0),
        "loop_interval": _bounded(root, "loop_interval", d.loop_interval, 0),
        "precharge_interval": _bounded(root, "precharge_interval", d.precharge_interval, 0),
        "precharge_tolerance": _bounded(root, "precharge_tolerance", d.precharge_tolerance, 0),
        "welding_detection_count": root.integer(
            "welding_detection_count", d.welding_detection_count, low=0
        ),
        "pause_after_loops": root.integer("pause_after_loops", None, low=1),
        "resume_session_id": _hex(root, "resume_session_id", None, (1, 8)),
        "renegotiate_after_loops": root.integer("renegotiate_after_loops", None, low=1),
        "max_schedule_entries": root.integer("max_schedule_entries", None, low=1),
    }


def _payment(root: _Section) -> Payment:
    text = root.string("payment", "eim") or "eim"
    try:
        return _PAYMENTS[text.lower()]
    except KeyError:
        raise ConfigError(f"payment: {text!r} is not one of eim, pnc") from None


def _battery(section: _Section) -> BatteryParams:
    b = _BATTERY
    values = {name: _bounded(section, name, getattr(b, name), 0) for name in _BATTERY_LIMITS}
    values["taper_soc"] = _bounded(section, "taper_soc", b.taper_soc, 0, 100)
    section.done()
    try:
        return BatteryParams(**values)
    except ValueError as exc:
        raise ConfigError(f"battery: {exc}") from None


# --- network, replay --------------------------------------------------------------------------


def _network(section: _Section) -> tuple[NetworkSettings, bool]:
    interface = section.string("interface")
    host = section.string("host")
    port = section.integer("port", None, low=1, high=65535)
    tls = section.boolean("tls", False)
    anchors = _files(section, "trust_anchors")
    keylog = section.path("keylog_file")
    section.done()
    if (host is None) != (port is None):
        raise ConfigError("network: give host and port together")
    if tls and not anchors:
        raise ConfigError("network.trust_anchors: TLS needs the V2G root certificate(s)")
    settings = NetworkSettings(
        interface=interface, host=host, port=port, trust_anchors=anchors, keylog_file=keylog
    )
    return settings, tls


def _replay(section: _Section) -> ReplaySettings | None:
    capture = section.path("capture")
    connection = section.integer("connection", None, low=0)
    section.done()
    if capture is None:
        if connection is not None:
            raise ConfigError("replay.connection needs replay.capture")
        return None
    if not capture.is_file():
        raise ConfigError(f"replay.capture: {capture} is not a file")
    return ReplaySettings(capture=capture, connection=connection)


def _files(section: _Section, key: str) -> tuple[Path, ...]:
    """The files named by `key`; a directory gives its certificate files."""
    out: list[Path] = []
    for path in section.paths(key):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in CERTIFICATE_SUFFIXES)
            if not found:
                raise ConfigError(f"{section.name(key)}: no certificate files in {path}")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise ConfigError(f"{section.name(key)}: {path} does not exist")
    return tuple(out)


# --- Plug & Charge --------------------------------------------------------------------------


def _pnc(section: _Section) -> PncCredentials | None:
    chain = _certificates(section, "contract_chain")
    contract_key = _private_key(section, "contract_key")
    emaid = section.string("emaid")
    oem_certs = _certificates(section, "oem_provisioning_cert")
    oem_key = _private_key(section, "oem_provisioning_key")
    roots = _certificates(section, "root_certificates")
    install = section.boolean("install_certificate", False)
    update = section.boolean("update_certificate", False)
    within_days = section.optional_number("update_within_days")
    section.done()
    if len(oem_certs) > 1:
        raise ConfigError("pnc.oem_provisioning_cert: expected one certificate, found more")
    given = (chain, contract_key, emaid, oem_certs, oem_key, roots, install, update, within_days)
    if not any(x is not None and x is not False and x != () for x in given):
        return None
    try:
        return PncCredentials(
            contract_chain=chain,
            contract_key=contract_key,
            emaid=emaid,
            oem_provisioning_cert=oem_certs[0] if oem_certs else None,
            oem_provisioning_key=oem_key,
            root_certificates=roots,
            install_certificate=install,
            update_certificate=update,
            update_within=None if within_days is None else timedelta(days=within_days),
        )
    except ValueError as exc:
        raise ConfigError(f"pnc: {exc}") from None


def _certificates(section: _Section, key: str) -> tuple[bytes, ...]:
    """Every certificate in the files named by `key`, in order, as DER."""
    out: list[bytes] = []
    for path in _files(section, key):
        try:
            certificates = load_certificates(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{section.name(key)}: {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{section.name(key)}: {path}: not a certificate ({exc})") from None
        out.extend(c.public_bytes(serialization.Encoding.DER) for c in certificates)
    return tuple(out)


def _password(section: _Section, key: str) -> bytes | None:
    password = section.string(f"{key}_password")
    password_file = section.path(f"{key}_password_file")
    if password is not None and password_file is not None:
        raise ConfigError(f"{section.name(key)}: give a password or a password file, not both")
    if password_file is None:
        return password.encode() if password is not None else None
    try:
        return password_file.read_bytes().strip()
    except OSError as exc:
        name = section.name(f"{key}_password_file")
        raise ConfigError(f"{name}: {exc.strerror or exc}") from None


def _private_key(section: _Section, key: str) -> ec.EllipticCurvePrivateKey | None:
    path = section.path(key)
    password = _password(section, key)
    if path is None:
        if password is not None:
            raise ConfigError(f"{section.name(key)}: a password but no key file")
        return None
    name = section.name(key)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: {path}: {exc.strerror or exc}") from None
    load: Callable[..., Any] = (
        serialization.load_pem_private_key
        if b"-----BEGIN" in data
        else serialization.load_der_private_key
    )
    try:
        key_object = load(data, password)
    except (TypeError, ValueError) as exc:  # wrong or missing password, not a key
        raise ConfigError(f"{name}: {path}: {exc}") from None
    if not isinstance(key_object, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{name}: {path}: not an elliptic-curve key")
    return key_object


# --- faults -----------------------------------------------------------------------------------


def _message(section: _Section, key: str) -> str | None:
    name = section.string(key)
    if name is not None and name not in _REQUESTS:
        raise ConfigError(
            f"{section.name(key)}: {name!r} is not a DIN or ISO-2 request (e.g. CableCheckReq)"
        )
    return name


_FIELD_READERS: Final[Mapping[str, Callable[[_Section, str], Any]]] = {
    "message": _message,
    "send": _message,
    "occurrence": lambda s, k: s.integer(k, 1, low=1),  # null: every occurrence
    "step": lambda s, k: s.integer(k, None, low=1),
    "bit": lambda s, k: s.integer(k, 0, low=0),
    "length": lambda s, k: s.integer(k, 16, low=1, high=65_000),
    "kind": lambda s, k: s.choice(k, MalformedKind, MalformedKind.GARBAGE),
    "session_id": lambda s, k: _hex(s, k, None, (1, 8)),
    "challenge": lambda s, k: _hex(s, k, None, (16, 16)),
}


def _fault(section: _Section) -> Fault:
    kind = section.string("type")
    if kind is None:
        raise ConfigError(f"{section.name('type')}: missing (one of {', '.join(FAULT_TYPES)})")
    if kind.lower() in ("custom_mutate", "custommutate"):
        raise ConfigError(f"{section.name('type')}: custom_mutate takes a function: code only")
    cls = FAULT_TYPES.get(kind.lower())
    if cls is None:
        raise ConfigError(
            f"{section.name('type')}: unknown fault {kind!r} (one of {', '.join(FAULT_TYPES)})"
        )
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if section.has(f.name):
            values[f.name] = _FIELD_READERS[f.name](section, f.name)
        if f.default is dataclasses.MISSING and values.get(f.name) is None:
            raise ConfigError(f"{section.name(f.name)}: missing (needed by {kind})")
    section.done()
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{section.name('type')} {kind}: {exc}") from None
