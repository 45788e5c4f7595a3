"""Request ids: a safe incoming one is kept, anything else replaced; every response names it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware
from ouro_obs.asgi.request_id import MAX_REQUEST_ID_LENGTH, accepted_request_id
from tests.logs.capture import LogCapture
from tests.metrics.asgi import call, client, http_scope

GENERATED = re.compile(r"^[0-9a-f]{32}$")
SHARED_RESPONSE = PlainTextResponse("shared")


class Boom(RuntimeError):
    pass


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def boom(request: Request) -> Response:
    raise Boom("the handler failed")


async def own_header(request: Request) -> Response:
    return PlainTextResponse("mine", headers={"X-Request-ID": "chosen-by-app"})


async def shared(request: Request) -> Response:
    return SHARED_RESPONSE


def starlette_app(registry: CollectorRegistry, **options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/ok", ok),
            Route("/boom", boom),
            Route("/own", own_header),
            Route("/shared", shared),
        ],
        **{key: options.pop(key) for key in ("debug", "exception_handlers") if key in options},
    )
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False, **options)
    return app


@pytest.mark.parametrize(
    "incoming",
    [
        "abc-123",
        "0af7651916cd43dd8448eb211c80319c",
        "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "a.b_c-D",
        "x" * MAX_REQUEST_ID_LENGTH,
    ],
)
async def test_a_short_safe_incoming_id_is_kept(
    logs: LogCapture, registry: CollectorRegistry, incoming: str
) -> None:
    async with client(starlette_app(registry)) as http:
        response = await http.get("/ok", headers={"x-request-id": incoming})
    assert response.headers["x-request-id"] == incoming
    assert logs.one_access_line()["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        b"",
        b"x" * (MAX_REQUEST_ID_LENGTH + 1),
        b"has space",
        b"line\nbreak",
        b"semi;colon",
        b"\xc3\xbcnicode",
        b"<script>alert(1)</script>",
        b"id\r\nSet-Cookie: a=b",
    ],
)
async def test_anything_else_is_replaced_by_a_new_id(
    logs: LogCapture, registry: CollectorRegistry, incoming: bytes
) -> None:
    recorded = await call(
        starlette_app(registry), http_scope("/ok", headers=[(b"x-request-id", incoming)])
    )
    start = next(m for m in recorded.messages if m["type"] == "http.response.start")
    sent = dict(start["headers"])[b"x-request-id"].decode()
    assert GENERATED.match(sent)
    assert logs.one_access_line()["request_id"] == sent


def test_accepted_request_id_checks_length_and_characters() -> None:
    assert accepted_request_id(b"ok-1") == "ok-1"
    assert accepted_request_id(b"no/slash") is None
    assert accepted_request_id(b"") is None


async def test_generated_ids_are_unique(registry: CollectorRegistry) -> None:
    async with client(starlette_app(registry)) as http:
        ids = {(await http.get("/ok")).headers["x-request-id"] for _ in range(50)}
    assert len(ids) == 50
    assert all(GENERATED.match(request_id) for request_id in ids)


async def test_incoming_ids_can_be_distrusted(registry: CollectorRegistry) -> None:
    async with client(starlette_app(registry, accept_request_id=False)) as http:
        response = await http.get("/ok", headers={"x-request-id": "abc-123"})
    assert GENERATED.match(response.headers["x-request-id"])


async def test_the_header_name_is_configurable_and_can_be_switched_off(
    registry: CollectorRegistry,
) -> None:
    async with client(starlette_app(registry, request_id_header="X-Correlation-ID")) as http:
        response = await http.get("/ok", headers={"x-correlation-id": "corr-1"})
    assert response.headers["x-correlation-id"] == "corr-1"
    assert "x-request-id" not in response.headers

    async with client(starlette_app(CollectorRegistry(), request_id_header="")) as http:
        response = await http.get("/ok")
    assert "x-request-id" not in response.headers


async def test_unhandled_exception_gets_starlettes_500_with_the_header_and_still_raises(
    logs: LogCapture, registry: CollectorRegistry
) -> None:
    transport_app = starlette_app(registry)
    async with client(transport_app) as http:
        response = await http.get("/boom", headers={"x-request-id": "req-500"})
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-request-id"] == "req-500"
    line = logs.one_access_line()
    assert (line["status"], line["error"], line["request_id"]) == (
        500,
        "tests.logs.test_request_id.Boom",
        "req-500",
    )

    with pytest.raises(Boom) as raised:
        await call(starlette_app(CollectorRegistry()), http_scope("/boom"))
    # The server's traceback line names the request too.
    assert any(note.startswith("ouro-obs: request_id=") for note in raised.value.__notes__)


async def test_fastapi_unhandled_exception_and_http_500_carry_the_header(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()

    @app.get("/crash")
    async def crash() -> None:
        raise Boom("fastapi handler failed")

    @app.get("/refuse")
    async def refuse() -> None:
        raise HTTPException(status_code=500, detail="handled")

    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False)
    async with client(app) as http:
        crashed = await http.get("/crash")
        refused = await http.get("/refuse")
    assert (crashed.status_code, crashed.text) == (500, "Internal Server Error")
    assert GENERATED.match(crashed.headers["x-request-id"])
    assert refused.status_code == 500
    assert refused.json() == {"detail": "handled"}
    assert GENERATED.match(refused.headers["x-request-id"])


async def test_a_custom_500_handler_still_answers_unhandled_exceptions(
    registry: CollectorRegistry,
) -> None:
    async def as_json(request: Request, error: Exception) -> Response:
        return JSONResponse({"error": "custom"}, status_code=500)

    app = starlette_app(registry, exception_handlers={Exception: as_json})
    async with client(app) as http:
        response = await http.get("/boom")
    assert (response.status_code, response.json()) == (500, {"error": "custom"})


async def test_debug_mode_keeps_starlettes_traceback_page(registry: CollectorRegistry) -> None:
    async with client(starlette_app(registry, debug=True)) as http:
        response = await http.get("/boom", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert "Boom" in response.text
    assert "the handler failed" in response.text


async def test_an_app_that_sets_its_own_id_header_is_not_given_a_second_one(
    registry: CollectorRegistry,
) -> None:
    recorded = await call(starlette_app(registry), http_scope("/own"))
    start = next(m for m in recorded.messages if m["type"] == "http.response.start")
    values = [value for name, value in start["headers"] if name.lower() == b"x-request-id"]
    assert values == [b"chosen-by-app"]


async def test_a_response_object_reused_across_requests_collects_no_headers(
    registry: CollectorRegistry,
) -> None:
    async with client(starlette_app(registry)) as http:
        for _ in range(3):
            response = await http.get("/shared")
            assert len(response.headers.get_list("x-request-id")) == 1
    assert b"x-request-id" not in dict(SHARED_RESPONSE.raw_headers)


async def test_the_app_reads_the_id_from_request_state(registry: CollectorRegistry) -> None:
    async def echo_id(request: Request) -> Response:
        return PlainTextResponse(request.state.request_id)

    app = Starlette(routes=[Route("/id", echo_id)])
    app.add_middleware(ObservabilityMiddleware, registry=registry, tracing=False)
    async with client(app) as http:
        given = await http.get("/id", headers={"x-request-id": "from-client"})
        made = await http.get("/id")
    assert given.text == "from-client"
    assert made.text == made.headers["x-request-id"]
    assert GENERATED.match(made.text)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_custom_500_handler_sees_the_id_in_its_log_context_and_its_answer_carries_it(
    logs: LogCapture, registry: CollectorRegistry, kind: str
) -> None:
    import structlog  # noqa: PLC0415

    seen: list[object] = []

    def answer(request: Request, error: Exception) -> Response:
        seen.append(structlog.contextvars.get_contextvars().get("request_id"))
        seen.append(request.state.request_id)
        structlog.get_logger("app.errors").error("unhandled", error=type(error).__name__)
        return JSONResponse({"error": "custom"}, status_code=500)

    async def answer_async(request: Request, error: Exception) -> Response:
        return answer(request, error)

    handler = answer_async if kind == "async" else answer
    app = starlette_app(registry, exception_handlers={Exception: handler})
    async with client(app) as http:
        response = await http.get("/boom", headers={"x-request-id": "req-handled"})
        again = await http.get("/boom")
    assert (response.status_code, response.json()) == (500, {"error": "custom"})
    assert response.headers["x-request-id"] == "req-handled"
    assert seen[:2] == ["req-handled", "req-handled"]
    assert seen[2:] == [again.headers["x-request-id"]] * 2
    (first, _second) = logs.by_logger("app.errors")
    assert first["request_id"] == "req-handled"
