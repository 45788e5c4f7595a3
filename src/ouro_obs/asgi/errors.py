"""An unhandled exception: who answers it, and how the server's traceback names the request.

Starlette's ``ServerErrorMiddleware`` sits outside every user middleware, so the plain
``500 Internal Server Error`` it sends would carry no request id header. Where that plain
answer is what the client would get anyway, the middleware sends it itself, through the
exchange (so it carries the header and is counted), and re-raises; Starlette then sees the
response started and sends nothing more, and the server still logs the traceback.

"Anyway" is checked, not assumed: only when ``ServerErrorMiddleware`` (without a handler or
``debug``) is *directly* outside the middleware, or there is no app in the scope (a bare
server, which answers 500 itself). Any other middleware in between may handle the exception
(a ``BaseHTTPMiddleware`` turning ``ValueError`` into 400, a pure-ASGI error handler): the
exception then propagates untouched, with no response started.

A custom 500/``Exception`` handler stays Starlette's to run; :func:`name_requests_in_handler`
wraps it so that it runs with the request id bound for log lines and its response carries
the request id header.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Final

from starlette._utils import is_async_callable
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope, Send
from structlog.contextvars import bound_contextvars

from ouro_obs.asgi.record import SpanIds

__all__ = [
    "answers_unhandled_errors",
    "name_request_on",
    "name_requests_in_handler",
    "send_internal_error",
]

#: Starlette's ServerErrorMiddleware answers an unhandled exception with exactly this.
_ERROR_BODY = b"Internal Server Error"
_NOTE_PREFIX: Final = "ouro-obs:"
#: FastAPI puts layers of its own between ServerErrorMiddleware and the user middleware
#: (exception telemetry, the body-size limit); each re-raises what it does not answer.
_TRANSPARENT_PACKAGE: Final = "fastapi."
_MAX_FRAMEWORK_LAYERS: Final = 8
#: Marks a custom error handler already wrapped by :func:`name_requests_in_handler`.
_WRAPPED: Final = "_ouro_obs_names_requests"
_ERROR_HEADERS = (
    (b"content-length", str(len(_ERROR_BODY)).encode()),
    (b"content-type", b"text/plain; charset=utf-8"),
)


def answers_unhandled_errors(scope: Scope, middleware: object) -> bool:
    """Whether an unhandled exception would get a plain ``500 Internal Server Error``.

    True directly inside the ``ServerErrorMiddleware`` of a Starlette/FastAPI app without a
    500/Exception handler and without ``debug``, and under a bare server (no app in the
    scope). A custom handler or the debug page stays Starlette's to send; a middleware
    between Starlette's and ``middleware`` may answer the exception its own way.
    """
    app = scope.get("app")
    if app is None:
        return True
    outermost = _error_middleware(app)
    if outermost is None or outermost.handler is not None or outermost.debug:
        return False
    inner: object = outermost.app
    for _ in range(_MAX_FRAMEWORK_LAYERS):
        if inner is middleware:
            return True
        if not type(inner).__module__.startswith(_TRANSPARENT_PACKAGE):
            return False
        inner = getattr(inner, "app", None)
    return False


def _error_middleware(app: object) -> ServerErrorMiddleware | None:
    stack = getattr(app, "middleware_stack", None) if isinstance(app, Starlette) else None
    return stack if isinstance(stack, ServerErrorMiddleware) else None


async def send_internal_error(send: Send) -> None:
    """Send the 500 Starlette would send; a client already gone is no error here."""
    with contextlib.suppress(Exception):  # the app's exception still propagates
        # A fresh list: outer middlewares may add headers to it in place.
        headers = list(_ERROR_HEADERS)
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": _ERROR_BODY})


def name_request_on(error: BaseException, request_id: str | None, span_ids: SpanIds | None) -> None:
    """Add a note naming the request to ``error``, so the server's traceback is correlated."""
    if request_id is None and span_ids is None:
        return
    note = _NOTE_PREFIX
    if request_id is not None:
        note += f" request_id={request_id}"
    if span_ids is not None:
        note += f" trace_id={span_ids.trace_id} span_id={span_ids.span_id}"
    notes = getattr(error, "__notes__", None)
    if notes:  # an exception object raised again: its note names the latest request only
        notes[:] = [old for old in notes if not old.startswith(_NOTE_PREFIX)]
    error.add_note(note)


def name_requests_in_handler(scope: Scope, header: bytes | None) -> None:
    """Let the app's custom 500/``Exception`` handler see the request it answers.

    Starlette runs that handler in its ``ServerErrorMiddleware``, outside every user
    middleware, after this one has left the request. Wrapped (once per app), the handler
    runs with the request id (``request.state.request_id``) bound in the structlog context,
    and its response gets the request id header unless it set one itself.
    """
    outermost = _error_middleware(scope.get("app"))
    if outermost is None or outermost.handler is None or outermost.debug:
        return
    handler = outermost.handler
    if getattr(handler, _WRAPPED, False):
        return

    async def handler_naming_the_request(request: Request, error: Exception) -> Response:
        state = request.scope.get("state")
        request_id = state.get("request_id") if isinstance(state, dict) else None
        if not isinstance(request_id, str):
            return await _run_handler(handler, request, error)
        with bound_contextvars(request_id=request_id):
            response = await _run_handler(handler, request, error)
        if header is not None:
            name = header.decode("latin-1")
            with contextlib.suppress(Exception):  # a response without mutable headers
                if name not in response.headers:
                    response.headers[name] = request_id
        return response

    setattr(handler_naming_the_request, _WRAPPED, True)
    outermost.handler = handler_naming_the_request


async def _run_handler(handler: Callable[..., Any], request: Request, error: Exception) -> Response:
    if is_async_callable(handler):
        response: Response = await handler(request, error)
    else:
        response = await run_in_threadpool(handler, request, error)
    return response
