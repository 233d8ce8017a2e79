#!/usr/bin/env bash
# One shard of a simulator campaign, as the campaign workflow runs it:
#   JETSIM_SHARD=2/4 scripts/campaign-shard.sh shard-2
# writes $REPORTS/shard-2.json and .xml. The shard comes from the environment (JETSIM_SHARD,
# or JOB_COMPLETION_INDEX with JETSIM_SHARDS); JETSIM_SEEDS and JETSIM_DURATION size the
# campaign (with a duration, seeds is only an upper bound and may be empty); JETSIM_START is
# the first seed (empty: GITHUB_RUN_NUMBER x 10^9 in GitHub Actions, so every run tests new
# seeds and every shard of a run the same campaign; else 0); JETSIM is the binary (default
# target/release/jetsim), REPORTS the directory (default reports).
set -euo pipefail
name="${1:?usage: campaign-shard.sh NAME (writes \$REPORTS/NAME.json and NAME.xml)}"
jetsim="${JETSIM:-target/release/jetsim}"
reports="${REPORTS:-reports}"
mkdir -p "$reports"
start="${JETSIM_START:-}"
if [ -z "$start" ]; then start=$(( ${GITHUB_RUN_NUMBER:-0} * 1000000000 )); fi
args=(campaign --start "$start" --json "$reports/$name.json" --junit "$reports/$name.xml")
if [ -n "${JETSIM_DURATION:-}" ]; then
  args+=(--duration "$JETSIM_DURATION")
  if [ -n "${JETSIM_SEEDS:-}" ]; then args+=(--seeds "$JETSIM_SEEDS"); fi
else
  args+=(--seeds "${JETSIM_SEEDS:-20000}")
fi
echo "+ $jetsim ${args[*]}"
exec "$jetsim" "${args[@]}"
