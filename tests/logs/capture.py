"""Capturing what ``configure_logging`` writes, and putting the process's logging back after."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from ouro_obs import ObservabilitySettings, configure_logging

_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")


@dataclass
class LogCapture:
    """The lines written since configuration, parsed as JSON (each must be one object)."""

    stream: io.StringIO = field(default_factory=io.StringIO)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[dict[str, Any]]:
        parsed = []
        for line in self.text.splitlines():
            document = json.loads(line)
            assert isinstance(document, dict), line
            parsed.append(document)
        return parsed

    def by_logger(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("logger") == name]

    @property
    def access(self) -> list[dict[str, Any]]:
        return self.by_logger("ouro_obs.access")

    def one_access_line(self) -> dict[str, Any]:
        lines = self.access
        assert len(lines) == 1, lines
        return lines[0]


def saved_logging() -> Iterator[None]:
    """Restore root/server loggers and structlog's configuration after a test changed them."""
    saved = [
        (logger, list(logger.handlers), logger.level, logger.propagate)
        for logger in (logging.getLogger(name) for name in _LOGGERS)
    ]
    structlog_config = structlog.get_config()
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
                    handler.close()
            for handler in handlers:
                if handler not in logger.handlers:
                    logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        structlog.reset_defaults()
        structlog.configure(**structlog_config)


def capture_logs(settings: ObservabilitySettings | None = None, **options: Any) -> LogCapture:
    capture = LogCapture()
    configure_logging(
        settings or ObservabilitySettings(),
        stream=capture.stream,
        **{"log_format": "json", **options},
    )
    return capture
