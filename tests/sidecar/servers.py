"""Real servers on loopback for the sidecar tests: upstreams of three kinds, and the sidecar.

- :func:`upstream_app`: a raw ASGI app served by uvicorn in a thread (echo, streams,
  uploads, downloads, slow and health endpoints), steered through :class:`UpstreamState`.
- :class:`CannedUpstream`: an asyncio TCP server that answers requests with fixed bytes
  (:class:`Canned`: heads no well-behaved framework would send, written in one piece or
  several, then a close) and keeps what it received.
- :func:`raw_exchange`: raw request bytes in, the raw response bytes out.
- :class:`Nginx`: Debian's nginx as the current user, config and files under a tmp dir.
- :func:`running_sidecar`: the real :class:`~ouro_obs.sidecar.server.Sidecar` serving in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import json
import os
import pwd
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import h11
import uvicorn
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from ouro_obs.asgi.routes import RouteResolver
from ouro_obs.config import ObservabilitySettings
from ouro_obs.demo.lifecycle import ManagedProcess, free_port
from ouro_obs.sidecar.server import Sidecar, SidecarConfig

__all__ = [
    "Canned",
    "CannedUpstream",
    "Nginx",
    "ThreadedUvicorn",
    "UpstreamState",
    "payload",
    "raw_exchange",
    "running_sidecar",
    "sha256",
    "upstream_app",
    "wait_for_requests",
    "wait_for_sample",
    "with_current_span",
]

CHUNK = 64 * 1024


def payload(size: int, seed: int = 7) -> bytes:
    """``size`` deterministic, incompressible bytes."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for_sample(
    registry: CollectorRegistry,
    name: str,
    labels: dict[str, str],
    expected: float | None = None,
    timeout: float = 5.0,
) -> float | None:
    """The sample's value once it is above 0, or equals ``expected`` (or the timeout passed).

    The middleware records a request just after its last byte is written, so a client
    can hold the response a moment before the sample moves; and a new series reads 0
    for the moment between its creation and its first increment.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = registry.get_sample_value(name, labels)
        settled = bool(value) if expected is None else value == expected
        if settled or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def wait_for_requests(registry: CollectorRegistry, count: float, timeout: float = 5.0) -> float:
    """``http_requests_total`` summed over its series, once it reaches ``count`` (or the
    timeout passed): the requests sent so far are recorded and their access lines written."""
    deadline = time.monotonic() + timeout
    while True:
        total = sum(
            sample.value
            for metric in registry.collect()
            if metric.name == "http_requests"
            for sample in metric.samples
            if sample.name == "http_requests_total"
        )
        if total >= count or time.monotonic() > deadline:
            return total
        time.sleep(0.02)


@dataclass
class UpstreamState:
    """What the test and the upstream app share across threads."""

    #: Lets /stream send its last chunk, /slow answer, /upload read past its first chunk.
    release: threading.Event = field(default_factory=threading.Event)
    #: Set by /upload when the first body chunk arrived.
    first_chunk_arrived: threading.Event = field(default_factory=threading.Event)
    #: Ordered things that happened, appended from both sides.
    events: list[str] = field(default_factory=list)
    health_status: int = 200
    received: dict[str, Any] = field(default_factory=dict)


async def _text(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def upstream_app(state: UpstreamState) -> ASGIApp:
    """The uvicorn upstream; any path not listed answers 200 ``upstream:<path>``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        query = {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}
        if path == "/echo":
            document = {
                "method": scope["method"],
                "target": scope["raw_path"].decode() + "?" + scope["query_string"].decode(),
                "headers": [[name.decode(), value.decode()] for name, value in scope["headers"]],
            }
            await _text(send, 200, json.dumps(document).encode(), [])
        elif path == "/stream":
            await _stream(state, send)
        elif path == "/upload":
            await _upload(state, receive, send, gated=query.get("gated") == "1")
        elif path == "/download":
            await _download(send, int(query["size"]), chunked=query.get("chunked") == "1")
        elif path == "/slow":
            await asyncio.to_thread(state.release.wait, float(query.get("seconds", "10")))
            await _text(send, 200, b"slow answer", [])
        elif path == "/healthz":
            await _text(send, state.health_status, b"health", [])
        else:
            await _text(send, 200, f"upstream:{path}".encode(), [])

    return app


async def _stream(state: UpstreamState, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
    await asyncio.to_thread(state.release.wait, 10)
    state.events.append("upstream finished")
    await send({"type": "http.response.body", "body": b"last\n"})


async def _upload(state: UpstreamState, receive: Receive, send: Send, *, gated: bool) -> None:
    digest = hashlib.sha256()
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if body and size == 0:
            state.events.append("upstream got the first chunk")
            state.first_chunk_arrived.set()
        digest.update(body)
        size += len(body)
    state.received["upload"] = {"bytes": size, "sha256": digest.hexdigest()}
    await _text(send, 200, json.dumps(state.received["upload"]).encode(), [])


async def _download(send: Send, size: int, *, chunked: bool) -> None:
    data = payload(size)
    headers = [] if chunked else [(b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for start in range(0, size, CHUNK):
        await send(
            {"type": "http.response.body", "body": data[start : start + CHUNK], "more_body": True}
        )
    await send({"type": "http.response.body", "body": b""})


class ThreadedUvicorn:
    """An ASGI app on a free loopback port, served by uvicorn in a daemon thread."""

    def __init__(
        self, app: ASGIApp, port: int | None = None, *, lifespan: bool = False, http: str = "auto"
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            lifespan="on" if lifespan else "off",
            http=http,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedUvicorn:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)


@dataclass(frozen=True, slots=True)
class Canned:
    """A scripted answer: ``data`` written as it is, in ``pieces`` writes a moment apart
    (so the reader gets them separately), then the connection closed when ``close``."""

    data: bytes
    pieces: int = 1
    close: bool = False


class CannedUpstream:
    """Answers every request with ``response`` (or the ``routes`` entry for its target)
    and records the request heads that came in."""

    def __init__(self, response: bytes | Canned, routes: Mapping[bytes, Canned] | None = None):
        self.response = response if isinstance(response, Canned) else Canned(response)
        self.routes = dict(routes or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
                answer = self.routes.get(target, self.response)
                await _write_in_pieces(writer, answer)
                if answer.close:
                    break
        writer.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await self._stop.wait()
            for writer in self._writers:
                writer.close()
            await asyncio.sleep(0)  # let the transports finish closing

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    def __enter__(self) -> CannedUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the canned upstream did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)


async def _write_in_pieces(writer: asyncio.StreamWriter, answer: Canned) -> None:
    size = -(-len(answer.data) // answer.pieces)
    for start in range(0, len(answer.data), size):
        if start:
            await asyncio.sleep(0.05)  # the reader's event loop takes each piece on its own
        writer.write(answer.data[start : start + size])
        await writer.drain()


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send ``request`` bytes as they are; the bytes of the one response that comes back.

    Reading stops when the response is complete (parsed with h11, so a kept-alive
    connection need not close) or the server closes the connection.

    A server that refuses a request it is still receiving (a 100 kB request line) answers
    and closes; the unread bytes make its kernel reset the connection, which may discard
    the answer before it is read. Such an exchange is tried again, a few times.
    """
    for _ in range(_RESET_ATTEMPTS - 1):
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            return _exchange_once(port, request, timeout)
    return _exchange_once(port, request, timeout)  # the last attempt's reset propagates


#: Exchanges tried before a reset connection fails the test.
_RESET_ATTEMPTS = 5


def _exchange_once(port: int, request: bytes, timeout: float) -> bytes:
    parser = h11.Connection(h11.CLIENT)
    method = b"HEAD" if request.startswith(b"HEAD ") else b"GET"
    parser.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"x")]))
    parser.send(h11.EndOfMessage())
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            connection.sendall(request)  # refused midway: its answer may still be there
        try:
            while chunk := connection.recv(65536):
                received += chunk
                if _complete(parser, chunk):
                    break
        except ConnectionResetError:
            if not received:
                raise
    return bytes(received)


def _complete(parser: h11.Connection, chunk: bytes) -> bool:
    if parser.their_state is h11.ERROR:
        return False  # not HTTP the parser follows: read until the server closes
    parser.receive_data(chunk)
    try:
        while (event := parser.next_event()) is not h11.NEED_DATA:
            if type(event) is h11.EndOfMessage or event is h11.PAUSED:
                return True
    except h11.RemoteProtocolError:
        pass
    return False


class Nginx:
    """Debian's nginx, as the current user, on a free port; files served from ``root``."""

    def __init__(self, workdir: Path, nginx: str) -> None:
        self.workdir = workdir
        self.root = workdir / "www"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.binary = nginx
        self._process: ManagedProcess | None = None

    def config(self) -> str:
        work = self.workdir
        user = ""
        if os.geteuid() == 0:
            # As root, nginx hands requests to workers running as `nobody`, who could not
            # write the PUT uploads into this tmp directory; stay the current user instead.
            user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
        return f"""
{user}
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    client_max_body_size 64m;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        location = /echo {{
            default_type text/plain;
            return 200 "traceparent=$http_traceparent\\nx-forwarded-for=$http_x_forwarded_for\\nx-forwarded-proto=$http_x_forwarded_proto\\nx-forwarded-host=$http_x_forwarded_host\\nconnection=$http_connection\\nkeep-alive=$http_keep_alive\\n";
        }}
        location /dav/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
    }}
}}
"""

    def __enter__(self) -> Nginx:
        config_path = self.workdir / "nginx.conf"
        config_path.write_text(self.config())
        self._process = ManagedProcess(
            argv=[
                self.binary,
                "-p",
                str(self.workdir),
                "-e",
                str(self.workdir / "error.log"),
                "-c",
                str(config_path),
                "-g",
                "daemon off;",
            ],
            log_path=self.workdir / "nginx.out",
            ready_timeout=15,
        )
        (self.root / "ready").write_text("ok")
        self._process.ready_url = f"{self.url}/ready"
        self._process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.stop()


def with_current_span(spans: list[Any]) -> Callable[[ASGIApp], ASGIApp]:
    """An ASGI wrapper factory making a fresh SDK span current per HTTP request (kept in
    ``spans``), the way the middleware's tracing does, without configuring OTel globally."""
    tracer = TracerProvider().get_tracer("ouro-obs-tests")

    def wrap(app: ASGIApp) -> ASGIApp:
        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            with tracer.start_as_current_span(f"{scope['method']} {scope['path']}") as span:
                spans.append(span)
                await app(scope, receive, send)

        return traced

    return wrap


@contextlib.contextmanager
def running_sidecar(
    upstream: str,
    registry: CollectorRegistry,
    *,
    route_resolver: RouteResolver | None = None,
    settings: ObservabilitySettings | None = None,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    **config: Any,
) -> Iterator[Sidecar]:
    """The sidecar on two free loopback ports, serving in a thread until the block ends.

    ``wrap`` (an ASGI app factory) goes around the middleware-wrapped proxy app.
    """
    sidecar = Sidecar(
        SidecarConfig(
            upstream,
            host="127.0.0.1",
            port=free_port(),
            metrics_host="127.0.0.1",
            metrics_port=free_port(),
            log_level="warning",
            **config,
        ),
        settings or ObservabilitySettings(service_name="sidecar-test"),
        registry=registry,
        route_resolver=route_resolver,
    )
    if wrap is not None:
        sidecar.proxy_app = wrap(sidecar.proxy_app)
    thread = threading.Thread(
        target=lambda: asyncio.run(sidecar.serve(handle_signals=False)), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not sidecar.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the sidecar did not start")
        time.sleep(0.01)
    try:
        yield sidecar
    finally:
        sidecar.shutdown()
        thread.join(30)
