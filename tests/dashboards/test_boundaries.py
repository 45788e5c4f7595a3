"""grafanalib stays behind one module (DESIGN.md, package layout)."""

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


def test_only_the_dashboards_module_imports_grafanalib() -> None:
    importers = sorted(
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if any(m.split(".")[0] == "grafanalib" for m in imported_modules(path.read_text()))
    )
    assert importers == ["slo/dashboards.py"]
