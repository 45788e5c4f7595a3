"""Driving ASGI apps directly, for behaviour an HTTP client cannot show (disconnects, raw bytes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message

Sample = dict[str, str]


def http_scope(
    path: str = "/",
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
    root_path: str = "",
    raw_path: bytes | None = None,
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8", "surrogateescape"),
        "root_path": root_path,
        "query_string": b"",
        "headers": list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


@dataclass
class Recorded:
    messages: list[Message] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        for message in self.messages:
            if message["type"] == "http.response.start":
                status: int = message["status"]
                return status
        return None

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )


async def call(
    app: ASGIApp,
    scope: dict[str, Any],
    body_chunks: Iterable[bytes] = (b"",),
    disconnect_after_body: bool = False,
    on_send: Callable[[Message], None] | None = None,
) -> Recorded:
    """Run ``app`` once; ``receive`` yields the body chunks, then waits or reports a disconnect."""
    chunks = list(body_chunks)
    recorded = Recorded()
    index = 0

    async def receive() -> Message:
        nonlocal index
        if index < len(chunks):
            chunk = chunks[index]
            index += 1
            return {"type": "http.request", "body": chunk, "more_body": index < len(chunks)}
        if not disconnect_after_body:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        recorded.messages.append(message)
        if on_send is not None:
            on_send(message)

    await app(scope, receive, send)
    return recorded


def client(app: ASGIApp, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def requests_total(
    registry: CollectorRegistry, method: str, route: str, status: int | str
) -> float:
    value = registry.get_sample_value(
        "http_requests_total", {"method": method, "route": route, "status": str(status)}
    )
    return 0.0 if value is None else value


def label_sets(
    registry: CollectorRegistry, sample_name: str = "http_requests_total"
) -> set[tuple[tuple[str, str], ...]]:
    found: set[tuple[tuple[str, str], ...]] = set()
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == sample_name:
                found.add(tuple(sorted(sample.labels.items())))
    return found


def routes_seen(registry: CollectorRegistry) -> set[tuple[str, str, str]]:
    return {
        (labels["method"], labels["route"], labels["status"])
        for labels in (dict(items) for items in label_sets(registry))
    }
