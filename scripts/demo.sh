#!/usr/bin/env bash
# The main job: set up, then run the whole loop (example service, generated rules,
# dashboards and Alertmanager routes, real Prometheus and Alertmanager, OTLP collector,
# Locust traffic) and print a summary, the page Alertmanager delivered included.
# From the checkout, the bootstrap installs what the demo needs (Prometheus and
# Alertmanager too, as root); the installed `ouro-obs demo` never installs anything itself.
# Options pass through: ./scripts/demo.sh --duration 60 --error-rate 0.2
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/ouro-obs demo "$@"
