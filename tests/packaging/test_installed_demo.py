"""``ouro-obs demo`` from the installed wheel, far from any checkout.

The wheel goes into a fresh venv without its dependencies, which it borrows from this
session's environment (the extras' contents are checked in test_wheel.py); so the
package, the shop and its spec can only come from what the wheel installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.packaging import (
    BuiltWheel,
    Venv,
    borrow_dependencies,
    create_venv,
    pip_install,
    run_clean,
)
from tests.support.tools import REPO_ROOT, require_tool

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(wheel: BuiltWheel, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = create_venv(tmp_path_factory.mktemp("installed") / "venv")
    pip_install(venv, "--no-deps", wheel.path)
    borrow_dependencies(venv)
    return venv


def test_the_installed_demo_finds_its_shop_in_the_package(installed: Venv, tmp_path: Path) -> None:
    probe = "from ouro_obs.demo.processes import shop_directory; print(shop_directory())"
    result = run_clean([installed.python, "-c", probe], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shop = Path(result.stdout.strip())
    assert shop.is_relative_to(installed.site_packages)
    assert not shop.is_relative_to(REPO_ROOT)
    assert sorted(path.name for path in shop.iterdir() if path.suffix in {".py", ".yaml"}) == [
        "__init__.py",
        "app.py",
        "locustfile.py",
        "slo.yaml",
    ]


def test_the_installed_demo_runs_the_whole_loop_outside_a_checkout(
    installed: Venv, tmp_path: Path
) -> None:
    require_tool("prometheus")
    summary_path = tmp_path / "summary.json"
    result = run_clean(
        [
            installed.script("ouro-obs"), "demo",
            "--duration", "20", "--users", "4", "--workers", "1",
            "--port", "0", "--prometheus-port", "0", "--alertmanager-port", "0",
            "--workdir", tmp_path / "demo", "--summary-json", summary_path,
        ],
        cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"from {installed.site_packages}" in output  # the spec the wheel installed
    summary = json.loads(summary_path.read_text())
    assert {row["route"] for row in summary["routes"]} >= {"/items/{item_id}", "/orders"}
    assert summary["server_spans_received"] > 0, output
    assert summary["access_log_lines"] > 0, output
    assert summary["left_running"] == []
