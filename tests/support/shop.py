"""The example shop service under a real uvicorn on loopback, for integration tests."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from ouro_obs.processes import ManagedProcess
from tests.support.tools import REPO_ROOT

#: No span export and no access lines: integration tests that start the shop assert on metrics.
QUIET_ENV = {
    "OTEL_SDK_DISABLED": "true",
    "OTEL_TRACES_EXPORTER": "none",
    "OURO_OBS_ACCESS_LOG": "false",
}


def shop_process(
    port: int, workers: int = 1, env: Mapping[str, str] | None = None
) -> ManagedProcess:
    """``uvicorn shop.app:app`` on 127.0.0.1:``port``, ready once /health/live answers."""
    return ManagedProcess(
        argv=[
            sys.executable, "-m", "uvicorn", "shop.app:app",
            "--app-dir", str(REPO_ROOT / "examples"),
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning",
        ],
        ready_url=f"http://127.0.0.1:{port}/health/live",
        env={**QUIET_ENV, **(env or {})},
    )  # fmt: skip
