"""uvicorn factories for the hostile-input test: the same app with and without the middleware."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from tests.metrics.test_hostile_input import bare_app, instrumented_app


def bare() -> Starlette:
    return bare_app()


def instrumented() -> Starlette:
    return instrumented_app(CollectorRegistry())
