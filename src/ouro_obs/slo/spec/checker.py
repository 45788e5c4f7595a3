"""The field checks every part of the spec is built with; each problem keeps its place.

A :class:`Checker` never raises: it records an issue with the field path (shown as the
user wrote the file, see ``aliases``) and its line, and returns ``None`` or an empty
value, so one run reports every problem of the file at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ouro_obs.slo.spec.errors import FieldPath, SpecIssue, format_path
from ouro_obs.slo.spec.yaml_lines import nearest_line

__all__ = ["LABEL_NAME_RE", "Checker", "describe", "slug"]

#: A Prometheus label name (also what annotation names must look like).
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def describe(value: Any) -> str:
    """How a wrong value reads in a message: ``nothing``, ``a list``, ``the number 3``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | Decimal | float):
        return f"the number {value}"
    return repr(value)


def slug(text: str) -> str:
    """A name suggestion from what the user wrote: ``My Shop`` -> ``my-shop``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "my-service"


def _unknown_field(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field; {hint}known fields: {', '.join(known)}"


class Checker:
    """Collects issues with their lines while the typed model is built."""

    def __init__(
        self,
        lines: Mapping[FieldPath, int],
        aliases: Mapping[FieldPath, str] | None = None,
        required_hints: Mapping[str, str] | None = None,
    ):
        self.lines = lines
        self.aliases = aliases or {}
        self.required_hints = required_hints or {}
        self.issues: list[SpecIssue] = []

    def shown(self, path: FieldPath) -> str:
        for cut in range(len(path), -1, -1):
            alias = self.aliases.get(path[:cut])
            if alias is not None:
                return format_path(path[cut:], alias)
        return format_path(path)

    def error(self, path: FieldPath, message: str) -> None:
        self.issues.append(SpecIssue(self.shown(path), message, nearest_line(self.lines, path)))

    def check(self, valid: bool, path: FieldPath, message: str) -> bool:
        """``valid``; when it is False, ``message`` is recorded at ``path``."""
        if not valid:
            self.error(path, message)
        return valid

    def label_name(self, path: FieldPath, name: str, reserved: Iterable[str] = ()) -> bool:
        """``name`` is a Prometheus label name that ouro-obs does not set itself."""
        return self.check(
            LABEL_NAME_RE.fullmatch(name) is not None and not name.startswith("__"),
            path,
            f"{name!r} is not a Prometheus label name; use letters, digits and '_', "
            "not starting with a digit or '__'",
        ) and self.check(
            name not in tuple(reserved),
            path,
            f"{name!r} is set by ouro-obs; use another label name",
        )

    def mapping(
        self,
        path: FieldPath,
        value: Any,
        known: Sequence[str],
        required: Sequence[str] = (),
        what: str = "a mapping",
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"must be {what}, got {describe(value)}")
            return None
        for key in value:
            if key not in known:
                self.error((*path, key), _unknown_field(key, known))
        for key in required:
            if key not in value:
                self.error((*path, key), f"required; {self.required_hints.get(key, 'add it')}")
        return value

    def string(
        self, path: FieldPath, value: Any, pattern: re.Pattern[str] | None = None, hint: str = ""
    ) -> str | None:
        if not isinstance(value, str):
            self.error(path, f"must be a string, got {describe(value)}; quote the value")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(path, f"{value!r} {hint}")
            return None
        return value

    def string_map(
        self,
        path: FieldPath,
        value: Any,
        check_key: Callable[[FieldPath, str], bool],
        check_value: Callable[[FieldPath, str], bool] | None = None,
    ) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of names to strings, got {describe(value)}")
            return {}
        result = {}
        for key, item in value.items():
            text = self.string((*path, key), item)
            if text is None or not check_key((*path, key), key):
                continue
            if check_value is not None and not check_value((*path, key), text):
                continue
            result[key] = text
        return result

    def string_list(self, path: FieldPath, value: Any) -> list[tuple[FieldPath, str]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list of strings, got {describe(value)}")
            return []
        found = []
        for index, item in enumerate(value):
            text = self.string((*path, index), item)
            if text is not None:
                found.append(((*path, index), text))
        return found

    def unique(self, path: FieldPath, items: Sequence[str]) -> tuple[str, ...]:
        seen: list[str] = []
        for item in items:
            if item in seen:
                self.error(path, f"{item!r} is listed twice; list it once")
            else:
                seen.append(item)
        return tuple(seen)

    def number(self, path: FieldPath, value: Any, example: str) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.error(path, f"must be a number like {example}, got {describe(value)}")
            return None
        number = Decimal(value)
        if not number.is_finite():
            self.error(path, f"must be a finite number like {example}")
            return None
        return number
