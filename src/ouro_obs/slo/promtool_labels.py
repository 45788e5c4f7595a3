"""Label values for synthesised series: what satisfies (or escapes) a selector's matchers.

The promtool tests of a ratio or histogram SLI write input series that the SLI's own
selectors pick up. Each label gets the first candidate value every matcher on it accepts,
as Prometheus matches them (a missing label is the empty value, regexes are anchored):
the value the spec writes (``queue="mail"``), a literal alternative of a regex
(``OK`` of ``OK|NotFound``), the regex with its wildcards filled in (``500`` of ``5..``),
then a few common values. The spec's check asks the same questions, so a selector no
series could satisfy is refused with its line, not found out by promtool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from ouro_obs.slo.promql import Matcher

__all__ = ["accepts", "escaping_labels", "satisfying_labels"]

#: Tried after the values the matchers themselves suggest.
_COMMON_VALUES = ("", "other", "x", "0", "1", "200", "500", "OK", "ok", "error", "true", "false")


def accepts(matcher: Matcher, value: str) -> bool:
    """Whether ``matcher`` selects a series whose label is ``value`` ("" when it has none)."""
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    found = re.fullmatch(matcher.value, value) is not None
    return found if matcher.op == "=~" else not found


def _filled(regex: str) -> str:
    """``5..`` -> ``500``, ``a\\.b`` -> ``a.b``: wildcards as ``0``, escapes undone."""
    text = re.sub(r"(?<!\\)\.[*+?]?|\\d[*+?]?", "0", regex)
    text = re.sub(r"\(\?:|[()^$]", "", text)
    return re.sub(r"\\(.)", r"\1", text)


def _suggested(matchers: Iterable[Matcher]) -> list[str]:
    values: list[str] = []
    for matcher in matchers:
        if matcher.op == "=":
            values.append(matcher.value)
        elif matcher.op == "=~":
            alternatives = re.split(r"(?<!\\)\|", matcher.value)
            values += [re.sub(r"\\(.)", r"\1", part) for part in alternatives]
            values += [_filled(part) for part in alternatives]
    return values


def _candidates(matchers: Sequence[Matcher], current: str | None) -> list[str]:
    found = [] if current is None else [current]
    return [*found, *_suggested(matchers), *_COMMON_VALUES]


def _by_label(matchers: Iterable[Matcher]) -> dict[str, list[Matcher]]:
    grouped: dict[str, list[Matcher]] = {}
    for matcher in matchers:
        grouped.setdefault(matcher.label, []).append(matcher)
    return grouped


def satisfying_labels(
    matchers: Sequence[Matcher], base: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """The matched labels, each set so that every matcher selects the series, then the
    rest of ``base``.

    ``None`` when no candidate satisfies the matchers of some label.
    """
    given = dict(base or {})
    labels: dict[str, str] = {}
    for label, on_label in _by_label(matchers).items():
        candidates = _candidates(on_label, given.get(label))
        value = next((v for v in candidates if all(accepts(m, v) for m in on_label)), None)
        if value is None:
            return None
        labels[label] = value
    labels.update((label, value) for label, value in given.items() if label not in labels)
    return {label: value for label, value in labels.items() if value}


def escaping_labels(
    kept: Sequence[Matcher], escaped: Sequence[Matcher], base: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """Labels every ``kept`` matcher selects and some ``escaped`` matcher does not.

    The good series of ``errors: x{code=~"5.."}`` over ``total: x{}`` is one that
    ``total`` selects and ``errors`` does not: ``code="200"``. ``None`` when there is none.
    """
    everything = satisfying_labels([*kept, *escaped], base)
    if everything is None:
        return None
    for label, on_label in _by_label(escaped).items():
        held = [m for m in kept if m.label == label]
        # A value rather than no label: the series reads like a real one.
        for value in sorted(_candidates([*held, *on_label], None), key=lambda text: not text):
            if all(accepts(m, value) for m in held) and not all(
                accepts(m, value) for m in on_label
            ):
                labels = {**everything, label: value}
                return {name: text for name, text in labels.items() if text}
    return None
