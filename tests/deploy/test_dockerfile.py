"""The Dockerfile is hadolint-clean and builds the image the manifests expect.

No image is built here (no daemon, no registry); the ENTRYPOINT is run for real instead,
from a directory laid out as the image's /app, with the settings from the ConfigMap.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ouro_obs.demo.lifecycle import LOOPBACK, ManagedProcess, free_port, http_get
from tests.deploy.manifests import Manifest, container, find, pod_spec
from tests.support.tools import REPO_ROOT, require_tool

DOCKERFILE = REPO_ROOT / "Dockerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for entry in logical:
        keyword, _, arguments = entry.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


INSTRUCTIONS = _instructions(DOCKERFILE.read_text())


def _last(keyword: str) -> str:
    return [arguments for name, arguments in INSTRUCTIONS if name == keyword][-1]


def _entrypoint() -> list[str]:
    argv: list[str] = json.loads(_last("ENTRYPOINT"))
    return argv


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    hadolint = require_tool("hadolint")
    return subprocess.run(
        [hadolint, "--no-color", str(path)], capture_output=True, text=True, check=False, timeout=60
    )


def test_hadolint_finds_nothing() -> None:
    result = _hadolint(DOCKERFILE)
    assert (result.returncode, result.stdout) == (0, "")


def test_hadolint_flags_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install fastapi\nCMD uvicorn app:app\n")
    result = _hadolint(careless)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the :latest tag


def test_build_is_multi_stage_and_runtime_runs_as_a_numeric_non_root_user() -> None:
    stages = [arguments for name, arguments in INSTRUCTIONS if name == "FROM"]
    assert len(stages) == 2
    assert "COPY --from=build /opt/venv /opt/venv" in {
        f"COPY {a}" for n, a in INSTRUCTIONS if n == "COPY"
    }
    user, _, group = _last("USER").partition(":")
    assert user.isdigit()
    assert int(user) > 10000
    assert group.isdigit()


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    """Code-only changes must reuse the dependency layer."""
    order = [f"{name} {arguments}" for name, arguments in INSTRUCTIONS]
    install_dependencies = next(
        i for i, line in enumerate(order) if "requirements.txt" in line and line.startswith("RUN")
    )
    copy_source = order.index("COPY src ./src")
    copy_manifest = next(
        i for i, line in enumerate(order) if line.startswith("COPY pyproject.toml")
    )
    assert copy_manifest < install_dependencies < copy_source


def test_entrypoint_is_exec_form_uvicorn_on_the_http_port(
    renderings: dict[str, list[Manifest]],
) -> None:
    argv = _entrypoint()
    assert argv[:5] == ["python", "-m", "ouro_obs.metrics.multiprocess", "uvicorn", "shop.app:app"]
    assert _option(argv, "--app-dir") == "examples"
    assert "--proxy-headers" in argv
    http_port = int(_option(argv, "--port"))
    exposed = {int(port) for port in _last("EXPOSE").split()}
    for name in ("kustomize-prod", "helm-default"):
        ports = {p["name"]: p["containerPort"] for p in container(renderings[name])["ports"]}
        assert ports["http"] == http_port
        assert set(ports.values()) == exposed


def test_image_user_is_the_one_the_pods_run_as(renderings: dict[str, list[Manifest]]) -> None:
    user, _, group = _last("USER").partition(":")
    for name in ("kustomize-prod", "helm-default"):
        context = pod_spec(renderings[name])["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (int(user), int(group))


def _ignored_patterns() -> tuple[list[str], list[str]]:
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [line for line in lines if not line.startswith("!")], [
        line[1:] for line in lines if line.startswith("!")
    ]


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    excluded, included = _ignored_patterns()
    assert "*" in excluded  # an allow-list: nothing reaches the daemon unless named
    sources = []
    for name, arguments in INSTRUCTIONS:
        if name == "COPY" and not arguments.startswith("--from"):
            sources.extend(arguments.split()[:-1])
    for source in sources:
        assert any(source.rstrip("/") == entry.rstrip("/") for entry in included), source
        assert (REPO_ROOT / source).exists(), source
    assert {entry.rstrip("/") for entry in included} == {s.rstrip("/") for s in sources}


@pytest.mark.integration
def test_entrypoint_serves_health_and_metrics_with_the_configmap_settings(
    renderings: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    objects = renderings["kustomize-prod"]
    config_name = container(objects)["envFrom"][0]["configMapRef"]["name"]
    environment = dict(find(objects, "ConfigMap", config_name)["data"])
    app_dir = tmp_path / "app"
    # The image's WORKDIR /app holds examples/shop (COPY examples/shop ./examples/shop).
    shutil.copytree(REPO_ROOT / "examples" / "shop", app_dir / "examples" / "shop")
    http_port, metrics_port = free_port(), free_port()
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    environment.update(
        OURO_OBS_METRICS_PORT=str(metrics_port),
        OURO_OBS_METRICS_HOST=LOOPBACK,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        OTEL_TRACES_EXPORTER="none",
        WEB_CONCURRENCY="1",
    )
    argv = _entrypoint()
    argv[argv.index("--port") + 1] = str(http_port)
    argv[argv.index("--host") + 1] = LOOPBACK
    argv[0] = sys.executable
    argv[3] = str(Path(sys.executable).with_name("uvicorn"))
    (multiproc / "counter_1.db").write_bytes(b"\0" * 16)  # a previous container's file
    base = f"http://{LOOPBACK}:{http_port}"
    with ManagedProcess(argv, ready_url=f"{base}/health/live", env=environment, cwd=app_dir):
        assert http_get(f"{base}/health/ready")
        assert not (multiproc / "counter_1.db").exists(), "stale multiprocess files are cleared"
        http_get(f"{base}/items/1")
        # The middleware records a request just after its last byte is sent, so a scrape
        # may briefly precede it; like Prometheus, scrape again until it shows.
        served = re.compile(r'http_requests_total\{[^}]*route="/items/\{item_id\}"')
        deadline = time.monotonic() + 10
        metrics = ""
        while not served.search(metrics) and time.monotonic() < deadline:
            with contextlib.suppress(ConnectionError):
                metrics = http_get(f"http://{LOOPBACK}:{metrics_port}/metrics").decode()
            time.sleep(0.05)
        assert served.search(metrics), metrics[:2000]
        with pytest.raises(OSError, match="404"):
            http_get(f"{base}/metrics")
