"""The demo's summary: what Prometheus, Alertmanager, the collector and the logs saw.

:func:`results` reads everything back into one JSON-ready dictionary (``--summary-json``
writes it); :func:`print_summary` shows it as tables.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from ouro_obs.contract import ROUTE_LABEL
from ouro_obs.demo.alerting import delivery_results, print_delivery
from ouro_obs.demo.console import percent, rate, relative, seconds, table, times
from ouro_obs.demo.options import DEMO_WINDOW_DAYS
from ouro_obs.demo.queries import by_label, scalar, scrape_routes
from ouro_obs.demo.session import DemoRun
from ouro_obs.slo.conventions import BUDGET_REMAINING_RECORD, burn_rate_record, slo_labels
from ouro_obs.slo.windows import all_windows

__all__ = ["SUMMARY_RATE_WINDOW", "print_summary", "results"]

#: Rate window of the summary's per-route table.
SUMMARY_RATE_WINDOW = "1m"
ACCESS_LOGGER = '"logger":"ouro_obs.access"'


def results(run: DemoRun) -> dict[str, Any]:
    """Everything the summary shows, read back from Prometheus, the collector and the logs."""
    assert run.generated is not None
    spans = _spans(run)
    summary: dict[str, Any] = {
        "traffic_seconds": round(run.traffic_seconds, 1),
        "prometheus": run.prometheus.url if run.prometheus else None,
        "routes": _route_results(run),
        "slos": _slo_results(run) if run.prometheus else [],
        "alerts": _alert_results(run),
        **delivery_results(run),
        "spans_received": spans[0] if spans else None,
        "server_spans_received": spans[1] if spans else None,
        "collector": run.collector.endpoint if run.collector else None,
        "collector_problem": run.collector_problem or None,
        "dashboards": [str(path) for path in run.generated.dashboards],
        "rule_file": str(run.generated.rule_file),
        "rule_test_file": str(run.generated.rule_test_file),
        "alertmanager_file": str(run.generated.alertmanager_file),
        "manifests": [str(path) for path in run.generated.manifests],
        "logs": str(run.layout.logs),
        **_access_log(run),
    }
    page_alerts = [a for a in summary["alerts"] if a["urgency"] == "page" and a["slo"]]
    summary["page_alert_fired"] = any(a["first_firing_seconds"] is not None for a in page_alerts)
    return summary


def _route_results(run: DemoRun) -> list[dict[str, Any]]:
    queries = run.queries
    if run.prometheus is None:
        return scrape_routes(f"{run.shop_url}/metrics", queries.names, max(run.traffic_seconds, 1))
    window = SUMMARY_RATE_WINDOW
    rates = by_label(run.prometheus.query(queries.requests(window, ROUTE_LABEL)), ROUTE_LABEL)
    errors = by_label(run.prometheus.query(queries.error_ratio(window, ROUTE_LABEL)), ROUTE_LABEL)
    p99s = by_label(run.prometheus.query(queries.p99(window, ROUTE_LABEL)), ROUTE_LABEL)
    return [
        {
            "route": route,
            "request_rate": value,
            "error_ratio": errors.get(route),
            "p99_seconds": p99s.get(route),
        }
        for route, value in sorted(rates.items(), key=lambda item: -item[1])
    ]


def _slo_results(run: DemoRun) -> list[dict[str, Any]]:
    assert run.prometheus is not None
    slo_results = []
    for slo in run.spec.slos:
        labels = slo_labels(run.spec, slo)
        burn_rates = {
            window.duration: scalar(run.prometheus.query(run.queries.series(record, labels)))
            for window in all_windows(slo.window_days)
            for record in [burn_rate_record(window)]
        }
        remaining = run.prometheus.query(run.queries.series(BUDGET_REMAINING_RECORD, labels))
        slo_results.append(
            {
                "name": slo.name,
                "kind": slo.sli.kind,
                "objective_percent": float(slo.objective),
                "window_days": slo.window_days,
                "burn_rates": burn_rates,
                "error_budget_remaining": scalar(remaining),
            }
        )
    return slo_results


def _alert_results(run: DemoRun) -> list[dict[str, Any]]:
    if run.tracker is None:
        return []
    return [
        {
            "name": alert.name,
            "urgency": alert.urgency,
            "severity": alert.severity,
            "slo": alert.slo,
            "state": alert.state,
            "first_pending_seconds": alert.first_pending,
            "first_firing_seconds": alert.first_firing,
        }
        for alert in sorted(run.tracker.alerts.values(), key=lambda a: a.name)
    ]


def _spans(run: DemoRun) -> tuple[int, int] | None:
    if run.collector is None:
        return None
    # Spans leave the service every half second and rotel batches for 0.1 s: wait until
    # the count stops growing, so the summary counts the last requests' spans too.
    deadline = time.monotonic() + 5.0
    counts = run.collector.span_counts(run.spec.service)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        latest = run.collector.span_counts(run.spec.service)
        if latest == counts:
            break
        counts = latest
    return counts


def _access_log(run: DemoRun) -> dict[str, Any]:
    """How many access lines the service wrote, and its last 5xx line with that trace's spans."""
    path = run.layout.logs / "shop.log"
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    access = [line for line in lines if ACCESS_LOGGER in line]
    last_error: dict[str, Any] | None = None
    for line in reversed(access):
        if '"status":5' not in line:
            continue
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            last_error = {
                key: record.get(key) for key in ("method", "route", "status", "request_id")
            }
            trace_id = str(record.get("trace_id") or "")
            last_error["trace_id"] = trace_id or None
            spans = run.collector.spans_in_trace(trace_id) if run.collector and trace_id else 0
            last_error["spans_in_trace"] = spans
            break
    return {"access_log_lines": len(access), "last_error_logged": last_error}


# --------------------------------------------------------------------------- as text


def print_summary(run: DemoRun) -> None:
    """The summary as tables on the run's console."""
    console, summary = run.console, run.summary
    console.line()
    console.line(
        f"ouro-obs demo: {summary['traffic_seconds']:.0f}s of traffic against {run.shop_url} "
        f"({run.options.workers} workers; SLO windows compressed to {DEMO_WINDOW_DAYS}d)"
    )
    _print_routes(run)
    _print_slos(run)
    _print_alerts(run)
    print_delivery(run)
    _print_traces(run)
    _print_logs(run)
    _print_files(run)


def _print_routes(run: DemoRun) -> None:
    source = (
        f"PromQL over Prometheus, last {SUMMARY_RATE_WINDOW}"
        if run.prometheus
        else "the service's /metrics, whole run"
    )
    run.console.line(f"\nRoutes ({source})")
    rows = [
        [r["route"], rate(r["request_rate"]), percent(r["error_ratio"]), seconds(r["p99_seconds"])]
        for r in run.summary["routes"]
    ]
    for line in table(["route", "req/s", "errors", "p99"], rows):
        run.console.line(line)


def _print_slos(run: DemoRun) -> None:
    console, slos = run.console, run.summary["slos"]
    if not slos:
        console.line("\nSLOs: no Prometheus, so no recording rules were evaluated")
        return
    windows = list(slos[0]["burn_rates"])
    console.line("\nSLOs (recording rules slo:burn_rate:ratio_rate<window>, error budget left)")
    rows = [
        [
            f"{slo['name']} ({slo['objective_percent']:g}%)",
            *(times(slo["burn_rates"].get(window)) for window in windows),
            percent(slo["error_budget_remaining"]),
        ]
        for slo in slos
    ]
    for line in table(["slo", *(f"burn {w}" for w in windows), "budget left"], rows):
        console.line(line)
    console.line(
        f"  windows longer than the {run.summary['traffic_seconds']:.0f}s of traffic all hold the "
        f"same data, so they agree; budget left = 1 - burn over {DEMO_WINDOW_DAYS}d (below 0: spent)"
    )


def _print_alerts(run: DemoRun) -> None:
    console, alerts = run.console, run.summary["alerts"]
    if run.tracker is None:
        console.line("\nAlerts: no Prometheus, so no alerts were evaluated")
        return
    console.line("\nAlerts (ALERTS; times from the start of the traffic)")
    if not alerts:
        console.line("  none went pending or firing")
    rows = [
        [
            alert["name"],
            alert["urgency"],
            alert["state"],
            "-"
            if alert["first_firing_seconds"] is None
            else f"{alert['first_firing_seconds']:.0f}s",
        ]
        for alert in alerts
    ]
    if rows:
        for line in table(["alert", "urgency", "now", "first firing"], rows):
            console.line(line)
    fired = "fired" if run.summary["page_alert_fired"] else "did NOT fire"
    console.line(f"  the SLO page alert {fired}")


def _print_traces(run: DemoRun) -> None:
    summary = run.summary
    spans, server_spans = summary["spans_received"], summary["server_spans_received"]
    if spans is None or run.collector is None:
        run.console.line(f"\nTraces: no collector ({run.collector_problem})")
        return
    run.console.line(
        f"\nTraces: {spans} spans of service {run.spec.service}, {server_spans} of them request "
        f"(SERVER) spans, received by the {run.collector.kind} at {summary['collector']}"
    )


def _print_logs(run: DemoRun) -> None:
    console, summary = run.console, run.summary
    console.line(f"\nLogs: {summary['access_log_lines']} JSON access lines from the shop")
    error = summary["last_error_logged"]
    if error is None:
        return
    console.line(
        f"  the last {error['status']}: {error['method']} {error['route']} "
        f"request_id={error['request_id']} trace_id={error['trace_id']}"
    )
    if error["trace_id"]:
        console.line(
            f"  the collector received {error['spans_in_trace']} spans of that trace: "
            "the log line and the trace point at each other"
        )


def _print_files(run: DemoRun) -> None:
    console, summary = run.console, run.summary
    console.line("\nDashboards for Grafana (Dashboards > New > Import > Upload JSON file):")
    for path in summary["dashboards"] or ["(none generated)"]:
        console.line(f"  {relative(path)}")
    console.line(f"Rules: {relative(summary['rule_file'])} (promtool tests beside it)")
    console.line(f"Alertmanager: {relative(summary['alertmanager_file'])}")
    root = relative(str(run.layout.root))
    logs = [f"{root}/logs/shop.log", f"{root}/logs/locust.log", f"{root}/collector/"]
    if run.prometheus is not None:
        logs.insert(2, f"{root}/prometheus/prometheus.log")
    if run.alertmanager is not None:
        logs.insert(-1, f"{root}/alertmanager/alertmanager.log")
    console.line(f"Logs:  {', '.join(logs)}")
