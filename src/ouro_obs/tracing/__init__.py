"""OpenTelemetry traces: the provider, bounded export, and the SERVER span of each request.

- :mod:`~ouro_obs.tracing.configure`: :func:`configure_tracing` and :class:`TracingConfig`
  (the ``OTEL_*`` variables, resource, sampler);
- :mod:`~ouro_obs.tracing.export`: :class:`BoundedBatchSpanProcessor` and its drop counter;
- :mod:`~ouro_obs.tracing.spans`: the SERVER span recorder the middleware runs.
"""

from __future__ import annotations

from ouro_obs.tracing.configure import DEFAULT_OTLP_ENDPOINT, TracingConfig, configure_tracing
from ouro_obs.tracing.export import BoundedBatchSpanProcessor

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "BoundedBatchSpanProcessor",
    "TracingConfig",
    "configure_tracing",
]
