"""``ouro-obs demo``: the whole loop on one machine, started and stopped in one command.

The package ships everything the demo runs: the example shop and its SLO spec
(``ouro_obs.demo.shop``, the same files as ``examples/shop`` in the repository), the
processes it starts (:mod:`ouro_obs.demo.processes`), an OTLP receiver
(:mod:`ouro_obs.demo.receiver`), the webhook its Alertmanager delivers to
(:mod:`ouro_obs.demo.webhook`, read back by :mod:`ouro_obs.demo.alerting`), and the run
itself (:mod:`ouro_obs.demo.run`).

Importing this package imports nothing: the shop's workers import ``ouro_obs.demo.shop``
and must not load the generator with it.
"""

from __future__ import annotations

__all__: list[str] = []
