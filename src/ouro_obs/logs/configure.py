"""``configure_logging()``: every log line of the process through one chain and renderer.

One call at start-up sends every log line of the process, structlog's and the standard
library's (uvicorn, gunicorn, libraries, the app's own ``logging`` loggers), through the
processors of :func:`~ouro_obs.logs.processors.shared_processors` and one renderer: JSON
lines on stdout, or a readable console format on a terminal. Every line logged while a
request is served carries its ``request_id``, ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from ouro_obs.config import ObservabilitySettings
from ouro_obs.logs.processors import JsonLines, Processor, shared_processors

__all__ = ["configure_logging", "configured_json_stream"]

#: Loggers that servers configure with their own handlers; their lines join ours.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error")
_SERVER_ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")


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


#: What the last JSON configuration installed: its processor list (to tell that it is still
#: structlog's), its stream, settings and level; None after a console one.
_json_configuration: tuple[list[Processor], TextIO, ObservabilitySettings, int] | None = None


def configured_json_stream() -> tuple[TextIO, ObservabilitySettings, int] | None:
    """The stream, settings and numeric level of ``configure_logging``'s JSON lines, if
    structlog still runs the chain it installed (not one configured since); else None.

    The access line is then written straight to that stream, as that chain would write it
    (see :class:`~ouro_obs.logs.access.JsonAccessLines`), without structlog's dispatch.
    """
    installed = _json_configuration
    if installed is None or structlog.get_config()["processors"] is not installed[0]:
        return None
    return installed[1:]


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
    return JsonLines()


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

    global _json_configuration  # noqa: PLW0603 - one process, one logging configuration
    processors = [*chain, renderer]
    _json_configuration = None if console else (processors, stream, settings, numeric_level)
    structlog.configure(
        processors=processors,
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
