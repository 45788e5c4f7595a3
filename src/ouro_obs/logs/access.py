"""The access line: one structured log line per finished request, a recorder of its record.

Written through the app's structlog configuration when it has one. When the app configured
nothing, structlog's default would render it with its console renderer (colours, padding:
most of the line's cost); the line is then written as :class:`JsonAccessLines` instead,
the JSON line ``configure_logging(log_format="json")`` writes, on stdout. When the app
configured that JSON chain itself, the line is written the same way, on its stream: the
same text without structlog's dispatch through ten processors.
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from contextvars import copy_context
from json.encoder import encode_basestring_ascii
from typing import Any, Final, TextIO

import structlog
from structlog.contextvars import STRUCTLOG_KEY_PREFIX

from ouro_obs.asgi.record import RequestRecord
from ouro_obs.config import ObservabilitySettings
from ouro_obs.logs.configure import configured_json_stream
from ouro_obs.logs.processors import BoundValues, JsonLines, RedactSecrets, UtcTimestamp, safe_text
from ouro_obs.logs.redaction import query_names, redact_query

__all__ = ["ACCESS_LOGGER_NAME", "AccessLog", "JsonAccessLines"]

ACCESS_LOGGER_NAME: Final = "ouro_obs.access"
#: Recorded statuses from which the line is written at ``error`` level.
_ERROR_STATUS = 500
#: The keys every line starts with; a context variable of the same name is not written.
_HEAD_KEYS = frozenset({"timestamp", "level", "logger", "event"})
#: The keys of every access line's fields, and with a query.
_FIELDS = frozenset(
    {
        "method",
        "route",
        "path",
        "status",
        "duration_ms",
        "request_bytes",
        "response_bytes",
        "client",
        "user_agent",
        "request_id",
        "trace_id",
        "span_id",
    }
)
_FIELDS_AND_QUERY = _FIELDS | {"query"}
#: How structlog names the context variables ``bind_contextvars`` binds.
_STRUCTLOG_PREFIX: Final = STRUCTLOG_KEY_PREFIX
_STRUCTLOG_PREFIX_LENGTH: Final = len(STRUCTLOG_KEY_PREFIX)


def _head(level: str) -> str:
    """A request line's well-known keys after the timestamp, and the comma before its fields."""
    return f'"level":"{level}","logger":"{ACCESS_LOGGER_NAME}","event":"request",'


_INFO_HEAD: Final = _head("info")
_ERROR_HEAD: Final = _head("error")
#: Most route, client and user-agent texts kept per access log (each): beyond them a
#: text is made for every line (a client sending random user agents fills no memory).
_TEXT_CACHE_LIMIT: Final = 512
#: A string as the JSON encoder writes it: quoted, ASCII-only, escaped (its C escaper).
_quote: Callable[[str], str] = encode_basestring_ascii


class JsonAccessLines:
    """The access line as ``configure_logging(log_format="json")`` writes it, straight to ``stream``.

    The same keys in the same order (timestamp, level, logger, event, the fields, then
    the structlog context variables), redacted and bounded as that chain would, one line
    per call, flushed like structlog's own writers, without structlog's dispatch. A
    drop-in for the access line's logger: only ``info`` and ``error`` are called, with
    fields other than the four well-known keys.

    The fields are :class:`AccessLog`'s, plain values: only their strings are checked
    (secret query parameters, length); the context variables, which can be anything,
    go through the whole :class:`~ouro_obs.logs.processors.RedactSecrets` and
    :class:`~ouro_obs.logs.processors.BoundValues`.

    The line is written field by field, not built as a dict and encoded: that measured
    77,000 instructions per line (callgrind), most of the one-line default's cost. Each
    value is written as the JSON encoder would write it (strings through its own C
    escaper), so the text is the same.
    """

    __slots__ = (
        "_bound",
        "_encode",
        "_limit",
        "_redact",
        "_timestamp",
        "_writer",
        "error_enabled",
        "info_enabled",
    )

    def __init__(
        self, stream: TextIO, settings: ObservabilitySettings, *, level: int = logging.NOTSET
    ) -> None:
        #: structlog's writer: its lock of ``stream`` keeps its lines and these apart.
        self._writer = structlog.WriteLogger(stream)
        #: Whether lines of each level are written (``level``: the lowest one that is).
        self.info_enabled = level <= logging.INFO
        self.error_enabled = level <= logging.ERROR
        self._timestamp = UtcTimestamp()
        self._redact = RedactSecrets(settings.redact_headers, settings.redact_query_params)
        self._limit = settings.log_max_field_length
        self._bound = BoundValues(self._limit)
        self._encode = JsonLines().encode

    def info(self, event: str, **fields: Any) -> None:
        if self.info_enabled:
            self.write("info", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        if self.error_enabled:
            self.write("error", event, fields)

    def write(self, level: str, event: str, fields: Mapping[str, Any]) -> None:
        """One line: the well-known keys first, then ``fields``, then the context variables."""
        self.write_text(self.render(level, event, fields))

    def write_text(self, line: str) -> None:
        """Write one rendered line (:meth:`render`'s text) and its newline, and flush."""
        self._writer.msg(line)

    def render(self, level: str, event: str, fields: Mapping[str, Any]) -> str:
        """The line :meth:`write` writes, without its newline."""
        quote = _quote
        limit = self._limit
        parts = [self.line_start(level, event)]
        append = parts.append
        for key, value in fields.items():
            kind = type(value)
            if kind is str:
                text = self.checked(value) if "=" in value or len(value) > limit else value
                append(f",{quote(key)}:{quote(text)}")
            elif value is None:
                append(f",{quote(key)}:null")
            elif kind is int:
                append(f",{quote(key)}:{int.__repr__(value)}")
            else:  # floats (NaN, infinities), and anything else, as the encoder writes them
                append(f",{quote(key)}:{self._encode(value)}")
        extra = unwritten_context(fields.keys())
        append("}" if extra is None else self.line_end(level, extra))
        return "".join(parts)

    def line_start(self, level: str, event: str) -> str:
        """The line's opening brace and its four well-known keys."""
        return (
            f'{{"timestamp":"{self._timestamp.now()}","level":{_quote(level)},'
            f'"logger":"{ACCESS_LOGGER_NAME}","event":{_quote(event)}'
        )

    def timestamp(self) -> str:
        """The ``timestamp`` value of a line written now."""
        return self._timestamp.now()

    def checked(self, value: str) -> str:
        """A field's text with secret query parameters redacted, cut to the length limit."""
        if "=" in value or len(value) > self._limit:
            return self._bound.bounded(self._redact.redacted_text(value))
        return value

    def line_end(self, level: str, extra: dict[str, Any]) -> str:
        """``extra`` (:func:`unwritten_context`) redacted and bounded, and ``}``."""
        extra = self._bound(None, level, self._redact(None, level, extra))
        return f",{self._encode(extra)[1:]}"


def unwritten_context(written: AbstractSet[str]) -> dict[str, Any] | None:
    """The structlog context variables bound now, but for ``written`` keys; None if none.

    What ``merge_contextvars`` would add to a line holding ``written`` (the first
    variable of a name wins, as there), in one pass over the context.
    """
    extra: dict[str, Any] | None = None
    for var, value in copy_context().items():
        name = var.name
        if value is not Ellipsis and name.startswith(_STRUCTLOG_PREFIX):
            key = name[_STRUCTLOG_PREFIX_LENGTH:]
            if key not in written and key not in _HEAD_KEYS:
                if extra is None:
                    extra = {}
                extra.setdefault(key, value)
    return extra


def duration_ms(seconds: float) -> float:
    """A duration in milliseconds, to the microsecond, as the access lines write it.

    The same value as ``round(seconds * 1000, 3)``, from the rounded count of
    microseconds: a third of ``round``'s work with a number of digits.
    """
    return round(seconds * 1_000_000.0) / 1000.0


class AccessLog:
    """Writes the one line per finished request (``event="request"``) to ``logger``.

    ``logger=None`` is the ``ouro_obs.access`` structlog logger, or :class:`JsonAccessLines`
    on stdout when structlog is not configured by the time of the first request. Values
    that come from the client (path, query, user agent) are redacted, bounded and escaped
    here, so the line is safe whatever renderer the logger uses.
    """

    __slots__ = (
        "_agent_texts",
        "_client_texts",
        "_limit",
        "_logger",
        "_query_names",
        "_route_texts",
        "_settings",
    )
    stage = "access_log"

    def __init__(self, logger: Any, settings: ObservabilitySettings) -> None:
        self._logger = logger
        self._settings = settings
        self._limit = settings.log_max_field_length
        self._query_names = query_names(settings.redact_query_params)
        #: The JSON text of values that repeat from request to request (route templates,
        #: client addresses, user agents), as :meth:`_json_line` writes them for this
        #: logger; each holds at most ``_TEXT_CACHE_LIMIT`` entries.
        self._route_texts: dict[str, str] = {}
        self._client_texts: dict[str, str] = {}
        self._agent_texts: dict[bytes, str] = {}

    def resolved(self) -> AccessLog:
        """This access log with the logger it writes to decided, once.

        The default logger becomes :class:`JsonAccessLines` when the app configured no
        structlog or configured it with ``configure_logging``'s JSON lines (the same line,
        on its stream, at its level), else the ``ouro_obs.access`` structlog logger; a lazy structlog proxy
        is swapped for the logger it stands for. Call it once logging is configured (at
        the first request), not per line.
        """
        logger = self._logger
        if logger is None:
            if not structlog.is_configured():
                return self._with_logger(JsonAccessLines(sys.stdout, self._settings))
            configured = configured_json_stream()
            if configured is not None:  # configure_logging's JSON lines: the same, directly
                stream, settings, level = configured
                return self._with_logger(JsonAccessLines(stream, settings, level=level))
            logger = structlog.get_logger(ACCESS_LOGGER_NAME)
        bind = getattr(logger, "bind", None)
        return self._with_logger(bind() if callable(bind) else logger)

    @property
    def logger(self) -> Any:
        """The logger the lines go to (decided by :meth:`resolved`); WebSocket lines too."""
        return self._logger

    def _with_logger(self, logger: Any) -> AccessLog:
        resolved = copy.copy(self)
        resolved._logger = logger
        # The texts depend on the logger's redaction and limits: new caches for it.
        resolved._route_texts, resolved._client_texts, resolved._agent_texts = {}, {}, {}
        return resolved

    def record(self, record: RequestRecord) -> None:
        logger = self._logger
        if type(logger) is JsonAccessLines:
            if logger.error_enabled if record.status >= _ERROR_STATUS else logger.info_enabled:
                logger.write_text(self._json_line(record, logger))
            return
        fields = self._fields(record)
        if record.status >= _ERROR_STATUS:
            logger.error("request", **fields)
        else:
            logger.info("request", **fields)

    def _fields(self, record: RequestRecord) -> dict[str, Any]:
        limit = self._limit
        scope = record.scope
        client = scope.get("client")
        user_agent = record.user_agent
        span_ids = record.span_ids
        fields: dict[str, Any] = {
            "method": record.method,
            "route": record.route,
            "path": safe_text(scope["path"], limit),
            "status": record.status,
            "duration_ms": duration_ms(record.end_time - record.start_time),
            "request_bytes": record.request_bytes,
            "response_bytes": record.response_bytes,
            "client": safe_text(str(client[0]), limit) if client else None,
            "user_agent": (
                safe_text(user_agent.decode("latin-1"), limit) if user_agent is not None else None
            ),
            "request_id": record.request_id,
            "trace_id": None if span_ids is None else span_ids.trace_id,
            "span_id": None if span_ids is None else span_ids.span_id,
        }
        query: bytes = scope.get("query_string", b"")
        if query:
            fields["query"] = safe_text(
                redact_query(query.decode("latin-1"), self._query_names), limit
            )
        if record.error is not None:
            fields["error"] = record.error_type
        return fields

    def _json_line(self, record: RequestRecord, lines: JsonAccessLines) -> str:
        """``lines.render(level, "request", self._fields(record))``, the same text, written
        in one piece: the method, request id and span ids need no escaping (they are made
        of safe characters: the request id is one the middleware made or accepted as
        such), so the dict, the loop and their quoting are skipped, and the texts of the
        route, the client and the user agent, which repeat, are looked up once made. It
        measured a third of the generic line's instructions (callgrind, with a browser's
        user agent).
        """
        limit = self._limit
        scope = record.scope
        status = record.status
        error = status >= _ERROR_STATUS
        route = record.route
        route_json = self._route_texts.get(route) or self._text(
            self._route_texts, route, _quote(lines.checked(route))
        )
        path = safe_text(scope["path"], limit)
        if "=" in path:
            path = lines.checked(path)
        client = scope.get("client")
        client_json = "null"
        if client:
            host = str(client[0])  # the key too: a server's host of another type is written
            client_json = self._client_texts.get(host) or self._text(
                self._client_texts, host, _quote(lines.checked(safe_text(host, limit)))
            )
        user_agent = record.user_agent
        agent_json = "null"
        if user_agent is not None:
            if type(user_agent) is not bytes:  # a bytearray or memoryview: not a key
                user_agent = bytes(user_agent)
            agent_json = self._agent_texts.get(user_agent) or self._text(
                self._agent_texts,
                user_agent,
                _quote(lines.checked(safe_text(user_agent.decode("latin-1"), limit))),
            )
        request_id = record.request_id
        request_id_json = "null" if request_id is None else f'"{request_id}"'
        span_ids = record.span_ids
        ids_json = '"trace_id":null,"span_id":null'
        if span_ids is not None:
            ids_json = f'"trace_id":"{span_ids.trace_id}","span_id":"{span_ids.span_id}"'
        parts = [
            f'{{"timestamp":"{lines.timestamp()}",'
            f"{_ERROR_HEAD if error else _INFO_HEAD}"
            f'"method":"{record.method}","route":{route_json},'
            f'"path":{_quote(path)},"status":{status},"duration_ms":{duration_ms(record.end_time - record.start_time)!r},'
            f'"request_bytes":{record.request_bytes},"response_bytes":{record.response_bytes},'
            f'"client":{client_json},"user_agent":{agent_json},'
            f'"request_id":{request_id_json},{ids_json}'
        ]
        written = _FIELDS
        query: bytes = scope.get("query_string", b"")
        if query:
            text = safe_text(redact_query(query.decode("latin-1"), self._query_names), limit)
            parts.append(f',"query":{_quote(lines.checked(text))}')
            written = _FIELDS_AND_QUERY
        if record.error is not None:
            parts.append(f',"error":{_quote(lines.checked(record.error_type or ""))}')
            written = written | {"error"}
        extra = unwritten_context(written)
        parts.append("}" if extra is None else lines.line_end("error" if error else "info", extra))
        return "".join(parts)

    @staticmethod
    def _text(texts: dict[Any, str], key: Any, text: str) -> str:
        """``text``, kept in ``texts`` under ``key`` while there is room."""
        if len(texts) < _TEXT_CACHE_LIMIT:
            texts[key] = text
        return text
