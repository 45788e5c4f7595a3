"""The JSON Schema (Draft 7) of the ouro-obs spec, for editors and CI linters.

It describes the same fields as :mod:`ouro_obs.slo.spec.validate`, from the same patterns
and limits; the validator checks more than a schema can say (a threshold must be a bucket
boundary, SLO names must give distinct alert names, ...).
"""

from __future__ import annotations

from typing import Any

from ouro_obs.slo.spec.environments import ENVIRONMENT_NAME_RE, SHARED_DIRECTORIES
from ouro_obs.slo.spec.grouping import grouping_schema
from ouro_obs.slo.spec.model import (
    API_VERSION,
    DEFAULT_ERROR_STATUS_REGEX,
    DEFAULT_PAGE_MIN_REQUESTS,
    DEFAULT_PAGE_SEVERITY,
    DEFAULT_TICKET_SEVERITY,
    DEFAULT_WINDOW_DAYS,
    KIND,
)
from ouro_obs.slo.spec.validate import SERVICE_NAME_RE
from ouro_obs.slo.spec.validate_alerting import (
    alertmanager_schema,
    service_alerting_schema,
    slo_alerting_schema,
)
from ouro_obs.slo.spec.validate_slos import (
    METHOD_VALUES,
    MIN_OBJECTIVE_HINT,
    SLO_NAME_RE,
    WINDOW_RE,
    duration_boundaries,
)

__all__ = ["spec_json_schema"]
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
            "items": {"enum": list(METHOD_VALUES)},
            "uniqueItems": True,
            "description": "Only these HTTP methods count (default: all methods).",
        },
    }


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


def _sli_schemas() -> list[dict[str, Any]]:
    availability = _object(
        ["kind"],
        {
            "kind": {"const": "availability"},
            "error_status_regex": {
                "type": "string",
                "default": DEFAULT_ERROR_STATUS_REGEX,
                "description": "Statuses that count as errors (a Prometheus regex).",
            },
            **_filters_schema(),
        },
    )
    latency = _object(
        ["kind", "threshold_seconds"],
        {
            "kind": {"const": "latency"},
            "threshold_seconds": {
                "enum": [float(boundary) for boundary in duration_boundaries()],
                "description": "Requests slower than this are errors; a histogram bucket boundary.",
            },
            **_filters_schema(),
        },
    )
    return [availability, latency, *_any_metric_sli_schemas()]


_SELECTOR_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{.*\})?\s*$",
}


def _any_metric_sli_schemas() -> list[dict[str, Any]]:
    """``kind: ratio`` (errors or good over total) and ``kind: histogram``."""
    counter = 'A PromQL series selector of a counter, e.g. queue_jobs_total{queue="mail"}.'
    ratio_properties = {
        "kind": {"const": "ratio"},
        "errors": {**_SELECTOR_SCHEMA, "description": f"The bad events. {counter}"},
        "good": {**_SELECTOR_SCHEMA, "description": f"The good events. {counter}"},
        "total": {**_SELECTOR_SCHEMA, "description": f"All the events. {counter}"},
    }
    ratio = {
        **_object(["kind", "total"], ratio_properties),
        "oneOf": [{"required": ["errors"]}, {"required": ["good"]}],
    }
    histogram = _object(
        ["kind", "metric", "threshold"],
        {
            "kind": {"const": "histogram"},
            "metric": {
                "type": "string",
                "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$",
                "description": "The histogram's name (its _bucket and _count series).",
            },
            "threshold": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "Observations above this bucket boundary (le) are bad.",
            },
            "selector": {
                "type": "string",
                "pattern": r"^\s*\{.*\}\s*$",
                "description": 'Label matchers narrowing the histogram, e.g. {grpc_service="cart"}.',
            },
            "buckets": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "number"},
                "description": "The histogram's bucket boundaries; the threshold must be one.",
            },
        },
    )
    return [ratio, histogram]


def _slo_schema() -> dict[str, Any]:
    return _object(
        ["name", "objective", "sli"],
        {
            "name": {"type": "string", "pattern": f"^{SLO_NAME_RE.pattern}$"},
            "description": {"type": "string"},
            "objective": {
                "type": "number",
                "minimum": float(MIN_OBJECTIVE_HINT),
                "exclusiveMaximum": 100,
                "description": "Percent of good events, e.g. 99.9.",
            },
            "window": {
                "type": "string",
                "pattern": f"^{WINDOW_RE.pattern}$",
                "default": f"{DEFAULT_WINDOW_DAYS}d",
                "description": "Rolling window in whole days, e.g. 30d.",
            },
            "sli": {"oneOf": _sli_schemas()},
            "alerting": slo_alerting_schema(),
            **grouping_schema(),
        },
    )


def _service_properties() -> dict[str, Any]:
    return {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": KIND},
        "service": {"type": "string", "pattern": f"^{SERVICE_NAME_RE.pattern}$"},
        "namespace": {"type": "string", "pattern": f"^{SERVICE_NAME_RE.pattern}$"},
        "selector": {
            **_LABEL_MAP_SCHEMA,
            "description": "Label matchers for the service's series (default job=<service>).",
        },
        "metrics_namespace": {"type": "string"},
        "metrics": _object(
            [],
            {
                "naming": {
                    "enum": ["prometheus", "opentelemetry"],
                    "default": "prometheus",
                    "description": "How the service's metrics are named: the middleware's "
                    "Prometheus backend, or its OpenTelemetry one (semantic-convention names "
                    "scraped through opentelemetry-exporter-prometheus).",
                }
            },
        ),
        "labels": {**_LABEL_MAP_SCHEMA, "description": "Labels on every alert."},
        "runbook_base_url": {"type": "string", "pattern": "^https?://"},
        "grafana_url": {"type": "string", "pattern": "^https?://"},
        "page_labels": {**_LABEL_MAP_SCHEMA, "default": {"severity": DEFAULT_PAGE_SEVERITY}},
        "ticket_labels": {**_LABEL_MAP_SCHEMA, "default": {"severity": DEFAULT_TICKET_SEVERITY}},
        "page_min_requests": {
            "type": "integer",
            "minimum": 0,
            "default": DEFAULT_PAGE_MIN_REQUESTS,
            "description": "Low-traffic guard: requests a page needs in its long window.",
        },
        "manifest_labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "alerting": service_alerting_schema(),
        "alertmanager": alertmanager_schema(),
        "environments": {"type": "array", "minItems": 1, "items": _environment_schema()},
        "slos": {"type": "array", "minItems": 1, "items": _slo_schema()},
    }


def _environment_schema() -> dict[str, Any]:
    return {
        **_object(
            ["name", "selector"],
            {
                "name": {
                    "type": "string",
                    "pattern": f"^{ENVIRONMENT_NAME_RE.pattern}$",
                    "not": {"enum": sorted(SHARED_DIRECTORIES)},
                },
                "selector": {
                    **_LABEL_MAP_SCHEMA,
                    "minProperties": 1,
                    "description": "Label matchers of this environment's series, added to "
                    "the service's selector.",
                },
                "namespace": {"type": "string", "pattern": f"^{SERVICE_NAME_RE.pattern}$"},
            },
        ),
        "description": "One deployment (prod, staging, ...) with its own rules and dashboards.",
    }


def spec_json_schema() -> dict[str, Any]:
    """A JSON Schema (Draft 7) of the ouro-obs spec, for editors; the loader checks more."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://ouro-obs.dev/schemas/slo-spec-v1.json",
        "title": "ouro-obs SLO spec",
        **_object(["apiVersion", "service", "runbook_base_url", "slos"], _service_properties()),
    }
