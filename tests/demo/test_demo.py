"""The demo end to end: it pages through Alertmanager, traces arrive, and nothing is left.

These tests run ``ouro-obs demo`` exactly as ``./scripts/demo.sh`` does (as a
subprocess, non-interactively, from a directory outside the checkout) and read its
``--summary-json``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ouro_obs.demo.processes import shop_directory
from ouro_obs.slo.conventions import runbook_url
from ouro_obs.slo.spec import load_spec
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration

PAGE_ALERT = "ShopAvailabilityErrorBudgetBurnPage"
TICKET_ALERT = "ShopAvailabilityErrorBudgetBurnTicket"
#: Long enough for a steady phase, the burst, and the 1m/2m page windows to cross 14.4x.
DEMO_SECONDS = 40


def demo_command(workdir: Path, summary: Path, duration: int) -> list[str]:
    return [
        sys.executable, "-m", "ouro_obs", "demo",
        "--duration", str(duration),
        "--users", "8",
        "--port", "0", "--prometheus-port", "0", "--alertmanager-port", "0",
        "--workdir", str(workdir),
        "--summary-json", str(summary),
    ]  # fmt: skip


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line or environment contains ``text``."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or needle in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command}")
    return found


def assert_nothing_left(summary: dict[str, Any], workdir: Path) -> None:
    started = [pid for pids in summary["pids"].values() for pid in pids]
    assert summary["left_running"] == []
    for pid in started:
        stat = Path(f"/proc/{pid}/stat")
        alive = stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        assert not alive, f"process {pid} started by the demo is still running"
    assert processes_mentioning(str(workdir)) == []


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    """One whole demo run: its summary, its output and its working directory."""
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    tmp_path = tmp_path_factory.mktemp("demo-run")
    workdir, summary_path = tmp_path / "demo", tmp_path / "summary.json"
    completed = subprocess.run(
        demo_command(workdir, summary_path, DEMO_SECONDS),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEMO_SECONDS + 120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return json.loads(summary_path.read_text()), output, workdir


def test_the_demo_pages_receives_spans_and_stops_everything(
    demo_run: tuple[dict[str, Any], str, Path],
) -> None:
    summary, output, workdir = demo_run
    page = {alert["name"]: alert for alert in summary["alerts"]}.get(PAGE_ALERT)
    assert page is not None, output
    assert page["urgency"] == "page"
    assert page["first_firing_seconds"] is not None, output
    assert summary["page_alert_fired"] is True
    assert summary["spans_received"] > 0, output
    assert summary["server_spans_received"] > 0, output
    assert summary["access_log_lines"] > 0, output
    assert summary["last_error_logged"]["status"] == 500
    assert summary["last_error_logged"]["spans_in_trace"] >= 1, output

    routes = {row["route"]: row for row in summary["routes"]}
    assert routes["/items/{item_id}"]["error_ratio"] > 0.05
    assert routes["/orders/{order_id}"]["error_ratio"] == 0
    assert "/items/1" not in routes
    availability = next(slo for slo in summary["slos"] if slo["name"] == "availability")
    assert availability["burn_rates"]["1m"] > 14.4
    assert availability["error_budget_remaining"] < 1

    for dashboard in summary["dashboards"]:
        assert json.loads(Path(dashboard).read_text())["uid"].startswith("shop-")
    assert len(summary["dashboards"]) == 2
    assert Path(summary["rule_file"]).is_file()
    assert PAGE_ALERT in output
    assert "request (SERVER) spans, received by the" in output
    assert_nothing_left(summary, workdir)


def test_alertmanager_delivers_the_page_once_with_its_runbook(
    demo_run: tuple[dict[str, Any], str, Path],
) -> None:
    summary, output, _ = demo_run
    spec = load_spec(shop_directory() / "slo.yaml")
    page = summary["page_delivered"]
    assert page is not None, output
    assert page["alert"] == PAGE_ALERT
    assert page["receiver"] == "storefront-page"
    assert page["runbook_url"] == runbook_url(spec, PAGE_ALERT)
    assert page["times"] == 1
    firing = [d for d in summary["deliveries"] if d["alert"] == PAGE_ALERT]
    assert [d["status"] for d in firing] == ["firing"]
    alert = {alert["name"]: alert for alert in summary["alerts"]}[PAGE_ALERT]
    assert page["seconds"] >= alert["first_firing_seconds"]
    assert f"the page {PAGE_ALERT} reached storefront-page" in output
    assert "group_wait 30s -> 10s" in output


def test_the_ticket_of_the_paged_slo_is_inhibited_and_not_delivered(
    demo_run: tuple[dict[str, Any], str, Path],
) -> None:
    summary, output, _ = demo_run
    fired = {alert["name"]: alert for alert in summary["alerts"]}[TICKET_ALERT]
    assert fired["first_firing_seconds"] is not None, output
    held = {row["alert"]: row for row in summary["suppressed"]}
    assert held[TICKET_ALERT]["state"] == "suppressed"
    assert held[TICKET_ALERT]["inhibited_by"] == [PAGE_ALERT]
    assert [d for d in summary["deliveries"] if d["alert"] == TICKET_ALERT] == []
    assert f"its ticket {TICKET_ALERT} fires too, and Alertmanager holds it back" in output
    assert "nothing was delivered for that ticket" in output


class LineReader:
    """Reads a child's stdout on a thread, so a test can wait for a line with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.done = threading.Event()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        try:
            for line in stream:
                self.lines.put(line)
        finally:
            self.done.set()

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not printed within {timeout}s:\n{''.join(self.seen)}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_traffic_stops_every_process_the_demo_started(
    tmp_path: Path, signum: signal.Signals
) -> None:
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    workdir, summary_path = tmp_path / "demo", tmp_path / "summary.json"
    with subprocess.Popen(
        demo_command(workdir, summary_path, duration=300),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        try:
            reader = LineReader(demo.stdout)
            reader.wait_for("] traffic", timeout=90)
            reader.wait_for("req/s", timeout=30)  # Locust runs and Prometheus answers
            demo.send_signal(signum)
            assert demo.wait(timeout=60) == 128 + signum
        finally:
            if demo.poll() is None:
                demo.kill()
            reader.done.wait(timeout=10)
    summary = json.loads(summary_path.read_text())
    assert summary["interrupted"] == signum.name
    assert {"shop", "prometheus", "alertmanager", "locust"} <= set(summary["pids"])
    assert len(summary["pids"]["shop"]) >= 3  # the supervisor and two workers
    assert_nothing_left(summary, workdir)
