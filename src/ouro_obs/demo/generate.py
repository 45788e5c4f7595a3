"""The demo's rules, tests, dashboards and manifests: the generator's own, on a short period.

Burn-rate alerts watch windows of an hour and more for a 30-day SLO; no demo can wait that
long. The demo therefore generates from the shop's spec with every SLO window set to one
day. Windows scale with the SLO period (:mod:`ouro_obs.slo.windows`), so the fast page
watches 2m and 1m instead of 1h and 5m, with the same 14.4x burn factor: the alert logic
is the generator's, only the period is shorter.

The Alertmanager configuration is the generator's too, from the same spec with only its
``alertmanager`` changed: both receivers send to the demo's webhook on loopback, and the
grouping timers are seconds (:data:`~ouro_obs.demo.options.DEMO_GROUP_WAIT`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from ouro_obs.demo.options import (
    DEMO_GROUP_INTERVAL,
    DEMO_GROUP_WAIT,
    DEMO_WINDOW_DAYS,
    DemoError,
)
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.conventions import alertmanager_config_path, rule_file_path, rule_test_path
from ouro_obs.slo.render import write_files
from ouro_obs.slo.spec import ServiceSpec, SpecError, load_spec

__all__ = [
    "Generated",
    "compressed_spec",
    "generate",
    "load",
    "routed_to_webhook",
    "spec_windows",
]


@dataclass(frozen=True, slots=True)
class Generated:
    """The generated files the demo uses, and the (compressed) spec they came from."""

    spec: ServiceSpec
    rule_file: Path
    rule_test_file: Path
    alertmanager_file: Path
    dashboards: tuple[Path, ...]
    manifests: tuple[Path, ...]
    prometheus_rule_file: Path


def compressed_spec(spec: ServiceSpec, window_days: int = DEMO_WINDOW_DAYS) -> ServiceSpec:
    """``spec`` with every SLO's window set to ``window_days`` (alert windows scale with it)."""
    slos = tuple(dataclasses.replace(slo, window_days=window_days) for slo in spec.slos)
    return dataclasses.replace(spec, slos=slos)


def routed_to_webhook(spec: ServiceSpec, webhook_url: str) -> ServiceSpec:
    """``spec`` with pages sent to ``<webhook_url>/page``, tickets to ``/ticket``, timers short.

    Receiver names and repeat intervals stay the spec's: a page is delivered once.
    """
    routing = spec.alertmanager
    return dataclasses.replace(
        spec,
        alertmanager=dataclasses.replace(
            routing,
            page=dataclasses.replace(routing.page, webhook_url=f"{webhook_url}/page"),
            ticket=dataclasses.replace(routing.ticket, webhook_url=f"{webhook_url}/ticket"),
            group_wait=DEMO_GROUP_WAIT,
            group_interval=DEMO_GROUP_INTERVAL,
        ),
    )


def spec_windows(spec: ServiceSpec) -> str:
    """The SLO windows ``spec`` asks for, e.g. ``30d``."""
    return ", ".join(sorted({f"{slo.window_days}d" for slo in spec.slos}))


def load(spec_path: Path) -> ServiceSpec:
    try:
        return load_spec(spec_path)
    except SpecError as error:
        raise DemoError(str(error)) from None


def generate(spec: ServiceSpec, output: Path, prometheus_dir: Path) -> Generated:
    """Write every generated file of ``spec`` under ``output``, and the rules Prometheus loads."""
    write_files(output, generated_files(spec))
    rule_file = output / rule_file_path(spec)
    return Generated(
        spec=spec,
        rule_file=rule_file,
        rule_test_file=output / rule_test_path(spec),
        alertmanager_file=output / alertmanager_config_path(spec),
        dashboards=tuple(sorted((output / "dashboards").glob("*.json"))),
        manifests=tuple(sorted((output / "deploy").rglob("*.yaml"))),
        prometheus_rule_file=_prometheus_rule_copy(rule_file, prometheus_dir),
    )


def _prometheus_rule_copy(rule_file: Path, directory: Path) -> Path:
    """The rules Prometheus loads: the generated ones, every group evaluated each second.

    The generator evaluates the SLO-window group every 5 minutes, which suits a 30-day
    window; in a demo of a minute and a half it would never run.
    """
    document = yaml.safe_load(rule_file.read_text(encoding="utf-8"))
    for group in document.get("groups", []):
        group.pop("interval", None)
    target = directory / rule_file.name
    target.write_text(yaml.safe_dump(document, sort_keys=False, width=1_000_000))
    return target
