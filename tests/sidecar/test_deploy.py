"""deploy/sidecar: nginx with the ouro-obs sidecar, rendered by ``kubectl kustomize``.

Built-in kinds are validated with kubernetes-validate in strict mode, the ServiceMonitor
with the vendored Prometheus Operator CRD schema; the tests then check that the pieces
point at each other (Service -> sidecar port -> nginx port) and follow the security
practices of the rest of deploy/.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from ouro_obs.asgi.routes import OpenAPIRouteResolver
from ouro_obs.cli import parse_args
from ouro_obs.demo.lifecycle import ManagedProcess, free_port
from ouro_obs.sidecar.cli import config_from_args
from tests.deploy.manifests import kustomize
from tests.sidecar.servers import running_sidecar, wait_for_sample
from tests.support.tools import REPO_ROOT, require_tool, schema_path

SIDECAR_DIR = REPO_ROOT / "deploy" / "sidecar"
KUBERNETES_VERSION = "1.35"
CRD_SCHEMAS = {
    "ServiceMonitor": "crds/servicemonitor_v1.json",
    "PodMonitor": "crds/podmonitor_v1.json",
}

Manifest = dict[str, Any]


@cache
def rendered() -> tuple[Manifest, ...]:
    return tuple(kustomize(SIDECAR_DIR))


@pytest.fixture
def objects() -> tuple[Manifest, ...]:
    return rendered()


def one(objects: tuple[Manifest, ...], kind: str) -> Manifest:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def containers(objects: tuple[Manifest, ...]) -> dict[str, Manifest]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    return {container["name"]: container for container in pod["containers"]}


def schema_errors(manifest: Manifest) -> list[str]:
    crd = CRD_SCHEMAS.get(manifest["kind"])
    if crd is not None:
        schema = json.loads(schema_path(crd).read_text())
        return [error.message for error in jsonschema.Draft7Validator(schema).iter_errors(manifest)]
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"]
    return []


def test_every_object_validates_strictly(objects: tuple[Manifest, ...]) -> None:
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    errors = {f"{obj['kind']}/{obj['metadata']['name']}": schema_errors(obj) for obj in objects}
    assert {name: found for name, found in errors.items() if found} == {}


def test_the_service_sends_requests_to_the_sidecar_and_scrapes_its_metrics_port(
    objects: tuple[Manifest, ...],
) -> None:
    ports = {port["name"]: port["targetPort"] for port in one(objects, "Service")["spec"]["ports"]}
    sidecar_ports = {port["name"] for port in containers(objects)["ouro-obs"]["ports"]}
    app_ports = {port["name"] for port in containers(objects)["catalog"]["ports"]}
    assert set(ports.values()) <= sidecar_ports
    assert app_ports.isdisjoint(ports.values())
    endpoint = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")


def test_the_network_policy_admits_no_traffic_around_the_sidecar(
    objects: tuple[Manifest, ...],
) -> None:
    rules = one(objects, "NetworkPolicy")["spec"]["ingress"]
    allowed = {port["port"] for rule in rules for port in rule["ports"]}
    assert allowed == {"http", "metrics"}


def sidecar_args(objects: tuple[Manifest, ...]) -> Any:
    command = containers(objects)["ouro-obs"]["command"]
    assert command[:2] == ["ouro-obs", "sidecar"]
    return parse_args(command[1:])


def test_the_sidecar_command_parses_and_points_at_the_apps_port(
    objects: tuple[Manifest, ...],
) -> None:
    config = config_from_args(sidecar_args(objects))
    app_port = containers(objects)["catalog"]["ports"][0]["containerPort"]
    sidecar_ports = {
        port["name"]: port["containerPort"] for port in containers(objects)["ouro-obs"]["ports"]
    }
    assert config.upstream == f"http://127.0.0.1:{app_port}"
    assert (config.port, config.metrics_port) == (sidecar_ports["http"], sidecar_ports["metrics"])
    nginx_conf = (SIDECAR_DIR / "nginx.conf").read_text()
    assert f"listen {app_port};" in nginx_conf
    assert f"location = {config.health_path} " in nginx_conf


def test_the_openapi_document_is_mounted_where_the_sidecar_reads_it(
    objects: tuple[Manifest, ...], tmp_path: Path
) -> None:
    args = sidecar_args(objects)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in containers(objects)["ouro-obs"]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (volume_name,) = [name for name, path in mounts.items() if args.openapi.startswith(path + "/")]
    config_map_name = volumes[volume_name]["configMap"]["name"]
    config_map = next(
        obj
        for obj in objects
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == config_map_name
    )
    document = tmp_path / os.path.basename(args.openapi)
    document.write_text(config_map["data"][document.name])
    resolver = OpenAPIRouteResolver.from_openapi_file(document)
    assert resolver.match("/products/42") == "/products/{product_id}"


def test_every_container_is_locked_down_sized_and_probed(objects: tuple[Manifest, ...]) -> None:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for name, container in containers(objects).items():
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] > 10000, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert set(container["resources"]) == {"requests", "limits"}, name
        assert {"readinessProbe", "livenessProbe"} <= set(container), name


def test_nginx_outlives_the_sidecars_drain_on_termination(objects: tuple[Manifest, ...]) -> None:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    config = config_from_args(sidecar_args(objects))
    sidecar_stop = containers(objects)["ouro-obs"]["lifecycle"]["preStop"]["sleep"]["seconds"]
    app_stop = containers(objects)["catalog"]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sidecar_stop + config.drain_timeout <= app_stop
    assert app_stop < pod["terminationGracePeriodSeconds"]


@pytest.mark.integration
def test_checkov_finds_nothing_to_fix(objects: tuple[Manifest, ...], tmp_path: Path) -> None:
    checkov = require_tool("checkov")
    (tmp_path / "sidecar.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    result = subprocess.run(
        [checkov, "--directory", str(tmp_path), "--framework", "kubernetes", "--skip-download",
         "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
        env=dict(os.environ, BC_SKIP_MAPPING="TRUE", CKV_SKIP_PACKAGE_UPDATE_CHECK="TRUE"),
    )  # fmt: skip
    report = json.loads(result.stdout)
    results = report["results"]
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in results["failed_checks"]
    ]
    skipped = {check["check_id"] for check in results["skipped_checks"]}
    assert failed == []
    assert skipped == {"CKV_K8S_43"}
    assert report["summary"]["passed"] > 50


@pytest.mark.integration
def test_the_examples_nginx_and_openapi_work_behind_the_sidecar(
    objects: tuple[Manifest, ...], tmp_path: Path
) -> None:
    """The committed nginx.conf runs in the real nginx, and the sidecar labels its routes."""
    nginx = require_tool("nginx")
    port = free_port()
    args = sidecar_args(objects)
    conf = (SIDECAR_DIR / "nginx.conf").read_text()
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};").replace(
        "/tmp/", f"{tmp_path}/"
    )
    (tmp_path / "nginx.conf").write_text(conf)
    registry = CollectorRegistry()
    resolver = OpenAPIRouteResolver.from_openapi_file(SIDECAR_DIR / "openapi.json")
    app = ManagedProcess(
        argv=[nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
              "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        ready_url=f"http://127.0.0.1:{port}{args.health_path}",
        log_path=tmp_path / "nginx.out",
    )  # fmt: skip
    with (
        app,
        running_sidecar(
            f"http://127.0.0.1:{port}",
            registry,
            route_resolver=resolver,
            health_path=args.health_path,
        ) as sidecar,
    ):
        ready = httpx.get(sidecar.metrics_url + "/health/ready")
        product = httpx.get(sidecar.url + "/products/42")
        counted = wait_for_sample(
            registry,
            "http_requests_total",
            {"method": "GET", "route": "/products/{product_id}", "status": "200"},
        )
    assert ready.status_code == 200
    assert product.json() == {"id": 1, "name": "kettle"}
    assert counted == 1.0
