"""``configure_logging``: every logger of the process through one chain and one renderer."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import structlog

from ouro_obs import ConfigError, ObservabilitySettings, configure_logging
from tests.logs.capture import LogCapture, capture_logs

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_stdlib_lines_are_json_with_timestamp_level_logger_event_and_extras(
    logs: LogCapture,
) -> None:
    logging.getLogger("shop.orders").warning("order %s late", 42, extra={"order_id": 42})
    (line,) = logs.lines
    assert ISO_UTC.match(line["timestamp"])
    assert line["level"] == "warning"
    assert line["logger"] == "shop.orders"
    assert line["event"] == "order 42 late"
    assert line["order_id"] == 42
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]


def test_structlog_lines_have_the_same_shape(logs: LogCapture) -> None:
    structlog.get_logger("shop.payments").info("charged", amount_cents=1250)
    (line,) = logs.lines
    assert ISO_UTC.match(line["timestamp"])
    assert (line["level"], line["logger"], line["event"]) == ("info", "shop.payments", "charged")
    assert line["amount_cents"] == 1250


def test_exceptions_are_one_line_with_the_traceback_text(logs: LogCapture) -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("shop").exception("lookup failed")
        structlog.get_logger("shop").exception("lookup failed too")
    assert len(logs.text.splitlines()) == 2
    for line in logs.lines:
        assert line["level"] == "error"
        assert "Traceback" in line["exception"]
        assert "KeyError: 'missing'" in line["exception"]


def test_uvicorn_lines_join_the_stream_and_its_access_log_is_silenced(
    restore_logging: None,
) -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    # As uvicorn's dictConfig does (an earlier in-process server may have left another level).
    uvicorn_error.addHandler(logging.StreamHandler(io.StringIO()))
    uvicorn_error.setLevel(logging.INFO)
    logging.getLogger("uvicorn").propagate = False
    capture = capture_logs()
    uvicorn_error.info("Started server process")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    assert [(line["logger"], line["event"]) for line in capture.lines] == [
        ("uvicorn.error", "Started server process")
    ]


def test_uvicorn_access_log_can_be_kept(restore_logging: None) -> None:
    capture = capture_logs(uvicorn_access_log=True)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    assert [line["logger"] for line in capture.lines] == ["uvicorn.access"]


def test_level_filters_both_stdlib_and_structlog(restore_logging: None) -> None:
    capture = capture_logs(level="warning")
    logging.getLogger("shop").info("dropped")
    structlog.get_logger("shop").info("dropped too")
    logging.getLogger("shop").error("kept")
    structlog.get_logger("shop").warning("kept too")
    assert [line["event"] for line in capture.lines] == ["kept", "kept too"]


def test_configuring_twice_never_duplicates_lines(restore_logging: None) -> None:
    configure_logging(ObservabilitySettings(), stream=io.StringIO(), log_format="json")
    capture = capture_logs()
    logging.getLogger("shop").warning("once")
    assert len(capture.lines) == 1
    assert len(logging.getLogger().handlers) == 1


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_is_readable_on_a_terminal_and_json_elsewhere(restore_logging: None) -> None:
    terminal = FakeTerminal()
    configure_logging(ObservabilitySettings(), stream=terminal, log_format="auto")
    logging.getLogger("shop").warning("hello terminal")
    assert "hello terminal" in terminal.getvalue()
    assert not terminal.getvalue().lstrip().startswith("{")

    capture = capture_logs(log_format="auto")
    logging.getLogger("shop").warning("hello pipe")
    assert capture.lines[0]["event"] == "hello pipe"


def test_console_format_by_option(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(ObservabilitySettings(), stream=stream, log_format="console")
    structlog.get_logger("shop").info("readable", user="ada")
    text = stream.getvalue()
    assert "readable" in text
    assert "user" in text
    assert "ada" in text
    assert "\x1b[" not in text  # no colours when the stream is not a terminal


def test_settings_from_the_environment_choose_level_and_format(restore_logging: None) -> None:
    settings = ObservabilitySettings.from_env(
        {"OURO_OBS_LOG_LEVEL": "ERROR", "OURO_OBS_LOG_FORMAT": "json"}
    )
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    logging.getLogger("shop").warning("below the level")
    logging.getLogger("shop").error("at the level")
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["at the level"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("log_level", "loud", "log_level='loud' is not a level"),
        ("log_format", "xml", "log_format='xml'"),
        ("log_max_field_length", 3, "log_max_field_length=3 is too short"),
    ],
)
def test_bad_logging_settings_name_the_field_and_the_choices(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ObservabilitySettings().replace(**{field: value})
