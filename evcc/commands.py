"""`iso15118 ev run --config FILE`: one EV charging session (or a recorded car replayed)
against a charger, one line per exchanged message, then a summary.

    iso15118 ev run --config examples/ev.yaml [--host H --port P] [--interface IF] [--check]

`--host`/`--port` and `--interface` override the file's `network` keys. Exit code 0 when the
session ended ok, 1 when it did not (or the charger could not be reached), 2 for a bad
configuration. In code: `plan = build(path, ...)`, then `await run_plan(plan, out)`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import ssl

    from evcc.client import EvCore, EvResult, EvseHook
    from evcc.config_file import EvFile
    from evcc.events import EvEvent, SessionFinished
    from evcc.replay import Recording

__all__ = ["EvPlan", "add_parser", "build", "run_plan", "save_contract", "summary_lines"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = commands.add_parser(
        "ev", help="the car side (EV simulator)", description="The EV simulator (EVCC)."
    )
    sub = ev.add_subparsers(title="commands", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run one charging session as configured",
        description="Connect to a charger (directly, or after SDP discovery on an interface), "
        "run one session as the file describes (or replay a recorded car), print each "
        "exchange and a summary. Exit code 0: the session ended ok; 1: it did not.",
    )
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="YAML file")
    run.add_argument("--host", help="the SECC's IPv6 address (with --port; overrides the file)")
    run.add_argument("--port", type=int, help="the SECC's TCP/TLS port")
    run.add_argument("--interface", metavar="IF", help="SDP discovery / link-local scope")
    run.add_argument("--check", action="store_true", help="only check the configuration")
    run.set_defaults(run=_run)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvPlan:
    """A checked configuration, ready to run: the file, where to connect, the TLS context
    and (when replaying) the recorded car."""

    file: EvFile
    host: str | None
    port: int | None
    interface: str | None
    ssl_context: ssl.SSLContext | None
    recording: Recording | None


def build(
    path: Path, *, host: str | None = None, port: int | None = None, interface: str | None = None
) -> EvPlan:
    """Read and check the file; the arguments override its `network` keys (ConfigError)."""
    from evcc.config_file import read_ev_config
    from iso15118.yamlconf import ConfigError

    file = read_ev_config(path)
    network = file.network
    if (host is None) != (port is None):
        raise ConfigError("--host and --port go together")
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"--port: {port} is outside 1..65535")
    if host is not None:
        network = replace(network, host=host, port=port)
    if interface is not None:
        network = replace(network, interface=interface)
    if network.host is None and network.interface is None:
        raise ConfigError(
            "network: give host and port, or an interface for SDP discovery "
            "(or --host/--port, --interface)"
        )
    file = replace(file, network=network)
    return EvPlan(
        file=file,
        host=network.host,
        port=network.port,
        interface=network.interface,
        ssl_context=_tls_context(file) if file.config.tls else None,
        recording=_recording(file),
    )


def _tls_context(file: EvFile) -> ssl.SSLContext:
    from iso15118.transport.tls import (
        Iso2ClientConfig,
        KeyLogError,
        TLSConfigError,
        iso2_client_context,
    )
    from iso15118.yamlconf import ConfigError

    network = file.network
    config = Iso2ClientConfig(trust_anchors=network.trust_anchors, keylog_file=network.keylog_file)
    try:
        return iso2_client_context(config)
    except KeyLogError as exc:
        raise ConfigError(f"network.keylog_file: {exc}") from None
    except TLSConfigError as exc:
        raise ConfigError(f"network.trust_anchors: {exc}") from None


def _recording(file: EvFile) -> Recording | None:
    if file.replay is None:
        return None
    from iso15118.cli import read_capture_file
    from iso15118.yamlconf import ConfigError

    try:
        from evcc.replay import recording_from_messages
        from iso15118.trace.capture import assign_schemas
        from iso15118.trace.schemas import decode_handshake_with_codec

        capture = read_capture_file(str(file.replay.capture))
        messages = assign_schemas(capture.messages, decode_handshake_with_codec)
        return recording_from_messages(messages, file.replay.connection)
    except ValueError as exc:
        raise ConfigError(f"replay.capture: {exc}") from None


# --- running ----------------------------------------------------------------------------------


async def run_plan(
    plan: EvPlan,
    out: TextIO,
    *,
    evse_hook: EvseHook | None = None,
    random: Callable[[int], bytes] = os.urandom,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> EvResult:
    """Connect, run the session (or the replay), print each exchange to `out`; return the
    summary. A replay reports no energy and NaN as its final SoC. Raises what the
    transport raises when the charger cannot be reached (see `_UNREACHABLE`)."""
    from evcc.client import drive
    from evcc.replay import ReplaySession
    from evcc.session import EvSession
    from iso15118.transport.connection import ConnectionOptions
    from iso15118.transport.stream import StreamLimits
    from iso15118.transport.tcp import open_v2gtp_connection

    config = plan.file.config
    address, port, ssl_context = await _endpoint(plan, out)
    options = ConnectionOptions(limits=StreamLimits(idle_timeout=None))
    connection = await open_v2gtp_connection(
        address, port, plan.interface, ssl_context, options=options
    )
    print(f"connected to [{address}]:{port}{' (TLS)' if ssl_context else ''}", file=out)
    core: EvSession | ReplaySession
    if plan.recording is not None:
        core = ReplaySession(
            plan.recording,
            ongoing_interval=config.ongoing_interval,
            loop_interval=config.loop_interval,
        )
    else:
        core = EvSession(config, random=random, clock=clock)
    reporter = _Reporter(core, out)
    events = await drive(reporter, connection, evse_hook=evse_hook)
    reporter.flush()
    if plan.file.save_contract is not None:
        save_contract(events, plan.file.save_contract, out)
    return _result(core, events)


def save_contract(events: Sequence[EvEvent], directory: Path, out: TextIO) -> Path | None:
    """Write the contract the session installed or renewed last (if any) to `directory`:
    ``contract.pem`` (the chain, contract certificate first) and ``contract.key.pem`` (its
    key, PKCS#8 PEM, unencrypted, readable by the owner only), each replaced atomically, so
    that the next run's `pnc.contract_chain` / `pnc.contract_key` can name them. Returns the
    chain file, or None when there was nothing to save."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from evcc.events import ContractInstalled, ContractUpdated

    contracts = [e for e in events if isinstance(e, ContractInstalled | ContractUpdated)]
    if not contracts:
        return None
    last = contracts[-1]
    if last.contract_key is None or not last.contract_chain:
        return None
    chain = b"".join(
        x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
        for der in last.contract_chain
    )
    key = last.contract_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    chain_file, key_file = directory / "contract.pem", directory / "contract.key.pem"
    _write_atomically(key_file, key, mode=0o600)
    _write_atomically(chain_file, chain, mode=0o644)
    print(f"  contract (eMAID {last.emaid}) saved to {chain_file} and {key_file}", file=out)
    return chain_file


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.chmod(temporary, mode)  # whatever the umask or an older file said
    os.replace(temporary, path)


async def _endpoint(plan: EvPlan, out: TextIO) -> tuple[str, int, ssl.SSLContext | None]:
    if plan.host is not None and plan.port is not None:
        return plan.host, plan.port, plan.ssl_context
    from iso15118.sdp import Security
    from iso15118.transport.sdp_client import discover
    from iso15118.yamlconf import ConfigError

    assert plan.interface is not None  # build() checked
    wanted = Security.TLS if plan.ssl_context is not None else Security.NO_TLS
    found = await discover(plan.interface, wanted)
    print(f"SDP: SECC at [{found.address}]:{found.port}, {found.security.name}", file=out)
    if found.security is Security.NO_TLS:
        return str(found.address), found.port, None
    if plan.ssl_context is None:
        raise ConfigError("the SECC wants TLS: set network.tls and network.trust_anchors")
    return str(found.address), found.port, plan.ssl_context


def _result(core: Any, events: tuple[EvEvent, ...]) -> EvResult:
    from evcc.client import EvResult
    from evcc.events import SessionFinished
    from evcc.session import EvSession

    end: SessionFinished = core.finished or SessionFinished(False, "not finished")
    simulated = isinstance(core, EvSession)
    return EvResult(
        protocol=core.protocol,
        ok=end.ok,
        reason=end.reason,
        energy_wh=core.ctx.battery.energy_wh if simulated else 0.0,
        final_soc=core.ctx.battery.soc if simulated else math.nan,
        requests_sent=core.requests_sent,
        responses_received=core.responses_received,
        session_id=end.session_id,
        paused=end.paused,
        events=events,
    )


class _Reporter:
    """Wraps a session core for `drive`: prints each exchange as its events are drained."""

    def __init__(self, core: EvCore, out: TextIO) -> None:
        self._core = core
        self._out = out
        self._pending: tuple[str, Any] | None = None  # the request awaiting its response

    @property
    def finished(self) -> SessionFinished | None:
        return self._core.finished

    def start(self, now: float) -> None:
        self._core.start(now)

    def receive_data(self, data: bytes, now: float) -> None:
        self._core.receive_data(data, now)

    def data_to_send(self) -> bytes:
        return self._core.data_to_send()

    def get_timer(self) -> float | None:
        return self._core.get_timer()

    def handle_timer(self, now: float) -> None:
        self._core.handle_timer(now)

    def close(self, reason: str = "the connection closed") -> None:
        self._core.close(reason)

    def next_event(self) -> EvEvent | None:
        event = self._core.next_event()
        if event is not None:
            self._show(event)
        return event

    def flush(self) -> None:
        """Print a request that got no response."""
        if self._pending is not None:
            self._line(self._pending[0], "(no response)", "")
            self._pending = None

    def _show(self, event: EvEvent) -> None:
        from evcc import events as ev

        if isinstance(event, ev.MessageSent):
            self.flush()
            self._pending = (event.name, event.message)
        elif isinstance(event, ev.MessageReceived):
            name, request = self._pending or (event.name, None)
            self._pending = None
            detail = _detail(request, event.message)
            self._line(name, event.response_code or "-", detail)
        elif isinstance(event, ev.ProtocolNegotiated):
            print(
                f"  protocol: {event.protocol.title} (SchemaID {event.schema_id})", file=self._out
            )
        elif isinstance(event, ev.ControlPilotChange):
            print(f"  EV sets CP state {event.state.value}", file=self._out)
        elif isinstance(event, ev.ContractInstalled):
            print(f"  contract installed, eMAID {event.emaid}", file=self._out)
        elif isinstance(event, ev.ContractUpdated):
            print(f"  contract updated, eMAID {event.emaid}", file=self._out)
        elif isinstance(event, ev.SessionFinished):
            self.flush()

    def _line(self, name: str, code: str, detail: str) -> None:
        print(f"  {name:<29} {code:<26} {detail}".rstrip(), file=self._out, flush=True)


def _detail(request: Any, response: Any) -> str:
    from evcc.common import body_element
    from iso15118.demo import describe

    if request is None or not hasattr(request, "Body") or not hasattr(response, "Body"):
        return ""
    try:
        return describe(body_element(request)[1], body_element(response)[1])
    except ValueError:
        return ""


def summary_lines(result: EvResult, *, replay: bool = False) -> list[str]:
    """The end-of-session summary a technician reads."""
    protocol = result.protocol.title if result.protocol is not None else "none negotiated"
    lines = [
        f"result:      {'ok' if result.ok else 'FAILED'} ({result.reason})",
        f"protocol:    {protocol}",
        f"messages:    {result.requests_sent} requests, {result.responses_received} responses",
    ]
    if not replay:
        lines += [
            f"energy:      {result.energy_wh:.1f} Wh",
            f"final SoC:   {result.final_soc:.1f} %",
        ]
    lines += [
        f"session ID:  {result.session_id.hex().upper() or '-'}",
        f"paused:      {'yes' if result.paused else 'no'}",
    ]
    return lines


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from iso15118.transport.connection import ConnectionClosed
    from iso15118.transport.endpoint import EndpointError
    from iso15118.transport.netif import NetifError
    from iso15118.transport.sdp_client import SdpDiscoveryError

    plan = build(args.config, host=args.host, port=args.port, interface=args.interface)
    if args.check:
        print(f"{args.config}: OK")
        return 0
    logging.basicConfig(
        level=plan.file.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        result = asyncio.run(run_plan(plan, sys.stdout))
    except (ConnectionClosed, EndpointError, NetifError, SdpDiscoveryError) as exc:
        print(f"error: cannot reach the SECC: {exc}", file=sys.stderr)
        return 1
    for line in summary_lines(result, replay=plan.recording is not None):
        print(line)
    return 0 if result.ok else 1
