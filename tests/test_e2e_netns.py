"""Whole sessions across a real link: the SECC in one network namespace, answering SDP on
its end of a veth pair, and the EV simulator in another namespace finding it by SDP
(`run_ev` with no host, `interface=...`) before it connects over TCP or TLS.

Each test builds its own link (tests/netns.py: root only, skipped otherwise; namespaces are
deleted afterwards). The SECC runs as a long-lived child in the EVSE namespace and returns
what it saw when stopped; the EV runs in a child in the EV namespace. The car's pilot
cannot reach the simulated EVSE across processes, so the EVSE starts in CP state C.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from netns import NetnsControl, VethPair, requires_root, run_in_netns, start_in_netns, veth_pair
from test_e2e_sockets import DC_ISO2, FAST, Pki, running_secc

from evcc.client import run_ev
from evcc.config import EvccConfig, Payment
from iso15118.sdp import TlsPolicy
from pki.create import create_pki, write_pki
from pki.profiles import Standard
from secc.evse import ControlPilotState

pytestmark = requires_root

#: (session ID, protocol, stop reason, contract ID) per billing record
Record = tuple[str, str, str, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class SeccReport:
    exchanged: list[tuple[str, str]]
    records: list[Record]
    stored: list[Record]
    tls: bool


@dataclasses.dataclass(frozen=True, slots=True)
class EvReport:
    ok: bool
    reason: str
    protocol: str | None
    session_id: str
    requests: int


@pytest.fixture
def link() -> Iterator[VethPair]:
    with veth_pair("e2e") as pair:
        yield pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    created = create_pki(Standard.ISO2, at=datetime.now(UTC))
    write_pki(created, directory)
    return Pki(created, directory)


def serve(control: NetnsControl, link: VethPair, directory: Path, pki: Pki | None) -> SeccReport:
    """SECC process: SDP and a V2GTP listener on the EVSE end of the link until stopped."""

    async def main() -> SeccReport:
        async with running_secc(
            directory,
            pki=pki,
            host=link.evse_address,
            interface=link.evse_if,
            sdp=True,
            tls_policy=TlsPolicy.REQUIRED if pki else TlsPolicy.NEVER,
        ) as secc:
            secc.evse.set_cp_state(ControlPilotState.C)
            control.ready(secc.host_port)
            await asyncio.get_running_loop().run_in_executor(None, control.wait)
            records = [
                (r.session_id, r.protocol, r.stop_reason.value, r.contract_id)
                for r in secc.server.records
            ]
            stored = [
                (r.session_id, r.protocol, r.stop_reason.value, r.contract_id)
                for r in secc.store.billing_records()
            ]
            return SeccReport(
                secc.exchanged(), records, stored, secc.server.tls_endpoint is not None
            )

    return asyncio.run(main())


def drive(interface: str, config: EvccConfig, pki: Pki | None) -> EvReport:
    """EV process: SDP discovery on `interface`, then one session."""

    async def main() -> EvReport:
        context = pki.client_tls() if pki else None
        result = await run_ev(config, None, None, interface=interface, ssl_context=context)
        return EvReport(
            result.ok,
            result.reason,
            result.protocol.schema if result.protocol else None,
            result.session_id.hex().upper(),
            result.requests_sent,
        )

    return asyncio.run(main())


def _collapsed(exchanged: list[tuple[str, str]]) -> list[str]:
    names: list[str] = []
    for name, code in exchanged:
        assert code.startswith("OK"), (name, code)
        if not names or names[-1] != name:
            names.append(name)
    return names


def test_iso2_dc_eim_found_by_sdp_over_tcp(link: VethPair, tmp_path: Path) -> None:
    with start_in_netns(link.evse_ns, serve, link, tmp_path, None) as secc:
        host, _port = secc.info
        assert host.split("%")[0] == link.evse_address
        ev = run_in_netns(link.ev_ns, drive, link.ev_if, FAST, None)
    report: SeccReport = secc.result
    assert ev.ok, ev.reason
    assert ev.protocol == "iso2"
    assert not report.tls
    assert _collapsed(report.exchanged) == DC_ISO2
    assert report.records == report.stored == [(ev.session_id, "iso2", "ev-stopped", None)]


def test_iso2_dc_pnc_found_by_sdp_over_tls(link: VethPair, tmp_path: Path, pki: Pki) -> None:
    config = dataclasses.replace(
        FAST, payment=Payment.PNC, tls=True, pnc=pki.credentials(install=True)
    )
    with start_in_netns(link.evse_ns, serve, link, tmp_path, pki) as secc:
        ev = run_in_netns(link.ev_ns, drive, link.ev_if, config, pki)
    report: SeccReport = secc.result
    assert ev.ok, ev.reason
    assert report.tls
    names = _collapsed(report.exchanged)
    assert names[3:6] == ["CertificateInstallationReq", "PaymentDetailsReq", "AuthorizationReq"]
    ((session_id, protocol, stop, contract),) = report.records
    assert (session_id, protocol, stop) == (ev.session_id, "iso2", "ev-stopped")
    assert contract is not None
    assert report.stored == report.records
