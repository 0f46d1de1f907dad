"""`iso15118 secc run --config FILE`: run a charger's V2G communication until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from iso15118.yamlconf import ConfigError

__all__ = ["add_parser"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    secc = commands.add_parser("secc", help="the charger side", description="The charger (SECC).")
    sub = secc.add_subparsers(title="commands", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="serve V2G sessions as configured")
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="YAML file")
    run.add_argument("--check", action="store_true", help="only check the configuration")
    run.set_defaults(run=_run)


def build(path: Path) -> tuple[Any, Any, Any]:
    """The station, its store and the API settings from the configuration file (raises
    ConfigError)."""
    from dataclasses import replace

    from iso15118.transport.tls import CertificateChain, Iso2ServerConfig, iso2_server_context
    from pki.store import TrustStore, load_certificates
    from secc.backend import load_backend
    from secc.billing.config import build_processor, build_worker
    from secc.config_file import read_secc_config
    from secc.evse import load_controller
    from secc.server import SeccServer
    from secc.station import Station
    from secc.store import SessionStore

    config = read_secc_config(path)
    processor = build_processor(config.billing)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    # each record is queued for the configured processor, under its (stable) name
    store = SessionStore(config.data_dir / "secc.db", destinations=(processor.name,))
    try:
        controllers = [load_controller(e.evse_class, **e.evse_options) for e in config.evses]
        options = dict(config.backend_options)
        if config.backend_class == "secc.backend:LocalBackend":
            options.setdefault("store", store)
        backend = load_backend(config.backend_class, **options)
    except (TypeError, ValueError) as exc:
        store.close()
        raise ConfigError(str(exc)) from None
    certificates: list[tuple[str, Any]] = []
    tls_context = None
    if config.tls is not None:
        chain = CertificateChain(
            certificates=config.tls.certificate_chain,
            private_key=config.tls.private_key,
            password=config.tls.password,
        )
        tls_context = iso2_server_context(Iso2ServerConfig(chain=chain))
        for file in config.tls.certificate_chain:
            certificates += [("tls", c) for c in load_certificates(file.read_bytes())]
    trust = None
    if config.contract_roots is not None:
        roots = config.contract_roots
        if roots.is_dir():
            trust = TrustStore.from_directory(roots)
            files = sorted(p for p in roots.iterdir() if p.is_file())
        else:
            trust = TrustStore(load_certificates(roots.read_bytes()))
            files = [roots]
        for file in files:
            try:
                certificates += [("contract-root", c) for c in load_certificates(file.read_bytes())]
            except ValueError:
                continue
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(session_id)s] %(message)s",
            defaults={"session_id": "-"},
        )
    )
    logging.basicConfig(level=config.log_level, handlers=[handler])
    servers = []
    for evse, controller in zip(config.evses, controllers, strict=True):
        server_config = evse.server
        if tls_context is not None:
            server_config = replace(server_config, tls_context=tls_context)
        if trust is not None:
            server_config = replace(
                server_config, protocol=replace(server_config.protocol, contract_trust=trust)
            )
        servers.append(
            SeccServer(
                server_config,
                controller=controller,
                backend=backend,
                store=store,
                processor=processor,
            )
        )
    delivery = build_worker(config.billing, store, processor)
    station = Station(
        servers,
        store=store,
        delivery=delivery,
        site_limit=config.site.max_power,
        certificates=certificates,
        rebalance_interval=config.site.rebalance_interval,
        meter_save_interval=config.billing.meter_save_interval,
        meter_save_wh=config.billing.meter_save_wh,
        version=_version(),
    )
    return station, store, config.api


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iso15118-stack")
    except PackageNotFoundError:
        return "unknown"


def _run(args: argparse.Namespace) -> int:
    station, store, api = build(args.config)
    if args.check:
        print(f"{args.config}: OK ({len(station.servers)} EVSE(s))")
        store.close()
        return 0
    try:
        asyncio.run(_serve(station, api))
    finally:
        store.close()
    return 0


async def _serve(station: Any, api: Any) -> None:
    from secc.api import ApiServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with station:
        for evse_id, server in station.servers.items():
            for name, endpoint in (("TCP", server.tcp_endpoint), ("TLS", server.tls_endpoint)):
                if endpoint is not None:
                    print(
                        f"SECC {evse_id} listening ({name}) on [{endpoint.host}]:{endpoint.port}",
                        flush=True,
                    )
        api_server = ApiServer(station, api) if api.enabled else None
        if api_server is not None:
            await api_server.start()
            print(f"station API on {api_server.url}/api/v1", flush=True)
        try:
            await stop.wait()
        finally:
            if api_server is not None:
                await api_server.close()
    for processor in {id(s.processor): s.processor for s in station.servers.values()}.values():
        if processor is not None:
            await processor.close()
