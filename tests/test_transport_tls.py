"""V2GTP over TLS on [::1]: ISO 15118-2 (TLS 1.2) and ISO 15118-20 (TLS 1.3, mutual).

Certificates come from `transport_pki` (generated once per test session). Every socket test
runs through `run_checked` (no leaked tasks or file descriptors).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from pathlib import Path

import pytest
from transport_helpers import SAP_RES, Recorder, exchange, run_checked, wait_until
from transport_pki import KEY_PASSWORD, LeafFiles, TransportPKI, session_pki

from iso15118.transport import tls
from iso15118.transport.connection import CloseReason, ConnectionClosed, ConnectionOptions
from iso15118.transport.stream import StreamLimits
from iso15118.transport.tcp import ServerConfig, V2GTPServer, open_v2gtp_connection


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TransportPKI:
    return session_pki(tmp_path_factory)


def chain_of(leaf: LeafFiles, *, der: bool = False, encrypted: bool = True) -> tls.CertificateChain:
    if der:
        key = leaf.key_der_encrypted if encrypted else leaf.key_der
    else:
        key = leaf.key_pem_encrypted if encrypted else leaf.key_pem
    return tls.CertificateChain(
        certificates=leaf.chain_der if der else leaf.chain_pem,
        private_key=key,
        password=KEY_PASSWORD if encrypted else None,
    )


def iso2_server(pki: TransportPKI, keylog: Path | None = None) -> ssl.SSLContext:
    return tls.iso2_server_context(
        tls.Iso2ServerConfig(chain=chain_of(pki.iso2_secc, der=True), keylog_file=keylog)
    )


def iso2_client(root: Path, keylog: Path | None = None) -> ssl.SSLContext:
    return tls.iso2_client_context(tls.Iso2ClientConfig(trust_anchors=(root,), keylog_file=keylog))


def iso20_server(pki: TransportPKI, **kwargs: object) -> ssl.SSLContext:
    return tls.iso20_server_context(
        tls.Iso20ServerConfig(
            chain=chain_of(pki.iso20_secc),
            trust_anchors=(pki.iso20_oem_root,),
            **kwargs,  # type: ignore[arg-type]
        )
    )


def iso20_client(pki: TransportPKI, vehicle: LeafFiles, **kwargs: object) -> ssl.SSLContext:
    return tls.iso20_client_context(
        tls.Iso20ClientConfig(
            chain=chain_of(vehicle, encrypted=False),
            trust_anchors=(pki.iso20_v2g_root,),
            **kwargs,  # type: ignore[arg-type]
        )
    )


def server_config(context: ssl.SSLContext, **options: object) -> ServerConfig:
    return ServerConfig(ssl=context, options=ConnectionOptions(**options))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ISO 15118-2


def test_iso2_cipher_suites_openssl_offers() -> None:
    """OpenSSL 3 has no static ECDH: only the ECDHE suite of Table 7 remains."""
    available = tls.available_iso2_cipher_suites()
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256" in available
    assert set(available) <= set(tls.ISO2_CIPHER_SUITES)


def test_iso2_session_over_tls12(pki: TransportPKI) -> None:
    recorder = Recorder()

    async def test() -> None:
        config = server_config(iso2_server(pki), tls_check=tls.verify_iso2_session)
        async with V2GTPServer(recorder, config) as server:
            conn = await open_v2gtp_connection(
                "::1",
                server.endpoint.port,
                ssl=iso2_client(pki.iso2_v2g_root_der),
                options=ConnectionOptions(tls_check=tls.verify_iso2_session),
            )
            async with conn:
                assert await exchange(conn) == SAP_RES
                assert conn.tls is not None
                assert (conn.tls.version, conn.tls.cipher) == (
                    "TLSv1.2",
                    "ECDHE-ECDSA-AES128-SHA256",
                )
        server_side = recorder.connections[0].tls
        assert server_side is not None and server_side.peer_certificate is None  # no client auth

    run_checked(test)


def test_iso2_client_refuses_an_untrusted_secc(
    pki: TransportPKI, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()

    async def test() -> None:
        async with V2GTPServer(recorder, server_config(iso2_server(pki))) as server:
            with pytest.raises(ConnectionClosed) as refused:
                await open_v2gtp_connection(
                    "::1", server.endpoint.port, ssl=iso2_client(pki.rogue_root)
                )
            assert refused.value.reason is CloseReason.TLS_HANDSHAKE_FAILED
            assert "CERTIFICATE_VERIFY_FAILED" in refused.value.detail
            await wait_until(lambda: server.connection_count == 0)
        assert recorder.connections == []

    with caplog.at_level(logging.WARNING, logger="iso15118.transport"):
        run_checked(test)


def test_hostile_frame_over_tls_is_ignored(pki: TransportPKI) -> None:
    recorder = Recorder()

    async def test() -> None:
        async with V2GTPServer(recorder, server_config(iso2_server(pki))) as server:
            conn = await open_v2gtp_connection(
                "::1", server.endpoint.port, ssl=iso2_client(pki.iso2_v2g_root)
            )
            conn._writer.write(struct.pack(">BBHI", 0x01, 0xFF, 0x8001, 1) + b"\x80")
            await wait_until(lambda: bool(recorder.connections))
            await wait_until(lambda: recorder.connections[0].ignored_frames == 1)
            assert await exchange(conn) == SAP_RES
            await conn.close()

    run_checked(test)


def test_tls_handshake_timeout_and_limit_count_handshakes(pki: TransportPKI) -> None:
    """A TCP peer that never sends a ClientHello occupies a slot until the handshake times out;
    meanwhile a second connection is refused."""
    recorder = Recorder()

    async def test() -> None:
        config = ServerConfig(
            ssl=iso2_server(pki),
            max_connections=1,
            options=ConnectionOptions(handshake_timeout=0.3),
        )
        async with V2GTPServer(recorder, config) as server:
            port = server.endpoint.port
            silent_reader, silent_writer = await asyncio.open_connection("::1", port)
            await wait_until(lambda: server.connection_count == 1)
            with pytest.raises(ConnectionClosed):
                await open_v2gtp_connection("::1", port, ssl=iso2_client(pki.iso2_v2g_root))
            async with asyncio.timeout(3.0):
                assert await silent_reader.read() == b""
            silent_writer.close()
            await silent_writer.wait_closed()
            await wait_until(lambda: server.connection_count == 0)
            conn = await open_v2gtp_connection("::1", port, ssl=iso2_client(pki.iso2_v2g_root))
            assert await exchange(conn) == SAP_RES
            await conn.close()

    run_checked(test)


# --------------------------------------------------------------------------- ISO 15118-20


def test_iso20_mutual_tls13_accepts_a_valid_vehicle_chain(pki: TransportPKI) -> None:
    recorder = Recorder()

    async def test() -> None:
        config = server_config(iso20_server(pki), tls_check=tls.verify_iso20_session)
        async with V2GTPServer(recorder, config) as server:
            conn = await open_v2gtp_connection(
                "::1", server.endpoint.port, ssl=iso20_client(pki, pki.iso20_vehicle)
            )
            async with conn:
                assert await exchange(conn) == SAP_RES
                assert conn.tls is not None
                assert (conn.tls.version, conn.tls.cipher) == ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
        server_side = recorder.connections[0].tls
        assert server_side is not None and server_side.peer_certificate is not None
        vehicle_der = pki.iso20_vehicle.chain_der[0].read_bytes()
        assert server_side.peer_certificate == vehicle_der

    run_checked(test)


def _no_certificate_client(pki: TransportPKI) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.load_verify_locations(cafile=pki.iso20_v2g_root)
    context.set_ecdh_curve("secp521r1")
    return context


@pytest.mark.parametrize("client", ["no-certificate", "wrong-root"])
def test_iso20_refuses_vehicle_without_valid_chain(
    client: str, pki: TransportPKI, caplog: pytest.LogCaptureFixture
) -> None:
    """In TLS 1.3 the client finishes first; the SECC then refuses its (missing or untrusted)
    certificate, so the EV sees the connection end before any answer and no handler runs."""
    recorder = Recorder()
    if client == "no-certificate":
        context = _no_certificate_client(pki)
        expected = "CERTIFICATE"
    else:
        context = iso20_client(pki, pki.rogue_vehicle)
        expected = "CERTIFICATE_VERIFY_FAILED"

    async def test() -> None:
        async with V2GTPServer(recorder, server_config(iso20_server(pki))) as server:
            try:
                conn = await open_v2gtp_connection("::1", server.endpoint.port, ssl=context)
            except ConnectionClosed as exc:  # the alert may arrive during the handshake
                assert exc.reason is CloseReason.TLS_HANDSHAKE_FAILED
            else:
                with pytest.raises(ConnectionClosed):
                    await exchange(conn)
                await conn.close()
            await wait_until(lambda: server.connection_count == 0)
        assert recorder.connections == []

    with caplog.at_level(logging.WARNING, logger="iso15118.transport"):
        run_checked(test)
    failures = [
        r
        for r in caplog.records
        if getattr(r, "close_reason", None) is CloseReason.TLS_HANDSHAKE_FAILED
        and expected in r.getMessage()
    ]
    assert failures, [r.getMessage() for r in caplog.records]


def test_iso20_ev_refuses_an_untrusted_secc(pki: TransportPKI) -> None:
    async def test() -> None:
        async with V2GTPServer(Recorder(), server_config(iso20_server(pki))) as server:
            context = tls.iso20_client_context(
                tls.Iso20ClientConfig(
                    chain=chain_of(pki.iso20_vehicle, encrypted=False),
                    trust_anchors=(pki.rogue_root_p521,),
                )
            )
            with pytest.raises(ConnectionClosed) as refused:
                await open_v2gtp_connection("::1", server.endpoint.port, ssl=context)
            assert refused.value.reason is CloseReason.TLS_HANDSHAKE_FAILED
            await wait_until(lambda: server.connection_count == 0)

    run_checked(test)


def test_iso20_group_is_enforced(pki: TransportPKI) -> None:
    """Server on secp521r1 only, EV on x448 only: no common group, no session."""

    async def test() -> None:
        server_context = iso20_server(pki, group=tls.Iso20Group.SECP521R1)
        async with V2GTPServer(Recorder(), server_config(server_context)) as server:
            context = iso20_client(pki, pki.iso20_vehicle, group=tls.Iso20Group.X448)
            with pytest.raises(ConnectionClosed) as refused:
                await open_v2gtp_connection("::1", server.endpoint.port, ssl=context)
            assert refused.value.reason is CloseReason.TLS_HANDSHAKE_FAILED
            await wait_until(lambda: server.connection_count == 0)

    run_checked(test)


def test_iso20_x448_session(pki: TransportPKI) -> None:
    async def test() -> None:
        server_context = iso20_server(pki, group=tls.Iso20Group.X448)
        async with V2GTPServer(Recorder(), server_config(server_context)) as server:
            context = iso20_client(pki, pki.iso20_vehicle, group=tls.Iso20Group.X448)
            conn = await open_v2gtp_connection("::1", server.endpoint.port, ssl=context)
            assert await exchange(conn) == SAP_RES
            await conn.close()

    run_checked(test)


def test_tls_check_refuses_a_session_outside_the_profile(pki: TransportPKI) -> None:
    """An ISO-2 session judged by the ISO-20 rules: closed with TLS_PROFILE, no handler."""
    recorder = Recorder()

    async def test() -> None:
        config = server_config(iso2_server(pki), tls_check=tls.verify_iso20_session)
        async with V2GTPServer(recorder, config) as server:
            conn = await open_v2gtp_connection(
                "::1", server.endpoint.port, ssl=iso2_client(pki.iso2_v2g_root)
            )
            with pytest.raises(ConnectionClosed):
                await exchange(conn)
            await conn.close()
            await wait_until(lambda: server.connection_count == 0)
        assert recorder.connections == []

    run_checked(test)


# --------------------------------------------------------------------------- key log


def test_keylog_tls12_and_tls13(pki: TransportPKI, tmp_path: Path) -> None:
    iso2_log = tmp_path / "iso2.keys"
    iso20_log = tmp_path / "iso20.keys"

    async def test() -> None:
        async with V2GTPServer(Recorder(), server_config(iso2_server(pki, iso2_log))) as server:
            conn = await open_v2gtp_connection(
                "::1", server.endpoint.port, ssl=iso2_client(pki.iso2_v2g_root)
            )
            assert await exchange(conn) == SAP_RES
            await conn.close()
        async with V2GTPServer(Recorder(), server_config(iso20_server(pki))) as server:
            context = iso20_client(pki, pki.iso20_vehicle, keylog_file=iso20_log)
            conn = await open_v2gtp_connection("::1", server.endpoint.port, ssl=context)
            assert await exchange(conn) == SAP_RES
            await conn.close()

    run_checked(test)
    iso2_lines = iso2_log.read_text().splitlines()
    assert any(line.startswith("CLIENT_RANDOM ") for line in iso2_lines)
    labels = {line.split()[0] for line in iso20_log.read_text().splitlines() if line[:1] != "#"}
    assert {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    } <= labels


# --------------------------------------------------------------------------- configuration errors


def test_every_key_form_loads(pki: TransportPKI) -> None:
    leaf = pki.iso2_secc
    for key, password in [
        (leaf.key_pem, None),
        (leaf.key_pem_encrypted, KEY_PASSWORD),
        (leaf.key_der, None),
        (leaf.key_der_encrypted, KEY_PASSWORD),
        (leaf.key_sec1_der, None),
    ]:
        chain = tls.CertificateChain(
            certificates=leaf.chain_pem, private_key=key, password=password
        )
        tls.iso2_server_context(tls.Iso2ServerConfig(chain=chain))


def test_configuration_errors_are_typed(pki: TransportPKI, tmp_path: Path) -> None:
    leaf = pki.iso2_secc

    def server(chain: tls.CertificateChain, keylog: Path | None = None) -> None:
        tls.iso2_server_context(tls.Iso2ServerConfig(chain=chain, keylog_file=keylog))

    def chain(certificates: tuple[Path, ...], key: Path, password: bytes | None = None) -> None:
        server(tls.CertificateChain(certificates=certificates, private_key=key, password=password))

    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"\x00not a key")
    good = chain_of(leaf)
    with pytest.raises(tls.PrivateKeyError, match="password"):
        chain(leaf.chain_pem, leaf.key_pem_encrypted, b"wrong")
    with pytest.raises(tls.PrivateKeyError, match="password"):
        chain(leaf.chain_pem, leaf.key_der_encrypted)
    with pytest.raises(tls.PrivateKeyError, match="does not match"):
        chain(leaf.chain_pem, pki.rogue_iso2_secc.key_pem)
    with pytest.raises(tls.CertificateChainError, match="secp384r1"):
        server(chain_of(pki.iso2_secc_p384))
    with pytest.raises(tls.CertificateChainError, match="secp521r1"):
        chain(pki.iso20_secc.chain_pem, pki.iso20_secc.key_pem)
    with pytest.raises(tls.CertificateChainError, match="cannot read"):
        chain((tmp_path / "missing.pem",), leaf.key_pem)
    with pytest.raises(tls.CertificateChainError, match="empty"):
        chain((), leaf.key_pem)
    with pytest.raises(tls.CertificateChainError, match=r"not an X\.509 certificate"):
        chain((leaf.key_der,), leaf.key_pem)
    with pytest.raises(tls.PrivateKeyError, match="neither PEM nor"):
        chain(leaf.chain_pem, garbage)
    with pytest.raises(tls.PrivateKeyError, match=r"not a PKCS\#8"):
        chain(leaf.chain_pem, leaf.chain_der[0])
    with pytest.raises(tls.KeyLogError):
        server(good, keylog=tmp_path / "no-such-dir" / "keys.log")
    with pytest.raises(tls.TrustAnchorError, match="no trust anchors"):
        tls.iso2_client_context(tls.Iso2ClientConfig(trust_anchors=()))
    with pytest.raises(tls.TrustAnchorError, match=r"not an X\.509"):
        tls.iso2_client_context(tls.Iso2ClientConfig(trust_anchors=(leaf.key_sec1_der,)))
    with pytest.raises(tls.CertificateChainError, match="secp256r1"):
        tls.iso20_server_context(
            tls.Iso20ServerConfig(chain=good, trust_anchors=(pki.iso20_oem_root,))
        )
    assert isinstance(tls.PrivateKeyError("x"), tls.TLSConfigError)


def test_limits_reach_the_tls_connection(pki: TransportPKI) -> None:
    """The stream limits apply over TLS as over TCP (here: a tiny idle timeout)."""
    recorder = Recorder()

    async def test() -> None:
        config = server_config(iso2_server(pki), limits=StreamLimits(idle_timeout=0.2))
        async with V2GTPServer(recorder, config) as server:
            conn = await open_v2gtp_connection(
                "::1", server.endpoint.port, ssl=iso2_client(pki.iso2_v2g_root)
            )
            with pytest.raises(ConnectionClosed):
                await conn.receive()
            await conn.close()
        assert recorder.connections[0].close_reason is CloseReason.IDLE_TIMEOUT

    run_checked(test)
