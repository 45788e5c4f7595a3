"""Apps and servers for tests/metrics/test_client_departure.py.

- :class:`Held`: what a test shares with its app across threads: a slow endpoint held until
  the test releases it, and what the app saw (the server's ``receive`` called, its own
  exceptions, the calls that returned).
- :func:`observed_app`: a Starlette app with ``/slow``, ``/fast`` and ``/upload`` inside
  ``ObservabilityMiddleware``, inside :func:`watched` (between the server and the
  middleware, so it sees what the middleware does with the server's ``receive``).
- :class:`ThreadedHypercorn`: the app served by hypercorn in a thread.
- :func:`gunicorn_app`: the factory gunicorn's uvicorn worker serves (``/release`` and
  ``/returned`` steer and report it over HTTP, since the test is in another process).
- :func:`leave_after_sending`: a raw-socket client that sends a request and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware
from ouro_obs.demo.lifecycle import free_port

__all__ = [
    "AccessLines",
    "Held",
    "ThreadedHypercorn",
    "gunicorn_app",
    "leave_after_sending",
    "observed_app",
    "raw_request",
    "watched",
]


@dataclass
class Held:
    """What the test and the app share across threads."""

    #: Lets ``/slow`` answer.
    release: threading.Event = field(default_factory=threading.Event)
    #: Set when ``/slow`` started waiting.
    arrived: threading.Event = field(default_factory=threading.Event)
    #: Set when the middleware first called the server's ``receive`` of a request.
    server_receive_called: threading.Event = field(default_factory=threading.Event)
    #: How many calls of the server's ``receive`` were running at once, at most.
    most_concurrent_receives: int = 0
    #: Paths whose app call returned, and what the app calls raised, in order.
    returned: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    #: ``/upload``'s body as it read it.
    uploaded: bytes | None = None


class AccessLines:
    """An injected access logger: keeps the fields of every line."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(fields)

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append(fields)

    def for_route(self, route: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["route"] == route]


async def _until(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.005)


def _routes(held: Held) -> list[Route]:
    async def slow(request: Request) -> Response:
        held.arrived.set()
        await _until(held.release)
        return PlainTextResponse("late")

    async def fast(request: Request) -> Response:
        return PlainTextResponse("fast")

    async def upload(request: Request) -> Response:
        # The handler reads its body only once the middleware has listened to the server.
        await _until(held.server_receive_called)
        body = await request.body()
        held.uploaded = body
        return PlainTextResponse(hashlib.sha256(body).hexdigest())

    async def release(request: Request) -> Response:
        held.release.set()
        return PlainTextResponse("released")

    async def returned(request: Request) -> Response:
        errors = [f"{type(error).__name__}: {error}" for error in held.errors]
        return JSONResponse({"returned": held.returned, "errors": errors})

    return [
        Route("/slow", slow),
        Route("/fast", fast),
        Route("/upload", upload, methods=["POST"]),
        Route("/release", release),
        Route("/returned", returned),
    ]


def watched(app: ASGIApp, held: Held) -> ASGIApp:
    """``app`` with the server's ``receive`` and the app call's outcome noted in ``held``."""
    running = 0

    async def outside(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def server_receive() -> Message:
            nonlocal running
            held.server_receive_called.set()
            running += 1
            held.most_concurrent_receives = max(held.most_concurrent_receives, running)
            try:
                return await receive()
            finally:
                running -= 1

        try:
            await app(scope, server_receive, send)
        except BaseException as error:
            held.errors.append(error)
            raise
        held.returned.append(scope["path"])

    return outside


def observed_app(
    held: Held,
    registry: CollectorRegistry | None = None,
    access: AccessLines | None = None,
    provider: TracerProvider | None = None,
) -> ASGIApp:
    """The test app inside the middleware, inside :func:`watched`."""
    inner = Starlette(routes=_routes(held))
    options: dict[str, Any] = {"tracing": provider is not None}
    if access is not None:
        options["logger"] = access
    if provider is not None:
        options["tracer_provider"] = provider
    middleware = ObservabilityMiddleware(inner, registry=registry, **options)
    return watched(middleware, held)


def gunicorn_app() -> ASGIApp:
    """The factory gunicorn serves: the default registry and the JSON access line on stdout."""
    return observed_app(Held())


class ThreadedHypercorn:
    """An ASGI app on a free loopback port, served by hypercorn (HTTP/1.1) in a thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._config = Config()
        self._config.bind = [f"127.0.0.1:{self.port}"]
        self._config.accesslog = None
        self._config.graceful_timeout = 1.0
        self._app = app
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def stopped() -> None:
            await _until(self._stop)

        asyncio.run(serve(self._app, self._config, shutdown_trigger=stopped))  # type: ignore[arg-type]

    def __enter__(self) -> ThreadedHypercorn:
        self._thread.start()
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"hypercorn did not start on port {self.port}")
            time.sleep(0.02)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)


def raw_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("ascii") + b"\r\n" + body


def leave_after_sending(port: int, request: bytes, arrived: threading.Event | None = None) -> None:
    """Send ``request`` and close the connection (once ``arrived`` is set, if given)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        if arrived is not None and not arrived.wait(10):
            raise TimeoutError("the request never reached the app")


def get_json(port: int, path: str) -> Any:
    """``GET path`` over a fresh connection, its JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks).split(b"\r\n\r\n", 1)[1])
