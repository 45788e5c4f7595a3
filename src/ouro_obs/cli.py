"""The ``ouro-obs`` command: a table of sub-commands, each imported only when it runs.

``ouro-obs --help`` lists the table without importing any command module, so it works on
a bare ``pip install ouro-obs``. ``ouro-obs generate ...`` imports the generator alone;
when a third-party module of the command's extra is missing, the user gets one line
naming the extra to install (exit 2), never a traceback.

A command module provides::

    def configure(name: str, parser: argparse.ArgumentParser) -> None:
        '''Add command ``name``'s arguments and ``parser.set_defaults(handler=fn)``.'''

where ``fn(args: argparse.Namespace) -> int`` runs the command and returns its exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, cast

from ouro_obs import __version__

__all__ = [
    "COMMANDS",
    "EXIT_USAGE",
    "Command",
    "CommandModule",
    "MissingExtraError",
    "build_parser",
    "main",
    "parse_args",
]

#: argparse's own exit status for a wrong command line; a missing extra is one too.
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Command:
    """Where a sub-command lives, the extra its module needs, and its line in ``--help``."""

    module: str
    extra: str
    help: str


#: Every sub-command, in the order ``ouro-obs --help`` lists them.
COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        "generate": Command(
            "ouro_obs.slo.commands",
            "generate",
            "write rules, promtool tests, dashboards and manifests from an SLO spec",
        ),
        "check": Command(
            "ouro_obs.slo.commands",
            "generate",
            "validate an SLO spec and run promtool check/test on its generated rules",
        ),
        "schema": Command(
            "ouro_obs.slo.commands",
            "generate",
            "print the JSON Schema of the SLO spec (for editors)",
        ),
        "budget": Command(
            "ouro_obs.slo.budget_command",
            "generate",
            "release gate: exit non-zero while an SLO's error budget is spent or it pages",
        ),
        "sidecar": Command(
            "ouro_obs.sidecar.cli",
            "sidecar",
            "run the middleware as a reverse proxy in front of a service that is not Python",
        ),
        "demo": Command(
            "ouro_obs.demo.cli",
            "demo",
            "run the whole loop locally: service, Prometheus, rules, traces, load",
        ),
    }
)


class CommandModule(Protocol):
    """What a module named in :data:`COMMANDS` provides."""

    def configure(self, name: str, parser: argparse.ArgumentParser) -> None: ...


class MissingExtraError(Exception):
    """A command needs a third-party module its extra installs; the message says which."""

    def __init__(self, name: str, command: Command, missing_module: str) -> None:
        super().__init__(
            f"ouro-obs {name} needs the {command.extra} extra: "
            f"pip install 'ouro-obs[{command.extra}]'"
        )
        self.missing_module = missing_module


def _missing_extra(name: str, error: ModuleNotFoundError) -> MissingExtraError | None:
    """The user-facing error for ``error``, or None when it is a bug of ouro-obs itself."""
    missing = error.name
    if missing is None or missing == "ouro_obs" or missing.startswith("ouro_obs."):
        return None
    return MissingExtraError(name, COMMANDS[name], missing)


def _load(name: str) -> CommandModule:
    try:
        module = importlib.import_module(COMMANDS[name].module)
    except ModuleNotFoundError as error:
        missing = _missing_extra(name, error)
        if missing is None:
            raise
        raise missing from error
    return cast(CommandModule, module)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ouro-obs`` parser; only ``command`` (if any) gets its module and arguments.

    Raises :class:`MissingExtraError` when ``command``'s module cannot be imported for a
    missing third-party module.
    """
    parser = argparse.ArgumentParser(
        prog="ouro-obs",
        description="Observability for ASGI services: SLO rules, dashboards, sidecar, demo.",
        epilog="Run `ouro-obs COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"ouro-obs {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, entry in COMMANDS.items():
        if name != command:
            # Listed with its help line; never parsed, so it needs no arguments of its own.
            subparsers.add_parser(name, help=entry.help, add_help=False)
            continue
        selected = subparsers.add_parser(name, help=entry.help, description=entry.help)
        _load(name).configure(name, selected)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a full ``ouro-obs`` command line (without the program name)."""
    arguments = list(argv)
    command = arguments[0] if arguments and arguments[0] in COMMANDS else None
    return build_parser(command).parse_args(arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ouro-obs``; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_args(arguments)
        try:
            status: int = args.handler(args)
        except ModuleNotFoundError as error:
            # A command may import part of its extra only when it needs it.
            missing = _missing_extra(args.command, error)
            if missing is None:
                raise
            raise missing from error
    except MissingExtraError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    return status


if __name__ == "__main__":
    sys.exit(main())
