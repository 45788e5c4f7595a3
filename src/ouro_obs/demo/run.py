"""The demo's run: generate, start everything, drive traffic, summarise, stop everything.

It generates rules, dashboards and manifests from the shop's spec (windows compressed, see
:mod:`ouro_obs.demo.generate`), starts an OTLP collector, the example shop (uvicorn,
several workers, multiprocess metrics) and a real Prometheus loaded with the generated
rules, sending its alerts to a real Alertmanager running the generated routes (receivers
pointed at a webhook on loopback, :mod:`ouro_obs.demo.alerting`), drives traffic with
Locust (an error burst and slow requests included), shows progress, and ends with a
summary read back from Prometheus and Alertmanager (:mod:`ouro_obs.demo.summary`).
The committed outputs under ``alerts/`` and ``dashboards/`` are not touched.

Every process it starts runs in its own process group and is stopped on exit, on an
error, on Ctrl-C (SIGINT) and on SIGTERM. It never installs anything: a missing
Prometheus or Alertmanager is named with the package that provides it, and the rest runs
without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.error
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from ouro_obs.demo.alerting import (
    find_alertmanager_binary,
    routing_note,
    start_alertmanager,
    start_webhook,
    wait_for_page_delivery,
)
from ouro_obs.demo.console import Console, percent, rate, seconds
from ouro_obs.demo.generate import (
    compressed_spec,
    generate,
    load,
    routed_to_webhook,
    spec_windows,
)
from ouro_obs.demo.lifecycle import (
    LOOPBACK,
    ProcessStartError,
    free_port,
    group_members,
    still_running,
)
from ouro_obs.demo.options import DEMO_WINDOW_DAYS, SLOW_REQUEST_SECONDS, DemoError, DemoOptions
from ouro_obs.demo.processes import (
    PrometheusServer,
    find_prometheus,
    locust_process,
    shop_directory,
    shop_process,
)
from ouro_obs.demo.queries import AlertTracker, scalar
from ouro_obs.demo.session import DemoRun, Layout, TraceSink
from ouro_obs.demo.signals import DemoInterrupted, SignalGuard
from ouro_obs.demo.summary import print_summary, results
from ouro_obs.slo.windows import alert_windows

__all__ = ["STEPS", "SUMMARY_FORMAT_VERSION", "find_prometheus_binary", "run_demo"]

STEPS = 7
SUMMARY_FORMAT_VERSION = 2
PROGRESS_EVERY_SECONDS = 5.0
ALERT_POLL_SECONDS = 1.0
#: Rate window of the progress lines: short, so that the burst shows at once.
PROGRESS_RATE_WINDOW = "15s"
#: Locust gets this long past --duration to finish before it is stopped.
TRAFFIC_GRACE_SECONDS = 30.0


def run_demo(options: DemoOptions, stream: TextIO | None = None) -> int:
    """Run the demo; returns the exit status (0, 1 on an error, 128+signal when stopped)."""
    console = Console(stream)
    guard = SignalGuard()
    layout = Layout.under(options.workdir.resolve())
    status = 0
    guard.install()
    try:
        with contextlib.ExitStack() as stack:
            run = DemoRun(options, layout, console, guard, stack)
            try:
                _run_steps(run)
            except DemoError as error:
                console.line(f"ouro-obs demo: error: {error}")
                run.summary["error"] = str(error)
                status = 1
            except DemoInterrupted as interrupted:
                console.line(f"\n{interrupted}: stopping everything the demo started")
                run.summary["interrupted"] = interrupted.args[0]
                # With --keep-running, Ctrl-C after the summary is the normal way out.
                status = 0 if run.summary_printed else 128 + interrupted.signum
            finally:
                guard.shield()
                console.line(
                    "stopping: Locust, Prometheus, Alertmanager, the shop and the collector"
                )
        _finish(run)
    except DemoInterrupted as interrupted:  # only if a signal beat guard.shield()
        status = 128 + interrupted.signum
    finally:
        guard.restore()
    return status


def _run_steps(run: DemoRun) -> None:
    options, console = run.options, run.console
    run.layout.prepare()
    _generate(run)
    shop_port = _port(options.port, "the shop", "--port")
    prometheus_binary = find_prometheus_binary(console)
    alertmanager_binary = find_alertmanager_binary(console) if prometheus_binary else None
    prometheus_port = (
        _port(options.prometheus_port, "Prometheus", "--prometheus-port")
        if prometheus_binary
        else 0
    )
    alertmanager_port = (
        _port(options.alertmanager_port, "Alertmanager", "--alertmanager-port")
        if alertmanager_binary
        else 0
    )
    _start_collector(run)
    _start_shop(run, shop_port)
    if alertmanager_binary is not None:
        start_alertmanager(run, alertmanager_binary, alertmanager_port, (4, STEPS))
    else:
        console.step(4, STEPS, "Alertmanager: skipped (not installed, or no Prometheus)")
    if prometheus_binary is not None:
        _start_prometheus(run, prometheus_binary, prometheus_port)
    else:
        console.step(5, STEPS, "Prometheus: skipped (not installed)")
    _drive_traffic(run)
    console.step(7, STEPS, "reading the results")
    try:
        run.summary.update(results(run))
    except (OSError, RuntimeError) as error:
        raise DemoError(f"reading the results failed: {error}") from None
    print_summary(run)
    run.summary_printed = True
    if options.keep_running:
        _keep_running(run)


def _generate(run: DemoRun) -> None:
    """Step 1: the generator's files from the shop's spec, compressed and routed for the demo."""
    console, layout = run.console, run.layout
    spec_path = _shop_spec()
    console.step(1, STEPS, f"generating rules, dashboards and manifests from {spec_path}")
    spec = load(spec_path)
    webhook = start_webhook(run)
    demo_spec = routed_to_webhook(compressed_spec(spec), webhook.url)
    run.generated = generate(demo_spec, layout.generated, layout.prometheus)
    fast_page = alert_windows(DEMO_WINDOW_DAYS)[0]
    console.note(
        f"SLO windows compressed to {DEMO_WINDOW_DAYS}d for the demo (the spec says "
        f"{spec_windows(spec)}): the fast page watches {fast_page.long_window} and "
        f"{fast_page.short_window} instead of 1h and 5m, at the same {fast_page.burn_factor}x"
    )
    console.note(routing_note(spec, webhook))
    console.note(f"written to {layout.generated}")


def _shop_spec() -> Path:
    try:
        return shop_directory() / "slo.yaml"
    except ProcessStartError as error:
        raise DemoError(str(error)) from None


def _port(requested: int, what: str, flag: str) -> int:
    if requested == 0:
        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, requested))
        except OSError:
            raise DemoError(
                f"port {requested} for {what} is in use; pass {flag} N, or {flag} 0 for any free port"
            ) from None
    return requested


def find_prometheus_binary(console: Console) -> str | None:
    """The prometheus binary; when it is missing, say which package provides it."""
    found = find_prometheus()
    if found is not None:
        return found[0]
    console.note(
        "Prometheus is not installed: install it to see rules, alerts and PromQL "
        "(Debian/Ubuntu: sudo apt-get install prometheus, which brings promtool; elsewhere "
        "put prometheus and promtool on PATH). Running the rest without it."
    )
    return None


def _start_collector(run: DemoRun) -> None:
    port = _port(run.options.collector_port, "the OTLP collector", "--collector-port")
    collector = TraceSink(port, run.layout.collector)
    run.console.step(2, STEPS, f"starting an OTLP/HTTP collector on {collector.endpoint}")
    with run.guard.deferred():
        run.stack.callback(collector.stop)
        try:
            collector.start()
        except OSError as error:
            run.collector_problem = str(error)
            run.console.note(f"no collector ({error}): running without traces")
            return
    run.console.note(collector.kind)
    run.collector = collector
    for pid in collector.pids:
        run.remember("collector", pid)


def _shop_environment(run: DemoRun) -> dict[str, str]:
    environment = {
        "PROMETHEUS_MULTIPROC_DIR": str(run.layout.multiproc),
        "OTEL_SERVICE_NAME": run.spec.service,
        "OURO_OBS_ENVIRONMENT": "demo",
        # Spans leave the service within a second, so the summary counts them all.
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }
    if run.collector is not None:
        environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = run.collector.endpoint
        environment["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        environment["OTEL_TRACES_EXPORTER"] = "otlp"
    else:
        environment["OTEL_TRACES_EXPORTER"] = "none"
    return environment


def _start_shop(run: DemoRun, port: int) -> None:
    options = run.options
    run.shop_url = f"http://{LOOPBACK}:{port}"
    run.console.step(
        3,
        STEPS,
        f"starting the shop: uvicorn, {options.workers} workers, multiprocess metrics "
        f"(PROMETHEUS_MULTIPROC_DIR={run.layout.multiproc}), {run.shop_url}",
    )
    shop = shop_process(
        port,
        workers=options.workers,
        env=_shop_environment(run),
        log_path=run.layout.logs / "shop.log",
        ready_path="/health/ready",
        ready_timeout=60.0,
    )
    run.start("shop", shop)
    # Workers appear after the supervisor answers; wait for them so their PIDs are known.
    deadline = time.monotonic() + 10.0
    while len(group_members(shop.pid)) < options.workers + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    run.remember("shop", shop.pid)


def _start_prometheus(run: DemoRun, binary: str, port: int) -> None:
    assert run.generated is not None
    prometheus = PrometheusServer(
        targets={run.spec.effective_selector.get("job", run.spec.service): [run.shop_url[7:]]},
        rule_files=[run.generated.prometheus_rule_file],
        workdir=run.layout.prometheus,
        port=port,
        binary=binary,
        alertmanagers=[run.alertmanager.url] if run.alertmanager else [],
    )
    sends_to = f", alerts to {run.alertmanager.url}" if run.alertmanager else ""
    run.console.step(
        5,
        STEPS,
        f"starting Prometheus on {prometheus.url} (scrape and rule evaluation every second, "
        f"rules from {run.generated.rule_file.name}{sends_to})",
    )
    run.prometheus = run.start("prometheus", prometheus)
    run.tracker = AlertTracker(run.spec.service)


def _locust_options(options: DemoOptions) -> list[str]:
    """The locustfile's own flags: slow requests throughout, errors only in the burst."""
    return [
        "--error-rate", "0",
        "--slow-rate", f"{options.slow_rate:g}",
        "--slow-seconds", f"{SLOW_REQUEST_SECONDS:g}",
        "--burst-at", str(options.burst_at),
        "--burst-error-rate", f"{options.error_rate:g}",
    ]  # fmt: skip


def _drive_traffic(run: DemoRun) -> None:
    options, console = run.options, run.console
    console.step(
        6,
        STEPS,
        f"traffic: Locust, {options.users} users for {options.duration}s, "
        f"{options.slow_rate:.0%} of item/order requests slowed to {SLOW_REQUEST_SECONDS} s; "
        f"from {options.burst_at}s on, an error burst: {options.error_rate:.0%} of them fail",
    )
    locust = locust_process(
        run.shop_url,
        options.users,
        options.duration,
        run.layout.locust / "shop",
        _locust_options(options),
        log_path=run.layout.logs / "locust.log",
    )
    run.start("locust", locust)
    assert locust.process is not None
    started = run.traffic_started = time.monotonic()
    next_progress = started + PROGRESS_EVERY_SECONDS
    next_alert_poll = started
    deadline = started + options.duration + TRAFFIC_GRACE_SECONDS
    while locust.process.poll() is None:
        now = time.monotonic()
        if now > deadline:
            console.note("Locust did not stop on time; stopping it")
            locust.stop()
            break
        if now >= next_alert_poll:
            _poll_alerts(run, now - started)
            next_alert_poll = now + ALERT_POLL_SECONDS
        if now >= next_progress:
            run.remember("locust", locust.pid)
            console.line(_progress_line(run, now - started))
            next_progress += PROGRESS_EVERY_SECONDS
        time.sleep(0.2)
    run.traffic_seconds = time.monotonic() - started
    if locust.process.returncode not in (0, None, -signal.SIGTERM, -signal.SIGKILL):
        raise DemoError(
            f"Locust exited with {locust.process.returncode}; see {run.layout.logs / 'locust.log'}"
        )
    if run.prometheus is not None and run.tracker is not None:
        # One more scrape and evaluation, so the last seconds of traffic count.
        time.sleep(2.0)
        run.tracker.poll(run.prometheus, time.monotonic() - started)
        wait_for_page_delivery(run)


def _poll_alerts(run: DemoRun, elapsed: float) -> None:
    if run.prometheus is not None and run.tracker is not None:
        with contextlib.suppress(OSError, RuntimeError, urllib.error.URLError):
            run.tracker.poll(run.prometheus, elapsed)


def _progress_line(run: DemoRun, elapsed: float) -> str:
    phase = "burst " if elapsed >= run.options.burst_at else "steady"
    head = f"  {elapsed:4.0f}s  {phase}"
    if run.prometheus is None or run.tracker is None:
        return f"{head}  (no Prometheus: figures in the summary)"
    queries = run.queries
    try:
        request_rate = scalar(run.prometheus.query(queries.requests(PROGRESS_RATE_WINDOW)))
        errors = scalar(run.prometheus.query(queries.error_ratio(PROGRESS_RATE_WINDOW)))
        p99 = scalar(run.prometheus.query(queries.p99(PROGRESS_RATE_WINDOW)))
    except (OSError, RuntimeError, urllib.error.URLError) as error:
        return f"{head}  (Prometheus did not answer: {error})"
    return (
        f"{head}  {rate(request_rate):>6} req/s  errors {percent(errors):>6}  "
        f"p99 {seconds(p99):>7}  alerts: {run.tracker.line()}"
    )


def _keep_running(run: DemoRun) -> None:
    run.console.line(
        f"\nStill running: shop {run.shop_url}, Prometheus "
        f"{run.prometheus.url if run.prometheus else '(none)'}, Alertmanager "
        f"{run.alertmanager.url if run.alertmanager else '(none)'}. Ctrl-C stops everything."
    )
    while True:
        time.sleep(1.0)


def _finish(run: DemoRun) -> None:
    """After the clean-up: check that nothing is left, then write the JSON summary."""
    started = [pid for pids in run.pids.values() for pid in pids]
    left = still_running(started)
    deadline = time.monotonic() + 5.0
    # Processes killed a moment ago may take a few milliseconds more to disappear.
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = still_running(started)
    if left:
        run.console.line(f"warning: processes still running: {left}")
    else:
        run.console.line(f"stopped {len(started)} processes; none left running")
    summary = {
        "version": SUMMARY_FORMAT_VERSION,
        "window_days": DEMO_WINDOW_DAYS,
        "workdir": str(run.layout.root),
        **run.summary,
        "pids": run.pids,
        "left_running": left,
    }
    if run.options.summary_json is not None:
        _write_json(run.options.summary_json, summary)


def _write_json(path: Path, document: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n")
    os.replace(temporary, path)
