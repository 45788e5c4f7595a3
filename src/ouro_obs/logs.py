"""Structured logs: ``configure_logging()``, the access line, request context, redaction.

One call at start-up sends every log line of the process, structlog's and the standard
library's (uvicorn, gunicorn, libraries, the app's own ``logging`` loggers), through one
processor chain and one renderer: JSON lines on stdout, or a readable console format on a
terminal. Every line logged while a request is served carries its ``request_id``,
``trace_id`` and ``span_id``.

Log lines are safe to ship: header and query-parameter secrets are replaced by
``[REDACTED]``, string values are cut at a maximum length, and no value can start a new
line (JSON escapes control characters; the console format escapes them explicitly).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final, TextIO

import structlog
from opentelemetry import trace

from ouro_obs.config import ObservabilitySettings
from ouro_obs.redaction import (
    DEFAULT_REDACTED_HEADERS,
    DEFAULT_REDACTED_QUERY_PARAMS,
    REDACTED,
    normalized_name,
    query_names,
    redact_query,
)
from ouro_obs.tracing import error_type

__all__ = [
    "ACCESS_LOGGER_NAME",
    "AccessLog",
    "BoundValues",
    "RedactSecrets",
    "add_logger_name",
    "add_trace_context",
    "configure_logging",
    "safe_text",
    "shared_processors",
]

ACCESS_LOGGER_NAME: Final = "ouro_obs.access"

#: Keys whose values are multi-line by nature (tracebacks Python wrote): never cut, and
#: left multi-line by the console renderer as it prints tracebacks; JSON escapes them.
_UNBOUNDED_KEYS = frozenset({"exception", "stack"})
#: Keys structlog and the stdlib bridge use for themselves; not data to redact.
_INTERNAL_KEYS = frozenset({"exc_info", "stack_info", "positional_args", "_record"})
_SCALARS = frozenset({int, float, bool})
#: Rendered first, in this order, so a human scanning lines finds them in one place.
_HEAD_KEYS = ("timestamp", "level", "logger", "event")
#: Loggers that servers configure with their own handlers; their lines join ours.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error")
_SERVER_ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")
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

    def _bounded(self, value: str) -> str:
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
                    event_dict[key] = self._bounded(value)
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
            return value if len(text) <= self._limit else self._bounded(text)
        return self._bounded(str(value))


class _JsonLines:
    """One JSON object per line, the well-known keys first; unknown types as text."""

    __slots__ = ("_encode",)

    def __init__(self) -> None:
        # One encoder for every line: json.dumps with options builds a new one per call.
        self._encode = json.JSONEncoder(default=str, separators=(",", ":")).encode

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        ordered = {key: event_dict.pop(key) for key in _HEAD_KEYS if key in event_dict}
        ordered.update(event_dict)
        return self._encode(ordered)


class _UtcTimestamp:
    """``timestamp``: ISO-8601 in UTC with microseconds and ``Z``; the seconds part cached."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        now = time.time()
        whole = int(now)
        second, prefix = self._second
        if whole != second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            self._second = (whole, prefix)
        event_dict["timestamp"] = f"{prefix}.{int((now - whole) * 1_000_000):06d}Z"
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
        _UtcTimestamp(),
        structlog.processors.StackInfoRenderer(),
    ]
    if not console:
        chain.append(structlog.processors.format_exc_info)
    chain += [
        RedactSecrets(settings.redact_headers, settings.redact_query_params),
        BoundValues(settings.log_max_field_length, escape=console),
    ]
    return chain


# -- wiring ------------------------------------------------------------------------------


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's line writer (one lock per file), with the name it was asked for."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _WriteLoggerFactory:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = args[0] if args and isinstance(args[0], str) else "app"
        return _NamedWriteLogger(self._stream, name)


class _RenderingHandler(logging.Handler):
    """Standard-library records, rendered by structlog and written under the same lock."""

    def __init__(self, writer: structlog.WriteLogger, formatter: logging.Formatter) -> None:
        super().__init__()
        self._writer = writer
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.msg(self.format(record))
        except Exception:
            self.handleError(record)


def _drop_server_extras(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """uvicorn passes a colourised copy of some messages as an extra; JSON needs none."""
    event_dict.pop("color_message", None)
    return event_dict


def _wants_console(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())
    return log_format == "console"


def _renderer(console: bool, stream: TextIO) -> Processor:
    if console:
        isatty = getattr(stream, "isatty", None)
        return structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))
    return _JsonLines()


def configure_logging(
    settings: ObservabilitySettings | None = None,
    *,
    level: str | None = None,
    log_format: str | None = None,
    stream: TextIO | None = None,
    uvicorn_access_log: bool = False,
) -> None:
    """Route every log line of the process through one structlog chain and renderer.

    Call it once at start-up (again to change it; it never stacks handlers).
    ``settings`` default to ``ObservabilitySettings.from_env()``; ``level``,
    ``log_format`` (``json``, ``console``, ``auto``) and ``stream`` (default stdout)
    override them. The root logger gets the only handler; uvicorn's and gunicorn's
    loggers lose theirs and propagate to it. Their access loggers are silenced, since
    the middleware writes the access line, unless ``uvicorn_access_log`` is True.
    """
    settings = settings or ObservabilitySettings.from_env()
    level_name = (level or settings.log_level).strip().lower()
    settings = settings.replace(log_level=level_name, log_format=log_format or settings.log_format)
    stream = sys.stdout if stream is None else stream
    console = _wants_console(settings.log_format, stream)
    chain = shared_processors(settings, console=console)
    renderer = _renderer(console, stream)
    numeric_level = logging.getLevelNamesMapping()[level_name.upper()]

    structlog.configure(
        processors=[*chain, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_WriteLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_server_extras, *chain],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    _install_root_handler(
        _RenderingHandler(structlog.WriteLogger(stream), formatter), numeric_level
    )
    _adopt_server_loggers(uvicorn_access_log)


def _install_root_handler(handler: logging.Handler, level: int) -> None:
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
        if isinstance(existing, _RenderingHandler):
            existing.close()
    root.addHandler(handler)
    root.setLevel(level)


def _adopt_server_loggers(keep_access_log: bool) -> None:
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    for name in _SERVER_ACCESS_LOGGERS:
        access_logger = logging.getLogger(name)
        access_logger.handlers.clear()
        access_logger.propagate = keep_access_log
        # Above INFO, the server's access call returns before formatting anything.
        access_logger.setLevel(logging.NOTSET if keep_access_log else logging.WARNING)


# -- the access line ---------------------------------------------------------------------


class AccessLog:
    """Writes the one line per finished request (``event="request"``).

    Values that come from the client (path, query, user agent) are redacted, bounded
    and escaped here, so the line is safe whatever renderer the logger uses.
    """

    __slots__ = ("_limit", "_logger", "_query_names")

    def __init__(self, logger: Any, settings: ObservabilitySettings) -> None:
        self._logger = logger
        self._limit = settings.log_max_field_length
        self._query_names = query_names(settings.redact_query_params)

    def resolve(self) -> None:
        """Swap a lazy structlog proxy for the logger it stands for (once, before serving)."""
        bind = getattr(self._logger, "bind", None)
        if callable(bind):
            self._logger = bind()

    def write(
        self,
        *,
        method: str,
        route: str,
        path: str,
        query: bytes,
        status: int,
        duration_seconds: float,
        request_bytes: int,
        response_bytes: int,
        client: Any,
        user_agent: bytes | None,
        request_id: str | None,
        trace_id: str | None,
        span_id: str | None,
        error: BaseException | None,
    ) -> None:
        limit = self._limit
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "path": safe_text(path, limit),
            "status": status,
            "duration_ms": round(duration_seconds * 1000.0, 3),
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
            "client": safe_text(str(client[0]), limit) if client else None,
            "user_agent": (
                safe_text(user_agent.decode("latin-1"), limit) if user_agent is not None else None
            ),
            "request_id": request_id,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        if query:
            fields["query"] = safe_text(
                redact_query(query.decode("latin-1"), self._query_names), limit
            )
        if error is not None:
            fields["error"] = error_type(error)
        if status >= 500:
            self._logger.error("request", **fields)
        else:
            self._logger.info("request", **fields)
