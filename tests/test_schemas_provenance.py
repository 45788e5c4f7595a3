"""The JSON Schemas under tests/schemas are the published files their README names."""

from __future__ import annotations

import hashlib
import re

from tests.support.tools import SCHEMAS_DIR

_ROW = re.compile(
    r"^\| (?P<file>(?:crds|grafana)/[\w.]+\.json) \| (?P<bytes>\d+) \| (?P<sha>[0-9a-f]{64}) \|"
)


def _table() -> dict[str, tuple[int, str]]:
    rows = {}
    for line in (SCHEMAS_DIR / "README.md").read_text().splitlines():
        match = _ROW.match(line)
        if match:
            rows[match["file"]] = (int(match["bytes"]), match["sha"])
    return rows


def test_every_committed_schema_has_a_provenance_row_with_its_size_and_sha256() -> None:
    table = _table()
    committed = sorted(str(path.relative_to(SCHEMAS_DIR)) for path in SCHEMAS_DIR.rglob("*.json"))
    assert committed == sorted(table), "a schema without a README row, or a row without a file"
    for relative, (size, sha256) in table.items():
        data = (SCHEMAS_DIR / relative).read_bytes()
        assert len(data) == size, relative
        assert hashlib.sha256(data).hexdigest() == sha256, relative
