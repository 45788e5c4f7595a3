"""The default access line's text: written in one piece, the same as the generic rendering."""

from __future__ import annotations

import io
import json
import random
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from ouro_obs.asgi.record import RequestRecord, SpanIds
from ouro_obs.asgi.request_id import new_request_id
from ouro_obs.config import ObservabilitySettings
from ouro_obs.logs.access import AccessLog, JsonAccessLines, duration_ms
from ouro_obs.logs.processors import UtcTimestamp

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
#: The timestamp, the one value two renderings of the same record do not share.
TIMESTAMP = re.compile(r'^\{"timestamp":"[^"]*",')

BROWSER = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
#: Client values the line must redact, escape or cut, each as the generic rendering would.
HOSTILE_AGENTS = [
    BROWSER,
    b'probe\n{"level":"error"}',
    b"curl?token=s3cret&page=2",
    b"\xe9t\xe9\x1b[31m",
    b"x" * 300,
]


def _record(path: str, agent: bytes | None, client: Any, **overrides: Any) -> RequestRecord:
    record = RequestRecord()
    record.scope = {"path": path, "client": client, "query_string": b""}
    record.method = "GET"
    record.route = "/items/{item_id}"
    record.status = 200
    record.request_bytes = 0
    record.response_bytes = 42
    record.start_time = 10.0
    record.end_time = 10.000123456
    record.request_id = new_request_id()
    record.user_agent = agent
    record.span_ids = None
    record.error = None
    for name, value in overrides.items():
        setattr(record, name, value)
    return record


def _direct_and_generic(
    records: list[RequestRecord], settings: ObservabilitySettings
) -> tuple[list[str], list[str]]:
    """Each record's line as the access log writes it, and as the generic rendering would."""
    stream = io.StringIO()
    lines = JsonAccessLines(stream, settings)
    access_log = AccessLog(lines, settings)
    generic = []
    for record in records:
        access_log.record(record)
        level = "error" if record.status >= 500 else "info"
        generic.append(lines.render(level, "request", access_log._fields(record)))
    direct = stream.getvalue().splitlines()
    return [TIMESTAMP.sub("", line) for line in direct], [TIMESTAMP.sub("", g) for g in generic]


def test_repeated_values_are_written_as_the_first_time() -> None:
    settings = ObservabilitySettings(log_max_field_length=120)
    records = [
        _record(f"/items/{n}", agent, (host, 5000), route=route, status=status)
        for n in range(2)  # the second round reads the kept texts
        for agent in [*HOSTILE_AGENTS, None]
        for host in ["10.0.0.7", "2001:db8::1\n"]
        for route, status in [("/items/{item_id}", 200), ("/a?token=x", 503)]
    ]
    direct, generic = _direct_and_generic(records, settings)
    assert direct == generic
    assert all(json.loads("{" + line) for line in direct)
    assert not any("s3cret" in line for line in direct)


def test_the_line_is_the_same_once_the_kept_texts_are_full() -> None:
    agents = [f"agent/{n}".encode() for n in range(1200)]  # more than are kept
    records = [
        _record("/items/1", agent, (f"10.0.{n % 7}.{n}", 1)) for n, agent in enumerate(agents)
    ]
    records += records[:5] + records[-5:]
    direct, generic = _direct_and_generic(records, ObservabilitySettings())
    assert direct == generic
    assert json.loads("{" + direct[-1])["user_agent"] == "agent/1199"


def test_a_host_or_user_agent_of_another_type_is_still_written() -> None:
    records = [
        _record("/", None, [["10.0.0.9"], 1], user_agent=bytearray(b"probe/2")) for _ in range(2)
    ]
    direct, generic = _direct_and_generic(records, ObservabilitySettings())
    assert direct == generic
    line = json.loads("{" + direct[1])
    assert (line["client"], line["user_agent"]) == ("['10.0.0.9']", "probe/2")


def test_span_ids_errors_and_queries_are_written_as_the_generic_rendering() -> None:
    span = SpanIds("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)
    records = [
        _record("/items/1", BROWSER, ("10.0.0.1", 1), span_ids=span),
        _record("/items/2", None, None, status=500, error=ValueError("x"), request_id=None),
    ]
    records[0].scope["query_string"] = b"page=2&api_key=s3cret"
    direct, generic = _direct_and_generic(records, ObservabilitySettings())
    assert direct == generic
    first = json.loads("{" + direct[0])
    assert (first["trace_id"], first["span_id"]) == (span.trace_id, span.span_id)
    assert "s3cret" not in direct[0]
    assert json.loads("{" + direct[1])["error"] == "ValueError"


def test_duration_is_rounded_to_the_microsecond_as_round_would() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        seconds = rng.random() * rng.choice([1e-4, 1e-2, 1.0, 100.0])
        assert duration_ms(seconds) == round(seconds * 1000.0, 3)


def test_the_timestamp_is_now_in_utc_to_the_microsecond() -> None:
    timestamp = UtcTimestamp()
    before = datetime.now(UTC)
    first, second = timestamp.now(), timestamp.now()  # the second from the kept seconds
    after = datetime.now(UTC)
    for text in (first, second):
        assert ISO_UTC.match(text)
        written = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert before <= written <= after


@pytest.mark.parametrize("micros", [0, 7, 999_999])
def test_the_microseconds_keep_their_leading_zeros(
    monkeypatch: pytest.MonkeyPatch, micros: int
) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000 + micros * 1000)
    assert UtcTimestamp().now() == f"2023-11-14T22:13:20.{micros:06d}Z"


def test_new_request_ids_are_32_lower_case_hex_digits() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
