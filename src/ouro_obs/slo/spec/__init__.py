"""The versioned SLO spec: its typed model, the loader and the JSON Schema.

Generators only ever see the typed model. :func:`load_spec` reads a YAML file (an
ouro-obs spec, or OpenSLO v1 ``SLO`` documents with a ratio SLI), checks every field and
raises :class:`SpecError` listing each problem with the file, line, field path and the
fix; nothing is generated from a spec that has any problem.
"""

from __future__ import annotations

from pathlib import Path

from ouro_obs.slo.spec.errors import SpecError, SpecIssue
from ouro_obs.slo.spec.model import (
    API_VERSION,
    OPENSLO_API_VERSION,
    SLI,
    AvailabilitySLI,
    HistogramSLI,
    LatencySLI,
    MetricsSpec,
    RatioSLI,
    ServiceSpec,
    SLOSpec,
)
from ouro_obs.slo.spec.openslo import from_openslo
from ouro_obs.slo.spec.schema import spec_json_schema
from ouro_obs.slo.spec.validate import build_spec
from ouro_obs.slo.spec.yaml_lines import read_documents

__all__ = [
    "SLI",
    "AvailabilitySLI",
    "HistogramSLI",
    "LatencySLI",
    "MetricsSpec",
    "RatioSLI",
    "SLOSpec",
    "ServiceSpec",
    "SpecError",
    "SpecIssue",
    "load_spec",
    "parse_spec",
    "spec_json_schema",
]


def parse_spec(text: str, source: str = "<spec>") -> ServiceSpec:
    """The typed spec from YAML ``text``; :class:`SpecError` names ``source`` in each problem."""
    documents = read_documents(text, source)
    if not documents:
        raise SpecError(
            source,
            [SpecIssue("", f"the file is empty; start it with 'apiVersion: {API_VERSION}'", 1)],
        )
    first = documents[0].value
    if isinstance(first, dict) and first.get("apiVersion") == OPENSLO_API_VERSION:
        return build_spec(source, from_openslo(source, documents))
    if len(documents) > 1:
        message = "holds several YAML documents; keep one spec per file"
        raise SpecError(source, [SpecIssue("", message, documents[1].lines.get(()))])
    return build_spec(source, documents[0])


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
