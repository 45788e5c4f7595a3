"""The sidecar's admin port answers like a service's own port and its metrics port.

All three serve :class:`~ouro_obs.asgi.endpoints.ServiceEndpoints`; here both sides have the
same readiness check (the upstream's health path, which answers 503), so every answer must
match, except that the app's own port (which the Ingress reaches) names the failing check
without its details.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from ouro_obs import ObservabilityMiddleware, ReadinessChecks
from ouro_obs.config import ObservabilitySettings
from ouro_obs.demo.lifecycle import free_port
from ouro_obs.sidecar.server import upstream_readiness
from ouro_obs.sidecar.upstream import Upstream, UpstreamClient
from tests.sidecar.servers import ThreadedUvicorn, UpstreamState, running_sidecar

OPENMETRICS = {"accept": "application/openmetrics-text; version=1.0.0"}
#: (method, path, request headers) asked of every port.
PROBES = [
    ("GET", "/health/live", {}),
    ("HEAD", "/health/live", {}),
    ("GET", "/health/ready", {}),
    ("HEAD", "/health/ready", {}),
    ("POST", "/health/ready", {}),
    ("GET", "/metrics", {}),
    ("GET", "/metrics", OPENMETRICS),
    ("HEAD", "/metrics", {}),
    ("DELETE", "/metrics", {}),
]
COMPARED_HEADERS = ("content-type", "cache-control", "allow")


def answers(base_url: str) -> list[tuple[object, ...]]:
    """Status, the compared headers and the body of every probe (metrics bodies differ)."""
    found: list[tuple[object, ...]] = []
    for method, path, headers in PROBES:
        response = httpx.request(method, base_url + path, headers=headers)
        body = response.content
        if path == "/metrics" and response.status_code == 200:
            body = b"<metrics>" if body else b""
        compared = tuple(response.headers.get(name) for name in COMPARED_HEADERS)
        found.append((method, path, response.status_code, compared, body))
    return found


def test_the_admin_port_answers_like_the_apps_own_port_and_its_metrics_port(
    upstream: ThreadedUvicorn, state: UpstreamState, registry: CollectorRegistry
) -> None:
    state.health_status = 503
    with running_sidecar(upstream.url, registry, health_path="/healthz") as sidecar:
        admin = answers(sidecar.metrics_url)
    settings = ObservabilitySettings(metrics_port=free_port(), metrics_host="127.0.0.1")
    readiness = ReadinessChecks(timeout_seconds=settings.readiness_timeout_seconds)
    client = UpstreamClient(Upstream.parse(upstream.url))
    readiness.add("upstream", upstream_readiness(client, "/healthz"))

    @contextlib.asynccontextmanager
    async def closing_the_client(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()  # its pooled connection belongs to the server's event loop

    service = ObservabilityMiddleware(
        Starlette(lifespan=closing_the_client),
        settings,
        registry=CollectorRegistry(),
        readiness=readiness,
    )
    with ThreadedUvicorn(service, lifespan=True) as app_port:
        own = answers(app_port.url)
        metrics_port = answers(f"http://127.0.0.1:{settings.metrics_port}")
    assert admin == metrics_port
    # The app's own port: the same health answers, the failing check named without its
    # details; with a metrics port of its own, no /metrics.
    health = len([probe for probe in PROBES if probe[1].startswith("/health/")])
    assert [answer for index, answer in enumerate(own[:health]) if index != 2] == [
        answer for index, answer in enumerate(admin[:health]) if index != 2
    ]
    assert {answer[2] for answer in own[health:]} == {404}
    ready = admin[2]
    assert ready[2] == 503
    assert b"GET /healthz answered 503" in ready[4]  # type: ignore[operator]
    assert own[2][:4] == ready[:4]
    assert own[2][4] == b'{"failing":["upstream"],"status":"fail"}'
