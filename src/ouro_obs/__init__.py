"""ouro-obs: one-line Prometheus metrics, logs and traces for ASGI services.

``app.add_middleware(ObservabilityMiddleware, service_name="shop")``

The public names load lazily, on first use: ``import ouro_obs.slo.spec`` (the generator)
then costs no Starlette, OpenTelemetry or structlog import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ouro_obs.asgi.endpoints import ServiceEndpoints
    from ouro_obs.asgi.health import ReadinessChecks
    from ouro_obs.asgi.middleware import ObservabilityMiddleware
    from ouro_obs.asgi.routes import OpenAPIRouteResolver
    from ouro_obs.config import ConfigError, ObservabilitySettings
    from ouro_obs.logs import configure_logging
    from ouro_obs.tracing import configure_tracing

__all__ = [
    "ConfigError",
    "ObservabilityMiddleware",
    "ObservabilitySettings",
    "OpenAPIRouteResolver",
    "ReadinessChecks",
    "ServiceEndpoints",
    "configure_logging",
    "configure_tracing",
]
__version__ = "0.1.0"

#: Public name -> the module that defines it.
_LOCATIONS = {
    "ConfigError": "ouro_obs.config",
    "ObservabilityMiddleware": "ouro_obs.asgi.middleware",
    "ObservabilitySettings": "ouro_obs.config",
    "OpenAPIRouteResolver": "ouro_obs.asgi.routes",
    "ReadinessChecks": "ouro_obs.asgi.health",
    "ServiceEndpoints": "ouro_obs.asgi.endpoints",
    "configure_logging": "ouro_obs.logs",
    "configure_tracing": "ouro_obs.tracing",
}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'ouro_obs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LOCATIONS])
