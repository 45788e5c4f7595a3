#!/usr/bin/env bash
# The main job: set up, then run the whole loop (example service, generated rules and
# dashboards, real Prometheus, OTLP collector, Locust traffic) and print a summary.
# Options pass through: ./scripts/demo.sh --duration 60 --error-rate 0.2
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/ouro-obs demo "$@"
