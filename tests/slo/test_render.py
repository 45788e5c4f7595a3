"""Rendering is deterministic; writing is all-or-nothing for each file and leaves no debris."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ouro_obs.slo.render import (
    HEADER,
    document_data,
    render_document,
    render_json,
    render_yaml,
    write_files,
)
from ouro_obs.slo.rules import AlertRule, RecordingRule, RuleGroup
from ouro_obs.slo.windows import Window


def test_yaml_keeps_key_order_writes_multiline_promql_as_blocks_and_never_wraps() -> None:
    long_line = (
        "sum(rate(http_requests_total{" + ",".join(f'l{i}="v"' for i in range(40)) + "}[5m]))"
    )
    document = {"zeta": 1, "alpha": {"expr": "a\n/\nb", "long": long_line}}
    text = render_yaml(document)
    assert text.startswith(HEADER)
    assert text.index("zeta") < text.index("alpha")
    assert "expr: |-\n    a\n    /\n    b\n" in text
    assert f"long: {long_line}\n" in text
    assert yaml.safe_load(text) == document


def test_lists_are_indented_under_their_key() -> None:
    assert render_yaml({"resources": ["a.yaml"]}, header=False) == "resources:\n  - a.yaml\n"


def test_json_is_indented_with_a_final_newline_and_no_header() -> None:
    assert render_json({"b": 1, "a": [1]}) == '{\n  "b": 1,\n  "a": [\n    1\n  ]\n}\n'


def test_the_file_name_chooses_the_format() -> None:
    assert render_document("x.json", {"a": 1}).startswith("{")
    assert render_document("x.yaml", {"a": 1}).startswith(HEADER)
    with pytest.raises(ValueError, match=r"only \.json, \.yaml and \.yml"):
        render_document("x.txt", {"a": 1})


def test_files_are_written_under_new_directories(tmp_path: Path) -> None:
    written = write_files(tmp_path, {"a/b/c.yaml": "c\n", "d.json": "{}\n"})
    assert written == [tmp_path / "a/b/c.yaml", tmp_path / "d.json"]
    assert (tmp_path / "a/b/c.yaml").read_text() == "c\n"
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_write_changes_no_target_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "first.yaml").write_text("old first\n")
    (tmp_path / "blocked").write_text("a file where a directory is needed\n")
    with pytest.raises(FileExistsError):
        write_files(tmp_path, {"first.yaml": "new first\n", "blocked/second.yaml": "second\n"})
    assert (tmp_path / "first.yaml").read_text() == "old first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "first.yaml"]


def test_unencodable_text_fails_before_any_target_changes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_files(tmp_path, {"a.yaml": "new\n", "b.yaml": "\udcff lone surrogate\n"})
    assert (tmp_path / "a.yaml").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]


def test_typed_rules_render_as_prometheus_rule_file_entries() -> None:
    recording = RecordingRule("slo:objective:ratio", "vector(0.999)", {"service": "shop"})
    alert = AlertRule("ShopDown", "up == 0", {"severity": "page"}, {"summary": "s"}, Window(5))
    group = RuleGroup("shop", (recording, alert), interval=Window(1))
    assert document_data({"groups": [group]}) == {
        "groups": [
            {
                "name": "shop",
                "interval": "1m",
                "rules": [
                    {
                        "record": "slo:objective:ratio",
                        "expr": "vector(0.999)",
                        "labels": {"service": "shop"},
                    },
                    {
                        "alert": "ShopDown",
                        "expr": "up == 0",
                        "for": "5m",
                        "labels": {"severity": "page"},
                        "annotations": {"summary": "s"},
                    },
                ],
            }
        ]
    }
    text = render_yaml({"groups": (RuleGroup("g", (alert,)),)}, header=False)
    assert text.startswith("groups:\n  - name: g\n    rules:\n      - alert: ShopDown\n")
    assert "for: 5m\n" in text
