"""Route template resolution: the ``route`` label and the span name.

The router already matched the request, so the middleware reads what it left
behind instead of matching again. It hands the app a :class:`RouteTrail`, a scope
dict that notes every ``route`` assigned to it: Starlette's router assigns the
matched route (a ``Mount`` first, then the inner route of the mounted app), and
FastAPI's ``APIRoute`` assigns itself. FastAPI routers included with a prefix keep
the combined template in FastAPI's per-request route context, read when present.

Only when a mount left no trace (FastAPI's router does not record mounts) or
nothing recorded the route (a plain Starlette ``Route`` inside a FastAPI app) is
the router tree walked, and the mount prefix found is cached (bounded).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

__all__ = [
    "OpenAPIRouteResolver",
    "RouteResolver",
    "RouteTemplates",
    "RouteTrail",
]

#: A resolver that knows a template before the app runs (sidecar, custom apps).
RouteResolver = Callable[[Scope], "str | None"]

_MOUNT_SUFFIX = "/{path}"
_CACHE_LIMIT = 4096


class RouteTrail(dict[str, Any]):
    """An ASGI scope that remembers each route the routers assigned to it, in order."""

    __slots__ = ("routes",)

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope)
        self.routes: list[Any] = []

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "route":
            self.routes.append(value)
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes = dict(*args, **kwargs)
        route = changes.get("route")
        if route is not None:
            self.routes.append(route)
        super().update(changes)


def _route_format(route: Any) -> str | None:
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else None


def _fastapi_template(scope: Mapping[str, Any], route: Any) -> str | None:
    """The prefixed template FastAPI (>= 0.120) keeps for routes of included routers."""
    fastapi_scope = scope.get("fastapi")
    if not isinstance(fastapi_scope, dict):
        return None
    context = fastapi_scope.get("effective_route_context")
    if context is None or getattr(context, "original_route", None) is not route:
        return None
    return _route_format(context) or None


def _inner_template(trail: RouteTrail) -> tuple[str, bool] | None:
    """(template of the recorded routes, whether a Mount was among them)."""
    prefix = ""
    template: str | None = None
    saw_mount = False
    for route in trail.routes:
        route_format = _route_format(route)
        if route_format is None:
            continue  # a Host, or FastAPI's included-router wrapper: adds no path
        if isinstance(route, Mount):
            saw_mount = True
            template = prefix + route_format  # a mounted non-router app: "/static/{path}"
            prefix += route_format.removesuffix(_MOUNT_SUFFIX)
        else:
            template = prefix + (_fastapi_template(trail, route) or route_format)
    return None if template is None else (template, saw_mount)


def _probe_scope(trail: RouteTrail, entry_root_path: str) -> dict[str, Any]:
    return {
        "type": trail["type"],
        "path": trail["path"],
        "root_path": entry_root_path,
        "method": trail.get("method", "GET"),
        "headers": trail.get("headers", []),
        "path_params": {},
    }


def _mount_prefix(
    routes: Sequence[BaseRoute], scope: dict[str, Any]
) -> tuple[str, Sequence[BaseRoute], dict[str, Any]]:
    """Follow the mounts that match ``scope``: (their joined prefix, innermost routes, scope)."""
    prefix = ""
    descending = True
    while descending:
        descending = False
        for route in routes:
            if not isinstance(route, Mount):
                continue
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                prefix += route.path_format.removesuffix(_MOUNT_SUFFIX)
                scope = {**scope, **child_scope}
                routes = route.routes
                descending = bool(routes)
                if not routes:
                    prefix += _MOUNT_SUFFIX
                break
    return prefix, routes, scope


def _leaf_template(routes: Iterable[BaseRoute], scope: dict[str, Any]) -> str | None:
    partial: str | None = None
    for route in routes:
        route_format = _route_format(route)
        if route_format is None or isinstance(route, Mount):
            continue
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route_format
        if match is Match.PARTIAL and partial is None:
            partial = route_format
    return partial


class RouteTemplates:
    """Turns a finished request's :class:`RouteTrail` into its route template (or None)."""

    __slots__ = ("_prefixes",)

    def __init__(self) -> None:
        self._prefixes: dict[tuple[int, str], str] = {}

    def __call__(self, trail: RouteTrail, entry_root_path: str) -> str | None:
        recorded = _inner_template(trail)
        mounted = trail.get("root_path", entry_root_path) != entry_root_path
        if recorded is not None and (recorded[1] or not mounted):
            return recorded[0]
        if recorded is None and "endpoint" not in trail:
            return None  # nothing matched: the router's 404, or a redirect_slashes redirect
        return self._walked(trail, entry_root_path, recorded)

    def _walked(
        self, trail: RouteTrail, entry_root_path: str, recorded: tuple[str, bool] | None
    ) -> str | None:
        routes = getattr(trail.get("router"), "routes", None)
        if not isinstance(routes, list):
            return None if recorded is None else recorded[0]
        delta = trail.get("root_path", "")[len(entry_root_path) :]
        key = (id(trail.routes[-1]) if trail.routes else id(trail.get("endpoint")), delta)
        prefix = self._prefixes.get(key)
        if prefix is not None and recorded is not None:
            return prefix + recorded[0]
        prefix, inner_routes, scope = _mount_prefix(routes, _probe_scope(trail, entry_root_path))
        if len(self._prefixes) >= _CACHE_LIMIT:
            self._prefixes.clear()
        self._prefixes[key] = prefix
        if recorded is not None:
            return prefix + recorded[0]
        if prefix.endswith(_MOUNT_SUFFIX):
            return prefix
        leaf = _leaf_template(inner_routes, scope)
        return None if leaf is None else prefix + leaf


_PARAM = re.compile(r"\{([^{}/]+)\}")


class OpenAPIRouteResolver:
    """Matches raw paths against OpenAPI-style templates (``/users/{id}``), compiled once.

    Literal templates win over parameterised ones, and among those the one with more
    literal segments wins, as OpenAPI 3 asks ("/users/me" before "/users/{id}").
    """

    __slots__ = ("_exact", "_patterns")

    def __init__(self, templates: Iterable[str]):
        exact: dict[str, str] = {}
        patterns: list[tuple[int, int, str, re.Pattern[str]]] = []
        for template in templates:
            if not template.startswith("/"):
                raise ValueError(f"route template {template!r} must start with '/'")
            if _PARAM.search(template) is None:
                exact[template] = template
                continue
            regex = "".join(
                re.escape(part) if index % 2 == 0 else "[^/]+"
                for index, part in enumerate(_PARAM.split(template))
            )
            literal_segments = sum(1 for seg in template.split("/") if seg and "{" not in seg)
            patterns.append((-literal_segments, -len(template), template, re.compile(regex + "$")))
        patterns.sort(key=lambda item: (item[0], item[1], item[2]))
        self._exact = exact
        self._patterns = tuple((template, pattern) for _, _, template, pattern in patterns)

    @classmethod
    def from_openapi(cls, document: Mapping[str, Any]) -> OpenAPIRouteResolver:
        """Templates from an OpenAPI 3 document's ``paths`` (server base paths prefixed)."""
        paths = document.get("paths")
        if not isinstance(paths, Mapping):
            raise ValueError("OpenAPI document has no 'paths' object")
        return cls(str(path) for path in paths)

    @property
    def templates(self) -> tuple[str, ...]:
        return tuple(sorted(self._exact)) + tuple(template for template, _ in self._patterns)

    def match(self, path: str) -> str | None:
        found = self._exact.get(path)
        if found is not None:
            return found
        for template, pattern in self._patterns:
            if pattern.match(path):
                return template
        return None

    def __call__(self, scope: Scope) -> str | None:
        return self.match(scope["path"])
