"""The error-budget release gate: what Prometheus says of each SLO, and the verdict (pure).

``ouro-obs budget`` asks Prometheus two instant queries, built here from the naming
conventions: the recorded budget remaining and burn rates of the spec's SLOs, and the
firing page alerts. :func:`slo_budgets` reads the answers into one :class:`SLOBudget`
per SLO (per group of a grouped SLO: one broken route closes the gate);
:func:`gate_exit_code` turns them into the exit status, and
:func:`report_text` / :func:`report_json` into what the command prints. The HTTP
request itself is the command's (:mod:`ouro_obs.slo.budget_command`).

Exit status: ``0`` the gate is open; ``1`` closed, an SLO has spent its error budget
or its page alert fires; ``2`` the spec or the command line is wrong; ``3`` Prometheus
did not answer (unreachable, an HTTP error, not Prometheus' API); ``4`` an SLO has no
recorded budget (the rules are not loaded, or no request was counted): the gate cannot
tell, which is no pass either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ouro_obs.slo import conventions, promql
from ouro_obs.slo.grouping import by_labels
from ouro_obs.slo.promql import decimal_text
from ouro_obs.slo.spec import ServiceSpec, SLOSpec
from ouro_obs.slo.windows import all_windows

__all__ = [
    "EXIT_CLOSED",
    "EXIT_NO_DATA",
    "EXIT_OPEN",
    "EXIT_UNREACHABLE",
    "SLOBudget",
    "Sample",
    "Verdict",
    "firing_pages_query",
    "gate_exit_code",
    "recordings_query",
    "report_json",
    "report_text",
    "slo_budgets",
    "unreachable_json",
]

EXIT_OPEN = 0
EXIT_CLOSED = 1
EXIT_UNREACHABLE = 3
EXIT_NO_DATA = 4

Verdict = Literal["ok", "budget spent", "page firing", "budget spent, page firing", "no data"]
_GATES = {EXIT_OPEN: "open", EXIT_CLOSED: "closed", EXIT_NO_DATA: "no data"}


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant query's vector: its labels and its value."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class SLOBudget:
    """One SLO as Prometheus sees it now; ``None`` or a missing window: nothing recorded."""

    slo: SLOSpec
    #: Share of the period's budget left (1.0 untouched, 0 or below: spent).
    budget_remaining: float | None
    #: Window duration (``5m`` ... ``30d``) -> burn rate, shortest window first.
    burn_rates: Mapping[str, float]
    page_alert: str
    page_firing: bool
    #: The group's labels of a grouped SLO (and ``cluster``); empty for one aggregate SLI.
    group: Mapping[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        spent = self.budget_remaining is not None and self.budget_remaining <= 0
        if spent and self.page_firing:
            return "budget spent, page firing"
        if self.page_firing:
            return "page firing"
        if spent:
            return "budget spent"
        return "no data" if self.budget_remaining is None else "ok"


# ---------------------------------------------------------------- the queries


def _common_labels(spec: ServiceSpec) -> dict[str, str]:
    """The labels every SLO of ``spec`` records under (the service, and whatever else)."""
    label_sets = [conventions.slo_labels(spec, slo).items() for slo in spec.slos]
    shared = set(label_sets[0]).intersection(*label_sets[1:])
    return dict(sorted(shared))


def _record_names(spec: ServiceSpec) -> list[str]:
    windows = sorted({window for slo in spec.slos for window in all_windows(slo.window_days)})
    names = [conventions.burn_rate_record(window) for window in windows]
    return [conventions.BUDGET_REMAINING_RECORD, *names]


def recordings_query(spec: ServiceSpec) -> str:
    """Every SLO's budget remaining and burn-rate recordings, in one selector."""
    matchers = [
        promql.one_of("__name__", _record_names(spec)),
        *promql.equal_matchers(_common_labels(spec)),
    ]
    return promql.selector(matchers)


def firing_pages_query(spec: ServiceSpec) -> str:
    """The page alerts of the spec's SLOs that fire now (Prometheus' ``ALERTS`` series)."""
    pages = [conventions.alert_names(spec, slo).page for slo in spec.slos]
    matchers = [promql.one_of("alertname", pages), promql.equal("alertstate", "firing")]
    return "ALERTS" + promql.selector(matchers)


# ---------------------------------------------------------------- the verdict


def _of_slo(samples: Sequence[Sample], labels: Mapping[str, str]) -> list[Sample]:
    return [s for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]


def _finite(samples: Sequence[Sample], name: str) -> float | None:
    for sample in samples:
        if sample.labels.get("__name__") == name and math.isfinite(sample.value):
            return sample.value
    return None


def _slo_budget(
    spec: ServiceSpec,
    slo: SLOSpec,
    recordings: Sequence[Sample],
    firing: Sequence[Sample],
    group: Mapping[str, str],
) -> SLOBudget:
    own = _of_slo(recordings, {**conventions.slo_labels(spec, slo), **group})
    burn_rates = {}
    for window in all_windows(slo.window_days):
        value = _finite(own, conventions.burn_rate_record(window))
        if value is not None:
            burn_rates[window.duration] = value
    page = conventions.alert_names(spec, slo).page
    return SLOBudget(
        slo=slo,
        budget_remaining=_finite(own, conventions.BUDGET_REMAINING_RECORD),
        burn_rates=burn_rates,
        page_alert=page,
        page_firing=any(
            sample.labels.get("alertname") == page for sample in _of_slo(firing, group)
        ),
        group=group,
    )


def _groups(spec: ServiceSpec, slo: SLOSpec, recordings: Sequence[Sample]) -> list[dict[str, str]]:
    """The label sets of the SLO's groups that have a recording; ``[{}]`` when ungrouped."""
    labels = by_labels(spec, slo)
    if not labels:
        return [{}]
    own = _of_slo(recordings, conventions.slo_labels(spec, slo))
    found = {tuple((label, s.labels[label]) for label in labels if label in s.labels) for s in own}
    # No recording at all: one "no data" line for the SLO, as for an ungrouped one.
    return [dict(group) for group in sorted(found)] or [{}]


def slo_budgets(
    spec: ServiceSpec, recordings: Sequence[Sample], firing: Sequence[Sample]
) -> list[SLOBudget]:
    """One :class:`SLOBudget` per SLO of ``spec``, from the answers to the two queries."""
    return [
        _slo_budget(spec, slo, recordings, firing, group)
        for slo in spec.slos
        for group in _groups(spec, slo, recordings)
    ]


def gate_exit_code(budgets: Sequence[SLOBudget]) -> int:
    """Closed wins over no data: one spent budget is enough to know."""
    verdicts = {budget.verdict for budget in budgets}
    if verdicts - {"ok", "no data"}:
        return EXIT_CLOSED
    return EXIT_NO_DATA if "no data" in verdicts else EXIT_OPEN


# ---------------------------------------------------------------- the report


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def _slo_lines(spec: ServiceSpec, budget: SLOBudget) -> list[str]:
    slo = budget.slo
    remaining = (
        "not recorded" if budget.budget_remaining is None else _percent(budget.budget_remaining)
    )
    rates = ", ".join(f"{window} {rate:.2f}" for window, rate in budget.burn_rates.items())
    firing = "FIRING" if budget.page_firing else "not firing"
    group = ", ".join(f"{label}={value}" for label, value in budget.group.items())
    which = f" ({group})" if group else ""
    return [
        f"{spec.service} {slo.name}{which}: {decimal_text(slo.objective)} % over "
        f"{slo.window_days}d",
        f"  budget left: {remaining}",
        f"  burn rate: {rates or 'not recorded'}",
        f"  page alert {budget.page_alert}: {firing}",
        f"  verdict: {budget.verdict}",
    ]


def report_text(spec: ServiceSpec, budgets: Sequence[SLOBudget]) -> str:
    """Per SLO its budget left, burn rates, page alert and verdict; then the gate."""
    lines = [line for budget in budgets for line in _slo_lines(spec, budget)]
    status = gate_exit_code(budgets)
    lines.append(f"release gate: {_GATES[status]} (exit {status})")
    if status == EXIT_NO_DATA:
        lines.append(
            "  no budget recorded: are the generated rules loaded into this Prometheus, "
            "and does it scrape the service?"
        )
    return "\n".join(lines) + "\n"


def _slo_json(budget: SLOBudget) -> dict[str, Any]:
    return {
        "slo": budget.slo.name,
        **({"group": dict(budget.group)} if budget.group else {}),
        "objective": decimal_text(budget.slo.objective),
        "window": f"{budget.slo.window_days}d",
        "budget_remaining": budget.budget_remaining,
        "burn_rates": dict(budget.burn_rates),
        "page_alert": budget.page_alert,
        "page_firing": budget.page_firing,
        "verdict": budget.verdict,
    }


def report_json(spec: ServiceSpec, prometheus: str, budgets: Sequence[SLOBudget]) -> dict[str, Any]:
    """The same as :func:`report_text`, as a JSON document for machines."""
    status = gate_exit_code(budgets)
    return {
        "service": spec.service,
        "prometheus": prometheus,
        "gate": _GATES[status],
        "exit_code": status,
        "slos": [_slo_json(budget) for budget in budgets],
    }


def unreachable_json(spec: ServiceSpec, prometheus: str, error: str) -> dict[str, Any]:
    """The JSON document when Prometheus did not answer: no verdict, and why."""
    return {
        "service": spec.service,
        "prometheus": prometheus,
        "gate": "unreachable",
        "exit_code": EXIT_UNREACHABLE,
        "error": error,
        "slos": [],
    }
