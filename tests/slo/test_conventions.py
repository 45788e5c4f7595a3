"""The names of everything generated, from one place."""

from __future__ import annotations

from ouro_obs.slo import conventions
from ouro_obs.slo.artifacts import generated_files
from ouro_obs.slo.spec import load_spec
from ouro_obs.slo.windows import Window
from tests.slo.support import EXAMPLE_SPEC


def test_recording_rules_are_named_level_metric_operations() -> None:
    assert conventions.sli_error_record(Window(60)) == "slo:sli_error:ratio_rate1h"
    assert conventions.burn_rate_record(Window(5)) == "slo:burn_rate:ratio_rate5m"
    for record in (
        conventions.OBJECTIVE_RECORD,
        conventions.ERROR_BUDGET_RECORD,
        conventions.BUDGET_REMAINING_RECORD,
    ):
        assert record.count(":") == 2


def test_alert_names_are_camel_case_service_and_slo_then_what_fires() -> None:
    assert conventions.alert_name_stem("my-shop", "p99_latency") == "MyShopP99Latency"
    spec = load_spec(EXAMPLE_SPEC)
    names = conventions.alert_names(spec, spec.slos[0])
    assert names.page.endswith("ErrorBudgetBurnPage")
    assert names.ticket.endswith("ErrorBudgetBurnTicket")
    service = conventions.service_alert_names(spec)
    assert (service.target_down, service.metrics_absent) == ("ShopTargetDown", "ShopMetricsAbsent")


def test_dashboard_uids_are_stable_slugs_of_at_most_forty_characters() -> None:
    assert conventions.dashboard_uid("shop", "slo") == "shop-slo"
    long_name = "a-very-long-service-name-that-goes-on-and-on"
    uid = conventions.dashboard_uid(long_name, "overview")
    assert len(uid) <= 40
    assert uid == conventions.dashboard_uid(long_name, "overview")
    assert uid != conventions.dashboard_uid(long_name + "-2", "overview")
    assert conventions.dashboard_url("shop", "slo", "https://g.example") == (
        "https://g.example/d/shop-slo"
    )


def test_every_generated_path_comes_from_the_conventions() -> None:
    spec = load_spec(EXAMPLE_SPEC)
    expected = {
        conventions.rule_file_path(spec),
        conventions.rule_test_path(spec),
        *conventions.dashboard_paths(spec).values(),
        conventions.PROMETHEUS_RULE_PATH,
        conventions.SERVICE_MONITOR_PATH,
        conventions.DASHBOARDS_CONFIGMAP_PATH,
        conventions.KUSTOMIZATION_PATH,
        conventions.ANALYSIS_TEMPLATE_PATH,
        conventions.ROLLOUT_KUSTOMIZATION_PATH,
        conventions.alertmanager_config_path(spec),
        conventions.ALERTMANAGER_CONFIG_CRD_PATH,
        conventions.ALERTMANAGER_KUSTOMIZATION_PATH,
    }
    assert set(generated_files(spec)) == expected
