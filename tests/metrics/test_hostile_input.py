"""Hostile input: the client gets exactly what the app sent; the middleware never raises its own error."""

from __future__ import annotations

import socket
import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from ouro_obs import ObservabilityMiddleware
from ouro_obs.demo.lifecycle import ManagedProcess, free_port
from tests.metrics.asgi import Recorded, call, http_scope, routes_seen
from tests.support.tools import REPO_ROOT


async def describe(request: Request) -> Response:
    return JSONResponse(
        {
            "path": request.url.path,
            "headers": len(request.headers),
            "agent": request.headers.get("user-agent", ""),
            "body": len(await request.body()),
        }
    )


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/things/{name:path}", describe, methods=["GET", "POST"])])


def instrumented_app(registry: CollectorRegistry) -> Starlette:
    app = bare_app()
    app.add_middleware(ObservabilityMiddleware, registry=registry)
    return app


HOSTILE_SCOPES: list[tuple[str, dict[str, Any]]] = [
    (
        "non-utf8 header value",
        http_scope("/things/a", headers=[(b"user-agent", b"\xff\xfe\x00bad")]),
    ),
    ("header without value", http_scope("/things/a", headers=[(b"x-empty", b"")])),
    ("oversized header", http_scope("/things/a", headers=[(b"x-big", b"v" * 65_536)])),
    ("many headers", http_scope("/things/a", headers=[(b"x-h%d" % i, b"1") for i in range(500)])),
    (
        "hostile request id",
        http_scope("/things/a", headers=[(b"x-request-id", b"\r\nInjected: yes" * 50)]),
    ),
    (
        "hostile traceparent",
        http_scope("/things/a", headers=[(b"traceparent", b"00-zz-zz-01" * 20)]),
    ),
    ("non-utf8 path", http_scope("/things/\udcff\udcfe", raw_path=b"/things/\xff\xfe")),
    ("very long path", http_scope("/things/" + "a" * 100_000)),
    ("unmatched long path", http_scope("/" + "b" * 100_000)),
    ("odd method", http_scope("/things/a", method="PROPFIND")),
    ("empty method", http_scope("/things/a", method="")),
    ("missing client", {k: v for k, v in http_scope("/things/a").items() if k != "client"}),
]


async def outcome(app: Starlette, scope: dict[str, Any]) -> tuple[Recorded, str | None]:
    sent: list[Message] = []
    try:
        recorded = await call(
            app, dict(scope), [b"payload"], disconnect_after_body=True, on_send=sent.append
        )
    except Exception as error:
        return Recorded(sent), f"{type(error).__name__}: {error}"
    return recorded, None


@pytest.mark.parametrize(
    ("case", "scope"), HOSTILE_SCOPES, ids=[case for case, _ in HOSTILE_SCOPES]
)
async def test_the_response_is_byte_for_byte_what_the_app_sent(
    case: str, scope: dict[str, Any]
) -> None:
    registry = CollectorRegistry()
    expected, expected_error = await outcome(bare_app(), scope)
    observed, observed_error = await outcome(instrumented_app(registry), scope)
    assert observed_error == expected_error  # an app's own exception propagates unchanged
    # The request-id header is the one addition the middleware may make to a response.
    strip = {b"x-request-id"}
    for message in observed.messages:
        if message["type"] == "http.response.start":
            message["headers"] = [(k, v) for k, v in message["headers"] if k not in strip]
    assert observed.messages == expected.messages
    assert (
        registry.get_sample_value("ouro_obs_instrumentation_errors_total", {"stage": "metrics"})
        is None
    )
    assert len(routes_seen(registry)) == 1


async def test_a_long_random_path_is_labelled_by_its_template_not_its_text() -> None:
    registry = CollectorRegistry()
    await call(instrumented_app(registry), http_scope("/things/" + "x" * 50_000))
    assert routes_seen(registry) == {("GET", "/things/{name}", "200")}


#: Malformed raw requests for a real server (tests/sidecar/test_hostile_input.py uses them too).
RAW_HOSTILE_REQUESTS: list[bytes] = [
    b"GET /things/%FF%FE HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /things/" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /things/a HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\r\n\r\n",
    b"GET /things/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 60_000 + b"\r\n\r\n",
    b"GET /things/a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"BREW /things/a HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.integration
def test_raw_hostile_requests_through_uvicorn_get_the_same_answer_as_without_the_middleware() -> (
    None
):
    """Through a real server, malformed requests are answered identically with and without us."""
    requests = RAW_HOSTILE_REQUESTS
    answers: dict[str, list[bytes]] = {}
    for variant in ("bare", "instrumented"):
        port = free_port()
        factory = "tests.metrics.hostile_apps:" + variant
        server = ManagedProcess(
            argv=[
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory,
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            ready_url=f"http://127.0.0.1:{port}/things/ready",
            cwd=REPO_ROOT,
        )
        with server:
            answers[variant] = [_exchange(port, request) for request in requests]
    bare, instrumented = answers["bare"], answers["instrumented"]
    assert [_status_line(a) for a in instrumented] == [_status_line(b) for b in bare]
    assert [_body(a) for a in instrumented] == [_body(b) for b in bare]


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status_line(response: bytes) -> bytes:
    return response.split(b"\r\n", 1)[0]


def _body(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[-1]
