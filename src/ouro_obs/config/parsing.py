"""Parsers of the ``OURO_OBS_*`` variables' text into setting values.

Each takes the variable's text and returns the value, raising ``ValueError`` (or
:class:`~ouro_obs.config.values.ConfigError`) with what is wrong; ``from_env`` names the
variable.
"""

from __future__ import annotations

from ouro_obs.config.values import RequestLabel

__all__ = [
    "bool_",
    "csv",
    "csv_tuple",
    "floats",
    "optional_path",
    "request_labels",
    "route_floats",
    "static_labels",
    "words",
]


def bool_(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def optional_path(raw: str) -> str | None:
    return None if raw.strip().lower() in {"none", "off", "false"} else raw.strip()


def csv(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def csv_tuple(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def words(raw: str) -> tuple[str, ...]:
    """Whitespace-separated items (regular expressions may hold commas)."""
    return tuple(raw.split())


def static_labels(raw: str) -> tuple[tuple[str, str], ...]:
    """``version=1.4.2,track=canary``."""
    pairs: list[tuple[str, str]] = []
    for item in csv_tuple(raw):
        name, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"{item!r} is not name=value")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def request_labels(raw: str) -> tuple[RequestLabel, ...]:
    """``tenant=header:x-tenant;max_values=50,cache=response_header:x-cache;allowed=hit|miss``."""
    labels: list[RequestLabel] = []
    for item in csv_tuple(raw):
        declaration, *options = (part.strip() for part in item.split(";"))
        name, equals, source = declaration.partition("=")
        if not equals:
            raise ValueError(f"{item!r} is not name=kind:key[;allowed=a|b][;max_values=N]")
        allowed: frozenset[str] | None = None
        max_values: int | None = None
        for option in options:
            key, _, value = option.partition("=")
            if key == "allowed":
                allowed = frozenset(value.split("|"))
            elif key == "max_values":
                max_values = int(value)
            else:
                raise ValueError(f"{option!r}: the options are allowed=a|b and max_values=N")
        labels.append(RequestLabel(name.strip(), source.strip(), allowed, max_values))
    return tuple(labels)


def floats(raw: str) -> tuple[float, ...]:
    return tuple(float(part) for part in raw.split(",") if part.strip())


def route_floats(raw: str) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """``/export=1,5,30,60;/reports/{report_id}=0.5,1,5``."""
    pairs: list[tuple[str, tuple[float, ...]]] = []
    for item in (part.strip() for part in raw.split(";")):
        if not item:
            continue
        template, equals, buckets = item.rpartition("=")
        if not equals or not template.strip():
            raise ValueError(f"{item!r} is not /route/template=0.5,1,5 (routes separated by ';')")
        pairs.append((template.strip(), floats(buckets)))
    return tuple(pairs)
