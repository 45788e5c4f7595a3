"""What a scrape carries: no ``_created`` series unless asked, per endpoint, both formats."""

from __future__ import annotations

from typing import Any

import prometheus_client.metrics
import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from ouro_obs import ObservabilityMiddleware
from ouro_obs.config import ObservabilitySettings
from ouro_obs.metrics import render_metrics
from tests.metrics.asgi import client

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello")(scope, receive, send)


async def _scrape(registry: CollectorRegistry, accept: str = "", **options: Any) -> str:
    async with client(ObservabilityMiddleware(hello, registry=registry, **options)) as http:
        await http.get("/a")
        response = await http.get("/metrics", headers={"accept": accept})
    assert response.status_code == 200
    return response.text


def _created_samples(text: str, *, openmetrics: bool = False) -> list[str]:
    families = parse_openmetrics(text) if openmetrics else text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    return [
        sample.name
        for family in families
        for sample in family.samples
        if sample.name.endswith("_created")
    ]


@pytest.mark.parametrize("accept", ["", OPENMETRICS])
async def test_a_scrape_carries_no_created_series_by_default(
    registry: CollectorRegistry, accept: str
) -> None:
    text = await _scrape(registry, accept)
    assert 'http_requests_total{method="GET",route="<unmatched>",status="200"} 1.0' in text
    assert "http_request_duration_seconds_count" in text
    assert _created_samples(text, openmetrics=bool(accept)) == []
    assert "_created" not in text


@pytest.mark.parametrize("accept", ["", OPENMETRICS])
async def test_created_series_when_the_setting_asks(
    registry: CollectorRegistry, accept: str
) -> None:
    text = await _scrape(registry, accept, created_series=True)
    created = _created_samples(text, openmetrics=bool(accept))
    assert "http_requests_created" in created
    assert "http_request_duration_seconds_created" in created


async def test_the_setting_is_per_endpoint_not_process_wide(registry: CollectorRegistry) -> None:
    other = CollectorRegistry()
    assert "_created" not in await _scrape(registry)
    assert "http_requests_created" in await _scrape(other, created_series=True)
    assert prometheus_client.metrics._use_created  # prometheus_client's global switch untouched


def test_a_gauge_named_created_is_a_metric_of_its_own_and_stays() -> None:
    registry = CollectorRegistry()
    Gauge("orders_created", "Orders created so far.", registry=registry).set(3)
    body, _content_type = render_metrics(registry, "")
    assert "orders_created 3.0" in body.decode()


def test_the_setting_reads_its_environment_variable() -> None:
    assert ObservabilitySettings().created_series is False
    settings = ObservabilitySettings.from_env({"OURO_OBS_CREATED_SERIES": "true"})
    assert settings.created_series is True
