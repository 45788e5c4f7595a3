"""What a spec's problems look like: a field path, a line and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["FieldPath", "SpecError", "SpecIssue", "format_path"]

#: A place in the document: mapping keys and list indexes, from the top.
FieldPath = tuple[str | int, ...]


def format_path(path: FieldPath, base: str = "") -> str:
    """``("slos", 1, "sli")`` -> ``slos[1].sli``; after ``base`` when one is given."""
    text = base
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class SpecIssue(NamedTuple):
    """One problem: where it is (field path, line) and what to do about it."""

    path: str
    message: str
    line: int | None = None


class SpecError(ValueError):
    """The spec has problems; ``str()`` lists each as ``file:line: path: message``."""

    def __init__(self, source: str, issues: Sequence[SpecIssue]):
        self.source = source
        self.issues = tuple(issues)
        super().__init__(self.render())

    def render(self) -> str:
        lines = []
        for issue in self.issues:
            place = self.source if issue.line is None else f"{self.source}:{issue.line}"
            subject = f"{issue.path}: " if issue.path else ""
            lines.append(f"{place}: {subject}{issue.message}")
        return "\n".join(lines)
