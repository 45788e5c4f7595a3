"""The import rules of docs/architecture.md, read from the source with ``ast``.

Each rule names a package (or module) and what it may import from ``ouro_obs``; a new
import across a boundary fails here with the file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tools import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "ouro_obs"

#: package -> the ouro_obs modules (prefixes) it may import, besides itself.
ALLOWED: dict[str, tuple[str, ...]] = {
    "contract": (),
    "config": ("ouro_obs.contract",),
    "slo": ("ouro_obs.contract",),
    "demo": ("ouro_obs.contract", "ouro_obs.slo"),
    "metrics": (
        "ouro_obs.config",
        "ouro_obs.contract",
        "ouro_obs.asgi.endpoints",
        "ouro_obs.asgi.health",
    ),
    "logs": ("ouro_obs.config", "ouro_obs.asgi.record"),
    "tracing": (
        "ouro_obs.config",
        "ouro_obs.contract",
        "ouro_obs.asgi.record",
        "ouro_obs.asgi.exchange",
        "ouro_obs.logs.redaction",
        "ouro_obs.__version__",
    ),
    "asgi": (
        "ouro_obs.config",
        "ouro_obs.contract",
        "ouro_obs.metrics",
        "ouro_obs.logs",
        "ouro_obs.tracing",
    ),
    "sidecar": (
        "ouro_obs.asgi",
        "ouro_obs.config",
        "ouro_obs.contract",
        "ouro_obs.metrics",
        "ouro_obs.logs",
        "ouro_obs.tracing",
    ),
}

#: The asgi modules the runtime's leaves may import (they import no other asgi module).
ASGI_LEAVES = ("record", "health")


def _package_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    return relative.parts[0]


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ouro_obs":
                for alias in node.names:
                    yield node.lineno, f"ouro_obs.{alias.name}"
            elif node.module.startswith("ouro_obs."):
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ouro_obs"):
                    yield node.lineno, alias.name


def _allowed(module: str, own: str, allowed: tuple[str, ...]) -> bool:
    if module == own or module.startswith(own + "."):
        return True
    return any(module == rule or module.startswith(rule + ".") for rule in allowed)


def _violations(package: str) -> list[str]:
    own = f"ouro_obs.{package}"
    root = PACKAGE / package
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    found = []
    for path in files:
        for line, module in _imports(path):
            if not _allowed(module, own, ALLOWED[package]):
                found.append(f"{path.relative_to(REPO_ROOT)}:{line}: imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_docs_architecture_allows(package: str) -> None:
    assert _violations(package) == [], f"see the rules of {package!r} in docs/architecture.md"


@pytest.mark.parametrize("leaf", ASGI_LEAVES)
def test_the_asgi_leaves_the_recorders_use_import_no_other_ouro_obs_module(leaf: str) -> None:
    path = PACKAGE / "asgi" / f"{leaf}.py"
    assert [module for _line, module in _imports(path)] == []


def test_every_top_level_module_and_package_has_a_rule() -> None:
    names = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()))
    }
    unruled = names - set(ALLOWED) - {"__init__", "__main__", "cli"}
    assert unruled == set(), "add the new package to ALLOWED and to docs/architecture.md"


def test_the_command_table_imports_no_command_module() -> None:
    imported = [module for _line, module in _imports(PACKAGE / "cli.py")]
    assert all(module in {"ouro_obs.__version__"} for module in imported), imported
