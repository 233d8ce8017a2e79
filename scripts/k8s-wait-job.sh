#!/usr/bin/env bash
# Waits for a Kubernetes Job to end, Complete or Failed, and says which:
#   scripts/k8s-wait-job.sh jetsim-campaign [TIMEOUT_SECONDS]
# exits 0 when it completed, 1 when it failed (a shard's index failed: a failed seed, bad
# input, or retries used up), 2 on timeout (default 7200 s). `kubectl wait` takes one
# condition, so waiting on `complete` alone would hang until the timeout after a failure.
# KUBECTL is the client (default kubectl), POLL the seconds between looks (default 10).
set -euo pipefail
job="${1:?usage: k8s-wait-job.sh JOB [TIMEOUT_SECONDS]}"
timeout="${2:-7200}"
kubectl="${KUBECTL:-kubectl}"
deadline=$((SECONDS + timeout))
while :; do
  # The types of the Job's conditions that hold, one a line.
  held="$("$kubectl" get "job/$job" \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{"\n"}{end}')"
  if grep -qx Failed <<<"$held"; then
    echo "job/$job failed"
    exit 1
  fi
  if grep -qx Complete <<<"$held"; then
    echo "job/$job complete"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "job/$job still running after ${timeout}s" >&2
    exit 2
  fi
  sleep "${POLL:-10}"
done
