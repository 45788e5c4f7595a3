"""Log injection is impossible: one request, one line, whatever the client sends."""

from __future__ import annotations

import io
import json

import structlog
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware, ObservabilitySettings, configure_logging
from ouro_obs.logs import safe_text
from tests.logs.capture import LogCapture
from tests.metrics.asgi import call, client, http_scope

FORGED = '\n{"level":"info","event":"request","status":200,"path":"/admin"}'


def app_with(
    registry: CollectorRegistry, settings: ObservabilitySettings | None = None
) -> Starlette:
    async def anything(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/{rest:path}", anything)])
    app.add_middleware(ObservabilityMiddleware, settings, registry=registry, tracing=False)
    return app


async def test_newlines_in_path_query_and_user_agent_cannot_forge_a_line(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    scope = http_scope("/items/1" + FORGED, headers=[(b"user-agent", FORGED.encode())])
    scope["query_string"] = b"q=%0A" + FORGED.encode()
    await call(app_with(registry), scope)
    assert len(logs.text.splitlines()) == 1
    line = logs.one_access_line()
    assert line["path"].startswith("/items/1\\n{")  # escaped, visible, not a line break
    assert "\\n" in line["user_agent"]
    assert "\n" not in line["query"]


async def test_terminal_escape_sequences_are_neutralised(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    scope = http_scope("/x", headers=[(b"user-agent", b"\x1b[2J\x1b[31mevil\x07")])
    await call(app_with(registry), scope)
    user_agent = logs.one_access_line()["user_agent"]
    assert "\x1b" not in user_agent
    assert "\\x1b[2J" in user_agent


async def test_oversized_values_are_cut_and_marked(restore_logging: None) -> None:
    stream = io.StringIO()
    settings = ObservabilitySettings(log_max_field_length=100)
    configure_logging(settings, stream=stream, log_format="json")
    registry = CollectorRegistry()
    async with client(app_with(registry, settings)) as http:
        await http.get("/" + "a" * 5000, headers={"user-agent": "b" * 5000})
    structlog.get_logger("shop").info("big", payload="c" * 5000, nested={"k": "d" * 5000})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = next(line for line in lines if line["logger"] == "ouro_obs.access")
    assert access["path"] == "/" + "a" * 85 + "...[4915 more]"
    assert len(access["user_agent"]) == 100
    big = next(line for line in lines if line["event"] == "big")
    assert big["payload"] == "c" * 86 + "...[4914 more]"
    assert len(json.dumps(big["nested"])) < 200
    assert max(len(line) for line in stream.getvalue().splitlines()) < 1000


def test_console_format_escapes_app_values_too(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(ObservabilitySettings(), stream=stream, log_format="console")
    structlog.get_logger("shop").info("user said" + FORGED, comment=FORGED)
    assert len(stream.getvalue().splitlines()) == 1


def test_safe_text_keeps_printable_text_as_is() -> None:
    assert safe_text("héllo wörld /items/42", 100) == "héllo wörld /items/42"
    assert safe_text("a\u2028b", 100) == "a\\u2028b"
    assert safe_text("x" * 100, 20) == "x" * 7 + "...[93 more]"
    assert safe_text(safe_text("y\n" * 100, 30), 30) == safe_text("y\n" * 100, 30)
    assert len(safe_text("y\n" * 100, 30)) <= 30
