"""The demo's set-up, without running it: options, compressed rules, ports, Prometheus."""

from __future__ import annotations

import io
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from ouro_obs import demo
from ouro_obs.cli import main
from ouro_obs.slo.commands import generated_files, rule_file_path
from ouro_obs.slo.spec import load_spec
from tests.support.tools import REPO_ROOT, require_tool

SHOP_SPEC = REPO_ROOT / "examples" / "shop" / "slo.yaml"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "5"], "--duration 5: use at least 20 seconds"),
        (["--error-rate", "1.5"], "--error-rate 1.5: use a share from 0 to 1"),
        (["--port", "70000"], "--port 70000 is not a TCP port"),
    ],
)
def test_bad_options_exit_2_with_the_fix(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_compressed_spec_pages_on_minute_windows_with_the_same_burn_factor() -> None:
    spec = demo.compressed_spec(load_spec(SHOP_SPEC))
    assert {slo.window_days for slo in spec.slos} == {demo.DEMO_WINDOW_DAYS}
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
    tmp_path: Path,
) -> None:
    promtool = require_tool("promtool")
    layout = demo._Layout(tmp_path)
    layout.prepare()
    generated = demo._generate(SHOP_SPEC, layout)
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
        options = demo.DemoOptions(port=port, prometheus_port=0, workdir=tmp_path, install=False)
        assert demo.run_demo(options, stream=output) == 1
    assert f"port {port} for the shop is in use; pass --port N, or --port 0" in output.getvalue()
    assert "stopped 0 processes" in output.getvalue()


def test_without_prometheus_and_no_install_the_demo_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    output = io.StringIO()
    assert demo._ensure_prometheus(install=False, console=demo._Console(output)) is None
    assert "apt-get install prometheus" in output.getvalue()
    assert "Running the rest without it" in output.getvalue()


def test_quantiles_from_cumulative_buckets_interpolate_like_histogram_quantile() -> None:
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, float("inf"): 100.0}
    assert demo._quantile(0.5, buckets) == pytest.approx(0.1)
    assert demo._quantile(0.7, buckets) == pytest.approx(0.3)
    assert demo._quantile(0.99, buckets) == pytest.approx(0.95)
    assert demo._quantile(0.99, {float("inf"): 0.0}) is None
