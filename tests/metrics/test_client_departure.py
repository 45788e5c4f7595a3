"""A client that gives up on a slow, non-streaming endpoint is recorded as 499 when it leaves.

Real servers on loopback (uvicorn with h11 and with httptools, hypercorn, gunicorn with
uvicorn workers) and raw sockets that close after sending the request; in-process ASGI
calls for the orderings a server cannot be made to show on demand.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware
from ouro_obs.asgi.exchange import LISTEN_AFTER_SECONDS
from ouro_obs.demo.lifecycle import ManagedProcess, free_port, http_get
from tests.metrics.asgi import call, http_scope, requests_total, routes_seen
from tests.metrics.departure_apps import (
    AccessLines,
    Held,
    ThreadedHypercorn,
    get_json,
    leave_after_sending,
    observed_app,
    raw_request,
)
from tests.sidecar.servers import ThreadedUvicorn, wait_for_sample

REPO_ROOT = Path(__file__).resolve().parents[2]
SLOW_499 = {"method": "GET", "route": "/slow", "status": "499"}
#: Long enough for the watch to have armed every request that is still running.
PAST_ARMING = 3 * LISTEN_AFTER_SECONDS


def _wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


def _exchange(port: int, request: bytes) -> bytes:
    """The whole response to ``request`` on a connection the server closes after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while True:
            chunk = connection.recv(65536)
            chunks.append(chunk)
            if not chunk or b"\r\n\r\n" in b"".join(chunks):
                response = b"".join(chunks)
                head, _, body = response.partition(b"\r\n\r\n")
                length = _content_length(head)
                if not chunk or (length is not None and len(body) >= length):
                    return response


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


# -- through uvicorn ------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_a_client_that_leaves_a_slow_endpoint_is_a_499_in_the_metric_span_and_access_line(
    http: str,
) -> None:
    registry, held, access = CollectorRegistry(), Held(), AccessLines()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = observed_app(held, registry, access, provider)
    with ThreadedUvicorn(app, http=http) as server:
        sent_at = time.perf_counter()
        leave_after_sending(server.port, raw_request("GET", "/slow"), held.arrived)
        assert wait_for_sample(registry, "http_requests_total", SLOW_499) == 1.0
        # Recorded while the app still works on its answer:
        assert not held.release.is_set()
        assert held.returned == []
        (line,) = access.for_route("/slow")
        (span,) = exporter.get_finished_spans()
        released_at = time.perf_counter()
        held.release.set()
        _wait_until(lambda: held.returned == ["/slow"])
    assert held.errors == []  # the late answer went to the server, which dropped it
    assert routes_seen(registry) == {("GET", "/slow", "499")}
    duration = registry.get_sample_value(
        "http_request_duration_seconds_sum", {"method": "GET", "route": "/slow"}
    )
    assert duration is not None
    assert duration < released_at - sent_at  # it ended when the departure was seen
    assert (line["status"], line["duration_ms"]) == (499, round(duration * 1000.0, 3))
    assert span.name == "GET /slow"
    assert span.attributes is not None
    assert "http.response.status_code" not in span.attributes  # the client got no status
    provider.shutdown()


@pytest.mark.integration
def test_a_fast_request_through_uvicorn_is_not_listened_to() -> None:
    registry, held = CollectorRegistry(), Held()
    with ThreadedUvicorn(observed_app(held, registry)) as server:
        response = _exchange(server.port, raw_request("GET", "/fast"))
    assert response.startswith(b"HTTP/1.1 200")
    assert response.endswith(b"fast")
    assert routes_seen(registry) == {("GET", "/fast", "200")}
    assert not held.server_receive_called.is_set()


@pytest.mark.integration
@pytest.mark.parametrize("size", [11, 300_000], ids=["small", "larger-than-a-read"])
@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_an_app_that_reads_its_body_after_the_listener_started_gets_all_of_it(
    http: str, size: int
) -> None:
    registry, held = CollectorRegistry(), Held()
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with ThreadedUvicorn(observed_app(held, registry), http=http) as server:
        response = _exchange(server.port, raw_request("POST", "/upload", body))
    assert response.startswith(b"HTTP/1.1 200")
    assert response.endswith(hashlib.sha256(body).hexdigest().encode())
    assert held.uploaded == body
    assert held.most_concurrent_receives == 1  # one caller of the server's receive at a time
    assert routes_seen(registry) == {("POST", "/upload", "200")}
    size_sum = registry.get_sample_value(
        "http_request_size_bytes_sum", {"method": "POST", "route": "/upload"}
    )
    assert size_sum == size


# -- hypercorn and gunicorn -----------------------------------------------------------------


@pytest.mark.integration
def test_under_hypercorn_a_client_that_leaves_a_slow_endpoint_is_a_499() -> None:
    registry, held, access = CollectorRegistry(), Held(), AccessLines()
    with ThreadedHypercorn(observed_app(held, registry, access)) as server:
        assert _exchange(server.port, raw_request("GET", "/fast")).endswith(b"fast")
        leave_after_sending(server.port, raw_request("GET", "/slow"), held.arrived)
        assert wait_for_sample(registry, "http_requests_total", SLOW_499) == 1.0
        assert held.returned == ["/fast"]  # /slow is still running
        held.release.set()
        _wait_until(lambda: "/slow" in held.returned)
    assert held.errors == []
    assert routes_seen(registry) == {("GET", "/fast", "200"), ("GET", "/slow", "499")}
    assert [line["status"] for line in access.for_route("/slow")] == [499]


@pytest.mark.integration
def test_under_gunicorn_with_uvicorn_workers_a_client_that_leaves_is_a_499(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Single-process metrics: prometheus_client writes mmap files into the working
    # directory when the variable is set at all, even empty.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    port = free_port()
    server = ManagedProcess(
        argv=[
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "uvicorn_worker.UvicornWorker",
            "--graceful-timeout",
            "2",
            "tests.metrics.departure_apps:gunicorn_app()",
        ],
        ready_url=f"http://127.0.0.1:{port}/fast",
        cwd=REPO_ROOT,
    )
    metric = 'http_requests_total{method="GET",route="/slow",status="499"} 1.0'
    with server:
        leave_after_sending(port, raw_request("GET", "/slow"))
        _wait_until(lambda: metric in http_get(f"http://127.0.0.1:{port}/metrics").decode())
        assert "/slow" not in get_json(port, "/returned")["returned"]  # still running
        http_get(f"http://127.0.0.1:{port}/release")
        _wait_until(lambda: "/slow" in get_json(port, "/returned")["returned"])
        assert get_json(port, "/returned")["errors"] == []
        exposition = http_get(f"http://127.0.0.1:{port}/metrics").decode()
        _wait_until(lambda: '"route":"/slow"' in server.output())
        output = server.output()
    assert 'route="/slow",status="200"' not in exposition
    lines = [json.loads(text) for text in output.splitlines() if '"route":"/slow"' in text]
    assert [line["status"] for line in lines] == [499]


# -- in process: the orderings ----------------------------------------------------------------


class Server:
    """The server side of one in-process request: a receive that reports what it was asked."""

    def __init__(self, messages: list[Message], then_wait: bool = True) -> None:
        self.messages = list(messages)
        self.then_wait = then_wait
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self.gone = asyncio.Event()
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.calls += 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.messages:
                await asyncio.sleep(0)
                return self.messages.pop(0)
            await self.gone.wait()
            return {"type": "http.disconnect"}
        finally:
            self.running -= 1

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    """Let the loop run until ``predicate()`` holds (a timer can fire late on a busy machine)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def _answer(body: bytes = b"late") -> list[Message]:
    return [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": body},
    ]


async def test_a_request_that_ends_before_the_delay_never_calls_the_servers_receive() -> None:
    registry = CollectorRegistry()

    async def quick(scope: Scope, receive: Receive, send: Send) -> None:
        for message in _answer(b"ok"):
            await send(message)

    server = Server([{"type": "http.request", "body": b""}])
    await ObservabilityMiddleware(quick, registry=registry)(
        http_scope("/"), server.receive, server.send
    )
    await asyncio.sleep(PAST_ARMING)
    assert server.calls == 0
    assert routes_seen(registry) == {("GET", "<unmatched>", "200")}


async def test_the_499_is_recorded_when_the_client_leaves_and_the_late_answer_is_not() -> None:
    registry = CollectorRegistry()
    release = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        for message in _answer():
            await send(message)

    server = Server([{"type": "http.request", "body": b""}])
    task = asyncio.create_task(
        ObservabilityMiddleware(slow, registry=registry)(
            http_scope("/"), server.receive, server.send
        )
    )
    await _until(lambda: server.calls == 2)  # the body, then waiting for the client to leave
    assert requests_total(registry, "GET", "<unmatched>", 499) == 0
    server.gone.set()
    await asyncio.sleep(0.01)
    assert requests_total(registry, "GET", "<unmatched>", 499) == 1
    release.set()
    await task
    assert [message["type"] for message in server.sent] == [
        "http.response.start",
        "http.response.body",
    ]
    assert routes_seen(registry) == {("GET", "<unmatched>", "499")}


async def test_the_app_reading_while_the_listener_waits_gets_the_next_message_from_it() -> None:
    registry = CollectorRegistry()
    got: list[Message] = []

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        await _until(lambda: server.calls == 2)  # the listener holds the body and waits on
        got.append(await receive())
        got.append(await receive())  # served from the listener: the client's departure
        for message in _answer():
            await send(message)

    server = Server([{"type": "http.request", "body": b"payload"}])
    task = asyncio.create_task(
        ObservabilityMiddleware(reader, registry=registry)(
            http_scope("/", method="POST"), server.receive, server.send
        )
    )
    await _until(lambda: len(got) == 1)
    server.gone.set()
    await task
    assert got == [{"type": "http.request", "body": b"payload"}, {"type": "http.disconnect"}]
    assert (server.calls, server.most_running) == (2, 1)
    assert routes_seen(registry) == {("POST", "<unmatched>", "499")}


async def test_a_body_message_with_more_to_come_is_held_and_the_rest_read_by_the_app() -> None:
    """Flow control holds: the listener reads one message ahead, no more."""
    registry = CollectorRegistry()
    chunks = [b"a" * 10, b"b" * 10, b"c" * 10]
    server = Server(
        [
            {"type": "http.request", "body": chunk, "more_body": index < 2}
            for index, chunk in enumerate(chunks)
        ]
    )
    read: list[bytes] = []
    calls_before_reading: list[int] = []

    async def late_reader(scope: Scope, receive: Receive, send: Send) -> None:
        await _until(lambda: server.calls == 1)
        await asyncio.sleep(PAST_ARMING)  # time enough for a listener that read on
        calls_before_reading.append(server.calls)
        more = True
        while more:
            message = await receive()
            read.append(message["body"])
            more = message.get("more_body", False)
        for message in _answer():
            await send(message)

    await ObservabilityMiddleware(late_reader, registry=registry)(
        http_scope("/", method="PUT"), server.receive, server.send
    )
    assert calls_before_reading == [1]
    assert read == chunks
    assert server.most_running == 1
    assert routes_seen(registry) == {("PUT", "<unmatched>", "200")}


async def test_a_disconnect_reported_during_the_last_send_is_not_a_departure() -> None:
    """Some servers report ``http.disconnect`` to a waiting receive before their last send returns."""
    registry = CollectorRegistry()
    server = Server([])
    heard: list[str] = []

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        async def listen() -> None:  # as Starlette's StreamingResponse does
            while (await receive())["type"] != "http.disconnect":
                pass
            heard.append("disconnect")

        watcher = asyncio.create_task(listen())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"all", "more_body": False})
        await watcher

    async def send(message: Message) -> None:
        server.sent.append(message)
        if message["type"] == "http.response.body":
            server.gone.set()  # the server reports the end of the response ...
            await asyncio.sleep(0.01)  # ... before its send returns
            heard.append("last send returned")

    await ObservabilityMiddleware(streaming, registry=registry)(
        http_scope("/"), server.receive, send
    )
    assert heard == ["disconnect", "last send returned"]
    assert routes_seen(registry) == {("GET", "<unmatched>", "200")}


async def test_a_request_expecting_100_continue_is_not_listened_to_before_the_app_reads() -> None:
    """uvicorn sends ``100 Continue`` at the first receive: only the app may ask for the body."""
    registry = CollectorRegistry()
    server = Server([{"type": "http.request", "body": b"upload"}])
    calls_seen: list[int] = []

    async def refuses(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(PAST_ARMING)
        calls_seen.append(server.calls)
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = http_scope("/", method="POST", headers=[(b"expect", b"100-continue")])
    await ObservabilityMiddleware(refuses, registry=registry)(scope, server.receive, server.send)
    assert calls_seen == [0]
    assert routes_seen(registry) == {("POST", "<unmatched>", "413")}


async def test_a_client_that_leaves_while_the_app_reads_itself_is_recorded_then() -> None:
    registry = CollectorRegistry()
    recorded_before_return: list[float] = []

    async def long_poll(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        recorded_before_return.append(requests_total(registry, "GET", "<unmatched>", 499))

    await call(
        ObservabilityMiddleware(long_poll, registry=registry),
        http_scope("/"),
        disconnect_after_body=True,
    )
    assert recorded_before_return == [1.0]


def test_a_loop_closed_while_its_watch_ticked_leaves_the_next_loop_of_the_thread_watched() -> None:
    """The watch finds its ticker by thread: one of a closed loop must not stand in for the
    next loop's (its timer never fires again, so that loop's requests would never be armed).
    """
    registry = CollectorRegistry()
    releases: list[asyncio.Event] = []  # one per loop

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await releases[-1].wait()
        for message in _answer():
            await send(message)

    middleware = ObservabilityMiddleware(slow, registry=registry)

    async def abandoned() -> None:  # on the first loop: watched, then cancelled before a tick
        releases.append(asyncio.Event())
        server = Server([{"type": "http.request", "body": b""}])
        task = asyncio.create_task(middleware(http_scope("/"), server.receive, server.send))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def left() -> None:  # on the second loop: the client leaves a slow request
        releases.append(asyncio.Event())
        server = Server([{"type": "http.request", "body": b""}])
        task = asyncio.create_task(middleware(http_scope("/"), server.receive, server.send))
        await _until(lambda: server.calls == 2)
        server.gone.set()
        await _until(lambda: requests_total(registry, "GET", "<unmatched>", 499) == 1)
        releases[-1].set()
        await task

    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(abandoned())
    finally:
        first.close()  # its watch's timer is still pending: it never fires
    asyncio.run(left())
    assert routes_seen(registry) == {("GET", "<unmatched>", "499")}
