"""V2GTP over plain TCP on [::1]: sessions, framing, hostile frames, limits, shutdown.

The first group drives the sans-IO `V2GTPStream` with a fake clock and checks exact deadlines;
the rest run real sockets through `run_checked`, which fails on leaked tasks or descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import subprocess
import sys

import pytest
from transport_helpers import SAP_REQ, SAP_RES, Recorder, exchange, frame, run_checked, wait_until

from iso15118 import exi
from iso15118.transport.connection import (
    CloseReason,
    ConnectionClosed,
    ConnectionOptions,
    V2GTPConnection,
)
from iso15118.transport.endpoint import EndpointError, resolve_endpoint
from iso15118.transport.stream import (
    FrameIgnored,
    IgnoreReason,
    MessageReceived,
    StreamLimits,
    TimeoutReason,
    V2GTPStream,
)
from iso15118.transport.tcp import ServerConfig, V2GTPServer, open_v2gtp_connection
from iso15118.v2gtp import PayloadType

TWO_MESSAGES = frame(SAP_REQ) + frame(SAP_RES, PayloadType.MAINSTREAM)


def short(**limits: object) -> ServerConfig:
    """A server config with the given StreamLimits fields."""
    return ServerConfig(options=ConnectionOptions(limits=StreamLimits(**limits)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sans-IO stream


def due(stream: V2GTPStream) -> float:
    timer = stream.get_timer()
    assert timer is not None
    return timer.at


@pytest.mark.parametrize("cut", range(len(TWO_MESSAGES) + 1))
def test_stream_splits_at_every_byte(cut: int) -> None:
    stream = V2GTPStream(StreamLimits(), now=0.0)
    events = stream.receive_data(TWO_MESSAGES[:cut], 1.0)
    events += stream.receive_data(TWO_MESSAGES[cut:], 2.0)
    assert [e.message.payload for e in events if isinstance(e, MessageReceived)] == [
        SAP_REQ,
        SAP_RES,
    ]
    assert stream.buffered == 0


def test_stream_deadlines_are_exact() -> None:
    stream = V2GTPStream(StreamLimits(frame_timeout=5.0, idle_timeout=60.0), now=10.0)
    assert due(stream) == 70.0
    stream.receive_data(frame(SAP_REQ)[:3], now=12.0)  # a frame starts
    deadline = stream.get_timer()
    assert deadline is not None and (deadline.at, deadline.reason) == (17.0, TimeoutReason.FRAME)
    stream.receive_data(frame(SAP_REQ)[3:5], now=16.0)  # trickling does not extend it
    assert due(stream) == 17.0
    assert stream.handle_timer(16.999) is None
    assert stream.handle_timer(17.0) is TimeoutReason.FRAME


def test_stream_completion_restarts_idle_and_new_frame_clock() -> None:
    stream = V2GTPStream(StreamLimits(frame_timeout=5.0, idle_timeout=60.0), now=0.0)
    data = frame(SAP_REQ)
    stream.receive_data(data[:4], now=1.0)
    events = stream.receive_data(data[4:] + data[:2], now=3.0)  # completes one, starts one
    assert len(events) == 1
    assert due(stream) == 8.0
    stream.receive_data(data[2:], now=4.0)
    assert due(stream) == 64.0  # idle, counted from the message


def test_ignored_bytes_do_not_reset_the_idle_timer() -> None:
    stream = V2GTPStream(StreamLimits(idle_timeout=60.0), now=0.0)
    events = stream.receive_data(b"\x00" * 100, now=30.0)
    assert [type(e) for e in events] == [FrameIgnored]
    assert due(stream) == 60.0
    assert stream.handle_timer(60.0) is TimeoutReason.IDLE


def test_unsupported_payload_type_is_skipped_exactly() -> None:
    """A well-framed SDP message on a TCP stream is skipped; the next message survives."""
    stream = V2GTPStream(StreamLimits(), now=0.0)
    data = frame(b"\x10\x00", PayloadType.SDP_REQUEST) + frame(SAP_REQ)
    events = stream.receive_data(data, now=1.0)
    assert isinstance(events[0], FrameIgnored)
    assert events[0].reason is IgnoreReason.UNSUPPORTED_PAYLOAD_TYPE
    assert isinstance(events[1], MessageReceived) and events[1].message.payload == SAP_REQ


def test_stream_core_is_sans_io() -> None:
    """The stream core imports no I/O module; only the adapters around it do."""
    code = (
        "import sys; before = set(sys.modules); import iso15118.transport.stream; "
        "print(sorted({'asyncio', 'socket', 'ssl', 'time'} & (set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="frame_timeout"):
        StreamLimits(frame_timeout=0)
    with pytest.raises(ValueError, match="max_payload_length"):
        StreamLimits(max_payload_length=-1)


# --------------------------------------------------------------------------- sessions


def test_request_response_with_real_exi() -> None:
    recorder = Recorder()

    async def test() -> None:
        async with V2GTPServer(recorder, ServerConfig()) as server:
            conn = await open_v2gtp_connection("::1", server.endpoint.port)
            async with conn:
                answer = await exchange(conn)
                assert conn.tls is None
        decoded = exi.to_json(exi.decode("appHand", answer))
        assert decoded["supportedAppProtocolRes"]["ResponseCode"] == "OK_SuccessfulNegotiation"
        assert recorder.received[0].payload == SAP_REQ

    run_checked(test)


def test_split_at_every_byte_boundary_over_tcp() -> None:
    """One connection; the two-message stream is written in two parts, cut at each offset,
    with a drain and a loop turn between them; the server answers both every time."""
    requests = frame(SAP_REQ) + frame(SAP_REQ)
    recorder = Recorder()

    async def test() -> None:
        async with V2GTPServer(recorder, ServerConfig()) as server:
            reader, writer = await asyncio.open_connection("::1", server.endpoint.port)
            for cut in range(1, len(requests)):
                writer.write(requests[:cut])
                await writer.drain()
                await asyncio.sleep(0)
                writer.write(requests[cut:])
                await writer.drain()
                answers = await reader.readexactly(2 * len(frame(SAP_RES)))
                assert answers == frame(SAP_RES) * 2
            writer.close()
            await writer.wait_closed()
        assert len(recorder.received) == 2 * (len(requests) - 1)

    run_checked(test)


def test_nagle_is_off_on_both_ends() -> None:
    """Each frame leaves at once (no wait for a delayed ACK): TCP_NODELAY on both sockets."""
    recorder = Recorder()

    def nodelay(conn: V2GTPConnection) -> int:
        sock = conn._writer.get_extra_info("socket")
        return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def test() -> None:
        async with V2GTPServer(recorder, ServerConfig()) as server:
            conn = await open_v2gtp_connection("::1", server.endpoint.port)
            assert await exchange(conn) == SAP_RES
            assert nodelay(conn) == 1
            assert nodelay(recorder.connections[0]) == 1
            await conn.close()

    run_checked(test)


def test_byte_by_byte_writes() -> None:
    recorder = Recorder()

    async def test() -> None:
        async with V2GTPServer(recorder, ServerConfig()) as server:
            reader, writer = await asyncio.open_connection("::1", server.endpoint.port)
            for byte in frame(SAP_REQ) + frame(SAP_REQ):
                writer.write(bytes([byte]))
                await writer.drain()
            assert await reader.readexactly(2 * len(frame(SAP_RES))) == frame(SAP_RES) * 2
            writer.close()
            await writer.wait_closed()

    run_checked(test)


# --------------------------------------------------------------------------- hostile frames


def header(version: int, inverse: int, payload_type: int, length: int) -> bytes:
    return struct.pack(">BBHI", version, inverse, payload_type, length)


HOSTILE = {
    "bad-version": (header(0x02, 0xFD, 0x8001, 4) + b"\x80\0\0\0", ["BAD_VERSION"]),
    "bad-inverse": (header(0x01, 0xFF, 0x8001, 4) + b"\x80\0\0\0", ["BAD_VERSION"]),
    "unknown-type": (header(0x01, 0xFE, 0x7001, 4) + b"\x80\0\0\0", ["UNKNOWN_PAYLOAD_TYPE"]),
    "huge-length": (header(0x01, 0xFE, 0x8001, 0xFFFFFFFF) + b"\x80" * 64, ["OVERSIZE_PAYLOAD"]),
    "above-limit": (frame(b"\x80" * 1025), ["OVERSIZE_PAYLOAD"]),
    "sdp-over-tcp": (frame(b"\x10\x00", PayloadType.SDP_REQUEST), ["UNSUPPORTED_PAYLOAD_TYPE"]),
    # ISO 15118-4 TC_SECC_CMN_VTB_V2GTPSessionSetup_002: length 0, the request right behind
    "zero-length": (header(0x01, 0xFE, 0x8001, 0) + SAP_REQ, ["EMPTY_PAYLOAD", "BAD_VERSION"]),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_frame_is_ignored_and_connection_stays(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """[V2G2-800]: the message is ignored (no answer) and the TCP connection stays open, as
    the ISO 15118-4 V2GTPSessionSetup_002..005 cases expect; the next request is served."""
    data, reasons = HOSTILE[name]
    recorder = Recorder()

    async def test() -> None:
        async with V2GTPServer(recorder, short(max_payload_length=1024)) as server:
            reader, writer = await asyncio.open_connection("::1", server.endpoint.port)
            writer.write(data)
            await writer.drain()
            await wait_until(lambda: bool(recorder.connections))
            await wait_until(lambda: recorder.connections[0].ignored_frames == len(reasons))
            writer.write(frame(SAP_REQ))
            await writer.drain()
            assert await reader.readexactly(len(frame(SAP_RES))) == frame(SAP_RES)
            assert recorder.connections[0].close_reason is None
            writer.close()
            await writer.wait_closed()
        assert [m.payload for m in recorder.received] == [SAP_REQ]

    with caplog.at_level(logging.WARNING, logger="iso15118.transport"):
        run_checked(test)
    ignored = [r for r in caplog.records if hasattr(r, "v2gtp_ignored")]
    assert [r.v2gtp_ignored.name for r in ignored] == reasons


@pytest.mark.parametrize(
    ("sent", "limits", "reason"),
    [
        (frame(SAP_REQ)[:3], {"frame_timeout": 0.2}, CloseReason.FRAME_TIMEOUT),  # half header
        (frame(SAP_REQ)[:12], {"frame_timeout": 0.2}, CloseReason.FRAME_TIMEOUT),  # half payload
        (b"", {"idle_timeout": 0.2}, CloseReason.IDLE_TIMEOUT),  # silent peer
        (b"\x00" * 64, {"idle_timeout": 0.2}, CloseReason.IDLE_TIMEOUT),  # garbage only
    ],
    ids=["half-header", "half-payload", "idle", "garbage"],
)
def test_stalled_peer_is_closed(sent: bytes, limits: dict[str, float], reason: CloseReason) -> None:
    recorder = Recorder()

    async def test() -> None:
        async with V2GTPServer(recorder, short(**limits)) as server:
            reader, writer = await asyncio.open_connection("::1", server.endpoint.port)
            writer.write(sent)
            await writer.drain()
            async with asyncio.timeout(3.0):
                assert await reader.read() == b""  # the server closed the connection
            writer.close()
            await writer.wait_closed()
        assert recorder.connections[0].close_reason is reason
        assert isinstance(recorder.ended[0], ConnectionClosed)

    run_checked(test)


def test_trickling_sender_cannot_extend_the_frame_timeout() -> None:
    recorder = Recorder()

    async def test() -> None:
        async with V2GTPServer(recorder, short(frame_timeout=0.3)) as server:
            reader, writer = await asyncio.open_connection("::1", server.endpoint.port)
            loop = asyncio.get_running_loop()
            started = loop.time()
            for byte in frame(SAP_REQ)[:-1]:
                if writer.is_closing() or reader.at_eof():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)
            async with asyncio.timeout(3.0):
                with contextlib.suppress(ConnectionResetError):  # we wrote after its close
                    await reader.read()
            assert loop.time() - started < 2.0
            writer.close()
            await writer.wait_closed()
        assert recorder.connections[0].close_reason is CloseReason.FRAME_TIMEOUT

    run_checked(test)


# --------------------------------------------------------------------------- limits, shutdown


def test_connection_limit(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()

    async def test() -> None:
        config = ServerConfig(max_connections=2)
        async with V2GTPServer(recorder, config) as server:
            port = server.endpoint.port
            first = await open_v2gtp_connection("::1", port)
            second = await open_v2gtp_connection("::1", port)
            await wait_until(lambda: server.connection_count == 2)
            reader, writer = await asyncio.open_connection("::1", port)
            async with asyncio.timeout(3.0):
                assert await reader.read() == b""  # refused at once
            writer.close()
            await writer.wait_closed()
            assert await exchange(first) == SAP_RES
            assert await exchange(second) == SAP_RES
            await first.close()
            await wait_until(lambda: server.connection_count == 1)
            third = await open_v2gtp_connection("::1", port)  # a slot is free again
            assert await exchange(third) == SAP_RES
            await second.close()
            await third.close()

    with caplog.at_level(logging.WARNING, logger="iso15118.transport"):
        run_checked(test)
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].close_reason is CloseReason.CONNECTION_LIMIT  # type: ignore[attr-defined]


def test_close_ends_every_connection() -> None:
    recorder = Recorder()

    async def test() -> None:
        server = V2GTPServer(recorder, ServerConfig())
        await server.start()
        port = server.endpoint.port
        clients = [await open_v2gtp_connection("::1", port) for _ in range(3)]
        await wait_until(lambda: len(recorder.connections) == 3)
        await server.close()
        assert server.connection_count == 0
        for conn in recorder.connections:
            assert conn.close_reason is CloseReason.SERVER_SHUTDOWN
        for client in clients:
            with pytest.raises(ConnectionClosed) as closed:
                await client.receive()
            assert closed.value.reason is CloseReason.PEER_CLOSED
        with pytest.raises(ConnectionClosed) as refused:
            await open_v2gtp_connection("::1", port)
        assert refused.value.reason is CloseReason.CONNECT_FAILED

    run_checked(test)


def test_close_ends_a_handler_that_swallows_cancellation() -> None:
    ends: list[CloseReason | None] = []

    async def stubborn(conn: V2GTPConnection) -> None:
        while True:
            try:
                await conn.receive()
            except asyncio.CancelledError:
                continue  # a handler bug the server must survive
            except ConnectionClosed:
                ends.append(conn.close_reason)
                return

    async def test() -> None:
        config = ServerConfig(options=ConnectionOptions(close_timeout=0.1))
        server = V2GTPServer(stubborn, config)
        await server.start()
        client = await open_v2gtp_connection("::1", server.endpoint.port)
        await wait_until(lambda: server.connection_count == 1)
        await server.close()
        assert ends == [CloseReason.SERVER_SHUTDOWN]
        await client.close()

    run_checked(test)


def test_handler_error_is_logged_and_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    async def handler(conn: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        await Recorder()(conn)  # type: ignore[arg-type]

    async def test() -> None:
        async with V2GTPServer(handler, ServerConfig()) as server:
            broken = await open_v2gtp_connection("::1", server.endpoint.port)
            with pytest.raises(ConnectionClosed):
                await broken.receive()
            await broken.close()
            conn = await open_v2gtp_connection("::1", server.endpoint.port)
            assert await exchange(conn) == SAP_RES
            await conn.close()

    with caplog.at_level(logging.ERROR, logger="iso15118.transport"):
        run_checked(test)
    assert any("handler failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_send_and_receive_after_close_raise() -> None:
    async def test() -> None:
        async with V2GTPServer(Recorder(), ServerConfig()) as server:
            conn = await open_v2gtp_connection("::1", server.endpoint.port)
            await conn.close()
            with pytest.raises(ConnectionClosed):
                await conn.send(PayloadType.SAP, SAP_REQ)
            with pytest.raises(ConnectionClosed):
                await conn.receive()
            assert conn.close_reason is CloseReason.LOCAL

    run_checked(test)


def test_client_ignores_hostile_frames_too() -> None:
    async def handler(conn: object) -> None:
        writer = conn._writer  # type: ignore[attr-defined]
        writer.write(b"\x01\xfe\x70\x01\x00\x00\x00\x00")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(frame(SAP_RES))
        await writer.drain()
        await conn.receive()  # type: ignore[attr-defined]

    async def test() -> None:
        async with V2GTPServer(handler, ServerConfig()) as server:
            conn = await open_v2gtp_connection("::1", server.endpoint.port)
            answer = await conn.receive()
            assert answer.payload == SAP_RES
            assert conn.ignored_frames == 1
            await conn.close()

    run_checked(test)


# --------------------------------------------------------------------------- endpoints


def test_endpoints() -> None:
    assert resolve_endpoint("::1", 15118).sockaddr() == ("::1", 15118, 0, 0)
    zoned = resolve_endpoint("fe80::1%lo", 1)
    assert zoned == resolve_endpoint("fe80::1", 1, "lo") and zoned.scope_id > 0
    with pytest.raises(EndpointError, match="needs an interface"):
        resolve_endpoint("fe80::1", 1)
    with pytest.raises(EndpointError, match="no network interface"):
        resolve_endpoint("fe80::1", 1, "no-such-if0")
    with pytest.raises(EndpointError, match="contradicts"):
        resolve_endpoint("fe80::1%lo", 1, "eth9")
    with pytest.raises(EndpointError, match="IPv6 address literal"):
        resolve_endpoint("localhost", 1)
    with pytest.raises(EndpointError, match="port"):
        resolve_endpoint("::1", 70000)


def test_listen_error_is_typed_and_leaks_nothing() -> None:
    async def test() -> None:
        async with V2GTPServer(Recorder(), ServerConfig()) as first:
            taken = ServerConfig(port=first.endpoint.port)
            with pytest.raises(EndpointError, match="cannot listen"):
                await V2GTPServer(Recorder(), taken).start()

    run_checked(test)
