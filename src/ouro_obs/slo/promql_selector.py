"""PromQL series selectors as a spec writes them: ``queue_jobs_total{queue="mail"}``.

A ``kind: ratio`` SLI names its counters with selectors and a ``kind: histogram`` SLI may
narrow its histogram with matchers; :func:`parse_selector` reads them into a
:class:`SeriesSelector` (a metric name and its :class:`~ouro_obs.slo.promql.Matcher`
list) or raises :class:`SelectorError` saying what is wrong and where in the text.
Only selectors are read: functions, ranges and operators are refused, because the
generator adds ``rate()`` and the ratio itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

from ouro_obs.slo import promql
from ouro_obs.slo.promql import Matcher, MatchOp

__all__ = ["METRIC_NAME_RE", "SelectorError", "SeriesSelector", "parse_matchers", "parse_selector"]

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATOR_RE = re.compile(r"=~|!~|!=|=")
_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"',
}  # fmt: skip
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


class SelectorError(ValueError):
    """A selector that cannot be read; the message says where and what to write."""


@dataclass(frozen=True, slots=True)
class SeriesSelector:
    """A metric name and label matchers: the series of one counter or histogram."""

    metric: str
    matchers: tuple[Matcher, ...] = ()

    def labels(self) -> frozenset[str]:
        """The label names the matchers constrain."""
        return frozenset(matcher.label for matcher in self.matchers)

    def __str__(self) -> str:
        if not self.matchers:
            return self.metric
        return self.metric + promql.selector(self.matchers)


class _Scanner:
    """Reads a selector's text left to right; errors name the character position."""

    def __init__(self, text: str):
        self.text = text
        self.at = 0

    def fail(self, message: str) -> SelectorError:
        return SelectorError(f"{message} at character {self.at + 1} of {self.text.strip()!r}")

    def skip_spaces(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def peek(self) -> str:
        self.skip_spaces()
        return self.text[self.at : self.at + 1]

    def take(self, pattern: re.Pattern[str], what: str) -> str:
        self.skip_spaces()
        match = pattern.match(self.text, self.at)
        if match is None:
            raise self.fail(f"expected {what}")
        self.at = match.end()
        return match.group(0)

    def string(self) -> str:
        """A PromQL string: double or single quotes with Go escapes, or backticks raw."""
        quote = self.peek()
        if quote not in {'"', "'", "`"}:
            raise self.fail('expected a quoted value like "mail"')
        self.at += 1
        value: list[str] = []
        while self.at < len(self.text):
            char = self.text[self.at]
            self.at += 1
            if char == quote:
                return "".join(value)
            if char == "\\" and quote != "`":
                value.append(self._escape())
            elif char == "\n" and quote != "`":
                break
            else:
                value.append(char)
        raise self.fail(f"the value has no closing {quote}")

    def _escape(self) -> str:
        char = self.text[self.at : self.at + 1]
        self.at += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char in _HEX_ESCAPES:
            digits = self.text[self.at : self.at + _HEX_ESCAPES[char]]
            if len(digits) == _HEX_ESCAPES[char] and all(
                d in "0123456789abcdefABCDEF" for d in digits
            ):
                self.at += len(digits)
                return chr(int(digits, 16))
        raise self.fail(f"unknown escape \\{char} in a quoted value")

    def matcher(self) -> Matcher:
        label = self.take(_LABEL_RE, "a label name")
        operator = cast(MatchOp, self.take(_OPERATOR_RE, f"=, !=, =~ or !~ after {label}"))
        value = self.string()
        if operator in {"=~", "!~"}:
            try:
                re.compile(value)
            except re.error as error:
                raise self.fail(
                    f"{label}{operator}{promql.quote(value)} is not a valid regex ({error})"
                ) from None
        return Matcher(label, operator, value)

    def matchers(self) -> tuple[Matcher, ...]:
        """``{a="b", c=~"d"}`` (the opening brace is next), a trailing comma allowed."""
        self.peek()
        self.at += 1
        found: list[Matcher] = []
        while self.peek() != "}":
            if not self.peek():
                raise self.fail("the matchers have no closing }")
            found.append(self.matcher())
            if self.peek() == ",":
                self.at += 1
            elif self.peek() != "}":
                raise self.fail("expected , or } after a matcher")
        self.at += 1
        return tuple(found)

    def end(self) -> None:
        self.skip_spaces()
        if self.at < len(self.text):
            rest = self.text[self.at :]
            hint = (
                "; write the series only: ouro-obs adds rate() and the ratio itself"
                if rest.startswith(("[", "(", "/", "*", "+", "-", " or ", " and "))
                or "(" in self.text
                else ""
            )
            raise self.fail(f"unexpected {rest.strip()!r}{hint}")


def parse_selector(text: str) -> SeriesSelector:
    """``metric{label="value",...}`` -> :class:`SeriesSelector`; :class:`SelectorError` if not one."""
    scanner = _Scanner(text)
    if scanner.peek() == "{":
        raise scanner.fail(
            "name the metric before the braces, e.g. 'queue_jobs_total{queue=\"mail\"}'"
        )
    if not scanner.peek():
        raise scanner.fail(
            "is empty; write a series selector like 'queue_jobs_total{queue=\"mail\"}'"
        )
    metric = scanner.take(METRIC_NAME_RE, "a metric name like queue_jobs_total")
    if scanner.peek() == "(":
        raise scanner.fail(
            f"{metric}( is a function; write the series only, ouro-obs adds rate() itself"
        )
    matchers = scanner.matchers() if scanner.peek() == "{" else ()
    scanner.end()
    labels = [matcher.label for matcher in matchers]
    if "__name__" in labels:
        raise SelectorError(
            f"{text.strip()!r} matches __name__; the metric name before the braces says it"
        )
    return SeriesSelector(metric, matchers)


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """``{label="value",...}`` alone (braces required) -> its matchers."""
    scanner = _Scanner(text)
    if scanner.peek() != "{":
        raise scanner.fail("expected label matchers in braces, e.g. '{grpc_service=\"cart\"}'")
    matchers = scanner.matchers()
    scanner.end()
    return matchers
