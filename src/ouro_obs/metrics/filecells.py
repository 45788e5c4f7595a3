"""Multiprocess mode's cells (``PROMETHEUS_MULTIPROC_DIR``): a label set's updates written
straight into the worker's files.

The single writer of :class:`~ouro_obs.metrics.fastpath.LockFreeCells`, for cells backed
by the worker's files. prometheus_client's file cell takes one lock shared by every cell
and asks the kernel for the process id on every update (to notice a fork); these cells
write the new value at the cell's offset in the file with one slice assignment, as the
cell's own ``inc`` does, and keep the cell's float in step. A fork is noticed by
``os.register_at_fork``: cells built before it never write again (the child's updates go
through prometheus_client, which moves to the child's files). What they rely on: a file
cell (``_multiprocess`` true) keeps its float in ``_value``, its key in ``_key``, and its
file (a ``MmapedDict``) in ``_file``, whose ``_positions`` maps the key to the offset of
its (value, timestamp) doubles in the mmap ``_m``; :func:`file_problem` reads the value
back at that offset before trusting it.
"""

from __future__ import annotations

import mmap
import os
import struct
from bisect import bisect_left
from collections.abc import Callable
from threading import get_ident
from typing import Any

__all__ = ["FileCells", "file_adder", "file_problem", "value_cells"]


def value_cells(child: Any) -> list[Any]:
    """A counter's, gauge's or histogram child's value cells (value, sum, buckets)."""
    cells = [getattr(child, "_value", None), getattr(child, "_sum", None)]
    cells.extend(getattr(child, "_buckets", None) or ())
    return [cell for cell in cells if cell is not None]


#: A file cell's value and timestamp, as prometheus_client's files hold them.
_FILE_VALUE = struct.Struct("dd")
_pack_file_value = _FILE_VALUE.pack

#: Forks this process came through; file cells built before one never write again.
_forks = 0


def _count_fork() -> None:
    global _forks  # noqa: PLW0603 - read per update: a module global is the cheapest check
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)


def file_problem(*children: Any) -> str | None:
    """Why :class:`FileCells` may not serve ``children``; None: it may (the GIL is the
    caller's check: :data:`~ouro_obs.metrics.fastpath.LOCK_FREE_SUPPORTED`).

    Each cell's file must hold the cell's own value at the cell's offset: the shape is
    checked by reading it back, not assumed.
    """
    for child in children:
        cells = value_cells(child)
        if not cells:
            return f"{type(child).__name__} child has neither '_value' nor '_sum'"
        # prometheus_client moves every file cell to the process's own files the first time
        # one is used after a fork: do it now, so the offsets read below are this process's.
        cells[0].get()
        for cell in cells:
            if getattr(cell, "_multiprocess", False) is not True:
                return f"value cell is {type(cell).__name__}, not a multiprocess file cell"
            value, file = getattr(cell, "_value", None), getattr(cell, "_file", None)
            data = getattr(file, "_m", None)
            positions = getattr(file, "_positions", None)
            if not isinstance(value, float) or not isinstance(data, mmap.mmap):
                return "file cell keeps no float in '_value' or no mmap in '_file._m'"
            if not isinstance(positions, dict) or getattr(cell, "_key", None) not in positions:
                return "file cell's '_key' is not in its file's '_positions'"
            if _FILE_VALUE.unpack_from(data, positions[cell._key]) != (value, 0.0):
                return "file cell's value is not at its offset in the file"
    return None


def _file_add(cell: Any, file: Any, at: int, amount: float) -> None:
    """Add to a file cell: its float, then its bytes in the file (one slice assignment,
    as prometheus_client writes: a reader in another process never sees a half value)."""
    value = cell._value + amount
    cell._value = value
    file._m[at : at + 16] = _pack_file_value(value, 0.0)


class _FileHistogram:
    """One histogram child's file cells: the sum and the bucket cells, with their offsets."""

    __slots__ = ("bucket_offsets", "buckets", "file", "sum", "sum_offset")

    def __init__(self, child: Any) -> None:
        self.sum, self.buckets = child._sum, child._buckets
        self.file = self.sum._file
        self.sum_offset = _offset(self.sum)
        self.bucket_offsets = [_offset(bucket) for bucket in self.buckets]

    def observe(self, amount: float, index: int) -> None:
        _file_add(self.sum, self.file, self.sum_offset, amount)
        _file_add(self.buckets[index], self.file, self.bucket_offsets[index], 1.0)


def _offset(cell: Any) -> int:
    offset: int = cell._file._positions[cell._key]
    return offset


class FileCells:
    """:class:`LockFreeCells` for multiprocess mode: the label set's cells in the worker's files."""

    __slots__ = (
        "count",
        "count_offset",
        "counters",
        "duration",
        "duration_bounds",
        "duration_first_bound",
        "forks",
        "gauges",
        "in_flight",
        "in_flight_offset",
        "owner_thread",
        "request_size",
        "response_size",
        "size_bounds",
        "size_first_bound",
    )

    def __init__(
        self,
        owner_thread: int,
        count: Any,
        duration: Any,
        request_size: Any,
        response_size: Any,
        in_flight: Any = None,
    ) -> None:
        self.owner_thread = owner_thread
        self.forks = _forks
        self.count = count._value
        self.counters = self.count._file
        self.count_offset = _offset(self.count)
        self.in_flight = None if in_flight is None else in_flight._value
        self.gauges = None if self.in_flight is None else self.in_flight._file
        self.in_flight_offset = 0 if self.in_flight is None else _offset(self.in_flight)
        self.duration = _FileHistogram(duration)
        self.request_size = _FileHistogram(request_size)
        self.response_size = _FileHistogram(response_size)
        self.duration_bounds = duration._upper_bounds
        self.duration_first_bound = self.duration_bounds[0]
        self.size_bounds = request_size._upper_bounds
        self.size_first_bound = self.size_bounds[0]

    def record(
        self,
        duration_seconds: float,
        request_bytes: int,
        response_bytes: int,
        ending: bool = False,
    ) -> bool:
        """Add one request; False (nothing added) off the owner thread or after a fork."""
        if get_ident() != self.owner_thread or _forks != self.forks:
            return False
        if ending:
            in_flight = self.in_flight
            if in_flight is not None:
                _file_add(in_flight, self.gauges, self.in_flight_offset, -1.0)
        _file_add(self.count, self.counters, self.count_offset, 1.0)
        if duration_seconds <= self.duration_first_bound:
            self.duration.observe(duration_seconds, 0)
        else:
            self.duration.observe(
                duration_seconds, bisect_left(self.duration_bounds, duration_seconds)
            )
        first = self.size_first_bound
        index = 0 if request_bytes <= first else bisect_left(self.size_bounds, request_bytes)
        self.request_size.observe(request_bytes, index)
        index = 0 if response_bytes <= first else bisect_left(self.size_bounds, response_bytes)
        self.response_size.observe(response_bytes, index)
        return True

    def mark(self, trace_id: str, duration_seconds: float) -> None:
        """Nothing: prometheus_client keeps no exemplars in multiprocess mode either."""


def file_adder(owner_thread: int, child: Any) -> Callable[[float], None]:
    """:func:`~ouro_obs.metrics.fastpath.lock_free_adder` for a counter or gauge child whose cell is a file."""
    cell = child._value
    file, offset = cell._file, _offset(cell)
    forks = _forks
    locked: Callable[[float], None] = cell.inc

    def add(amount: float) -> None:
        if get_ident() == owner_thread and _forks == forks:
            _file_add(cell, file, offset, amount)
        else:
            locked(amount)

    return add
