"""The standard ``OTEL_EXPORTER_OTLP_*`` variables, read the same way for every signal.

Traces and metrics are exported over OTLP/HTTP; each signal has its own endpoint and
protocol variables (``..._TRACES_...``, ``..._METRICS_...``) that win over the common ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from ouro_obs.config.values import ConfigError

__all__ = ["DEFAULT_OTLP_ENDPOINT", "check_http_protobuf", "positive_int", "signal_endpoint"]

#: Where the OpenTelemetry SDKs send OTLP/HTTP when no endpoint is given.
DEFAULT_OTLP_ENDPOINT: Final = "http://localhost:4318"

Signal = Literal["traces", "metrics"]


def signal_endpoint(environ: Mapping[str, str], signal: Signal) -> str:
    """The signal's own endpoint as given, else the common one with ``/v1/<signal>``."""
    specific = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
    if specific:
        return specific
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_OTLP_ENDPOINT
    return f"{base.rstrip('/')}/v1/{signal}"


def check_http_protobuf(environ: Mapping[str, str], signal: Signal) -> None:
    """Refuse a protocol other than ``http/protobuf`` (the signal's variable first)."""
    for variable in (
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        raw = environ.get(variable, "").strip()
        if raw:
            if raw != "http/protobuf":
                raise ConfigError(
                    f"{variable}={raw!r}: ouro-obs exports {signal} over OTLP/HTTP; set it to "
                    "'http/protobuf' and point the endpoint at the collector's HTTP port (4318)"
                )
            return


def positive_int(environ: Mapping[str, str], variable: str, default: int, unit: str = "") -> int:
    """A whole number of at least 1, ``default`` when unset; ``unit`` names it in errors."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return default
    what = f" of {unit}" if unit else f", e.g. {default}"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a whole number{what}") from None
    if value < 1:
        raise ConfigError(f"{variable}={value} must be at least 1" + (f" ({unit})" if unit else ""))
    return value
