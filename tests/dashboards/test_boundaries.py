"""grafanalib stays behind one package (DESIGN.md, package layout)."""

from __future__ import annotations

import ast

from tests.support.tools import REPO_ROOT

SOURCE = REPO_ROOT / "src" / "ouro_obs"


def imported_modules(source: str) -> set[str]:
    tree = ast.parse(source)
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_only_the_dashboards_package_imports_grafanalib() -> None:
    importers = sorted(
        path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*.py")
        if any(m.split(".")[0] == "grafanalib" for m in imported_modules(path.read_text()))
    )
    assert importers
    assert all(importer.startswith("slo/dashboards/") for importer in importers), importers
    assert "slo/dashboards/grafana_model.py" not in importers
