"""Test-only additions to the demo's processes: waiting until Prometheus or a collector shows data.

Starting and stopping the programs is the demo's own code (:mod:`ouro_obs.demo.processes`);
the tests add only the polling they assert with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ouro_obs.demo import processes
from ouro_obs.demo.receiver import ReceivedSpan

__all__ = ["OTLPCollector", "PrometheusServer"]


class PrometheusServer(processes.PrometheusServer):
    """The demo's Prometheus, plus :meth:`wait_for` for assertions on what it scraped."""

    def wait_for(
        self, promql: str, timeout: float = 60.0, interval: float = 0.5
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns a non-empty vector, and return it."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no data for {promql!r} within {timeout:.0f}s")
            time.sleep(interval)


class OTLPCollector(processes.OTLPCollector):
    """The demo's rotel collector, plus :meth:`wait_for` on what it forwarded."""

    def wait_for(
        self, predicate: Callable[[ReceivedSpan], bool], count: int = 1, timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Block until ``count`` forwarded spans satisfy ``predicate``; return them."""
        if self.receiver is None:
            raise RuntimeError("only a collector forwarding to its own receiver can be awaited")
        return self.receiver.wait_for(predicate, count, timeout)
