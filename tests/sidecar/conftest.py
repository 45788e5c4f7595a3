from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from tests.sidecar.servers import ThreadedUvicorn, UpstreamState, upstream_app


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def state() -> Iterator[UpstreamState]:
    shared = UpstreamState()
    yield shared
    shared.release.set()  # nothing the upstream holds outlives the test


@pytest.fixture
def upstream(state: UpstreamState) -> Iterator[ThreadedUvicorn]:
    """The uvicorn upstream, on loopback for the length of one test."""
    server = ThreadedUvicorn(upstream_app(state)).__enter__()
    try:
        yield server
    finally:
        state.release.set()  # let held requests finish, so the server stops at once
        server.__exit__(None, None, None)
