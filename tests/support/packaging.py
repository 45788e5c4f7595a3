"""Building the wheel from this checkout and installing it into fresh virtual environments.

The wheel is built from a copy of the working tree (tests and all, so that a wheel test can
see they stay out), never in place: a build writes ``build/`` and ``*.egg-info`` beside the
sources, and other runs may be reading them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import REPO_ROOT

__all__ = [
    "BuiltWheel",
    "Venv",
    "borrow_dependencies",
    "build_wheel",
    "create_venv",
    "pip_install",
    "run_clean",
]

#: What a checkout may hold that is no part of its sources.
NOT_SOURCES = (
    ".git", ".venv", ".tools-venv", "node_modules", "__pycache__", "*.egg-info", "build",
    "dist", ".demo", ".mypy_cache", ".ruff_cache", ".pytest_cache",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BuiltWheel:
    """A wheel and the copy of the sources it was built from."""

    path: Path
    sources: Path

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as archive:
            return archive.namelist()

    def read(self, name: str) -> bytes:
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(name)


@dataclass(frozen=True, slots=True)
class Venv:
    """A virtual environment made by a test."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def script(self, name: str) -> Path:
        return self.root / "bin" / name

    @property
    def site_packages(self) -> Path:
        purelib = sysconfig.get_path("purelib", vars={"base": str(self.root)})
        return Path(purelib)


def run_clean(argv: list[str | os.PathLike[str]], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with no Python variables of this session that could leak the checkout in."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "PYTEST"))
    }
    return subprocess.run(
        [str(part) for part in argv],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _pip(*arguments: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]


def build_wheel(workdir: Path) -> BuiltWheel:
    """The wheel of this checkout as it is now, built in an isolated environment."""
    sources = workdir / "ouro-obs"
    shutil.copytree(REPO_ROOT, sources, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    output = workdir / "dist"
    built = run_clean(_pip("wheel", "--no-deps", "-q", "-w", output, sources), cwd=workdir)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = output.glob("ouro_obs-*.whl")
    return BuiltWheel(wheel, sources)


def create_venv(root: Path) -> Venv:
    """A fresh virtual environment without pip (this session's pip installs into it)."""
    made = run_clean([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    assert made.returncode == 0, made.stdout + made.stderr
    return Venv(root)


def pip_install(venv: Venv, *arguments: str | os.PathLike[str]) -> None:
    """``pip install`` into ``venv`` with this session's pip (``pip --python``)."""
    installed = run_clean(
        _pip("--python", venv.python, "install", "-q", *arguments),
        cwd=venv.root.parent,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr


def borrow_dependencies(venv: Venv) -> None:
    """Let ``venv`` import this session's third-party packages after its own.

    Only the directory is added, not its ``.pth`` files, so the checkout's editable
    install of ouro-obs stays out: ``ouro_obs`` comes from what ``venv`` installed.
    """
    here = Path(sysconfig.get_path("purelib"))
    (venv.site_packages / "zz-borrowed-dependencies.pth").write_text(f"{here}\n")
