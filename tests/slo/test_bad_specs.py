"""Bad specs: each gets the exact message naming the file, line, field path and fix.

The command exits 2 and writes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ouro_obs.slo.spec import SpecError, load_spec

VALID_HEAD = """\
apiVersion: ouro-obs/v1
service: shop
runbook_base_url: https://runbooks.example.com/shop
slos:
"""

CASES = [
    pytest.param(
        VALID_HEAD + "  - name: latency\n    objective: 99\n"
        "    sli:\n      kind: latency\n      threshold_seconds: 0.3\n",
        "spec.yaml:9: slos[0].sli.threshold_seconds: 0.3 is not a bucket boundary of "
        "http_request_duration_seconds; use 0.25 or 0.5 (the nearest boundaries below and above)",
        id="threshold-between-buckets",
    ),
    pytest.param(
        VALID_HEAD
        + "  - {name: slow, objective: 99, sli: {kind: latency, threshold_seconds: 30}}\n",
        "spec.yaml:5: slos[0].sli.threshold_seconds: 30 is not a bucket boundary of "
        "http_request_duration_seconds; use 10.0 (the largest boundary)",
        id="threshold-above-every-bucket",
    ),
    pytest.param(
        VALID_HEAD + "  - name: availability\n    objetive: 99.9\n    sli: {kind: availability}\n",
        "spec.yaml:5: slos[0].objective: required; add the target in percent, e.g. "
        "'objective: 99.9'\n"
        "spec.yaml:6: slos[0].objetive: unknown field; did you mean 'objective'? known fields: "
        "name, description, objective, window, sli, alerting, group_by, max_groups",
        id="misspelt-field",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 90, sli: {kind: availability}}\n",
        "spec.yaml:5: slos[0].objective: 90 leaves an error budget of 10 %, and the fast-burn "
        "page would need 144 % errors; use an objective of at least 93.06",
        id="objective-too-low-for-burn-alerts",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 100, sli: {kind: availability}}\n",
        "spec.yaml:5: slos[0].objective: 100 is not a percentage below 100; write the target "
        "in percent, e.g. 99.9 (100 would leave no error budget)",
        id="objective-without-budget",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 99.9, window: 30, sli: {kind: availability}}\n",
        "spec.yaml:5: slos[0].window: 30 has no unit; write a number of days like 30d",
        id="window-without-unit",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 99.9, window: 4w, sli: {kind: availability}}\n",
        "spec.yaml:5: slos[0].window: '4w' is not a whole number of days; write it like 30d, "
        "28d or 7d",
        id="window-in-weeks",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 99.9, sli: {kind: errors}}\n",
        "spec.yaml:5: slos[0].sli.kind: 'errors' is not an SLI kind; use availability, "
        "latency, ratio or histogram",
        id="unknown-sli-kind",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 99.9, sli: {kind: availability, "
        "error_status_regex: '2..'}}\n",
        "spec.yaml:5: slos[0].sli.error_status_regex: '2..' counts 200 as an error; use a "
        "pattern like '5..'",
        id="status-regex-counting-success",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 99.9, sli: {kind: availability, methods: [get]}}\n",
        "spec.yaml:5: slos[0].sli.methods[0]: 'get' is not an HTTP method label; write 'GET'",
        id="lower-case-method",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 99.9, sli: {kind: availability, routes: [items]}}\n",
        "spec.yaml:5: slos[0].sli.routes[0]: 'items' is not a route template; write it as the "
        "app declares it, e.g. '/items/{item_id}'",
        id="route-without-slash",
    ),
    pytest.param(
        VALID_HEAD + "  - {name: a, objective: 99.9, sli: {kind: availability}}\n"
        "  - {name: a, objective: 99, sli: {kind: availability}}\n",
        "spec.yaml:6: slos[1].name: 'a' clashes with slos[0] (same name or same alert names); "
        "give each SLO a distinct name",
        id="duplicate-slo-name",
    ),
    pytest.param(
        "apiVersion: ouro-obs/v1\nservice: Shop_API\nrunbook_base_url: runbooks.example.com\n"
        "labels: {team: 3}\nslos: []\n",
        "spec.yaml:2: service: 'Shop_API' is not a valid service name; use lower-case letters, "
        "digits and '-', starting with a letter (at most 63 characters), e.g. 'shop-api'\n"
        "spec.yaml:3: runbook_base_url: 'runbooks.example.com' is not an http(s) URL; write it "
        "like https://example.com/path\n"
        "spec.yaml:4: labels.team: must be a string, got the number 3; quote the value\n"
        "spec.yaml:5: slos: must be a non-empty list of SLOs; add at least one, e.g. "
        "'- {name: availability, objective: 99.9, sli: {kind: availability}}'",
        id="several-problems-in-line-order",
    ),
    pytest.param(
        VALID_HEAD.replace("runbook_base_url: https://runbooks.example.com/shop\n", "")
        + "  - {name: a, objective: 99.9, sli: {kind: availability}}\n",
        "spec.yaml:1: runbook_base_url: required; add the URL of the service's runbook, e.g. "
        "'runbook_base_url: https://runbooks.example.com/shop'",
        id="missing-runbook",
    ),
    pytest.param(
        VALID_HEAD.replace("service: shop\n", "service: shop\nselector: {route: /x}\n")
        + "  - {name: a, objective: 99.9, sli: {kind: availability}}\n",
        "spec.yaml:3: selector.route: 'route' is set by ouro-obs; use another label name",
        id="selector-on-an-sli-label",
    ),
    pytest.param(
        VALID_HEAD.replace("service: shop\n", "service: shop\nmanifest_labels: {'a b': x}\n")
        + "  - {name: a, objective: 99.9, sli: {kind: availability}}\n",
        "spec.yaml:3: manifest_labels.a b: 'a b' is not a Kubernetes label key; use an optional "
        "DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', e.g. 'release'",
        id="bad-manifest-label",
    ),
    pytest.param(
        "apiVersion: ouro-obs/v1\nservice: shop\nservice: cart\n",
        "spec.yaml:3: service: duplicate key; keep one of them",
        id="duplicate-key",
    ),
    pytest.param(
        "apiVersion: ouro-obs/v1\nservice: [shop\n",
        "spec.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>'; fix the "
        "syntax there",
        id="broken-yaml",
    ),
    pytest.param(
        "",
        "spec.yaml:1: the file is empty; start it with 'apiVersion: ouro-obs/v1'",
        id="empty-file",
    ),
    pytest.param(
        "apiVersion: sloth.slok.dev/v1\nservice: shop\nrunbook_base_url: https://r.example.com\n"
        "slos: [{name: a, objective: 99.9, sli: {kind: availability}}]\n",
        "spec.yaml:1: apiVersion: 'sloth.slok.dev/v1' is not supported; use ouro-obs/v1 (or "
        "openslo/v1 for an OpenSLO SLO)",
        id="foreign-api-version",
    ),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_a_bad_spec_gets_the_exact_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert str(raised.value).replace(f"{path}:", "spec.yaml:") == message


def test_generate_exits_2_and_writes_nothing_for_a_bad_spec(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(VALID_HEAD + "  - {name: a, objective: 99.9, window: 30, sli: {kind: x}}\n")
    output = tmp_path / "out"
    finished = subprocess.run(
        [sys.executable, "-m", "ouro_obs", "generate", str(spec), "-o", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.splitlines() == [
        f"{spec}:5: slos[0].window: 30 has no unit; write a number of days like 30d",
        f"{spec}:5: slos[0].sli.kind: 'x' is not an SLI kind; use availability, latency, "
        "ratio or histogram",
        f"ouro-obs: {spec}: 2 problems in the spec; nothing was written",
    ]
    assert not output.exists()


def test_check_exits_2_for_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    finished = subprocess.run(
        [sys.executable, "-m", "ouro_obs", "check", str(missing)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 2
    assert f"{missing}: cannot read the file: No such file or directory" in finished.stderr
