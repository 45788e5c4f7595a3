"""``pip install ouro-obs`` with no extras: the middleware imports, the CLI helps and guides.

A fresh virtual environment gets the wheel of this checkout and its base dependencies
only; every command runs from a directory outside the checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ouro_obs.cli import COMMANDS
from tests.support.packaging import Venv, run_clean

pytestmark = pytest.mark.integration


def test_the_bare_install_has_none_of_the_extras(bare_venv: Venv, tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u; "
        "print([m for m in ('yaml', 'grafanalib', 'h11', 'locust') if u.find_spec(m)])"
    )
    result = run_clean([bare_venv.python, "-c", probe], cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_the_middleware_imports_on_a_bare_install(bare_venv: Venv, tmp_path: Path) -> None:
    probe = "import ouro_obs; print(ouro_obs.__file__); print(ouro_obs.ObservabilityMiddleware)"
    result = run_clean([bare_venv.python, "-c", probe], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(bare_venv.root))


def test_help_lists_every_command_on_a_bare_install(bare_venv: Venv, tmp_path: Path) -> None:
    result = run_clean([bare_venv.script("ouro-obs"), "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for name, command in COMMANDS.items():
        assert name in result.stdout
        assert command.help in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["generate", "x.yaml"], "generate"),
        (["check", "x.yaml"], "generate"),
        (["schema"], "generate"),
        (["sidecar", "--upstream", "http://127.0.0.1:9"], "sidecar"),
        (["demo"], "demo"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else value,
)
def test_a_command_without_its_extra_names_the_extra_in_one_line(
    bare_venv: Venv, tmp_path: Path, argv: list[str], extra: str
) -> None:
    result = run_clean([bare_venv.script("ouro-obs"), *argv], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"ouro-obs {argv[0]} needs the {extra} extra: pip install 'ouro-obs[{extra}]'\n"
    )
