"""``ouro-obs demo``: the whole loop on one machine, started and stopped in one command.

It generates rules, dashboards and manifests from the example spec, starts an OTLP
collector, the example shop (uvicorn, several workers, multiprocess metrics) and a real
Prometheus loaded with the generated rules, drives traffic with Locust (an error burst
and slow requests included), shows progress, and ends with a summary read back from
Prometheus: per-route rate, error ratio and p99, each SLO's burn rates and error budget,
the alerts that went pending or firing, and the spans the collector received.

Burn-rate alerts watch windows of an hour and more for a 30-day SLO; no demo can wait
that long. The demo therefore generates its rules from the example spec with every SLO
window set to one day. Windows scale with the SLO period (``ouro_obs.slo.windows``), so
the fast page watches 2m and 1m instead of 1h and 5m, with the same 14.4x burn factor:
the alert logic is the generator's own, only the period is shorter. The committed
outputs under ``alerts/`` and ``dashboards/`` are not touched.

Every process it starts runs in its own process group and is stopped on exit, on an
error, on Ctrl-C (SIGINT) and on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml
from prometheus_client.parser import text_string_to_metric_families

from ouro_obs.metrics import MetricNames
from ouro_obs.otlp_receiver import OTLPReceiver, ReceivedSpan
from ouro_obs.processes import (
    LOOPBACK,
    ManagedProcess,
    OTLPCollector,
    ProcessStartError,
    PrometheusServer,
    find_prometheus,
    free_port,
    http_get,
)
from ouro_obs.slo.commands import generated_files, rule_file_path, rule_test_path
from ouro_obs.slo.render import write_files
from ouro_obs.slo.spec import ServiceSpec, SpecError, load_spec
from ouro_obs.slo.windows import alert_windows, all_windows

__all__ = [
    "DEMO_WINDOW_DAYS",
    "DemoError",
    "DemoInterrupted",
    "DemoOptions",
    "compressed_spec",
    "register",
    "run_demo",
]

#: Every SLO window in the demo, so that the page alert's windows are minutes, not hours.
DEMO_WINDOW_DAYS = 1
#: The shop's latency SLO threshold is 0.5 s; slow requests must be slower than that.
SLOW_REQUEST_SECONDS = 0.6
PROGRESS_EVERY_SECONDS = 5.0
ALERT_POLL_SECONDS = 1.0
#: Rate window of the summary's per-route table.
SUMMARY_RATE_WINDOW = "1m"
#: Rate window of the progress lines: short, so that the burst shows at once.
PROGRESS_RATE_WINDOW = "15s"
#: Locust gets this long past --duration to finish before it is stopped.
TRAFFIC_GRACE_SECONDS = 30.0
SUMMARY_FORMAT_VERSION = 1


class DemoError(RuntimeError):
    """The demo cannot run as asked; the message says why and what to do."""


class DemoInterrupted(BaseException):
    """SIGINT or SIGTERM arrived; raised so that every started process is stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``ouro-obs demo`` was asked to do; ports of 0 mean any free port."""

    duration: int = 90
    error_rate: float = 0.2
    slow_rate: float = 0.03
    users: int = 10
    workers: int = 2
    port: int = 8000
    prometheus_port: int = 9090
    collector_port: int = 0
    install: bool = True
    workdir: Path = Path(".demo")
    examples_dir: Path | None = None
    summary_json: Path | None = None
    keep_running: bool = False

    def __post_init__(self) -> None:
        if self.duration < 20:
            raise DemoError(
                f"--duration {self.duration}: use at least 20 seconds, so that the error "
                "burst has time to burn the budget (90 is a good default)"
            )
        if not 0.0 <= self.error_rate <= 1.0:
            raise DemoError(f"--error-rate {self.error_rate}: use a share from 0 to 1, e.g. 0.2")
        if not 0.0 <= self.slow_rate <= 1.0:
            raise DemoError(f"--slow-rate {self.slow_rate}: use a share from 0 to 1, e.g. 0.03")
        if self.users < 1 or self.workers < 1:
            raise DemoError("--users and --workers must be at least 1")
        for name in ("port", "prometheus_port", "collector_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise DemoError(f"--{name.replace('_', '-')} {value} is not a TCP port (0-65535)")

    @property
    def burst_at(self) -> int:
        """The error burst starts a third of the way in and lasts to the end."""
        return self.duration // 3


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``ouro-obs`` command line."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole loop locally: service, Prometheus, rules, traces, load",
        description=(
            "Generate rules and dashboards from the example spec, start the example "
            "service (multiprocess), an OTLP collector and a real Prometheus, drive traffic "
            "with Locust including an error burst, and print what Prometheus saw. "
            f"SLO windows are compressed to {DEMO_WINDOW_DAYS}d so that alerts fire in minutes."
        ),
    )
    defaults = DemoOptions()
    parser.add_argument("--duration", type=int, default=defaults.duration, metavar="SECONDS",
                        help="seconds of traffic (default %(default)s)")  # fmt: skip
    parser.add_argument("--error-rate", type=float, default=defaults.error_rate, metavar="SHARE",
                        help="share of failing requests during the error burst, on the routes "
                        "that accept ?fail=true (default %(default)s)")  # fmt: skip
    parser.add_argument("--slow-rate", type=float, default=defaults.slow_rate, metavar="SHARE",
                        help=f"share of item and order requests slowed to {SLOW_REQUEST_SECONDS} s "
                        "(default %(default)s)")  # fmt: skip
    parser.add_argument("--users", type=int, default=defaults.users,
                        help="Locust users (default %(default)s)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="uvicorn workers (default %(default)s)")  # fmt: skip
    parser.add_argument("--port", type=int, default=defaults.port,
                        help="the shop's port, 0 for any free one (default %(default)s)")  # fmt: skip
    parser.add_argument("--prometheus-port", type=int, default=defaults.prometheus_port,
                        help="Prometheus's port, 0 for any free one (default %(default)s)")  # fmt: skip
    parser.add_argument("--collector-port", type=int, default=defaults.collector_port,
                        help="OTLP/HTTP collector's port (default: any free one)")  # fmt: skip
    parser.add_argument("--no-install", dest="install", action="store_false",
                        help="never apt-get install Prometheus when it is missing")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=defaults.workdir,
                        help="where generated files, logs and data go (default %(default)s)")  # fmt: skip
    parser.add_argument("--examples-dir", type=Path, default=None,
                        help="the examples/ directory holding shop/ (default: found)")  # fmt: skip
    parser.add_argument("--summary-json", type=Path, default=None, metavar="FILE",
                        help="also write the summary as JSON to FILE")  # fmt: skip
    parser.add_argument("--keep-running", action="store_true",
                        help="after the summary, keep everything up until Ctrl-C")  # fmt: skip
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        options = DemoOptions(
            duration=args.duration,
            error_rate=args.error_rate,
            slow_rate=args.slow_rate,
            users=args.users,
            workers=args.workers,
            port=args.port,
            prometheus_port=args.prometheus_port,
            collector_port=args.collector_port,
            install=args.install,
            workdir=args.workdir,
            examples_dir=args.examples_dir,
            summary_json=args.summary_json,
            keep_running=args.keep_running,
        )
    except DemoError as error:
        print(f"ouro-obs demo: error: {error}", file=sys.stderr)
        return 2
    return run_demo(options)


# --------------------------------------------------------------------------- signals


class _SignalGuard:
    """Turns SIGINT and SIGTERM into :class:`DemoInterrupted`, except while a process starts.

    A process that is half started (spawned, not yet registered for stopping) would be
    left behind if the exception arrived then, so inside :meth:`deferred` the signal is
    only remembered and raised right after.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._deferring = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        first = self.received is None
        self.received = signum
        if first and not self._deferring:
            raise DemoInterrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if self.received is not None and not self._deferring:
            raise DemoInterrupted(self.received)

    def shield(self) -> None:
        """From now on signals are only noted: the clean-up must run to its end."""
        self._deferring += 1


# --------------------------------------------------------------------------- output


class _Console:
    """Progress and summary lines on stdout, flushed at once (the demo runs for minutes)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, number: int, total: int, text: str) -> None:
        self.line(f"[{number}/{total}] {text}")

    def note(self, text: str) -> None:
        self.line(f"      {text}")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def render(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [first.ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [render(headers), *(render(row) for row in rows)]


def _percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class _Layout:
    """The demo's working directory; every run starts from empty subdirectories."""

    root: Path

    @property
    def generated(self) -> Path:
        return self.root / "generated"

    @property
    def prometheus(self) -> Path:
        return self.root / "prometheus"

    @property
    def multiproc(self) -> Path:
        return self.root / "multiproc"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def locust(self) -> Path:
        return self.root / "locust"

    def prepare(self) -> None:
        for directory in (
            self.generated,
            self.prometheus,
            self.multiproc,
            self.logs,
            self.locust,
            self.root / "collector",
        ):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)


def find_examples(explicit: Path | None) -> Path:
    """The ``examples/`` directory holding ``shop/app.py``, ``slo.yaml`` and ``locustfile.py``."""
    candidates = (
        [explicit]
        if explicit is not None
        else [Path.cwd() / "examples", Path(__file__).resolve().parents[2] / "examples"]
    )
    needed = ("app.py", "slo.yaml", "locustfile.py")
    for candidate in candidates:
        if all((candidate / "shop" / name).is_file() for name in needed):
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise DemoError(
        f"no examples/shop with {', '.join(needed)} found (looked in {tried}); run the demo "
        "from the ouro-obs checkout (./scripts/demo.sh) or pass --examples-dir"
    )


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True, slots=True)
class _Generated:
    spec: ServiceSpec
    rule_file: Path
    rule_test_file: Path
    dashboards: tuple[Path, ...]
    manifests: tuple[Path, ...]
    prometheus_rule_file: Path


def compressed_spec(spec: ServiceSpec, window_days: int = DEMO_WINDOW_DAYS) -> ServiceSpec:
    """``spec`` with every SLO's window set to ``window_days`` (alert windows scale with it)."""
    slos = tuple(dataclasses.replace(slo, window_days=window_days) for slo in spec.slos)
    return dataclasses.replace(spec, slos=slos)


def _generate(spec_path: Path, layout: _Layout) -> _Generated:
    try:
        spec = compressed_spec(load_spec(spec_path))
    except SpecError as error:
        raise DemoError(str(error)) from None
    write_files(layout.generated, generated_files(spec))
    rule_file = layout.generated / rule_file_path(spec)
    dashboards = tuple(sorted((layout.generated / "dashboards").glob("*.json")))
    manifests = tuple(sorted((layout.generated / "deploy").rglob("*.yaml")))
    return _Generated(
        spec=spec,
        rule_file=rule_file,
        rule_test_file=layout.generated / rule_test_path(spec),
        dashboards=dashboards,
        manifests=manifests,
        prometheus_rule_file=_prometheus_rule_copy(rule_file, layout.prometheus),
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


# --------------------------------------------------------------------------- processes


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


def _group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (uvicorn's workers, locust's children)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which may itself hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return sorted(members)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _ensure_prometheus(install: bool, console: _Console) -> str | None:
    """The prometheus binary, installed with apt-get when allowed and possible."""
    found = find_prometheus()
    if found is not None:
        return found[0]
    can_install = install and os.geteuid() == 0 and shutil.which("apt-get") is not None
    if can_install:
        console.note("Prometheus is missing: apt-get install -y prometheus")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
        ):
            subprocess.run(command, env=environment, capture_output=True, check=False)
            found = find_prometheus()
            if found is not None:
                return found[0]
    how = "it could not be installed" if can_install else "--no-install, or not root"
    console.note(
        f"Prometheus is not installed ({how}): install it (Debian/Ubuntu: "
        "sudo apt-get install prometheus) to see rules, alerts and PromQL. "
        "Running the rest without it."
    )
    return None


class _Collector:
    """The OTLP/HTTP endpoint the service exports traces to; counts the spans that arrived.

    A real collector (rotel, from the ``rotel`` package) forwarding to an in-process
    receiver that counts; without rotel, the in-process receiver alone.
    """

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.kind = ""
        self.pids: list[int] = []
        self._collector: OTLPCollector | None = None
        self._receiver: OTLPReceiver | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._collector = OTLPCollector(port=self.port, workdir=self.workdir)
        try:
            self._collector.start()
        except ProcessStartError as error:
            self._collector.stop()
            self._collector = None
            self._receiver = OTLPReceiver(port=self.port).start()
            self.kind = f"in-process OTLP receiver (no rotel collector: {_first_line(error)})"
            return
        self.kind = "rotel collector"
        self.pids.append(self._collector.pid)

    def span_counts(self, service: str) -> tuple[int, int]:
        """Spans of ``service`` received so far: all of them, and the SERVER (request) ones."""
        spans: list[ReceivedSpan] = []
        if self._collector is not None:
            spans = self._collector.spans
        elif self._receiver is not None:
            spans = self._receiver.spans
        mine = [span for span in spans if span.service == service]
        return len(mine), sum(1 for span in mine if span.kind == "SPAN_KIND_SERVER")

    def spans_in_trace(self, trace_id: str) -> int:
        source = self._collector or self._receiver
        return 0 if source is None else sum(1 for s in source.spans if s.trace_id == trace_id)

    def stop(self) -> None:
        if self._collector is not None:
            self._collector.stop()
        if self._receiver is not None:
            self._receiver.stop()


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


# --------------------------------------------------------------------------- Prometheus reads


def _selector(matchers: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{name}="{value}"' for name, value in matchers.items()) + "}"


def _scalar(result: Sequence[Mapping[str, Any]]) -> float | None:
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def _by_label(result: Sequence[Mapping[str, Any]], label: str) -> dict[str, float]:
    values = {}
    for sample in result:
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[sample["metric"].get(label, "")] = value
    return values


@dataclass(frozen=True, slots=True)
class _Queries:
    """The PromQL the demo reads, for one service's metric names and selector."""

    names: MetricNames
    selector: str

    def requests(self, window: str, by: str = "", status: str = "") -> str:
        selector = self.selector
        if status:
            selector = selector[:-1] + ("," if len(selector) > 2 else "") + f'status=~"{status}"}}'
        grouping = f" by ({by})" if by else ""
        return f"sum{grouping} (rate({self.names.requests_total}{selector}[{window}]))"

    def error_ratio(self, window: str, by: str = "") -> str:
        errors = self.requests(window, by, "5..")
        total = self.requests(window, by)
        on = f" on ({by})" if by else ""
        return f"({errors} or{on} {total} * 0) / {total}"

    def p99(self, window: str, by: str = "") -> str:
        grouping = ", ".join(filter(None, [by, "le"]))
        bucket = f"{self.names.request_duration}_bucket{self.selector}"
        return f"histogram_quantile(0.99, sum by ({grouping}) (rate({bucket}[{window}])))"


@dataclass
class _AlertState:
    name: str
    severity: str
    slo: str
    state: str = "inactive"
    first_pending: float | None = None
    first_firing: float | None = None


@dataclass
class _AlertTracker:
    """Remembers, per alert, the first time it went pending and firing during the run."""

    service: str
    alerts: dict[str, _AlertState] = field(default_factory=dict)

    def poll(self, prometheus: PrometheusServer, elapsed: float) -> None:
        result = prometheus.query(f'ALERTS{{service="{self.service}"}}')
        current: dict[str, str] = {}
        for sample in result:
            labels = sample["metric"]
            name = labels.get("alertname", "")
            state = labels.get("alertstate", "")
            alert = self.alerts.setdefault(
                name, _AlertState(name, labels.get("severity", ""), labels.get("slo", ""))
            )
            if state == "firing" or current.get(name) != "firing":
                current[name] = state
            if state == "pending" and alert.first_pending is None:
                alert.first_pending = elapsed
            if state == "firing" and alert.first_firing is None:
                alert.first_firing = elapsed
        for name, alert in self.alerts.items():
            alert.state = current.get(name, "inactive")

    def line(self) -> str:
        shown = [a for a in self.alerts.values() if a.state != "inactive"]
        if not shown:
            return "no alerts"
        return ", ".join(f"{a.name} {a.state}" for a in sorted(shown, key=lambda a: a.name))


# --------------------------------------------------------------------------- reading /metrics


def _scrape_routes(url: str, names: MetricNames, seconds: float) -> list[dict[str, Any]]:
    """Per-route figures over the whole run from the service's own /metrics (no Prometheus)."""
    text = http_get(url, timeout=10.0).decode()
    totals: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if sample.name == names.requests_total:
                totals[route] = totals.get(route, 0.0) + sample.value
                if sample.labels.get("status", "").startswith("5"):
                    errors[route] = errors.get(route, 0.0) + sample.value
            elif sample.name == f"{names.request_duration}_bucket":
                per_route = buckets.setdefault(route, {})
                bound = float(sample.labels["le"])
                per_route[bound] = per_route.get(bound, 0.0) + sample.value
    return [
        {
            "route": route,
            "request_rate": total / seconds,
            "error_ratio": errors.get(route, 0.0) / total if total else None,
            "p99_seconds": _quantile(0.99, buckets.get(route, {})),
        }
        for route, total in sorted(totals.items(), key=lambda item: -item[1])
    ]


def _quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """``histogram_quantile`` over cumulative bucket counts (linear within a bucket)."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] == 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """Everything one demo run started and learnt; turned into the summary at the end."""

    options: DemoOptions
    layout: _Layout
    console: _Console
    guard: _SignalGuard
    stack: contextlib.ExitStack
    examples: Path = Path()
    generated: _Generated | None = None
    shop_url: str = ""
    prometheus: PrometheusServer | None = None
    collector: _Collector | None = None
    collector_problem: str = ""
    tracker: _AlertTracker | None = None
    traffic_seconds: float = 0.0
    pids: dict[str, list[int]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    summary_printed: bool = False

    @property
    def spec(self) -> ServiceSpec:
        assert self.generated is not None
        return self.generated.spec

    @property
    def queries(self) -> _Queries:
        names = MetricNames(self.spec.metrics_namespace)
        return _Queries(names, _selector(self.spec.effective_selector))

    def remember(self, name: str, pgid: int) -> None:
        known = self.pids.setdefault(name, [])
        for pid in [pgid, *_group_members(pgid)]:
            if pid not in known:
                known.append(pid)

    def start(self, name: str, process: ManagedProcess) -> ManagedProcess:
        """Start ``process`` with its stop already registered, signals held meanwhile."""
        with self.guard.deferred():
            self.stack.callback(process.stop)
            try:
                process.start()
            except ProcessStartError as error:
                raise DemoError(f"{name} did not start: {error}") from None
            self.remember(name, process.pid)
        return process


STEPS = 6


def run_demo(options: DemoOptions, stream: TextIO | None = None) -> int:
    """Run the demo; returns the exit status (0, 1 on an error, 128+signal when stopped)."""
    console = _Console(stream)
    guard = _SignalGuard()
    layout = _Layout(options.workdir.resolve())
    status = 0
    guard.install()
    try:
        with contextlib.ExitStack() as stack:
            run = _Run(options, layout, console, guard, stack)
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
                console.line("stopping: Locust, Prometheus, the shop and the collector")
        _finish(run, console)
    except DemoInterrupted as interrupted:  # only if a signal beat guard.shield()
        status = 128 + interrupted.signum
    finally:
        guard.restore()
    return status


def _run_steps(run: _Run) -> None:
    options, console, layout = run.options, run.console, run.layout
    run.examples = find_examples(options.examples_dir)
    layout.prepare()
    spec_path = run.examples / "shop" / "slo.yaml"
    console.step(1, STEPS, f"generating rules, dashboards and manifests from {spec_path}")
    run.generated = _generate(spec_path, layout)
    fast_page = alert_windows(DEMO_WINDOW_DAYS)[0]
    console.note(
        f"SLO windows compressed to {DEMO_WINDOW_DAYS}d for the demo (the spec says "
        f"{_spec_windows(spec_path)}): the fast page watches {fast_page.long_window} and "
        f"{fast_page.short_window} instead of 1h and 5m, at the same {fast_page.burn_factor}x"
    )
    console.note(f"written to {layout.generated}")
    shop_port = _port(options.port, "the shop", "--port")
    prometheus_binary = _ensure_prometheus(options.install, console)
    prometheus_port = (
        _port(options.prometheus_port, "Prometheus", "--prometheus-port")
        if prometheus_binary
        else 0
    )
    _start_collector(run)
    _start_shop(run, shop_port)
    if prometheus_binary is not None:
        _start_prometheus(run, prometheus_binary, prometheus_port)
    else:
        console.step(4, STEPS, "Prometheus: skipped (not installed)")
    _drive_traffic(run)
    console.step(6, STEPS, "reading the results")
    try:
        run.summary.update(_results(run))
    except (OSError, RuntimeError) as error:
        raise DemoError(f"reading the results failed: {error}") from None
    _print_summary(run)
    run.summary_printed = True
    if options.keep_running:
        _keep_running(run)


def _spec_windows(spec_path: Path) -> str:
    document = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    windows = sorted({str(slo.get("window", "30d")) for slo in document.get("slos", [])})
    return ", ".join(windows)


def _start_collector(run: _Run) -> None:
    port = _port(run.options.collector_port, "the OTLP collector", "--collector-port")
    collector = _Collector(port, run.layout.root / "collector")
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


def _shop_environment(run: _Run) -> dict[str, str]:
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


def _start_shop(run: _Run, port: int) -> None:
    options = run.options
    run.shop_url = f"http://{LOOPBACK}:{port}"
    run.console.step(
        3,
        STEPS,
        f"starting the shop: uvicorn, {options.workers} workers, multiprocess metrics "
        f"(PROMETHEUS_MULTIPROC_DIR={run.layout.multiproc}), {run.shop_url}",
    )
    argv = [
        sys.executable, "-m", "uvicorn", "shop.app:app",
        "--app-dir", str(run.examples),
        "--host", LOOPBACK, "--port", str(port),
        "--workers", str(options.workers),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    shop = ManagedProcess(
        argv=argv,
        ready_url=f"{run.shop_url}/health/ready",
        env=_shop_environment(run),
        log_path=run.layout.logs / "shop.log",
        ready_timeout=60.0,
    )
    run.start("shop", shop)
    # Workers appear after the supervisor answers; wait for them so their PIDs are known.
    deadline = time.monotonic() + 10.0
    while len(_group_members(shop.pid)) < options.workers + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    run.remember("shop", shop.pid)


def _start_prometheus(run: _Run, binary: str, port: int) -> None:
    assert run.generated is not None
    prometheus = PrometheusServer(
        targets={run.spec.effective_selector.get("job", run.spec.service): [run.shop_url[7:]]},
        rule_files=[run.generated.prometheus_rule_file],
        workdir=run.layout.prometheus,
        port=port,
        binary=binary,
    )
    run.console.step(
        4,
        STEPS,
        f"starting Prometheus on {prometheus.url} (scrape and rule evaluation every second, "
        f"rules from {run.generated.rule_file.name})",
    )
    with run.guard.deferred():
        run.stack.callback(prometheus.stop)
        try:
            prometheus.start()
        except ProcessStartError as error:
            raise DemoError(f"Prometheus did not start: {error}") from None
        process = prometheus._process
        if process is not None:
            run.remember("prometheus", process.pid)
    run.prometheus = prometheus
    run.tracker = _AlertTracker(run.spec.service)


def _locust_argv(run: _Run) -> list[str]:
    options = run.options
    return [
        sys.executable, "-m", "locust",
        "-f", str(run.examples / "shop" / "locustfile.py"),
        "--headless", "--only-summary",
        "-u", str(options.users), "-r", str(options.users),
        "-t", f"{options.duration}s",
        "--host", run.shop_url,
        "--csv", str(run.layout.locust / "shop"),
        "--exit-code-on-error", "0",
        "--loglevel", "WARNING",
        "--error-rate", "0",
        "--slow-rate", f"{options.slow_rate:g}",
        "--slow-seconds", f"{SLOW_REQUEST_SECONDS:g}",
        "--burst-at", str(options.burst_at),
        "--burst-error-rate", f"{options.error_rate:g}",
    ]  # fmt: skip


def _drive_traffic(run: _Run) -> None:
    options, console = run.options, run.console
    console.step(
        5,
        STEPS,
        f"traffic: Locust, {options.users} users for {options.duration}s, "
        f"{options.slow_rate:.0%} of item/order requests slowed to {SLOW_REQUEST_SECONDS} s; "
        f"from {options.burst_at}s on, an error burst: {options.error_rate:.0%} of them fail",
    )
    locust = run.start(
        "locust", ManagedProcess(argv=_locust_argv(run), log_path=run.layout.logs / "locust.log")
    )
    assert locust.process is not None
    started = time.monotonic()
    next_progress = started + PROGRESS_EVERY_SECONDS
    next_alert_poll = started
    deadline = started + options.duration + TRAFFIC_GRACE_SECONDS
    while locust.process.poll() is None:
        now = time.monotonic()
        if now > deadline:
            console.note("Locust did not stop on time; stopping it")
            locust.stop()
            break
        if run.prometheus is not None and run.tracker is not None and now >= next_alert_poll:
            with contextlib.suppress(OSError, RuntimeError, urllib.error.URLError):
                run.tracker.poll(run.prometheus, now - started)
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


def _progress_line(run: _Run, elapsed: float) -> str:
    phase = "burst " if elapsed >= run.options.burst_at else "steady"
    head = f"  {elapsed:4.0f}s  {phase}"
    if run.prometheus is None or run.tracker is None:
        return f"{head}  (no Prometheus: figures in the summary)"
    queries = run.queries
    try:
        rate = _scalar(run.prometheus.query(queries.requests(PROGRESS_RATE_WINDOW)))
        errors = _scalar(run.prometheus.query(queries.error_ratio(PROGRESS_RATE_WINDOW)))
        p99 = _scalar(run.prometheus.query(queries.p99(PROGRESS_RATE_WINDOW)))
    except (OSError, RuntimeError, urllib.error.URLError) as error:
        return f"{head}  (Prometheus did not answer: {error})"
    return (
        f"{head}  {_rate(rate):>6} req/s  errors {_percent(errors):>6}  p99 {_seconds(p99):>7}"
        f"  alerts: {run.tracker.line()}"
    )


# --------------------------------------------------------------------------- results


def _results(run: _Run) -> dict[str, Any]:
    assert run.generated is not None
    spans = _spans(run)
    results: dict[str, Any] = {
        "traffic_seconds": round(run.traffic_seconds, 1),
        "prometheus": run.prometheus.url if run.prometheus else None,
        "routes": _route_results(run),
        "slos": _slo_results(run) if run.prometheus else [],
        "alerts": _alert_results(run),
        "spans_received": spans[0] if spans else None,
        "server_spans_received": spans[1] if spans else None,
        "collector": run.collector.endpoint if run.collector else None,
        "collector_problem": run.collector_problem or None,
        "dashboards": [str(path) for path in run.generated.dashboards],
        "rule_file": str(run.generated.rule_file),
        "rule_test_file": str(run.generated.rule_test_file),
        "manifests": [str(path) for path in run.generated.manifests],
        "logs": str(run.layout.logs),
        **_access_log(run),
    }
    page_alerts = [a for a in results["alerts"] if a["severity"] == "page" and a["slo"]]
    results["page_alert_fired"] = any(a["first_firing_seconds"] is not None for a in page_alerts)
    return results


def _route_results(run: _Run) -> list[dict[str, Any]]:
    queries = run.queries
    if run.prometheus is None:
        return _scrape_routes(
            f"{run.shop_url}/metrics", queries.names, max(run.traffic_seconds, 1.0)
        )
    window = SUMMARY_RATE_WINDOW
    rates = _by_label(run.prometheus.query(queries.requests(window, "route")), "route")
    errors = _by_label(run.prometheus.query(queries.error_ratio(window, "route")), "route")
    p99s = _by_label(run.prometheus.query(queries.p99(window, "route")), "route")
    return [
        {
            "route": route,
            "request_rate": rate,
            "error_ratio": errors.get(route),
            "p99_seconds": p99s.get(route),
        }
        for route, rate in sorted(rates.items(), key=lambda item: -item[1])
    ]


def _slo_results(run: _Run) -> list[dict[str, Any]]:
    assert run.prometheus is not None
    results = []
    for slo in run.spec.slos:
        labels = _selector({"service": run.spec.service, "slo": slo.name})
        burn_rates = {}
        for window in all_windows(slo.window_days):
            record = f"slo:burn_rate:ratio_rate{window.duration}{labels}"
            burn_rates[window.duration] = _scalar(run.prometheus.query(record))
        remaining = _scalar(run.prometheus.query(f"slo:error_budget_remaining:ratio{labels}"))
        results.append(
            {
                "name": slo.name,
                "kind": slo.sli.kind,
                "objective_percent": float(slo.objective),
                "window_days": slo.window_days,
                "burn_rates": burn_rates,
                "error_budget_remaining": remaining,
            }
        )
    return results


def _alert_results(run: _Run) -> list[dict[str, Any]]:
    if run.tracker is None:
        return []
    return [
        {
            "name": alert.name,
            "severity": alert.severity,
            "slo": alert.slo,
            "state": alert.state,
            "first_pending_seconds": alert.first_pending,
            "first_firing_seconds": alert.first_firing,
        }
        for alert in sorted(run.tracker.alerts.values(), key=lambda a: a.name)
    ]


def _spans(run: _Run) -> tuple[int, int] | None:
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


ACCESS_LOGGER = '"logger":"ouro_obs.access"'


def _access_log(run: _Run) -> dict[str, Any]:
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


def _print_summary(run: _Run) -> None:
    console, summary = run.console, run.summary
    console.line()
    console.line(
        f"ouro-obs demo: {summary['traffic_seconds']:.0f}s of traffic against {run.shop_url} "
        f"({run.options.workers} workers; SLO windows compressed to {DEMO_WINDOW_DAYS}d)"
    )
    source = (
        f"PromQL over Prometheus, last {SUMMARY_RATE_WINDOW}"
        if run.prometheus
        else "the service's /metrics, whole run"
    )
    console.line(f"\nRoutes ({source})")
    rows = [
        [
            r["route"],
            _rate(r["request_rate"]),
            _percent(r["error_ratio"]),
            _seconds(r["p99_seconds"]),
        ]
        for r in summary["routes"]
    ]
    for line in _table(["route", "req/s", "errors", "p99"], rows):
        console.line(line)
    _print_slos(run)
    _print_alerts(run)
    spans, server_spans = summary["spans_received"], summary["server_spans_received"]
    where = f"the {run.collector.kind} at {summary['collector']}" if run.collector else ""
    console.line(
        f"\nTraces: {spans} spans of service {run.spec.service}, {server_spans} of them request "
        f"(SERVER) spans, received by {where}"
        if spans is not None
        else f"\nTraces: no collector ({run.collector_problem})"
    )
    _print_logs(run)
    console.line("\nDashboards for Grafana (Dashboards > New > Import > Upload JSON file):")
    for path in summary["dashboards"] or ["(none generated)"]:
        console.line(f"  {_relative(path)}")
    console.line(f"Rules: {_relative(summary['rule_file'])} (promtool tests beside it)")
    root = _relative(str(run.layout.root))
    logs = [f"{root}/logs/shop.log", f"{root}/logs/locust.log", f"{root}/collector/"]
    if run.prometheus is not None:
        logs.insert(2, f"{root}/prometheus/prometheus.log")
    console.line(f"Logs:  {', '.join(logs)}")


def _print_logs(run: _Run) -> None:
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


def _print_slos(run: _Run) -> None:
    console, slos = run.console, run.summary["slos"]
    if not slos:
        console.line("\nSLOs: no Prometheus, so no recording rules were evaluated")
        return
    windows = list(slos[0]["burn_rates"])
    console.line("\nSLOs (recording rules slo:burn_rate:ratio_rate<window>, error budget left)")
    rows = [
        [
            f"{slo['name']} ({slo['objective_percent']:g}%)",
            *(_times(slo["burn_rates"].get(window)) for window in windows),
            _percent(slo["error_budget_remaining"]),
        ]
        for slo in slos
    ]
    for line in _table(["slo", *(f"burn {w}" for w in windows), "budget left"], rows):
        console.line(line)
    console.line(
        f"  windows longer than the {run.summary['traffic_seconds']:.0f}s of traffic all hold the "
        f"same data, so they agree; budget left = 1 - burn over {DEMO_WINDOW_DAYS}d (below 0: spent)"
    )


def _print_alerts(run: _Run) -> None:
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
            alert["severity"],
            alert["state"],
            "-"
            if alert["first_firing_seconds"] is None
            else f"{alert['first_firing_seconds']:.0f}s",
        ]
        for alert in alerts
    ]
    if rows:
        for line in _table(["alert", "severity", "now", "first firing"], rows):
            console.line(line)
    fired = "fired" if run.summary["page_alert_fired"] else "did NOT fire"
    console.line(f"  the SLO page alert {fired}")


def _relative(path: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return path


def _keep_running(run: _Run) -> None:
    run.console.line(
        f"\nStill running: shop {run.shop_url}, Prometheus "
        f"{run.prometheus.url if run.prometheus else '(none)'}. Ctrl-C stops everything."
    )
    while True:
        time.sleep(1.0)


def _finish(run: _Run, console: _Console) -> None:
    """After the clean-up: check that nothing is left, then write the JSON summary."""
    started = [pid for pids in run.pids.values() for pid in pids]
    left = _still_running(started)
    deadline = time.monotonic() + 5.0
    # Processes killed a moment ago may take a few milliseconds more to disappear.
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _still_running(started)
    if left:
        console.line(f"warning: processes still running: {left}")
    else:
        console.line(f"stopped {len(started)} processes; none left running")
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


def _still_running(pids: Sequence[int]) -> list[int]:
    left = {pid for pid in pids if _alive(pid)}
    left.update(member for pid in pids for member in _group_members(pid))
    return sorted(left)


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n")
    os.replace(temporary, path)
