"""`iso15118 secc run --config FILE`: the SECC's YAML configuration.

Every key, with its default, is in `examples/secc.yaml`; `examples/site.yaml` shows a
station of several EVSEs with a site limit, a tariff, billing to a webhook and the API.
Unknown keys and bad values are errors naming the key (`iso15118.yamlconf.ConfigError`).
Paths are relative to the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iso15118.sap import AppProtocol
from iso15118.sdp import TlsPolicy
from iso15118.yamlconf import ConfigError, Section, load_yaml
from secc.api import ApiConfig, read_api_section
from secc.billing.config import BillingConfig, read_billing_section
from secc.context import PaymentOption, SeccConfig
from secc.server import SeccServerConfig
from secc.tariff import Tariff, read_sales_tariff_signer, read_tariff_section

__all__ = ["EvseFile", "SeccFile", "SiteFile", "TlsFiles", "read_secc_config"]

DEFAULT_EVSE = "secc.simulated:SimulatedEVSE"


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    certificate_chain: tuple[Path, ...]  # leaf first (PEM or DER), then sub-CAs
    private_key: Path
    password: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseFile:
    """One EVSE of the station: its controller plug-in and where its SECC listens."""

    server: SeccServerConfig
    evse_class: str
    evse_options: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteFile:
    max_power: float | None  # W; None: no site limit
    rebalance_interval: float  # s


@dataclass(frozen=True, slots=True, kw_only=True)
class SeccFile:
    """What the file says, resolved: the EVSEs and the plug-ins to load. `server`,
    `evse_class` and `evse_options` are the first EVSE's (a one-EVSE charger's)."""

    evses: tuple[EvseFile, ...]
    tls: TlsFiles | None
    contract_roots: Path | None  # directory or file of MO/V2G roots (PnC)
    backend_class: str
    backend_options: dict[str, Any]
    billing: BillingConfig
    tariff: Tariff | None
    site: SiteFile
    api: ApiConfig
    data_dir: Path
    log_level: str

    @property
    def server(self) -> SeccServerConfig:
        return self.evses[0].server

    @property
    def evse_class(self) -> str:
        return self.evses[0].evse_class

    @property
    def evse_options(self) -> dict[str, Any]:
        return self.evses[0].evse_options


def _payment(text: str) -> PaymentOption:
    aliases = {"contract": "Contract", "pnc": "Contract", "eim": "ExternalPayment"}
    token = aliases.get(text.lower(), text)
    if token.lower() == "externalpayment" or token.lower() == "external":
        token = "ExternalPayment"
    return PaymentOption(token)


def _network(section: Section, defaults: dict[str, Any]) -> dict[str, Any]:
    """The listener settings of `section`, each defaulting to `defaults` (the top-level
    ``network`` of a station, for each EVSE's own ``network``)."""
    d = defaults
    interface = section.string("interface", d.get("interface"))
    out = {
        "interface": interface,
        "host": section.string("host", d.get("host", "::1")) or "::1",
        "tcp_port": section.integer("tcp_port", d.get("tcp_port", 15118), low=0, high=65535),
        "tls_port": section.integer("tls_port", d.get("tls_port"), low=0, high=65535),
        "sdp": section.boolean("sdp", d.get("sdp", interface is not None)),
        "tls_policy": section.choice(
            "tls_policy", TlsPolicy, d.get("tls_policy", TlsPolicy.ALLOWED)
        ),
        "max_connections": section.integer(
            "max_connections", d.get("max_connections", 4), low=1, high=64
        ),
    }
    section.done()
    return out


def _plugin(section: Section, default: str) -> tuple[str, dict[str, Any]]:
    name = section.string("class", default) or ""
    options = section.mapping("options")
    return name, options


def read_secc_config(path: Path) -> SeccFile:
    root = load_yaml(path)
    network = _network(root.section("network"), {})

    everything = [AppProtocol.ISO2, AppProtocol.DIN]
    protocols = root.choices("protocols", AppProtocol.from_name, everything)
    payments = root.choices(
        "payment_options", _payment, [PaymentOption.CONTRACT, PaymentOption.EXTERNAL_PAYMENT]
    )
    tariff = read_tariff_section(root.section("tariff"))
    protocol = SeccConfig(
        protocols=tuple(protocols),
        payment_options=tuple(payments),
        pnc_requires_tls=root.boolean("pnc_requires_tls", True),
        certificate_service=root.boolean("certificate_service", True),
        receipt_required=root.boolean("receipt_required", True),
        eim_token_required=root.boolean("eim_token_required", False),
        tariff=tariff,
        sales_tariff_signer=read_sales_tariff_signer(root.section("sales_tariff_signer")),
    )
    tls = _tls(root.section("tls"))
    trust = root.section("trust")
    contract_roots = trust.path("contract_roots")
    trust.done()
    if root.has("evse") and root.has("evses"):
        raise ConfigError("give evse (one EVSE) or evses (several), not both")
    plugins: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if root.has("evses"):
        items = root.section_list("evses")
        if not items:
            raise ConfigError("evses: give at least one EVSE")
        for item in items:
            evse_class, evse_options = _plugin(item, DEFAULT_EVSE)
            listen = _network(item.section("network"), network)
            item.done()
            plugins.append((evse_class, evse_options, listen))
    else:
        evse = root.section("evse")
        evse_class, evse_options = _plugin(evse, DEFAULT_EVSE)
        evse.done()
        plugins.append((evse_class, evse_options, network))
    backend = root.section("backend")
    backend_class, backend_options = _plugin(backend, "secc.backend:LocalBackend")
    backend.done()
    billing = read_billing_section(root.section("billing"))
    site_section = root.section("site")
    max_power = site_section.number("max_power", -1.0) if site_section.has("max_power") else None
    if max_power is not None and max_power < 0:
        raise ConfigError("site.max_power: expected watts >= 0 (or leave it out: no limit)")
    site = SiteFile(
        max_power=max_power,
        rebalance_interval=site_section.number("rebalance_interval", 5.0),
    )
    site_section.done()
    api = read_api_section(root.section("api"))
    data_dir = root.path("data_dir", "./secc-data")
    assert data_dir is not None
    log_level = (root.string("log_level", "info") or "info").upper()
    root.done()
    evses = []
    seen: set[tuple[Any, ...]] = set()
    for evse_class, evse_options, listen in plugins:
        if listen["tls_port"] is not None and tls is None:
            raise ConfigError("network.tls_port needs tls.certificate_chain and tls.private_key")
        for kind in ("tcp_port", "tls_port"):
            port = listen[kind]
            key = (listen["interface"] or listen["host"], port)
            if port and key in seen:
                raise ConfigError(f"two EVSEs listen on the same port {port}: give each its own")
            if port:
                seen.add(key)
        server = SeccServerConfig(protocol=protocol, **listen)
        evses.append(EvseFile(server=server, evse_class=evse_class, evse_options=evse_options))
    return SeccFile(
        evses=tuple(evses),
        tls=tls,
        contract_roots=contract_roots,
        backend_class=backend_class,
        backend_options=backend_options,
        billing=billing,
        tariff=tariff,
        site=site,
        api=api,
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
