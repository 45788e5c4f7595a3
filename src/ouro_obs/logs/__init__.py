"""Structured logs: ``configure_logging()``, the processors, redaction, the access line.

- :mod:`~ouro_obs.logs.configure`: :func:`configure_logging`, structlog and stdlib/uvicorn
  bridged into one chain and one renderer;
- :mod:`~ouro_obs.logs.processors`: the chain (:func:`shared_processors`) for your own
  structlog set-up, and its processors;
- :mod:`~ouro_obs.logs.redaction`: what never reaches a log line or a span;
- :mod:`~ouro_obs.logs.access`: the access line the middleware writes per request.
"""

from __future__ import annotations

from ouro_obs.logs.configure import configure_logging
from ouro_obs.logs.processors import (
    BoundValues,
    RedactSecrets,
    add_logger_name,
    add_trace_context,
    safe_text,
    shared_processors,
)

__all__ = [
    "BoundValues",
    "RedactSecrets",
    "add_logger_name",
    "add_trace_context",
    "configure_logging",
    "safe_text",
    "shared_processors",
]
