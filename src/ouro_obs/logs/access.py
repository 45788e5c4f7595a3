"""The access line: one structured log line per finished request, a recorder of its record.

Written through the app's structlog configuration when it has one. When the app configured
nothing, structlog's default would render it with its console renderer (colours, padding:
most of the line's cost); the line is then written as :class:`JsonAccessLines` instead,
the JSON line ``configure_logging(log_format="json")`` writes, on stdout.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, Final, TextIO

import structlog
from structlog.contextvars import merge_contextvars

from ouro_obs.asgi.record import RequestRecord
from ouro_obs.config import ObservabilitySettings
from ouro_obs.logs.processors import BoundValues, JsonLines, RedactSecrets, UtcTimestamp, safe_text
from ouro_obs.logs.redaction import query_names, redact_query

__all__ = ["ACCESS_LOGGER_NAME", "AccessLog", "JsonAccessLines"]

ACCESS_LOGGER_NAME: Final = "ouro_obs.access"
#: Recorded statuses from which the line is written at ``error`` level.
_ERROR_STATUS = 500


class JsonAccessLines:
    """The access line as ``configure_logging(log_format="json")`` writes it, straight to ``stream``.

    The same keys in the same order (timestamp, level, logger, event, the fields, then
    the structlog context variables), redacted and bounded as that chain would, one line
    per call, flushed like structlog's own writers, without structlog's dispatch. A
    drop-in for the access line's logger: only ``info`` and ``error`` are called.

    The fields are :class:`AccessLog`'s, plain values: only their strings are checked
    (secret query parameters, length); the context variables, which can be anything,
    go through the whole :class:`~ouro_obs.logs.processors.RedactSecrets` and
    :class:`~ouro_obs.logs.processors.BoundValues`.
    """

    __slots__ = ("_bound", "_encode", "_limit", "_lock", "_redact", "_stream", "_timestamp")

    def __init__(self, stream: TextIO, settings: ObservabilitySettings) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._timestamp = UtcTimestamp()
        self._redact = RedactSecrets(settings.redact_headers, settings.redact_query_params)
        self._limit = settings.log_max_field_length
        self._bound = BoundValues(self._limit)
        self._encode = JsonLines().encode

    def info(self, event: str, **fields: Any) -> None:
        self.write("info", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self.write("error", event, fields)

    def write(self, level: str, event: str, fields: Mapping[str, Any]) -> None:
        """One line: the well-known keys first, then ``fields``, then the context variables."""
        line: dict[str, Any] = {
            "timestamp": self._timestamp.now(),
            "level": level,
            "logger": ACCESS_LOGGER_NAME,
            "event": event,
        }
        line.update(fields)
        limit = self._limit
        for key, value in line.items():
            if type(value) is str and ("=" in value or len(value) > limit):
                line[key] = self._bound.bounded(self._redact.redacted_text(value))
        context: MutableMapping[str, Any] = merge_contextvars(None, level, {})
        if context.keys() - line.keys():
            for key in line.keys() & context.keys():
                del context[key]
            line.update(self._bound(None, level, self._redact(None, level, context)))
        text = self._encode(line) + "\n"
        stream = self._stream
        with self._lock:
            stream.write(text)
            stream.flush()


class AccessLog:
    """Writes the one line per finished request (``event="request"``) to ``logger``.

    ``logger=None`` is the ``ouro_obs.access`` structlog logger, or :class:`JsonAccessLines`
    on stdout when structlog is not configured by the time of the first request. Values
    that come from the client (path, query, user agent) are redacted, bounded and escaped
    here, so the line is safe whatever renderer the logger uses.
    """

    __slots__ = ("_limit", "_logger", "_query_names", "_settings")
    stage = "access_log"

    def __init__(self, logger: Any, settings: ObservabilitySettings) -> None:
        self._logger = logger
        self._settings = settings
        self._limit = settings.log_max_field_length
        self._query_names = query_names(settings.redact_query_params)

    def resolved(self) -> AccessLog:
        """This access log with the logger it writes to decided, once.

        The default logger becomes :class:`JsonAccessLines` when the app configured no
        structlog, else the ``ouro_obs.access`` structlog logger; a lazy structlog proxy
        is swapped for the logger it stands for. Call it once logging is configured (at
        the first request), not per line.
        """
        logger = self._logger
        if logger is None:
            if not structlog.is_configured():
                return self._with_logger(JsonAccessLines(sys.stdout, self._settings))
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
        return resolved

    def record(self, record: RequestRecord) -> None:
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
            "duration_ms": round((record.end_time - record.start_time) * 1000.0, 3),
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
        if record.status >= _ERROR_STATUS:
            self._logger.error("request", **fields)
        else:
            self._logger.info("request", **fields)
