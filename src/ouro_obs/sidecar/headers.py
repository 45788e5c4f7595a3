"""The headers the sidecar sends upstream and relays back (RFC 9110 section 7.6.1).

Hop-by-hop headers are removed both ways; ``X-Forwarded-For/Proto/Host`` are set; the
current trace context is injected (``traceparent``) so the upstream's spans join the trace,
and the request id the middleware logs is sent along.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.propagate import inject
from starlette.types import Scope

__all__ = [
    "CONTENT_LENGTH",
    "HOP_BY_HOP_HEADERS",
    "HOST",
    "ForwardedMode",
    "RequestHead",
    "end_to_end_headers",
    "request_headers",
    "response_headers",
]

#: Headers that describe one connection, not the message (RFC 9110 7.6.1), plus every
#: ``Proxy-*`` header; those named in ``Connection`` are removed as well.
HOP_BY_HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

#: ``append``: keep X-Forwarded-Proto/Host set by the hop before (an ingress) and append
#: to X-Forwarded-For; ``replace``: trust nothing received and describe this hop only.
ForwardedMode = Literal["append", "replace"]

_X_FORWARDED_FOR = b"x-forwarded-for"
_X_FORWARDED_PROTO = b"x-forwarded-proto"
_X_FORWARDED_HOST = b"x-forwarded-host"
HOST = b"host"
CONTENT_LENGTH = b"content-length"
#: uvicorn answered any ``Expect: 100-continue`` itself when the body was read.
_DROPPED_REQUEST_HEADERS = HOP_BY_HOP_HEADERS | {
    b"expect",
    CONTENT_LENGTH,
    _X_FORWARDED_FOR,
    _X_FORWARDED_PROTO,
    _X_FORWARDED_HOST,
}


def _connection_tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def end_to_end_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-case names) without hop-by-hop ones and those named in Connection."""
    kept: list[tuple[bytes, bytes]] = []
    named: set[bytes] = set()
    for name, value in headers:
        if name in HOP_BY_HOP_HEADERS or name.startswith(b"proxy-"):
            if name == b"connection":
                named |= _connection_tokens(value)
            continue
        kept.append((name, value))
    if named:
        kept = [(name, value) for name, value in kept if name not in named]
    return kept


def response_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream response's headers as relayed: end-to-end ones only.

    A response framed by ``Transfer-Encoding`` loses its ``Content-Length`` as well: the
    encoding overrides it (RFC 9112 section 6.3), and the body relayed is the decoded one,
    whose length the upstream's figure does not describe.
    """
    kept = end_to_end_headers(headers)
    if any(name == b"transfer-encoding" for name, _ in headers):
        kept = [(name, value) for name, value in kept if name != CONTENT_LENGTH]
    return kept


@dataclass(slots=True)
class RequestHead:
    """What the proxy sends upstream, derived from one ASGI scope."""

    headers: list[tuple[bytes, bytes]]
    content_length: bytes | None = None
    chunked: bool = False


def request_headers(
    scope: Scope,
    forwarded: ForwardedMode = "append",
    request_id: tuple[bytes, bytes] | None = None,
    default_host: bytes | None = None,
) -> RequestHead:
    """The upstream request's headers: end-to-end ones, X-Forwarded-*, trace context.

    ``Content-Length`` is taken out (the client frames the body it streams); the client's
    ``Host`` is kept, so the upstream sees the name it was called by, and a request
    without one (HTTP/1.0 allows it; HTTP/1.1 upstreams require it) gets
    ``default_host``, the upstream's authority. ``request_id`` (header name, value)
    replaces whatever id the client sent.
    """
    headers: list[tuple[bytes, bytes]] = []
    head = RequestHead(headers)
    named: set[bytes] = set()
    received = _Forwarded()
    host = None
    for name, value in scope["headers"]:
        if name not in _DROPPED_REQUEST_HEADERS and not name.startswith(b"proxy-"):
            if name == HOST:
                host = value
            headers.append((name, value))
        elif name == CONTENT_LENGTH:
            head.content_length = value
        elif name == b"transfer-encoding":
            head.chunked = True
        elif name == b"connection":
            named |= _connection_tokens(value)
        elif name == _X_FORWARDED_FOR:
            received.for_.append(value)
        elif name == _X_FORWARDED_PROTO:
            received.proto = value
        elif name == _X_FORWARDED_HOST:
            received.host = value
    if request_id is not None:
        named.add(request_id[0])
    named.discard(HOST)  # not a hop's to remove: a "Connection: host" would leave none
    if named:
        headers[:] = [(name, value) for name, value in headers if name not in named]
    if request_id is not None:
        headers.append(request_id)
    if host is None and default_host is not None:
        headers.append((HOST, default_host))
    if forwarded == "replace":
        received = _Forwarded()
    received.append_this_hop(headers, scope, host)
    _inject_trace_context(headers)
    return head


@dataclass(slots=True)
class _Forwarded:
    """The ``X-Forwarded-*`` values received from the hop before."""

    for_: list[bytes] = field(default_factory=list)
    proto: bytes | None = None
    host: bytes | None = None

    def append_this_hop(
        self, headers: list[tuple[bytes, bytes]], scope: Scope, host: bytes | None
    ) -> None:
        """Append to ``headers`` what was received, with this hop added to the chain."""
        forwarded_for = self.for_
        client = scope.get("client")
        if client:
            forwarded_for.append(str(client[0]).encode("latin-1"))
        if forwarded_for:
            headers.append((_X_FORWARDED_FOR, b", ".join(forwarded_for)))
        scheme = self.proto or scope.get("scheme", "http").encode("latin-1")
        headers.append((_X_FORWARDED_PROTO, scheme))
        if self.host or host:
            headers.append((_X_FORWARDED_HOST, self.host or host or b""))


def _inject_trace_context(headers: list[tuple[bytes, bytes]]) -> None:
    """Put the current span's context (W3C traceparent/tracestate, baggage) on ``headers``."""
    carrier: dict[str, str] = {}
    inject(carrier)
    if not carrier:
        return  # no span is current: whatever context the client sent passes unchanged
    replaced = {name.lower().encode("latin-1") for name in carrier}
    if b"traceparent" in replaced:
        replaced.add(b"tracestate")  # the client's state belongs to the parent it sent
    headers[:] = [(name, value) for name, value in headers if name not in replaced]
    headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in carrier.items()
    )
