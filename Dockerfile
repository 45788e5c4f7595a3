# syntax=docker/dockerfile:1
# The example service `shop` (examples/shop) running on ouro-obs from this repository.
# Build from the repository root:  docker build -t shop:dev .
# Run:  docker run --rm -p 8000:8000 -p 9464:9464 -e OURO_OBS_METRICS_PORT=9464 shop:dev

# Both stages use the same base, so the venv built in the first runs unchanged in the second.
FROM python:3.12-slim-trixie AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Third-party dependencies get a layer of their own, keyed only on pyproject.toml, so a
# commit that changes code alone reuses it. The list is read from pyproject.toml rather
# than repeated here, so the image cannot drift from the package's declared needs. The
# sidecar extra is included, so the same image also runs `ouro-obs sidecar`.
COPY pyproject.toml setup.py README.md ./
RUN python -c "import tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(project['dependencies'] + project['optional-dependencies']['sidecar']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt "fastapi>=0.110,<1" "uvicorn>=0.30,<1"
COPY src ./src
# The package ships the shop for `ouro-obs demo` (setup.py maps examples/shop into it).
COPY examples/shop ./examples/shop
RUN pip install --no-cache-dir --no-deps .

FROM python:3.12-slim-trixie AS runtime
LABEL org.opencontainers.image.title="shop" \
      org.opencontainers.image.description="ouro-obs example service" \
      org.opencontainers.image.licenses="Apache-2.0"
# A numeric user above 10000 never collides with a host account, and Kubernetes can
# verify runAsNonRoot against a number without reading /etc/passwd.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WEB_CONCURRENCY=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays owned by root: the service user can read it but never rewrite it.
COPY examples/shop ./examples/shop
USER 10001:10001
EXPOSE 8000 9464
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
# Workers come from WEB_CONCURRENCY (uvicorn reads it); trusted proxies from
# FORWARDED_ALLOW_IPS. Keep-alive outlives the ingress controller's upstream idle
# timeout (60 s in ingress-nginx), so the proxy never reuses a connection uvicorn closed.
# uvicorn's own access log is off: the middleware writes one structured line per request.
# ouro_obs.metrics.multiprocess first empties PROMETHEUS_MULTIPROC_DIR: an emptyDir outlives a
# container restart, and a dead process's files would otherwise still be summed.
ENTRYPOINT ["python", "-m", "ouro_obs.metrics.multiprocess", "uvicorn", "shop.app:app", "--app-dir", "examples", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--timeout-keep-alive", "65", "--timeout-graceful-shutdown", "20", "--no-access-log", "--no-server-header"]
