"""The sidecar in front of a real uvicorn upstream on loopback, both served in threads."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ouro_obs.asgi.routes import OpenAPIRouteResolver
from ouro_obs.demo.lifecycle import free_port
from ouro_obs.sidecar.upstream import UpstreamTimeouts
from tests.sidecar.servers import (
    CannedUpstream,
    ThreadedUvicorn,
    UpstreamState,
    payload,
    running_sidecar,
    sha256,
    upstream_app,
    wait_for_sample,
    with_current_span,
)

TWENTY_MB = 20 * 1024 * 1024
ERRORS = "ouro_obs_sidecar_upstream_errors_total"


def echoed_headers(response: httpx.Response) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


def raw_request(port: int, request: bytes) -> bytes:
    """Send ``request`` bytes as they are and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_requests_are_labelled_with_openapi_templates_under_the_server_base_path(
    upstream: ThreadedUvicorn, registry: CollectorRegistry, tmp_path: Path
) -> None:
    document = {
        "openapi": "3.1.0",
        "info": {"title": "shop", "version": "1"},
        "servers": [{"url": "https://shop.example.com/api"}],
        "paths": {"/users/{user_id}": {"get": {}}, "/users/me": {"get": {}}},
    }
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    resolver = OpenAPIRouteResolver.from_openapi_file(tmp_path / "openapi.json")
    with running_sidecar(upstream.url, registry, route_resolver=resolver) as sidecar:
        for path in ("/api/users/1", "/api/users/2", "/api/users/me", "/api/nowhere/3"):
            response = httpx.get(sidecar.url + path)
            assert response.status_code == 200
            assert response.text == f"upstream:{path}"
        labels = {"method": "GET", "status": "200"}
        expected = {"/api/users/{user_id}": 2.0, "/api/users/me": 1.0, "<unmatched>": 1.0}
        counted = {
            route: wait_for_sample(
                registry, "http_requests_total", {**labels, "route": route}, count
            )
            for route, count in expected.items()
        }
    assert counted == expected


def test_the_first_response_byte_reaches_the_client_before_the_upstream_finishes(
    upstream: ThreadedUvicorn, state: UpstreamState, registry: CollectorRegistry
) -> None:
    with (
        running_sidecar(upstream.url, registry) as sidecar,
        httpx.stream("GET", sidecar.url + "/stream") as response,
    ):
        chunks = response.iter_raw()
        first = next(chunks)
        state.events.append("client got the first byte")
        state.release.set()
        rest = b"".join(chunks)
    assert first + rest == b"first\nlast\n"
    assert state.events == ["client got the first byte", "upstream finished"]


def test_the_first_request_chunk_reaches_the_upstream_before_the_client_sends_the_rest(
    upstream: ThreadedUvicorn, state: UpstreamState, registry: CollectorRegistry
) -> None:
    def body() -> Iterator[bytes]:
        yield b"a" * 1000
        state.first_chunk_arrived.wait(10)
        state.events.append("client sends the rest")
        yield b"b" * 1000

    with running_sidecar(upstream.url, registry) as sidecar:
        response = httpx.post(sidecar.url + "/upload", content=body(), timeout=20)
    assert response.json() == {"bytes": 2000, "sha256": sha256(b"a" * 1000 + b"b" * 1000)}
    assert state.events == ["upstream got the first chunk", "client sends the rest"]


def test_a_20_mb_upload_reaches_the_upstream_byte_for_byte_and_is_measured(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    data = payload(TWENTY_MB)
    resolver = OpenAPIRouteResolver(["/upload"])
    with running_sidecar(upstream.url, registry, route_resolver=resolver) as sidecar:
        response = httpx.put(sidecar.url + "/upload", content=data, timeout=60)
        size_sum = wait_for_sample(
            registry, "http_request_size_bytes_sum", {"method": "PUT", "route": "/upload"}
        )
    assert response.json() == {"bytes": TWENTY_MB, "sha256": sha256(data)}
    assert size_sum == TWENTY_MB


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_20_mb_download_reaches_the_client_byte_for_byte_and_is_measured(
    chunked: bool, upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    resolver = OpenAPIRouteResolver(["/download"])
    with running_sidecar(upstream.url, registry, route_resolver=resolver) as sidecar:
        response = httpx.get(
            f"{sidecar.url}/download?size={TWENTY_MB}&chunked={int(chunked)}", timeout=60
        )
        size_sum = wait_for_sample(
            registry, "http_response_size_bytes_sum", {"method": "GET", "route": "/download"}
        )
    assert response.status_code == 200
    assert len(response.content) == TWENTY_MB
    assert sha256(response.content) == sha256(payload(TWENTY_MB))
    assert ("content-length" in response.headers) is not chunked
    assert size_sum == TWENTY_MB


def test_an_upstream_that_is_down_gives_502_counted_and_logged(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ouro_obs.sidecar")
    with running_sidecar(f"http://127.0.0.1:{free_port()}", registry) as sidecar:
        response = httpx.get(sidecar.url + "/users/1")
        wait_for_sample(
            registry,
            "http_requests_total",
            {"method": "GET", "route": "<unmatched>", "status": "502"},
        )
    assert response.status_code == 502
    assert "connect error" in response.text
    assert registry.get_sample_value(ERRORS, {"reason": "connect_error"}) == 1.0
    assert registry.get_sample_value(ERRORS, {"reason": "read_timeout"}) == 0.0
    logged = [r.getMessage() for r in caplog.records if r.name == "ouro_obs.sidecar"]
    assert any("connect_error for GET /users/1" in message for message in logged), logged


def test_an_upstream_slower_than_the_read_timeout_gives_504_counted(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    timeouts = UpstreamTimeouts(connect=5, read=0.3)
    with running_sidecar(upstream.url, registry, timeouts=timeouts) as sidecar:
        response = httpx.get(sidecar.url + "/slow?seconds=5", timeout=10)
        wait_for_sample(
            registry,
            "http_requests_total",
            {"method": "GET", "route": "<unmatched>", "status": "504"},
        )
    assert response.status_code == 504
    assert registry.get_sample_value(ERRORS, {"reason": "read_timeout"}) == 1.0


def test_the_current_span_reaches_the_upstream_as_its_traceparent(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    spans: list[Any] = []
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with running_sidecar(upstream.url, registry, wrap=with_current_span(spans)) as sidecar:
        response = httpx.get(sidecar.url + "/echo", headers={"traceparent": incoming})
    context = spans[0].get_span_context()
    assert echoed_headers(response)["traceparent"] == [
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    ]


def test_without_a_current_span_the_clients_trace_context_passes_on(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with running_sidecar(upstream.url, registry) as sidecar:
        response = httpx.get(sidecar.url + "/echo", headers={"traceparent": incoming})
    (traceparent,) = echoed_headers(response)["traceparent"]
    assert traceparent.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


HOP_BY_HOP_REQUEST = (
    b"GET /echo?q=1%202 HTTP/1.1\r\n"
    b"Host: shop.example\r\n"
    b"Connection: close, X-Hop-Secret\r\n"
    b"X-Hop-Secret: only-for-this-hop\r\n"
    b"Keep-Alive: timeout=5\r\n"
    b"TE: trailers\r\n"
    b"Trailer: X-Checksum\r\n"
    b"Upgrade: h2c\r\n"
    b"Proxy-Authorization: Basic c2VjcmV0\r\n"
    b"Proxy-Connection: keep-alive\r\n"
    b"X-Forwarded-For: 203.0.113.9\r\n"
    b"X-Forwarded-Proto: https\r\n"
    b"X-End-To-End: kept\r\n"
    b"\r\n"
)


def test_hop_by_hop_request_headers_stop_at_the_sidecar(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    with running_sidecar(upstream.url, registry) as sidecar:
        raw = raw_request(sidecar.config.port, HOP_BY_HOP_REQUEST)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    document = json.loads(body)
    names = {name for name, _ in document["headers"]}
    hop_by_hop = {
        "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-connection", "x-hop-secret",
    }  # fmt: skip
    assert names.isdisjoint(hop_by_hop)
    assert document["target"] == "/echo?q=1%202"
    headers = dict(document["headers"])
    assert headers["x-end-to-end"] == "kept"
    assert headers["host"] == "shop.example"


def test_forwarded_headers_append_this_hop_and_keep_what_the_ingress_said(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    with running_sidecar(upstream.url, registry) as sidecar:
        response = httpx.get(
            sidecar.url + "/echo",
            headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"},
        )
        plain = httpx.get(sidecar.url + "/echo", headers={"host": "shop.example"})
    forwarded = echoed_headers(response)
    assert forwarded["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
    assert forwarded["x-forwarded-proto"] == ["https"]
    assert forwarded["x-forwarded-host"] == [f"127.0.0.1:{sidecar.config.port}"]
    first_hop = echoed_headers(plain)
    assert first_hop["x-forwarded-for"] == ["127.0.0.1"]
    assert first_hop["x-forwarded-proto"] == ["http"]
    assert first_hop["x-forwarded-host"] == ["shop.example"]


def test_forwarded_replace_mode_trusts_nothing_the_client_sent(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    with running_sidecar(upstream.url, registry, forwarded="replace") as sidecar:
        response = httpx.get(
            sidecar.url + "/echo",
            headers={
                "x-forwarded-for": "203.0.113.9",
                "x-forwarded-proto": "https",
                "x-forwarded-host": "evil.example",
                "host": "shop.example",
            },
        )
    forwarded = echoed_headers(response)
    assert forwarded["x-forwarded-for"] == ["127.0.0.1"]
    assert forwarded["x-forwarded-proto"] == ["http"]
    assert forwarded["x-forwarded-host"] == ["shop.example"]


CANNED_RESPONSE = (
    b"HTTP/1.1 201 Created\r\n"
    b"Content-Length: 2\r\n"
    b"Connection: keep-alive, X-Internal\r\n"
    b"X-Internal: secret\r\n"
    b"Keep-Alive: timeout=5, max=100\r\n"
    b"Proxy-Authenticate: Basic realm=upstream\r\n"
    b"Upgrade: h2c\r\n"
    b"Trailer: X-Checksum\r\n"
    b"Set-Cookie: a=1\r\n"
    b"Set-Cookie: b=2\r\n"
    b"Server: canned/1.0\r\n"
    b"X-Public: yes\r\n"
    b"\r\n"
    b"ok"
)


def test_hop_by_hop_response_headers_stop_at_the_sidecar(registry: CollectorRegistry) -> None:
    with (
        CannedUpstream(CANNED_RESPONSE) as canned,
        running_sidecar(canned.url, registry) as sidecar,
    ):
        response = httpx.get(sidecar.url + "/anything")
    assert response.status_code == 201
    assert response.content == b"ok"
    names = set(response.headers.keys())
    assert names.isdisjoint(
        {"x-internal", "keep-alive", "proxy-authenticate", "upgrade", "trailer"}
    )
    assert "x-internal" not in response.headers.get("connection", "").lower()
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers.get_list("server") == ["canned/1.0"]
    assert response.headers["x-public"] == "yes"


def test_upstream_connections_are_reused_across_requests(registry: CollectorRegistry) -> None:
    with (
        CannedUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as canned,
        running_sidecar(canned.url, registry) as sidecar,
    ):
        statuses = [httpx.get(sidecar.url + f"/{n}").status_code for n in range(5)]
        idle = sidecar.client.idle_connections
    assert statuses == [200] * 5
    assert len(canned.requests) == 5
    assert idle == 1  # one connection served the five requests in turn


def test_readiness_on_the_metrics_port_follows_the_upstream(
    state: UpstreamState, registry: CollectorRegistry
) -> None:
    port = free_port()
    with running_sidecar(f"http://127.0.0.1:{port}", registry) as sidecar:
        down = httpx.get(sidecar.metrics_url + "/health/ready")
        with ThreadedUvicorn(upstream_app(state), port):
            up = httpx.get(sidecar.metrics_url + "/health/ready")
        live = httpx.get(sidecar.metrics_url + "/health/live")
    assert down.status_code == 503
    assert down.json()["failing"] == ["upstream"]
    assert "connect_error" in down.json()["checks"]["upstream"]
    assert up.status_code == 200
    assert live.status_code == 200


def test_readiness_with_a_health_path_follows_the_upstreams_answer(
    upstream: ThreadedUvicorn, state: UpstreamState, registry: CollectorRegistry
) -> None:
    with running_sidecar(upstream.url, registry, health_path="/healthz") as sidecar:
        healthy = httpx.get(sidecar.metrics_url + "/health/ready")
        state.health_status = 503
        unhealthy = httpx.get(sidecar.metrics_url + "/health/ready")
    assert healthy.status_code == 200
    assert unhealthy.status_code == 503
    assert "answered 503" in unhealthy.json()["checks"]["upstream"]


def test_metrics_are_on_their_own_port_and_every_path_of_the_proxy_port_is_forwarded(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    with running_sidecar(upstream.url, registry) as sidecar:
        forwarded = {
            path: httpx.get(sidecar.url + path).text
            for path in ("/metrics", "/health/live", "/health/ready")
        }
        wait_for_sample(
            registry,
            "http_requests_total",
            {"method": "GET", "route": "<unmatched>", "status": "200"},
        )
        scrape = httpx.get(sidecar.metrics_url + "/metrics").text
    assert forwarded == {path: f"upstream:{path}" for path in forwarded}
    families = {family.name for family in text_string_to_metric_families(scrape)}
    assert {"http_requests", "ouro_obs_sidecar_upstream_errors"} <= families


def test_a_client_that_leaves_mid_stream_closes_the_upstream_exchange(
    upstream: ThreadedUvicorn, state: UpstreamState, registry: CollectorRegistry
) -> None:
    with running_sidecar(upstream.url, registry) as sidecar:
        with socket.create_connection(("127.0.0.1", sidecar.config.port), timeout=10) as client:
            client.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"first" not in received:
                received += client.recv(65536)
        status = wait_for_sample(
            registry,
            "http_requests_total",
            {"method": "GET", "route": "<unmatched>", "status": "499"},
        )
        errors = registry.get_sample_value(ERRORS, {"reason": "disconnected"})
    assert status == 1.0
    assert errors == 0.0  # the client left; the upstream did nothing wrong


def test_shutdown_lets_the_request_in_flight_finish(
    upstream: ThreadedUvicorn, state: UpstreamState, registry: CollectorRegistry
) -> None:
    result: dict[str, Any] = {}
    with running_sidecar(upstream.url, registry) as sidecar:

        def call() -> None:
            result["response"] = httpx.get(sidecar.url + "/slow?seconds=10", timeout=20)

        caller = threading.Thread(target=call)
        caller.start()
        in_flight = {"method": "GET"}
        assert wait_for_sample(registry, "http_requests_in_progress", in_flight, 1.0) == 1.0
        sidecar.shutdown()
        draining = httpx.get(sidecar.metrics_url + "/health/ready")
        state.release.set()
        caller.join(20)
    assert draining.status_code == 503
    assert draining.json()["checks"]["shutdown"] == "draining"
    assert result["response"].status_code == 200
    assert result["response"].text == "slow answer"


def test_the_upstream_gets_the_request_id_the_sidecar_logs_and_answers_with(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    with running_sidecar(upstream.url, registry) as sidecar:
        generated = httpx.get(sidecar.url + "/echo")
        unsafe = httpx.get(sidecar.url + "/echo", headers={"x-request-id": "two words"})
        kept = httpx.get(sidecar.url + "/echo", headers={"x-request-id": "req-42"})
    for response in (generated, unsafe):
        (forwarded,) = echoed_headers(response)["x-request-id"]
        assert forwarded == response.headers["x-request-id"]
        assert len(forwarded) == 32
    assert echoed_headers(kept)["x-request-id"] == ["req-42"]
    assert kept.headers.get_list("x-request-id") == ["req-42"]


def test_a_websocket_upgrade_is_refused(
    upstream: ThreadedUvicorn, registry: CollectorRegistry
) -> None:
    handshake = (
        b"GET /socket HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with running_sidecar(upstream.url, registry) as sidecar:
        raw = raw_request(sidecar.config.port, handshake)
    assert raw.startswith(b"HTTP/1.1 403")
