"""The ASGI runtime: the middleware and the path of one request through it.

- :mod:`~ouro_obs.asgi.middleware`: :class:`ObservabilityMiddleware`, dispatch by scope
  type, the service endpoints, the lifespan;
- :mod:`~ouro_obs.asgi.pipeline`: what happens to an observed request, settled once;
- :mod:`~ouro_obs.asgi.exchange`: the per-request wrapper of ``receive`` and ``send``;
- :mod:`~ouro_obs.asgi.record`: the one record per finished request, and its status rules;
- :mod:`~ouro_obs.asgi.recorders`: the recorder protocol, the metrics recorder, the failsafe;
- :mod:`~ouro_obs.asgi.errors`: who answers an unhandled exception;
- :mod:`~ouro_obs.asgi.routes`: route templates (Starlette routing, OpenAPI documents);
- :mod:`~ouro_obs.asgi.request_id`: request ids;
- :mod:`~ouro_obs.asgi.endpoints`, :mod:`~ouro_obs.asgi.health`: ``/metrics`` and health.

Nothing is imported here, so that importing one module (the endpoints, for the sidecar's
admin port) does not load the rest.
"""

from __future__ import annotations

__all__: list[str] = []
