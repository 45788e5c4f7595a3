"""SIGINT and SIGTERM during the demo: stop everything it started, never half of it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["DemoInterrupted", "SignalGuard"]


class DemoInterrupted(BaseException):
    """SIGINT or SIGTERM arrived; raised so that every started process is stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    """Turns SIGINT and SIGTERM into :class:`DemoInterrupted`, except while a process starts.

    A process that is half started (spawned, not yet registered for stopping) would be
    left behind if the exception arrived then, so inside :meth:`deferred` the signal is
    only remembered and raised right after.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._deferring = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        first = self.received is None
        self.received = signum
        if first and not self._deferring:
            raise DemoInterrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if self.received is not None and not self._deferring:
            raise DemoInterrupted(self.received)

    def shield(self) -> None:
        """From now on signals are only noted: the clean-up must run to its end."""
        self._deferring += 1
