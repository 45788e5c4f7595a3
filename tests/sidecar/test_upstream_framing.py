"""How the sidecar reads what the upstream frames oddly: conflicting lengths, broken chunks,
heads too large however they arrive. One canned upstream and one sidecar serve the module."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ouro_obs.sidecar.connection import MAX_RESPONSE_HEAD, UPSTREAM_ERROR_REASONS
from ouro_obs.sidecar.server import Sidecar
from tests.sidecar.servers import (
    Canned,
    CannedUpstream,
    raw_exchange,
    running_sidecar,
    wait_for_requests,
)

ERRORS = "ouro_obs_sidecar_upstream_errors_total"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def big_head(size: int) -> bytes:
    """A 200 head of exactly ``size`` bytes with a two-byte body after it."""
    start, end = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ", b"\r\n\r\n"
    return start + b"v" * (size - len(start) - len(end)) + end + b"ok"


ROUTES = {
    b"/length-and-chunked": Canned(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    ),
    b"/bad-chunk-then-close": Canned(CHUNKED_HEAD + b"zz\r\nhello\r\n", close=True),
    b"/bad-chunk-later-then-close": Canned(
        CHUNKED_HEAD + b"5\r\nhello\r\nzz\r\n", pieces=2, close=True
    ),
    b"/short-chunk-then-close": Canned(CHUNKED_HEAD + b"a\r\nhello", close=True),
    b"/garbage-then-close": Canned(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", close=True),
    b"/head-over-limit-in-one-piece": Canned(big_head(MAX_RESPONSE_HEAD + 1)),
    b"/head-over-limit-in-pieces": Canned(big_head(MAX_RESPONSE_HEAD + 1), pieces=6),
    b"/head-at-limit-in-one-piece": Canned(big_head(MAX_RESPONSE_HEAD)),
    b"/head-at-limit-in-pieces": Canned(big_head(MAX_RESPONSE_HEAD), pieces=6),
    b"/bytes-after-the-response": Canned(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nnot your body"
    ),
    b"/own": Canned(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nown"),
}


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(scope="module")
def canned() -> Iterator[CannedUpstream]:
    with CannedUpstream(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", ROUTES) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def sidecar(canned: CannedUpstream, registry: CollectorRegistry) -> Iterator[Sidecar]:
    with running_sidecar(canned.url, registry) as running:
        yield running


@pytest.fixture(autouse=True)
def recorded(canned: CannedUpstream, registry: CollectorRegistry) -> Iterator[None]:
    """Each test ends once the middleware recorded the requests it forwarded, so no log
    line of one lands in the next (the sidecar answers before it writes the access line)."""
    before, forwarded = wait_for_requests(registry, 0), len(canned.requests)
    yield
    wait_for_requests(registry, before + len(canned.requests) - forwarded)


def errors(registry: CollectorRegistry) -> dict[str, float]:
    return {
        reason: registry.get_sample_value(ERRORS, {"reason": reason}) or 0.0
        for reason in UPSTREAM_ERROR_REASONS
    }


def counted(before: dict[str, float], registry: CollectorRegistry) -> dict[str, float]:
    """The errors counted since ``before``, by reason (reasons not counted left out)."""
    after = errors(registry)
    return {
        reason: after[reason] - before[reason] for reason in after if after[reason] > before[reason]
    }


def test_a_chunked_response_that_also_has_a_content_length_arrives_whole_without_it(
    sidecar: Sidecar, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9112 6.3: Transfer-Encoding overrides Content-Length, which a proxy must drop."""
    caplog.set_level(logging.WARNING)
    before = errors(registry)
    response = httpx.get(sidecar.url + "/length-and-chunked")
    assert response.status_code == 200
    assert response.content == b"hello world"
    assert "content-length" not in response.headers
    assert counted(before, registry) == {}
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []


@pytest.mark.parametrize(
    "path", ["/bad-chunk-then-close", "/bad-chunk-later-then-close", "/garbage-then-close"]
)
def test_malformed_bytes_followed_by_a_close_are_a_protocol_error(
    path: str, sidecar: Sidecar, registry: CollectorRegistry
) -> None:
    before = errors(registry)
    raw_exchange(sidecar.config.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert counted(before, registry) == {"protocol_error": 1.0}


def test_a_body_cut_short_by_a_close_is_still_disconnected(
    sidecar: Sidecar, registry: CollectorRegistry
) -> None:
    before = errors(registry)
    raw = raw_exchange(
        sidecar.config.port, b"GET /short-chunk-then-close HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200")  # the head had gone; the body stops short
    assert counted(before, registry) == {"disconnected": 1.0}


@pytest.mark.parametrize("arrival", ["one-piece", "pieces"])
def test_the_64_kib_response_head_limit_holds_however_the_head_arrives(
    arrival: str, sidecar: Sidecar, registry: CollectorRegistry
) -> None:
    before = errors(registry)
    over = httpx.get(f"{sidecar.url}/head-over-limit-in-{arrival}")
    at_limit = httpx.get(f"{sidecar.url}/head-at-limit-in-{arrival}")
    assert over.status_code == 502
    assert (at_limit.status_code, at_limit.content) == (200, b"ok")
    assert len(at_limit.headers["x-big"]) > 60_000
    assert counted(before, registry) == {"protocol_error": 1.0}


def test_bytes_after_a_response_never_become_the_next_requests_answer(
    sidecar: Sidecar, registry: CollectorRegistry
) -> None:
    """An upstream that writes more than its response must not desynchronise the pool."""
    before = errors(registry)
    first = httpx.get(sidecar.url + "/bytes-after-the-response")
    following = [httpx.get(sidecar.url + "/own").text for _ in range(2)]
    assert first.text == "ok"
    assert following == ["own", "own"]
    assert counted(before, registry) == {}  # the request had its whole answer
