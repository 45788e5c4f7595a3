"""One TCP connection to the upstream: an asyncio protocol around an h11 state machine.

The unit :class:`~ouro_obs.sidecar.upstream.UpstreamClient` pools. Received bytes wait in a
small buffer and reading from the socket pauses above :data:`READ_HIGH_WATER`; writes wait
for the transport to drain. Every wait is bounded by the timeout it is given, and every
failure is an :class:`UpstreamError` whose ``reason`` is a short, fixed label value.

The parser is told of the upstream's close only once every byte received before it was
parsed, so a parse error raised with :attr:`UpstreamConnection.close_parsed` false came
from the bytes themselves (``protocol_error``), however soon the close followed them.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final, cast

import h11

__all__ = [
    "MAX_RESPONSE_HEAD",
    "READ_HIGH_WATER",
    "UPSTREAM_ERROR_REASONS",
    "UpstreamConnection",
    "UpstreamError",
]

#: Unconsumed response bytes held per connection before the socket stops being read.
READ_HIGH_WATER: Final = 256 * 1024
#: The largest response head (status line and headers) accepted from the upstream, whether
#: it arrives in one piece or many (h11's own limit only bounds an incomplete head).
MAX_RESPONSE_HEAD: Final = 64 * 1024

#: Every ``reason`` an :class:`UpstreamError` can carry (the metric's label values).
UPSTREAM_ERROR_REASONS: Final = (
    "connect_error",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "disconnected",
    "protocol_error",
)


class UpstreamError(Exception):
    """The upstream could not be reached, was too slow, or broke the exchange.

    ``reason`` is one of :data:`UPSTREAM_ERROR_REASONS`; ``status`` is what a proxy
    answers for it (504 for a timeout, 502 otherwise).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def status(self) -> int:
        return 504 if self.reason.endswith("_timeout") else 502


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to the upstream and its h11 state; the pool's unit."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        self.transport: asyncio.Transport | None = None
        self.reused = False
        #: Bytes received in the current exchange.
        self.received = 0
        self.idle_since = 0.0
        self._idle = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._reading_paused = False
        self._eof = False
        self._eof_parsed = False
        self._lost = False
        #: Bytes handed to the parser in the current exchange, and where the last head ended.
        self._parsed = 0
        self._head_end = 0
        self._data_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, only alike.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Request heads are small writes that must leave at once.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._idle:
            # An idle HTTP/1.1 connection has nothing to say; bytes now mean it is broken.
            self.close()
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self.received += len(data)
        if self._buffered > READ_HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = True
        self._wake_reader()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter, self._data_waiter = self._data_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- used by the client -------------------------------------------------------------

    @property
    def close_parsed(self) -> bool:
        """The parser was told the upstream closed: a parse error now is about that close."""
        return self._eof_parsed

    @property
    def usable(self) -> bool:
        return not self._eof and self.transport is not None and not self.transport.is_closing()

    @property
    def has_unread_bytes(self) -> bool:
        """Bytes came after the response: pooled, they would answer the next request."""
        return bool(self._chunks) or bool(self.parser.trailing_data[0])

    def park(self, now: float) -> None:
        self._idle = True
        self.idle_since = now
        self.received = self._parsed = self._head_end = 0

    def unpark(self) -> None:
        self._idle = False
        self.reused = True

    def write(self, data: bytes | None) -> None:
        if data and self.transport is not None:
            self.transport.write(data)

    async def drain(self, timeout: float) -> None:
        if not self._write_paused:
            return
        if self._lost:
            raise UpstreamError("disconnected", "the upstream closed the connection")
        self._drain_waiter = self._loop.create_future()
        await _wait(
            self._drain_waiter,
            timeout,
            UpstreamError(
                "write_timeout", f"the upstream accepted no request body for {timeout:g}s"
            ),
        )
        if self._lost:
            raise UpstreamError("disconnected", "the upstream closed the connection")

    async def next_event(self, timeout: float) -> h11.Event:
        """The next h11 event, reading from the socket as needed (``timeout`` per wait)."""
        while True:
            event = self.parser.next_event()
            if isinstance(event, h11.Event):
                if type(event) is h11.Response:
                    self._check_head_size(final=True)
                elif type(event) is h11.InformationalResponse:
                    self._check_head_size(final=False)
                return event
            if event is h11.PAUSED:
                raise UpstreamError("protocol_error", "the upstream sent bytes after its response")
            if not self._chunks and not self._eof:
                self._data_waiter = self._loop.create_future()
                await _wait(
                    self._data_waiter,
                    timeout,
                    UpstreamError("read_timeout", f"the upstream sent nothing for {timeout:g}s"),
                )
            self._feed()

    def _feed(self) -> None:
        if self._chunks:
            data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks.clear()
            self._buffered = 0
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            self._parsed += len(data)
            self.parser.receive_data(data)
        elif self._eof:
            self._eof_parsed = True
            self.parser.receive_data(b"")

    def _check_head_size(self, *, final: bool) -> None:
        """Refuse the head just parsed when it is over :data:`MAX_RESPONSE_HEAD` bytes.

        No head follows the final one, so when every byte parsed since the previous head
        fits the limit, this one does too, and its exact end need not be known.
        """
        if final and self._parsed - self._head_end <= MAX_RESPONSE_HEAD:
            return
        head_end = self._parsed - len(self.parser.trailing_data[0])
        size, self._head_end = head_end - self._head_end, head_end
        if size > MAX_RESPONSE_HEAD:
            raise UpstreamError(
                "protocol_error",
                f"the response head is {size} bytes, over the {MAX_RESPONSE_HEAD}-byte limit",
            )

    def close(self) -> None:
        self._eof = True
        if self.transport is not None:
            self.transport.abort()


async def _wait(waiter: asyncio.Future[None], timeout: float, timed_out: UpstreamError) -> None:
    """Wait for ``waiter`` to be woken; ``timed_out`` is raised after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await waiter
    except TimeoutError:
        raise timed_out from None
