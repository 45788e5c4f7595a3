"""The access line: one per request, written when the response ends, with every field."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware
from tests.logs.capture import LogCapture, capture_logs
from tests.metrics.asgi import call, client, http_scope

ACCESS_FIELDS = {
    "timestamp",
    "level",
    "logger",
    "event",
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "request_bytes",
    "response_bytes",
    "client",
    "user_agent",
    "request_id",
}
#: Called by the background task when it starts; the test decides what it records.
on_background_start: list[Any] = []


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def slow_background(request: Request) -> Response:
    async def later() -> None:
        for hook in on_background_start:
            hook()
        await asyncio.sleep(0.3)

    return PlainTextResponse("done", background=BackgroundTask(later))


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"abcd"

    return StreamingResponse(chunks())


async def server_error(request: Request) -> Response:
    return PlainTextResponse("nope", status_code=503)


def app_with(registry: CollectorRegistry, **options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/echo/{kind}", echo, methods=["POST"]),
            Route("/background", slow_background),
            Route("/stream", stream),
            Route("/unavailable", server_error),
        ]
    )
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False, **options)
    return app


async def test_one_line_per_request_with_every_field(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    async with client(app_with(registry)) as http:
        response = await http.post(
            "/echo/x?page=2", content=b"12345", headers={"user-agent": "probe/1.0"}
        )
    line = logs.one_access_line()
    assert line.keys() >= ACCESS_FIELDS
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["method"] == "POST"
    assert line["route"] == "/echo/{kind}"
    assert line["path"] == "/echo/x"
    assert line["query"] == "page=2"
    assert line["status"] == 200
    assert line["request_bytes"] == 5
    assert line["response_bytes"] == 5
    assert line["client"] == "127.0.0.1"
    assert line["user_agent"] == "probe/1.0"
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["duration_ms"] >= 0
    assert line["timestamp"].endswith("Z")


async def test_line_is_written_on_the_last_byte_not_after_background_tasks(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    lines_when_background_started: list[int] = []
    on_background_start[:] = [lambda: lines_when_background_started.append(len(logs.access))]
    await call(app_with(registry), http_scope("/background"))
    line = logs.one_access_line()
    assert lines_when_background_started == [1]
    # The 0.3 s the background task slept is not part of the request's duration.
    assert line["duration_ms"] < 300


async def test_streamed_body_bytes_are_counted(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    async with client(app_with(registry)) as http:
        await http.get("/stream")
    assert logs.one_access_line()["response_bytes"] == 12


async def test_server_errors_are_logged_at_error_level(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    async with client(app_with(registry)) as http:
        await http.get("/unavailable")
    line = logs.one_access_line()
    assert (line["level"], line["status"]) == ("error", 503)


async def test_unmatched_requests_use_the_unmatched_route(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    async with client(app_with(registry)) as http:
        await http.get("/wp-login.php")
    line = logs.one_access_line()
    assert (line["route"], line["path"], line["status"]) == ("<unmatched>", "/wp-login.php", 404)


async def test_excluded_paths_and_own_endpoints_write_no_line(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    app = app_with(registry, excluded_paths={"/stream"})
    async with client(app) as http:
        for path in ("/stream", "/health/live", "/health/ready", "/metrics"):
            assert (await http.get(path)).status_code == 200
    assert logs.access == []


async def test_access_log_false_writes_no_line(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    async with client(app_with(registry, access_log=False)) as http:
        response = await http.get("/stream")
    assert logs.access == []
    assert "x-request-id" in response.headers  # the request id does not depend on the log


async def test_client_that_disconnects_is_logged_as_499(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    async def hang(request: Request) -> Response:
        await asyncio.sleep(30)
        return PlainTextResponse("late")

    app = Starlette(routes=[Route("/hang", hang)])
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False)
    task = asyncio.ensure_future(call(app, http_scope("/hang")))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    line = logs.one_access_line()
    assert (line["status"], line["route"]) == (499, "/hang")


async def test_an_injected_logger_receives_the_line(registry: CollectorRegistry) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def info(self, event: str, **fields: Any) -> None:
            received.append((event, fields))

        def error(self, event: str, **fields: Any) -> None:
            received.append((event, fields))

    async with client(app_with(registry, logger=Recorder())) as http:
        await http.get("/stream")
    assert [(event, fields["route"]) for event, fields in received] == [("request", "/stream")]


# -- the one line, with nothing configured ------------------------------------------------


async def _one_request(registry: CollectorRegistry, path: str) -> None:
    app = Starlette(routes=[Route("/echo/{kind}", echo, methods=["POST"])])
    app.add_middleware(ObservabilityMiddleware, registry=registry, service_name="shop")
    async with client(app) as http:
        await http.post(path, content=b"12345", headers={"user-agent": "probe/1.0"})


def _without_volatile_values(line: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in line.items()
        if key not in {"timestamp", "duration_ms", "request_id"}
    }


async def test_with_nothing_configured_the_line_is_json_on_stdout(
    restore_logging: None, registry: CollectorRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    structlog.reset_defaults()  # an app that configured no logging at all
    await _one_request(registry, "/echo/x;token=secret?page=2")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line.keys() >= ACCESS_FIELDS
    assert (line["logger"], line["event"], line["route"]) == (
        "ouro_obs.access",
        "request",
        "/echo/{kind}",
    )
    assert "secret" not in lines[0]  # redacted like configure_logging's lines
    assert not structlog.is_configured()  # the default line configures nothing


async def test_the_default_line_is_the_line_configure_logging_writes(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    structlog.reset_defaults()
    await _one_request(CollectorRegistry(), "/echo/x?page=2")
    default = json.loads(capsys.readouterr().out)
    configured = capture_logs()
    await _one_request(CollectorRegistry(), "/echo/x?page=2")
    line = configured.one_access_line()
    assert list(default) == list(line)
    assert _without_volatile_values(default) == _without_volatile_values(line)


async def test_an_app_that_configured_structlog_gets_its_own_renderer(
    restore_logging: None, registry: CollectorRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    structlog.configure(processors=[structlog.processors.KeyValueRenderer(key_order=["event"])])
    await _one_request(registry, "/echo/x")
    out = capsys.readouterr().out
    assert out.startswith("event='request'")
    assert "route='/echo/{kind}'" in out


# -- context variables the app bound --------------------------------------------------------


async def bind_context(request: Request) -> Response:
    structlog.contextvars.bind_contextvars(
        tenant="acme", authorization="Bearer abc", route="/not-this", note="n" * 5000, gone=1
    )
    structlog.contextvars.unbind_contextvars("gone")
    return PlainTextResponse("ok")


async def _line_with_bound_context(logger: Any) -> dict[str, Any]:
    capture = capture_logs()
    app = Starlette(routes=[Route("/bound", bind_context)])
    options = {} if logger is None else {"logger": logger}
    app.add_middleware(ObservabilityMiddleware, registry=CollectorRegistry(), **options)
    try:
        async with client(app) as http:
            await http.get("/bound")
    finally:
        structlog.contextvars.clear_contextvars()  # the app ran in this test's task
    return capture.one_access_line()


async def test_context_the_app_bound_is_written_as_the_structlog_chain_writes_it(
    restore_logging: None,
) -> None:
    direct = await _line_with_bound_context(None)  # configure_logging's line, written directly
    chain = await _line_with_bound_context(structlog.get_logger("ouro_obs.access"))
    assert direct["tenant"] == "acme"
    assert direct["authorization"] == "[REDACTED]"
    assert direct["route"] == "/bound"  # the field, not the context variable of its name
    assert direct["note"].startswith("nnn")
    assert direct["note"].endswith(" more]")
    assert "gone" not in direct
    assert list(direct) == list(chain)
    assert _without_volatile_values(direct) == _without_volatile_values(chain)
