"""Prometheus metrics: the HTTP instruments, the scrape's exposition, multiprocess mode.

- :mod:`~ouro_obs.metrics.families`: the HTTP families on an injected registry;
- :mod:`~ouro_obs.metrics.instruments`: :class:`HttpMetrics`, recording into them, and the
  cap on label sets;
- :mod:`~ouro_obs.metrics.fastpath`: the hot path, and
  :mod:`~ouro_obs.metrics.filecells`, its cells in multiprocess mode's files: the only code
  that touches prometheus_client's private fields;
- :mod:`~ouro_obs.metrics.exposition`: :func:`render_metrics` and the metrics port's server;
- :mod:`~ouro_obs.metrics.multiprocess`: gunicorn hooks and the start-up launcher.

The names and methods of the contract are re-exported from :mod:`ouro_obs.contract`.
"""

from __future__ import annotations

from ouro_obs.contract import OTHER_METHOD, STANDARD_METHODS, MetricNames, normalize_method
from ouro_obs.metrics.exposition import render_metrics
from ouro_obs.metrics.instruments import HttpMetrics

__all__ = [
    "OTHER_METHOD",
    "STANDARD_METHODS",
    "HttpMetrics",
    "MetricNames",
    "normalize_method",
    "render_metrics",
]
