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
SHARED_DIR = REPO_ROOT.parent / "shared"


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


def shared_schema(relative: str) -> Path:
    """A file under ../shared/schemas, or a skip/fail when shared/ is not beside the repo."""
    path = SHARED_DIR / "schemas" / relative
    if not path.exists():
        missing(f"{path} is missing")
    return path
