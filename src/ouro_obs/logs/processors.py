"""The structlog processors every line goes through: context, redaction, bounds, rendering.

Processors are small callables ``(logger, method_name, event_dict) -> event_dict``; the
configurable ones are ``__slots__`` classes that precompute in ``__init__``. Log lines are
safe to ship: header and query-parameter secrets are replaced by ``[REDACTED]``, string
values are cut at a maximum length, and no value can start a new line (JSON escapes
control characters; the console format escapes them explicitly).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

import structlog
from opentelemetry import trace

from ouro_obs.config import ObservabilitySettings
from ouro_obs.logs.redaction import (
    DEFAULT_REDACTED_HEADERS,
    DEFAULT_REDACTED_QUERY_PARAMS,
    REDACTED,
    normalized_name,
)

__all__ = [
    "BoundValues",
    "JsonLines",
    "Processor",
    "RedactSecrets",
    "UtcTimestamp",
    "add_logger_name",
    "add_trace_context",
    "safe_text",
    "shared_processors",
]

#: Keys whose values are multi-line by nature (tracebacks Python wrote): never cut, and
#: left multi-line by the console renderer as it prints tracebacks; JSON escapes them.
_UNBOUNDED_KEYS = frozenset({"exception", "stack"})
#: Keys structlog and the stdlib bridge use for themselves; not data to redact.
_INTERNAL_KEYS = frozenset({"exc_info", "stack_info", "positional_args", "_record"})
_SCALARS = frozenset({int, float, bool})
#: Rendered first, in this order, so a human scanning lines finds them in one place.
_HEAD_KEYS = ("timestamp", "level", "logger", "event")
_VERDICT_CACHE_LIMIT = 1024

Processor = Callable[[Any, str, MutableMapping[str, Any]], Any]

# -- values ------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def safe_text(value: str, limit: int) -> str:
    """``value`` on one line and at most ``limit`` characters, cut marker included.

    Control characters, line and paragraph separators become visible escapes
    (``\\n``, ``\\x1b``, ``\\u2028``), so no value can forge a log line. Applying it
    twice changes nothing.
    """
    if len(value) <= limit and value.isprintable():
        return value
    # Escaping only lengthens text: the first ``limit`` characters are all that can show.
    unseen = max(len(value) - limit, 0)
    return _truncate(_escape(value[:limit]), limit, unseen)


def _truncate(value: str, limit: int, unseen: int = 0) -> str:
    """``value`` cut to at most ``limit`` characters ending in ``...[N more]``."""
    if len(value) <= limit and not unseen:
        return value
    total = len(value) + unseen
    # Room for the marker, sized for the largest count it can show.
    keep = max(limit - len(f"...[{total} more]"), 0)
    return f"{value[:keep]}...[{total - keep} more]"


# -- processors --------------------------------------------------------------------------


def add_logger_name(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """``logger``: the stdlib record's logger name, or the structlog logger's ``name``."""
    if "logger" not in event_dict:
        record = event_dict.get("_record")
        name = record.name if record is not None else getattr(logger, "name", None)
        if name:
            event_dict["logger"] = name
    return event_dict


def add_trace_context(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """``trace_id`` and ``span_id`` of the span current when the line is logged.

    Read at log time, so a line logged inside a child span names that child; lines
    logged outside any span get neither key.
    """
    if "trace_id" not in event_dict:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event_dict["trace_id"] = format(context.trace_id, "032x")
            event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


class RedactSecrets:
    """Replace secret values with ``[REDACTED]``: by key, inside mappings, inside URLs.

    A key (or a mapping key, or the name of a ``(name, value)`` pair, one level down)
    that names a redacted header or query parameter loses its value; so does the value
    of such a parameter inside any string that looks like a query (``?token=...``).
    """

    __slots__ = ("_names", "_query_value", "_replacement", "_verdicts")

    def __init__(self, headers: Iterable[str] = (), query_params: Iterable[str] = ()) -> None:
        names = {normalized_name(name) for name in DEFAULT_REDACTED_HEADERS}
        names |= {normalized_name(name) for name in headers}
        params = {normalized_name(name) for name in DEFAULT_REDACTED_QUERY_PARAMS}
        params |= {normalized_name(name) for name in query_params}
        self._names = frozenset(names | params)
        spellings = sorted({spelling for name in params for spelling in _spellings(name)})
        alternatives = "|".join(re.escape(name) for name in spellings)
        self._query_value = re.compile(rf"(?i)((?:^|[?&;\s])(?:{alternatives})=)[^&#;\s\"']*")
        self._replacement = rf"\g<1>{REDACTED}"
        self._verdicts: dict[str, bool] = {}

    def _secret(self, key: object) -> bool:
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if not isinstance(key, str):
            return False
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = normalized_name(key) in self._names
            if len(self._verdicts) < _VERDICT_CACHE_LIMIT:
                self._verdicts[key] = verdict
        return verdict

    def redacted_text(self, value: str) -> str:
        """``value`` with the values of secret query parameters in it replaced."""
        return self._query_value.sub(self._replacement, value) if "=" in value else value

    def _pair_is_secret(self, item: Any) -> bool:
        return isinstance(item, tuple | list) and len(item) == 2 and self._secret(item[0])

    def _nested(self, value: Any) -> Any:
        """``value`` with secrets one level down replaced; the same object when it has none."""
        if isinstance(value, Mapping):
            if not any(self._secret(key) for key in value):
                return value
            return {key: REDACTED if self._secret(key) else item for key, item in value.items()}
        if not any(self._pair_is_secret(item) for item in value):
            return value
        return [(item[0], REDACTED) if self._pair_is_secret(item) else item for item in value]

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        verdicts = self._verdicts
        for key, value in event_dict.items():
            secret = verdicts.get(key)
            if secret is None:
                secret = self._secret(key)
            if secret:
                event_dict[key] = REDACTED
                continue
            kind = type(value)
            if kind is str:
                if "=" in value:
                    event_dict[key] = self._query_value.sub(self._replacement, value)
            elif kind in _SCALARS or value is None or key in _INTERNAL_KEYS:
                continue
            elif isinstance(value, Mapping | list | tuple):
                event_dict[key] = self._nested(value)
        return event_dict


def _spellings(name: str) -> set[str]:
    """The forms a normalized parameter name takes in a URL: ``-``, ``_`` or ``%5F``."""
    return {name, name.replace("-", "_"), name.replace("-", "%5F")}


class BoundValues:
    """Cut string values to ``limit`` characters; with ``escape``, also make them one line.

    JSON output escapes control characters itself, so only the console renderer needs
    ``escape``. Values of other types are turned into text and bounded the same way,
    unless JSON can write them as they are.
    """

    __slots__ = ("_escape", "_limit")

    def __init__(self, limit: int, *, escape: bool = False) -> None:
        self._limit = limit
        self._escape = escape

    def bounded(self, value: str) -> str:
        """``value`` cut to the limit (and, with ``escape``, on one line)."""
        if self._escape:
            return safe_text(value, self._limit)
        return _truncate(value, self._limit)

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        limit = self._limit
        for key, value in event_dict.items():
            kind = type(value)
            if kind is str:
                too_long_or_unsafe = len(value) > limit or (
                    self._escape and not value.isprintable()
                )
                if too_long_or_unsafe and key not in _UNBOUNDED_KEYS:
                    event_dict[key] = self.bounded(value)
            elif not (
                kind in _SCALARS
                or value is None
                or key.startswith("_")
                or key == "exc_info"
                or key in _UNBOUNDED_KEYS
            ):
                event_dict[key] = self._other(value)
        if self._escape:
            return {
                (key if key.isprintable() else _escape(key)): value
                for key, value in event_dict.items()
            }
        return event_dict

    def _other(self, value: Any) -> Any:
        if isinstance(value, dict | list | tuple):
            text = json.dumps(value, default=str)
            return value if len(text) <= self._limit else self.bounded(text)
        return self.bounded(str(value))


def _json_encoder() -> Callable[[Mapping[str, Any]], str]:
    """Compact JSON, ASCII-only, unknown types as ``str()``: the same text for every caller.

    The C encoder built once: ``JSONEncoder.encode`` builds a new one per call, a third of
    a line's rendering. Without the C accelerator (another interpreter), the pure-Python
    encoder, built once too. Neither checks for cycles (a cyclic value raises
    ``RecursionError`` instead of ``ValueError``).
    """
    fallback = json.JSONEncoder(default=str, separators=(",", ":"), check_circular=False).encode
    if c_make_encoder is None:  # pragma: no cover - CPython has it
        return fallback
    chunks = c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", False, False, True)

    def encode(document: Mapping[str, Any]) -> str:
        return "".join(chunks(document, 0))

    return encode


class JsonLines:
    """One JSON object per line, the well-known keys first; unknown types as text."""

    __slots__ = ("encode",)

    def __init__(self) -> None:
        #: Renders a mapping whose keys are already in the order to write.
        self.encode = _json_encoder()

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        ordered = {key: event_dict.pop(key) for key in _HEAD_KEYS if key in event_dict}
        ordered.update(event_dict)
        return self.encode(ordered)


class UtcTimestamp:
    """``timestamp``: ISO-8601 in UTC with microseconds and ``Z``; the seconds part cached."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        #: The whole second last seen, and its text up to the decimal point included.
        self._second: tuple[int, str] = (-1, "")

    def now(self) -> str:
        """The current time as the ``timestamp`` value."""
        # Integer microseconds, their digits without a format spec: a quarter fewer
        # instructions than from the float ``time.time()``.
        micros = time.time_ns() // 1000
        whole = micros // 1_000_000
        second, prefix = self._second
        if whole != second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole))
            self._second = (whole, prefix)
        return f"{prefix}{str(micros % 1_000_000 + 1_000_000)[1:]}Z"

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        event_dict["timestamp"] = self.now()
        return event_dict


def shared_processors(
    settings: ObservabilitySettings | None = None, *, console: bool = False
) -> list[Processor]:
    """The chain every line goes through before rendering (for your own structlog set-up).

    Context (request id, trace), level, logger name, ISO-8601 UTC timestamp,
    exception text (JSON only: the console renderer prints tracebacks itself),
    redaction and length bounds.
    """
    settings = settings or ObservabilitySettings()
    chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_context,
        structlog.processors.add_log_level,
        add_logger_name,
        UtcTimestamp(),
        structlog.processors.StackInfoRenderer(),
    ]
    if not console:
        chain.append(structlog.processors.format_exc_info)
    chain += [
        RedactSecrets(settings.redact_headers, settings.redact_query_params),
        BoundValues(settings.log_max_field_length, escape=console),
    ]
    return chain
