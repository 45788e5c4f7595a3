"""The OpenTelemetry-metrics comparison keeps working: each variant records what it serves.

``--instructions-variants otelmetrics`` counts these under callgrind; here the driver
callgrind runs serves each one without valgrind, and refuses a variant that recorded fewer
requests than it served (so a silent meter cannot pass for a cheap one).
"""

from __future__ import annotations

import pytest
from benchmarks.apps import OTEL_METRICS_VARIANTS, recorded
from benchmarks.inprocess import drive
from benchmarks.overhead import main


@pytest.mark.parametrize("name", [variant.name for variant in OTEL_METRICS_VARIANTS])
def test_the_callgrind_driver_serves_each_otel_metrics_variant(name: str) -> None:
    assert main(["--drive", name, "--requests", "10", "--warmup", "2"]) == 0


@pytest.mark.parametrize("name", ["ouro-obs otel metrics", "otel-asgi metrics"])
async def test_each_meter_counts_every_request_in_its_own_registry(name: str) -> None:
    (variant,) = [v for v in OTEL_METRICS_VARIANTS if v.name == name]
    app = variant.build()
    await drive(app, 7)
    assert recorded(app) == {"requests counted": 7}
