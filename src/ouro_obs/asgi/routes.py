"""Route template resolution: the ``route`` label and the span name.

The router already matched the request, so the middleware reads what it left in
the scope instead of matching again: ``scope["route"]`` (Starlette's router assigns
the matched route; FastAPI's ``APIRoute`` assigns itself), and, for routes of FastAPI
routers included with a prefix, the combined template FastAPI keeps in its
per-request route context.

A mounted sub-application leaves only its inner route there, so when ``root_path``
grew (a ``Mount`` matched) the router tree's mounts are matched once to find the
templated prefix, cached per (route, mounted prefix), at most 4096 entries. Only a
route that left no trace at all (a plain Starlette ``Route`` inside a FastAPI app)
is found by matching the tree on each request. A request a middleware answered before
the router ran is matched against the app's routes by :mod:`ouro_obs.asgi.route_tree`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from ouro_obs.asgi.route_tree import RouteTree, probe_scope
from ouro_obs.config import ConfigError

__all__ = [
    "OpenAPIRouteResolver",
    "RouteResolver",
    "RouteTemplates",
]

#: A resolver that knows a template before the app runs (sidecar, custom apps).
RouteResolver = Callable[[Scope], "str | None"]

_MOUNT_SUFFIX = "/{path}"
_CACHE_LIMIT = 4096


def _route_format(route: Any) -> str | None:
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else None


def _fastapi_template(scope: Mapping[str, Any], route: Any) -> str | None:
    """The prefixed template FastAPI (>= 0.120) keeps for routes of included routers."""
    fastapi_scope = scope.get("fastapi")
    if fastapi_scope is None:
        return None
    context = fastapi_scope.get("effective_route_context")
    if context is None or getattr(context, "original_route", None) is not route:
        return None
    return _route_format(context) or None


def _mount_prefix(
    routes: Sequence[BaseRoute], scope: dict[str, Any]
) -> tuple[str, Sequence[BaseRoute], dict[str, Any]]:
    """Follow the mounts that match ``scope``: (their joined prefix, innermost routes, scope).

    A mount of an app that is not a router ends the walk with ``/{path}`` appended.
    """
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
    """Reads a finished request's route template from its scope (None when unmatched)."""

    __slots__ = ("_prefixes", "_unrouted")

    def __init__(self) -> None:
        self._prefixes: dict[tuple[int, str], str] = {}
        #: Templates of requests answered before the router ran (a 401 from an auth layer).
        self._unrouted = RouteTree()

    def template(self, scope: Scope, entry_root_path: str) -> str | None:
        """The template (also this object's call: the pipeline calls the method, which the
        interpreter calls faster than an instance)."""
        route = scope.get("route")
        if route is not None and scope.get("root_path", entry_root_path) == entry_root_path:
            # The common case, read inline: a matched route, not under a mount.
            holder = route
            fastapi_scope = scope.get("fastapi")
            if fastapi_scope is not None:
                context = fastapi_scope.get("effective_route_context")
                if context is not None and getattr(context, "original_route", None) is route:
                    holder = context
            template = getattr(holder, "path_format", None)
            if template and type(template) is str and not isinstance(route, Mount):
                return template
        return self._resolved(scope, entry_root_path, route)

    __call__ = template

    def _resolved(self, scope: Scope, entry_root_path: str, route: Any) -> str | None:
        """The template of ``route`` (the scope's) as the scope and the router tree say."""
        root_path: str = scope.get("root_path", entry_root_path)
        mounted = root_path[len(entry_root_path) :] if root_path.startswith(entry_root_path) else ""
        if route is None:
            if "router" not in scope:
                return self._unrouted(scope, entry_root_path)
            if "endpoint" not in scope:
                return None  # nothing matched: the router's 404, or a redirect_slashes redirect
            return self._walked(scope, entry_root_path, None, mounted)
        if isinstance(route, Mount):
            if route.routes:
                return None  # the mount matched, nothing inside it did
            if mounted == route.path:
                return route.path_format  # a top-level mount of a plain app: "/static/{path}"
            return self._walked(scope, entry_root_path, route, mounted)
        inner = _fastapi_template(scope, route) or _route_format(route)
        if inner is None:
            return None
        if not mounted:
            return inner
        prefix = self._prefixes.get((id(route), mounted))
        if prefix is None:
            return self._walked(scope, entry_root_path, route, mounted, inner)
        return prefix + inner

    def _walked(
        self,
        scope: Scope,
        entry_root_path: str,
        route: Any,
        mounted: str,
        inner: str | None = None,
    ) -> str | None:
        routes = getattr(scope.get("router"), "routes", None)
        if not isinstance(routes, list):
            return inner
        prefix, inner_routes, probe = _mount_prefix(routes, probe_scope(scope, entry_root_path))
        if inner is not None:
            if len(self._prefixes) >= _CACHE_LIMIT:
                self._prefixes.clear()
            self._prefixes[(id(route), mounted)] = prefix
            return prefix + inner
        if prefix.endswith(_MOUNT_SUFFIX):
            return prefix
        leaf = _leaf_template(inner_routes, probe)
        return None if leaf is None else prefix + leaf


_PARAM = re.compile(r"\{([^{}/]+)\}")
_SERVER_VARIABLE = re.compile(r"\{([^{}]+)\}")


def _checked_template(template: str, where: str) -> str:
    """``template`` if it is a usable route template, else a ConfigError saying why."""
    if not template.startswith("/"):
        raise ConfigError(f"{where}: route template {template!r} must start with '/'")
    if "{" in _PARAM.sub("", template) or "}" in _PARAM.sub("", template):
        raise ConfigError(
            f"{where}: route template {template!r} has an unbalanced or empty '{{' '}}'; "
            "parameters look like /users/{user_id}"
        )
    return template


def _base_paths(holder: Mapping[str, Any], where: str) -> list[str]:
    """The distinct path parts of ``holder``'s server URLs ("" when it names none)."""
    if isinstance(holder.get("basePath"), str):  # Swagger 2
        return [holder["basePath"].rstrip("/")]
    servers = holder.get("servers")
    if servers is None:
        return [""]
    if not isinstance(servers, list):
        raise ConfigError(f"{where}: 'servers' must be a list of {{url: ...}} objects")
    bases: list[str] = []
    for index, server in enumerate(servers):
        url = server.get("url") if isinstance(server, Mapping) else None
        if not isinstance(url, str):
            raise ConfigError(f"{where}: servers[{index}].url must be a string")
        variables = server.get("variables") or {}

        def default(match: re.Match[str], variables: Any = variables, index: int = index) -> str:
            variable = variables.get(match.group(1)) if isinstance(variables, Mapping) else None
            value = variable.get("default") if isinstance(variable, Mapping) else None
            if not isinstance(value, str):
                raise ConfigError(
                    f"{where}: servers[{index}].variables.{match.group(1)}.default is missing; "
                    "every variable in a server URL needs a default"
                )
            return value

        path = urlsplit(_SERVER_VARIABLE.sub(default, url)).path.rstrip("/")
        if path and not path.startswith("/"):
            path = "/" + path
        if path not in bases:
            bases.append(path)
    return bases or [""]


def _load_yaml(text: str, source: str) -> Any:
    try:
        import yaml  # noqa: PLC0415 - optional (sidecar extra); JSON documents do not need it
    except ImportError:
        raise ConfigError(
            f"{source}: not JSON, and reading YAML needs PyYAML (pip install 'ouro-obs[sidecar]')"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        place = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or error
        raise ConfigError(f"{source}{place}: not valid JSON or YAML: {problem}") from None


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
    def from_openapi(
        cls, document: Mapping[str, Any], *, server_paths: bool = True, source: str = "OpenAPI"
    ) -> OpenAPIRouteResolver:
        """Templates from an OpenAPI 3 (or Swagger 2) document's ``paths``.

        With ``server_paths``, each path is prefixed with the path part of its servers'
        URLs (``servers[].url`` at the root or on the path item, variables at their
        defaults; Swagger 2's ``basePath``), since that is the path requests arrive with.
        Errors raise :class:`~ouro_obs.config.ConfigError` naming ``source`` and the field.
        """
        if not isinstance(document, Mapping):
            raise ConfigError(f"{source}: the document must be a mapping with a 'paths' object")
        paths = document.get("paths")
        if not isinstance(paths, Mapping):
            raise ConfigError(
                f"{source}: 'paths' is missing or not a mapping; an OpenAPI document lists "
                "its routes under paths (e.g. paths: {/users/{id}: {get: ...}})"
            )
        root_bases = _base_paths(document, source) if server_paths else [""]
        templates: list[str] = []
        for path, item in paths.items():
            if not isinstance(path, str) or path.startswith("x-"):
                continue  # specification extensions, not routes
            where = f"{source}: paths.{path}"
            bases = root_bases
            if server_paths and isinstance(item, Mapping) and "servers" in item:
                bases = _base_paths(item, where)
            for base in bases:
                templates.append(_checked_template(base + path, where))
        if not templates:
            raise ConfigError(f"{source}: 'paths' lists no routes")
        return cls(templates)

    @classmethod
    def from_openapi_file(
        cls, path: str | os.PathLike[str], *, server_paths: bool = True
    ) -> OpenAPIRouteResolver:
        """:meth:`from_openapi` on a JSON or YAML file (YAML needs PyYAML)."""
        source = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{source}: cannot read the OpenAPI document: {error}") from None
        document: Any
        try:
            document = json.loads(text)
        except json.JSONDecodeError as json_error:
            if source.endswith(".json"):
                raise ConfigError(
                    f"{source}:{json_error.lineno}:{json_error.colno}: not valid JSON: "
                    f"{json_error.msg}"
                ) from None
            document = _load_yaml(text, source)
        return cls.from_openapi(document, server_paths=server_paths, source=source)

    @classmethod
    def from_routes_file(cls, path: str | os.PathLike[str]) -> OpenAPIRouteResolver:
        """Templates from a text file: one per line, ``#`` comments and blank lines ignored."""
        source = os.fspath(path)
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{source}: cannot read the routes file: {error}") from None
        templates = [
            _checked_template(line.split("#", 1)[0].strip(), f"{source}:{number}")
            for number, line in enumerate(lines, start=1)
            if line.split("#", 1)[0].strip()
        ]
        if not templates:
            raise ConfigError(
                f"{source}: no route templates; write one per line, e.g. /users/{{user_id}}"
            )
        return cls(templates)

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
