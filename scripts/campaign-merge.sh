#!/usr/bin/env bash
# Merges the shards' reports in $REPORTS (default reports) into $REPORTS/all.json and
# all.xml, as the campaign workflow's merge job does; exits as `jetsim merge` does (1 if a
# seed failed, a shard is missing or an expected mark fired in none; 2 on bad input, or no
# report at all). JETSIM is the binary (default target/release/jetsim).
set -euo pipefail
jetsim="${JETSIM:-target/release/jetsim}"
reports="${REPORTS:-reports}"
shopt -s nullglob
files=("$reports"/shard-*.json)
if [ ${#files[@]} -eq 0 ]; then
  echo "no shard reports in $reports: every shard died before writing one" >&2
  exit 2
fi
echo "+ $jetsim merge ${files[*]} --json $reports/all.json --junit $reports/all.xml"
exec "$jetsim" merge "${files[@]}" --json "$reports/all.json" --junit "$reports/all.xml"
