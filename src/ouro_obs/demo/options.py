"""What ``ouro-obs demo`` can be asked to do, and the fixed choices it makes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEMO_GROUP_INTERVAL",
    "DEMO_GROUP_WAIT",
    "DEMO_WINDOW_DAYS",
    "SLOW_REQUEST_SECONDS",
    "DemoError",
    "DemoOptions",
]

#: Every SLO window in the demo, so that the page alert's windows are minutes, not hours.
DEMO_WINDOW_DAYS = 1
#: Alertmanager's first wait for a new alert group in the demo (the spec says 30s). Not 1s
#: (30s scaled like the windows): on compressed windows that hold no clean history yet,
#: the ticket crosses its lower threshold seconds before the page; this long, the page
#: arrives within the ticket's wait and inhibits it, as it would on real windows.
DEMO_GROUP_WAIT = "10s"
#: How soon Alertmanager sends a group's changes (5m scaled like the windows: 1/30).
DEMO_GROUP_INTERVAL = "10s"
#: The shop's latency SLO threshold is 0.5 s; slow requests must be slower than that.
SLOW_REQUEST_SECONDS = 0.6


class DemoError(RuntimeError):
    """The demo cannot run as asked; the message says why and what to do."""


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
    alertmanager_port: int = 9093
    collector_port: int = 0
    workdir: Path = Path(".demo")
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
        for name in ("port", "prometheus_port", "alertmanager_port", "collector_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise DemoError(f"--{name.replace('_', '-')} {value} is not a TCP port (0-65535)")

    @property
    def burst_at(self) -> int:
        """The error burst starts a third of the way in and lasts to the end."""
        return self.duration // 3
