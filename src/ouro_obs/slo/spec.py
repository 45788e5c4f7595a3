"""The versioned SLO spec model (``apiVersion: ouro-obs/v1``), its loader and JSON Schema.

Generators only ever see the typed model below. :func:`load_spec` reads a YAML file
(an ouro-obs spec, or an OpenSLO v1 ``SLO`` document with a ratio SLI), checks every
field and raises :class:`SpecError` listing each problem with the file, line, field
path and the fix; nothing is generated from a spec that has any problem.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml

from ouro_obs.config import DEFAULT_DURATION_BUCKETS
from ouro_obs.metrics import OTHER_METHOD, STANDARD_METHODS

__all__ = [
    "API_VERSION",
    "DEFAULT_PAGE_MIN_REQUESTS",
    "KIND",
    "AvailabilitySLI",
    "DashboardKind",
    "LatencySLI",
    "SLOSpec",
    "ServiceSpec",
    "SpecError",
    "SpecIssue",
    "alert_name_stem",
    "dashboard_uid",
    "format_path",
    "load_spec",
    "parse_spec",
    "spec_json_schema",
]

API_VERSION = "ouro-obs/v1"
KIND = "ServiceSLO"
OPENSLO_API_VERSION = "openslo/v1"

#: A page needs at least this many requests in the alert's long window (low-traffic guard).
DEFAULT_PAGE_MIN_REQUESTS = 100

DashboardKind = Literal["overview", "slo"]


@dataclass(frozen=True, slots=True)
class AvailabilitySLI:
    """Errors are responses whose status matches ``error_status_regex`` (default 5xx)."""

    error_status_regex: str = "5.."
    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    kind: Literal["availability"] = "availability"


@dataclass(frozen=True, slots=True)
class LatencySLI:
    """Errors are requests slower than ``threshold_seconds`` (a histogram bucket boundary)."""

    threshold_seconds: Decimal
    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    kind: Literal["latency"] = "latency"


@dataclass(frozen=True, slots=True)
class SLOSpec:
    """One objective: ``objective`` percent good over ``window_days`` days."""

    name: str
    objective: Decimal  # percent, e.g. Decimal("99.9")
    window_days: int
    sli: AvailabilitySLI | LatencySLI
    description: str = ""

    @property
    def error_budget(self) -> Decimal:
        """The allowed bad fraction as an exact decimal: 99.9 -> 0.001."""
        return (Decimal(100) - self.objective) / Decimal(100)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """Everything one service's spec file says."""

    service: str
    slos: tuple[SLOSpec, ...]
    #: Label matchers selecting the service's series; default ``{"job": service}``.
    selector: Mapping[str, str] = field(default_factory=dict)
    metrics_namespace: str = ""
    #: Labels put on every alert (team, owner, ...).
    labels: Mapping[str, str] = field(default_factory=dict)
    runbook_base_url: str = ""
    #: Grafana base URL for dashboard links in alert annotations ("" means relative links).
    grafana_url: str = ""
    page_labels: Mapping[str, str] = field(default_factory=lambda: {"severity": "page"})
    ticket_labels: Mapping[str, str] = field(default_factory=lambda: {"severity": "ticket"})
    #: Metadata labels on the PrometheusRule / ServiceMonitor / ConfigMap (e.g. release).
    manifest_labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""
    #: Low-traffic guard: a burn-rate page also needs this many requests in its long window.
    page_min_requests: int = DEFAULT_PAGE_MIN_REQUESTS

    @property
    def effective_selector(self) -> Mapping[str, str]:
        return self.selector or {"job": self.service}


def dashboard_uid(service: str, kind: DashboardKind) -> str:
    """Stable Grafana uid for one of the service's dashboards (at most 40 characters)."""
    slug = re.sub(r"[^a-zA-Z0-9-]+", "-", service).strip("-").lower()
    uid = f"{slug}-{kind}"
    if len(uid) <= 40:
        return uid
    digest = hashlib.sha256(service.encode()).hexdigest()[:8]
    return f"{slug[: 40 - len(kind) - 10]}-{digest}-{kind}"


# --------------------------------------------------------------------------- errors

Path_ = tuple[str | int, ...]


def format_path(path: Path_) -> str:
    """``("slos", 1, "sli")`` -> ``slos[1].sli``."""
    text = ""
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


# --------------------------------------------------------------------------- YAML with lines


class _Document(NamedTuple):
    value: Any
    lines: dict[Path_, int]
    #: Field paths to show instead of the model's (an imported OpenSLO file has its own).
    aliases: Mapping[Path_, str] | None = None


class _YAMLProblem(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message = message
        self.line = line


_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("int", "bool", "null", "str", "float")
)


class _Reader:
    """YAML nodes -> Python values, recording the line of every field path on the way."""

    def __init__(self) -> None:
        self.constructor = yaml.SafeLoader("")
        self.lines: dict[Path_, int] = {}

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == "tag:yaml.org,2002:float":
            # Keep the digits as written: 99.9 stays Decimal("99.9"), not 99.90000000000001.
            try:
                return Decimal(node.value.replace("_", ""))
            except InvalidOperation:
                pass  # .inf, .nan: let the checks refuse the float
        if node.tag in _PLAIN_TAGS:
            return self.constructor.construct_object(node, deep=True)
        return node.value  # timestamps and the like stay text

    def value(self, node: yaml.Node, path: Path_) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*path, index)) for index, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node)

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise _YAMLProblem(
                    f"{format_path(path) or 'the document'}: keys must be strings, got {key!r}",
                    key_node.start_mark.line + 1,
                )
            if key in result:
                raise _YAMLProblem(
                    f"{format_path((*path, key))}: duplicate key; keep one of them",
                    key_node.start_mark.line + 1,
                )
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.value(value_node, (*path, key))
        return result


def _read_documents(text: str, source: str) -> list[_Document]:
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        problem = error.problem or error.context or "unreadable YAML"
        message = f"invalid YAML: {problem}; fix the syntax there"
        raise SpecError(source, [SpecIssue("", message, line)]) from None
    except yaml.YAMLError as error:
        raise SpecError(source, [SpecIssue("", f"invalid YAML: {error}")]) from None
    documents = []
    for node in nodes:
        if node is None:
            continue
        reader = _Reader()
        try:
            documents.append(_Document(reader.value(node, ()), reader.lines))
        except _YAMLProblem as problem:
            raise SpecError(source, [SpecIssue("", problem.message, problem.line)]) from None
    return documents


# --------------------------------------------------------------------------- validation

_SERVICE_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_SLO_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_PREFIX_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_WINDOW_RE = re.compile(r"([1-9][0-9]*)d")
_URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*")
_K8S_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_K8S_PREFIX_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

#: Labels the generator sets itself on every rule; a spec may not override them.
RESERVED_RULE_LABELS = frozenset({"service", "slo", "alertname"})
#: Labels the SLI queries set from the SLI fields; the selector may not use them.
RESERVED_SELECTOR_LABELS = ("__name__", "method", "route", "status", "le")
MAX_WINDOW_DAYS = 366
#: The fast page fires at 14.4 x the budget, which has to be an error ratio below 100 %.
FASTEST_BURN_FACTOR = Decimal("14.4")
MIN_OBJECTIVE = Decimal(100) - Decimal(100) / FASTEST_BURN_FACTOR
#: The lowest objective with two decimals that still leaves the fast page able to fire.
MIN_OBJECTIVE_HINT = MIN_OBJECTIVE.quantize(Decimal("0.01"), rounding=ROUND_CEILING)

_TOP_FIELDS = (
    "apiVersion",
    "kind",
    "service",
    "namespace",
    "selector",
    "metrics_namespace",
    "labels",
    "runbook_base_url",
    "grafana_url",
    "page_labels",
    "ticket_labels",
    "page_min_requests",
    "manifest_labels",
    "slos",
)
_SLO_FIELDS = ("name", "description", "objective", "window", "sli")
_AVAILABILITY_FIELDS = ("kind", "error_status_regex", "routes", "methods")
_LATENCY_FIELDS = ("kind", "threshold_seconds", "routes", "methods")


class _Checker:
    """Collects issues with their lines while the typed model is built."""

    def __init__(self, lines: Mapping[Path_, int], aliases: Mapping[Path_, str] | None = None):
        self.lines = lines
        self.aliases = aliases or {}
        self.issues: list[SpecIssue] = []

    def shown(self, path: Path_) -> str:
        for cut in range(len(path), -1, -1):
            alias = self.aliases.get(path[:cut])
            if alias is not None:
                rest = "".join(
                    f"[{part}]" if isinstance(part, int) else f".{part}" for part in path[cut:]
                )
                return alias + rest
        return format_path(path)

    def line(self, path: Path_) -> int | None:
        for cut in range(len(path), -1, -1):
            found = self.lines.get(path[:cut])
            if found is not None:
                return found
        return None

    def error(self, path: Path_, message: str) -> None:
        self.issues.append(SpecIssue(self.shown(path), message, self.line(path)))

    def mapping(
        self,
        path: Path_,
        value: Any,
        known: Sequence[str],
        required: Sequence[str] = (),
        what: str = "a mapping",
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"must be {what}, got {_describe(value)}")
            return None
        for key in value:
            if key not in known:
                self.error((*path, key), _unknown_field(key, known))
        for key in required:
            if key not in value:
                self.error((*path, key), f"required; {_REQUIRED_HINTS.get(key, 'add it')}")
        return value

    def string(
        self, path: Path_, value: Any, pattern: re.Pattern[str] | None = None, hint: str = ""
    ) -> str | None:
        if not isinstance(value, str):
            self.error(path, f"must be a string, got {_describe(value)}; quote the value")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(path, f"{value!r} {hint}")
            return None
        return value

    def string_map(
        self,
        path: Path_,
        value: Any,
        check_key: Callable[[Path_, str], bool],
        check_value: Callable[[Path_, str], bool] | None = None,
    ) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of names to strings, got {_describe(value)}")
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

    def string_list(self, path: Path_, value: Any) -> list[tuple[Path_, str]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list of strings, got {_describe(value)}")
            return []
        found = []
        for index, item in enumerate(value):
            text = self.string((*path, index), item)
            if text is not None:
                found.append(((*path, index), text))
        return found


_REQUIRED_HINTS = {
    "apiVersion": f"add 'apiVersion: {API_VERSION}' at the top",
    "service": "add the service name, e.g. 'service: shop'",
    "runbook_base_url": "add the URL of the service's runbook, e.g. "
    "'runbook_base_url: https://runbooks.example.com/shop'",
    "slos": "add a list of SLOs",
    "name": "add a name, e.g. 'name: availability'",
    "objective": "add the target in percent, e.g. 'objective: 99.9'",
    "sli": "add 'sli: {kind: availability}' or 'sli: {kind: latency, threshold_seconds: 0.5}'",
    "kind": "add 'kind: availability' or 'kind: latency'",
    "threshold_seconds": "add a histogram bucket boundary in seconds, e.g. 'threshold_seconds: 0.5'",
}


def _describe(value: Any) -> str:
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


def _unknown_field(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field; {hint}known fields: {', '.join(known)}"


def _label_name(checker: _Checker, path: Path_, name: str, reserved: Iterable[str] = ()) -> bool:
    if not _LABEL_NAME_RE.fullmatch(name) or name.startswith("__"):
        checker.error(
            path,
            f"{name!r} is not a Prometheus label name; use letters, digits and '_', "
            "not starting with a digit or '__'",
        )
        return False
    reserved = tuple(reserved)
    if name in reserved:
        checker.error(path, f"{name!r} is set by ouro-obs; use another label name")
        return False
    return True


def _k8s_label_key(checker: _Checker, path: Path_, key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _K8S_PREFIX_RE.fullmatch(prefix))) or not (
        len(name) <= 63 and _K8S_NAME_RE.fullmatch(name)
    ):
        checker.error(
            path,
            f"{key!r} is not a Kubernetes label key; use an optional DNS prefix and '/', then "
            "up to 63 letters, digits, '-', '_' or '.', e.g. 'release'",
        )
        return False
    return True


def _k8s_label_value(checker: _Checker, path: Path_, value: str) -> bool:
    if value and not (len(value) <= 63 and _K8S_NAME_RE.fullmatch(value)):
        checker.error(
            path,
            f"{value!r} is not a Kubernetes label value; use up to 63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit",
        )
        return False
    return True


def _url(checker: _Checker, path: Path_, value: Any) -> str:
    text = checker.string(path, value)
    if text is None:
        return ""
    if not _URL_RE.fullmatch(text):
        checker.error(
            path, f"{text!r} is not an http(s) URL; write it like https://example.com/path"
        )
        return ""
    return text.rstrip("/")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "my-service"


def _number(checker: _Checker, path: Path_, value: Any, example: str) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        checker.error(path, f"must be a number like {example}, got {_describe(value)}")
        return None
    number = Decimal(value)
    if not number.is_finite():
        checker.error(path, f"must be a finite number like {example}")
        return None
    return number


def _objective(checker: _Checker, path: Path_, value: Any) -> Decimal | None:
    objective = _number(checker, path, value, "99.9 (percent)")
    if objective is None:
        return None
    if objective >= 100 or objective <= 0:
        checker.error(
            path,
            f"{objective} is not a percentage below 100; write the target in percent, "
            "e.g. 99.9 (100 would leave no error budget)",
        )
        return None
    if objective < MIN_OBJECTIVE:
        budget = Decimal(100) - objective
        checker.error(
            path,
            f"{objective} leaves an error budget of {budget.normalize():f} %, and the fast-burn "
            f"page would need {(budget * FASTEST_BURN_FACTOR).normalize():f} % errors; "
            f"use an objective of at least {MIN_OBJECTIVE_HINT}",
        )
        return None
    return objective


def _window(checker: _Checker, path: Path_, value: Any) -> int | None:
    if value is None:
        return 30
    if isinstance(value, int) and not isinstance(value, bool):
        checker.error(path, f"{value} has no unit; write a number of days like {value}d")
        return None
    text = checker.string(path, value)
    if text is None:
        return None
    match = _WINDOW_RE.fullmatch(text.strip())
    if match is None:
        checker.error(path, f"{text!r} is not a whole number of days; write it like 30d, 28d or 7d")
        return None
    days = int(match.group(1))
    if days > MAX_WINDOW_DAYS:
        checker.error(path, f"{text!r} is longer than {MAX_WINDOW_DAYS}d; use a shorter window")
        return None
    return days


def _status_regex(checker: _Checker, path: Path_, value: Any) -> str | None:
    if value is None:
        return "5.."
    text = checker.string(path, value)
    if text is None:
        return None
    try:
        compiled = re.compile(text)
    except re.error as error:
        checker.error(path, f"{text!r} is not a valid regular expression ({error}); e.g. '5..'")
        return None
    matched = [code for code in range(100, 600) if compiled.fullmatch(str(code))]
    if not matched:
        checker.error(
            path, f"{text!r} matches no HTTP status code; use a pattern like '5..' or '5..|429'"
        )
        return None
    if compiled.fullmatch("200"):
        checker.error(path, f"{text!r} counts 200 as an error; use a pattern like '5..'")
        return None
    return text


def _routes(checker: _Checker, path: Path_, value: Any) -> tuple[str, ...]:
    routes = []
    for item_path, route in checker.string_list(path, value):
        if not (route.startswith("/") or (route.startswith("<") and route.endswith(">"))):
            checker.error(
                item_path,
                f"{route!r} is not a route template; write it as the app declares it, "
                "e.g. '/items/{item_id}'",
            )
            continue
        routes.append(route)
    return _unique(checker, path, routes)


def _methods(checker: _Checker, path: Path_, value: Any) -> tuple[str, ...]:
    known = [*sorted(STANDARD_METHODS), OTHER_METHOD]
    methods = []
    for item_path, method in checker.string_list(path, value):
        if method not in known:
            upper = method.upper()
            hint = f"write {upper!r}" if upper in known else f"use one of {', '.join(known)}"
            checker.error(item_path, f"{method!r} is not an HTTP method label; {hint}")
            continue
        methods.append(method)
    return _unique(checker, path, methods)


def _unique(checker: _Checker, path: Path_, items: list[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for item in items:
        if item in seen:
            checker.error(path, f"{item!r} is listed twice; list it once")
        else:
            seen.append(item)
    return tuple(seen)


def _bucket_label(bucket: float) -> Decimal:
    return Decimal(repr(bucket))


def _threshold(checker: _Checker, path: Path_, value: Any) -> Decimal | None:
    threshold = _number(checker, path, value, "0.5 (seconds)")
    if threshold is None:
        return None
    boundaries = [_bucket_label(bucket) for bucket in DEFAULT_DURATION_BUCKETS]
    if threshold in boundaries:
        return boundaries[boundaries.index(threshold)]
    below = [b for b in boundaries if b < threshold]
    above = [b for b in boundaries if b > threshold]
    if below and above:
        hint = f"use {below[-1]} or {above[0]} (the nearest boundaries below and above)"
    elif above:
        hint = f"use {above[0]} (the smallest boundary)"
    else:
        hint = f"use {below[-1]} (the largest boundary)"
    checker.error(
        path,
        f"{threshold} is not a bucket boundary of http_request_duration_seconds; {hint}",
    )
    return None


def _sli(checker: _Checker, path: Path_, value: Any) -> AvailabilitySLI | LatencySLI | None:
    if not isinstance(value, dict):
        checker.error(path, f"must be a mapping, got {_describe(value)}; {_REQUIRED_HINTS['sli']}")
        return None
    kind = value.get("kind")
    if "kind" not in value:
        checker.error((*path, "kind"), f"required; {_REQUIRED_HINTS['kind']}")
        return None
    if kind == "availability":
        sli_map = checker.mapping(path, value, _AVAILABILITY_FIELDS)
        if sli_map is None:
            return None
        regex = _status_regex(
            checker, (*path, "error_status_regex"), sli_map.get("error_status_regex")
        )
        routes = _routes(checker, (*path, "routes"), sli_map.get("routes"))
        methods = _methods(checker, (*path, "methods"), sli_map.get("methods"))
        return None if regex is None else AvailabilitySLI(regex, routes, methods)
    if kind == "latency":
        sli_map = checker.mapping(path, value, _LATENCY_FIELDS, required=("threshold_seconds",))
        if sli_map is None:
            return None
        threshold = (
            _threshold(checker, (*path, "threshold_seconds"), sli_map["threshold_seconds"])
            if "threshold_seconds" in sli_map
            else None
        )
        routes = _routes(checker, (*path, "routes"), sli_map.get("routes"))
        methods = _methods(checker, (*path, "methods"), sli_map.get("methods"))
        return None if threshold is None else LatencySLI(threshold, routes, methods)
    checker.error((*path, "kind"), f"{kind!r} is not an SLI kind; use availability or latency")
    return None


def _slo(checker: _Checker, path: Path_, value: Any) -> SLOSpec | None:
    slo_map = checker.mapping(path, value, _SLO_FIELDS, required=("name", "objective", "sli"))
    if slo_map is None:
        return None
    name = None
    if "name" in slo_map:
        name = checker.string(
            (*path, "name"),
            slo_map["name"],
            _SLO_NAME_RE,
            "is not a valid SLO name; use lower-case letters, digits and '-' "
            f"(at most 63 characters), e.g. {_slug(str(slo_map['name']))!r}",
        )
    objective = (
        _objective(checker, (*path, "objective"), slo_map["objective"])
        if "objective" in slo_map
        else None
    )
    window = _window(checker, (*path, "window"), slo_map.get("window"))
    description = ""
    if "description" in slo_map:
        description = checker.string((*path, "description"), slo_map["description"]) or ""
    sli = _sli(checker, (*path, "sli"), slo_map["sli"]) if "sli" in slo_map else None
    if name is None or objective is None or window is None or sli is None:
        return None
    return SLOSpec(name, objective, window, sli, description)


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", text) if part)


def alert_name_stem(service: str, slo_name: str) -> str:
    """The alert name prefix of one SLO: ``shop`` + ``availability`` -> ``ShopAvailability``."""
    return _camel(service) + _camel(slo_name)


def _slos(checker: _Checker, service: str | None, value: Any) -> tuple[SLOSpec, ...]:
    path: Path_ = ("slos",)
    if not isinstance(value, list) or not value:
        checker.error(
            path,
            "must be a non-empty list of SLOs; add at least one, e.g. "
            "'- {name: availability, objective: 99.9, sli: {kind: availability}}'",
        )
        return ()
    slos: list[SLOSpec] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(value):
        slo = _slo(checker, (*path, index), item)
        if slo is None:
            continue
        stem = alert_name_stem(service or "", slo.name)
        if slo.name in first_index or stem in first_index:
            earlier = first_index.get(slo.name, first_index.get(stem))
            checker.error(
                (*path, index, "name"),
                f"{slo.name!r} clashes with slos[{earlier}] (same name or same alert names); "
                "give each SLO a distinct name",
            )
            continue
        first_index[slo.name] = first_index[stem] = index
        slos.append(slo)
    return tuple(slos)


def _service_spec(checker: _Checker, value: Any) -> ServiceSpec | None:
    top = checker.mapping(
        (),
        value,
        _TOP_FIELDS,
        required=("apiVersion", "service", "runbook_base_url", "slos"),
        what=f"a mapping starting with 'apiVersion: {API_VERSION}'",
    )
    if top is None:
        return None
    if "apiVersion" in top and top["apiVersion"] != API_VERSION:
        checker.error(
            ("apiVersion",),
            f"{top['apiVersion']!r} is not supported; use {API_VERSION} "
            f"(or {OPENSLO_API_VERSION} for an OpenSLO SLO)",
        )
    if "kind" in top and top["kind"] != KIND:
        checker.error(("kind",), f"{top['kind']!r} is not supported; use {KIND} or leave it out")
    service = None
    if "service" in top:
        service = checker.string(
            ("service",),
            top["service"],
            _SERVICE_RE,
            "is not a valid service name; use lower-case letters, digits and '-', starting "
            f"with a letter (at most 63 characters), e.g. {_slug(str(top['service']))!r}",
        )
    namespace = ""
    if top.get("namespace") is not None:
        namespace = (
            checker.string(
                ("namespace",),
                top["namespace"],
                _SERVICE_RE,
                "is not a Kubernetes namespace name; use lower-case letters, digits and '-'",
            )
            or ""
        )
    selector = checker.string_map(
        ("selector",),
        top.get("selector"),
        lambda path, name: _label_name(checker, path, name, RESERVED_SELECTOR_LABELS),
    )
    metrics_namespace = ""
    if top.get("metrics_namespace"):
        metrics_namespace = (
            checker.string(
                ("metrics_namespace",),
                top["metrics_namespace"],
                _METRIC_PREFIX_RE,
                "is not a metric name prefix; use letters, digits and '_' as in the middleware's "
                "metrics_namespace setting",
            )
            or ""
        )
    labels = checker.string_map(
        ("labels",),
        top.get("labels"),
        lambda path, name: _label_name(checker, path, name, RESERVED_RULE_LABELS),
    )
    routing = {}
    for name, default in (("page_labels", "page"), ("ticket_labels", "ticket")):
        given = top.get(name)
        routing[name] = (
            {"severity": default}
            if given is None
            else checker.string_map(
                (name,),
                given,
                lambda path, key: _label_name(checker, path, key, RESERVED_RULE_LABELS),
            )
        )
    if routing["page_labels"] and routing["page_labels"] == routing["ticket_labels"]:
        checker.error(
            ("ticket_labels",),
            "equals page_labels; give tickets a different route, e.g. 'severity: ticket'",
        )
    min_requests = DEFAULT_PAGE_MIN_REQUESTS
    if "page_min_requests" in top:
        raw = top["page_min_requests"]
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            checker.error(
                ("page_min_requests",),
                f"must be a whole number of requests (0 turns the guard off), got {_describe(raw)}",
            )
        else:
            min_requests = raw
    manifest_labels = checker.string_map(
        ("manifest_labels",),
        top.get("manifest_labels"),
        lambda path, key: _k8s_label_key(checker, path, key),
        lambda path, text: _k8s_label_value(checker, path, text),
    )
    runbook = (
        _url(checker, ("runbook_base_url",), top["runbook_base_url"])
        if "runbook_base_url" in top
        else ""
    )
    grafana = _url(checker, ("grafana_url",), top["grafana_url"]) if top.get("grafana_url") else ""
    slos = _slos(checker, service, top["slos"]) if "slos" in top else ()
    if checker.issues or service is None:
        return None
    return ServiceSpec(
        service=service,
        slos=slos,
        selector=selector,
        metrics_namespace=metrics_namespace,
        labels=labels,
        runbook_base_url=runbook,
        grafana_url=grafana,
        page_labels=routing["page_labels"],
        ticket_labels=routing["ticket_labels"],
        manifest_labels=manifest_labels,
        namespace=namespace,
        page_min_requests=min_requests,
    )


def _by_line(issues: Sequence[SpecIssue]) -> list[SpecIssue]:
    return sorted(issues, key=lambda issue: issue.line or 0)


def _build(source: str, document: _Document) -> ServiceSpec:
    checker = _Checker(document.lines, document.aliases)
    spec = _service_spec(checker, document.value)
    if spec is None:
        if not checker.issues:  # pragma: no cover - every None path records an issue
            checker.error((), "the spec could not be read")
        raise SpecError(source, _by_line(checker.issues))
    return spec


def parse_spec(text: str, source: str = "<spec>") -> ServiceSpec:
    """The typed spec from YAML ``text``; :class:`SpecError` names ``source`` in each problem."""
    documents = _read_documents(text, source)
    if not documents:
        raise SpecError(
            source,
            [SpecIssue("", f"the file is empty; start it with 'apiVersion: {API_VERSION}'", 1)],
        )
    first = documents[0].value
    if isinstance(first, dict) and first.get("apiVersion") == OPENSLO_API_VERSION:
        return _build(source, _from_openslo(source, documents))
    if len(documents) > 1:
        raise SpecError(
            source,
            [
                SpecIssue(
                    "",
                    "holds several YAML documents; keep one spec per file",
                    documents[1].lines.get((), None),
                )
            ],
        )
    return _build(source, documents[0])


def load_spec(path: str | Path) -> ServiceSpec:
    """Read and check the spec file at ``path``; raises :class:`SpecError` on any problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(
            source, [SpecIssue("", f"cannot read the file: {error.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise SpecError(source, [SpecIssue("", "is not UTF-8 text; save it as UTF-8")]) from None
    return parse_spec(text, source)


# --------------------------------------------------------------------------- JSON Schema

_LABEL_MAP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
    "additionalProperties": {"type": "string"},
}


def _filters_schema() -> dict[str, Any]:
    return {
        "routes": {
            "type": "array",
            "items": {"type": "string", "pattern": "^(/|<)"},
            "uniqueItems": True,
            "description": "Only these route templates count (default: all routes).",
        },
        "methods": {
            "type": "array",
            "items": {"enum": [*sorted(STANDARD_METHODS), OTHER_METHOD]},
            "uniqueItems": True,
            "description": "Only these HTTP methods count (default: all methods).",
        },
    }


def spec_json_schema() -> dict[str, Any]:
    """A JSON Schema (Draft 7) of the ouro-obs spec, for editors; the loader checks more."""
    boundaries = [float(_bucket_label(bucket)) for bucket in DEFAULT_DURATION_BUCKETS]
    availability = {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind"],
        "properties": {
            "kind": {"const": "availability"},
            "error_status_regex": {
                "type": "string",
                "default": "5..",
                "description": "Statuses that count as errors (a Prometheus regex).",
            },
            **_filters_schema(),
        },
    }
    latency = {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "threshold_seconds"],
        "properties": {
            "kind": {"const": "latency"},
            "threshold_seconds": {
                "enum": boundaries,
                "description": "Requests slower than this are errors; a histogram bucket boundary.",
            },
            **_filters_schema(),
        },
    }
    slo = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "objective", "sli"],
        "properties": {
            "name": {"type": "string", "pattern": f"^{_SLO_NAME_RE.pattern}$"},
            "description": {"type": "string"},
            "objective": {
                "type": "number",
                "minimum": float(MIN_OBJECTIVE_HINT),
                "exclusiveMaximum": 100,
                "description": "Percent of good events, e.g. 99.9.",
            },
            "window": {
                "type": "string",
                "pattern": f"^{_WINDOW_RE.pattern}$",
                "default": "30d",
                "description": "Rolling window in whole days, e.g. 30d.",
            },
            "sli": {"oneOf": [availability, latency]},
        },
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://ouro-obs.dev/schemas/slo-spec-v1.json",
        "title": "ouro-obs SLO spec",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "service", "runbook_base_url", "slos"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": KIND},
            "service": {"type": "string", "pattern": f"^{_SERVICE_RE.pattern}$"},
            "namespace": {"type": "string", "pattern": f"^{_SERVICE_RE.pattern}$"},
            "selector": {
                **_LABEL_MAP_SCHEMA,
                "description": "Label matchers for the service's series (default job=<service>).",
            },
            "metrics_namespace": {"type": "string"},
            "labels": {**_LABEL_MAP_SCHEMA, "description": "Labels on every alert."},
            "runbook_base_url": {"type": "string", "pattern": "^https?://"},
            "grafana_url": {"type": "string", "pattern": "^https?://"},
            "page_labels": {**_LABEL_MAP_SCHEMA, "default": {"severity": "page"}},
            "ticket_labels": {**_LABEL_MAP_SCHEMA, "default": {"severity": "ticket"}},
            "page_min_requests": {
                "type": "integer",
                "minimum": 0,
                "default": DEFAULT_PAGE_MIN_REQUESTS,
                "description": "Low-traffic guard: requests a page needs in its long window.",
            },
            "manifest_labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "slos": {"type": "array", "minItems": 1, "items": slo},
        },
    }


# --------------------------------------------------------------------------- OpenSLO v1


_SELECTOR_RE = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*")
_MATCHER_RE = re.compile(
    r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)'
)
#: Where ouro-obs settings that OpenSLO has no field for live on an imported SLO.
OPENSLO_ANNOTATIONS = {
    "ouro-obs.dev/runbook-base-url": "runbook_base_url",
    "ouro-obs.dev/grafana-url": "grafana_url",
    "ouro-obs.dev/namespace": "namespace",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _OpenSLOError(Exception):
    def __init__(self, path: Path_, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


def _matchers(query: str, path: Path_) -> tuple[str, list[tuple[str, str, str]]]:
    """``metric{a="b",...}`` -> (metric, [(label, op, value)]): the only queries mapped."""
    match = _SELECTOR_RE.fullmatch(query)
    if match is None:
        raise _OpenSLOError(
            path,
            f"{query.strip()!r} is not a plain series selector; ouro-obs maps queries like "
            "'http_requests_total{job=\"shop\"}' (it adds rate() itself)",
        )
    metric, body = match.group(1), (match.group(2) or "").strip()
    found: list[tuple[str, str, str]] = []
    while body:
        item = _MATCHER_RE.match(body)
        if item is None:
            raise _OpenSLOError(path, f"cannot read the label matchers {{{body}}}")
        value = re.sub(r"\\(.)", r"\1", item.group(3))
        found.append((item.group(1), item.group(2), value))
        body = body[item.end() :]
    return metric, found


def _alternatives(regex: str) -> list[str]:
    """``/a|/b\\{id\\}`` -> ``["/a", "/b{id}"]``: a regex matcher of literal alternatives."""
    return [re.sub(r"\\(.)", r"\1", part) for part in re.split(r"(?<!\\)\|", regex)]


def _query(source: Any, path: Path_) -> str:
    metric_source = source.get("metricSource") if isinstance(source, dict) else None
    spec = metric_source.get("spec") if isinstance(metric_source, dict) else None
    kind = metric_source.get("type") if isinstance(metric_source, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
        raise _OpenSLOError(path, "needs metricSource.spec.query with a Prometheus selector")
    if str(kind).lower() != "prometheus":
        raise _OpenSLOError(
            (*path, "metricSource", "type"), f"{kind!r} is not supported; use Prometheus"
        )
    query: str = spec["query"]
    return query


def _sli_from_ratio(ratio: Any, path: Path_) -> dict[str, Any]:
    """An ouro-obs SLI from an OpenSLO ``ratioMetric`` over the middleware's metrics."""
    if not isinstance(ratio, dict) or "total" not in ratio:
        raise _OpenSLOError(path, "needs a ratioMetric with total and good or bad")
    if ratio.get("counter") is False:
        raise _OpenSLOError((*path, "counter"), "must be true: the metrics are counters")
    part = "good" if "good" in ratio else "bad"
    if part not in ratio:
        raise _OpenSLOError(path, "needs good or bad beside total")
    total_metric, total = _matchers(_query(ratio["total"], (*path, "total")), (*path, "total"))
    metric, matchers = _matchers(_query(ratio[part], (*path, part)), (*path, part))
    extra = [m for m in matchers if m not in total]
    sli: dict[str, Any]
    if total_metric.endswith("http_requests_total") and metric == total_metric:
        operator = "!~" if part == "good" else "=~"
        if len(extra) != 1 or extra[0][:2] != ("status", operator):
            raise _OpenSLOError(
                (*path, part),
                f'must be the total selector plus status{operator}"<regex>" '
                f'(e.g. status{operator}"5..")',
            )
        sli = {"kind": "availability", "error_status_regex": extra[0][2]}
        namespace = total_metric.removesuffix("http_requests_total")
    elif (
        part == "good"
        and total_metric.endswith("http_request_duration_seconds_count")
        and metric == total_metric.removesuffix("_count") + "_bucket"
        and len(extra) == 1
        and extra[0][:2] == ("le", "=")
    ):
        try:
            threshold = Decimal(extra[0][2])
        except InvalidOperation:
            raise _OpenSLOError((*path, part), f"le={extra[0][2]!r} is not a number") from None
        sli = {"kind": "latency", "threshold_seconds": threshold}
        namespace = total_metric.removesuffix("http_request_duration_seconds_count")
    else:
        raise _OpenSLOError(
            path,
            "maps only the ouro-obs metrics: http_requests_total with a status matcher "
            "(availability), or http_request_duration_seconds_bucket{le=...} over _count "
            "(latency)",
        )
    selector: dict[str, str] = {}
    for label, operator, value in total:
        if label in {"route", "method"}:
            sli[f"{label}s"] = [value] if operator == "=" else _alternatives(value)
            if operator not in {"=", "=~"}:
                raise _OpenSLOError(
                    (*path, "total"), f"{label}{operator} cannot be mapped; use = or =~"
                )
        elif operator == "=":
            selector[label] = value
        else:
            raise _OpenSLOError((*path, "total"), f"{label}{operator} cannot be mapped; use =")
    sli["_selector"] = selector
    sli["_namespace"] = namespace.removesuffix("_")
    return sli


def _openslo_window(spec: dict[str, Any]) -> str:
    windows = spec.get("timeWindow")
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        raise _OpenSLOError(("spec", "timeWindow"), "needs exactly one rolling window, e.g. 30d")
    window = windows[0]
    if window.get("isRolling") is not True:
        raise _OpenSLOError(
            ("spec", "timeWindow", 0, "isRolling"),
            "must be true: calendar windows are not supported",
        )
    duration = str(window.get("duration", ""))
    weeks = re.fullmatch(r"([1-9][0-9]*)w", duration)
    return f"{int(weeks.group(1)) * 7}d" if weeks else duration


def _openslo_objective(spec: dict[str, Any]) -> Any:
    objectives = spec.get("objectives")
    if (
        not isinstance(objectives, list)
        or len(objectives) != 1
        or not isinstance(objectives[0], dict)
    ):
        raise _OpenSLOError(("spec", "objectives"), "needs exactly one objective with a target")
    objective = objectives[0]
    if "targetPercent" in objective:
        return objective["targetPercent"]
    target = objective.get("target")
    if isinstance(target, int | Decimal) and not isinstance(target, bool):
        return (Decimal(target) * 100).normalize()
    raise _OpenSLOError(("spec", "objectives", 0, "target"), "needs a target like 0.999")


def _openslo_indicator(spec: dict[str, Any], indicators: Mapping[str, Any]) -> tuple[Any, Path_]:
    if "indicator" in spec:
        indicator = spec["indicator"]
        return (indicator.get("spec") if isinstance(indicator, dict) else None), (
            "spec",
            "indicator",
            "spec",
        )
    name = spec.get("indicatorRef")
    if not isinstance(name, str) or name not in indicators:
        raise _OpenSLOError(
            ("spec", "indicatorRef"), f"{name!r} names no SLI document in this file"
        )
    return indicators[name], ("spec",)


def _openslo_slo(document: Any, indicators: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if not isinstance(document, dict) or not isinstance(document.get("spec"), dict):
        raise _OpenSLOError((), "an OpenSLO SLO needs metadata and spec")
    metadata = _dict(document.get("metadata"))
    spec = document["spec"]
    if spec.get("budgetingMethod", "Occurrences") != "Occurrences":
        raise _OpenSLOError(("spec", "budgetingMethod"), "only Occurrences is supported")
    indicator, indicator_path = _openslo_indicator(spec, indicators)
    ratio = indicator.get("ratioMetric") if isinstance(indicator, dict) else None
    sli = _sli_from_ratio(ratio, (*indicator_path, "ratioMetric"))
    slo = {
        "name": metadata.get("name"),
        "objective": _openslo_objective(spec),
        "window": _openslo_window(spec),
        "sli": sli,
    }
    if isinstance(spec.get("description"), str):
        slo["description"] = spec["description"]
    return slo, str(spec.get("service", ""))


def _from_openslo(source: str, documents: Sequence[_Document]) -> _Document:
    """An ouro-obs spec document from OpenSLO v1 ``SLO`` (and ``SLI``) documents."""
    indicators = {
        doc.value.get("metadata", {}).get("name"): doc.value.get("spec")
        for doc in documents
        if isinstance(doc.value, dict) and doc.value.get("kind") == "SLI"
    }
    native: dict[str, Any] = {"apiVersion": API_VERSION, "slos": []}
    lines: dict[Path_, int] = {(): 1}
    aliases: dict[Path_, str] = {}
    selectors: list[dict[str, str]] = []
    namespaces: list[str] = []
    for doc in documents:
        value = doc.value
        if not isinstance(value, dict) or value.get("kind") != "SLO":
            continue
        if value.get("apiVersion") != OPENSLO_API_VERSION:
            raise SpecError(
                source, [SpecIssue("apiVersion", f"use {OPENSLO_API_VERSION}", doc.lines.get(()))]
            )
        try:
            slo, service = _openslo_slo(value, indicators)
        except _OpenSLOError as error:
            issue = SpecIssue(
                format_path(error.path), error.message, _nearest(doc.lines, error.path)
            )
            raise SpecError(source, [issue]) from None
        index = len(native["slos"])
        selectors.append(slo["sli"].pop("_selector"))
        namespaces.append(slo["sli"].pop("_namespace"))
        native["slos"].append(slo)
        native.setdefault("service", service)
        lines[("service",)] = _nearest(doc.lines, ("spec", "service"))
        slo_path: Path_ = ("slos", index)
        for field_name, openslo_path in (
            ("name", ("metadata", "name")),
            ("objective", ("spec", "objectives", 0)),
            ("window", ("spec", "timeWindow", 0, "duration")),
            ("sli", ("spec", "indicator")),
        ):
            lines[(*slo_path, field_name)] = _nearest(doc.lines, openslo_path)
            aliases[(*slo_path, field_name)] = format_path(openslo_path)
        lines[slo_path] = doc.lines.get((), 1)
        metadata = _dict(value.get("metadata"))
        annotations = _dict(metadata.get("annotations"))
        for key, target in OPENSLO_ANNOTATIONS.items():
            if key in annotations:
                native.setdefault(target, annotations[key])
                lines[(target,)] = _nearest(doc.lines, ("metadata", "annotations", key))
                aliases[(target,)] = f"metadata.annotations.{key}"
        for key, label in _dict(metadata.get("labels")).items():
            text = label[0] if isinstance(label, list) and len(label) == 1 else label
            native.setdefault("labels", {})[key] = text
    if not native["slos"]:
        raise SpecError(source, [SpecIssue("kind", "holds no OpenSLO SLO document", 1)])
    for found, name in ((selectors, "selector"), (namespaces, "metrics_namespace")):
        if any(item != found[0] for item in found):
            raise SpecError(
                source, [SpecIssue("", f"every SLO must select the same series ({name})", 1)]
            )
    if selectors[0] and selectors[0] != {"job": native.get("service")}:
        native["selector"] = selectors[0]
    if namespaces[0]:
        native["metrics_namespace"] = namespaces[0]
    if "runbook_base_url" not in native:
        raise SpecError(
            source,
            [
                SpecIssue(
                    "metadata.annotations",
                    "add 'ouro-obs.dev/runbook-base-url: https://...' to the SLO: "
                    "every generated alert links to its runbook",
                    _nearest(documents[0].lines, ("metadata",)),
                )
            ],
        )
    aliases[("service",)] = "spec.service"
    return _Document(native, lines, aliases)


def _nearest(lines: Mapping[Path_, int], path: Path_) -> int:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return 1
