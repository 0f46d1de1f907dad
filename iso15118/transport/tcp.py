"""V2GTP over TCP or TLS with asyncio: a server for the SECC and a client for the EV.

    async def handler(conn: V2GTPConnection) -> None:
        request = await conn.receive()                  # a whole V2GTPMessage
        await conn.send(PayloadType.SAP, response_exi)

    config = ServerConfig(host="fe80::1", interface="eth1", port=0, ssl=server_context)
    async with V2GTPServer(handler, config) as server:
        ...                                             # server.endpoint.port is bound
    # leaving the block closes the listener and every connection

    conn = await open_v2gtp_connection("fe80::1", port, interface="eth1", ssl=client_context)

This layer moves frames: each accepted connection gets its own `V2GTPConnection`, handed to
the handler; when the handler returns (or raises) the connection is closed. What the payloads
mean, and which protocol runs, is the caller's business.

Defaults (see `ConnectionOptions` and `StreamLimits`): payloads up to 64 KiB; a started frame
must complete within 5 s; a receiver waits at most 60 s (V2G_SECC_Sequence_Timeout) for a
whole message; the TLS handshake must finish within 20 s; at most 4 connections at a time
(one EV per charge point, with room for a reconnect while a dead previous connection has not
timed out yet). Further connections are closed at once and logged. A handler that raises is
logged with its traceback and never stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

from .connection import (
    CloseReason,
    ConnectionClosed,
    ConnectionOptions,
    V2GTPConnection,
)
from .endpoint import (
    Endpoint,
    EndpointError,
    connecting_socket,
    listening_socket,
    resolve_endpoint,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "CloseReason",
    "ConnectionClosed",
    "ConnectionOptions",
    "EndpointError",
    "Handler",
    "ServerConfig",
    "V2GTPConnection",
    "V2GTPServer",
    "open_v2gtp_connection",
]

logger = logging.getLogger("iso15118.transport")

DEFAULT_MAX_CONNECTIONS: Final = 4
DEFAULT_CONNECT_TIMEOUT: Final = 5.0

#: Called once per accepted (and, with TLS, handshaken) connection.
Handler = Callable[[V2GTPConnection], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Where and how a `V2GTPServer` listens.

    `host` is an IPv6 literal (`::1`, or a link-local address with `interface` naming its
    interface); `port` 0 lets the system choose (see `V2GTPServer.endpoint`). `ssl` is a
    server-side context (e.g. from `iso15118.transport.tls`), None for plain TCP.
    """

    host: str = "::1"
    port: int = 0
    interface: str | None = None
    ssl: ssl.SSLContext | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    backlog: int = 8
    options: ConnectionOptions = field(default_factory=ConnectionOptions)

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")


class V2GTPServer:
    """Accepts V2GTP connections and runs `handler` for each, within the connection limit."""

    def __init__(self, handler: Handler, config: ServerConfig) -> None:
        self._handler = handler
        self._config = config
        self._server: asyncio.Server | None = None
        self._endpoint: Endpoint | None = None
        self._connections: dict[asyncio.Task[None], V2GTPConnection | None] = {}
        self._closing = False

    @property
    def endpoint(self) -> Endpoint:
        """The bound address (with the port the system chose); only after `start()`."""
        if self._endpoint is None:
            raise RuntimeError("the server is not started")
        return self._endpoint

    @property
    def connection_count(self) -> int:
        """Connections being served now (including those still in the TLS handshake)."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind and listen. Raises `EndpointError` for an unusable address or interface."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        self._closing = False
        config = self._config
        sock = listening_socket(
            resolve_endpoint(config.host, config.port, config.interface), config.backlog
        )
        try:
            self._server = await asyncio.start_server(self._accept, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._endpoint = Endpoint.from_sockaddr(sock.getsockname())
        logger.info(
            "V2GTP server listening on %s (%s)", self._endpoint, "TLS" if config.ssl else "TCP"
        )

    async def close(self) -> None:
        """Stop listening and close every connection; returns when all are gone.

        Handlers are cancelled; one that does not end within `close_timeout` (it swallowed
        the cancellation) has its connection aborted and is cancelled once more.
        """
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            grace = 2 * self._config.options.close_timeout
            _done, stuck = await asyncio.wait(tasks, timeout=grace)
            for task in stuck:
                connection = self._connections.get(task)
                if connection is not None:
                    connection.abort(CloseReason.SERVER_SHUTDOWN)
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        if self._server is not None:
            await self._server.wait_closed()
            logger.info("V2GTP server on %s closed", self._endpoint)
            self._server = None

    async def __aenter__(self) -> V2GTPServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Per-connection task (started by asyncio.start_server)."""
        task = asyncio.current_task()
        assert task is not None
        if self._closing or len(self._connections) >= self._config.max_connections:
            reason = CloseReason.SERVER_SHUTDOWN if self._closing else CloseReason.CONNECTION_LIMIT
            logger.warning(
                "V2GTP connection from %s refused: %s (limit %d)",
                Endpoint.from_sockaddr(writer.get_extra_info("peername")),
                reason.value,
                self._config.max_connections,
                extra={"close_reason": reason},
            )
            writer.transport.abort()
            return
        # Registered before the first await, so the limit counts handshakes too. No await
        # may come before start_tls: the handshake must see the ClientHello's first byte.
        self._connections[task] = None
        try:
            connection = V2GTPConnection(reader, writer, self._config.options)
            self._connections[task] = connection
            await self._serve(connection)
        finally:
            del self._connections[task]

    async def _serve(self, connection: V2GTPConnection) -> None:
        """Handshake, run the handler, close. Never ends cancelled: asyncio 3.11 reports a
        cancelled connection task as an error, and the server's own close() cancels them."""
        reason = CloseReason.LOCAL
        try:
            if self._config.ssl is not None:
                await connection.start_tls(self._config.ssl)
            logger.debug("V2GTP connection from %s accepted", connection.peer)
            await self._handler(connection)
        except ConnectionClosed as exc:
            logger.debug("V2GTP connection with %s ended: %s", connection.peer, exc)
        except asyncio.CancelledError:
            reason = CloseReason.SERVER_SHUTDOWN
        except Exception:
            logger.exception("V2GTP connection handler failed for %s", connection.peer)
            reason = CloseReason.HANDLER_ERROR
        try:
            await connection.close(reason)
        except asyncio.CancelledError:
            connection.abort(CloseReason.SERVER_SHUTDOWN)


async def open_v2gtp_connection(
    host: str,
    port: int,
    interface: str | None = None,
    ssl: ssl.SSLContext | None = None,
    *,
    options: ConnectionOptions | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> V2GTPConnection:
    """Connect to a V2GTP server (e.g. the address and port an SDP response announced).

    `host` is an IPv6 literal; a link-local one needs `interface` (or a `%zone` suffix).
    `ssl` is a client-side context (e.g. from `iso15118.transport.tls`), None for plain TCP.
    Raises `EndpointError` for an unusable address and `ConnectionClosed` (reason
    CONNECT_FAILED or a TLS reason) when the connection cannot be set up.
    """
    endpoint = resolve_endpoint(host, port, interface)
    loop = asyncio.get_running_loop()
    sock = connecting_socket()
    try:
        async with asyncio.timeout(connect_timeout):
            await loop.sock_connect(sock, endpoint.sockaddr())
        reader, writer = await asyncio.open_connection(sock=sock)
    except (OSError, TimeoutError) as exc:
        sock.close()
        detail = f"{endpoint}: {type(exc).__name__} {exc}".rstrip()
        logger.warning("V2GTP connection to %s failed: %s", endpoint, detail)
        raise ConnectionClosed(CloseReason.CONNECT_FAILED, detail) from None
    except BaseException:
        sock.close()
        raise
    connection = V2GTPConnection(reader, writer, options or ConnectionOptions())
    if ssl is not None:
        await connection.start_tls(ssl)
    return connection
