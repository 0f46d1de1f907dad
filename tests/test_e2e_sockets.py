"""Whole sessions over real sockets: `SeccServer` on ::1 (TCP or TLS) with a simulated EVSE
and a local backend (SQLite store, local certificate provisioning), and the EV simulator's
`run_ev` connecting to it.

Covers DIN DC EIM, ISO-2 AC and DC EIM over TCP, ISO-2 DC Plug & Charge over TLS with a
certificate installation and with a contract the car already has, pause and resume, EV- and
SECC-initiated renegotiation; after each session the billing record is in the store, and
the server closes with no task or socket left behind. Intervals are short, so each session
takes well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from evcc.client import EvResult, run_ev
from evcc.config import EvccConfig, Payment, PncCredentials
from iso15118.sap import AppProtocol
from iso15118.transport.tls import (
    CertificateChain,
    Iso2ClientConfig,
    Iso2ServerConfig,
    iso2_client_context,
    iso2_server_context,
)
from pki.create import TestPki, create_pki, write_pki
from pki.profiles import Role, Standard
from pki.store import TrustStore
from secc.backend import LocalBackend
from secc.context import SeccConfig
from secc.events import MessageExchanged, SessionEvent
from secc.evse import EnergyMode
from secc.provisioning import LocalProvisioning
from secc.records import BillingRecord, IdentificationKind, StopReason
from secc.server import SeccServer, SeccServerConfig
from secc.simulated import SimulatedEVSE
from secc.store import SessionStore

DER = serialization.Encoding.DER

#: a quick car: short intervals, a few charge loops
FAST = EvccConfig(
    protocols=(AppProtocol.ISO2,),
    loop_interval=0.02,
    ongoing_interval=0.05,
    precharge_interval=0.02,
    max_charge_loops=4,
    initial_soc=40.0,
    target_soc=90.0,
)


# --------------------------------------------------------------------------- the PKI


@dataclass(frozen=True, slots=True)
class Pki:
    pki: TestPki
    directory: Path

    def server_tls(self) -> Any:
        d = self.directory
        chain = CertificateChain(
            certificates=(d / "chains" / "secc.pem",), private_key=d / "keys" / "secc.key.pem"
        )
        return iso2_server_context(Iso2ServerConfig(chain=chain))

    def client_tls(self) -> Any:
        anchors = (self.directory / "trust" / "v2g-root.pem",)
        return iso2_client_context(Iso2ClientConfig(trust_anchors=anchors))

    def contract_trust(self) -> TrustStore:
        p = self.pki
        return TrustStore(
            [p[Role.MO_ROOT].certificate, p[Role.V2G_ROOT].certificate],
            [p[Role.MO_SUB_CA_1].certificate, p[Role.MO_SUB_CA_2].certificate],
        )

    def credentials(self, *, install: bool) -> PncCredentials:
        p = self.pki
        roots = (p[Role.V2G_ROOT].certificate.public_bytes(DER),)
        if install:
            return PncCredentials(
                oem_provisioning_cert=p[Role.OEM_PROVISIONING].certificate.public_bytes(DER),
                oem_provisioning_key=p[Role.OEM_PROVISIONING].key,  # type: ignore[arg-type]
                root_certificates=roots,
                install_certificate=True,
            )
        return PncCredentials(
            contract_chain=tuple(c.public_bytes(DER) for c in p.chain(Role.CONTRACT)),
            contract_key=p[Role.CONTRACT].key,  # type: ignore[arg-type]
            root_certificates=roots,
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    created = create_pki(Standard.ISO2, at=datetime.now(UTC))
    write_pki(created, directory)
    return Pki(created, directory)


# --------------------------------------------------------------------------- the SECC


@dataclass
class Secc:
    """A running SECC and what it saw."""

    server: SeccServer
    evse: SimulatedEVSE
    store: SessionStore
    events: list[SessionEvent] = field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        endpoint = self.server.tls_endpoint or self.server.tcp_endpoint
        assert endpoint is not None
        return endpoint.host, endpoint.port

    def exchanged(self) -> list[tuple[str, str]]:
        return [
            (e.request_name, e.response_code)
            for e in self.events
            if isinstance(e, MessageExchanged)
        ]

    def names(self) -> list[str]:
        """Request names in order, repetitions collapsed; every answer must be OK."""
        out: list[str] = []
        for name, code in self.exchanged():
            assert code.startswith("OK"), (name, code)
            if not out or out[-1] != name:
                out.append(name)
        return out

    def hook(self, change: Any) -> None:
        self.evse.set_cp_state(change.state)

    async def record(self, session_id: bytes) -> BillingRecord:
        """The session's billing record from the store (committed before the answer to
        the car's SessionStopReq, so no waiting is needed)."""
        records = self.store.billing_records(session_id=session_id.hex().upper())
        assert len(records) == 1, records
        assert records[0] in self.server.records
        return records[0]


@contextlib.asynccontextmanager
async def running_secc(
    directory: Path,
    *,
    pki: Pki | None = None,
    dc: bool = True,
    protocols: tuple[AppProtocol, ...] = (AppProtocol.ISO2, AppProtocol.DIN),
    **listen: Any,
) -> AsyncIterator[Secc]:
    """An SECC on ::1: TCP, or TLS (with contract trust and provisioning) when `pki` is given.
    `listen`: other `SeccServerConfig` fields (host, interface, sdp, ...)."""
    store = SessionStore(directory / "secc.db")
    evse = SimulatedEVSE(
        dc=dc,
        meter_wh=50_000,
        voltage_ramp_rate=20_000.0,
        current_ramp_rate=20_000.0,
        isolation_check_duration=0.05,
    )
    backend = LocalBackend(
        store=store,
        free_charging=True,
        allowed_emaids=["*"],
        provisioning=LocalProvisioning.from_test_pki(pki.pki) if pki else None,
    )
    protocol = SeccConfig(protocols=protocols, contract_trust=pki.contract_trust() if pki else None)
    config = SeccServerConfig(
        protocol=protocol,
        host="::1",
        tcp_port=None if pki else 0,
        tls_port=0 if pki else None,
        tls_context=pki.server_tls() if pki else None,
    )
    config = dataclasses.replace(config, **listen)
    secc = Secc(SeccServer(config, controller=evse, backend=backend, store=store), evse, store)
    secc.server.observers.append(secc.events.append)
    try:
        async with secc.server:
            yield secc
    finally:
        store.close()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `test` on a fresh loop; afterwards no task of it is left and no socket is open."""
    before = _open_fds()

    async def main() -> None:
        await test()
        await asyncio.sleep(0)  # let closed transports finish
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        assert not leftover, leftover

    asyncio.run(main())
    leaked = {
        fd
        for fd in _open_fds() - before
        if os.path.exists(f"/proc/self/fd/{fd}")
        and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    }
    assert not leaked, leaked


async def ev(secc: Secc, config: EvccConfig, ssl_context: Any = None, **changes: Any) -> EvResult:
    host, port = secc.host_port
    config = dataclasses.replace(config, **changes)
    return await run_ev(config, host, port, ssl_context=ssl_context, evse_hook=secc.hook)


DC_ISO2 = [
    "SessionSetupReq",
    "ServiceDiscoveryReq",
    "PaymentServiceSelectionReq",
    "AuthorizationReq",
    "ChargeParameterDiscoveryReq",
    "CableCheckReq",
    "PreChargeReq",
    "PowerDeliveryReq",
    "CurrentDemandReq",
    "PowerDeliveryReq",
    "WeldingDetectionReq",
    "SessionStopReq",
]


# --------------------------------------------------------------------------- EIM over TCP


def test_din_dc_eim_over_tcp(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_secc(tmp_path, protocols=(AppProtocol.DIN,)) as secc:
            result = await ev(secc, FAST, protocols=(AppProtocol.DIN,))
            assert result.ok, result.reason
            assert result.protocol is AppProtocol.DIN
            assert secc.names() == [
                "SessionSetupReq",
                "ServiceDiscoveryReq",
                "ServicePaymentSelectionReq",
                "ContractAuthenticationReq",
                "ChargeParameterDiscoveryReq",
                "CableCheckReq",
                "PreChargeReq",
                "PowerDeliveryReq",
                "CurrentDemandReq",
                "PowerDeliveryReq",
                "WeldingDetectionReq",
                "SessionStopReq",
            ]
            record = await secc.record(result.session_id)
            assert record.protocol == "din"
            assert record.kind is IdentificationKind.EXTERNAL
            assert record.stop_reason is StopReason.EV_STOPPED
            assert record.energy_wh > 0

    run(test)


def test_iso2_ac_eim_over_tcp(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_secc(tmp_path, dc=False) as secc:
            result = await ev(secc, FAST, energy_mode=EnergyMode.AC_THREE_PHASE_CORE)
            assert result.ok, result.reason
            assert secc.names() == [
                "SessionSetupReq",
                "ServiceDiscoveryReq",
                "PaymentServiceSelectionReq",
                "AuthorizationReq",
                "ChargeParameterDiscoveryReq",
                "PowerDeliveryReq",
                "ChargingStatusReq",
                "PowerDeliveryReq",
                "SessionStopReq",
            ]
            record = await secc.record(result.session_id)
            assert record.protocol == "iso2"
            assert record.stop_reason is StopReason.EV_STOPPED
            assert record.meter_start is not None and record.meter_stop is not None

    run(test)


def test_iso2_dc_eim_over_tcp(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_secc(tmp_path) as secc:
            result = await ev(secc, FAST)
            assert result.ok, result.reason
            assert result.protocol is AppProtocol.ISO2
            assert secc.names() == DC_ISO2
            record = await secc.record(result.session_id)
            assert record.kind is IdentificationKind.EXTERNAL
            assert record.energy_wh > 0
            assert not secc.server.live  # the session left the live table

    run(test)


# --------------------------------------------------------------------------- PnC over TLS


def test_iso2_dc_pnc_over_tls_with_certificate_installation(tmp_path: Path, pki: Pki) -> None:
    async def test() -> None:
        async with running_secc(tmp_path, pki=pki) as secc:
            config = dataclasses.replace(
                FAST, payment=Payment.PNC, tls=True, pnc=pki.credentials(install=True)
            )
            result = await ev(secc, config, pki.client_tls())
            assert result.ok, result.reason
            names = secc.names()
            assert names[:6] == [
                "SessionSetupReq",
                "ServiceDiscoveryReq",
                "PaymentServiceSelectionReq",
                "CertificateInstallationReq",
                "PaymentDetailsReq",
                "AuthorizationReq",
            ]
            assert "MeteringReceiptReq" in names
            record = await secc.record(result.session_id)
            assert record.kind is IdentificationKind.CONTRACT
            assert record.contract_id is not None
            assert record.receipts and all(r.signature_valid for r in record.receipts)

    run(test)


def test_iso2_dc_pnc_over_tls_with_an_existing_contract(tmp_path: Path, pki: Pki) -> None:
    async def test() -> None:
        async with running_secc(tmp_path, pki=pki) as secc:
            credentials = pki.credentials(install=False)
            config = dataclasses.replace(FAST, payment=Payment.PNC, tls=True, pnc=credentials)
            result = await ev(secc, config, pki.client_tls())
            assert result.ok, result.reason
            names = secc.names()
            assert "CertificateInstallationReq" not in names
            assert names[3:5] == ["PaymentDetailsReq", "AuthorizationReq"]
            record = await secc.record(result.session_id)
            assert record.kind is IdentificationKind.CONTRACT
            emaid = credentials.contract_emaid()
            assert emaid is not None and record.contract_id is not None
            assert record.contract_id.replace("-", "")[:14] == emaid.replace("-", "")[:14]

    run(test)


def test_iso2_dc_pnc_over_tls_with_certificate_update(tmp_path: Path, pki: Pki) -> None:
    """The car renews its contract (CertificateUpdateReq signed with the present contract key)
    and is authorised and billed under the renewed contract, same eMAID."""

    async def test() -> None:
        async with running_secc(tmp_path, pki=pki) as secc:
            credentials = dataclasses.replace(
                pki.credentials(install=False), update_certificate=True
            )
            config = dataclasses.replace(FAST, payment=Payment.PNC, tls=True, pnc=credentials)
            result = await ev(secc, config, pki.client_tls())
            assert result.ok, result.reason
            names = secc.names()
            assert names[2:6] == [
                "PaymentServiceSelectionReq",
                "CertificateUpdateReq",
                "PaymentDetailsReq",
                "AuthorizationReq",
            ]
            record = await secc.record(result.session_id)
            assert record.kind is IdentificationKind.CONTRACT
            emaid = credentials.contract_emaid()
            assert emaid is not None and record.contract_id is not None
            assert record.contract_id.replace("-", "")[:14] == emaid.replace("-", "")[:14]
            assert record.receipts and all(r.signature_valid for r in record.receipts)

    run(test)


# --------------------------------------------------------------------------- pause, renegotiation


def _billed_once(records: list[BillingRecord]) -> None:
    """A paused and resumed session's records: one record (the whole session), or one per
    part (EV_PAUSED, then the final one); either way every Wh metered is billed exactly
    once and the session ends EV_STOPPED."""
    parts = sorted(records, key=lambda r: r.stopped_at)
    assert [r.stop_reason for r in parts[:-1]] == [StopReason.EV_PAUSED] * (len(parts) - 1)
    assert parts[-1].stop_reason is StopReason.EV_STOPPED
    first, last = parts[0].meter_start, parts[-1].meter_stop
    assert first is not None and last is not None
    assert abs(sum(r.energy_wh for r in parts) - (last.energy_wh - first.energy_wh)) <= 1


def test_pause_and_resume(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_secc(tmp_path) as secc:
            first = await ev(secc, FAST, pause_after_loops=2)
            assert first.ok and first.paused, first.reason
            assert first.session_id in secc.server.paused
            session_id = first.session_id.hex().upper()
            assert all(
                r.stop_reason is StopReason.EV_PAUSED
                for r in secc.store.billing_records(session_id=session_id)
            )
            paused_at = len(secc.events)

            second = await ev(secc, FAST, resume_session_id=first.session_id)
            assert second.ok and not second.paused, second.reason
            assert second.session_id == first.session_id
            resumed = [
                (e.request_name, e.response_code)
                for e in secc.events[paused_at:]
                if isinstance(e, MessageExchanged)
            ]
            assert resumed[0] == ("SessionSetupReq", "OK_OldSessionJoined")
            assert all(code.startswith("OK") for _, code in resumed), resumed
            records = secc.store.billing_records(session_id=session_id)
            assert records == sorted(secc.server.records, key=lambda r: r.stopped_at)
            _billed_once(records)

    run(test)


def test_a_finished_session_cannot_be_resumed_again(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_secc(tmp_path) as secc:
            first = await ev(secc, FAST, pause_after_loops=1)
            assert first.paused, first.reason
            second = await ev(secc, FAST, resume_session_id=first.session_id)
            assert second.ok and not second.paused, second.reason
            assert first.session_id not in secc.server.paused
            third_at = len(secc.events)
            third = await ev(secc, FAST, resume_session_id=first.session_id)
            assert third.session_id != first.session_id
            setup = next(e for e in secc.events[third_at:] if isinstance(e, MessageExchanged))
            assert setup.response_code == "OK_NewSessionEstablished"

    run(test)


def _renegotiated(secc: Secc) -> None:
    names = [name for name, _ in secc.exchanged()]
    assert names.count("ChargeParameterDiscoveryReq") == 2, names
    for name, code in secc.exchanged():
        assert code.startswith("OK"), (name, code)


def test_ev_initiated_renegotiation(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_secc(tmp_path) as secc:
            result = await ev(secc, FAST, renegotiate_after_loops=2, max_charge_loops=6)
            assert result.ok, result.reason
            _renegotiated(secc)
            record = await secc.record(result.session_id)
            assert record.stop_reason is StopReason.EV_STOPPED

    run(test)


def test_secc_initiated_renegotiation(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_secc(tmp_path) as secc:
            asked: list[str] = []

            def ask(event: SessionEvent) -> None:
                if (
                    isinstance(event, MessageExchanged)
                    and event.request_name == "CurrentDemandReq"
                    and not asked
                ):
                    ((session_id, session),) = secc.server.live.items()
                    session.request_renegotiation()
                    asked.append(session_id)

            secc.server.observers.append(ask)
            result = await ev(secc, FAST, max_charge_loops=6)
            assert result.ok, result.reason
            assert asked == [result.session_id.hex().upper()]
            _renegotiated(secc)
            await secc.record(result.session_id)

    run(test)


# --------------------------------------------------------------------------- clean close


def test_server_closes_cleanly_after_sessions(tmp_path: Path) -> None:
    async def test() -> None:
        async with running_secc(tmp_path) as secc:
            for _ in range(2):
                result = await ev(secc, FAST, max_charge_loops=2)
                assert result.ok, result.reason
            host, port = secc.host_port
        assert len(secc.server.records) == 2
        assert not secc.server.live
        with pytest.raises(OSError):  # nobody listens any more
            await asyncio.open_connection(host, port)

    run(test)
