"""The ``ouro-obs`` command imports a command's module only when that command runs."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from types import ModuleType

import pytest

from ouro_obs.cli import COMMANDS, main, parse_args
from ouro_obs.demo import cli as demo_cli

COMMAND_MODULES = sorted({command.module for command in COMMANDS.values()})
#: Third-party modules only the extras bring.
EXTRA_MODULES = ("yaml", "grafanalib", "h11")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_import_ouro_obs_loads_no_yaml_grafanalib_or_h11() -> None:
    loaded = loaded_after("import ouro_obs")
    assert not loaded & set(EXTRA_MODULES)
    assert not loaded & set(COMMAND_MODULES)


def test_the_otlp_exporter_is_imported_only_when_asked_for() -> None:
    exporter = "opentelemetry.exporter.otlp.proto.http"
    assert exporter not in loaded_after("import ouro_obs, ouro_obs.tracing")
    asked = loaded_after("from ouro_obs.tracing import OtlpHttpSpanExporter")
    assert {exporter, "ouro_obs.tracing.otlp"} <= asked


def test_help_lists_every_command_without_importing_any_command_module() -> None:
    loaded = loaded_after(
        "import contextlib, io\n"
        "from ouro_obs.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])"
    )
    assert not loaded & set(COMMAND_MODULES)
    assert not loaded & set(EXTRA_MODULES)


def test_help_shows_each_commands_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    for name, command in COMMANDS.items():
        assert f"{name} {command.help}" in shown


def test_a_command_imports_its_own_module_and_no_other() -> None:
    loaded = loaded_after("from ouro_obs.cli import parse_args\nparse_args(['schema'])")
    assert "ouro_obs.slo.commands" in loaded
    assert not loaded & {"ouro_obs.sidecar.cli", "ouro_obs.demo.cli", "h11"}


def test_every_command_module_configures_its_commands() -> None:
    for name, command in COMMANDS.items():
        module = importlib.import_module(command.module)
        parser = argparse.ArgumentParser(prog=f"ouro-obs {name}")
        module.configure(name, parser)
        assert callable(parser.get_default("handler")), name


def test_a_command_line_parses_into_the_commands_handler() -> None:
    args = parse_args(["demo", "--duration", "30"])
    assert (args.command, args.duration) == ("demo", 30)
    assert args.handler.__module__ == "ouro_obs.demo.cli"


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["nonsense"])
    assert exited.value.code == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == "ouro-obs 0.1.0"


def _import_failing_with(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def import_module(name: str, package: str | None = None) -> ModuleType:
        if name in COMMAND_MODULES:
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)


def test_a_missing_third_party_module_names_the_extra_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _import_failing_with("yaml", monkeypatch)
    assert main(["generate", "spec.yaml"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "ouro-obs generate needs the generate extra: pip install 'ouro-obs[generate]'\n"
    )
    assert captured.out == ""


def test_a_missing_module_of_ouro_obs_itself_is_a_bug_and_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _import_failing_with("ouro_obs.slo.gone", monkeypatch)
    with pytest.raises(ModuleNotFoundError, match=r"ouro_obs\.slo\.gone"):
        main(["generate", "spec.yaml"])


def test_a_module_a_command_imports_late_names_the_extra_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo_cli, "DEMO_MODULES", ("ouro_obs_test_no_such_module",))
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == (
        "ouro-obs demo needs the demo extra: pip install 'ouro-obs[demo]'\n"
    )
