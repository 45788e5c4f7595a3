"""Starting and stopping what the demo runs: child processes in their own groups, on loopback.

A :class:`ManagedProcess` is any program, started in a process group of its own, waited
for until it answers, and stopped (the whole group) by its own PID; ``with`` stops it
whatever happens. The integration tests start their servers with the same pieces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "LOOPBACK",
    "ManagedProcess",
    "ProcessStartError",
    "ServedInThread",
    "StartStop",
    "free_port",
    "group_members",
    "http_get",
    "is_running",
    "still_running",
    "wait_for_http",
]

#: Everything the demo starts listens here, and only here.
LOOPBACK = "127.0.0.1"


class StartStop:
    """``with thing:`` calls ``start()`` on entry and ``stop()`` on exit, exception or not."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ServedInThread(StartStop):
    """An ``http.server`` on loopback, served by a daemon thread from ``start()`` to ``stop()``.

    Subclasses build the server in :meth:`make_server`; ``port`` 0 picks a free one, and
    after ``start()`` holds the port it listens on.
    """

    thread_name = "loopback-server"

    def __init__(self, port: int = 0, host: str = LOOPBACK) -> None:
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def make_server(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = self.make_server((self.host, self.port))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


class ProcessStartError(RuntimeError):
    """A managed process exited or never answered; the message carries its output."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> bytes:
    """GET ``url`` and return the body; a non-2xx status raises ``HTTPError``.

    The error is raised closed: it would otherwise hold the connection's socket until the
    garbage collector finds it (``wait_for_http`` keeps the last one while it retries).
    """
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as error:
        error.close()
        raise


def wait_for_http(
    url: str,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ProcessStartError(
                f"process exited with {process.returncode} before {url} answered"
            )
        try:
            http_get(url, timeout=1.0)
            return
        except (OSError, urllib.error.URLError) as error:
            last_error = error
            time.sleep(0.1)
    raise ProcessStartError(f"{url} did not answer within {timeout:.0f}s: {last_error}")


# --------------------------------------------------------------------------- process table


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def is_running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie waiting for its parent is not)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (uvicorn's workers, Locust's children)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is not None and len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return sorted(members)


def still_running(pids: Sequence[int]) -> list[int]:
    """Those of ``pids`` still alive, and anything left in their process groups."""
    left = {pid for pid in pids if is_running(pid)}
    left.update(member for pid in pids for member in group_members(pid))
    return sorted(left)


# --------------------------------------------------------------------------- any program


@dataclass
class ManagedProcess(StartStop):
    """A child process in its own process group, stopped by its own PID on exit.

    Output goes to ``log_path`` so a failing start can show what the program said.
    """

    argv: Sequence[str]
    ready_url: str | None = None
    env: Mapping[str, str] | None = None
    cwd: str | os.PathLike[str] | None = None
    log_path: Path | None = None
    ready_timeout: float = 30.0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Self:
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="ouro-obs-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        environment = dict(os.environ)
        environment.update(self.env or {})
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=self.cwd,
                start_new_session=True,
            )
        if self.ready_url is not None:
            try:
                wait_for_http(self.ready_url, self.ready_timeout, self.process)
            except ProcessStartError as error:
                self.stop()
                raise ProcessStartError(
                    f"{self.argv[0]}: {error}\n--- output ---\n{self.output()}"
                ) from None
        return self

    def output(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("process not started")
        return self.process.pid

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=grace)
        # Workers that outlived their parent are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
