"""Request ids: accept a well-formed incoming one, or make a new one.

An incoming id ends up in log lines and response headers, so only a short value made
of ``A-Z a-z 0-9 . _ -`` is trusted: that covers UUIDs, ULIDs, hex ids and nginx's
``$request_id``, and leaves no room for log injection or header splitting.
"""

from __future__ import annotations

from random import getrandbits

__all__ = ["MAX_REQUEST_ID_LENGTH", "accepted_request_id", "new_request_id"]

#: Longest incoming request id kept; a longer one is replaced by a new id.
MAX_REQUEST_ID_LENGTH = 64

_SAFE_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


def accepted_request_id(raw: bytes) -> str | None:
    """``raw`` as text if it is a safe request id, else None (the caller makes a new one)."""
    # Deleting every safe byte leaves nothing only when all bytes were safe (one C pass).
    if 0 < len(raw) <= MAX_REQUEST_ID_LENGTH and not raw.translate(None, _SAFE_BYTES):
        return raw.decode("ascii")
    return None


def new_request_id() -> str:
    """32 random hex digits (128 bits), unique without coordination between processes.

    From :mod:`random`, as OpenTelemetry's trace ids are: seeded from ``os.urandom`` and
    reseeded in every forked worker, so processes do not repeat each other's ids, without
    ``os.urandom``'s system call per request. An id names a request; it is not a secret.
    """
    # Big-endian bytes as hex: the same digits as ``f"{bits:032x}"``, in half the work.
    return getrandbits(128).to_bytes(16, "big").hex()
