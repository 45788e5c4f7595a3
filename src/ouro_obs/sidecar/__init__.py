"""The sidecar: the middleware as a reverse proxy in front of a service that is not Python.

``ouro-obs sidecar`` (:mod:`~ouro_obs.sidecar.cli`) runs it. One module per concern:

- :mod:`~ouro_obs.sidecar.server`: :class:`~ouro_obs.sidecar.server.Sidecar` assembles the
  proxy in the middleware, the admin port (the shared endpoints) and the two servers;
- :mod:`~ouro_obs.sidecar.proxy`: the proxy ASGI app and its upstream-error counter;
- :mod:`~ouro_obs.sidecar.headers`: what is sent upstream and relayed back;
- :mod:`~ouro_obs.sidecar.upstream` and :mod:`~ouro_obs.sidecar.connection`: the pooled
  h11 client.

Nothing is imported here, so the command's arguments load without uvicorn or the proxy.
"""

from __future__ import annotations

__all__: list[str] = []
