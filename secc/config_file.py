"""`iso15118 secc run --config FILE`: the SECC's YAML configuration.

Every key, with its default, is in `examples/secc.yaml`. Unknown keys and bad values are
errors naming the key (`iso15118.yamlconf.ConfigError`). Paths are relative to the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iso15118.sap import AppProtocol
from iso15118.sdp import TlsPolicy
from iso15118.yamlconf import ConfigError, Section, load_yaml
from secc.context import PaymentOption, SeccConfig
from secc.server import SeccServerConfig

__all__ = ["SeccFile", "TlsFiles", "read_secc_config"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    certificate_chain: tuple[Path, ...]  # leaf first (PEM or DER), then sub-CAs
    private_key: Path
    password: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SeccFile:
    """What the file says, resolved: the server settings and the plug-ins to load."""

    server: SeccServerConfig
    tls: TlsFiles | None
    contract_roots: Path | None  # directory or file of MO/V2G roots (PnC)
    evse_class: str
    evse_options: dict[str, Any]
    backend_class: str
    backend_options: dict[str, Any]
    data_dir: Path
    log_level: str


def _payment(text: str) -> PaymentOption:
    aliases = {"contract": "Contract", "pnc": "Contract", "eim": "ExternalPayment"}
    token = aliases.get(text.lower(), text)
    if token.lower() == "externalpayment" or token.lower() == "external":
        token = "ExternalPayment"
    return PaymentOption(token)


def read_secc_config(path: Path) -> SeccFile:
    root = load_yaml(path)
    network = root.section("network")
    interface = network.string("interface")
    host = network.string("host", "::1") or "::1"
    tcp_port = network.integer("tcp_port", 15118, low=0, high=65535)
    tls_port = network.integer("tls_port", None, low=0, high=65535)
    sdp = network.boolean("sdp", interface is not None)
    policy = network.choice("tls_policy", TlsPolicy, TlsPolicy.ALLOWED)
    max_connections = network.integer("max_connections", 4, low=1, high=64)
    network.done()

    everything = [AppProtocol.ISO2, AppProtocol.DIN]
    protocols = root.choices("protocols", AppProtocol.from_name, everything)
    payments = root.choices(
        "payment_options", _payment, [PaymentOption.CONTRACT, PaymentOption.EXTERNAL_PAYMENT]
    )
    protocol = SeccConfig(
        protocols=tuple(protocols),
        payment_options=tuple(payments),
        pnc_requires_tls=root.boolean("pnc_requires_tls", True),
        certificate_service=root.boolean("certificate_service", True),
        receipt_required=root.boolean("receipt_required", True),
    )
    tls = _tls(root.section("tls"))
    if tls_port is not None and tls is None:
        raise ConfigError("network.tls_port needs tls.certificate_chain and tls.private_key")
    trust = root.section("trust")
    contract_roots = trust.path("contract_roots")
    trust.done()
    evse = root.section("evse")
    evse_class = evse.string("class", "secc.simulated:SimulatedEVSE") or ""
    evse_options = evse.mapping("options")
    evse.done()
    backend = root.section("backend")
    backend_class = backend.string("class", "secc.backend:LocalBackend") or ""
    backend_options = backend.mapping("options")
    backend.done()
    data_dir = root.path("data_dir", "./secc-data")
    assert data_dir is not None
    log_level = (root.string("log_level", "info") or "info").upper()
    root.done()
    server = SeccServerConfig(
        protocol=protocol,
        host=host,
        interface=interface,
        tcp_port=tcp_port,
        tls_port=tls_port,
        sdp=sdp,
        tls_policy=policy,
        max_connections=max_connections or 4,
    )
    return SeccFile(
        server=server,
        tls=tls,
        contract_roots=contract_roots,
        evse_class=evse_class,
        evse_options=evse_options,
        backend_class=backend_class,
        backend_options=backend_options,
        data_dir=data_dir,
        log_level=log_level,
    )


def _tls(section: Section) -> TlsFiles | None:
    chain = section.choices("certificate_chain", str, [])
    key = section.path("private_key")
    password = section.string("password")
    password_file = section.path("password_file")
    section.done()
    if not chain and key is None:
        return None
    if not chain or key is None:
        raise ConfigError("tls needs both certificate_chain and private_key")
    if password is not None and password_file is not None:
        raise ConfigError("tls: give password or password_file, not both")
    secret: bytes | None = password.encode() if password is not None else None
    if password_file is not None:
        try:
            secret = password_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"tls.password_file: {exc.strerror or exc}") from None
    paths = tuple(p if Path(p).is_absolute() else section.base / p for p in map(Path, chain))
    return TlsFiles(certificate_chain=paths, private_key=key, password=secret)
