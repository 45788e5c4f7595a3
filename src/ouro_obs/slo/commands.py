"""The ``generate``, ``check`` and ``schema`` commands of ``ouro-obs``.

Exit codes: 0 success; 1 a check failed (promtool, or ``generate --check`` found stale
files); 2 the spec or the command line is wrong, and nothing was written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from ouro_obs.slo.manifests import (
    GENERATED_DIR,
    kustomization,
    prometheus_rule,
    service_monitor,
)
from ouro_obs.slo.render import render_document, write_files
from ouro_obs.slo.rules import rule_groups
from ouro_obs.slo.spec import ServiceSpec, SpecError, load_spec, spec_json_schema
from ouro_obs.slo.tests import promtool_tests

__all__ = [
    "EXIT_BAD_SPEC",
    "EXIT_FAILED",
    "generated_documents",
    "generated_files",
    "register",
    "rule_file_path",
    "rule_test_path",
]

EXIT_FAILED = 1
EXIT_BAD_SPEC = 2
#: promtool's own run time is bounded by the generated tests; this only stops a hang.
PROMTOOL_TIMEOUT_SECONDS = 300


def rule_file_path(spec: ServiceSpec) -> str:
    return f"alerts/{spec.service}.rules.yaml"


def rule_test_path(spec: ServiceSpec) -> str:
    return f"alerts/{spec.service}.rules.test.yaml"


def generated_documents(spec: ServiceSpec) -> dict[str, Any]:
    """Every generated file as data: relative path -> document (pure)."""
    # grafanalib comes with the `generate` extra: importing it here keeps the other
    # sub-commands of `ouro-obs` working without it.
    from ouro_obs.slo.dashboards import dashboard_artifacts  # noqa: PLC0415

    groups = rule_groups(spec)
    rules_path = rule_file_path(spec)
    documents: dict[str, Any] = {
        rules_path: {"groups": groups},
        rule_test_path(spec): promtool_tests(spec, Path(rules_path).name),
        f"{GENERATED_DIR}/prometheusrule.yaml": prometheus_rule(spec, groups),
        f"{GENERATED_DIR}/servicemonitor.yaml": service_monitor(spec),
    }
    for path, document in sorted(dashboard_artifacts(spec).items()):
        if path in documents:
            raise ValueError(f"the dashboards generator also writes {path}")
        documents[path] = document
    kustomization_path = f"{GENERATED_DIR}/kustomization.yaml"
    manifests = [
        path.removeprefix(f"{GENERATED_DIR}/")
        for path in documents
        if path.startswith(f"{GENERATED_DIR}/") and path.endswith((".yaml", ".yml"))
    ]
    documents[kustomization_path] = kustomization(manifests)
    return dict(sorted(documents.items()))


def generated_files(spec: ServiceSpec) -> dict[str, str]:
    """Every generated file as text: relative path -> content (pure, deterministic)."""
    return {path: render_document(path, doc) for path, doc in generated_documents(spec).items()}


def _load(spec_path: str, stderr: TextIO) -> ServiceSpec | None:
    try:
        return load_spec(spec_path)
    except SpecError as error:
        count = len(error.issues)
        print(error.render(), file=stderr)
        print(
            f"ouro-obs: {spec_path}: {count} problem{'s' if count != 1 else ''} in the spec; "
            "nothing was written",
            file=stderr,
        )
        return None


def _stale(root: Path, files: dict[str, str]) -> list[str]:
    stale = []
    for relative, text in files.items():
        target = root / relative
        if not target.is_file() or target.read_bytes() != text.encode("utf-8"):
            stale.append(relative)
    return stale


def _generate(args: argparse.Namespace) -> int:
    spec = _load(args.spec, sys.stderr)
    if spec is None:
        return EXIT_BAD_SPEC
    files = generated_files(spec)
    root = Path(args.output)
    if args.check:
        stale = _stale(root, files)
        for relative in stale:
            print(f"stale: {root / relative}", file=sys.stderr)
        if stale:
            print(
                f"ouro-obs: {len(stale)} generated file(s) are out of date; run: "
                f"ouro-obs generate {args.spec} -o {args.output}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(f"{len(files)} generated files are up to date")
        return 0
    for path in write_files(root, files):
        print(f"wrote {path}")
    return 0


def _run(command: list[str], cwd: Path) -> tuple[int, str]:
    try:
        finished = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return EXIT_FAILED, f"{' '.join(command)} did not finish in {PROMTOOL_TIMEOUT_SECONDS}s"
    return finished.returncode, (finished.stdout + finished.stderr).strip()


def _check(args: argparse.Namespace) -> int:
    spec = _load(args.spec, sys.stderr)
    if spec is None:
        return EXIT_BAD_SPEC
    files = generated_files(spec)
    slos = f"{len(spec.slos)} SLO{'s' if len(spec.slos) != 1 else ''}"
    print(f"{args.spec}: the spec is valid ({slos}, {len(files)} files)")
    if args.promtool is not None and shutil.which(args.promtool) is None:
        print(f"ouro-obs: {args.promtool}: no such promtool (or not executable)", file=sys.stderr)
        return EXIT_BAD_SPEC
    promtool = args.promtool or shutil.which("promtool")
    if promtool is None:
        print(
            "promtool not found: rules not checked; install Prometheus's promtool "
            "(Debian/Ubuntu: apt-get install prometheus) or pass --promtool PATH",
            file=sys.stderr,
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="ouro-obs-check-") as directory:
        root = Path(directory)
        write_files(root, files)
        failed = False
        for action, path in (("check", rule_file_path(spec)), ("test", rule_test_path(spec))):
            status, output = _run([promtool, action, "rules", path], cwd=root)
            verdict = "passed" if status == 0 else "FAILED"
            print(f"promtool {action} rules {path}: {verdict}")
            if status != 0:
                failed = True
                print(output, file=sys.stderr)
    return EXIT_FAILED if failed else 0


def _schema(args: argparse.Namespace) -> int:
    del args
    try:
        print(json.dumps(spec_json_schema(), indent=2), flush=True)
    except BrokenPipeError:
        # `ouro-obs schema | head` closed the pipe early; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def register(subparsers: Any) -> None:
    """Add ``generate``, ``check`` and ``schema`` to the ``ouro-obs`` sub-commands."""
    generate = subparsers.add_parser(
        "generate",
        help="write rules, promtool tests, dashboards and manifests from an SLO spec",
        description="Write alerts/, dashboards/ and deploy/generated/ under DIR from SPEC.",
    )
    generate.add_argument("spec", metavar="SPEC", help="the SLO spec (YAML)")
    generate.add_argument(
        "-o", "--output", metavar="DIR", default=".", help="output directory (default: .)"
    )
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any generated file under DIR differs",
    )
    generate.set_defaults(handler=_generate)

    check = subparsers.add_parser(
        "check",
        help="validate an SLO spec and run promtool check/test on its generated rules",
        description="Validate SPEC, generate into a temporary directory, then run "
        "`promtool check rules` and `promtool test rules` when promtool is installed.",
    )
    check.add_argument("spec", metavar="SPEC", help="the SLO spec (YAML)")
    check.add_argument("--promtool", metavar="PATH", help="promtool binary (default: on PATH)")
    check.set_defaults(handler=_check)

    schema = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of the SLO spec (for editors)",
        description="Print the JSON Schema (Draft 7) of the ouro-obs SLO spec.",
    )
    schema.set_defaults(handler=_schema)
