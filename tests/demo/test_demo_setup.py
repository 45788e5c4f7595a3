"""The demo's set-up, without running it: options, compressed rules and routes, ports, tools."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ouro_obs.cli import main
from ouro_obs.demo.alerting import find_alertmanager_binary
from ouro_obs.demo.console import Console
from ouro_obs.demo.generate import compressed_spec, generate, routed_to_webhook
from ouro_obs.demo.options import (
    DEMO_GROUP_INTERVAL,
    DEMO_GROUP_WAIT,
    DEMO_WINDOW_DAYS,
    DemoOptions,
)
from ouro_obs.demo.processes import PrometheusServer, shop_directory
from ouro_obs.demo.queries import quantile
from ouro_obs.demo.run import find_prometheus_binary, run_demo
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.conventions import alertmanager_config_path, rule_file_path
from ouro_obs.slo.spec import load_spec
from tests.support.tools import REPO_ROOT, require_tool


@pytest.fixture
def shop_spec() -> Path:
    return shop_directory() / "slo.yaml"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "5"], "--duration 5: use at least 20 seconds"),
        (["--error-rate", "1.5"], "--error-rate 1.5: use a share from 0 to 1"),
        (["--port", "70000"], "--port 70000 is not a TCP port"),
        (["--alertmanager-port", "-1"], "--alertmanager-port -1 is not a TCP port"),
    ],
)
def test_bad_options_exit_2_with_the_fix(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_demo_runs_the_shop_it_ships_which_is_the_checkouts_example() -> None:
    shipped, example = shop_directory(), REPO_ROOT / "examples" / "shop"
    for name in ("app.py", "slo.yaml", "locustfile.py"):
        assert (shipped / name).read_bytes() == (example / name).read_bytes()
    # In a process of its own: importing the shop configures this process's logging and
    # its global tracer provider, which the tests after this one would inherit.
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ouro_obs.demo.shop.app as shop; print(type(shop.app).__name__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        check=False,
    )
    assert (imported.returncode, imported.stdout.strip()) == (0, "FastAPI"), imported.stderr


def test_the_compressed_spec_pages_on_minute_windows_with_the_same_burn_factor(
    shop_spec: Path,
) -> None:
    spec = compressed_spec(load_spec(shop_spec))
    assert {slo.window_days for slo in spec.slos} == {DEMO_WINDOW_DAYS}
    rules = yaml.safe_load(generated_files(spec)[rule_file_path(spec)])
    alerts = {
        rule["alert"]: rule
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    page = alerts["ShopAvailabilityErrorBudgetBurnPage"]["expr"]
    # 1h and 5m scaled by 1d/30d; 14.4 x the 0.1 % budget stays the threshold.
    assert 'slo:sli_error:ratio_rate1m{service="shop",slo="availability"} > 0.0144' in page
    assert 'slo:sli_error:ratio_rate2m{service="shop",slo="availability"} > 0.0144' in page


def test_the_rules_prometheus_loads_evaluate_every_group_each_scrape_and_pass_promtool(
    tmp_path: Path, shop_spec: Path
) -> None:
    promtool = require_tool("promtool")
    generated = generate(compressed_spec(load_spec(shop_spec)), tmp_path / "out", tmp_path)
    loaded = yaml.safe_load(generated.prometheus_rule_file.read_text())
    original = yaml.safe_load(generated.rule_file.read_text())
    assert [g["name"] for g in loaded["groups"]] == [g["name"] for g in original["groups"]]
    assert any("interval" in group for group in original["groups"])
    assert not any("interval" in group for group in loaded["groups"])
    for path in (generated.prometheus_rule_file, generated.rule_file):
        checked = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", generated.rule_test_file.name],
        cwd=generated.rule_test_file.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert [path.name for path in generated.dashboards] == ["shop-overview.json", "shop-slo.json"]


def test_a_busy_port_stops_the_demo_before_it_starts_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        output = io.StringIO()
        options = DemoOptions(port=port, prometheus_port=0, workdir=tmp_path)
        assert run_demo(options, stream=output) == 1
    assert f"port {port} for the shop is in use; pass --port N, or --port 0" in output.getvalue()
    assert "stopped 0 processes" in output.getvalue()


def test_without_prometheus_the_demo_names_the_package_and_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even as root with apt-get on PATH: the installed demo never runs a package manager."""
    ran = tmp_path / "apt-get-ran"
    fake_apt = tmp_path / "apt-get"
    fake_apt.write_text(f"#!/bin/sh\ntouch {ran}\n")
    fake_apt.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    output = io.StringIO()
    assert find_prometheus_binary(Console(output)) is None
    assert "apt-get install prometheus" in output.getvalue()
    assert "Running the rest without it" in output.getvalue()
    assert not ran.exists()


def _without_webhooks_and_timers(config: dict[str, Any]) -> dict[str, Any]:
    service_route = config["route"]["routes"][0]
    for timer in ("group_wait", "group_interval"):
        service_route.pop(timer)
    for receiver in config["receivers"]:
        receiver.pop("webhook_configs", None)
    return config


def test_the_demo_s_alertmanager_config_changes_only_the_receiver_urls_and_the_timers(
    tmp_path: Path, shop_spec: Path
) -> None:
    amtool = require_tool("amtool")
    spec = compressed_spec(load_spec(shop_spec))
    demo_spec = routed_to_webhook(spec, "http://127.0.0.1:9999")
    generated = generate(demo_spec, tmp_path / "out", tmp_path)
    demo = yaml.safe_load(generated.alertmanager_file.read_text())
    original = yaml.safe_load(generated_files(spec)[alertmanager_config_path(spec)])

    service_route = demo["route"]["routes"][0]
    assert (service_route["group_wait"], service_route["group_interval"]) == (
        DEMO_GROUP_WAIT,
        DEMO_GROUP_INTERVAL,
    )
    hooks = {
        receiver["name"]: [hook["url"] for hook in receiver.get("webhook_configs", [])]
        for receiver in demo["receivers"]
    }
    assert hooks == {
        "unrouted": [],
        "storefront-page": ["http://127.0.0.1:9999/page"],
        "storefront-ticket": ["http://127.0.0.1:9999/ticket"],
    }
    assert _without_webhooks_and_timers(demo) == _without_webhooks_and_timers(original)
    checked = subprocess.run(
        [amtool, "check-config", str(generated.alertmanager_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_demo_s_prometheus_sends_its_alerts_to_the_alertmanager_it_is_given() -> None:
    prometheus = PrometheusServer(targets={"shop": ["127.0.0.1:8000"]})
    assert "alerting" not in prometheus.config()
    prometheus.alertmanagers = ["http://127.0.0.1:9093"]
    assert prometheus.config()["alerting"] == {
        "alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]
    }


def test_without_alertmanager_the_demo_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    output = io.StringIO()
    assert find_alertmanager_binary(Console(output)) is None
    assert "apt-get install prometheus-alertmanager" in output.getvalue()
    assert "Running the rest without it" in output.getvalue()


def test_quantiles_from_cumulative_buckets_interpolate_like_histogram_quantile() -> None:
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.7, buckets) == pytest.approx(0.3)
    assert quantile(0.99, buckets) == pytest.approx(0.95)
    assert quantile(0.99, {float("inf"): 0.0}) is None
