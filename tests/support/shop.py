"""The example shop service under a real uvicorn on loopback, for integration tests."""

from __future__ import annotations

from collections.abc import Mapping

from ouro_obs.demo import processes
from ouro_obs.demo.lifecycle import ManagedProcess

__all__ = ["QUIET_ENV", "shop_process"]

#: No span export and no access lines: integration tests that start the shop assert on metrics.
QUIET_ENV = {
    "OTEL_SDK_DISABLED": "true",
    "OTEL_TRACES_EXPORTER": "none",
    "OURO_OBS_ACCESS_LOG": "false",
}


def shop_process(
    port: int, workers: int = 1, env: Mapping[str, str] | None = None
) -> ManagedProcess:
    """The demo's shop on 127.0.0.1:``port``, quiet unless ``env`` says otherwise."""
    return processes.shop_process(port, workers, env={**QUIET_ENV, **(env or {})})
