"""The metrics hot path: with :mod:`~ouro_obs.metrics.filecells`, the only code touching
prometheus_client's private fields.

prometheus_client guards every increment with a lock, re-checks the child on every call
and scans the bucket list linearly. Per request that is most of the cost of recording, so
:class:`~ouro_obs.metrics.instruments.HttpMetrics` records through this module instead.
What it relies on, all of it checked by :func:`internals_problem` (and by
``tests/metrics/test_prometheus_client_internals.py``, which fails naming the attribute and
the installed version when a release changes it):

- a counter or gauge child keeps its value cell in ``_value``;
- a histogram child keeps ``_sum``, one cell per bucket in the list ``_buckets`` and the
  bucket bounds, ending in +Inf, in the list ``_upper_bounds``;
- an in-process cell is a ``prometheus_client.values.MutexValue`` holding its float in
  ``_value`` (a multiprocess cell is another class, backed by a file);
- a family (a metric with labels) keeps its children in the dict ``_metrics`` under the
  lock ``_lock``, and a child built with ``_labelvalues=`` exposes its own bucket bounds:
  :func:`histogram_child` relies on that for routes with buckets of their own.

Two speeds, each used only where it records exactly what the public methods would:

- :func:`fast_inc` / :func:`fast_observe`: the cells' own ``inc`` (which takes the cell's
  lock), without the child's per-call checks; a bisection finds the bucket the public
  loop would. Any other shape falls back to the public methods.
- :class:`LockFreeCells`: adds to the floats without their locks. The one condition:
  **every cell is an in-process MutexValue, the interpreter has a GIL, and the caller is
  the owner thread** (the first thread that built a series: the event loop's). A single
  writer under the GIL loses no update; readers (a scrape) take the lock and see a value
  that is at most one request old. Anything else takes the locked path. An exemplar is
  the cell's ``_exemplar`` (a ``prometheus_client.samples.Exemplar``, which the cell's
  ``set_exemplar`` assigns under its lock): one reference assigned, which a reader sees
  whole or not yet.
- :class:`~ouro_obs.metrics.filecells.FileCells` (multiprocess mode,
  ``PROMETHEUS_MULTIPROC_DIR``): the same single writer, for cells backed by the worker's
  files; in :mod:`ouro_obs.metrics.filecells`, the other module that touches them.
"""

from __future__ import annotations

import importlib.metadata
import math
import sys
from bisect import bisect_left
from collections.abc import Callable
from threading import get_ident
from time import time
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.samples import Exemplar
from prometheus_client.values import MutexValue

from ouro_obs.metrics.filecells import FileCells, file_adder, file_problem, value_cells

__all__ = [
    "LOCK_FREE_SUPPORTED",
    "FileCells",
    "LockFreeCells",
    "fast_inc",
    "fast_observe",
    "histogram_child",
    "internals_problem",
    "lock_free_adder",
    "lock_free_cells",
]

#: The exemplar's label: the trace of the request it shows.
_TRACE_ID: Final = "trace_id"
#: Lock-free increments need the GIL (a free-threaded build could lose updates).
LOCK_FREE_SUPPORTED = bool(getattr(sys, "_is_gil_enabled", lambda: True)())


def _histogram_problem(child: Any) -> str | None:
    """What a histogram child lacks of the shape this module relies on; None: all there."""
    buckets = getattr(child, "_buckets", None)
    bounds = getattr(child, "_upper_bounds", None)
    if getattr(child, "_sum", None) is None:
        return "Histogram child has no '_sum' value cell"
    if not isinstance(buckets, list):
        return "Histogram child's '_buckets' is not a list of value cells"
    if not isinstance(bounds, list) or not bounds or bounds[-1] != math.inf:
        return "Histogram child's '_upper_bounds' is not a list ending in +Inf"
    if len(buckets) != len(bounds):
        return "Histogram child's '_buckets' and '_upper_bounds' differ in length"
    return None


def _lock_free_problem(*children: Any) -> str | None:
    """Why :class:`LockFreeCells` may not serve ``children``; None: it may."""
    if not LOCK_FREE_SUPPORTED:
        return "this interpreter runs without the GIL"
    for child in children:
        cells = value_cells(child)
        if not cells:
            return f"{type(child).__name__} child has neither '_value' nor '_sum'"
        for cell in cells:
            if type(cell) is not MutexValue:
                return f"value cell is {type(cell).__name__}, not an in-process MutexValue"
            if not isinstance(getattr(cell, "_value", None), float):
                return "MutexValue keeps no float in '_value'"
            if not hasattr(cell, "_exemplar"):
                return "MutexValue keeps no '_exemplar'"
    return None


def fast_inc(child: Any) -> Callable[[float], None]:
    """``child.inc`` (counter or gauge) without its per-call checks; locked like it."""
    value = getattr(child, "_value", None)
    inc: Callable[[float], None] = child.inc if value is None else value.inc
    return inc


def fast_observe(child: Any) -> Callable[[float], None]:
    """``child.observe`` without its per-call checks and linear bucket scan; locked like it."""
    if _histogram_problem(child) is not None:  # a prometheus_client of another shape
        public: Callable[[float], None] = child.observe
        return public
    total, buckets, bounds = child._sum, child._buckets, child._upper_bounds

    def observe(amount: float) -> None:
        total.inc(amount)
        buckets[bisect_left(bounds, amount)].inc(1)

    return observe


class LockFreeCells:
    """The raw cells of one (method, route, status) label set, added to without locks.

    With ``in_flight`` (the in-flight gauge child of the label set's method), a recorded
    request also leaves the in-flight count.
    """

    __slots__ = (
        "count",
        "duration_bounds",
        "duration_buckets",
        "duration_first_bound",
        "duration_sum",
        "in_flight",
        "owner_thread",
        "request_buckets",
        "request_sum",
        "response_buckets",
        "response_sum",
        "size_bounds",
        "size_first_bound",
    )

    def __init__(
        self,
        owner_thread: int,
        count: Any,
        duration: Any,
        request_size: Any,
        response_size: Any,
        in_flight: Any = None,
    ) -> None:
        self.owner_thread = owner_thread
        self.count = count._value
        self.in_flight = None if in_flight is None else in_flight._value
        self.duration_sum, self.duration_buckets = duration._sum, duration._buckets
        self.request_sum, self.request_buckets = request_size._sum, request_size._buckets
        self.response_sum, self.response_buckets = response_size._sum, response_size._buckets
        self.duration_bounds = duration._upper_bounds
        self.duration_first_bound = self.duration_bounds[0]
        self.size_bounds = request_size._upper_bounds
        #: Values up to these fall in the first bucket (most request bodies, which are
        #: empty, and many fast requests): found with one comparison, not a bisection.
        self.size_first_bound = self.size_bounds[0]

    def record(
        self,
        duration_seconds: float,
        request_bytes: int,
        response_bytes: int,
        ending: bool = False,
    ) -> bool:
        """Add one request; False (nothing added) when called off the owner thread.

        ``ending``: the request also leaves the in-flight count, when the cells hold it.
        (The cells hold floats: adding float constants keeps the interpreter's float
        addition specialised.)
        """
        if get_ident() != self.owner_thread:
            return False
        if ending:
            in_flight = self.in_flight
            if in_flight is not None:
                in_flight._value -= 1.0
        self.count._value += 1.0
        self.duration_sum._value += duration_seconds
        if duration_seconds <= self.duration_first_bound:
            self.duration_buckets[0]._value += 1.0
        else:
            self.duration_buckets[bisect_left(self.duration_bounds, duration_seconds)]._value += 1.0
        first = self.size_first_bound
        self.request_sum._value += request_bytes
        index = 0 if request_bytes <= first else bisect_left(self.size_bounds, request_bytes)
        self.request_buckets[index]._value += 1.0
        self.response_sum._value += response_bytes
        index = 0 if response_bytes <= first else bisect_left(self.size_bounds, response_bytes)
        self.response_buckets[index]._value += 1.0
        return True

    def mark(self, trace_id: str, duration_seconds: float) -> None:
        """Set the exemplars of the request :meth:`record` just added (on the owner thread).

        What ``inc(1, exemplar)`` and ``observe(duration_seconds, exemplar)`` set, for
        ``{"trace_id": trace_id}``: on the count, and on the duration bucket the request
        fell in. A trace id is 32 hex digits, well inside the exemplar's 128-character
        limit that prometheus_client checks.
        """
        labels = {_TRACE_ID: trace_id}
        now = time()
        self.count._exemplar = Exemplar(labels, 1, now)
        if duration_seconds <= self.duration_first_bound:
            bucket = self.duration_buckets[0]
        else:
            bucket = self.duration_buckets[bisect_left(self.duration_bounds, duration_seconds)]
        bucket._exemplar = Exemplar(labels, duration_seconds, now)


def lock_free_cells(
    owner_thread: int,
    count: Any,
    duration: Any,
    request_size: Any,
    response_size: Any,
    in_flight: Any = None,
) -> LockFreeCells | FileCells | None:
    """The lock-free cells of one label set's children, or None when the condition fails.

    In-process cells give :class:`LockFreeCells`, a worker's file cells :class:`FileCells`.

    ``request_size`` and ``response_size`` must share their buckets.
    """
    histograms = (duration, request_size, response_size)
    children = (count, *histograms) if in_flight is None else (count, *histograms, in_flight)
    if any(_histogram_problem(child) for child in histograms):
        return None
    if _lock_free_problem(*children) is None:
        return LockFreeCells(owner_thread, count, *histograms, in_flight)
    if LOCK_FREE_SUPPORTED and file_problem(*children) is None:
        return FileCells(owner_thread, count, *histograms, in_flight)
    return None


def lock_free_adder(owner_thread: int, child: Any) -> Callable[[float], None]:
    """``child.inc`` (a counter or gauge) without its lock on ``owner_thread``, locked elsewhere.

    The same condition as :class:`LockFreeCells` (or, for a file cell, :class:`FileCells`);
    when it fails, :func:`fast_inc`.
    """
    if _lock_free_problem(child) is not None:
        if LOCK_FREE_SUPPORTED and file_problem(child) is None:
            return file_adder(owner_thread, child)
        return fast_inc(child)
    cell = child._value
    locked: Callable[[float], None] = cell.inc

    def add(amount: float) -> None:
        if get_ident() == owner_thread:
            cell._value += amount
        else:
            locked(amount)

    return add


def histogram_child(family: Histogram, label_values: tuple[str, ...], buckets: Any) -> Histogram:
    """``family.labels(*label_values)``, except that the child observes into ``buckets``.

    prometheus_client gives every child of a family the family's buckets; the exposition
    (and, in multiprocess mode, the files, which carry ``le`` as a label) writes each
    child's own, so the one metric name serves several bucket lists, one per label set.
    A child already there is returned as it is.
    """
    children: dict[Any, Any] = family._metrics
    with family._lock:
        child: Histogram | None = children.get(label_values)
        if child is None:
            child = Histogram(
                family._name,
                family._documentation,
                family._labelnames,
                registry=None,
                _labelvalues=label_values,
                buckets=buckets,
            )
            children[label_values] = child
        return child


def _own_buckets_problem(registry: CollectorRegistry) -> str | None:
    """What keeps :func:`histogram_child` from exposing a child's own buckets; None: nothing."""
    family = Histogram("probe_own_seconds", "probe", ("label",), registry=registry)
    for name in ("_lock", "_metrics", "_name", "_documentation", "_labelnames"):
        if not hasattr(family, name):
            return f"Histogram family has no {name!r}"
    if not isinstance(family._metrics, dict):
        return "Histogram family's '_metrics' is not a dict of children"
    histogram_child(family, ("x",), (1.0, 60.0)).observe(30.0)
    exposed = {
        sample.labels.get("le"): sample.value
        for metric in registry.collect()
        if metric.name == "probe_own_seconds"
        for sample in metric.samples
        if sample.name == "probe_own_seconds_bucket"
    }
    if exposed != {"1.0": 0.0, "60.0": 1.0, "+Inf": 1.0}:
        return f"a child with buckets of its own is exposed as {exposed}, not le=1.0, 60.0, +Inf"
    return None


def internals_problem() -> str | None:
    """What of the relied-on internals the installed prometheus_client lacks; None: nothing.

    Builds a counter and a histogram on a private registry and checks their children.
    Call it in a single-process interpreter (in multiprocess mode the cells are files).
    """
    registry = CollectorRegistry()
    counter = Counter("probe", "probe", ("label",), registry=registry).labels("x")
    histogram = Histogram("probe_seconds", "probe", ("label",), registry=registry).labels("x")
    problem = (
        _histogram_problem(histogram)
        or _lock_free_problem(counter, histogram)
        or _own_buckets_problem(registry)
    )
    if problem is None:
        return None
    version = importlib.metadata.version("prometheus_client")
    return (
        f"prometheus_client {version}: {problem}; ouro_obs/metrics/fastpath.py relies on it "
        "(adapt that module, or pin the prometheus_client version it was written for)"
    )
