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


def build(path: Path) -> tuple[Any, Any]:
    """The server and its store from the configuration file (raises ConfigError)."""
    from dataclasses import replace

    from iso15118.transport.tls import CertificateChain, Iso2ServerConfig, iso2_server_context
    from pki.store import TrustStore, load_certificates
    from secc.backend import load_backend
    from secc.config_file import read_secc_config
    from secc.evse import load_controller
    from secc.server import SeccServer
    from secc.store import SessionStore

    config = read_secc_config(path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SessionStore(config.data_dir / "secc.db")
    try:
        controller = load_controller(config.evse_class, **config.evse_options)
        options = dict(config.backend_options)
        if config.backend_class == "secc.backend:LocalBackend":
            options.setdefault("store", store)
        backend = load_backend(config.backend_class, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    server_config = config.server
    if config.tls is not None:
        chain = CertificateChain(
            certificates=config.tls.certificate_chain,
            private_key=config.tls.private_key,
            password=config.tls.password,
        )
        server_config = replace(
            server_config, tls_context=iso2_server_context(Iso2ServerConfig(chain=chain))
        )
    if config.contract_roots is not None:
        roots = config.contract_roots
        if roots.is_dir():
            trust = TrustStore.from_directory(roots)
        else:
            trust = TrustStore(load_certificates(roots.read_bytes()))
        server_config = replace(
            server_config, protocol=replace(server_config.protocol, contract_trust=trust)
        )
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(session_id)s] %(message)s",
            defaults={"session_id": "-"},
        )
    )
    logging.basicConfig(level=config.log_level, handlers=[handler])
    server = SeccServer(server_config, controller=controller, backend=backend, store=store)
    return server, store


def _run(args: argparse.Namespace) -> int:
    server, store = build(args.config)
    if args.check:
        print(f"{args.config}: OK")
        store.close()
        return 0
    try:
        asyncio.run(_serve(server))
    finally:
        store.close()
    return 0


async def _serve(server: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        for name, endpoint in (("TCP", server.tcp_endpoint), ("TLS", server.tls_endpoint)):
            if endpoint is not None:
                print(f"SECC listening ({name}) on [{endpoint.host}]:{endpoint.port}", flush=True)
        await stop.wait()
