"""SLIs on any metric: ``kind: ratio`` over two counters, ``kind: histogram`` on any histogram.

The spec checks name the field and line of a bad selector or threshold; the rules select
the declared series (with the service's selector where the SLI leaves a label alone);
the generated promtool tests synthesise series from the selectors and prove every
alert (``test_promtool.py`` runs the golden ``any-sli``); a real Prometheus computes the
expected ratios from synthetic series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ouro_obs.slo import conventions, promql
from ouro_obs.slo.analysis import NOT_JUDGED_ANNOTATION, analysis_template
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.budget import Sample, slo_budgets
from ouro_obs.slo.budget import recordings_query as budget_query
from ouro_obs.slo.conventions import rule_file_path, rule_test_path
from ouro_obs.slo.dashboards.slo import slo_dashboard
from ouro_obs.slo.promql import Matcher
from ouro_obs.slo.promql_selector import SelectorError, SeriesSelector, parse_selector
from ouro_obs.slo.promtool_labels import accepts, escaping_labels, satisfying_labels
from ouro_obs.slo.rules import RecordingRule, alert_rules, rule_groups
from ouro_obs.slo.spec import (
    HistogramSLI,
    RatioSLI,
    ServiceSpec,
    SpecError,
    parse_spec,
    spec_json_schema,
)
from ouro_obs.slo.spec.environments import scoped
from tests.slo.backfill import Counter, backfilled_prometheus
from tests.slo.support import PromtoolRun, golden_input, golden_output, promtool
from tests.support.tools import require_tool

HEAD = """\
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
slos:
  - name: jobs
    objective: 99
    sli:
"""


def _spec(sli: str, head: str = HEAD) -> ServiceSpec:
    return parse_spec(head + "".join(f"      {line}\n" for line in sli.splitlines()), "spec.yaml")


def _problems(sli: str, head: str = HEAD) -> list[str]:
    with pytest.raises(SpecError) as raised:
        _spec(sli, head)
    return str(raised.value).splitlines()


def _golden_spec() -> ServiceSpec:
    return parse_spec(golden_input("any-sli").read_text(), "in-any-sli.yaml")


def _records(spec: ServiceSpec, slo_name: str, record: str) -> str:
    for group in rule_groups(spec):
        for rule in group.rules:
            recording = isinstance(rule, RecordingRule) and rule.record == record
            if recording and rule.labels.get("slo") == slo_name:
                return rule.expr
    raise AssertionError(f"no {record} for {slo_name}")


# --------------------------------------------------------------------------- selectors


def test_a_selector_reads_its_metric_and_every_kind_of_matcher() -> None:
    selector = parse_selector(
        """grpc_server_handled_total{grpc_code=~"OK|NotFound", a!='x', b!~`\\d+`, c="q\\"t",}"""
    )
    assert selector == SeriesSelector(
        "grpc_server_handled_total",
        (
            Matcher("grpc_code", "=~", "OK|NotFound"),
            Matcher("a", "!=", "x"),
            Matcher("b", "!~", "\\d+"),
            Matcher("c", "=", 'q"t'),
        ),
    )
    assert parse_selector(" queue_jobs_total ") == SeriesSelector("queue_jobs_total")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rate(queue_jobs_total[5m])", "rate( is a function; write the series only"),
        ("queue_jobs_total[5m]", "ouro-obs adds rate() and the ratio itself"),
        ('{__name__="queue_jobs_total"}', "name the metric before the braces"),
        ('queue_jobs_total{queue="mail"', "expected , or } after a matcher"),
        ('queue_jobs_total{queue=mail"}', 'expected a quoted value like "mail"'),
        ('queue_jobs_total{queue=~"(mail"}', "is not a valid regex"),
        ('queue_jobs_total{queue="mail"} / 2', "unexpected '/ 2'"),
    ],
)
def test_what_is_not_a_series_selector_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=None) as raised:
        parse_selector(text)
    assert message in str(raised.value)


# --------------------------------------------------------------------------- the spec


def test_a_ratio_sli_counts_errors_over_total_from_two_selectors() -> None:
    spec = _spec(
        "kind: ratio\n"
        'errors: queue_jobs_failed_total{queue="mail"}\n'
        'total: queue_jobs_total{queue="mail"}'
    )
    sli = spec.slos[0].sli
    assert isinstance(sli, RatioSLI)
    assert str(sli.errors) == 'queue_jobs_failed_total{queue="mail"}'
    assert str(sli.total) == 'queue_jobs_total{queue="mail"}'
    assert sli.good is None


def test_a_ratio_sli_may_count_good_events_instead() -> None:
    spec = _spec('kind: ratio\ngood: jobs_total{result="ok"}\ntotal: jobs_total')
    sli = spec.slos[0].sli
    assert isinstance(sli, RatioSLI)
    assert sli.good == SeriesSelector("jobs_total", (Matcher("result", "=", "ok"),))
    assert sli.errors is None


@pytest.mark.parametrize(
    ("sli", "expected"),
    [
        pytest.param(
            "kind: ratio\nerrors: jobs_failed_total\ntotal: rate(jobs_total[5m])",
            "spec.yaml:10: slos[0].sli.total: is not a series selector: rate( is a function; "
            "write the series only, ouro-obs adds rate() itself at character 5 of "
            "'rate(jobs_total[5m])'",
            id="function-in-total",
        ),
        pytest.param(
            "kind: ratio\ntotal: jobs_total",
            "spec.yaml:7: slos[0].sli.errors: needs errors (bad events) or good (good events) "
            "beside total; e.g. 'errors: queue_jobs_failed_total{queue=\"mail\"}' and "
            "'total: queue_jobs_total{queue=\"mail\"}'",
            id="neither-errors-nor-good",
        ),
        pytest.param(
            "kind: ratio\nerrors: a_total\ngood: b_total\ntotal: c_total",
            "spec.yaml:10: slos[0].sli.good: has both errors and good; keep one of them",
            id="both-errors-and-good",
        ),
        pytest.param(
            'kind: ratio\nerrors: jobs_total{queue="mail"}\ntotal: jobs_total{queue="mail"}',
            'spec.yaml:9: slos[0].sli.errors: jobs_total{queue="mail"} selects every series '
            'of total (jobs_total{queue="mail"}); add the matcher that tells bad events '
            "apart, e.g. a status or result label",
            id="errors-selects-all-of-total",
        ),
        pytest.param(
            'kind: ratio\nerrors: jobs_failed_total{queue="a",queue="b"}\ntotal: jobs_total',
            'spec.yaml:9: slos[0].sli.errors: no series can match {queue="a",queue="b"} '
            "(its matchers on one label contradict each other, or a regex accepts no value "
            "ouro-obs can make up for the generated tests); write matchers that some label "
            "value satisfies",
            id="contradicting-matchers",
        ),
        pytest.param(
            "kind: histogram\nmetric: grpc_server_handling_seconds\nthreshold: 0.3\n"
            "buckets: [0.1, 0.25, 0.5, 1]",
            "spec.yaml:10: slos[0].sli.threshold: 0.3 is not a bucket boundary of "
            "grpc_server_handling_seconds; use 0.25 or 0.5 (the nearest boundaries below "
            "and above)",
            id="threshold-between-declared-buckets",
        ),
        pytest.param(
            "kind: histogram\nmetric: shop_http_request_duration_seconds\nthreshold: 20",
            "spec.yaml:10: slos[0].sli.threshold: 20 is not a bucket boundary of "
            "shop_http_request_duration_seconds; use 10 (the largest boundary)",
            id="threshold-beyond-ouro-obs-default-buckets",
        ),
        pytest.param(
            "kind: histogram\nmetric: grpc_server_handling_seconds_count\nthreshold: 1",
            "spec.yaml:9: slos[0].sli.metric: 'grpc_server_handling_seconds_count' is one "
            "series of the histogram; name the family, 'grpc_server_handling_seconds'",
            id="histogram-series-instead-of-family",
        ),
        pytest.param(
            "kind: histogram\nmetric: rpc_seconds\nthreshold: 1\nselector: '{le=\"1\"}'",
            "spec.yaml:11: slos[0].sli.selector: matches le, which the generator sets from "
            "threshold; remove it",
            id="histogram-selector-with-le",
        ),
        pytest.param(
            "kind: histogram\nmetric: rpc_seconds\nthreshold: 1\nbuckets: [1, 0.5]",
            "spec.yaml:11: slos[0].sli.buckets[1]: 0.5 is not above 1; list them ascending",
            id="buckets-not-ascending",
        ),
    ],
)
def test_a_bad_sli_on_any_metric_gets_its_line_and_the_fix(sli: str, expected: str) -> None:
    assert _problems(sli) == [expected]


def test_a_histogram_threshold_is_a_declared_bucket_or_anything_when_none_are_known() -> None:
    declared = _spec("kind: histogram\nmetric: rpc_seconds_bucket\nthreshold: 1\nbuckets: [0.5, 1]")
    unknown = _spec("kind: histogram\nmetric: rpc_seconds\nthreshold: 0.3")
    own = _spec("kind: histogram\nmetric: http_request_duration_seconds\nthreshold: 0.25")
    assert declared.slos[0].sli == HistogramSLI(
        "rpc_seconds", Decimal(1), (), (Decimal("0.5"), Decimal(1))
    )
    assert isinstance(unknown.slos[0].sli, HistogramSLI)
    assert unknown.slos[0].sli.threshold == Decimal("0.3")
    assert isinstance(own.slos[0].sli, HistogramSLI)
    assert Decimal("0.25") in own.slos[0].sli.buckets


def test_an_sli_selector_may_not_match_a_label_the_environments_set() -> None:
    head = HEAD.replace(
        "slos:\n",
        "environments:\n  - {name: prod, selector: {namespace: shop}}\nslos:\n",
    )
    problems = _problems(
        'kind: ratio\nerrors: jobs_failed_total{namespace="x"}\ntotal: jobs_total', head
    )
    assert problems == [
        "spec.yaml:11: slos[0].sli.errors: matches namespace, which the environments' "
        "selectors set; remove the matcher, each environment adds its own"
    ]


def test_the_json_schema_accepts_the_new_kinds_and_refuses_a_ratio_without_events() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(spec_json_schema())
    valid = yaml.safe_load(golden_input("any-sli").read_text())
    assert list(validator.iter_errors(valid)) == []
    valid["slos"][0]["sli"].pop("errors")
    assert list(validator.iter_errors(valid)) != []


# --------------------------------------------------------------------------- the rules


def test_the_sli_selectors_keep_their_labels_and_get_the_service_selector_for_the_rest() -> None:
    spec = _golden_spec()
    mail = _records(spec, "mail-queue", "slo:sli_error:ratio_rate5m")
    calls = _records(spec, "cart-calls", "slo:sli_error:ratio_rate5m")
    assert 'queue_jobs_failed_total{job="shop-worker",queue="mail"}[5m]' in mail
    assert 'job="shop"' not in mail
    assert (
        'grpc_server_handled_total{job="shop",grpc_service="shop.Cart",'
        'grpc_code=~"OK|NotFound"}[5m]' in calls
    )


def test_a_histogram_sli_matches_the_bucket_as_python_and_go_clients_write_it() -> None:
    latency = _records(_golden_spec(), "cart-latency", "slo:sli_error:ratio_rate5m")
    assert 'le=~"1\\\\.0|1"' in latency
    assert promql.le_values(Decimal("0.25")) == ("0.25",)
    assert promql.le_values(Decimal(1)) == ("1.0", "1")


def test_each_sli_on_its_own_metrics_has_its_own_absent_alert_and_no_request_one() -> None:
    spec = _golden_spec()
    alerts = {rule.alert: rule for rule in alert_rules(spec)}
    assert conventions.service_alert_names(spec).metrics_absent not in alerts
    absent = alerts["ShopMailQueueMetricsAbsent"]
    assert absent.expr == 'absent(queue_jobs_total{job="shop-worker",queue="mail"})'
    assert absent.labels["slo"] == "mail-queue"
    assert absent.labels["urgency"] == "page"
    described = alerts["ShopCartCallsErrorBudgetBurnPage"].annotations["description"]
    assert "of shop events were not good (grpc_server_handled_total of " in described


def test_a_spec_mixing_request_and_own_metrics_keeps_the_request_absent_alert() -> None:
    spec = _spec(
        "kind: ratio\nerrors: jobs_failed_total\ntotal: jobs_total",
        HEAD.replace(
            "slos:\n", "slos:\n  - {name: api, objective: 99.9, sli: {kind: availability}}\n"
        ),
    )
    names = {rule.alert for rule in alert_rules(spec)}
    assert {"ShopMetricsAbsent", "ShopJobsMetricsAbsent"} <= names


def test_the_canary_analysis_leaves_out_an_sli_reading_another_job_and_says_why() -> None:
    template = analysis_template(_golden_spec())
    metrics = [metric["name"] for metric in template["spec"]["metrics"]]
    assert not any(name.startswith("mail-queue") for name in metrics)
    assert "cart-calls-burn-rate" in metrics
    assert "cart-latency-vs-stable" in metrics
    reason = template["metadata"]["annotations"][NOT_JUDGED_ANNOTATION]
    assert reason.startswith("mail-queue: its SLI selects job itself")
    query = next(m for m in template["spec"]["metrics"] if m["name"] == "cart-calls-burn-rate")[
        "provider"
    ]["prometheus"]["query"]
    assert 'grpc_service="shop.Cart",namespace="{{args.namespace}}"' in query


def _queries(panel: dict[str, Any]) -> list[str]:
    found = [target["expr"] for target in panel.get("targets", [])]
    return found + [q for child in panel.get("panels", []) for q in _queries(child)]


def test_the_slo_dashboard_reads_only_the_recordings_for_these_slis() -> None:
    dashboard = slo_dashboard(_golden_spec())
    titles = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert "SLO mail-queue: 99.5% good events of queue_jobs_total over 30d" in titles
    assert "SLO cart-latency: 99% of grpc_server_handling_seconds at or under 1 over 30d" in titles
    queries = [q for panel in dashboard["panels"] for q in _queries(panel)]
    assert queries
    assert all("slo:" in q or "ALERTS" in q for q in queries)


# --------------------------------------------------------------------------- test series


def test_label_values_are_made_up_to_satisfy_or_escape_the_matchers() -> None:
    status = [Matcher("code", "=~", "5..")]
    labels = satisfying_labels([Matcher("job", "=", "w"), *status, Matcher("x", "!=", "")])
    assert labels is not None
    assert labels["job"] == "w"
    assert all(accepts(m, labels.get(m.label, "")) for m in status)
    escaped = escaping_labels([Matcher("job", "=", "w")], status)
    assert escaped is not None
    assert escaped["job"] == "w"
    assert not accepts(status[0], escaped.get("code", ""))
    assert satisfying_labels([Matcher("a", "=", "1"), Matcher("a", "=", "2")]) is None


def _mutated_run(tmp_path: Path, old: str, new: str, fragment: str) -> PromtoolRun:
    """The golden any-sli tests named like ``fragment`` against rules with ``old`` -> ``new``."""
    binary = require_tool("promtool")
    spec = _golden_spec()
    rules = golden_output("any-sli") / rule_file_path(spec)
    text = rules.read_text()
    assert old in text
    (tmp_path / rules.name).write_text(text.replace(old, new))
    document = yaml.safe_load((golden_output("any-sli") / rule_test_path(spec)).read_text())
    document["tests"] = [t for t in document["tests"] if fragment in t["name"]]
    assert document["tests"]
    test_file = tmp_path / "subset.test.yaml"
    test_file.write_text(yaml.safe_dump(document, sort_keys=False))
    return promtool(binary, "test", test_file)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        pytest.param(
            'queue_jobs_failed_total{job="shop-worker",queue="mail"}',
            'queue_jobs_failed_total{job="shop-worker",queue="sms"}',
            "mail-queue: 100x burn",
            id="errors-of-another-queue",
        ),
        pytest.param(
            'grpc_code=~"OK|NotFound"',
            'grpc_code=~"NotFound"',
            "cart-calls: 0.9x burn",
            id="good-calls-narrowed",
        ),
        pytest.param('le=~"1\\\\.0|1"', 'le="0.5"', "cart-latency: 100x burn", id="other-bucket"),
    ],
)
def test_the_generated_tests_fail_when_the_rules_select_other_series(
    tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    broken = _mutated_run(tmp_path, old, new, fragment)
    assert broken.returncode != 0, f"{old} -> {new} went unnoticed:\n{broken.output}"
    assert "FAILED" in broken.output


# --------------------------------------------------------------------------- a real Prometheus

INSTANCE = {"instance": "10.0.0.1:9464"}
MAIL = {"job": "shop-worker", "queue": "mail", **INSTANCE}
CART = {"job": "shop", "grpc_service": "shop.Cart", **INSTANCE}
#: bad / total of each SLO in the counters below.
EXPECTED = {"mail-queue": 0.02, "cart-calls": 1 / 12, "cart-latency": 0.25}


def _synthetic_counters() -> list[Counter]:
    return [
        Counter("queue_jobs_total", MAIL, 10.0),
        Counter("queue_jobs_failed_total", MAIL, 0.2),
        # Another queue's failures: not the mail queue's SLI.
        Counter("queue_jobs_failed_total", {**MAIL, "queue": "sms"}, 5.0),
        Counter("grpc_server_handled_total", {**CART, "grpc_code": "OK"}, 9.0),
        Counter("grpc_server_handled_total", {**CART, "grpc_code": "NotFound"}, 2.0),
        Counter("grpc_server_handled_total", {**CART, "grpc_code": "Unavailable"}, 1.0),
        # The bucket as Go clients (and Prometheus 3) write it: le="1", not "1.0".
        Counter("grpc_server_handling_seconds_count", {**CART, "grpc_type": "unary"}, 4.0),
        Counter("grpc_server_handling_seconds_bucket", {**CART, "grpc_type": "unary", "le": "1"}, 3.0),
        Counter("grpc_server_handling_seconds_bucket", {**CART, "grpc_type": "unary", "le": "+Inf"}, 4.0),
        # Streams are outside the latency SLI: all of them slow.
        Counter("grpc_server_handling_seconds_count", {**CART, "grpc_type": "server_stream"}, 50.0),
        Counter("grpc_server_handling_seconds_bucket", {**CART, "grpc_type": "server_stream", "le": "1"}, 0.0),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, float]]:
    """``slo:sli_error:ratio_rate5m`` of each SLO, as a real Prometheus records it."""
    directory = tmp_path_factory.mktemp("any-sli-prometheus")
    spec = _golden_spec()
    rules: dict[str, Any] = yaml.safe_load(generated_files(spec)[rule_file_path(spec)])
    for group in rules["groups"]:
        group["interval"] = "1s"
    rule_file = directory / "shop.rules.yaml"
    rule_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    now = int(time.time())
    server = backfilled_prometheus(directory, _synthetic_counters(), now - 3600, now, [rule_file])
    with server as prometheus:
        found = prometheus.wait_for(
            f"count(slo:sli_error:ratio_rate5m) == {len(EXPECTED)}", timeout=60
        )
        assert found
        yield {
            sample["metric"]["slo"]: float(sample["value"][1])
            for sample in prometheus.query("slo:sli_error:ratio_rate5m")
        }


@pytest.mark.integration
@pytest.mark.parametrize("slo", sorted(EXPECTED))
def test_a_real_prometheus_records_the_expected_ratio(recorded: dict[str, float], slo: str) -> None:
    assert recorded[slo] == pytest.approx(EXPECTED[slo], rel=1e-9)


# --------------------------------------------------------------------------- OpenSLO

OPENSLO_SLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: {name}
  annotations:
    ouro-obs.dev/runbook-base-url: https://runbooks.example.com/shop
spec:
  service: shop
  indicator:
    metadata:
      name: {name}
    spec:
{indicator}
  timeWindow:
    - duration: 30d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.99
{objective}"""


def _source(query: str) -> str:
    return f"metricSource:\n  type: Prometheus\n  spec:\n    query: '{query}'"


def _indented(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines()).rstrip("\n")


def _openslo(name: str, indicator: str, objective: str = "") -> str:
    return OPENSLO_SLO.format(
        name=name, indicator=_indented(indicator, 6), objective=_indented(objective, 4)
    )


def _ratio_metric(part: str, query: str, total: str) -> str:
    return (
        f"ratioMetric:\n  counter: true\n  {part}:\n{_indented(_source(query), 4)}\n"
        f"  total:\n{_indented(_source(total), 4)}"
    )


def test_openslo_ratio_metrics_over_any_counters_become_ratio_slis() -> None:
    text = "---\n".join(
        [
            _openslo(
                "mail-queue",
                _ratio_metric(
                    "bad", 'queue_jobs_failed_total{queue="mail"}', 'queue_jobs_total{queue="mail"}'
                ),
            ),
            _openslo(
                "cart-calls",
                _ratio_metric(
                    "good", 'grpc_server_handled_total{grpc_code="OK"}', "grpc_server_handled_total"
                ),
            ),
        ]
    )
    spec = parse_spec(text, "openslo.yaml")
    mail, calls = (slo.sli for slo in spec.slos)
    assert mail == RatioSLI(
        total=parse_selector('queue_jobs_total{queue="mail"}'),
        errors=parse_selector('queue_jobs_failed_total{queue="mail"}'),
    )
    assert calls == RatioSLI(
        total=parse_selector("grpc_server_handled_total"),
        good=parse_selector('grpc_server_handled_total{grpc_code="OK"}'),
    )


def test_an_openslo_threshold_metric_over_buckets_becomes_a_histogram_sli() -> None:
    indicator = "thresholdMetric:\n" + _indented(
        _source('grpc_server_handling_seconds_bucket{grpc_service="cart"}'), 2
    )
    spec = parse_spec(_openslo("cart-latency", indicator, "  op: lte\n  value: 0.25"), "o.yaml")
    assert spec.slos[0].sli == HistogramSLI(
        "grpc_server_handling_seconds", Decimal("0.25"), (Matcher("grpc_service", "=", "cart"),)
    )
    assert spec.slos[0].objective == Decimal(99)


def test_an_openslo_threshold_other_than_lte_is_refused_at_its_line() -> None:
    indicator = "thresholdMetric:\n" + _indented(_source("rpc_seconds_bucket"), 2)
    with pytest.raises(SpecError) as raised:
        parse_spec(_openslo("rpc", indicator, "  op: gt\n  value: 0.25"), "o.yaml")
    assert str(raised.value) == (
        "o.yaml:24: spec.objectives[0].op: 'gt' cannot be mapped; use lte: a histogram "
        "bucket counts the observations at or under its boundary"
    )


def test_an_openslo_query_that_is_no_selector_is_refused_with_the_place_of_its_query() -> None:
    text = _openslo("mail-queue", _ratio_metric("bad", "sum(rate(x[5m]))", "queue_jobs_total"))
    with pytest.raises(SpecError) as raised:
        parse_spec(text, "o.yaml")
    message = str(raised.value)
    assert message.startswith("o.yaml:15: spec.indicator.spec.ratioMetric.bad: ")
    assert "is not a plain series selector" in message


def test_an_imported_ratio_selector_error_names_the_openslo_query() -> None:
    text = _openslo("mail-queue", _ratio_metric("bad", 'x_total{a="1",a="2"}', "queue_jobs_total"))
    with pytest.raises(SpecError) as raised:
        parse_spec(text, "o.yaml")
    assert str(raised.value).startswith(
        "o.yaml:19: spec.indicator.spec.ratioMetric.bad.metricSource.spec.query: no series"
    )


def test_an_environment_scopes_the_sli_selectors_too() -> None:
    head = HEAD.replace(
        "slos:\n", "environments:\n  - {name: prod, selector: {namespace: shop}}\nslos:\n"
    )
    spec = _spec(
        'kind: ratio\nerrors: jobs_failed_total{job="w"}\ntotal: jobs_total{job="w"}', head
    )
    prod = scoped(spec, "prod")
    ratio = _records(prod, "jobs", "slo:sli_error:ratio_rate5m")
    assert 'jobs_failed_total{namespace="shop",job="w"}[5m]' in ratio
    assert 'jobs_total{namespace="shop",job="w"}[5m]' in ratio


def test_the_release_gate_reads_these_slos_from_their_recordings_like_any_other() -> None:
    spec = _golden_spec()
    recordings = [
        Sample(
            {"__name__": conventions.BUDGET_REMAINING_RECORD, **conventions.slo_labels(spec, slo)},
            0.5 if slo.name != "cart-latency" else -0.1,
        )
        for slo in spec.slos
    ]
    verdicts = {b.slo.name: b.verdict for b in slo_budgets(spec, recordings, [])}
    assert verdicts == {"mail-queue": "ok", "cart-calls": "ok", "cart-latency": "budget spent"}
    assert conventions.BUDGET_REMAINING_RECORD in budget_query(spec)
