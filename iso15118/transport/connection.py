"""One V2GTP connection over an asyncio stream (TCP or TLS): whole messages in and out.

The asyncio adapter around the sans-IO `V2GTPStream`: it reads when the owner waits in
`receive()`, feeds the bytes with the loop's time, applies the stream's deadlines, and frames
what `send()` is given. It moves frames and nothing else: no payload is decoded and no
protocol state is kept here.

How a connection ends is always a `CloseReason`, logged once and raised to the owner as
`ConnectionClosed`. Closing never waits longer than `ConnectionOptions.close_timeout`: after
that the transport is aborted, so the socket is released whatever the peer does.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Final

from iso15118.v2gtp import PayloadType, V2GTPMessage

from .endpoint import Endpoint
from .stream import (
    FrameIgnored,
    MessageReceived,
    StreamLimits,
    TimeoutReason,
    V2GTPStream,
)

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_SEND_TIMEOUT",
    "CloseReason",
    "ConnectionClosed",
    "ConnectionOptions",
    "TLSInfo",
    "V2GTPConnection",
]

logger = logging.getLogger("iso15118.transport")

#: The TLS handshake is part of communication setup, which the EV bounds with
#: V2G_EVCC_CommunicationSetup_Timeout (20 s, [V2G20-2298] / ISO 15118-2 [V2G2-446]).
DEFAULT_HANDSHAKE_TIMEOUT: Final = 20.0
#: Longest wait for the peer to take a frame we send (its receive window is full meanwhile).
DEFAULT_SEND_TIMEOUT: Final = 5.0
#: Longest wait for an orderly close (TLS close_notify, FIN) before the transport is aborted.
DEFAULT_CLOSE_TIMEOUT: Final = 1.0

_READ_SIZE: Final = 64 * 1024


class CloseReason(Enum):
    """Why a connection ended (or was never set up)."""

    LOCAL = "closed by its owner"
    PEER_CLOSED = "the peer closed the connection"
    FRAME_TIMEOUT = "a started frame did not complete in time"
    IDLE_TIMEOUT = "no complete message in time"
    SEND_TIMEOUT = "the peer did not take our data in time"
    TRANSPORT_ERROR = "the connection failed"
    CONNECT_FAILED = "could not connect"
    CONNECTION_LIMIT = "refused: connection limit reached"
    SERVER_SHUTDOWN = "the server is shutting down"
    HANDLER_ERROR = "the connection handler raised"
    TLS_HANDSHAKE_FAILED = "the TLS handshake failed"
    TLS_HANDSHAKE_TIMEOUT = "the TLS handshake did not complete in time"
    TLS_PROFILE = "the negotiated TLS parameters are outside the profile"


_TIMEOUT_REASONS: Final = {
    TimeoutReason.FRAME: CloseReason.FRAME_TIMEOUT,
    TimeoutReason.IDLE: CloseReason.IDLE_TIMEOUT,
}


class ConnectionClosed(Exception):
    """The connection is over (or could not be set up); `reason` tells why."""

    def __init__(self, reason: CloseReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOptions:
    """Per-connection settings shared by server and client.

    `tls_check` is called with the `ssl.SSLObject` after a successful handshake; an exception
    from it closes the connection with `CloseReason.TLS_PROFILE` (see
    `iso15118.transport.tls.verify_iso20_session`).
    """

    limits: StreamLimits = field(default_factory=StreamLimits)
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    tls_check: Callable[[ssl.SSLObject], None] | None = None


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """What the TLS handshake settled on."""

    version: str
    cipher: str
    peer_certificate: bytes | None  # DER of the peer's leaf, if it sent one


class V2GTPConnection:
    """Whole V2GTP messages over one stream. One task receives at a time.

    Created by `V2GTPServer` (handed to the handler) or `open_v2gtp_connection`.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        options: ConnectionOptions,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._stream = V2GTPStream(options.limits, self._loop.time())
        self._pending: deque[V2GTPMessage] = deque()
        self._close_reason: CloseReason | None = None
        self._shut_down = False
        self._ignored = 0
        self._tls: TLSInfo | None = None
        self.peer = Endpoint.from_sockaddr(writer.get_extra_info("peername"))
        self.local = Endpoint.from_sockaddr(writer.get_extra_info("sockname"))

    # -- state ---------------------------------------------------------------------------

    @property
    def close_reason(self) -> CloseReason | None:
        """None while open; afterwards why it ended."""
        return self._close_reason

    @property
    def ignored_frames(self) -> int:
        """Messages ignored so far because their header failed a check."""
        return self._ignored

    @property
    def tls(self) -> TLSInfo | None:
        """The TLS parameters, or None on plain TCP."""
        return self._tls

    # -- messages ------------------------------------------------------------------------

    async def receive(self) -> V2GTPMessage:
        """The next whole message with an accepted header; ignored ones are logged and
        skipped. Raises `ConnectionClosed` when the connection ends or a timer expires."""
        if self._pending:
            return self._pending.popleft()
        self._raise_if_closed()
        self._stream.restart_idle(self._loop.time())
        while not self._pending:
            data = await self._read()
            if not data:
                await self.close(CloseReason.PEER_CLOSED)
                raise ConnectionClosed(CloseReason.PEER_CLOSED)
            self._feed(data)
        return self._pending.popleft()

    async def send(self, payload_type: PayloadType, payload: bytes) -> None:
        """Frame `payload` and send it; waits until the transport has taken it."""
        self._raise_if_closed()
        frame = V2GTPMessage(payload_type, bytes(payload)).pack()
        try:
            self._writer.write(frame)
            async with asyncio.timeout(self._options.send_timeout):
                await self._writer.drain()
        except TimeoutError:
            await self._fail(CloseReason.SEND_TIMEOUT, f"{len(frame)} bytes not taken")
        except (OSError, RuntimeError) as exc:  # ConnectionResetError, ssl.SSLError, ...
            await self._fail(CloseReason.TRANSPORT_ERROR, _describe(exc))
        self._stream.restart_idle(self._loop.time())

    async def _read(self) -> bytes:
        while True:
            deadline = self._stream.get_timer()
            try:
                async with asyncio.timeout_at(deadline.at if deadline else None):
                    return await self._reader.read(_READ_SIZE)
            except TimeoutError:
                expired = self._stream.handle_timer(self._loop.time())
                if expired is not None:
                    await self._fail(_TIMEOUT_REASONS[expired], expired.value)
            except OSError as exc:  # reset, TLS alert (ssl.SSLError), ...
                await self._fail(CloseReason.TRANSPORT_ERROR, _describe(exc))

    def _feed(self, data: bytes) -> None:
        for event in self._stream.receive_data(data, self._loop.time()):
            if isinstance(event, MessageReceived):
                self._pending.append(event.message)
            elif isinstance(event, FrameIgnored):
                self._ignored += 1
                logger.warning(
                    "V2GTP message from %s ignored: %s (%s; %d bytes discarded) %s",
                    self.peer,
                    event.reason.value,
                    event.detail,
                    event.discarded,
                    event.reason.requirement,
                    extra={"v2gtp_ignored": event.reason, "peer": str(self.peer)},
                )

    # -- TLS -----------------------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Run the TLS handshake (server or client side, as the stream was opened).

        Must be awaited before anything else on the connection. On failure the connection
        is closed and `ConnectionClosed` raised with a TLS reason.
        """
        timeout = self._options.handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(
                    context, server_hostname=None, ssl_handshake_timeout=timeout + 1.0
                )
        except TimeoutError:
            await self._fail(CloseReason.TLS_HANDSHAKE_TIMEOUT, f"after {timeout} s", early=True)
        except (OSError, RuntimeError) as exc:  # ssl.SSLError, reset, transport closing
            await self._fail(CloseReason.TLS_HANDSHAKE_FAILED, _describe(exc), early=True)
        ssl_object = self._writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        cipher = ssl_object.cipher()
        self._tls = TLSInfo(
            version=ssl_object.version() or "",
            cipher=cipher[0] if cipher else "",
            peer_certificate=ssl_object.getpeercert(binary_form=True),
        )
        if self._options.tls_check is not None:
            try:
                self._options.tls_check(ssl_object)
            except Exception as exc:
                await self._fail(CloseReason.TLS_PROFILE, str(exc))
        logger.debug("TLS with %s: %s %s", self.peer, self._tls.version, self._tls.cipher)

    # -- closing -------------------------------------------------------------------------

    async def close(self, reason: CloseReason = CloseReason.LOCAL) -> None:
        """Close the connection (idempotent); the first reason given is the one kept."""
        if self._close_reason is None:
            self._close_reason = reason
            level = logging.DEBUG if reason in _ORDINARY else logging.WARNING
            logger.log(
                level,
                "V2GTP connection with %s closed: %s",
                self.peer,
                reason.value,
                extra={"close_reason": reason, "peer": str(self.peer)},
            )
        await self._shutdown(graceful=True)

    def abort(self, reason: CloseReason) -> None:
        """Drop the connection at once, without waiting (the socket closes on the next
        loop iteration)."""
        if self._close_reason is None:
            self._close_reason = reason
        self._shut_down = True
        self._writer.transport.abort()

    async def _fail(self, reason: CloseReason, detail: str, *, early: bool = False) -> None:
        """Record `reason` with its detail, close, and raise `ConnectionClosed`."""
        if self._close_reason is None:
            self._close_reason = reason
            logger.warning(
                "V2GTP connection with %s closed: %s (%s)",
                self.peer,
                reason.value,
                detail,
                extra={"close_reason": reason, "peer": str(self.peer)},
            )
        await self._shutdown(graceful=not early)
        raise ConnectionClosed(reason, detail)

    async def _shutdown(self, *, graceful: bool) -> None:
        """Close the transport; abort it if that takes longer than `close_timeout`.

        After a failed TLS handshake the stream protocol never learns that the connection
        is lost, so `wait_closed()` would not return: the transport is aborted instead and
        its socket closed on the next loop iteration.
        """
        if self._shut_down:
            return
        self._shut_down = True
        transport = self._writer.transport
        if not graceful:
            transport.abort()
            await asyncio.sleep(0)
            return
        if not transport.is_closing():
            self._writer.close()
        try:
            async with asyncio.timeout(self._options.close_timeout):
                await self._writer.wait_closed()
        except (TimeoutError, OSError, ValueError):
            transport.abort()
            await asyncio.sleep(0)

    def _raise_if_closed(self) -> None:
        if self._close_reason is not None:
            raise ConnectionClosed(self._close_reason, "the connection is closed")

    async def __aenter__(self) -> V2GTPConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


_ORDINARY: Final = frozenset(
    {CloseReason.LOCAL, CloseReason.PEER_CLOSED, CloseReason.SERVER_SHUTDOWN}
)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{type(exc).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
