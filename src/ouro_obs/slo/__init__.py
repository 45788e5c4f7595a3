"""The SLO generator: spec -> typed model -> rules, tests, dashboards, manifests -> files.

:mod:`.spec` loads and checks the spec; :mod:`.rules`, :mod:`.promtool`,
:mod:`.dashboards` and :mod:`.manifests` are pure generators; :mod:`.artifacts` assembles
the file set and :mod:`.render` is the only code that writes files. Names come from
:mod:`.conventions`, PromQL from :mod:`.promql`; from the runtime side only the metric
contract (:mod:`ouro_obs.contract`) is read.
"""

from __future__ import annotations

__all__: list[str] = []
