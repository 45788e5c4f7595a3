from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from ouro_obs.demo.processes import find_rotel
from ouro_obs.demo.receiver import OTLPReceiver
from tests.logs.capture import saved_logging
from tests.support.processes import OTLPCollector
from tests.support.tools import missing


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """An SDK provider handing every ended span to ``exporter`` synchronously."""
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """A real OTLP/HTTP receiver on loopback."""
    with OTLPReceiver() as running:
        yield running


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield from saved_logging()


@pytest.fixture(scope="module")
def collector() -> Iterator[OTLPCollector]:
    """A real rotel collector forwarding to its own receiver, shared by a module's tests."""
    if find_rotel() is None:
        missing("rotel is not installed (pip install rotel)")
    with OTLPCollector() as running:
        yield running
