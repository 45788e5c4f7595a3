"""``ouro-obs sidecar``: run the observability reverse proxy in front of any HTTP service.

Service-level settings (service name, metrics namespace, buckets, health paths) come
from the same ``OURO_OBS_*`` / ``OTEL_*`` environment variables as the middleware's
``ObservabilitySettings.from_env()``; the flags describe the proxy itself.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ouro_obs.config import ConfigError, ObservabilitySettings
from ouro_obs.routes import OpenAPIRouteResolver
from ouro_obs.upstream import UpstreamTimeouts

__all__ = ["config_from_args", "register", "run"]

_log = logging.getLogger("ouro_obs.sidecar")


def _address(value: str) -> tuple[str, int]:
    host, separator, port = value.rpartition(":")
    if not separator or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT, e.g. 0.0.0.0:8000")
    return host.strip("[]") or "0.0.0.0", int(port)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r}: use a number of seconds above 0")
    return seconds


def register(subparsers: Any) -> None:
    """Add the ``sidecar`` sub-command to the ``ouro-obs`` parser."""
    parser = subparsers.add_parser(
        "sidecar",
        help="reverse proxy with metrics, logs and traces in front of any HTTP service",
        description=(
            "Proxy every request to UPSTREAM and record the same metrics, access logs and "
            "traces as the middleware. /metrics, /health/live and /health/ready are served "
            "on --metrics-listen; readiness fails while the upstream does not answer."
        ),
    )
    parser.add_argument(
        "--upstream", required=True, metavar="URL", help="the service, e.g. http://127.0.0.1:8080"
    )
    parser.add_argument(
        "--listen",
        type=_address,
        default=("0.0.0.0", 8000),
        metavar="HOST:PORT",
        help="where clients connect (default 0.0.0.0:8000)",
    )
    parser.add_argument(
        "--metrics-listen",
        type=_address,
        default=("0.0.0.0", 9464),
        metavar="HOST:PORT",
        help="/metrics and health endpoints (default 0.0.0.0:9464)",
    )
    routes = parser.add_mutually_exclusive_group()
    routes.add_argument(
        "--openapi",
        metavar="FILE",
        help="the upstream's OpenAPI 3 (or Swagger 2) document, JSON or YAML: route labels",
    )
    routes.add_argument(
        "--routes",
        metavar="FILE",
        help="route templates, one per line (/users/{user_id}); # starts a comment",
    )
    parser.add_argument(
        "--ignore-openapi-servers",
        action="store_true",
        help="do not prefix paths with the path of the document's servers[].url",
    )
    parser.add_argument(
        "--health-path",
        metavar="PATH",
        help="upstream path whose status (< 400) decides readiness (default: a TCP connect)",
    )
    parser.add_argument("--connect-timeout", type=_seconds, default=5.0, metavar="SECONDS")
    parser.add_argument(
        "--read-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="wait for the response head and for each body chunk (default 60); 504 after it",
    )
    parser.add_argument(
        "--write-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="wait for the upstream to accept request body (default 60)",
    )
    parser.add_argument(
        "--upstream-keepalive",
        type=_seconds,
        default=4.0,
        metavar="SECONDS",
        help="drop idle upstream connections after this; keep it below the upstream's own "
        "idle timeout (default 4; uvicorn closes after 5)",
    )
    parser.add_argument(
        "--client-keepalive",
        type=_seconds,
        default=75.0,
        metavar="SECONDS",
        help="idle client connections are kept this long (default 75)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=20.0,
        metavar="SECONDS",
        help="on SIGTERM, in-flight requests get this long to finish (default 20)",
    )
    parser.add_argument(
        "--forwarded",
        choices=("append", "replace"),
        default="append",
        help="append: keep X-Forwarded-Proto/Host from the hop before and append to "
        "X-Forwarded-For (default); replace: describe this hop only",
    )
    parser.add_argument("--service-name", help="overrides OTEL_SERVICE_NAME")
    parser.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        help="overrides OURO_OBS_LOG_LEVEL (default info)",
    )
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~ouro_obs.sidecar.SidecarConfig` the parsed flags describe."""
    from ouro_obs.sidecar import SidecarConfig  # noqa: PLC0415 - imports uvicorn; only here

    return SidecarConfig(
        upstream=args.upstream,
        host=args.listen[0],
        port=args.listen[1],
        metrics_host=args.metrics_listen[0],
        metrics_port=args.metrics_listen[1],
        timeouts=UpstreamTimeouts(args.connect_timeout, args.read_timeout, args.write_timeout),
        upstream_keepalive=args.upstream_keepalive,
        health_path=args.health_path,
        forwarded=args.forwarded,
        client_keepalive=args.client_keepalive,
        drain_timeout=args.drain_timeout,
        log_level=args.log_level or "info",
    )


def _route_resolver(args: argparse.Namespace) -> OpenAPIRouteResolver | None:
    if args.openapi:
        return OpenAPIRouteResolver.from_openapi_file(
            args.openapi, server_paths=not args.ignore_openapi_servers
        )
    if args.routes:
        return OpenAPIRouteResolver.from_routes_file(args.routes)
    return None


def run(args: argparse.Namespace) -> int:
    """Start the sidecar and block until it has drained; 2 on bad configuration."""
    # Imported here, so `ouro-obs generate` never loads the proxy, uvicorn or the OTel SDK.
    from ouro_obs.logs import configure_logging  # noqa: PLC0415
    from ouro_obs.sidecar import Sidecar, SidecarStartError  # noqa: PLC0415
    from ouro_obs.tracing import configure_tracing  # noqa: PLC0415

    try:
        overrides: dict[str, Any] = {}
        if args.service_name:
            overrides["service_name"] = args.service_name
        if args.log_level:
            overrides["log_level"] = args.log_level
        settings = ObservabilitySettings.from_env(**overrides)
        args.log_level = settings.log_level
        config = config_from_args(args)
        resolver = _route_resolver(args)
        configure_logging(settings)
        configure_tracing(settings)
    except (ConfigError, ValueError) as error:
        print(f"ouro-obs sidecar: {error}", file=sys.stderr)
        return 2
    if resolver is None:
        _log.warning(
            "no --openapi or --routes: every request is labelled route=%r",
            settings.unmatched_route_label,
        )
    else:
        _log.info("%d route templates loaded", len(resolver.templates))
    sidecar = Sidecar(config, settings, route_resolver=resolver)
    _log.info(
        "proxying %s:%d -> %s; metrics and health on %s:%d",
        config.host,
        config.port,
        config.upstream,
        config.metrics_host,
        config.metrics_port,
    )
    try:
        sidecar.run()
    except SidecarStartError as error:
        _log.error("%s", error)
        return 1
    return 0
