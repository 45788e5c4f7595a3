"""Finding the external tools integration tests need.

Outside CI a missing tool skips the test; in CI (``CI=true``) it fails it,
because CI installs every tool and a silent skip would hide a broken set-up.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Public JSON Schemas copied into the repository, with their provenance in README.md.
SCHEMAS_DIR = REPO_ROOT / "tests" / "schemas"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Skip the calling test, or fail it in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI must install it)")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Absolute path of command ``name`` on PATH, in .venv/bin or .tools-venv/bin."""
    search_path = os.pathsep.join(
        [
            os.environ.get("PATH", ""),
            str(REPO_ROOT / ".venv" / "bin"),
            str(REPO_ROOT / ".tools-venv" / "bin"),
            "/usr/sbin",
        ]
    )
    found = shutil.which(name, path=search_path)
    if found is None:
        missing(f"{name} is not installed")
        raise AssertionError("unreachable")
    return found


def schema_path(relative: str) -> Path:
    """A JSON Schema committed under tests/schemas (e.g. ``crds/prometheusrule_v1.json``)."""
    path = SCHEMAS_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; tests/schemas/README.md lists the files")
    return path
