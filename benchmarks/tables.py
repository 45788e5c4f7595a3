"""Markdown tables, the one output format of every benchmark (ready for the README)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Table", "ratio", "verdict"]


@dataclass
class Table:
    """A titled Markdown table plus the sentences that read it."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.headers) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        for note in self.notes:
            lines.extend(("", note))
        return "\n".join(lines) + "\n"


def ratio(numerator: float, denominator: float) -> str:
    """``numerator / denominator`` to two decimals, or "n/a" when the denominator is not > 0."""
    if denominator <= 0:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
