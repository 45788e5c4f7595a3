"""Which HTTP requests go to the app unobserved, beyond the exact ``excluded_paths``.

Exact paths stay a set lookup in the middleware's dispatch; this predicate exists only when
prefixes, patterns or methods are configured, so a service that uses none pays nothing.
"""

from __future__ import annotations

import re

from starlette.types import Scope

from ouro_obs.config import ObservabilitySettings

__all__ = ["Exclusions"]


class Exclusions:
    """``exclusions(path, scope)``: whether the request is not measured nor access-logged.

    ``path`` is the request path without the ``root_path`` a proxy set.
    """

    __slots__ = ("_methods", "_pattern", "_prefixes")

    def __init__(
        self,
        prefixes: tuple[str, ...] = (),
        patterns: tuple[str, ...] = (),
        methods: frozenset[str] = frozenset(),
    ) -> None:
        # "/admin" excludes "/admin" and "/admin/...", not "/administrators".
        self._prefixes = tuple(prefix.rstrip("/") + "/" for prefix in prefixes)
        joined = "|".join(f"(?:{pattern})" for pattern in patterns)
        self._pattern = re.compile(joined).fullmatch if patterns else None
        self._methods = methods

    @classmethod
    def from_settings(cls, settings: ObservabilitySettings) -> Exclusions | None:
        """The exclusions ``settings`` ask for beyond exact paths; None when there are none."""
        if not (
            settings.excluded_path_prefixes
            or settings.excluded_path_patterns
            or settings.excluded_methods
        ):
            return None
        return cls(
            settings.excluded_path_prefixes,
            settings.excluded_path_patterns,
            settings.excluded_methods,
        )

    def __call__(self, path: str, scope: Scope) -> bool:
        if self._methods and scope["method"] in self._methods:
            return True
        if self._prefixes and (path + "/").startswith(self._prefixes):
            return True
        return self._pattern is not None and self._pattern(path) is not None
