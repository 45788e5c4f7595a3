"""The README cannot rot: every command and code block in it is exercised here.

- ``python`` blocks run, each in a fresh interpreter of the project's environment.
- Shell commands run with bash, one by one, in a scratch copy of the repository, so a
  command that writes files cannot change the checkout. Two commands are not run here
  because they run for minutes: they are listed in :data:`LONG_RUNNING` with the test
  that covers each; a README line may say ``# test: skip-long`` only if it is one of them.
- ``yaml`` blocks that are SLO specs load with the spec loader; other YAML must parse.
- ``promql`` blocks pass promtool's parser.
- Every block names its language, so that none escapes these rules.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docs.checks import (
    TIMEOUT_SECONDS,
    check_promql_block,
    check_yaml_block,
    run_environment,
    run_python_block,
)
from tests.docs.markdown import SHELL_LANGUAGES, Block, Command, fenced_blocks, shell_commands
from tests.support.tools import REPO_ROOT

README = REPO_ROOT / "README.md"
SKIP_MARKER = "test: skip-long"
#: The README's long-running commands, and what covers each instead.
LONG_RUNNING = {
    "./scripts/demo.sh": "tests/demo/test_demo.py runs `ouro-obs demo`, which the script execs",
    "./scripts/test.sh": "CI runs it (.ci/run); it runs this very test",
}
#: Languages whose blocks are shown, not run (output samples, plain text).
SHOWN_ONLY = frozenset({"text", "promql", "json", "toml", "ini", "dockerfile", "diff"})
KNOWN_LANGUAGES = SHELL_LANGUAGES | SHOWN_ONLY | {"python", "yaml"}

BLOCKS = fenced_blocks(README)
PYTHON_BLOCKS = [block for block in BLOCKS if block.language == "python"]
COMMANDS = [
    command
    for block in BLOCKS
    if block.language in SHELL_LANGUAGES
    for command in shell_commands(block)
]
RUN_COMMANDS = [command for command in COMMANDS if command.text not in LONG_RUNNING]


def block_id(block: Block) -> str:
    return block.where


def command_id(command: Command) -> str:
    return f"{command.where}:{command.text[:40]}"


@pytest.fixture(scope="module")
def scratch_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout to run commands in, sharing the project's virtualenvs."""
    target = tmp_path_factory.mktemp("readme") / "repo"
    shutil.copytree(
        REPO_ROOT,
        target,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".tools-venv", ".demo", "*_cache", "__pycache__", "*.egg-info"
        ),
        symlinks=True,
    )
    for venv in (".venv", ".tools-venv"):
        if (REPO_ROOT / venv).exists():
            (target / venv).symlink_to(REPO_ROOT / venv)
    return target


def test_the_readme_has_blocks_to_check() -> None:
    assert PYTHON_BLOCKS, "README.md has no python block: the one-line integration is missing"
    assert COMMANDS, "README.md has no shell command: the two commands are missing"


@pytest.mark.parametrize("block", BLOCKS, ids=block_id)
def test_every_block_names_a_language_this_test_knows(block: Block) -> None:
    assert block.language in KNOWN_LANGUAGES, (
        f"{block.where}: fence language {block.language or '(none)'!r}; use one of "
        f"{', '.join(sorted(KNOWN_LANGUAGES))} so the block is checked (or extend this test)"
    )


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=block_id)
def test_python_block_runs(block: Block, scratch_repository: Path) -> None:
    run_python_block(block, scratch_repository)


@pytest.mark.parametrize("command", COMMANDS, ids=command_id)
def test_shell_command_is_valid_bash(command: Command) -> None:
    completed = subprocess.run(
        ["bash", "-n", "-c", command.text], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, f"{command.where}: {completed.stderr}"


@pytest.mark.integration
@pytest.mark.parametrize("command", RUN_COMMANDS, ids=command_id)
def test_shell_command_runs(command: Command, scratch_repository: Path) -> None:
    assert SKIP_MARKER not in command.comment, (
        f"{command.where}: only {', '.join(LONG_RUNNING)} may be marked {SKIP_MARKER!r}; "
        "make this command fast enough to run here"
    )
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command.text],
        cwd=scratch_repository,
        env=run_environment(scratch_repository),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{command.where}: `{command.text}` exited {completed.returncode}\n"
        f"{completed.stdout}{completed.stderr}"
    )


def test_the_long_running_commands_are_in_the_readme_and_covered_elsewhere() -> None:
    texts = {command.text for command in COMMANDS}
    for text, covered_by in LONG_RUNNING.items():
        assert text in texts, f"README.md no longer shows {text}; update LONG_RUNNING"
        script = REPO_ROOT / text
        assert script.is_file(), f"{text} does not exist"
        assert os.access(script, os.X_OK), f"{text} is not executable"
        assert covered_by
    demo_script = (REPO_ROOT / "scripts" / "demo.sh").read_text()
    assert re.search(r"^exec \.venv/bin/ouro-obs demo \"\$@\"$", demo_script, re.M), (
        "scripts/demo.sh must exec `ouro-obs demo`, which tests/demo/test_demo.py runs"
    )
    assert (REPO_ROOT / "tests" / "demo" / "test_demo.py").is_file()
    assert "scripts/test.sh" in (REPO_ROOT / ".ci" / "run").read_text(), (
        ".ci/run must run scripts/test.sh, or ./scripts/test.sh is checked by nothing"
    )


def test_only_the_long_running_commands_carry_the_skip_marker() -> None:
    marked = {command.text for command in COMMANDS if SKIP_MARKER in command.comment}
    assert marked <= set(LONG_RUNNING), (
        f"marked {SKIP_MARKER!r} but not long-running: {sorted(marked - set(LONG_RUNNING))}"
    )


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "yaml"], ids=block_id)
def test_yaml_block_parses_and_specs_load(block: Block) -> None:
    check_yaml_block(block)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "promql"], ids=block_id)
def test_promql_block_parses(block: Block, tmp_path: Path) -> None:
    check_promql_block(block, tmp_path)
