"""The readiness-check registry and the report ``/health/ready`` answers with.

Liveness needs no registry: the process answers, so it is alive. Readiness runs every
registered check concurrently, each bounded by a timeout, and reports the checks that
failed; it also reports "draining" once the server began shutting down, so the load
balancer stops sending traffic before the pod goes. The endpoints that serve the report
are :class:`ouro_obs.asgi.endpoints.ServiceEndpoints`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["HealthReport", "ReadinessCheck", "ReadinessChecks"]

_log = logging.getLogger("ouro_obs.health")

#: A readiness check: returns normally (or True) when ready; False or an exception means not ready.
ReadinessCheck = Callable[[], Awaitable[bool | None]]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The outcome of one readiness run: each check's state, ``"ok"`` when it passed."""

    ready: bool
    checks: dict[str, str]

    @property
    def failing(self) -> list[str]:
        return sorted(name for name, state in self.checks.items() if state != "ok")

    def body(self, details: bool = True) -> dict[str, object]:
        """The JSON answer: with ``details``, every check's state (an exception's text
        included); without, only the names of the failing checks (for a port the Ingress
        reaches: a failing check's text may name a database host and user)."""
        document: dict[str, object] = {"status": "ok" if self.ready else "fail"}
        if details:
            document["checks"] = self.checks
        if not self.ready:
            document["failing"] = self.failing
        return document


@dataclass
class ReadinessChecks:
    """Named async checks run by ``/health/ready``; add them at start-up with :meth:`add`."""

    timeout_seconds: float = 2.0
    _checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    draining: bool = False
    #: The failing state last logged per check, so a probe every few seconds logs a
    #: failure once, and again only when it changes.
    _logged: dict[str, str] = field(default_factory=dict)

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

    def log_failures(self, report: HealthReport) -> None:
        """Log each failing check's state (the details an answer without them leaves out)."""
        for name in report.failing:
            state = report.checks[name]
            if self._logged.get(name) != state:
                self._logged[name] = state
                _log.warning("readiness check %r is failing: %s", name, state)
        for name in [name for name in self._logged if report.checks.get(name) == "ok"]:
            del self._logged[name]
            _log.info("readiness check %r passes again", name)

    async def run(self) -> HealthReport:
        """Every check once, concurrently; never raises and never waits past the timeout."""
        names = sorted(self._checks)
        states = await asyncio.gather(*(self._run_one(self._checks[name]) for name in names))
        checks = dict(zip(names, states, strict=True))
        if self.draining:
            checks["shutdown"] = "draining"
        ready = all(state == "ok" for state in checks.values())
        return HealthReport(ready=ready, checks=checks)
