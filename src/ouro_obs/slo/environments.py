"""One output set per environment a spec declares (pure).

A spec without ``environments`` gives one set, written into the output directory. With
them, ``ouro-obs generate --environment NAME`` writes that environment's set there, and
without the option every environment's set goes to ``<output>/<environment>/``: each with
its own rule file, rule object names, dashboard uids and series (see
:func:`ouro_obs.slo.spec.environments.scoped`).
"""

from __future__ import annotations

from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.spec import ServiceSpec
from ouro_obs.slo.spec.environments import scoped

__all__ = ["output_files", "output_sets"]


def output_sets(spec: ServiceSpec, environment: str | None = None) -> list[tuple[str, ServiceSpec]]:
    """``(directory prefix, spec)`` of each output set; ``ValueError`` for an unknown name."""
    if environment is not None:
        return [("", scoped(spec, environment))]
    if not spec.environments:
        return [("", spec)]
    return [(f"{e.name}/", scoped(spec, e.name)) for e in spec.environments]


def output_files(spec: ServiceSpec, environment: str | None = None) -> dict[str, str]:
    """Relative path -> text of every file of every output set."""
    files: dict[str, str] = {}
    for prefix, one in output_sets(spec, environment):
        files.update((prefix + path, text) for path, text in generated_files(one).items())
    return files
