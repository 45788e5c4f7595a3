"""The SLO-window cost benchmark keeps working: a tiny run fills its table.

The benchmark backfills a real Prometheus and evaluates three rule shapes; this smoke run
uses one SLO, one route, one pod and two days, so it takes seconds. Costs are not asserted
(a tiny TSDB says nothing about scale); the SLIs are: the events ratios agree with the
exact one, and the average of ratios shows the bias the benchmark is about.
"""

from __future__ import annotations

import pytest
from benchmarks.rules_cost import Size, measure, results_table

from tests.support.tools import require_tool

pytestmark = pytest.mark.integration


def test_a_tiny_run_measures_every_shape_and_the_events_ratios_are_exact() -> None:
    require_tool("prometheus")
    require_tool("promtool")
    size = Size(slos=1, routes=1, pods=1, days=2, scrape=60)
    results = measure(size, evaluations=2, compact=False)
    by_name = {result.shape.name: result for result in results}
    assert list(by_name) == ["ouro-obs", "raw rate", "Sloth", "exact"]
    exact = by_name["exact"].sli
    assert 0.009 < exact < 0.011
    # Two days: the window's edges weigh 4 minutes in 2 days; at 30 days it is 15x less.
    assert by_name["ouro-obs"].sli == pytest.approx(exact, rel=0.005)
    assert by_name["raw rate"].sli == pytest.approx(exact, rel=0.001)
    assert by_name["Sloth"].sli > 4 * exact  # an average of ratios weighs quiet hours up
    assert all(result.per_evaluation > 0 for result in results[:-1])
    table = results_table(results, size)
    assert table.count("\n| ") == 5
    assert "Target: ouro-obs at most 10%" in table
