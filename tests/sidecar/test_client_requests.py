"""Requests a client may send that the upstream cannot be given as they are: HTTP/1.0
without ``Host`` (a load balancer's health check), ``CONNECT``, a head h11 will not send.

Each runs against the sidecar under both of uvicorn's HTTP parsers (h11, which the
``sidecar`` extra installs, and httptools, which ``uvicorn[standard]`` adds), in front of
one canned upstream shared by the module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from ouro_obs.sidecar.connection import UPSTREAM_ERROR_REASONS
from ouro_obs.sidecar.server import Sidecar
from tests.sidecar.servers import CannedUpstream, raw_exchange, running_sidecar, wait_for_sample


@dataclass
class Proxied:
    """The sidecar under one parser, the canned upstream behind it, and its registry."""

    sidecar: Sidecar
    upstream: CannedUpstream
    registry: CollectorRegistry
    parser: str

    def send(self, request: bytes) -> bytes:
        return raw_exchange(self.sidecar.config.port, request)

    def upstream_errors(self) -> float:
        return sum(
            self.registry.get_sample_value(
                "ouro_obs_sidecar_upstream_errors_total", {"reason": reason}
            )
            or 0.0
            for reason in UPSTREAM_ERROR_REASONS
        )

    def recorded(self, method: str, status: str) -> float:
        labels = {"method": method, "route": "<unmatched>", "status": status}
        return self.registry.get_sample_value("http_requests_total", labels) or 0.0

    def one_more(self, method: str, status: str, before: float) -> bool:
        """Whether the request was recorded (it is, just after its last byte was sent)."""
        labels = {"method": method, "route": "<unmatched>", "status": status}
        return wait_for_sample(self.registry, "http_requests_total", labels, before + 1) == (
            before + 1
        )

    def refused(self, request: bytes, caplog: pytest.LogCaptureFixture) -> bytes:
        """The answer to ``request``, which must reach no upstream, count no upstream
        error and log no traceback."""
        caplog.set_level(logging.WARNING)
        forwarded = len(self.upstream.requests)
        raw = self.send(request)
        assert len(self.upstream.requests) == forwarded
        assert self.upstream_errors() == 0.0
        assert [record.getMessage() for record in caplog.records if record.exc_info] == []
        return raw


@pytest.fixture(scope="module")
def canned() -> Iterator[CannedUpstream]:
    with CannedUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as upstream:
        yield upstream


@pytest.fixture(scope="module", params=["h11", "httptools"])
def proxied(request: pytest.FixtureRequest, canned: CannedUpstream) -> Iterator[Proxied]:
    registry = CollectorRegistry()
    parser = str(request.param)
    with running_sidecar(canned.url, registry, http=parser) as sidecar:
        yield Proxied(sidecar, canned, registry, parser)


@pytest.mark.parametrize(
    "check",
    [b"OPTIONS / HTTP/1.0\r\n\r\n", b"GET /healthz HTTP/1.0\r\nUser-Agent: probe\r\n\r\n"],
    ids=["haproxy-httpchk", "get"],
)
def test_an_http_1_0_request_without_host_reaches_the_upstream_with_its_authority(
    check: bytes, proxied: Proxied
) -> None:
    """HAProxy's default ``option httpchk`` sends no Host; HTTP/1.1 upstreams require one."""
    method = check.split(b" ", 1)[0].decode()
    before = proxied.recorded(method, "200")
    raw = proxied.send(check)
    assert raw.startswith(b"HTTP/1.1 200")
    assert raw.endswith(b"\r\n\r\nok")
    forwarded = proxied.upstream.requests[-1]
    assert f"host: 127.0.0.1:{proxied.upstream.port}\r\n".encode() in forwarded
    assert b"x-forwarded-host" not in forwarded  # the client named no host
    assert proxied.one_more(method, "200", before)
    assert proxied.upstream_errors() == 0.0


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.0\r\nHost: shop.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: host\r\n\r\n",
    ],
    ids=["http-1.0", "connection-names-host"],
)
def test_the_clients_host_is_kept(request_bytes: bytes, proxied: Proxied) -> None:
    before = proxied.recorded("GET", "200")
    raw = proxied.send(request_bytes)
    assert raw.startswith(b"HTTP/1.1 200")
    assert b"host: shop.example\r\n" in proxied.upstream.requests[-1]
    assert proxied.one_more("GET", "200", before)


CONNECTS = {
    "origin-form": b"CONNECT / HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "authority-form": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "absolute-form": b"CONNECT http://example.com:443/ HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
}


@pytest.mark.parametrize("form", CONNECTS)
def test_connect_is_refused_with_405_and_never_reaches_the_upstream(
    form: str, proxied: Proxied, caplog: pytest.LogCaptureFixture
) -> None:
    """405, a client error outside the SLO's error ratio, where 501 would count in it."""
    before = proxied.recorded("CONNECT", "405")
    head = proxied.refused(CONNECTS[form], caplog).partition(b"\r\n\r\n")[0].lower()
    if proxied.parser == "httptools" and form == "authority-form":
        # httptools parses no authority-form target: uvicorn answers 400 before any app.
        assert head.startswith(b"http/1.1 400")
    else:
        assert head.startswith(b"http/1.1 405")
        assert b"\r\nallow: get, head, post, put, delete, options, trace, patch" in head
        assert proxied.one_more("CONNECT", "405", before)


def test_a_request_head_the_upstream_cannot_be_sent_is_the_clients_400(
    proxied: Proxied, caplog: pytest.LogCaptureFixture
) -> None:
    """Two Host lines (RFC 9112 3.2: answer 400); h11 refuses to send them on."""
    before = proxied.recorded("GET", "400")
    raw = proxied.refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", caplog)
    assert raw.startswith(b"HTTP/1.1 400")
    if proxied.parser == "httptools":  # uvicorn's h11 parser refuses them before any app
        assert proxied.one_more("GET", "400", before)
