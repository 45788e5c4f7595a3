"""The PromQL vocabulary every generated query is written with."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.utils import floatToGoString

from ouro_obs.contract import DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS
from ouro_obs.slo import promql


def test_label_values_are_quoted_with_backslashes_quotes_and_newlines_escaped() -> None:
    assert promql.quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_a_selector_skips_absent_matchers_and_keeps_their_order() -> None:
    matchers = [promql.equal("job", "shop"), None, promql.matches("status", "5..")]
    assert promql.selector(matchers) == '{job="shop",status=~"5.."}'
    assert promql.labelled("up", {"job": "shop", "instance": "a:1"}) == (
        'up{job="shop",instance="a:1"}'
    )


def test_one_of_matches_literal_values_exactly() -> None:
    assert promql.one_of("route", []) is None
    assert promql.one_of("route", ["/a"]) == promql.Matcher("route", "=", "/a")
    assert promql.one_of("route", ["/items/{id}", "/a.b"]) == promql.Matcher(
        "route", "=~", "/items/\\{id\\}|/a\\.b"
    )


def test_aggregations_and_quantiles_group_by_the_given_labels() -> None:
    rate = promql.rate('http_requests_total{job="shop"}', "5m")
    assert rate == 'rate(http_requests_total{job="shop"}[5m])'
    assert promql.sum_of(rate) == f"sum({rate})"
    assert promql.sum_of(rate, ["route"]) == f"sum by (route) ({rate})"
    buckets = promql.rate("d_bucket", "1m")
    assert promql.histogram_quantile(Decimal("0.99"), buckets, ["route"]) == (
        f"histogram_quantile(0.99, sum by (le, route) ({buckets}))"
    )
    assert promql.increase("x", "1h") == "increase(x[1h])"


def test_long_expressions_are_laid_out_as_the_rule_files_show_them() -> None:
    ratio = promql.divide(promql.block("errors", "or vector(0)"), "total")
    assert ratio == "(\n  errors\n  or vector(0)\n)\n/\ntotal"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (30, "30s"), (90, "1m30s"), (3600, "1h"), (266400, "3d2h"), (86461, "1d1m1s")],
)
def test_durations_use_prometheus_syntax(seconds: int, text: str) -> None:
    assert promql.duration(seconds) == text


def test_numbers_are_exact_decimals() -> None:
    assert promql.decimal_text(Decimal("14.4") * Decimal("0.001")) == "0.0144"
    assert promql.vector(Decimal("99.9") / 100) == "vector(0.999)"


@pytest.mark.parametrize(
    "boundary",
    [*DEFAULT_DURATION_BUCKETS, *DEFAULT_SIZE_BUCKETS, 1234567.0, 1.5e7, 1e16, float("inf")],
)
def test_le_labels_are_written_as_the_prometheus_client_writes_them(boundary: float) -> None:
    assert promql.le_label(boundary) == floatToGoString(boundary)  # type: ignore[no-untyped-call]
