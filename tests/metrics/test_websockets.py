"""WebSocket connections through a real uvicorn: metrics, one span and one access line each.

The client is wsproto over a plain socket, so the test sees exactly the close codes sent.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    RejectConnection,
    Request,
    TextMessage,
)

from ouro_obs import ObservabilityMiddleware
from ouro_obs.asgi.websocket import close_code_label
from tests.sidecar.servers import ThreadedUvicorn


class Lines:
    """The access logger: keeps each line's event and fields."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append({"event": event, "level": "info", **fields})

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append({"event": event, "level": "error", **fields})


async def echo(websocket: WebSocket) -> None:
    """Echoes text until the client says ``bye`` (then closes 4001) or disconnects."""
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close(code=4001)
                return
            await websocket.send_text(text)
            await websocket.send_text(text.upper())
    except WebSocketDisconnect:
        return


async def refuse(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


class Observed:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.access = Lines()
        app = Starlette(
            routes=[WebSocketRoute("/ws/{room}", echo), WebSocketRoute("/private", refuse)],
            middleware=[
                Middleware(
                    ObservabilityMiddleware,
                    registry=self.registry,
                    tracer_provider=provider,
                    logger=self.access,
                )
            ],
        )
        self.server = ThreadedUvicorn(app)

    def closed(self, route: str, code: str) -> float:
        labels = {"route": route, "close_code": code}
        value = self.registry.get_sample_value("websocket_connections_closed_total", labels)
        return value or 0.0


@pytest.fixture(scope="module")
def observed() -> Iterator[Observed]:
    structlog.reset_defaults()
    served = Observed()
    with served.server:
        yield served


def talk(port: int, path: str, texts: list[str], close_code: int | None) -> list[str]:
    """Connect, send ``texts``, read the echoes, then close with ``close_code`` (or wait)."""
    connection = WSConnection(ConnectionType.CLIENT)
    received: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(connection.send(Request(host="127.0.0.1", target=path)))
        events = _events(sock, connection)
        first = next(events)
        if isinstance(first, RejectConnection):
            return ["rejected"]
        assert isinstance(first, AcceptConnection)
        for text in texts:
            sock.sendall(connection.send(Message(data=text)))
        for event in events:
            if isinstance(event, TextMessage):
                received.append(event.data)
                if close_code is not None and len(received) == 2 * len(texts):
                    sock.sendall(connection.send(CloseConnection(code=close_code)))
            elif isinstance(event, CloseConnection):
                received.append(f"closed:{event.code}")
                if connection.state is ConnectionState.REMOTE_CLOSING:
                    sock.sendall(connection.send(event.response()))
                break
    return received


def wait_until(value: Callable[[], float], expected: float, timeout: float = 5.0) -> None:
    """The server records a connection just after its close: wait for it, then assert."""
    deadline = time.monotonic() + timeout
    while value() != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert value() == expected


def _events(sock: socket.socket, connection: WSConnection) -> Iterator[Any]:
    while True:
        data = sock.recv(65536)
        connection.receive_data(data or None)
        yield from connection.events()
        if not data:
            return


def test_a_connection_is_counted_by_route_and_close_code_with_its_messages(
    observed: Observed,
) -> None:
    received = talk(observed.server.port, "/ws/lobby", ["hi", "there"], close_code=1000)
    assert received[:4] == ["hi", "HI", "there", "THERE"]
    wait_until(lambda: observed.closed("/ws/{room}", "1000"), 1.0)
    registry = observed.registry
    accepted = registry.get_sample_value("websocket_connections_total", {"route": "/ws/{room}"})
    assert accepted is not None
    assert accepted >= 1
    messages = {
        direction: registry.get_sample_value(
            "websocket_messages_total", {"route": "/ws/{room}", "direction": direction}
        )
        for direction in ("in", "out")
    }
    assert messages == {"in": 2.0, "out": 4.0}
    duration = registry.get_sample_value(
        "websocket_connection_duration_seconds_count", {"route": "/ws/{room}"}
    )
    assert duration == 1.0
    assert registry.get_sample_value("http_requests_total", {"route": "/ws/{room}"}) is None


def test_the_apps_close_code_is_recorded(observed: Observed) -> None:
    assert talk(observed.server.port, "/ws/den", ["bye"], close_code=None) == ["closed:4001"]
    wait_until(lambda: observed.closed("/ws/{room}", "4xxx"), 1.0)


def test_a_connection_closed_before_accepting_is_refused(observed: Observed) -> None:
    assert talk(observed.server.port, "/private", [], close_code=None) == ["rejected"]
    wait_until(lambda: observed.closed("/private", "refused"), 1.0)


def test_each_connection_has_one_span_and_one_access_line(observed: Observed) -> None:
    observed.spans.clear()
    before = len(observed.access.lines)
    talk(observed.server.port, "/ws/kitchen", ["a"], close_code=1001)
    wait_until(lambda: observed.closed("/ws/{room}", "1001"), 1.0)
    (span,) = observed.spans.get_finished_spans()
    assert span.name == "WEBSOCKET /ws/{room}"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/ws/{room}"
    assert span.attributes["websocket.close_code"] == "1001"
    assert span.attributes["websocket.messages.received"] == 1
    (line,) = observed.access.lines[before:]
    assert line["event"] == "websocket"
    assert line["route"] == "/ws/{room}"
    assert line["close_code"] == 1001
    assert (line["messages_in"], line["messages_out"]) == (1, 2)
    assert line["trace_id"] == format(span.context.trace_id, "032x")


@pytest.mark.parametrize(
    ("code", "label"),
    [(1000, "1000"), (1015, "1015"), (3003, "3xxx"), (4999, "4xxx"), (2500, "other")],
)
def test_close_code_labels_are_bounded(code: int, label: str) -> None:
    assert close_code_label(code) == label
