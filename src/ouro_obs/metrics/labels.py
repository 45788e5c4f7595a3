"""Per-request label values, each bounded by its allow-list or its cap on distinct values.

:class:`RequestLabelValues` turns a finished request (its ASGI scope and the headers of its
response start) into the values of the declared :class:`~ouro_obs.config.RequestLabel`
labels, in declaration order. A value that is not allowed, or that would be one more than
``max_values``, becomes the overflow label and is counted per label name; an extractor that
raises gives the label's missing value and is counted as an instrumentation error, so a
label never fails the request nor loses its metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ouro_obs.config import RequestLabel

__all__ = ["Headers", "RequestLabelValues"]

#: ASGI headers: (lower-case name, value) byte pairs.
Headers = Sequence[tuple[bytes, bytes]]
_Extract = Callable[[Any, Headers], object]


def _header_value(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _mapping_value(holder: object, key: str) -> object:
    return holder.get(key) if isinstance(holder, Mapping) else None


def _extractor(source: str | Callable[[Any], object]) -> _Extract:
    """``extract(scope, response_headers)`` for a declared source."""
    if not isinstance(source, str):
        return lambda scope, _headers: source(scope)
    kind, _, key = source.partition(":")
    if kind == "header":
        name = key.strip().lower().encode("latin-1")
        return lambda scope, _headers: _header_value(scope.get("headers", ()), name)
    if kind == "response_header":
        name = key.strip().lower().encode("latin-1")
        return lambda _scope, headers: _header_value(headers, name)
    if kind == "path_param":
        return lambda scope, _headers: _mapping_value(scope.get("path_params"), key)
    if kind == "state":
        return lambda scope, _headers: _mapping_value(scope.get("state"), key)
    return lambda scope, _headers: scope.get(key)  # "scope"


class _BoundedLabel:
    """One label's extractor and the values it has let through."""

    __slots__ = ("_allowed", "_extract", "_lock", "_max_values", "_seen", "missing", "name")

    def __init__(self, label: RequestLabel) -> None:
        self.name = label.name
        self.missing = label.missing
        self._extract = _extractor(label.source)
        self._allowed = label.allowed
        self._max_values = label.max_values
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def value(self, scope: Any, headers: Headers) -> str | None:
        """The bounded value; None when it must be replaced by the overflow label."""
        raw = self._extract(scope, headers)
        value = self.missing if raw is None else raw if isinstance(raw, str) else str(raw)
        if self._allowed is not None:
            return value if value in self._allowed or value == self.missing else None
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= (self._max_values or 0):
                return None
            self._seen.add(value)
        return value


class RequestLabelValues:
    """``values(scope, response_headers)``: the request labels' values, in declared order."""

    __slots__ = ("_count_error", "_count_overflow", "_labels", "_overflow_label", "names")

    def __init__(
        self,
        labels: Sequence[RequestLabel],
        *,
        overflow_label: str,
        count_overflow: Callable[[str], None],
        count_error: Callable[[str], None],
    ) -> None:
        self._labels = tuple(_BoundedLabel(label) for label in labels)
        self.names = tuple(label.name for label in labels)
        self._overflow_label = overflow_label
        self._count_overflow = count_overflow
        self._count_error = count_error

    def __call__(self, scope: Any, response_headers: Headers) -> tuple[str, ...]:
        values: list[str] = []
        for label in self._labels:
            try:
                value = label.value(scope, response_headers)
            except Exception:
                self._count_error("labels")
                value = label.missing
            if value is None:
                self._count_overflow(label.name)
                value = self._overflow_label
            values.append(value)
        return tuple(values)
