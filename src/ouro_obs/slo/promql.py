"""PromQL as ouro-obs writes it: quoting, matchers, selectors, durations and functions.

Every query the generator writes (recording rules, alerts, dashboard panels, the demo's
summary) is built from these pieces, so a label value is quoted one way and a number or a
duration is written one way everywhere. The builders return text; multi-line results keep
the indentation of the committed rule files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Literal, NamedTuple

__all__ = [
    "MatchOp",
    "Matcher",
    "aggregate",
    "block",
    "decimal_text",
    "divide",
    "duration",
    "equal",
    "equal_matchers",
    "histogram_quantile",
    "increase",
    "labelled",
    "le_label",
    "le_matcher",
    "le_values",
    "matches",
    "one_of",
    "quote",
    "range_function",
    "rate",
    "regex_escape",
    "selector",
    "sum_of",
    "vector",
]

MatchOp = Literal["=", "!=", "=~", "!~"]


class Matcher(NamedTuple):
    """One label matcher: ``route=~"/a|/b"`` is ``Matcher("route", "=~", "/a|/b")``."""

    label: str
    op: MatchOp
    value: str


# ---------------------------------------------------------------- literals


def quote(value: str) -> str:
    """A PromQL string literal: ``a"b`` -> ``"a\\"b"``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def regex_escape(literal: str) -> str:
    """``literal`` as an RE2 pattern that matches only itself."""
    return "".join(f"\\{char}" if char in _RE2_SPECIAL else char for char in literal)


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation without float noise or exponent: 0.001, 0.0144, 6."""
    return f"{value.normalize():f}"


def duration(seconds: int) -> str:
    """Prometheus duration syntax: ``3d1h5m30s``, ``5m``; ``0s`` for zero."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds}")
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def le_label(boundary: Decimal | float) -> str:
    """The ``le`` value a Prometheus client writes for a bucket: ``0.5``, ``1.0``, ``+Inf``.

    That is Python's shortest float text, as Go would print it: an exponent beyond six
    integer digits (``1.5e+07``).
    """
    value = float(boundary)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    whole, _, fraction = text.partition(".")
    if value <= 0 or len(whole) <= 6 or "e" in text:
        return text
    digits = (whole + fraction).rstrip("0")
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{mantissa}e+0{len(whole) - 1}"


def le_values(boundary: Decimal | float) -> tuple[str, ...]:
    """Every way a client writes the ``le`` of ``boundary``: ``("1.0", "1")``, ``("0.5",)``.

    Python's client writes whole numbers as ``1.0``, Go's client (and Prometheus 3, which
    normalises ``le`` on ingestion) as ``1``; a query on any histogram matches both.
    """
    python = le_label(boundary)
    go = python.removesuffix(".0")
    return (python,) if go == python else (python, go)


# ---------------------------------------------------------------- matchers and selectors


def equal(label: str, value: str) -> Matcher:
    return Matcher(label, "=", value)


def matches(label: str, regex: str) -> Matcher:
    return Matcher(label, "=~", regex)


def one_of(label: str, values: Sequence[str]) -> Matcher | None:
    """``label`` equal to one of ``values`` (literally); ``None`` when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return equal(label, values[0])
    return matches(label, "|".join(regex_escape(value) for value in values))


def le_matcher(boundary: Decimal | float) -> Matcher:
    """The bucket ``le`` of ``boundary`` as any client writes it (see :func:`le_values`)."""
    values = le_values(boundary)
    if len(values) == 1:
        return equal("le", values[0])
    return matches("le", "|".join(regex_escape(value) for value in values))


def equal_matchers(labels: Mapping[str, str]) -> list[Matcher]:
    return [equal(label, value) for label, value in labels.items()]


def selector(matchers: Iterable[Matcher | None]) -> str:
    """``{a="b",c=~"d"}`` from the matchers that are not ``None``."""
    parts = [f"{m.label}{m.op}{quote(m.value)}" for m in matchers if m is not None]
    return "{" + ",".join(parts) + "}"


def labelled(metric: str, labels: Mapping[str, str]) -> str:
    """The series of ``metric`` with exactly these label values: ``up{job="shop"}``."""
    return metric + selector(equal_matchers(labels))


# ---------------------------------------------------------------- functions


def range_function(function: str, series: str, window: str) -> str:
    """``function(series[window])``, e.g. ``rate(...)``, ``increase(...)``."""
    return f"{function}({series}[{window}])"


def rate(series: str, window: str) -> str:
    return range_function("rate", series, window)


def increase(series: str, window: str) -> str:
    return range_function("increase", series, window)


def aggregate(operator: str, expr: str, by: Sequence[str] = ()) -> str:
    """``sum(expr)`` or ``sum by (a, b) (expr)``."""
    if not by:
        return f"{operator}({expr})"
    return f"{operator} by ({', '.join(by)}) ({expr})"


def sum_of(expr: str, by: Sequence[str] = ()) -> str:
    return aggregate("sum", expr, by)


def histogram_quantile(quantile: Decimal, bucket_rate: str, by: Sequence[str] = ()) -> str:
    """The ``quantile`` of the buckets' rate, summed by ``le`` and ``by``."""
    buckets = sum_of(bucket_rate, ("le", *by))
    return f"histogram_quantile({decimal_text(quantile)}, {buckets})"


def vector(value: Decimal | int) -> str:
    return f"vector({decimal_text(Decimal(value))})"


# ---------------------------------------------------------------- layout of long expressions


def block(*lines: str) -> str:
    """The lines in parentheses, one per line, indented by two spaces."""
    return "(\n" + "\n".join(f"  {line}" for line in lines) + "\n)"


def divide(numerator: str, denominator: str) -> str:
    """``numerator / denominator`` with the operator on its own line, as rule files show it."""
    return f"{numerator}\n/\n{denominator}"
