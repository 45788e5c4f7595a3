"""``ouro-obs sidecar``: run the observability reverse proxy in front of any HTTP service.

Service-level settings (service name, metrics namespace, buckets, health paths) come
from the same ``OURO_OBS_*`` / ``OTEL_*`` environment variables as the middleware's
``ObservabilitySettings.from_env()``; the flags describe the proxy itself.

The command module of :mod:`ouro_obs.cli`: :func:`configure` adds the arguments; the proxy,
uvicorn and the OpenTelemetry SDK are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

from ouro_obs.asgi.routes import OpenAPIRouteResolver
from ouro_obs.config import ConfigError, ObservabilitySettings
from ouro_obs.sidecar.upstream import UpstreamTimeouts

if TYPE_CHECKING:
    from ouro_obs.sidecar.server import SidecarConfig

__all__ = ["config_from_args", "configure", "run"]

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


#: ``(flag, default, help)`` of the options naming where to listen.
_ADDRESS_OPTIONS: tuple[tuple[str, tuple[str, int], str], ...] = (
    ("--listen", ("0.0.0.0", 8000), "where clients connect (default 0.0.0.0:8000)"),
    ("--metrics-listen", ("0.0.0.0", 9464), "/metrics and health endpoints (default 0.0.0.0:9464)"),
)
#: ``(flag, default, help)`` of the options taking a number of seconds.
_SECONDS_OPTIONS: tuple[tuple[str, float, str], ...] = (
    ("--connect-timeout", 5.0, "wait for the TCP connection to the upstream (default 5)"),
    (
        "--read-timeout",
        60.0,
        "wait for the response head and for each body chunk (default 60); 504 after it",
    ),
    ("--write-timeout", 60.0, "wait for the upstream to accept request body (default 60)"),
    (
        "--upstream-keepalive",
        4.0,
        "drop idle upstream connections after this; keep it below the upstream's own "
        "idle timeout (default 4; uvicorn closes after 5)",
    ),
    ("--client-keepalive", 75.0, "idle client connections are kept this long (default 75)"),
    (
        "--drain-timeout",
        20.0,
        "on SIGTERM, in-flight requests get this long to finish (default 20)",
    ),
)


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """Add the ``sidecar`` command's arguments to ``parser`` and its handler, :func:`run`."""
    del name
    parser.description = (
        "Proxy every request to UPSTREAM and record the same metrics, access logs and "
        "traces as the middleware. /metrics, /health/live and /health/ready are served "
        "on --metrics-listen; readiness fails while the upstream does not answer."
    )
    parser.add_argument(
        "--upstream", required=True, metavar="URL", help="the service, e.g. http://127.0.0.1:8080"
    )
    for flag, address, text in _ADDRESS_OPTIONS:
        parser.add_argument(flag, type=_address, default=address, metavar="HOST:PORT", help=text)
    _add_route_options(parser)
    parser.add_argument(
        "--health-path",
        metavar="PATH",
        help="upstream path whose status (< 400) decides readiness (default: a TCP connect)",
    )
    for flag, seconds, text in _SECONDS_OPTIONS:
        parser.add_argument(flag, type=_seconds, default=seconds, metavar="SECONDS", help=text)
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


def _add_route_options(parser: argparse.ArgumentParser) -> None:
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


def config_from_args(args: argparse.Namespace) -> SidecarConfig:
    """The :class:`~ouro_obs.sidecar.server.SidecarConfig` the parsed flags describe."""
    from ouro_obs.sidecar.server import SidecarConfig  # noqa: PLC0415 - imports uvicorn

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
    from ouro_obs.sidecar.server import Sidecar, SidecarStartError  # noqa: PLC0415
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
