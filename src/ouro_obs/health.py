"""Liveness and readiness endpoints and the readiness-check registry.

Liveness answers 200 while the process can serve at all. Readiness runs every
registered check concurrently, each bounded by a timeout, and answers 503 naming
the checks that failed; it also turns 503 once the server began shutting down,
so the load balancer stops sending traffic before the pod goes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.types import Send

__all__ = ["HealthReport", "ReadinessCheck", "ReadinessChecks", "send_json"]

#: A readiness check: returns normally (or True) when ready; False or an exception means not ready.
ReadinessCheck = Callable[[], Awaitable[bool | None]]


@dataclass(frozen=True, slots=True)
class HealthReport:
    ready: bool
    checks: dict[str, str]

    @property
    def failing(self) -> list[str]:
        return sorted(name for name, state in self.checks.items() if state != "ok")

    def body(self) -> dict[str, object]:
        document: dict[str, object] = {
            "status": "ok" if self.ready else "fail",
            "checks": self.checks,
        }
        if not self.ready:
            document["failing"] = self.failing
        return document


@dataclass
class ReadinessChecks:
    """Named async checks run by ``/health/ready``; add them at start-up with :meth:`add`."""

    timeout_seconds: float = 2.0
    _checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    draining: bool = False

    def add(self, name: str, check: ReadinessCheck) -> None:
        if name in self._checks:
            raise ValueError(f"a readiness check named {name!r} is already registered")
        self._checks[name] = check

    def check(self, name: str) -> Callable[[ReadinessCheck], ReadinessCheck]:
        """Decorator form of :meth:`add`."""

        def register(function: ReadinessCheck) -> ReadinessCheck:
            self.add(name, function)
            return function

        return register

    async def _run_one(self, check: ReadinessCheck) -> str:
        try:
            result = await asyncio.wait_for(check(), self.timeout_seconds)
        except TimeoutError:
            return f"timeout after {self.timeout_seconds:g}s"
        except Exception as error:  # a failing check is the answer, not an error
            return f"error: {type(error).__name__}: {error}"[:200]
        return "fail" if result is False else "ok"

    async def run(self) -> HealthReport:
        names = sorted(self._checks)
        states = await asyncio.gather(*(self._run_one(self._checks[name]) for name in names))
        checks = dict(zip(names, states, strict=True))
        if self.draining:
            checks["shutdown"] = "draining"
        ready = all(state == "ok" for state in checks.values())
        return HealthReport(ready=ready, checks=checks)


async def send_json(send: Send, status: int, document: object, head_only: bool = False) -> None:
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head_only else body})
