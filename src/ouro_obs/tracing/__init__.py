"""OpenTelemetry traces: the provider, bounded export, and the SERVER span of each request.

- :mod:`~ouro_obs.tracing.configure`: :func:`configure_tracing` and :class:`TracingConfig`
  (the ``OTEL_*`` variables, resource, sampler);
- :mod:`~ouro_obs.tracing.export`: :class:`BoundedBatchSpanProcessor` and its drop counter;
- :mod:`~ouro_obs.tracing.otlp`: :class:`OtlpHttpSpanExporter`, the SDK's OTLP/HTTP exporter
  with spans written straight to protobuf bytes (imported on first use: only an OTLP
  set-up pays for ``requests`` and protobuf);
- :mod:`~ouro_obs.tracing.spans`: the SERVER span recorder the middleware runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ouro_obs.tracing.configure import DEFAULT_OTLP_ENDPOINT, TracingConfig, configure_tracing
from ouro_obs.tracing.export import BoundedBatchSpanProcessor

if TYPE_CHECKING:
    from ouro_obs.tracing.otlp import OtlpHttpSpanExporter

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "BoundedBatchSpanProcessor",
    "OtlpHttpSpanExporter",
    "TracingConfig",
    "configure_tracing",
]


def __getattr__(name: str) -> object:
    if name == "OtlpHttpSpanExporter":
        from ouro_obs.tracing.otlp import OtlpHttpSpanExporter  # noqa: PLC0415

        return OtlpHttpSpanExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
