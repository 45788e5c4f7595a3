"""What the sidecar forwards: end-to-end headers, body framing, X-Forwarded-*, trace context."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from ouro_obs.sidecar.headers import end_to_end_headers, request_headers


def scope(*headers: tuple[bytes, bytes], client: Any = ("10.0.0.5", 51000)) -> dict[str, Any]:
    return {"type": "http", "scheme": "http", "headers": list(headers), "client": client}


def test_headers_named_in_connection_are_dropped_with_the_hop_by_hop_ones() -> None:
    kept = end_to_end_headers(
        [
            (b"connection", b"keep-alive, X-Secret ,x-other"),
            (b"x-secret", b"1"),
            (b"x-other", b"2"),
            (b"proxy-anything", b"3"),
            (b"transfer-encoding", b"chunked"),
            (b"content-type", b"text/plain"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ]
    )
    assert kept == [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_content_length_is_handed_to_the_client_and_chunked_bodies_are_flagged() -> None:
    sized = request_headers(scope((b"host", b"a"), (b"content-length", b"12")))
    chunked = request_headers(scope((b"host", b"a"), (b"transfer-encoding", b"chunked")))
    assert (sized.content_length, sized.chunked) == (b"12", False)
    assert (chunked.content_length, chunked.chunked) == (None, True)
    names = {name for name, _ in sized.headers + chunked.headers}
    assert names.isdisjoint({b"content-length", b"transfer-encoding"})


def test_expect_is_not_forwarded_because_the_server_already_answered_it() -> None:
    head = request_headers(scope((b"host", b"a"), (b"expect", b"100-continue")))
    assert b"expect" not in dict(head.headers)


def test_several_x_forwarded_for_headers_are_joined_before_this_hop() -> None:
    head = request_headers(
        scope((b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3"))
    )
    assert dict(head.headers)[b"x-forwarded-for"] == b"1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.5"


def test_a_request_without_a_client_address_adds_none() -> None:
    head = request_headers(scope((b"host", b"a"), client=None))
    assert b"x-forwarded-for" not in dict(head.headers)


def test_the_current_span_replaces_the_clients_traceparent() -> None:
    tracer = TracerProvider().get_tracer("test")
    incoming = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracer.start_as_current_span("proxy") as span:
        head = request_headers(scope((b"traceparent", incoming), (b"tracestate", b"vendor=1")))
    traceparents = [value for name, value in head.headers if name == b"traceparent"]
    context = span.get_span_context()
    assert b"tracestate" not in dict(head.headers)  # it described the replaced parent
    assert len(traceparents) == 1
    assert traceparents[0].split(b"-")[1:3] == [
        f"{context.trace_id:032x}".encode(),
        f"{context.span_id:016x}".encode(),
    ]
