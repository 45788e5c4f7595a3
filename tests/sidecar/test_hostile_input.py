"""Hostile requests through the sidecar get the answer the upstream gives them directly.

The cases are the middleware's hostile-input cases (tests/metrics/test_hostile_input.py):
its raw requests as they are, and its hostile ASGI scopes written out as raw HTTP. Each is
sent to the same app served by uvicorn, once directly and once through the sidecar in
front of it; the status line, the headers and the body must match (less ``Date``,
``Server`` and the request id the middleware adds), no traceback may be logged, and no
hostile request may count as an upstream error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from ouro_obs.sidecar.connection import UPSTREAM_ERROR_REASONS
from ouro_obs.sidecar.server import Sidecar
from tests.metrics.test_hostile_input import HOSTILE_SCOPES, RAW_HOSTILE_REQUESTS, bare_app
from tests.sidecar.servers import (
    ThreadedUvicorn,
    raw_exchange,
    running_sidecar,
    wait_for_requests,
)

#: Request headers a proxy adds on the way (docs/sidecar.md, "What the proxy does").
PROXY_ADDED = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
        b"traceparent",
        b"tracestate",
    }
)
#: Response headers allowed to differ: the time, the id the middleware answers with, and
#: ``Server``: the sidecar names no server of its own (the upstream's passes through), so
#: a request its uvicorn refuses (400) lacks the ``server: uvicorn`` of the direct answer.
UNCOMPARED = frozenset({b"date", b"x-request-id", b"server"})


def as_raw(scope: dict[str, Any]) -> bytes:
    """A hostile ASGI scope written out as the HTTP/1.1 request that would produce it."""
    lines = [
        b"%s %s HTTP/1.1" % (scope["method"].encode("latin-1"), scope["raw_path"]),
        b"Host: x",
        *(name + b": " + value for name, value in scope["headers"]),
        b"Content-Length: 7",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\npayload"


CASES: dict[str, bytes] = {
    **{f"raw {index}": request for index, request in enumerate(RAW_HOSTILE_REQUESTS)},
    **{case: as_raw(scope) for case, scope in HOSTILE_SCOPES},
}


def without_proxy_headers(app: ASGIApp) -> ASGIApp:
    """``app`` shown only the headers the client sent, so its two answers are comparable
    (the app under test counts the request's headers)."""

    async def comparable(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(name, value) for name, value in scope["headers"] if name not in PROXY_ADDED]
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return comparable


@pytest.fixture(scope="module", params=["h11", "httptools"])
def parser(request: pytest.FixtureRequest) -> str:
    """uvicorn's request parser, the same for the upstream and the sidecar: each has its
    own answers to a malformed request."""
    return str(request.param)


@pytest.fixture(scope="module")
def upstream(parser: str) -> Iterator[ThreadedUvicorn]:
    with ThreadedUvicorn(without_proxy_headers(bare_app()), http=parser) as server:
        yield server


@pytest.fixture(scope="module")
def registry(parser: str) -> CollectorRegistry:
    del parser  # one registry per sidecar
    return CollectorRegistry()


@pytest.fixture(scope="module")
def sidecar(
    upstream: ThreadedUvicorn, registry: CollectorRegistry, parser: str
) -> Iterator[Sidecar]:
    with running_sidecar(upstream.url, registry, http=parser) as running:
        yield running


def comparable(response: bytes) -> tuple[bytes, list[bytes], bytes]:
    """The status line, the header lines compared (lower-cased names) and the body."""
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = []
    for line in lines:
        name, _, value = line.partition(b":")
        if name.lower() not in UNCOMPARED:
            headers.append(name.lower() + b":" + value)
    return status, sorted(headers), body


@pytest.mark.integration
@pytest.mark.parametrize("request_bytes", CASES.values(), ids=CASES.keys())
def test_a_hostile_request_gets_the_same_answer_through_the_sidecar(
    request_bytes: bytes,
    upstream: ThreadedUvicorn,
    sidecar: Sidecar,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    recorded = wait_for_requests(registry, 0)
    direct = raw_exchange(upstream.port, request_bytes)
    proxied = raw_exchange(sidecar.config.port, request_bytes)
    if b"\r\nx-request-id: " in proxied.partition(b"\r\n\r\n")[0].lower():
        # The middleware saw the request (uvicorn refused none of it): it records it.
        assert wait_for_requests(registry, recorded + 1) == recorded + 1
    assert comparable(proxied) == comparable(direct)
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []
    errors = {reason: registry.get_sample_value(
        "ouro_obs_sidecar_upstream_errors_total", {"reason": reason}
    ) for reason in UPSTREAM_ERROR_REASONS}  # fmt: skip
    assert set(errors.values()) == {0.0}
