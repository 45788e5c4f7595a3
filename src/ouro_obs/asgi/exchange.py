"""The per-request :class:`Exchange`: wraps ``receive`` and ``send`` and keeps what passed.

One is made for each observed HTTP request and is never shared. It is the request's
:class:`~ouro_obs.asgi.record.RequestRecord`: it counts the body bytes each way, notes the
status sent, whether the response completed and whether the client left, and adds the
request id header to the response start. When the last body byte has been sent, the app
returns without it, or the client is seen to leave first, it is handed to the pipeline
exactly once, which settles it.

A client that gives up on a slow endpoint is seen as the ``http.disconnect`` the server
reports through ``receive``. An app that is busy computing its answer calls no ``receive``,
so the :class:`DepartureWatch` arms a :class:`ReceiveListener` for every request still running
:data:`LISTEN_AFTER_SECONDS` after it arrived: from then on the listener is the one caller of
the server's ``receive``, and the app's ``receive`` is served from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable
from contextvars import Context, Token, copy_context
from threading import get_ident
from time import perf_counter
from typing import Any, Final

from starlette.types import Message, Receive, Scope, Send

from ouro_obs.asgi.record import Outcome, RequestRecord
from ouro_obs.asgi.recorders import Failsafe

__all__ = [
    "LISTEN_AFTER_SECONDS",
    "DepartureWatch",
    "Exchange",
    "ReceiveListener",
    "with_header",
]

#: A request still running this long after it arrived (up to twice this long: the watch
#: ticks once per delay) gets a listener for its client leaving. A request that ends sooner
#: costs its entry in a set; a client that left sooner is seen when the listener starts.
LISTEN_AFTER_SECONDS: Final = 0.05
#: Read per request: a module global costs a tenth of an Enum member's lookup (3.11).
_NO_RESPONSE: Final = Outcome.NO_RESPONSE


class Exchange(RequestRecord):
    """One HTTP request on its way through the app: its record, and the wrapped I/O."""

    __slots__ = (
        "_finish",
        "_listener",
        "_receive",
        "_receiving",
        "_send",
        "context",
        "finished",
        "request_id_binding",
        "response_header",
        "root_path",
        "span_token",
        "watched_in",
        "watched_since",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        root_path: str,
        finish: Callable[[Exchange], None],
    ) -> None:
        self.start_time = perf_counter()
        self.scope = scope
        self._receive = receive
        self._send = send
        self._finish = finish
        self.method = method
        #: The path prefix the server mounted the app under.
        self.root_path = root_path
        self.route = ""
        self.outcome = _NO_RESPONSE
        self.status = 0
        self.end_time = 0.0
        self.status_sent = None
        self.response_start = None
        self.request_bytes = 0
        self.response_bytes = 0
        self.complete = False
        self.client_gone = False
        self.finished = False
        self.error = None
        self.request_id = None
        #: The token of the request id's structlog context variable, to restore on leaving.
        self.request_id_binding: Token[Any] | None = None
        #: Added to the response start unless the app sent that header itself.
        self.response_header: tuple[bytes, bytes] | None = None
        self.user_agent = None
        self.span = None
        self.span_ids = None
        #: The context token that made our span current, to detach when the request leaves.
        self.span_token: object | None = None
        #: A copy of the request's context as the app got it, for the departure listener.
        self.context: Context | None = None
        #: The departure watch's set of running requests this one is in, and the watch's
        #: tick count when it was added (see :class:`DepartureWatch`).
        self.watched_in: set[Exchange] | None = None
        self.watched_since = 0
        #: The app's receive is served from this once the request is watched for departure.
        self._listener: ReceiveListener | None = None
        #: Whether the app is waiting in the server's receive (no listener may start then).
        self._receiving = False

    async def receive(self) -> Message:
        listener = self._listener
        if listener is None:
            self._receiving = True
            try:
                message = await self._receive()
            finally:
                self._receiving = False
            listener = self._listener
            if listener is not None:  # armed while the app waited: it listens on from here
                listener.resume_after(message)
        else:
            message = await listener.receive()
        message_type = message["type"]
        if message_type == "http.request":
            self.request_bytes += len(message.get("body", b""))
        elif message_type == "http.disconnect":
            self._departed()
        return message

    async def send(self, message: Message) -> None:
        message_type = message["type"]
        last = False
        if message_type == "http.response.start":
            if self.response_header is not None:
                message = with_header(message, self.response_header)
            self.status_sent = message["status"]
            self.response_start = message
        elif message_type == "http.response.body":
            self.response_bytes += len(message.get("body", b""))
            last = not message.get("more_body", False)
        elif message_type == "http.response.pathsend":
            self.response_bytes += _file_size(message.get("path", ""))
            last = True
        if last:
            # A disconnect reported from here on follows the whole response (some servers
            # report it while the last send is still running): not a departure.
            self.complete = True
            if self._listener is not None:
                self._listener.stop()
        try:
            await self._send(message)
        except OSError:
            if last:
                self.complete = False
            self.client_gone = True
            raise
        except BaseException:
            if last:
                self.complete = False
            raise
        if last and not self.finished:  # _hand_over(), inlined: every request passes here
            self.end_time = perf_counter()
            self.finished = True
            watched = self.watched_in
            if watched is not None:
                watched.discard(self)
            self._finish(self)

    def listen_for_departure(self) -> None:
        """Watch the server's ``receive`` for the client leaving, from now until the end.

        Not for a request whose ``Expect: 100-continue`` the app has not answered by reading
        the body: uvicorn sends the ``100 Continue`` at the first ``receive``.
        """
        if self.finished or self._listener is not None:
            return
        if self.request_bytes == 0 and _expects_continue(self.scope):
            return
        self._listener = ReceiveListener(
            self._receive, self._heard, self.context, listening=not self._receiving
        )

    def _heard(self, message: Message) -> None:
        if message["type"] == "http.disconnect":
            self._departed()

    def _departed(self) -> None:
        """The server reported the client gone: unless the response completed, that ends
        the request's record now (the app may still be working on an answer no one gets)."""
        if self.complete or self.finished:
            return
        self.client_gone = True
        self._hand_over()

    def cancelled(self) -> None:
        """The request's task was cancelled: the server does that when the client left."""
        if not self.complete:
            self.client_gone = True

    def finish(self) -> None:
        """Hand the request to the pipeline now: the app returned before the last byte.

        At the last byte, or when the client was seen to leave, the exchange hands itself
        over; whichever comes first happens once.
        """
        if self._listener is not None:
            self._listener.stop()
        if not self.finished:
            self._hand_over()

    def _hand_over(self) -> None:
        """End the record now and hand it to the pipeline (the callers make it once)."""
        self.end_time = perf_counter()
        self.finished = True
        watched = self.watched_in
        if watched is not None:
            watched.discard(self)
        self._finish(self)


class ReceiveListener:
    """The one caller of the server's ``receive`` once a request is watched for departure.

    ASGI servers do not promise that concurrent ``receive`` calls are safe, so the app's
    ``receive`` is served from here: messages the listener read are handed over in order,
    and while it reads, the app waits for its message. It reads ahead of the app by one
    message at most: a body message with more to come waits until the app takes it (and
    the app reads the rest itself), so the server's flow control holds. Once the whole body
    is read, the next message a server sends is ``http.disconnect``: the client left, or
    the response completed (then :meth:`stop` has ended the listening first).
    """

    __slots__ = (
        "_context",
        "_error",
        "_heard",
        "_inbox",
        "_receive",
        "_stopped",
        "_task",
        "_waiters",
    )

    def __init__(
        self,
        receive: Receive,
        heard: Callable[[Message], None],
        context: Context | None,
        *,
        listening: bool,
    ) -> None:
        self._receive = receive
        #: Told of every message read (the exchange notes a disconnect), in the context given.
        self._heard = heard
        self._context = context
        self._inbox: deque[Message] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        #: What the server's receive raised while the listener called it, for the app.
        self._error: Exception | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        if listening:
            self._listen()

    async def receive(self) -> Message:
        """The app's ``receive``: the next message read, else the server's own when none listens."""
        inbox = self._inbox
        while not inbox:
            error = self._error
            if error is not None:
                self._error = None
                raise error
            if self._task is None:
                message = await self._receive()
                self.resume_after(message)
                return message
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):  # already cleared by the wake-up
                    self._waiters.remove(waiter)
        return inbox.popleft()

    def resume_after(self, message: Message) -> None:
        """The app read ``message`` from the server itself: listen on once the body is whole."""
        if (
            self._task is None
            and not self._stopped
            and message["type"] == "http.request"
            and not message.get("more_body", False)
        ):
            self._listen()

    def stop(self) -> None:
        """The response is complete: stop listening; the app calls the server itself again."""
        self._stopped = True
        task = self._task
        if task is not None:
            self._task = None
            task.cancel()
        self._wake()

    def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._read(), context=self._context)

    async def _read(self) -> None:
        inbox = self._inbox
        try:
            while True:
                message = await self._receive()
                inbox.append(message)
                self._wake()
                self._heard(message)
                if message["type"] != "http.request" or message.get("more_body", False):
                    return
        except Exception as error:  # the server's receive failed: the app gets it next
            self._error = error
            self._wake()
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            waiters.clear()


class DepartureWatch:
    """Arms the :class:`ReceiveListener` of every request still running after a short delay.

    One coarse timer per event loop instead of one per request: a timer of its own
    (``loop.call_later`` and its cancel) measured about 20,000 instructions, a third of
    the whole middleware's cost per request. :meth:`add` puts the request in a set of the
    running ones, which it leaves when it ends (so the set keeps nothing alive that the
    request does not); every :data:`LISTEN_AFTER_SECONDS` a tick arms those added before
    the previous tick, so a request is armed between one and two delays after it arrived.
    The timer runs only while there are requests to watch.

    The tickers are found by thread, not by ``asyncio.get_running_loop()``: on Python
    3.11 that call is a ``getpid`` system call each time. A thread runs one loop at a
    time, so the thread's ticker is the running loop's while that loop runs.
    """

    __slots__ = ("_failsafe", "_tickers", "keep_context")

    def __init__(self, failsafe: Failsafe, *, keep_context: bool = True) -> None:
        self._failsafe = failsafe
        #: Whether the listener runs in a copy of the request's context (the access line
        #: written when the client leaves reads the request's context variables); without
        #: it, in an empty one, and no copy is made per request.
        self.keep_context = keep_context
        #: By thread: the ticker of the loop that thread runs (one leaves when it stops).
        self._tickers: dict[int, _Ticker] = {}

    def add(self, exchange: Exchange) -> None:
        """Watch ``exchange``, whose app is about to run (in the current context)."""
        try:
            ticker = self._tickers.get(get_ident())
            if ticker is None or not ticker.loop.is_running():
                ticker = self._new_ticker()
            if self.keep_context:
                exchange.context = copy_context()
            exchange.watched_since = ticker.ticks
            running = ticker.running
            exchange.watched_in = running
            running.add(exchange)
            if not ticker.ticking:
                ticker.start()
        except Exception:
            self._failsafe.failed("departure")

    def _new_ticker(self) -> _Ticker:
        """The ticker of the loop running in this thread, made now."""
        thread = get_ident()
        ticker = _Ticker(asyncio.get_running_loop(), self._arm, self._stopped, thread)
        self._tickers[thread] = ticker
        return ticker

    def _arm(self, exchange: Exchange) -> None:
        try:
            exchange.listen_for_departure()
        except Exception:
            self._failsafe.failed("departure")

    def _stopped(self, ticker: _Ticker) -> None:
        if self._tickers.get(ticker.thread) is ticker:
            del self._tickers[ticker.thread]


class _Ticker:
    """One event loop's running requests not listened to yet, and its timer."""

    __slots__ = ("_arm", "_stopped", "loop", "running", "thread", "ticking", "ticks")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        arm: Callable[[Exchange], None],
        stopped: Callable[[_Ticker], None],
        thread: int,
    ) -> None:
        self.loop = loop
        #: The thread that runs ``loop``.
        self.thread = thread
        self._arm = arm
        #: Told when the timer stops for want of requests: the ticker is done.
        self._stopped = stopped
        self.running: set[Exchange] = set()
        #: Ticks so far. A request added at ``ticks == n`` is armed by the second tick after
        #: that, the one that finds ``ticks == n + 1``: between one and two delays later.
        self.ticks = 0
        self.ticking = False

    def start(self) -> None:
        self.ticking = True
        # An empty context: the timer must not keep the context of the request that started it.
        self.loop.call_later(LISTEN_AFTER_SECONDS, self._tick, context=Context())

    def _tick(self) -> None:
        ticks = self.ticks
        self.ticks = ticks + 1
        running = self.running
        due = [exchange for exchange in running if exchange.watched_since < ticks]
        arm = self._arm
        for exchange in due:
            running.discard(exchange)
            arm(exchange)
        if running:
            self.start()
        else:
            self.ticking = False
            self._stopped(self)


def with_header(message: Message, header: tuple[bytes, bytes]) -> Message:
    """A copy of ``message`` with ``header`` added, unless the app already sent that header.

    A copy: a response object reused across requests must not collect our headers.
    """
    headers = message.get("headers") or ()
    if type(headers) is not list and type(headers) is not tuple:
        headers = list(headers)  # any iterable (a generator) can be read only once
    name = header[0]
    for existing, _value in headers:
        if existing.lower() == name:
            return message
    return {**message, "headers": [*headers, header]}


def _expects_continue(scope: Scope) -> bool:
    return any(name == b"expect" for name, _value in scope.get("headers") or ())


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
