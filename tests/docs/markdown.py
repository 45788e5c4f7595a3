"""Reading fenced code blocks, shell commands and links out of Markdown files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import REPO_ROOT

__all__ = [
    "SHELL_LANGUAGES",
    "Block",
    "Command",
    "fenced_blocks",
    "github_anchor",
    "headings",
    "links",
    "promql_statements",
    "shell_commands",
]

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: where it starts (1-based line of the fence) and its text."""

    path: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


@dataclass(frozen=True, slots=True)
class Command:
    """One shell command of a block, continuation lines joined; ``comment`` is its trailing note."""

    block: Block
    line: int
    text: str
    comment: str

    @property
    def where(self) -> str:
        return f"{self.block.path.relative_to(REPO_ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``; an unterminated fence is an error, not a silent skip."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise ValueError(f"{path}:{start + 1}: the code fence is never closed")
        language = opening["info"].strip().split(" ")[0].lower()
        blocks.append(Block(path, start + 1, language, "\n".join(body) + "\n"))
        index += 1
    return blocks


def _split_comment(line: str) -> tuple[str, str]:
    """``cmd  # note`` -> (``cmd``, ``note``); a ``#`` inside quotes is not a comment."""
    quote = ""
    for position, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position].rstrip(), line[position + 1 :].strip()
    return line.rstrip(), ""


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block; ``console`` blocks keep only ``$ `` prompt lines."""
    commands: list[Command] = []
    pending: list[str] = []
    pending_line = 0
    for offset, raw in enumerate(block.text.splitlines(), start=1):
        line = raw
        if block.language == "console":
            if not line.startswith("$ ") and not pending:
                continue
            line = line.removeprefix("$ ")
        code, comment = _split_comment(line)
        if not code.strip() and not pending:
            continue
        if not pending:
            pending_line = block.line + offset
        if code.endswith("\\"):
            pending.append(code[:-1].rstrip())
            continue
        pending.append(code.strip())
        commands.append(Command(block, pending_line, " ".join(pending).strip(), comment))
        pending = []
    return commands


def promql_statements(block: Block) -> list[str]:
    """The queries of a ``promql`` block: separated by blank lines or ``#`` comment lines."""
    statements: list[str] = []
    current: list[str] = []
    for line in [*block.text.splitlines(), ""]:
        if not line.strip() or line.lstrip().startswith("#"):
            if current:
                statements.append("\n".join(current))
                current = []
            continue
        current.append(line)
    return statements


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link outside code blocks."""
    found: list[tuple[int, str]] = []
    in_fence = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = _FENCE.match(line)
        if fence is not None and (not in_fence or line.strip().startswith(in_fence)):
            in_fence = "" if in_fence else fence["fence"]
            continue
        if in_fence:
            continue
        found.extend((number, match["target"]) for match in _LINK.finditer(line))
    return found


def github_anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    text = title.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(path: Path) -> set[str]:
    anchors = set()
    in_fence = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = _FENCE.match(line)
        if fence is not None and (not in_fence or line.strip().startswith(in_fence)):
            in_fence = "" if in_fence else fence["fence"]
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading is not None:
            anchors.add(github_anchor(heading["title"]))
    return anchors
