"""WebSocket connections: one record per connection, handed to its recorders through the failsafe.

:class:`WebSocketObserver` wraps a connection's ``receive`` and ``send``. On accept it
counts the connection under its route template and from then on counts messages each way
as they pass; when the app returns or raises it settles a :class:`WebSocketRecord` (close
code, duration, message counts) and hands it to the recorders: the metrics, one
``websocket`` access line, and one SERVER span that was current while the app ran, so the
app's own spans are its children.

Close codes are the app's ``websocket.close`` code (1000 by default), the client's
``websocket.disconnect`` code (1005 when it sent none), 1011 when the app raised after
accepting, and ``refused`` when the app closed or raised before accepting. As a label they
are bounded: 1000-1015 as they are, 3000-4999 as ``3xxx``/``4xxx``, anything else ``other``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextvars import Token
from time import perf_counter
from typing import Any, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ouro_obs.asgi.pipeline import RequestPipeline
from ouro_obs.asgi.recorders import Failsafe
from ouro_obs.logs.access import duration_ms
from ouro_obs.metrics import HttpMetrics
from ouro_obs.tracing.spans import encodable

__all__ = ["WebSocketObserver", "WebSocketRecord", "close_code_label"]

REFUSED: Final = "refused"
_INSTRUMENTATION_NAME: Final = "ouro_obs"
_NORMAL_CLOSURE: Final = 1000
_NO_STATUS: Final = 1005
_INTERNAL_ERROR: Final = 1011
_STANDARD_CODES: Final = range(1000, 1016)
_APPLICATION_CODES: Final = range(3000, 5000)


def close_code_label(code: int | str) -> str:
    """The bounded ``close_code`` label value of a close code."""
    if isinstance(code, str):
        return code
    if code in _STANDARD_CODES:
        return str(code)
    if code in _APPLICATION_CODES:
        return f"{code // 1000}xxx"
    return "other"


class WebSocketRecord:
    """One WebSocket connection, settled when the app has returned or raised."""

    __slots__ = (
        "accepted",
        "close_code",
        "end_time",
        "error",
        "messages_in",
        "messages_out",
        "root_path",
        "route",
        "scope",
        "span",
        "start_time",
    )

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        #: The path prefix the server mounted the app under (before any Mount grew it).
        self.root_path: str = scope.get("root_path", "")
        self.start_time = perf_counter()
        self.end_time = 0.0
        #: The route template; known once the router ran (the unmatched label if none did).
        self.route = ""
        self.accepted = False
        #: An int close code, or ``refused``; None until the connection ended.
        self.close_code: int | str | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.error: BaseException | None = None
        self.span: trace.Span | None = None

    @property
    def duration_seconds(self) -> float:
        return self.end_time - self.start_time

    def settle(self) -> WebSocketRecord:
        self.end_time = perf_counter()
        if not self.accepted:
            self.close_code = REFUSED
        elif self.close_code is None:
            self.close_code = _INTERNAL_ERROR if self.error is not None else _NORMAL_CLOSURE
        return self


class WebSocketRecorder(Protocol):
    @property
    def stage(self) -> str: ...

    def record(self, record: WebSocketRecord, /) -> None: ...


class _Metrics:
    stage = "websocket"

    def __init__(self, metrics: HttpMetrics) -> None:
        self._metrics = metrics

    def record(self, record: WebSocketRecord) -> None:
        assert record.close_code is not None
        code = close_code_label(record.close_code)
        self._metrics.websocket_closed(record.route, code, record.duration_seconds)


class _AccessLine:
    stage = "access_log"

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def record(self, record: WebSocketRecord) -> None:
        span = record.span
        context = span.get_span_context() if span is not None else None
        fields: dict[str, Any] = {
            "route": record.route,
            "close_code": record.close_code,
            "duration_ms": duration_ms(record.duration_seconds),
            "messages_in": record.messages_in,
            "messages_out": record.messages_out,
            "trace_id": format(context.trace_id, "032x") if context else None,
        }
        if record.error is not None:
            fields["error"] = type(record.error).__qualname__
            self._logger.error("websocket", **fields)
        else:
            self._logger.info("websocket", **fields)


class _Span:
    stage = "tracing"

    def record(self, record: WebSocketRecord) -> None:
        span = record.span
        if span is None:
            return
        span.update_name(f"WEBSOCKET {record.route}")
        span.set_attribute("http.route", record.route)
        span.set_attribute("websocket.close_code", str(record.close_code))
        span.set_attribute("websocket.messages.received", record.messages_in)
        span.set_attribute("websocket.messages.sent", record.messages_out)
        if record.error is not None:
            span.record_exception(record.error)
            span.set_status(StatusCode.ERROR)
        span.end()


def _carrier(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


class WebSocketObserver:
    """Observes each WebSocket connection; see the module docstring.

    ``route_template(scope, root_path)`` names the connection once the router ran; ``tracer`` (None:
    no span) and ``logger`` (None: no access line) come from the settled pipeline.
    """

    __slots__ = ("_failsafe", "_metrics", "_recorders", "_route_template", "_tracer")

    def __init__(
        self,
        metrics: HttpMetrics,
        failsafe: Failsafe,
        route_template: Callable[[Scope, str], str],
        *,
        tracer: trace.Tracer | None = None,
        logger: Any = None,
    ) -> None:
        self._metrics = metrics
        self._failsafe = failsafe
        self._route_template = route_template
        self._tracer = tracer
        recorders: list[WebSocketRecorder] = [_Metrics(metrics)]
        if tracer is not None:
            recorders.insert(0, _Span())
        if logger is not None:
            recorders.append(_AccessLine(logger))
        self._recorders: tuple[WebSocketRecorder, ...] = tuple(recorders)

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        record = WebSocketRecord(scope)
        token = self._failsafe.call("tracing", self._start_span, record)
        counted: list[Callable[[float], None]] = []

        async def observed_receive() -> Message:
            message = await receive()
            message_type = message["type"]
            if message_type == "websocket.receive":
                record.messages_in += 1
                if counted:
                    counted[0](1)
            elif message_type == "websocket.disconnect" and record.close_code is None:
                record.close_code = message.get("code", _NO_STATUS)
            return message

        async def observed_send(message: Message) -> None:
            message_type = message["type"]
            await send(message)
            if message_type == "websocket.send":
                record.messages_out += 1
                if counted:
                    counted[1](1)
            elif message_type == "websocket.accept":
                record.accepted = True
                counters = self._failsafe.call("websocket", self._accepted, record)
                counted.extend(counters or ())
            elif message_type == "websocket.close" and record.close_code is None:
                record.close_code = message.get("code", _NORMAL_CLOSURE)

        try:
            await app(scope, observed_receive, observed_send)
        except Exception as error:
            record.error = error
            raise
        finally:
            if not record.route:
                template = self._failsafe.call(
                    "route", self._route_template, scope, record.root_path
                )
                record.route = template or ""
            self._failsafe_record(record.settle())
            if token is not None:
                otel_context.detach(token)

    def _accepted(self, record: WebSocketRecord) -> Iterable[Callable[[float], None]]:
        record.route = self._route_template(record.scope, record.root_path)
        self._metrics.websocket(record.route)
        return self._metrics.websocket_messages(record.route)

    def _start_span(self, record: WebSocketRecord) -> Token[Context] | None:
        if self._tracer is None:
            return None
        scope = record.scope
        parent = propagate.extract(_carrier(scope))
        span = self._tracer.start_span(
            "WEBSOCKET",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "url.scheme": scope.get("scheme", "ws"),
                "url.path": encodable(scope["path"]),
            },
        )
        record.span = span
        return otel_context.attach(trace.set_span_in_context(span, parent))

    @classmethod
    def for_pipeline(
        cls, metrics: HttpMetrics, failsafe: Failsafe, pipeline: RequestPipeline
    ) -> WebSocketObserver:
        """The observer for the settled ``pipeline``: its route names, tracer and logger."""
        tracer = None
        if pipeline.spans is not None and pipeline.span_source is not None:
            provider = pipeline.span_source.provider or trace.get_tracer_provider()
            tracer = provider.get_tracer(_INSTRUMENTATION_NAME)
        logger = None if pipeline.access_log is None else pipeline.access_log.logger
        return cls(metrics, failsafe, pipeline.route_template, tracer=tracer, logger=logger)

    def _failsafe_record(self, record: WebSocketRecord) -> None:
        for recorder in self._recorders:
            self._failsafe.call(recorder.stage, recorder.record, record)
