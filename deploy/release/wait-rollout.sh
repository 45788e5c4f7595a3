#!/usr/bin/env bash
# Wait until Argo Rollouts has rolled out the spec last applied to one Rollout.
#
#   deploy/release/wait-rollout.sh NAMESPACE NAME [TIMEOUT_SECONDS]
#
# Exit status: 0 when the Rollout is Healthy at its current generation; 1 when it is
# Degraded (a failed analysis or progress deadline: Argo Rollouts has already gone back
# to the stable version); 2 on bad arguments; 3 when the time runs out first (a pause
# that waits for a person, pods that never become ready); 4 when kubectl cannot read the
# Rollout. A status written for an older generation is never taken for the new one's.
set -euo pipefail

[[ $# -ge 2 && $# -le 3 ]] || {
  echo "usage: $0 NAMESPACE NAME [TIMEOUT_SECONDS]" >&2
  exit 2
}
namespace=$1 name=$2 timeout=${3:-900}
interval=${WAIT_ROLLOUT_INTERVAL:-10}
deadline=$((SECONDS + timeout))

while :; do
  if ! rollout=$(kubectl --namespace "$namespace" get rollout "$name" --output json); then
    echo "rollout/$name in $namespace: kubectl cannot read it (see above)" >&2
    exit 4
  fi
  state=$(jq -r '
    [ (.metadata.generation | tostring),
      (.status.observedGeneration // "" | tostring),
      (.status.phase // ""),
      (.status.message // "") ] | join("\u001f")' <<<"$rollout")
  # A separator that is not white space, so an empty field stays a field.
  IFS=$'\x1f' read -r generation observed phase message <<<"$state"
  if [[ $observed == "$generation" ]]; then
    case $phase in
      Healthy)
        echo "rollout/$name in $namespace is healthy (generation $generation)"
        exit 0
        ;;
      Degraded)
        echo "rollout/$name in $namespace is degraded: $message" >&2
        exit 1
        ;;
    esac
  fi
  if ((SECONDS >= deadline)); then
    echo "rollout/$name in $namespace: still ${phase:-unknown} after ${timeout}s" \
      "(generation $generation, observed ${observed:-none}): $message" >&2
    exit 3
  fi
  echo "rollout/$name: ${phase:-unknown} (generation $generation, observed ${observed:-none})"
  sleep "$interval"
done
