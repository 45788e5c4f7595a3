"""Checks shared by the README and docs/ tests: run, parse or compile one block."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from ouro_obs.slo.spec import parse_spec
from tests.docs.markdown import Block, promql_statements
from tests.support.tools import require_tool

__all__ = ["check_promql_block", "check_yaml_block", "run_environment", "run_python_block"]

#: `ouro-obs check` on the example runs promtool for three environments (a minute of CPU).
TIMEOUT_SECONDS = 300


def run_environment(root: Path) -> dict[str, str]:
    """The environment commands run in: the project's virtualenvs first on PATH."""
    path = os.pathsep.join(
        [str(root / ".venv" / "bin"), str(root / ".tools-venv" / "bin"), os.environ["PATH"]]
    )
    return {**os.environ, "PATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def run_python_block(block: Block, cwd: Path) -> None:
    """Run the block in a fresh interpreter of the project's environment."""
    completed = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=cwd,
        env=run_environment(cwd),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, f"{block.where}:\n{completed.stdout}{completed.stderr}"


def check_yaml_block(block: Block) -> None:
    documents = list(yaml.safe_load_all(block.text))
    assert documents, f"{block.where}: empty YAML block"
    for document in documents:
        if isinstance(document, dict) and document.get("apiVersion") == "ouro-obs/v1":
            parse_spec(block.text, source=block.where)


def check_promql_block(block: Block, tmp_path: Path) -> None:
    """Each query becomes a recording rule, so that ``promtool check rules`` parses it."""
    promtool = require_tool("promtool")
    statements = promql_statements(block)
    assert statements, f"{block.where}: no query in the block"
    rules = {
        "groups": [
            {
                "name": "docs",
                "rules": [
                    {"record": f"docs:query:{index}", "expr": statement}
                    for index, statement in enumerate(statements)
                ],
            }
        ]
    }
    rule_file = tmp_path / "docs.rules.yaml"
    rule_file.write_text(yaml.safe_dump(rules))
    completed = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, f"{block.where}:\n{completed.stdout}{completed.stderr}"
