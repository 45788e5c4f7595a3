"""The observed request's path: begin, the app, finish; settled once, at the first request.

:class:`RequestPipeline` holds what does not change between requests, including what can
only be known once the app has started (its tracer provider, its logging, its error
handlers): it is built by the first request and immutable after. For each request it

1. :meth:`~RequestPipeline.begin`: counts the request in flight, resolves the route if a
   resolver knows it up front, reads the headers it needs once, binds the request id for
   log lines and starts the SERVER span (the parent of the app's spans);
2. (the app runs, through the :class:`~ouro_obs.asgi.exchange.Exchange`);
3. :meth:`~RequestPipeline.finish`: at the last byte, or when the app returned, settles the
   exchange, which is the request's :class:`~ouro_obs.asgi.record.RequestRecord`, and
   hands it to the recorders (span, metrics, access line);
4. :meth:`~RequestPipeline.leave`: restores the context the request entered with.

Every step that calls instrumentation goes through the one
:class:`~ouro_obs.asgi.recorders.Failsafe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import Context, ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Final

from opentelemetry import trace
from starlette.types import Scope
from structlog.contextvars import bind_contextvars

from ouro_obs.asgi.errors import (
    answers_unhandled_errors,
    name_request_on,
    name_requests_in_handler,
    send_internal_error,
)
from ouro_obs.asgi.exchange import DepartureWatch, Exchange
from ouro_obs.asgi.recorders import Failsafe, Recorder, RequestMetrics
from ouro_obs.asgi.request_id import accepted_request_id, new_request_id
from ouro_obs.asgi.routes import RouteResolver, RouteTemplates
from ouro_obs.config import ObservabilitySettings
from ouro_obs.logs.access import AccessLog
from ouro_obs.logs.redaction import query_names
from ouro_obs.metrics.instruments import RouteInFlight
from ouro_obs.tracing.spans import ServerSpans, SpanRecorder

__all__ = ["RequestPipeline"]

# What a request header is read for; propagation fields map to their own names instead.
_REQUEST_ID: Final = 1
_USER_AGENT: Final = 2
_HOST: Final = 3
_HeaderRoles = Mapping[bytes, int | str]


@dataclass(frozen=True, slots=True)
class RequestPipeline:
    """How every HTTP request is observed; see the module docstring for the steps.

    The middleware builds one from its options, and the first request turns it into the
    one that serves, with :meth:`settled`.
    """

    failsafe: Failsafe
    metrics: RequestMetrics
    route_resolver: RouteResolver | None
    route_templates: RouteTemplates
    unmatched_route: str
    #: The request id header (lower case); None when request ids are off.
    request_id_header: bytes | None
    accept_request_id: bool
    #: Where SERVER spans come from once the tracer provider is known; None: no tracing.
    span_source: ServerSpans | None
    access_log: AccessLog | None
    #: Arms the client-departure listener of requests that run longer than a moment.
    departures: DepartureWatch
    #: The in-flight gauge by route (``inflight_by_route``); None: by method, in ``metrics``.
    route_in_flight: RouteInFlight | None = None
    # What :meth:`settled` decides, for the app as the first request finds it:
    #: Starts SERVER spans; None when nothing would record them.
    spans: SpanRecorder | None = None
    #: Recorders of the finished request, in the order they run.
    recorders: tuple[Recorder, ...] = ()
    #: The request headers :meth:`begin` reads, and what for.
    header_roles: _HeaderRoles = field(default_factory=dict)
    #: Whether :meth:`begin` reads headers, binds a request id or starts a span.
    enters: bool = False
    #: Whether the middleware itself sends the plain 500 for an unhandled exception.
    answers_errors: bool = False
    #: The Starlette app directly inside us, when the middleware wraps one itself (the app
    #: then puts itself in the scope only once it runs); what routes are matched against
    #: before the app runs, for :attr:`route_in_flight`.
    wrapped_routes_app: Any = None

    @classmethod
    def from_settings(
        cls,
        settings: ObservabilitySettings,
        *,
        failsafe: Failsafe,
        metrics: RequestMetrics,
        route_resolver: RouteResolver | None,
        tracer_provider: trace.TracerProvider | None,
        logger: Any,
        route_in_flight: RouteInFlight | None = None,
    ) -> RequestPipeline:
        """The pipeline ``settings`` describe, to be :meth:`settled` by the first request.

        ``logger`` writes the access line (default: see
        :class:`~ouro_obs.logs.access.AccessLog`); ``tracer_provider`` makes the spans (default: the global one).
        """
        access_log = None
        if settings.access_log:
            access_log = AccessLog(logger, settings)
        span_source = None
        if settings.tracing:
            span_source = ServerSpans(
                tracer_provider,
                query_names(settings.redact_query_params),
                settings.unmatched_route_label,
            )
        return cls(
            failsafe=failsafe,
            metrics=metrics,
            route_resolver=route_resolver,
            route_templates=RouteTemplates(),
            unmatched_route=settings.unmatched_route_label,
            request_id_header=settings.request_id_header.encode("latin-1") or None,
            accept_request_id=settings.accept_request_id,
            span_source=span_source,
            access_log=access_log,
            departures=DepartureWatch(failsafe),
            route_in_flight=route_in_flight,
        )

    def settled(self, scope: Scope | None, middleware: object = None) -> RequestPipeline:
        """This pipeline for the app as the first request (``scope``) finds it.

        ``middleware`` is the instance serving it (whether it answers errors depends on
        what is directly outside it). ``scope=None`` settles nothing that depends on the
        app: no spans, the access logger left as given, Starlette left to answer errors
        (the fallback when settling failed).
        """
        spans = None
        access_log = self.access_log
        if scope is not None:
            spans = None if self.span_source is None else self.span_source.resolve()
            access_log = None if access_log is None else access_log.resolved()
        recorders: list[Recorder] = [self.metrics] if spans is None else [spans, self.metrics]
        if access_log is not None:
            recorders.append(access_log)
        header_roles = _header_roles(
            spans,
            wants_user_agent=spans is not None or access_log is not None,
            request_id_header=self.request_id_header if self.accept_request_id else None,
        )
        answers_errors = scope is not None and answers_unhandled_errors(scope, middleware)
        if scope is not None:
            name_requests_in_handler(scope, self.request_id_header)
        return replace(
            self,
            access_log=access_log,
            # The listener's context matters to the access line (and is kept for the span's
            # recorders); the metrics need none, and a copy per request is not free.
            departures=DepartureWatch(
                self.failsafe, keep_context=access_log is not None or spans is not None
            ),
            spans=spans,
            recorders=tuple(recorders),
            header_roles=header_roles,
            enters=bool(header_roles) or self.request_id_header is not None or spans is not None,
            answers_errors=answers_errors,
            wrapped_routes_app=_routes_app(getattr(middleware, "app", None)),
        )

    def begin(self, exchange: Exchange) -> None:
        """Everything that must happen before the app runs."""
        # The two steps of every request catch their errors here rather than through
        # Failsafe.call: a call frame less each, per request.
        try:
            self.metrics.started(exchange)
        except Exception:
            self.failsafe.failed("metrics")
        if self.route_resolver is not None:
            known: str | None = self.failsafe.call("route", self.route_resolver, exchange.scope)
            exchange.route = known or ""
        if self.route_in_flight is not None:
            self.failsafe.call("metrics", self._started_on_route, exchange)
        if self.enters:
            try:
                self._enter(exchange)
            except Exception:
                self.failsafe.failed("request")
        self.departures.add(exchange)  # last: in the context the app runs in

    def _started_on_route(self, exchange: Exchange) -> None:
        """Count the request in flight on its route, found now from the app's routes.

        A template found now labels the whole request. When none is found (the app is not
        a Starlette one, or rewrites the path), the gauge counts the request as unmatched
        and :meth:`finish` still asks the router's answer for the other metrics.
        """
        assert self.route_in_flight is not None
        if not exchange.route:
            scope = exchange.scope
            if "app" not in scope and self.wrapped_routes_app is not None:
                scope = {**scope, "app": self.wrapped_routes_app}
            found = self.failsafe.call("route", self.route_templates, scope, exchange.root_path)
            exchange.route = found or ""
        self.route_in_flight.started(exchange.method, exchange.route or self.unmatched_route)

    def _enter(self, exchange: Exchange) -> None:
        """Read the headers once; bind the request id for log lines; start the span."""
        scope = exchange.scope
        incoming: bytes | None = None
        host: bytes | None = None
        carrier: dict[str, str] | None = None
        roles = self.header_roles
        if roles:
            for name, value in scope["headers"]:
                role = roles.get(name)
                if role is None:
                    continue
                if type(role) is str:
                    if carrier is None:
                        carrier = {}
                    carrier[role] = value.decode("latin-1")
                elif role == _USER_AGENT:
                    exchange.user_agent = value
                elif role == _HOST:
                    host = value
                elif incoming is None:
                    incoming = value
        header = self.request_id_header
        if header is not None:
            request_id = (accepted_request_id(incoming) if incoming else None) or new_request_id()
            exchange.request_id = request_id
            exchange.response_header = (header, request_id.encode("ascii"))
            exchange.request_id_binding = _REQUEST_ID_VAR.set(request_id)
        if self.spans is not None:
            self.spans.start(exchange, carrier, host)
        if exchange.request_id is not None:  # for the app: request.state.request_id
            state = scope.get("state")
            if state is None:
                scope["state"] = {"request_id": exchange.request_id}
            else:  # the server's per-request copy of the lifespan state
                state["request_id"] = exchange.request_id

    async def app_raised(self, exchange: Exchange, error: Exception) -> None:
        """The app raised: answer it if that is ours to do, and name the request on it."""
        exchange.error = error
        if self.answers_errors and exchange.status_sent is None:
            await send_internal_error(exchange.send)
        self.failsafe.call(
            "request", name_request_on, error, exchange.request_id, exchange.span_ids
        )

    async def app_returned_unanswered(self, exchange: Exchange) -> None:
        """The app returned without starting a response: send the server's 500 ourselves.

        Only where the server would send its own bare 500 (see :attr:`answers_errors`),
        so that the answer carries the request id header like every other.
        """
        if self.answers_errors and not exchange.client_gone:
            await send_internal_error(exchange.send)

    def finish(self, exchange: Exchange) -> None:
        """Settle the finished exchange's record and hand it to the recorders."""
        failsafe = self.failsafe
        route = exchange.route
        in_flight = self.route_in_flight
        if in_flight is not None:  # under the labels begin counted it with
            failsafe.call(
                "metrics", in_flight.ended, exchange.method, route or self.unmatched_route
            )
        if not route:
            try:  # not through Failsafe.call: a call frame less per request
                template = self.route_templates.template(exchange.scope, exchange.root_path)
            except Exception:
                failsafe.failed("route")
                template = None
            route = template or self.unmatched_route
        record = exchange.settle(route)
        for recorder in self.recorders:  # one that raises does not stop the others
            try:
                recorder.record(record)
            except Exception:
                failsafe.failed(recorder.stage)

    def leave(self, exchange: Exchange) -> None:
        """Restore the context the request entered with (its span, its request id).

        Only needed when :meth:`begin` started a span or bound a request id.
        """
        if exchange.span_token is not None:
            SpanRecorder.detach(exchange.span_token)
        binding = exchange.request_id_binding
        if binding is not None:
            try:  # noqa: SIM105 (per request: a try costs less than contextlib.suppress)
                _REQUEST_ID_VAR.reset(binding)
            except ValueError:  # a token made in another context
                pass

    def route_template(self, scope: Scope, root_path: str) -> str:
        """The template of a request the app has routed (the unmatched label when none)."""
        template = self.failsafe.call("route", self.route_templates, scope, root_path)
        return self.unmatched_route if template is None else template


def _structlog_var(key: str) -> ContextVar[Any]:
    """The context variable structlog binds ``key`` in (its ``bind_contextvars``).

    Found through the token of a binding made in an empty context, so nothing is bound
    anywhere else. Setting it is what ``bind_contextvars(key=...)`` does, without the
    mapping of tokens and the name lookup per request; ``merge_contextvars`` and
    ``clear_contextvars`` see it as theirs.
    """
    token: Any = Context().run(bind_contextvars, **{key: None})[key]
    var: ContextVar[Any] = token.var
    return var


#: The request id as structlog's ``merge_contextvars`` finds it in every log line.
_REQUEST_ID_VAR: Final = _structlog_var("request_id")


def _routes_app(app: object) -> object:
    """``app`` if it holds a route table (a Starlette or FastAPI application), else None."""
    return app if isinstance(getattr(app, "routes", None), list) else None


def _header_roles(
    spans: SpanRecorder | None, *, wants_user_agent: bool, request_id_header: bytes | None
) -> _HeaderRoles:
    roles: dict[bytes, int | str] = {}
    if spans is not None:
        for field_name in spans.header_fields:
            roles[field_name.lower().encode("latin-1")] = field_name
        roles[b"host"] = _HOST
    if wants_user_agent:
        roles[b"user-agent"] = _USER_AGENT
    if request_id_header is not None:
        roles[request_id_header] = _REQUEST_ID
    return roles
