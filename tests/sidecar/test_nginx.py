"""The sidecar in front of a server that is not Python: Debian's nginx on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ouro_obs.asgi.routes import OpenAPIRouteResolver
from tests.sidecar.servers import (
    Nginx,
    payload,
    running_sidecar,
    sha256,
    wait_for_sample,
    with_current_span,
)
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration

TWENTY_MB = 20 * 1024 * 1024


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    with Nginx(tmp_path / "nginx", require_tool("nginx")) as server:
        yield server


def echo_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_nginx_downloads_and_uploads_of_20_mb_pass_byte_for_byte(
    nginx: Nginx, registry: CollectorRegistry
) -> None:
    data = payload(TWENTY_MB, seed=11)
    (nginx.root / "big.bin").write_bytes(data)
    resolver = OpenAPIRouteResolver(["/{file}", "/dav/{file}"])
    with running_sidecar(nginx.url, registry, route_resolver=resolver) as sidecar:
        download = httpx.get(sidecar.url + "/big.bin", timeout=60)
        upload = httpx.put(sidecar.url + "/dav/copy.bin", content=data[::-1], timeout=60)
        sizes = {
            "received": wait_for_sample(
                registry, "http_request_size_bytes_sum", {"method": "PUT", "route": "/dav/{file}"}
            ),
            "sent": wait_for_sample(
                registry, "http_response_size_bytes_sum", {"method": "GET", "route": "/{file}"}
            ),
        }
    assert download.status_code == 200
    assert sha256(download.content) == sha256(data)
    assert upload.status_code == 201
    assert sha256((nginx.root / "dav" / "copy.bin").read_bytes()) == sha256(data[::-1])
    assert sizes == {"received": TWENTY_MB, "sent": TWENTY_MB}


def test_nginx_receives_the_traceparent_and_forwarded_headers_but_no_hop_by_hop_ones(
    nginx: Nginx, registry: CollectorRegistry
) -> None:
    spans: list[Any] = []
    with running_sidecar(nginx.url, registry, wrap=with_current_span(spans)) as sidecar:
        response = httpx.get(
            sidecar.url + "/echo",
            headers={
                "host": "shop.example",
                "keep-alive": "timeout=5",
                "x-forwarded-for": "10.1.2.3",
            },
        )
    seen = echo_lines(response.text)
    trace_id = spans[0].get_span_context().trace_id
    assert seen["traceparent"].split("-")[1] == f"{trace_id:032x}"
    assert seen["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "shop.example"
    assert seen["keep-alive"] == ""


def test_nginx_routes_are_labelled_and_its_404_is_passed_on(
    nginx: Nginx, registry: CollectorRegistry
) -> None:
    (nginx.root / "items").mkdir()
    (nginx.root / "items" / "7").write_text("seven")
    resolver = OpenAPIRouteResolver(["/items/{item_id}"])
    with running_sidecar(nginx.url, registry, route_resolver=resolver) as sidecar:
        found = httpx.get(sidecar.url + "/items/7")
        missing = httpx.get(sidecar.url + "/items/8")
        counted = {
            status: wait_for_sample(
                registry,
                "http_requests_total",
                {"method": "GET", "route": "/items/{item_id}", "status": status},
            )
            for status in ("200", "404")
        }
    assert (found.status_code, found.text) == (200, "seven")
    assert missing.status_code == 404
    assert missing.headers["server"].startswith("nginx")
    assert counted == {"200": 1.0, "404": 1.0}
