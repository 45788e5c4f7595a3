"""One demo run's state: its working directory, what it started, and what it learnt."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ouro_obs.contract import MetricNames
from ouro_obs.demo.console import Console
from ouro_obs.demo.lifecycle import LOOPBACK, ProcessStartError, group_members
from ouro_obs.demo.options import DemoError, DemoOptions
from ouro_obs.demo.processes import AlertmanagerServer, OTLPCollector, PrometheusServer
from ouro_obs.demo.queries import AlertTracker, DemoQueries
from ouro_obs.demo.receiver import OTLPReceiver, ReceivedSpan
from ouro_obs.demo.signals import SignalGuard
from ouro_obs.demo.webhook import WebhookReceiver

if TYPE_CHECKING:
    from ouro_obs.demo.generate import Generated
    from ouro_obs.slo.spec import ServiceSpec

__all__ = ["SUBDIRECTORIES", "DemoRun", "Layout", "TraceSink"]


class _StartsAProcess(Protocol):
    """A program the demo starts: a shop, Locust, Prometheus."""

    @property
    def pid(self) -> int: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


_Process = TypeVar("_Process", bound=_StartsAProcess)


#: The demo's working subdirectories, emptied at the start of every run.
SUBDIRECTORIES = (
    "generated",
    "prometheus",
    "alertmanager",
    "multiproc",
    "logs",
    "locust",
    "collector",
)


@dataclass(frozen=True, slots=True)
class Layout:
    """The demo's working directory and its subdirectories (:data:`SUBDIRECTORIES`)."""

    root: Path
    generated: Path
    prometheus: Path
    alertmanager: Path
    multiproc: Path
    logs: Path
    locust: Path
    collector: Path

    @classmethod
    def under(cls, root: Path) -> Layout:
        return cls(root=root, **{name: root / name for name in SUBDIRECTORIES})

    def prepare(self) -> None:
        for name in SUBDIRECTORIES:
            directory: Path = getattr(self, name)
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class TraceSink:
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

    def _spans(self) -> list[ReceivedSpan]:
        if self._collector is not None:
            return self._collector.spans
        if self._receiver is not None:
            return self._receiver.spans
        return []

    def span_counts(self, service: str) -> tuple[int, int]:
        """Spans of ``service`` received so far: all of them, and the SERVER (request) ones."""
        mine = [span for span in self._spans() if span.service == service]
        return len(mine), sum(1 for span in mine if span.kind == "SPAN_KIND_SERVER")

    def spans_in_trace(self, trace_id: str) -> int:
        return sum(1 for span in self._spans() if span.trace_id == trace_id)

    def stop(self) -> None:
        if self._collector is not None:
            self._collector.stop()
        if self._receiver is not None:
            self._receiver.stop()


@dataclass
class DemoRun:
    """Everything one demo run started and learnt; turned into the summary at the end."""

    options: DemoOptions
    layout: Layout
    console: Console
    guard: SignalGuard
    stack: contextlib.ExitStack
    generated: Generated | None = None
    shop_url: str = ""
    prometheus: PrometheusServer | None = None
    alertmanager: AlertmanagerServer | None = None
    webhook: WebhookReceiver | None = None
    collector: TraceSink | None = None
    collector_problem: str = ""
    tracker: AlertTracker | None = None
    #: ``time.monotonic()`` when Locust started; 0.0 before.
    traffic_started: float = 0.0
    traffic_seconds: float = 0.0
    pids: dict[str, list[int]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    summary_printed: bool = False

    @property
    def spec(self) -> ServiceSpec:
        assert self.generated is not None
        return self.generated.spec

    @property
    def queries(self) -> DemoQueries:
        return DemoQueries(MetricNames(self.spec.metrics_namespace), self.spec.effective_selector)

    def remember(self, name: str, pgid: int) -> None:
        """Note ``pgid`` and its group's members as started by the demo under ``name``."""
        known = self.pids.setdefault(name, [])
        for pid in [pgid, *group_members(pgid)]:
            if pid not in known:
                known.append(pid)

    def start(self, name: str, process: _Process) -> _Process:
        """Start ``process`` with its stop already registered, signals held meanwhile."""
        with self.guard.deferred():
            self.stack.callback(process.stop)
            try:
                process.start()
            except ProcessStartError as error:
                raise DemoError(f"{name} did not start: {error}") from None
            self.remember(name, process.pid)
        return process
