"""Recorders of a finished request, and the one failsafe that keeps their errors in.

A recorder's ``record`` method takes the :class:`~ouro_obs.asgi.record.RequestRecord`: the
metrics (here), the access line (:mod:`ouro_obs.logs.access`) and the SERVER span
(:mod:`ouro_obs.tracing.spans`). Every call the middleware makes into instrumentation goes
through :class:`Failsafe`: an error is counted in
``ouro_obs_instrumentation_errors_total{stage=...}``, logged once per stage, and never
reaches the request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, TypeVarTuple

from ouro_obs.asgi.record import RequestRecord
from ouro_obs.metrics import HttpMetrics
from ouro_obs.metrics.labels import RequestLabelValues

if TYPE_CHECKING:
    from ouro_obs.metrics.otel import OtelHttpMetrics

__all__ = ["Failsafe", "MetricsRecorder", "OtelMetricsRecorder", "Recorder", "RequestMetrics"]

_log = logging.getLogger("ouro_obs")

_Result = TypeVar("_Result")
_Arguments = TypeVarTuple("_Arguments")


class Recorder(Protocol):
    """Records one finished request; ``stage`` names it in the instrumentation error counter."""

    @property
    def stage(self) -> str: ...

    def record(self, record: RequestRecord, /) -> None: ...


class RequestMetrics(Recorder, Protocol):
    """A metrics recorder: counts the request in flight before the app runs, then records it."""

    def started(self, record: RequestRecord, /) -> None: ...


class Failsafe:
    """Where instrumentation errors stop: counted per stage, logged once per stage."""

    __slots__ = ("_count", "_logged_stages")

    def __init__(self, count: Callable[[str], None]) -> None:
        self._count = count
        self._logged_stages: set[str] = set()

    def call(
        self,
        stage: str,
        function: Callable[[*_Arguments], _Result],
        *arguments: *_Arguments,
    ) -> _Result | None:
        """``function(*arguments)``, or None when it raised (then counted under ``stage``)."""
        try:
            return function(*arguments)
        except Exception:
            self.failed(stage)
            return None

    def failed(self, stage: str) -> None:
        """Count the exception being handled under ``stage``; log it the first time."""
        with contextlib.suppress(Exception):  # counting must not fail the request either
            self._count(stage)
            if stage not in self._logged_stages:
                self._logged_stages.add(stage)
                _log.exception("ouro-obs instrumentation error in stage %r (logged once)", stage)


class MetricsRecorder:
    """The RED metrics of a finished request, and the end of its in-flight count.

    The in-flight gauge rises in ``started``, before the app runs.
    """

    __slots__ = ("_adders", "_labels", "_metrics", "_observe")
    stage = "metrics"

    def __init__(self, metrics: HttpMetrics) -> None:
        self._metrics = metrics
        #: The declared request labels' values of a record; None when none are declared.
        self._labels = metrics.request_labels
        self._observe = metrics.observe
        #: The in-flight increment of each method, as :meth:`HttpMetrics.in_progress_adder`
        #: gives it (read per request: a dict, not a call through the metrics).
        self._adders: dict[str, Callable[[float], None]] = {}

    def started(self, record: RequestRecord) -> None:
        """Count the request (its normalized method) in flight."""
        method = record.method
        add = self._adders.get(method)
        if add is None:
            add = self._adders[method] = self._metrics.in_progress_adder(method)
        add(1.0)

    def record(self, record: RequestRecord) -> None:
        span_ids = record.span_ids
        self._observe(
            record.method,
            record.route,
            record.status,
            record.end_time - record.start_time,
            record.request_bytes,
            record.response_bytes,
            span_ids.trace_id if span_ids is not None and span_ids.sampled else None,
            () if self._labels is None else self._labels(record.scope, _headers(record)),
            True,  # ending: positional, so the call is the interpreter's fast one
        )


def _headers(record: RequestRecord) -> list[tuple[bytes, bytes]]:
    start = record.response_start
    return [] if start is None else list(start.get("headers") or ())


class OtelMetricsRecorder:
    """The same signals on OpenTelemetry instruments (``metrics_backend="opentelemetry"``).

    ``error.type`` is set when the request ended in error: the exception's class when the
    app raised, else the status code for a 5xx (the semantic conventions' rule).
    """

    __slots__ = ("_labels", "_metrics")
    stage = "metrics"

    def __init__(self, metrics: OtelHttpMetrics, labels: RequestLabelValues | None) -> None:
        self._metrics = metrics
        self._labels = labels

    def started(self, record: RequestRecord) -> None:
        """Count the request in flight, by method and scheme."""
        self._metrics.started(record.method, record.scope.get("scheme") or "http")

    def record(self, record: RequestRecord) -> None:
        metrics = self._metrics
        scheme: str = record.scope.get("scheme") or "http"
        metrics.ended(record.method, scheme)
        status = record.status
        error = record.error
        if error is not None:
            error_type: str | None = record.error_type
        else:
            error_type = str(status) if status >= 500 else None
        metrics.observe(
            record.method,
            record.route,
            status,
            scheme,
            error_type,
            record.end_time - record.start_time,
            record.request_bytes,
            record.response_bytes,
            () if self._labels is None else self._labels(record.scope, _headers(record)),
        )
