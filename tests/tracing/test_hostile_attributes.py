"""No request value may break a span or its export: hostile Host headers and paths (issue 12, 5).

Through the real OTLP/HTTP exporter and the rotel collector: one attribute protobuf cannot
encode (a port beyond int64, a lone surrogate) would fail the whole batch it is in.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ouro_obs import ObservabilityMiddleware, ObservabilitySettings, configure_tracing
from ouro_obs.tracing import TracingConfig
from tests.metrics.asgi import call, http_scope
from tests.support.processes import OTLPCollector

pytestmark = pytest.mark.integration


async def anything(request: Request) -> Response:
    return PlainTextResponse("ok")


def host(value: bytes) -> dict[str, Any]:
    return http_scope("/things/a", headers=[(b"host", value)])


#: (case, scope, the server.port the span must carry, or None for none)
HOSTILE: list[tuple[str, dict[str, Any], int | None]] = [
    ("superscript digit port", host("a:²".encode()), None),
    ("port above 65535", host(b"a:70000"), None),
    ("20-digit port", host(b"a:" + b"9" * 20), None),
    ("good port", host(b"shop.example:8443"), 8443),
    ("lone surrogates", http_scope("/things/\udcff\ud800", raw_path=b"/things/%FF"), None),
    ("odd method with a surrogate", http_scope("/things/a", method="BREW\udcff"), None),
]


async def test_every_hostile_request_gets_its_span_through_the_real_exporter(
    collector: OTLPCollector,
) -> None:
    registry = CollectorRegistry()
    settings = ObservabilitySettings(service_name="hostile")
    provider = configure_tracing(
        settings,
        config=TracingConfig.from_env({}),
        endpoint=collector.traces_url,
        registry=registry,
        set_global=False,
        schedule_delay_seconds=60,  # one batch holds them all: one bad value would fail it
    )
    assert provider is not None
    app = Starlette(routes=[Route("/things/{name:path}", anything, methods=["GET", "BREW"])])
    app.add_middleware(
        ObservabilityMiddleware, settings, registry=registry, tracer_provider=provider
    )
    for _case, scope, _port in HOSTILE:
        await call(app, scope)
    assert provider.force_flush(10_000)
    spans = collector.wait_for(
        lambda span: span.resource.get("service.name") == "hostile", count=len(HOSTILE)
    )
    provider.shutdown()
    errors = {"stage": "request"}
    assert registry.get_sample_value("ouro_obs_instrumentation_errors_total", errors) is None
    by_port = sorted(str(span.attributes.get("server.port")) for span in spans)
    assert by_port == sorted(str(port) for *_rest, port in HOSTILE)
    paths = {span.attributes["url.path"] for span in spans}
    assert "/things/\ufffd\ufffd" in paths
    addresses = {span.attributes.get("server.address") for span in spans}
    assert {"a", "shop.example"} <= addresses
    methods = {span.attributes.get("http.request.method_original") for span in spans}
    assert "BREW\ufffd" in methods
