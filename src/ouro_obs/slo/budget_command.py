"""The ``budget`` command of ``ouro-obs``: the error-budget release gate.

``ouro-obs budget SPEC --prometheus URL`` asks Prometheus' HTTP API (the standard
library's urllib, no extra needed) what :mod:`ouro_obs.slo.budget` needs, prints per
SLO the budget left, the burn rates and the page alert, and exits with the gate's
status (listed in :mod:`ouro_obs.slo.budget`). ``ouro_obs.cli`` imports this module
only when the command runs and calls :func:`configure` with its parser.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from ouro_obs.slo.budget import (
    EXIT_UNREACHABLE,
    Sample,
    firing_pages_query,
    gate_exit_code,
    recordings_query,
    report_json,
    report_text,
    slo_budgets,
    unreachable_json,
)
from ouro_obs.slo.spec import SpecError, load_spec

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "EXIT_BAD_SPEC", "PrometheusError", "configure", "query"]

#: A wrong spec or command line, as for ``generate``; argparse exits 2 too.
EXIT_BAD_SPEC = 2
DEFAULT_TIMEOUT_SECONDS = 10.0


class PrometheusError(Exception):
    """Prometheus did not answer the query API; the message says what happened."""


def _get(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        error.close()  # the error holds the connection's socket
        raise PrometheusError(f"its query API answered HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PrometheusError(f"it cannot be reached: {reason}") from error
    try:
        return json.loads(body)
    except ValueError as error:
        raise PrometheusError(
            "its query API did not answer with JSON: is it Prometheus?"
        ) from error


def query(prometheus: str, promql: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[Sample]:
    """An instant query at the current time; raises :class:`PrometheusError`."""
    url = f"{prometheus.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    document = _get(url, timeout)
    data = document.get("data") if isinstance(document, dict) else None
    if document.get("status") != "success" or not isinstance(data, dict):
        raise PrometheusError(f"the query failed: {document.get('error', document)}")
    if data.get("resultType") != "vector":
        raise PrometheusError(f"expected a vector, got {data.get('resultType')!r}")
    return [Sample(labels=item["metric"], value=float(item["value"][1])) for item in data["result"]]


def _budget(args: argparse.Namespace) -> int:
    if urllib.parse.urlsplit(args.prometheus).scheme not in ("http", "https"):
        print(
            f"ouro-obs budget: --prometheus {args.prometheus}: give the base URL with its "
            "scheme, e.g. http://prometheus-operated.monitoring.svc:9090",
            file=sys.stderr,
        )
        return EXIT_BAD_SPEC
    try:
        spec = load_spec(args.spec)
    except SpecError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        recordings = query(args.prometheus, recordings_query(spec), args.timeout)
        firing = query(args.prometheus, firing_pages_query(spec), args.timeout)
    except PrometheusError as error:
        print(
            f"ouro-obs budget: no answer from Prometheus at {args.prometheus}, {error}; "
            f"the gate cannot tell, so it does not pass (exit {EXIT_UNREACHABLE})",
            file=sys.stderr,
        )
        if args.json:
            print(json.dumps(unreachable_json(spec, args.prometheus, str(error)), indent=2))
        return EXIT_UNREACHABLE
    budgets = slo_budgets(spec, recordings, firing)
    if args.json:
        print(json.dumps(report_json(spec, args.prometheus, budgets), indent=2))
    else:
        print(report_text(spec, budgets), end="")
    return gate_exit_code(budgets)


def _configure_budget(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = (
        "Print each SLO's error budget left, burn rates and page alert from Prometheus. "
        "Exit 0: the release may go; 1: a budget is spent or a page alert fires; "
        "2: bad spec or arguments; 3: Prometheus did not answer; 4: no budget recorded."
    )
    parser.add_argument("spec", metavar="SPEC", help="the SLO spec (YAML)")
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        required=True,
        help="Prometheus base URL, e.g. http://prometheus-operated.monitoring.svc:9090",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document instead")
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"per request (default: {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    return _budget


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """Add the ``budget`` command's arguments and its handler."""
    if name != "budget":
        raise ValueError(f"ouro_obs.slo.budget_command has no command {name!r}")
    parser.set_defaults(handler=_configure_budget(parser))
