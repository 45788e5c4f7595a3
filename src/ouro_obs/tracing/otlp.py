"""OTLP span export with the spans written straight to protobuf bytes.

The OTLP/HTTP exporter of ``opentelemetry-exporter-otlp-proto-http`` turns every span into
protobuf message objects (one per span, attribute, value, event, link and status) and then
serializes them: about 30 µs per span on this project's benchmark machine, more than the
span itself costs to make, paid on the export thread under the same GIL as the requests.
:func:`encode_spans` writes the same ``ExportTraceServiceRequest`` directly as bytes, with
the resource's and the instrumentation scope's encodings kept once made (they are
immutable and the same for every span of a process).

The bytes parse to the very message the SDK's ``encode_spans`` builds, for every span the
SDK can hold (``tests/tracing/test_otlp_encoding.py`` compares the two): the same fields,
the same grouping by resource and scope, an attribute of a type OTLP cannot carry (or an
integer outside int64) left out as the SDK leaves it out. :class:`OtlpHttpSpanExporter` is
the SDK's exporter (endpoint, headers, TLS, compression, retries, timeouts, its own
metrics, all from the same arguments and ``OTEL_EXPORTER_OTLP_*`` variables) with only the
encoding replaced, where the installed exporter has the shape it was written for. An
ended span's attributes are read from the dict inside the SDK's ``BoundedAttributes``
(which no longer changes) when it is there, through the mapping interface otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from struct import Struct
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = [
    "EncodedSpan",
    "OtlpHttpSpanExporter",
    "encode_request",
    "encode_span",
    "encode_spans",
    "exporter_problem",
]

_log = logging.getLogger("ouro_obs.tracing")

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MASK: Final = 2**64 - 1
_fixed64 = Struct("<Q").pack
_fixed32 = Struct("<I").pack
_double = Struct("<d").pack
#: The one-byte varints, ready made: most lengths, counts and enum values are below 128.
_SMALL: Final = tuple(bytes((number,)) for number in range(128))
#: ``SpanFlags``: the span says whether its parent is remote, and here it is.
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200
#: Field tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length, 5 fixed32).
_SPAN_TRACE_ID: Final = b"\x0a\x10"  # 16 bytes follow
_SPAN_ID: Final = b"\x12\x08"  # 8 bytes follow
_SPAN_TRACE_STATE: Final = b"\x1a"
_SPAN_PARENT_ID: Final = b"\x22\x08"
_SPAN_NAME: Final = b"\x2a"
_SPAN_KIND: Final = b"\x30"
_SPAN_START: Final = b"\x39"
_SPAN_END: Final = b"\x41"
_SPAN_ATTRIBUTE: Final = b"\x4a"
_SPAN_DROPPED_ATTRIBUTES: Final = b"\x50"
_SPAN_EVENT: Final = b"\x5a"
_SPAN_DROPPED_EVENTS: Final = b"\x60"
_SPAN_LINK: Final = b"\x6a"
_SPAN_DROPPED_LINKS: Final = b"\x70"
_SPAN_STATUS: Final = b"\x7a"
_SPAN_FLAGS: Final = b"\x85\x01"  # field 16, fixed32
_KEY: Final = b"\x0a"
_VALUE: Final = b"\x12"
_EMPTY_VALUE: Final = b"\x12\x00"  # a None attribute: an AnyValue with nothing set
#: The kept key encodings (tag, length, UTF-8): attribute keys are few and repeat.
_KEY_CACHE_LIMIT: Final = 1024
_key_texts: dict[str, bytes] = {}
#: The encoded fields of string and integer attributes, by (field tag, key, value type),
#: then value: at most this many values per key and this many keys (a path or a port stops
#: being kept once its key has had its share; a method or a route stays).
_VALUES_KEPT_PER_KEY: Final = 64
_KEYS_KEPT: Final = 256
_kept_fields: dict[tuple[bytes, str, type], dict[Any, bytes]] = {}
#: The keys of attributes left out so far, each logged once.
_keys_not_exported: set[str] = set()


def _varint(number: int) -> bytes:
    if number < 128:
        return _SMALL[number]
    pieces = bytearray()
    while number > 127:
        pieces.append((number & 0x7F) | 0x80)
        number >>= 7
    pieces.append(number)
    return bytes(pieces)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    size = len(payload)
    return tag + (_SMALL[size] if size < 128 else _varint(size)) + payload


def _text(tag: bytes, text: str) -> bytes:
    return _length_delimited(tag, text.encode("utf-8"))


def _any_value(value: object) -> bytes:
    """An ``AnyValue`` message for an attribute value, as the SDK's ``_encode_value`` sets it.

    Raises ValueError for what OTLP cannot carry (the caller leaves the attribute out).
    """
    # The order of the SDK's checks: bool before int (a bool is an int), str before the
    # sequences (a str is one).
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _text(b"\x0a", value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer {value} is outside int64")
        return b"\x18" + _varint(value & _UINT64_MASK)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _length_delimited(b"\x3a", value)
    if isinstance(value, Sequence):
        return _length_delimited(
            b"\x2a", b"".join([_length_delimited(b"\x0a", _any_value(item)) for item in value])
        )
    if isinstance(value, Mapping):
        pairs = [_key_value(str(key), item) for key, item in value.items()]
        return _length_delimited(
            b"\x32", b"".join([_length_delimited(b"\x0a", pair) for pair in pairs])
        )
    raise ValueError(f"invalid type {type(value).__name__} of value {value!r}")


def _key_value(key: str, value: object) -> bytes:
    """A ``KeyValue`` message (without its own tag and length)."""
    key_text = _key_texts.get(key)
    if key_text is None:
        if not isinstance(key, str):  # set on a span directly, past the SDK's checks
            raise TypeError(f"attribute key {key!r} is not a string")
        key_text = _text(_KEY, key) if key else b""  # proto3 leaves an empty string out
        if len(_key_texts) < _KEY_CACHE_LIMIT:
            _key_texts[key] = key_text
    if value is None:
        return key_text + _EMPTY_VALUE
    return key_text + _length_delimited(_VALUE, _any_value(value))


def _attributes(tag: bytes, attributes: Mapping[str, object] | None) -> bytes:
    """Each attribute as a ``KeyValue`` field ``tag``; one that cannot be encoded is left out.

    A string or integer value's whole field is kept by key and value while the key has
    had few distinct values (a method, a route, a status), so most attributes of a span
    are one lookup.
    """
    if not attributes:
        return b""
    pieces: list[bytes] = []
    append = pieces.append
    for key, value in attributes.items():
        kind = type(value)
        kept = None
        if kind is str or kind is int:
            kept = _kept_fields.get((tag, key, kind))
            if kept is None and len(_kept_fields) < _KEYS_KEPT:
                kept = _kept_fields[tag, key, kind] = {}
            if kept is not None:
                field = kept.get(value)
                if field is not None:
                    append(field)
                    continue
        try:
            field = _length_delimited(tag, _key_value(key, value))
        except (ValueError, TypeError, UnicodeError) as error:
            _not_exported(key, error)
            continue
        append(field)
        if kept is not None and len(kept) < _VALUES_KEPT_PER_KEY:
            kept[value] = field
    return b"".join(pieces)


def _not_exported(key: str, error: Exception) -> None:
    """Log an attribute left out, once per key (a span set in a loop would flood the log)."""
    if key not in _keys_not_exported and len(_keys_not_exported) < _KEYS_KEPT:
        _keys_not_exported.add(key)
        _log.warning("span attribute %r not exported (logged once): %s", key, error)


def _plain(attributes: Any) -> Mapping[str, object] | None:
    """The dict inside the SDK's ``BoundedAttributes``, else ``attributes`` as given.

    Reading a ``BoundedAttributes`` through the mapping interface is two Python calls per
    attribute (its lock, a copy of its keys, then each item); an ended span's attributes
    no longer change, so its dict is read directly.
    """
    inner = getattr(attributes, "_dict", None)
    if type(inner) is dict and type(attributes) is BoundedAttributes:
        return inner
    return attributes  # type: ignore[no-any-return]


def _varint_field(tag: bytes, number: int | None) -> bytes:
    return tag + _varint(number) if number else b""


def _flags(parent: Any) -> bytes:
    flags = (
        _HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE
    )
    return _fixed32(flags)


def _span(span: ReadableSpan) -> bytes:
    """A ``Span`` message (without its own tag and length)."""
    context = span.get_span_context()
    assert context is not None  # a ReadableSpan always has one
    pieces = [
        _SPAN_TRACE_ID,
        context.trace_id.to_bytes(16, "big"),
        _SPAN_ID,
        context.span_id.to_bytes(8, "big"),
    ]
    trace_state = context.trace_state
    if trace_state:
        pieces.append(
            _text(_SPAN_TRACE_STATE, ",".join(f"{k}={v}" for k, v in trace_state.items()))
        )
    parent = span.parent
    if parent:
        pieces.append(_SPAN_PARENT_ID)
        pieces.append(parent.span_id.to_bytes(8, "big"))
    if span.name:
        pieces.append(_text(_SPAN_NAME, span.name))
    pieces.append(_SPAN_KIND)
    pieces.append(_SMALL[span.kind.value + 1])  # SpanKind.INTERNAL (0) is SPAN_KIND_INTERNAL (1)
    if span.start_time:
        pieces.append(_SPAN_START + _fixed64(span.start_time))
    if span.end_time:
        pieces.append(_SPAN_END + _fixed64(span.end_time))
    pieces.append(
        _attributes(_SPAN_ATTRIBUTE, _plain(getattr(span, "_attributes", None)) or span.attributes)
    )
    pieces.append(_varint_field(_SPAN_DROPPED_ATTRIBUTES, span.dropped_attributes))
    for event in span.events:
        pieces.append(_length_delimited(_SPAN_EVENT, _event(event)))
    pieces.append(_varint_field(_SPAN_DROPPED_EVENTS, span.dropped_events))
    for link in span.links:
        pieces.append(_length_delimited(_SPAN_LINK, _link(link)))
    pieces.append(_varint_field(_SPAN_DROPPED_LINKS, span.dropped_links))
    status = span.status
    if status is not None:
        code = status.status_code.value
        payload = b"" if not status.description else _text(b"\x12", status.description)
        if code:
            payload += b"\x18" + _SMALL[code]
        pieces.append(_length_delimited(_SPAN_STATUS, payload))
    pieces.append(_SPAN_FLAGS)
    pieces.append(_flags(parent))
    return b"".join(pieces)


def _event(event: Any) -> bytes:
    pieces = []
    if event.timestamp:
        pieces.append(b"\x09" + _fixed64(event.timestamp))
    if event.name:
        pieces.append(_text(b"\x12", event.name))
    pieces.append(_attributes(b"\x1a", _plain(event.attributes)))
    pieces.append(_varint_field(b"\x20", event.dropped_attributes))
    return b"".join(pieces)


def _link(link: Any) -> bytes:
    context = link.context
    return b"".join(
        [
            b"\x0a\x10",
            context.trace_id.to_bytes(16, "big"),
            b"\x12\x08",
            context.span_id.to_bytes(8, "big"),
            _attributes(b"\x22", _plain(link.attributes)),
            _varint_field(b"\x28", link.dropped_attributes),
            b"\x35",
            _flags(context),
        ]
    )


class _Encodings:
    """The encoded resources and scopes met so far, by identity (each is kept alive here)."""

    __slots__ = ("resources", "scopes")

    #: Beyond this many of either, encodings are made each time (a process has a handful).
    limit: Final = 64

    def __init__(self) -> None:
        self.resources: dict[int, tuple[Resource, bytes]] = {}
        self.scopes: dict[int, tuple[InstrumentationScope | None, bytes]] = {}

    def resource(self, resource: Resource) -> bytes:
        """The ``resource`` field of a ``ResourceSpans``, tag included."""
        kept = self.resources.get(id(resource))
        if kept is not None and kept[0] is resource:
            return kept[1]
        encoded = _length_delimited(b"\x0a", _attributes(b"\x0a", resource.attributes))
        if len(self.resources) < self.limit:
            self.resources[id(resource)] = (resource, encoded)
        return encoded

    def scope(self, scope: InstrumentationScope | None) -> bytes:
        """The ``scope`` field of a ``ScopeSpans``, tag included."""
        kept = self.scopes.get(id(scope))
        if kept is not None and kept[0] is scope:
            return kept[1]
        payload = b""
        if scope is not None:
            payload = b"".join(
                [
                    _text(b"\x0a", scope.name) if scope.name else b"",
                    _text(b"\x12", scope.version) if scope.version else b"",
                    _attributes(b"\x1a", scope.attributes),
                ]
            )
        encoded = _length_delimited(b"\x0a", payload)
        if len(self.scopes) < self.limit:
            self.scopes[id(scope)] = (scope, encoded)
        return encoded


_ENCODINGS: Final = _Encodings()


#: One span encoded ahead of its batch: its resource, its scope and its ``Span`` field.
EncodedSpan = tuple[Resource, InstrumentationScope | None, bytes]


def encode_span(span: ReadableSpan) -> EncodedSpan:
    """``span`` encoded on its own, to be sent in a request :func:`encode_request` writes.

    Bytes hold no references: a queue of encoded spans is a fraction of the memory of a
    queue of span objects, and gives the garbage collector nothing to walk.
    """
    return (
        span.resource,
        span.instrumentation_scope or None,
        _length_delimited(b"\x12", _span(span)),
    )


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` of ``spans``, as the SDK's exporter sends it."""
    return encode_request([encode_span(span) for span in spans])


def encode_request(spans: Sequence[EncodedSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` of spans :func:`encode_span` encoded.

    Grouped by resource, then scope, by equality as the SDK groups them; an object the
    same as the previous span's is not compared again (a resource's hash is a JSON dump).
    """
    grouped: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
    last_resource: object = None
    last_scope: object = None
    by_scope: dict[InstrumentationScope | None, list[bytes]] = {}
    encoded: list[bytes] = []
    for resource, scope, field in spans:
        if resource is not last_resource:
            last_resource, last_scope = resource, _UNSEEN
            by_scope = grouped.setdefault(resource, {})
        if scope is not last_scope:
            last_scope = scope
            encoded = by_scope.setdefault(scope, [])
        encoded.append(field)
    request = []
    for resource, scopes in grouped.items():
        scope_spans = []
        for scope, spans_encoded in scopes.items():
            body = [_ENCODINGS.scope(scope), *spans_encoded]
            if scope is not None and scope.schema_url:
                body.append(_text(b"\x1a", scope.schema_url))
            scope_spans.append(_length_delimited(b"\x12", b"".join(body)))
        resource_spans = [_ENCODINGS.resource(resource), *scope_spans]
        if resource.schema_url:
            resource_spans.append(_text(b"\x1a", resource.schema_url))
        request.append(_length_delimited(b"\x0a", b"".join(resource_spans)))
    return b"".join(request)


#: Not any scope (None is one: a span without an instrumentation scope).
_UNSEEN: Final = object()


def exporter_problem(exporter: OTLPSpanExporter) -> str | None:
    """What of the SDK exporter's shape :class:`OtlpHttpSpanExporter` relies on ``exporter``
    lacks; None: nothing (then it sends the bytes :func:`encode_spans` writes)."""
    client = getattr(exporter, "_client", None)
    if not callable(getattr(client, "export", None)):
        return "OTLPSpanExporter has no '_client' with export(data)"
    if not callable(getattr(getattr(exporter, "_metrics", None), "export_operation", None)):
        return "OTLPSpanExporter has no '_metrics' with export_operation(count)"
    if not isinstance(getattr(exporter, "_max_request_size", None), int):
        return "OTLPSpanExporter has no int '_max_request_size'"
    if not isinstance(getattr(exporter, "_shutdown", None), bool):
        return "OTLPSpanExporter has no bool '_shutdown'"
    return None


class OtlpHttpSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP protobuf span exporter, sending :func:`encode_spans`'s bytes.

    Takes the SDK exporter's arguments and reads its ``OTEL_EXPORTER_OTLP_*`` variables;
    sends, retries, compresses and counts as it does. When the installed exporter is not of
    the shape this was written for (:func:`exporter_problem`), it is the SDK's exporter
    unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Why the SDK's own encoding is used; None: the bytes are written here.
        self.encoding_problem = exporter_problem(self)
        if self.encoding_problem is not None:
            _log.info("OTLP spans encoded by the SDK: %s", self.encoding_problem)

    def shutdown(self) -> None:
        super().shutdown()  # type: ignore[no-untyped-call]

    @property
    def encodes_ahead(self) -> bool:
        """Whether :meth:`encode` and :meth:`export_encoded` serve: a batch processor may
        then encode each span as it ends and queue the bytes (see
        :class:`~ouro_obs.tracing.export.BoundedBatchSpanProcessor`)."""
        return self.encoding_problem is None

    @staticmethod
    def encode(span: ReadableSpan) -> EncodedSpan:
        """``span`` encoded for :meth:`export_encoded` (only when :attr:`encodes_ahead`)."""
        return encode_span(span)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.encoding_problem is not None:
            return super().export(spans)
        try:
            encoded = [encode_span(span) for span in spans]
        except Exception as error:  # a span the SDK's encoder would have failed on too
            _log.error("Failed to encode span batch: %s", error)
            return SpanExportResult.FAILURE
        return self.export_encoded(encoded)

    def export_encoded(self, spans: Sequence[EncodedSpan]) -> SpanExportResult:
        """Send spans :meth:`encode` encoded, as ``export`` sends span objects."""
        if self._shutdown:
            _log.warning("OTLP span exporter already shut down: %d spans not sent", len(spans))
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            data = encode_request(spans)
            if 0 < self._max_request_size < len(data):
                _log.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(data),
                    self._max_request_size,
                )
                result.error = ValueError(f"span batch of {len(data)} bytes is too large")
                return SpanExportResult.FAILURE
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                if sent.status_code is not None:
                    result.error_attrs = {"http.response.status_code": sent.status_code}
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
