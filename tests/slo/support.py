"""Helpers shared by the SLO generator tests: golden specs, generation, promtool runs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.environments import output_files
from ouro_obs.slo.render import write_files
from ouro_obs.slo.spec import ServiceSpec, load_spec
from ouro_obs.slo.spec.environments import scoped
from tests.support.tools import REPO_ROOT

TESTDATA = Path(__file__).parent / "testdata"
EXAMPLE_SPEC = REPO_ROOT / "examples" / "shop" / "slo.yaml"
#: The golden specs: testdata/in-<name>.yaml -> testdata/out-<name>/.
GOLDEN_NAMES = tuple(sorted(p.stem.removeprefix("in-") for p in TESTDATA.glob("in-*.yaml")))
#: Set to 1 to rewrite testdata/out-*/ from the current generator.
UPDATE_ENV = "OURO_OBS_UPDATE_GOLDEN"
#: The committed outputs of the example spec, relative to the repository root.
EXAMPLE_OUTPUT_DIRS = ("alertmanager", "alerts", "dashboards", "deploy/generated")
#: The example's environments: each has its committed outputs (alerts/shop-<env>.*, ...).
EXAMPLE_ENVIRONMENTS = ("dev", "staging", "prod")


def example_spec(environment: str = "prod") -> ServiceSpec:
    """The example spec scoped to one environment: what its committed files come from."""
    return scoped(load_spec(EXAMPLE_SPEC), environment)


def example_generated(environment: str = "prod") -> Path:
    """The environment's directory of Kubernetes objects: deploy/generated/<environment>."""
    return REPO_ROOT / "deploy" / "generated" / environment


def golden_input(name: str) -> Path:
    return TESTDATA / f"in-{name}.yaml"


def golden_output(name: str) -> Path:
    return TESTDATA / f"out-{name}"


def updating_golden() -> bool:
    return os.environ.get(UPDATE_ENV) == "1"


def generate(spec_path: Path, output: Path) -> dict[str, str]:
    """Generate ``spec_path`` under ``output``; returns relative path -> text."""
    files = generated_files(load_spec(spec_path))
    write_files(output, files)
    return files


def generate_every_environment(spec_path: Path, output: Path) -> dict[str, str]:
    """What ``ouro-obs generate`` writes for ``spec_path``: every environment's set."""
    files = output_files(load_spec(spec_path))
    write_files(output, files)
    return files


def files_under(root: Path, relative_dirs: Sequence[str] = ("",)) -> dict[str, str]:
    """Relative path -> text of every file below ``root / d`` for each ``d``."""
    found: dict[str, str] = {}
    for relative in relative_dirs:
        base = root / relative
        if not base.exists():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file():
                found[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    return found


@dataclass(frozen=True)
class PromtoolRun:
    command: str
    returncode: int
    output: str


def promtool(binary: str, action: str, path: Path) -> PromtoolRun:
    """``promtool <action> rules <path>`` run in the file's directory."""
    finished = subprocess.run(
        [binary, action, "rules", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return PromtoolRun(
        f"promtool {action} rules {path}", finished.returncode, finished.stdout + finished.stderr
    )


def promtool_many(binary: str, jobs: Sequence[tuple[str, Path]]) -> list[PromtoolRun]:
    """Run promtool jobs ``(action, path)`` concurrently, one per CPU; results in order."""
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: promtool(binary, *job), jobs))
