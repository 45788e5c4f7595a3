"""How Argo Rollouts judges the generated AnalysisTemplate's measurements, for the tests.

An evaluator of exactly the condition subset :mod:`ouro_obs.slo.analysis` documents,
which fails loudly on anything outside it, and Argo Rollouts' rules for turning the two
conditions into a measurement's phase and the metrics' phases into the run's:

- a failure condition that holds: Failed; else a success condition that holds:
  Successful; else Inconclusive (both conditions are always given);
- an index past the end of ``result`` is an evaluation error, as in Argo Rollouts
  (``&&`` stops at the first false clause, so the length guard must come first);
- a run with a Failed metric is Failed, else one with an Inconclusive metric is
  Inconclusive, else Successful.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

__all__ = [
    "Phase",
    "UnsupportedConditionError",
    "evaluate_condition",
    "measurement_phase",
    "run_phase",
    "substitute_args",
]

Phase = Literal["Successful", "Failed", "Inconclusive"]

_LENGTH = re.compile(r"len\(result\) == (\d+)")
_COMPARISON = re.compile(r"result\[(\d+)\] (<=|>) (\d+(?:\.\d+)?)")
_ARG = re.compile(r"\{\{args\.([a-z0-9-]+)\}\}")


class UnsupportedConditionError(ValueError):
    """The generator wrote a condition outside the documented subset."""


def _clause(clause: str, result: Sequence[float]) -> bool:
    if match := _LENGTH.fullmatch(clause):
        return len(result) == int(match[1])
    if match := _COMPARISON.fullmatch(clause):
        index, operator, limit = int(match[1]), match[2], float(match[3])
        if index >= len(result):
            raise IndexError(f"{clause}: result has {len(result)} element(s)")
        value = result[index]
        return value <= limit if operator == "<=" else value > limit
    raise UnsupportedConditionError(f"{clause!r} is outside the generated condition subset")


def evaluate_condition(condition: str, result: Sequence[float]) -> bool:
    """``condition`` on the Prometheus provider's ``result`` (a vector's sample values)."""
    clauses = [clause.strip() for clause in condition.split("&&")]
    return all(_clause(clause, result) for clause in clauses)


def measurement_phase(metric: Mapping[str, Any], result: Sequence[float]) -> Phase:
    if evaluate_condition(metric["failureCondition"], result):
        return "Failed"
    if evaluate_condition(metric["successCondition"], result):
        return "Successful"
    return "Inconclusive"


def run_phase(phases: Iterable[Phase]) -> Phase:
    seen = set(phases)
    if "Failed" in seen:
        return "Failed"
    if "Inconclusive" in seen:
        return "Inconclusive"
    return "Successful"


def substitute_args(text: str, args: Mapping[str, str]) -> str:
    """``{{args.NAME}}`` replaced as Argo Rollouts does; an unknown argument is an error."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in args:
            raise KeyError(f"the template uses {{{{args.{match[1]}}}}}, which is not given")
        return args[match[1]]

    return _ARG.sub(value, text)
