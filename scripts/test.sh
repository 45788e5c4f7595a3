#!/usr/bin/env bash
# Run every check: ruff, mypy --strict, then the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PWD/.tools-venv/bin:$PATH"
ruff check .
ruff format --check .
mypy
pytest "$@"
