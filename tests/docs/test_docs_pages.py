"""docs/ cannot rot either: its code runs or parses, and every link in it and the README lands.

Shell blocks in docs/ show commands for a cluster or another machine (kubectl, helm,
gunicorn in production) and are checked for bash syntax only; python blocks run, YAML
parses (SLO specs load), PromQL passes promtool's parser.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from ouro_obs.config import ENV_VARIABLES, ObservabilitySettings
from ouro_obs.metrics import MetricNames
from tests.docs.checks import check_promql_block, check_yaml_block, run_python_block
from tests.docs.markdown import (
    SHELL_LANGUAGES,
    Block,
    fenced_blocks,
    github_anchor,
    headings,
    links,
    shell_commands,
)
from tests.support.tools import REPO_ROOT

DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [REPO_ROOT / "README.md", *DOCS]
BLOCKS = [block for page in DOCS for block in fenced_blocks(page)]
KNOWN_LANGUAGES = SHELL_LANGUAGES | {"python", "yaml", "promql", "text", "json", "ini", "toml"}


def block_id(block: Block) -> str:
    return block.where


def by_language(*languages: str) -> list[Block]:
    return [block for block in BLOCKS if block.language in languages]


def test_docs_exist() -> None:
    names = {page.name for page in DOCS}
    expected = {
        "quickstart.md",
        "configuration.md",
        "metrics.md",
        "migrating.md",
        "troubleshooting.md",
        "gunicorn.md",
    }
    assert expected <= names, f"missing: {sorted(expected - names)}"


@pytest.mark.parametrize("block", BLOCKS, ids=block_id)
def test_every_block_names_a_language_this_test_knows(block: Block) -> None:
    assert block.language in KNOWN_LANGUAGES, (
        f"{block.where}: fence language {block.language or '(none)'!r}; use one of "
        f"{', '.join(sorted(KNOWN_LANGUAGES))}"
    )


@pytest.mark.parametrize("block", by_language("python"), ids=block_id)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    run_python_block(block, tmp_path)


@pytest.mark.parametrize("block", by_language(*SHELL_LANGUAGES), ids=block_id)
def test_shell_block_is_valid_bash(block: Block) -> None:
    for command in shell_commands(block):
        completed = subprocess.run(
            ["bash", "-n", "-c", command.text], capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, f"{command.where}: {completed.stderr}"


@pytest.mark.parametrize("block", by_language("yaml"), ids=block_id)
def test_yaml_block_parses_and_specs_load(block: Block) -> None:
    check_yaml_block(block)


@pytest.mark.parametrize("block", by_language("promql"), ids=block_id)
def test_promql_block_parses(block: Block, tmp_path: Path) -> None:
    check_promql_block(block, tmp_path)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for line, target in links(page):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{page.name}:{line}: {target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in headings(destination):
            broken.append(f"{page.name}:{line}: {target} (no heading #{anchor})")
    assert broken == []


def test_github_anchors_follow_githubs_rules() -> None:
    assert github_anchor("The label-set cap and `<overflow>`") == "the-label-set-cap-and-overflow"
    assert github_anchor("Migrating from X, Y") == "migrating-from-x-y"


def test_the_configuration_reference_names_every_setting_and_variable() -> None:
    text = (REPO_ROOT / "docs" / "configuration.md").read_text()
    fields = [field.name for field in dataclasses.fields(ObservabilitySettings)]
    missing = [f"setting {name}" for name in fields if f"`{name}`" not in text]
    missing += [f"variable {name}" for name in ENV_VARIABLES if f"`{name}`" not in text]
    assert missing == [], "docs/configuration.md lacks: " + ", ".join(missing)


def test_the_metric_reference_names_every_metric() -> None:
    text = (REPO_ROOT / "docs" / "metrics.md").read_text()
    names = MetricNames()
    metric_names = [
        getattr(names, attribute)
        for attribute in dir(MetricNames)
        if isinstance(getattr(MetricNames, attribute), property)
    ]
    assert metric_names
    assert [name for name in metric_names if f"`{name}`" not in text] == []
