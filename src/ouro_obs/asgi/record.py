"""What one HTTP request did, as the recorders see it: one record per request.

The status rules (499 for a client that left, 500 for an app that answered nothing) live
here, in :meth:`RequestRecord.settle`, and nowhere else.

The record is the request's :class:`~ouro_obs.asgi.exchange.Exchange` itself, which
fills it in while the request runs: a separate record object, built once per request,
measured 8 % of the middleware's own per-request cost (callgrind, metrics only).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "NO_RESPONSE_STATUS",
    "Outcome",
    "RequestRecord",
    "SpanIds",
    "error_type",
]

#: Status recorded when the client went away before the response completed (nginx's code).
CLIENT_CLOSED_REQUEST: Final = 499
#: Status recorded when the app raised or returned before starting a response; servers
#: answer such a request with a 500.
NO_RESPONSE_STATUS: Final = 500


class Outcome(enum.Enum):
    """How a request ended."""

    #: The last byte of the response was sent.
    COMPLETED = "completed"
    #: The client disconnected (or the connection broke) before the last byte.
    CLIENT_GONE = "client_gone"
    #: The app raised before its response completed.
    APP_RAISED = "app_raised"
    #: The app returned without completing a response.
    NO_RESPONSE = "no_response"


# Read per request: a module global is cheaper to reach than an Enum member.
_COMPLETED: Final = Outcome.COMPLETED
_CLIENT_GONE: Final = Outcome.CLIENT_GONE
_APP_RAISED: Final = Outcome.APP_RAISED
_NO_RESPONSE: Final = Outcome.NO_RESPONSE


class SpanIds(NamedTuple):
    """The request's SERVER span as log lines and exemplars name it."""

    #: 32 lower-case hex digits.
    trace_id: str
    #: 16 lower-case hex digits.
    span_id: str
    #: Whether the span is sampled (only a sampled span's trace id makes an exemplar).
    sampled: bool


def error_type(error: BaseException) -> str:
    """The exception's fully qualified class name, as OTel's ``error.type`` wants it."""
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class RequestRecord:
    """One HTTP request: filled in by its exchange while it runs, settled once when it ends.

    Recorders get it after :meth:`settle` and only read it.
    """

    __slots__ = (
        "client_gone",
        "complete",
        "end_time",
        "error",
        "method",
        "outcome",
        "request_bytes",
        "request_id",
        "response_bytes",
        "response_start",
        "route",
        "scope",
        "span",
        "span_ids",
        "start_time",
        "status",
        "status_sent",
        "user_agent",
    )

    #: The request method, normalized (``_OTHER`` outside the standard set).
    method: str
    #: The route template, or the configured unmatched label; "" until known.
    route: str
    outcome: Outcome
    #: The status the metrics and the access line record: as sent, 499 when the client
    #: left before the last byte, 500 when the app started no response.
    status: int
    #: The status of the response start the app (or the middleware) sent; None if none.
    status_sent: int | None
    #: The ``http.response.start`` message as sent (its headers feed response-header labels).
    response_start: Any
    #: Whether the response's last byte was sent, and whether the client left (or the
    #: connection broke) before that.
    complete: bool
    client_gone: bool
    request_bytes: int
    response_bytes: int
    #: ``time.perf_counter()`` when the request arrived, and when its last byte left
    #: (or the app returned); background tasks run after it.
    start_time: float
    end_time: float
    request_id: str | None
    user_agent: bytes | None
    #: The ids of the request's SERVER span (ours or one already current), if any.
    span_ids: SpanIds | None
    #: The SERVER span this middleware started and must end; None for none or not ours.
    span: Span | None
    #: The exception the app raised before the response completed.
    error: BaseException | None
    #: The ASGI scope (path, query string, client) as the app left it.
    scope: Any

    def settle(self, route: str) -> RequestRecord:
        """Decide the outcome and the recorded status from the facts; name the route."""
        self.route = route
        status_sent = self.status_sent
        if self.client_gone and not self.complete:
            self.outcome = _CLIENT_GONE
            self.status = CLIENT_CLOSED_REQUEST
            return self
        if self.error is not None:
            self.outcome = _APP_RAISED
        elif self.complete:
            self.outcome = _COMPLETED
        else:
            self.outcome = _NO_RESPONSE
        self.status = NO_RESPONSE_STATUS if status_sent is None else status_sent
        if self.method == "HEAD":  # the server sends no body, whatever the app handed it
            self.response_bytes = 0
        return self

    @property
    def duration_seconds(self) -> float:
        """From the request's arrival to its last response byte."""
        return self.end_time - self.start_time

    @property
    def response_status(self) -> int | None:
        """The HTTP status the client got: as sent, else the server's 500; None if it left first."""
        if self.status_sent is not None:
            return self.status_sent
        return None if self.outcome is _CLIENT_GONE else NO_RESPONSE_STATUS

    @property
    def error_type(self) -> str | None:
        return None if self.error is None else error_type(self.error)
