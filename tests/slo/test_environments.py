"""Environment scoping (issue 14 item 3): each environment counts only its own traffic.

One Prometheus scraping dev and prod used to sum both into one SLO: a dev load test full
of errors paged prod. With ``environments`` each gets its own rules (its selector added
to the service's), rule object names, dashboard uids and ``env`` label.
"""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ouro_obs.slo import conventions
from ouro_obs.slo.artifacts import generated_documents
from ouro_obs.slo.environments import output_files
from ouro_obs.slo.promql import labelled
from ouro_obs.slo.promtool_traffic import Traffic
from ouro_obs.slo.rules import AlertRule, rule_groups
from ouro_obs.slo.spec import ServiceSpec, SpecError, parse_spec, spec_json_schema
from ouro_obs.slo.spec.environments import scoped
from tests.slo.support import promtool
from tests.support.tools import require_tool

SPEC = """\
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
grafana_url: https://grafana.example.com
labels: {team: storefront}
environments:
  - {name: dev, selector: {namespace: shop-dev}, namespace: shop-dev}
  - {name: prod, selector: {namespace: shop, cluster: eu-1}, namespace: shop}
slos:
  - {name: availability, objective: 99.9, sli: {kind: availability}}
"""


def _spec() -> ServiceSpec:
    return parse_spec(SPEC)


def test_environments_load_with_their_selectors_and_namespaces() -> None:
    spec = _spec()
    assert [(e.name, dict(e.selector), e.namespace) for e in spec.environments] == [
        ("dev", {"namespace": "shop-dev"}, "shop-dev"),
        ("prod", {"namespace": "shop", "cluster": "eu-1"}, "shop"),
    ]


def test_a_scoped_spec_selects_only_its_environment_and_names_everything_its_own() -> None:
    prod = scoped(_spec(), "prod")
    assert prod.service == "shop-prod"
    assert prod.app_name == "shop"
    assert dict(prod.effective_selector) == {"job": "shop", "namespace": "shop", "cluster": "eu-1"}
    documents = generated_documents(prod)
    assert conventions.rule_file_path(prod) == "alerts/shop-prod.rules.yaml"
    rule = documents[conventions.PROMETHEUS_RULE_PATH]
    assert (rule["metadata"]["name"], rule["metadata"]["namespace"]) == ("shop-prod-slo", "shop")
    monitor = documents[conventions.SERVICE_MONITOR_PATH]
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "shop"}}
    uids = {documents[path]["uid"] for path in conventions.dashboard_paths(prod).values()}
    assert uids == {"shop-prod-overview", "shop-prod-slo"}
    raw_reads = 0
    for group in rule_groups(prod):
        assert group.name.startswith("shop-prod-")
        for rule_ in group.rules:
            assert rule_.labels["env"] == "prod"
            for matchers in re.findall(r"\b(?:http_[a-z_]+|up)\{([^}]*)\}", rule_.expr):
                assert 'job="shop",namespace="shop",cluster="eu-1"' in matchers
                raw_reads += 1
    assert raw_reads > 10


def test_without_an_environment_every_one_gets_its_own_output_set() -> None:
    files = output_files(_spec())
    for name in ("dev", "prod"):
        assert f"alerts/shop-{name}.rules.yaml" in files
        assert f"alerts/shop-{name}.rules.test.yaml" in files
        assert f"deploy/generated/{name}/prometheusrule.yaml" in files
        assert f"deploy/generated/{name}/grafana-dashboards.yaml" in files
        assert f"deploy/generated/{name}/alertmanager/alertmanagerconfig.yaml" in files
        assert f"dashboards/shop-{name}-slo.json" in files
    # Nothing of the spec as written, which would sum every environment's traffic.
    assert "alerts/shop.rules.yaml" not in files
    assert conventions.PROMETHEUS_RULE_PATH not in files
    dev = output_files(_spec(), "dev")
    assert set(dev) < set(files)
    assert all(files[path] == text for path, text in dev.items())
    assert not any("prod" in path for path in dev)


def test_what_every_environment_shares_is_generated_once_from_the_spec_as_written() -> None:
    """The ServiceMonitor and the canary AnalysisTemplate: the Kustomize base's and the
    Rollout components', so they stay environment-neutral."""
    files = output_files(_spec())
    unscoped = generated_documents(_spec())
    shared = {
        conventions.SERVICE_MONITOR_PATH,
        conventions.ANALYSIS_TEMPLATE_PATH,
        conventions.KUSTOMIZATION_PATH,
        conventions.ROLLOUT_KUSTOMIZATION_PATH,
    }
    assert shared <= set(files)
    monitor = yaml.safe_load(files[conventions.SERVICE_MONITOR_PATH])
    assert monitor == unscoped[conventions.SERVICE_MONITOR_PATH]
    assert yaml.safe_load(files[conventions.KUSTOMIZATION_PATH])["resources"] == [
        "servicemonitor.yaml"
    ]
    assert yaml.safe_load(files["deploy/generated/prod/kustomization.yaml"])["resources"] == [
        "grafana-dashboards.yaml",
        "prometheusrule.yaml",
    ]


def test_an_environment_cannot_take_the_name_of_a_shared_directory() -> None:
    with pytest.raises(SpecError, match=r"environments\[0\].name: 'rollout' names a directory"):
        parse_spec(SPEC.replace("name: dev,", "name: rollout,"))


@pytest.mark.parametrize(
    ("environments", "message"),
    [
        (
            "[{name: prod, selector: {namespace: a}}, {name: prod, selector: {namespace: b}}]",
            "environments[1].name: 'prod' is declared twice",
        ),
        ("[{name: Prod, selector: {namespace: a}}]", "environments[0].name: 'Prod' is not an"),
        ("[{name: prod, selector: {}}]", "environments[0].selector: is empty"),
        (
            "[{name: prod, selector: {job: other}}]",
            "environments[0].selector.job: the service's selector already sets job='shop'",
        ),
        ("[{name: prod}]", "environments[0].selector: required"),
        ("[]", "environments: must be a non-empty list"),
    ],
)
def test_a_bad_environment_is_refused_with_its_place(environments: str, message: str) -> None:
    text = (
        SPEC.split("environments:", maxsplit=1)[0]
        + f"environments: {environments}\n"
        + SPEC.split("namespace: shop}\n")[1]
    )
    with pytest.raises(SpecError) as raised:
        parse_spec(text)
    assert message in str(raised.value)


def test_env_is_reserved_for_the_environment() -> None:
    with pytest.raises(SpecError, match="'env' is set by ouro-obs"):
        parse_spec(SPEC.replace("labels: {team: storefront}", "labels: {env: prod}"))


def test_generate_writes_one_environment_or_every_one(tmp_path: Path) -> None:
    spec_path = tmp_path / "slo.yaml"
    spec_path.write_text(SPEC)

    def generate(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ouro_obs", "generate", str(spec_path), *extra]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    one = generate("-o", str(tmp_path / "one"), "--environment", "prod")
    assert one.returncode == 0, one.stderr
    assert (tmp_path / "one/alerts/shop-prod.rules.yaml").is_file()
    every = generate("-o", str(tmp_path / "every"))
    assert every.returncode == 0, every.stderr
    assert (tmp_path / "every/deploy/generated/dev/prometheusrule.yaml").is_file()
    assert (tmp_path / "every/alerts/shop-dev.rules.yaml").is_file()
    unknown = generate("-o", str(tmp_path / "none"), "--environment", "qa")
    assert unknown.returncode == 2
    assert "no environment 'qa' (declared: dev, prod)" in unknown.stderr
    assert not (tmp_path / "none").exists()


def _series(spec: ServiceSpec, bad_ratio: Decimal, steps: int) -> list[dict[str, str]]:
    traffic = Traffic(spec, spec.slos[0])
    traffic.add(steps, Decimal(1000), bad_ratio)
    return traffic.series()


@pytest.mark.integration
def test_a_failing_dev_never_burns_prod_and_prod_pages_on_its_own_errors(tmp_path: Path) -> None:
    binary = require_tool("promtool")
    base = _spec()
    dev, prod = scoped(base, "dev"), scoped(base, "prod")
    files = output_files(base, "prod")
    rules = tmp_path / conventions.rule_file_path(prod)
    rules.parent.mkdir(parents=True)
    rules.write_text(files[conventions.rule_file_path(prod)])
    page = conventions.alert_names(prod, prod.slos[0]).page
    ratio = labelled("slo:sli_error:ratio_rate1h", conventions.slo_labels(prod, prod.slos[0]))
    tests: list[dict[str, Any]] = [
        {
            "name": "dev fails completely, prod is clean: prod's ratio is 0, no page",
            "interval": "1m",
            "input_series": _series(dev, Decimal(1), 120) + _series(prod, Decimal(0), 120),
            "alert_rule_test": [{"eval_time": "2h", "alertname": page, "exp_alerts": []}],
            "promql_expr_test": [
                {
                    "expr": f"{ratio} == 0",
                    "eval_time": "2h",
                    "exp_samples": [
                        {"labels": _record_series(prod, "slo:sli_error:ratio_rate1h"), "value": 0}
                    ],
                }
            ],
        },
        {
            "name": "prod fails completely: prod pages with env=prod",
            "interval": "1m",
            "input_series": _series(dev, Decimal(0), 120) + _series(prod, Decimal(1), 120),
            "promql_expr_test": [
                {
                    "expr": f'ALERTS{{alertname="{page}",alertstate="firing",env="prod"}} == 1',
                    "eval_time": "2h",
                    "exp_samples": [{"labels": _alerts_series(prod, page), "value": 1}],
                }
            ],
        },
    ]
    test_file = rules.parent / "environments.test.yaml"
    document = {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}
    test_file.write_text(yaml.safe_dump(document, sort_keys=False))
    run = promtool(binary, "test", test_file)
    assert run.returncode == 0, f"{run.command}:\n{run.output}"


def _record_series(spec: ServiceSpec, record: str) -> str:
    # prod selects cluster="eu-1", so its recordings keep that label (a first-class one).
    labels = {**conventions.record_labels(spec, spec.slos[0]), **_cluster(spec)}
    return labelled(record, dict(sorted(labels.items())))


def _cluster(spec: ServiceSpec) -> dict[str, str]:
    return (
        {"cluster": spec.effective_selector["cluster"]}
        if "cluster" in spec.effective_selector
        else {}
    )


def _alerts_series(spec: ServiceSpec, alert: str) -> str:
    rule = next(
        r for r in rule_groups(spec)[0].rules if isinstance(r, AlertRule) and r.alert == alert
    )
    labels = {"alertname": alert, "alertstate": "firing", **rule.labels, **_cluster(spec)}
    return labelled("ALERTS", dict(sorted(labels.items())))


def test_the_json_schema_knows_environments() -> None:
    schema = spec_json_schema()
    jsonschema.validate(yaml.safe_load(SPEC), schema)
    broken = yaml.safe_load(SPEC)
    del broken["environments"][0]["selector"]
    with pytest.raises(jsonschema.ValidationError, match="'selector' is a required property"):
        jsonschema.validate(broken, schema)
