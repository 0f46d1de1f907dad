"""V2GTP over IPv6 link-local addresses with a scope ID, between two network namespaces.

The SECC listens on the link-local address of its veth end (scope from the interface name);
the EV connects to that address through its own veth end, over plain TCP, TLS 1.2
(ISO 15118-2) and TLS 1.3 with mutual authentication (ISO 15118-20). Each side runs in a
child process inside its namespace (`tests/netns.py`); skipped where the test is not root.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import pytest
from netns import NetnsControl, requires_root, run_in_netns, start_in_netns, veth_pair
from transport_helpers import SAP_RES, Recorder, exchange
from transport_pki import KEY_PASSWORD, TransportPKI, session_pki

from iso15118.transport import tls
from iso15118.transport.tcp import ServerConfig, V2GTPServer, open_v2gtp_connection

pytestmark = requires_root


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TransportPKI:
    return session_pki(tmp_path_factory)


def _iso2_server(pki: TransportPKI) -> ssl.SSLContext:
    chain = tls.CertificateChain(
        certificates=pki.iso2_secc.chain_der,
        private_key=pki.iso2_secc.key_pem_encrypted,
        password=KEY_PASSWORD,
    )
    return tls.iso2_server_context(tls.Iso2ServerConfig(chain=chain))


def _iso2_client(pki: TransportPKI) -> ssl.SSLContext:
    return tls.iso2_client_context(tls.Iso2ClientConfig(trust_anchors=(pki.iso2_v2g_root,)))


def _iso20_server(pki: TransportPKI) -> ssl.SSLContext:
    chain = tls.CertificateChain(
        certificates=pki.iso20_secc.chain_pem, private_key=pki.iso20_secc.key_der
    )
    return tls.iso20_server_context(
        tls.Iso20ServerConfig(chain=chain, trust_anchors=(pki.iso20_oem_root,))
    )


def _iso20_client(pki: TransportPKI) -> ssl.SSLContext:
    chain = tls.CertificateChain(
        certificates=pki.iso20_vehicle.chain_pem, private_key=pki.iso20_vehicle.key_pem
    )
    return tls.iso20_client_context(
        tls.Iso20ClientConfig(chain=chain, trust_anchors=(pki.iso20_v2g_root,))
    )


Contexts = tuple[Callable[[TransportPKI], ssl.SSLContext], Callable[[TransportPKI], ssl.SSLContext]]
SECURITY: dict[str, Contexts | None] = {
    "tcp": None,
    "tls12-iso2": (_iso2_server, _iso2_client),
    "tls13-iso20": (_iso20_server, _iso20_client),
}


def serve(
    control: NetnsControl, address: str, interface: str, security: str, pki: TransportPKI
) -> list[tuple[str, int, str | None]]:
    """The SECC, in its namespace: serve until stopped; return (peer, scope, TLS) per client."""
    contexts = SECURITY[security]

    async def main() -> list[tuple[str, int, str | None]]:
        recorder = Recorder()
        config = ServerConfig(
            host=address,
            interface=interface,
            ssl=contexts[0](pki) if contexts else None,
        )
        async with V2GTPServer(recorder, config) as server:
            assert server.endpoint.scope_id > 0
            control.ready(server.endpoint.port)
            while not control.stopping:
                await asyncio.sleep(0.02)
        return [
            (conn.peer.host, conn.local.scope_id, conn.tls.version if conn.tls else None)
            for conn in recorder.connections
        ]

    return asyncio.run(main())


def connect(
    address: str, port: int, interface: str, security: str, pki: TransportPKI
) -> tuple[bytes, str | None, str]:
    """The EV, in its namespace: one SupportedAppProtocol exchange with the SECC."""
    contexts = SECURITY[security]

    async def main() -> tuple[bytes, str | None, str]:
        context = contexts[1](pki) if contexts else None
        conn = await open_v2gtp_connection(address, port, interface=interface, ssl=context)
        async with conn:
            answer = await exchange(conn)
            return answer, conn.tls.version if conn.tls else None, conn.local.host

    return asyncio.run(main())


@pytest.mark.parametrize("security", SECURITY)
def test_link_local_session(security: str, pki: TransportPKI) -> None:
    with veth_pair("v2gtcp") as link:
        args = (link.evse_address, link.evse_if, security, pki)
        with start_in_netns(link.evse_ns, serve, *args) as server:
            answer, version, ev_host = run_in_netns(
                link.ev_ns, connect, link.evse_address, server.info, link.ev_if, security, pki
            )
            seen = server.stop()
    assert answer == SAP_RES
    assert ev_host == link.ev_address
    expected = {"tcp": None, "tls12-iso2": "TLSv1.2", "tls13-iso20": "TLSv1.3"}[security]
    assert version == expected
    [(peer, scope_id, server_version)] = seen
    assert peer == link.ev_address and scope_id > 0 and server_version == expected


def test_link_local_needs_the_interface(pki: TransportPKI) -> None:
    """Without the scope the link-local address is refused before any socket exists."""

    def attempt(address: str) -> str:
        async def main() -> str:
            try:
                await open_v2gtp_connection(address, 15118)
            except ValueError as exc:
                return type(exc).__name__
            return "connected"

        return asyncio.run(main())

    with veth_pair("v2gtcp") as link:
        assert run_in_netns(link.ev_ns, attempt, link.evse_address) == "EndpointError"
