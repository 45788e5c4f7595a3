"""The ``ouro-obs`` command: ``generate | check | schema | sidecar | demo``.

Each sub-command lives in the module that owns its concern and exposes
``register(subparsers)``; this module only assembles them, so that importing
the middleware never imports the generator, the proxy or the demo.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

# Module path of every sub-command provider, in the order `--help` lists them.
_COMMAND_MODULES = (
    "ouro_obs.slo.commands",
    "ouro_obs.sidecar_cli",
    "ouro_obs.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ouro-obs",
        description="Observability for ASGI services: SLO rules, dashboards, sidecar, demo.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                continue  # that command is not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    status: int = handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
