"""The value types settings hold, and the checks of their values.

:class:`ConfigError` for a value the middleware cannot use, :class:`RequestLabel` for a
per-request label, and the checks of label names and route bucket lists, shared by the
settings object and the parsers of environment variables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LABEL_SOURCES",
    "ConfigError",
    "RequestLabel",
    "check_label_name",
    "checked_route_buckets",
    "frozen",
]


class ConfigError(ValueError):
    """A setting has a value the middleware cannot use; the message names it and the fix."""


def frozen(paths: Any) -> frozenset[str]:
    return frozenset(paths)


#: Where a :class:`RequestLabel` reads its value (``kind:key``), besides a callable.
LABEL_SOURCES: tuple[str, ...] = ("header", "path_param", "scope", "state", "response_header")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: Label names ouro-obs writes itself, and Prometheus' own.
_RESERVED_LABELS = frozenset({"method", "route", "status", "le", "quantile", "metric", "stage"})


def check_label_name(name: str, where: str) -> None:
    if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
        raise ConfigError(
            f"{where}: {name!r} is not a usable label name; use letters, digits and '_' "
            "(not starting with a digit or '__')"
        )
    if name in _RESERVED_LABELS:
        raise ConfigError(f"{where}: {name!r} is a label ouro-obs writes itself; pick another")


@dataclass(frozen=True, slots=True)
class RequestLabel:
    """A metric label whose value each request supplies, with a bound on its values.

    ``source`` is ``"header:x-tenant"``, ``"path_param:tenant"``, ``"scope:key"``,
    ``"state:key"`` (what the app put on ``request.state``), ``"response_header:x-cache"``,
    or a callable taking the finished request's ASGI scope and returning the value (None:
    missing). A value outside ``allowed``, or a new value once ``max_values`` distinct values
    were seen, is recorded as the overflow label and counted. One of the two is required.
    """

    name: str
    source: str | Callable[[Any], object]
    allowed: frozenset[str] | None = None
    max_values: int | None = None
    #: The value when the request has none (no such header, parameter, ...).
    missing: str = ""

    def __post_init__(self) -> None:
        where = f"request label {self.name!r}"
        check_label_name(self.name, "request_labels")
        if isinstance(self.source, str):
            kind, _, key = self.source.partition(":")
            if kind not in LABEL_SOURCES or not key:
                raise ConfigError(
                    f"{where}: source {self.source!r} must be kind:key with kind one of "
                    f"{', '.join(LABEL_SOURCES)} (e.g. header:x-tenant), or a callable"
                )
        elif not callable(self.source):
            raise ConfigError(f"{where}: source must be a 'kind:key' string or a callable")
        if self.allowed is None and self.max_values is None:
            raise ConfigError(
                f"{where}: give allowed=... (the values to keep) or max_values=N (a cap); "
                "an unbounded label can create a series per value"
            )
        if self.max_values is not None and self.max_values < 1:
            raise ConfigError(f"{where}: max_values={self.max_values} must be at least 1")
        if self.allowed is not None:
            object.__setattr__(self, "allowed", frozen(self.allowed))


#: What a route template looks like: the path format Starlette and FastAPI label routes with.
_ROUTE_TEMPLATE = re.compile(r"/[^\s{}]*(?:\{[A-Za-z_][A-Za-z0-9_]*\}[^\s{}]*)*")
_BUCKETS_EXAMPLE = "e.g. (0.5, 1, 5, 30, 60, 120)"


def checked_route_buckets(
    items: Mapping[str, Sequence[float]] | Sequence[tuple[str, Sequence[float]]],
) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """``route_duration_buckets`` checked, as sorted (template, buckets) pairs."""
    pairs = items.items() if isinstance(items, Mapping) else items
    checked: dict[str, tuple[float, ...]] = {}
    for template, buckets in pairs:
        where = f"route_duration_buckets[{template!r}]"
        if not isinstance(template, str) or not _ROUTE_TEMPLATE.fullmatch(template):
            hint = "write it as the app declares it, e.g. '/export/{report_id}'"
            if ":" in str(template):
                hint = "write it without the converter, e.g. '/items/{item_id}'"
            raise ConfigError(f"{where}: not a route template; {hint}")
        if template in checked:
            raise ConfigError(f"{where}: the route is given twice; keep one bucket list")
        checked[template] = _checked_buckets(where, buckets)
    return tuple(sorted(checked.items()))


def _checked_buckets(where: str, buckets: object) -> tuple[float, ...]:
    if isinstance(buckets, str | bytes) or not isinstance(buckets, Sequence) or not buckets:
        raise ConfigError(
            f"{where}: give a non-empty list of bounds in seconds, {_BUCKETS_EXAMPLE}"
        )
    for bound in buckets:
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise ConfigError(f"{where}: {bound!r} is not a number of seconds; {_BUCKETS_EXAMPLE}")
        if not math.isfinite(bound) or bound <= 0:
            raise ConfigError(
                f"{where}: {bound!r} is not a positive, finite number of seconds "
                f"(+Inf is always added); {_BUCKETS_EXAMPLE}"
            )
    bounds = tuple(float(bound) for bound in buckets)
    if list(bounds) != sorted(set(bounds)):
        raise ConfigError(f"{where}: the bounds must be strictly increasing, {_BUCKETS_EXAMPLE}")
    return bounds
