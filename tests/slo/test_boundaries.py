"""The generator reads only the metric contract from the runtime side (DESIGN.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.support.tools import REPO_ROOT

SLO_SOURCE = REPO_ROOT / "src" / "ouro_obs" / "slo"
RUNTIME_LIBRARIES = ("starlette", "opentelemetry", "structlog", "prometheus_client")

#: Imports every module of ouro_obs.slo, then prints what got loaded.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys, types, importlib.util
if sys.argv[1] == "without-root":
    # Keep ouro_obs/__init__.py from running: only what ouro_obs.slo itself imports loads.
    found = importlib.util.find_spec("ouro_obs")
    root = types.ModuleType("ouro_obs")
    root.__path__ = list(found.submodule_search_locations)
    sys.modules["ouro_obs"] = root
import ouro_obs.slo
names = [m.name for m in pkgutil.walk_packages(ouro_obs.slo.__path__, "ouro_obs.slo.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def _import_every_module(mode: str) -> dict[str, list[str]]:
    finished = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, list[str]] = json.loads(finished.stdout)
    return result


def _top_level(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_the_generator_modules_import_only_the_contract_from_the_runtime() -> None:
    allowed = {"ouro_obs", "ouro_obs.contract", "ouro_obs.slo"}
    for path in SLO_SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                if module.startswith("ouro_obs") and not module.startswith("ouro_obs.slo."):
                    assert module in allowed, f"{path.relative_to(REPO_ROOT)} imports {module}"


def test_importing_every_generator_module_loads_no_runtime_library() -> None:
    """In a fresh interpreter, with the package root left out: the generator's own imports."""
    result = _import_every_module("without-root")
    assert "ouro_obs.slo.spec.validate" in result["imported"]
    assert "ouro_obs.slo.dashboards.overview" in result["imported"]
    assert not _top_level(result["loaded"]) & set(RUNTIME_LIBRARIES)
    runtime = [
        name
        for name in result["loaded"]
        if name.startswith("ouro_obs.") and not name.startswith("ouro_obs.slo")
    ]
    assert runtime == ["ouro_obs.contract"]


def test_importing_the_generator_through_the_package_loads_no_runtime_library() -> None:
    result = _import_every_module("with-root")
    assert not _top_level(result["loaded"]) & set(RUNTIME_LIBRARIES)
