"""The proxy: an ASGI app forwarding every request to one upstream, streaming both ways.

``ouro-obs sidecar`` runs it inside the same :class:`~ouro_obs.ObservabilityMiddleware`
(see :mod:`ouro_obs.sidecar.server`), so a service that is not Python gets the same
metrics, access logs and traces. An unreachable upstream gives 502, a slow one 504, each
counted in ``ouro_obs_sidecar_upstream_errors_total{reason}`` and logged. What the client
asked wrongly is the client's 4xx, never an upstream error: ``CONNECT`` gets 405, and a
request h11 will not send upstream (two ``Host`` lines) gets 400.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from urllib.parse import quote

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from starlette.types import Receive, Scope, Send
from structlog.contextvars import get_contextvars

from ouro_obs.sidecar.connection import UPSTREAM_ERROR_REASONS, UpstreamError
from ouro_obs.sidecar.headers import (
    CONTENT_LENGTH,
    ForwardedMode,
    request_headers,
    response_headers,
)
from ouro_obs.sidecar.upstream import (
    BodySource,
    UnsendableRequest,
    UpstreamClient,
    UpstreamResponse,
)

__all__ = ["ProxyApp", "SidecarMetrics"]

_log = logging.getLogger("ouro_obs.sidecar")

#: The methods a 405 to ``CONNECT`` names: the standard ones a proxy forwards (any other
#: token is forwarded as well; ``Allow`` cannot list what the upstream may accept).
_ALLOWED_METHODS = b"GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH"
_NO_TUNNELS = b"405 Method Not Allowed: the sidecar opens no CONNECT tunnels\n"


class _ClientGone(Exception):
    """The client disconnected before it finished sending the request body."""


def _body_reader(receive: Receive) -> BodySource:
    async def read() -> tuple[bytes, bool]:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        return message.get("body", b""), message.get("more_body", False)

    return read


#: One counter per (registry, name), so building a sidecar twice on a registry never raises.
_counters: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]]
_counters = weakref.WeakKeyDictionary()


class SidecarMetrics:
    """The sidecar's own series: upstream failures by reason (all reasons start at 0)."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "") -> None:
        registry = REGISTRY if registry is None else registry
        name = f"{namespace}_" if namespace else ""
        name += "ouro_obs_sidecar_upstream_errors"
        counters = _counters.setdefault(registry, {})
        counter = counters.get(name)
        if counter is None:
            counter = counters[name] = Counter(
                name,
                "Requests the sidecar could not complete with the upstream, by reason "
                "(timeouts answered 504, the rest 502 unless the response had started).",
                ("reason",),
                registry=registry,
            )
        self.upstream_errors = counter
        self._children = {reason: counter.labels(reason) for reason in UPSTREAM_ERROR_REASONS}

    def upstream_error(self, reason: str) -> None:
        child = self._children.get(reason)
        (child or self.upstream_errors.labels(reason)).inc()


class ProxyApp:
    """ASGI app forwarding every HTTP request to one upstream, streaming both ways.

    WebSocket connections are refused (403) and ``CONNECT`` (405): the upstream is spoken
    to in HTTP/1.1 only, and the sidecar opens no tunnels.
    """

    def __init__(
        self,
        client: UpstreamClient,
        metrics: SidecarMetrics,
        *,
        forwarded: ForwardedMode = "append",
        request_id_header: str = "",
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.forwarded: ForwardedMode = forwarded
        self._request_id_header = request_id_header.lower().encode("latin-1") or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            await self._proxy(scope, receive, send)
        elif scope_type == "lifespan":
            await self._lifespan(receive, send)
        elif scope_type == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: bytes = scope["method"].encode("ascii")
        if method == b"CONNECT":
            await _answer(send, 405, _NO_TUNNELS, [(b"allow", _ALLOWED_METHODS)])
            return
        head = request_headers(
            scope, self.forwarded, self._request_id(), default_host=self.client.upstream.authority
        )
        body: BodySource | None = None
        if head.chunked or (head.content_length is not None and head.content_length != b"0"):
            body = _body_reader(receive)
        elif head.content_length is not None:
            head.headers.append((CONTENT_LENGTH, head.content_length))
        target: bytes = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
        query: bytes = scope.get("query_string", b"")
        if query:
            target += b"?" + query
        try:
            response = await self.client.request(
                method,
                target,
                head.headers,
                body,
                head.content_length if body is not None and not head.chunked else None,
            )
        except UpstreamError as error:
            self._failed(scope, error)
            await _answer_error(send, error, head_only=method == b"HEAD")
            return
        except UnsendableRequest as error:
            _log.info("%s %s not forwarded: %s", scope["method"], scope["path"], error)
            text = b"400 Bad Request: the request cannot be forwarded\n"
            await _answer(send, 400, text, head_only=method == b"HEAD")
            return
        except _ClientGone:
            return  # nobody to answer; the middleware records 499
        try:
            await self._relay(scope, response, receive, send)
        finally:
            await response.aclose()

    async def _relay(
        self, scope: Scope, response: UpstreamResponse, receive: Receive, send: Send
    ) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": response_headers(response.headers),
                }
            )
            data, more = await response.read()
            if not more:
                await send({"type": "http.response.body", "body": data})
                return
            await self._stream(response, data, receive, send)
        except UpstreamError as error:
            # The status line is gone: the client sees the connection close mid-body.
            self._failed(scope, error)
        except OSError:
            pass  # the client went away while we wrote; the middleware records 499

    async def _stream(
        self, response: UpstreamResponse, first: bytes, receive: Receive, send: Send
    ) -> None:
        """Relay a body of several chunks while watching for the client to leave."""
        client_gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, response, client_gone))
        try:
            data, more = first, True
            while more:
                await send({"type": "http.response.body", "body": data, "more_body": True})
                data, more = await response.read()
            await send({"type": "http.response.body", "body": data})
        except UpstreamError:
            if not client_gone.is_set():
                raise
        finally:
            watcher.cancel()

    def _request_id(self) -> tuple[bytes, bytes] | None:
        """The id the middleware logs this request under, so the upstream logs the same."""
        if self._request_id_header is None:
            return None
        request_id = get_contextvars().get("request_id")
        if not isinstance(request_id, str) or not request_id:
            return None
        return self._request_id_header, request_id.encode("latin-1")

    def _failed(self, scope: Scope, error: UpstreamError) -> None:
        self.metrics.upstream_error(error.reason)
        _log.warning(
            "upstream %s for %s %s: %s",
            error.reason,
            scope["method"],
            scope["path"],
            error.detail,
            extra={"upstream_error": error.reason},
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _watch_disconnect(
    receive: Receive, response: UpstreamResponse, client_gone: asyncio.Event
) -> None:
    """Close the upstream exchange when the client disconnects, so no one streams to no one."""
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                client_gone.set()
                await response.aclose()
                return
    except Exception:  # the server's receive failed: the relay itself will notice or finish
        _log.debug("disconnect watcher stopped", exc_info=True)


async def _answer_error(send: Send, error: UpstreamError, *, head_only: bool) -> None:
    title = "Gateway Timeout" if error.status == 504 else "Bad Gateway"
    body = f"{error.status} {title}: upstream {error.reason.replace('_', ' ')}\n".encode()
    await _answer(send, error.status, body, head_only=head_only)


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    head_only: bool = False,
) -> None:
    """The sidecar's own plain-text answer (a HEAD's without the body, with its length)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head_only else body})
