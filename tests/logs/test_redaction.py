"""Secrets never reach a log line: headers, cookies, configured names, query parameters."""

from __future__ import annotations

import logging

import pytest
import structlog
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware, ObservabilitySettings
from tests.logs.capture import LogCapture, capture_logs
from tests.metrics.asgi import client

SECRET = "s3cr3t-value"


def assert_no_secret(capture: LogCapture) -> None:
    assert SECRET not in capture.text
    assert "[REDACTED]" in capture.text


@pytest.mark.parametrize(
    "key", ["authorization", "Authorization", "cookie", "set_cookie", "Set-Cookie", "x_api_key"]
)
def test_sensitive_header_names_as_keys_are_redacted(logs: LogCapture, key: str) -> None:
    structlog.get_logger("shop").info("calling upstream", **{key: SECRET})
    assert_no_secret(logs)


def test_header_mappings_and_raw_header_lists_are_redacted(logs: LogCapture) -> None:
    headers = Headers({"authorization": f"Bearer {SECRET}", "accept": "text/plain"})
    structlog.get_logger("shop").info("request headers", headers=headers)
    logging.getLogger("shop").info("raw", extra={"raw_headers": [(b"cookie", SECRET.encode())]})
    structlog.get_logger("shop").info("dict", headers={"Set-Cookie": SECRET, "accept": "*/*"})
    assert_no_secret(logs)
    assert "text/plain" in logs.text  # the harmless header stays


def test_configured_headers_and_query_parameters_are_redacted(restore_logging: None) -> None:
    settings = ObservabilitySettings(
        redact_headers=frozenset({"X-Tenant-Key"}), redact_query_params=frozenset({"session"})
    )
    capture = capture_logs(settings)
    structlog.get_logger("shop").info("tenant", x_tenant_key=SECRET)
    structlog.get_logger("shop").info("link", url=f"https://shop.example/cart?session={SECRET}&x=1")
    assert_no_secret(capture)
    assert "x=1" in capture.text


@pytest.mark.parametrize(
    "text",
    [
        f"GET /callback?access_token={SECRET}",
        f"token={SECRET}",
        f"https://bucket.s3/obj?X-Amz-Signature={SECRET}&X-Amz-Date=1",
        f"see https://api.example/v1?Api_Key={SECRET} now",
    ],
)
def test_default_secret_query_parameters_are_redacted_inside_any_text(
    logs: LogCapture, text: str
) -> None:
    logging.getLogger("shop").info(text)
    assert_no_secret(logs)


async def test_access_line_query_is_redacted(
    restore_logging: None, registry: CollectorRegistry
) -> None:
    async def page(request: Request) -> Response:
        return PlainTextResponse("ok")

    settings = ObservabilitySettings(redact_query_params=frozenset({"otp"}))
    capture = capture_logs(settings)
    app = Starlette(routes=[Route("/login", page)])
    app.add_middleware(ObservabilityMiddleware, settings, registry=registry, tracing=False)
    async with client(app) as http:
        await http.get(
            f"/login?user=ada&password={SECRET}&otp={SECRET}&Access%5FToken={SECRET}",
            headers={"authorization": f"Bearer {SECRET}", "cookie": f"sid={SECRET}"},
        )
    line = capture.one_access_line()
    assert line["query"] == (
        "user=ada&password=[REDACTED]&otp=[REDACTED]&Access%5FToken=[REDACTED]"
    )
    assert SECRET not in capture.text
