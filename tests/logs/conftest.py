from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from tests.logs.capture import LogCapture, capture_logs, saved_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield from saved_logging()


@pytest.fixture
def logs(restore_logging: None) -> LogCapture:
    """JSON lines from ``configure_logging`` (defaults), captured in memory."""
    return capture_logs()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()
