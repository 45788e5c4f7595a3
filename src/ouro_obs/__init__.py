"""ouro-obs: one-line Prometheus metrics, logs and traces for ASGI services.

``app.add_middleware(ObservabilityMiddleware, service_name="shop")``
"""

from __future__ import annotations

from ouro_obs.config import ConfigError, ObservabilitySettings
from ouro_obs.health import ReadinessChecks
from ouro_obs.logs import configure_logging
from ouro_obs.middleware import ObservabilityMiddleware
from ouro_obs.routes import OpenAPIRouteResolver
from ouro_obs.tracing import configure_tracing

__all__ = [
    "ConfigError",
    "ObservabilityMiddleware",
    "ObservabilitySettings",
    "OpenAPIRouteResolver",
    "ReadinessChecks",
    "configure_logging",
    "configure_tracing",
]
__version__ = "0.1.0"
