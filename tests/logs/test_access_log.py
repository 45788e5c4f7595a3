"""The access line: one per request, written when the response ends, with every field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware
from tests.logs.capture import LogCapture
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
