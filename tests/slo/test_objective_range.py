"""Every objective the spec accepts generates, in bounded time, tests promtool passes.

Issue 12 items 15 and 16: a 100 % error ratio inside the verdict margin of the fast-burn
threshold (objectives 93.06 to about 93.12) made the onset search loop forever, and an
objective with more digits than a float64 holds was accepted.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from types import FrameType

import pytest

from ouro_obs.slo.conventions import rule_test_path
from ouro_obs.slo.promtool_timing import FAST_BURN, SLOW_BURN, conditions, onset, scenario_timing
from ouro_obs.slo.spec import SpecError, parse_spec
from ouro_obs.slo.spec.validate_slos import MIN_OBJECTIVE, MIN_OBJECTIVE_HINT
from ouro_obs.slo.windows import Severity
from tests.slo.support import generate, promtool
from tests.support.tools import require_tool

#: Every objective with two decimals the spec accepts, plus the tightest ones it accepts.
TWO_DECIMALS = [MIN_OBJECTIVE_HINT + Decimal(n) / 100 for n in range(int((100 - 93.06) * 100))]
NEAR_THE_BOUND = [
    Decimal("93.0556"),
    Decimal("93.05555555555556"),
    Decimal("93.1"),
    Decimal("93.12"),
]
WINDOWS = ("7d", "28d", "30d")


def _spec_text(objective: Decimal, window: str = "30d", kind: str = "availability") -> str:
    sli = (
        "{kind: availability}"
        if kind == "availability"
        else "{kind: latency, threshold_seconds: 0.5}"
    )
    return (
        "apiVersion: ouro-obs/v1\nservice: shop\nrunbook_base_url: https://r.example.com\n"
        f"slos: [{{name: s, objective: {objective}, window: {window}, sli: {sli}}}]\n"
    )


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("window", WINDOWS)
def test_every_accepted_objective_has_a_bounded_onset_for_both_burns(window: str) -> None:
    checked = 0
    with _deadline(60):
        for objective in [*NEAR_THE_BOUND, *TWO_DECIMALS]:
            spec = parse_spec(_spec_text(objective, window))
            slo = spec.slos[0]
            timing = scenario_timing(spec, slo)
            burns: tuple[tuple[Decimal, Severity], ...] = (
                (FAST_BURN, "page"),
                (SLOW_BURN, "ticket"),
            )
            for burn, severity in burns:
                bad_ratio = min(Decimal(1), burn * slo.error_budget)
                found = onset(conditions(slo, severity), slo.error_budget, bad_ratio, timing)
                assert 0 <= found.silent < found.firing
                checked += 1
    assert checked == 2 * (len(NEAR_THE_BOUND) + len(TWO_DECIMALS))


@pytest.mark.integration
def test_generated_tests_at_the_lowest_objectives_pass_promtool(tmp_path: Path) -> None:
    binary = require_tool("promtool")
    spec_path = tmp_path / "slo.yaml"
    spec_path.write_text(
        "apiVersion: ouro-obs/v1\nservice: shop\nrunbook_base_url: https://r.example.com\n"
        "slos:\n"
        "  - {name: issue, objective: 93.06, sli: {kind: availability}}\n"
        "  - {name: tightest, objective: 93.05555555555556, sli: {kind: availability}}\n"
    )
    with _deadline(60):
        generate(spec_path, tmp_path)
    run = promtool(binary, "test", tmp_path / rule_test_path(parse_spec(spec_path.read_text())))
    assert run.returncode == 0, f"{run.command}:\n{run.output}"


def test_the_lowest_objective_is_above_the_bound_the_docs_give() -> None:
    assert Decimal("93.05") < MIN_OBJECTIVE < MIN_OBJECTIVE_HINT == Decimal("93.06")


@pytest.mark.parametrize(
    "objective",
    ["99.99999999999999999999999999", "93.0555555555555555556", "99.123456789012345678"],
)
def test_an_objective_more_precise_than_float64_is_rejected_naming_the_field(
    objective: str,
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(_spec_text(Decimal(objective)))
    message = str(raised.value)
    assert "slos[0].objective" in message
    assert "float64" in message


@pytest.mark.parametrize("objective", ["99.9", "99.95", "99.999999", "93.05555555555556"])
def test_objectives_a_float64_holds_are_still_accepted(objective: str) -> None:
    assert parse_spec(_spec_text(Decimal(objective))).slos[0].objective == Decimal(objective)
