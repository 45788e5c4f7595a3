"""The ``generate``, ``check`` and ``schema`` commands of ``ouro-obs``.

``ouro_obs.cli`` imports this module only when one of them runs, and calls
:func:`configure` with the command's parser.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from ouro_obs.slo.conventions import rule_file_path, rule_test_path
from ouro_obs.slo.environments import output_files, output_sets
from ouro_obs.slo.render import write_files
from ouro_obs.slo.spec import ServiceSpec, SpecError, load_spec, spec_json_schema

__all__ = ["EXIT_BAD_SPEC", "EXIT_FAILED", "configure"]

EXIT_FAILED = 1
EXIT_BAD_SPEC = 2
#: promtool's own run time is bounded by the generated tests; this only stops a hang.
PROMTOOL_TIMEOUT_SECONDS = 300


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


def _files(args: argparse.Namespace, spec: ServiceSpec) -> dict[str, str] | None:
    try:
        return output_files(spec, args.environment)
    except ValueError as error:
        print(f"ouro-obs: {args.spec}: {error}", file=sys.stderr)
        return None


def _generate(args: argparse.Namespace) -> int:
    spec = _load(args.spec, sys.stderr)
    if spec is None:
        return EXIT_BAD_SPEC
    files = _files(args, spec)
    if files is None:
        return EXIT_BAD_SPEC
    root = Path(args.output)
    if args.check:
        stale = _stale(root, files)
        for relative in stale:
            print(f"stale: {root / relative}", file=sys.stderr)
        if stale:
            print(
                f"ouro-obs: {len(stale)} generated file(s) are out of date; run: "
                f"ouro-obs generate {args.spec} -o {args.output}"
                + (f" --environment {args.environment}" if args.environment else ""),
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
    files = _files(args, spec)
    if files is None:
        return EXIT_BAD_SPEC
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
        runs = [
            (action, path(one))
            for one in output_sets(spec, args.environment)
            for action, path in (("check", rule_file_path), ("test", rule_test_path))
        ]
        # Each environment's files are independent: promtool runs on every core at once,
        # and the verdicts are printed in order.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            results = list(
                pool.map(lambda run: _run([promtool, run[0], "rules", run[1]], cwd=root), runs)
            )
        for (action, relative), (status, output) in zip(runs, results, strict=True):
            verdict = "passed" if status == 0 else "FAILED"
            print(f"promtool {action} rules {relative}: {verdict}")
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


def _environment_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--environment",
        metavar="NAME",
        help="only this environment of the spec's environments (default: every one; "
        "each writes its own files, and deploy/generated/<name>/)",
    )


def _configure_generate(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = "Write alerts/, dashboards/ and deploy/generated/ under DIR from SPEC."
    parser.add_argument("spec", metavar="SPEC", help="the SLO spec (YAML)")
    parser.add_argument(
        "-o", "--output", metavar="DIR", default=".", help="output directory (default: .)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any generated file under DIR differs",
    )
    _environment_option(parser)
    return _generate


def _configure_check(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = (
        "Validate SPEC, generate into a temporary directory, then run "
        "`promtool check rules` and `promtool test rules` when promtool is installed."
    )
    parser.add_argument("spec", metavar="SPEC", help="the SLO spec (YAML)")
    parser.add_argument("--promtool", metavar="PATH", help="promtool binary (default: on PATH)")
    _environment_option(parser)
    return _check


def _configure_schema(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = "Print the JSON Schema (Draft 7) of the ouro-obs SLO spec."
    return _schema


_COMMANDS = {
    "generate": _configure_generate,
    "check": _configure_check,
    "schema": _configure_schema,
}


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of command ``name`` (generate, check or schema) and its handler."""
    if name not in _COMMANDS:
        raise ValueError(f"ouro_obs.slo.commands has no command {name!r}")
    parser.set_defaults(handler=_COMMANDS[name](parser))
