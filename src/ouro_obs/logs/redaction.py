"""What never reaches a log line or a span: secret headers and query parameters.

Names are compared normalized (lower case, ``_`` as ``-``, percent-decoded), so
``Access_Token``, ``access-token`` and ``access%5Ftoken`` are one parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote_plus

__all__ = [
    "DEFAULT_REDACTED_HEADERS",
    "DEFAULT_REDACTED_QUERY_PARAMS",
    "REDACTED",
    "normalized_name",
    "query_names",
    "redact_query",
]

REDACTED: Final = "[REDACTED]"

#: Header names whose values never reach a log line, besides the configured ones.
DEFAULT_REDACTED_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
#: Query parameters whose values never reach a log line or span, besides the configured ones.
DEFAULT_REDACTED_QUERY_PARAMS: Final = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "client_secret",
        "password",
        "secret",
        "sig",
        "signature",
        "token",
        "x-amz-credential",
        "x-amz-security-token",
        "x-amz-signature",
        "x-goog-signature",
    }
)


def normalized_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def query_names(configured: Iterable[str] = ()) -> frozenset[str]:
    """The normalized query parameter names to redact: the defaults plus ``configured``."""
    return frozenset(
        normalized_name(name) for name in (*DEFAULT_REDACTED_QUERY_PARAMS, *configured)
    )


def redact_query(query: str, names: frozenset[str]) -> str:
    """``query`` with the value of every parameter in ``names`` (normalized) replaced."""
    if not query:
        return query
    parts = query.split("&")
    changed = False
    for index, part in enumerate(parts):
        name, equals, _value = part.partition("=")
        if equals and normalized_name(unquote_plus(name)) in names:
            parts[index] = f"{name}={REDACTED}"
            changed = True
    return "&".join(parts) if changed else query
