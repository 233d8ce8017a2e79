#!/usr/bin/env bash
# Checks `jetsim run --timeline` in a real browser: builds jetsim, writes the timeline of a
# failing seed, loads it in headless Chromium, checks its script drew the lanes and marks
# and raised no error, and takes a screenshot.
#
#   scripts/timeline-screenshot.sh [OUT.png]      (default: docs/timeline.png)
#
# Environment: CHROMIUM (default /usr/bin/chromium); SEED, SABOTAGE, STEPS pick the run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/timeline.png}
chromium=${CHROMIUM:-/usr/bin/chromium}
seed=${SEED:-67}
sabotage=${SABOTAGE:-engine:checkpoint-before-write-back}
steps=${STEPS:-}
[ -x "$chromium" ] || { echo "error: no Chromium at $chromium (Debian: apt-get install chromium)" >&2; exit 2; }

cargo build --release -q -p jetsim
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
html="$work/timeline.html"
args=(run --seed "$seed" --sabotage "$sabotage" --timeline "$html")
[ -n "$steps" ] && args+=(--steps "$steps")
"$target/release/jetsim" "${args[@]}" >"$work/run.txt" || true
grep -q "^timeline written to" "$work/run.txt" || { cat "$work/run.txt" >&2; echo "error: no timeline written" >&2; exit 1; }

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --user-data-dir="$work/profile" --virtual-time-budget=5000)

# The DOM after the script ran: it sets data-status="ok" and the counts it drew on <body>.
"$chromium" "${flags[@]}" --dump-dom "file://$html" 2>"$work/chromium.log" >"$work/dom.html"
body=$(grep -o '<body[^>]*>' "$work/dom.html" | head -1)
echo "rendered: $body"
case "$body" in
  *'data-status="ok"'*) ;;
  *) grep -o '<div id="error"[^<]*' "$work/dom.html" >&2 || true
     echo "error: the page's script did not finish (see above)" >&2; exit 1 ;;
esac
for attr in data-lanes data-marks data-spans data-steps; do
  n=$(sed -n "s/.*$attr=\"\([0-9]*\)\".*/\1/p" <<<"$body")
  [ "${n:-0}" -gt 0 ] || { echo "error: the page drew no $attr" >&2; exit 1; }
done
if grep -q '<div id="error">' "$work/dom.html"; then
  echo "error: the page shows an error" >&2; exit 1
fi
grep -q 'id="violation">' "$work/dom.html" || { echo "error: no violation panel shown" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
"$chromium" "${flags[@]}" --hide-scrollbars --window-size=1600,900 --screenshot="$out" "file://$html" 2>>"$work/chromium.log" >/dev/null
[ -s "$out" ] || { echo "error: no screenshot" >&2; exit 1; }
echo "screenshot: $out ($(wc -c <"$out") bytes)"
