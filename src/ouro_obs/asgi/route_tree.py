"""The route template of a request the router never saw, from the app's own routes.

A middleware inside ours can answer before routing: an auth layer's 401, a rate limiter's
429, a body-size guard's 413, a CORS preflight. The scope then holds no route, but it
holds the application (Starlette and FastAPI put themselves in ``scope["app"]`` before
their middleware runs), so the template is found by matching the path against the app's
route tree the way its router would have: mounts (their templated prefix joined), hosts,
FastAPI's included routers (their prefixes joined), a ``root_path`` set by a proxy. Only a
path that no route matches is unmatched; the raw path is never the answer.

The walk runs only for such requests, and its answer is cached per (method, path, host),
at most :data:`CACHE_LIMIT` entries of paths no longer than :data:`CACHED_PATH_LENGTH`.

FastAPI (>= 0.120) keeps included routers as one route each instead of copying their
routes into the app's list; :func:`_included_candidates` is the one place that reads its
``effective_candidates()`` (tests/metrics/test_route_tree.py fails loudly if that changes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from starlette.routing import BaseRoute, Host, Match, Mount
from starlette.types import Scope

__all__ = ["CACHED_PATH_LENGTH", "CACHE_LIMIT", "RouteTree", "probe_scope"]

#: Most (method, path, host) answers kept; the cache is emptied when full.
CACHE_LIMIT: Final = 4096
#: Longer paths are matched every time, so the cache stays small whatever clients send.
CACHED_PATH_LENGTH: Final = 512
#: Deepest nesting of mounts, hosts and included routers followed.
_MAX_DEPTH: Final = 16
_MOUNT_SUFFIX: Final = "/{path}"

_Found = tuple[Match, "str | None"]
_NOT_FOUND: Final[_Found] = (Match.NONE, None)


def _host(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return bytes(value)
    return None


def probe_scope(scope: Scope, entry_root_path: str) -> dict[str, Any]:
    """The scope the app's router would have seen; matching it changes nothing of the request."""
    return {
        "type": scope["type"],
        "path": scope["path"],
        "root_path": entry_root_path,
        "method": scope.get("method", "GET"),
        "headers": scope.get("headers", []),
        "path_params": {},
    }


def _included_candidates(route: Any) -> list[Any] | None:
    """A FastAPI included router's routes (contexts or nested routers); None for other routes."""
    candidates = getattr(route, "effective_candidates", None)
    if not callable(candidates) or not hasattr(route, "original_router"):
        return None
    found = candidates()
    return found if isinstance(found, list) else None


def _find(routes: Iterable[Any], scope: dict[str, Any], prefix: str, depth: int) -> _Found:
    """First full match wins, else the first partial one (a 405), as Starlette's router."""
    if depth > _MAX_DEPTH:
        return _NOT_FOUND
    partial: _Found | None = None
    for route in routes:
        found = _match(route, scope, prefix, depth)
        if found[0] is Match.FULL:
            return found
        if found[0] is Match.PARTIAL and partial is None:
            partial = found
    return partial or _NOT_FOUND


def _match(route: Any, scope: dict[str, Any], prefix: str, depth: int) -> _Found:
    candidates = _included_candidates(route)
    if candidates is not None:
        return _find(candidates, scope, prefix, depth + 1)
    starlette_route = getattr(route, "starlette_route", None)  # an included route's context
    if isinstance(starlette_route, Mount):
        route = starlette_route
    match, child_scope = route.matches(scope)
    if match is Match.NONE:
        return _NOT_FOUND
    if isinstance(route, Mount):
        return match, _inside_mount(route, {**scope, **child_scope}, prefix, depth)
    if isinstance(route, Host):
        inner = route.routes
        if not inner:
            return match, None
        return match, _find(inner, {**scope, **child_scope}, prefix, depth + 1)[1]
    template = getattr(route, "path_format", None) or getattr(starlette_route, "path_format", None)
    return match, prefix + template if isinstance(template, str) else None


def _inside_mount(mount: Mount, scope: dict[str, Any], prefix: str, depth: int) -> str | None:
    inner: list[BaseRoute] = mount.routes
    if not inner:  # a plain app (StaticFiles): everything under the mount is one route
        return prefix + mount.path_format
    mounted = prefix + mount.path_format.removesuffix(_MOUNT_SUFFIX)
    return _find(inner, scope, mounted, depth + 1)[1]


class RouteTree:
    """``tree(scope, entry_root_path)``: the template of an unrouted request, None if no route."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], str | None] = {}

    def __call__(self, scope: Scope, entry_root_path: str) -> str | None:
        routes = getattr(scope.get("app"), "routes", None)
        if not isinstance(routes, list):
            return None  # not a Starlette application: nothing to match against
        path: str = scope["path"]
        key = (id(routes), scope["type"], scope.get("method"), path, entry_root_path, _host(scope))
        cache = self._cache
        if key in cache:
            return cache[key]
        template = _find(routes, probe_scope(scope, entry_root_path), "", 0)[1]
        if len(path) <= CACHED_PATH_LENGTH:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[key] = template
        return template
