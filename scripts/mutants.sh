#!/usr/bin/env bash
# Mutation testing of jetdb's durability path with cargo-mutants, the jetsim campaign as the
# test command. Configuration: .cargo/mutants.toml. Notes and results: mutants/README.md.
#
# usage: scripts/mutants.sh [--shard K/N] [--file engine/src/x.rs]... [--list]
#                           [--head | --rev REV] [--seeds N] [--out DIR]
#                           [-- <more cargo-mutants args>]
#
#   --shard K/N   run only part K of N (1-based, as jetsim's campaign shards; cargo-mutants
#                 itself counts from 0 and is given K-1/N). Shards are consecutive slices of
#                 the mutant list, so each runs its own build tree: run them one after the
#                 other, on different machines, or resume with `-- --iterate`.
#   --file PATH   mutate only this file (repeatable); must be one of those configured.
#   --list        list the mutants (per-file counts at the end) and stop.
#   --rev REV     mutate a commit, not the working tree: a scratch export of REV (git
#                 archive), with .cargo/mutants.toml and sim/tests/mutation_campaign.rs
#                 copied in from the working tree. For when someone is editing engine/ or
#                 sim/ meanwhile, and to pin the line numbers of a report to a commit.
#   --head        the same as --rev HEAD.
#   --seeds N     campaign seeds per mutant (default 1000, set in .cargo/mutants.toml; an
#                 exported JETSIM_MUTATION_SEEDS wins too).
#   --out DIR     results directory (default mutants.out/<files>[.shard-K-of-N]/, holding
#                 cargo-mutants' own mutants.out/: outcomes.json, caught.txt, missed.txt,
#                 timeout.txt, unviable.txt, log/).
#
# Everything runs under `nice -n 19` (NICE=0 to change it), one mutant at a time (the
# campaign test uses two threads).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
config="$root/.cargo/mutants.toml"
nice_level=${NICE:-19}

shard=""
files=()
list=0
rev=""
seeds=""
out=""
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --shard) shard=${2:?--shard K/N}; shift 2 ;;
        --shard=*) shard=${1#*=}; shift ;;
        --file|-f) files+=("${2:?--file PATH}"); shift 2 ;;
        --file=*) files+=("${1#*=}"); shift ;;
        --list) list=1; shift ;;
        --head) rev=HEAD; shift ;;
        --rev) rev=${2:?--rev REV}; shift 2 ;;
        --rev=*) rev=${1#*=}; shift ;;
        --seeds) seeds=${2:?--seeds N}; shift 2 ;;
        --seeds=*) seeds=${1#*=}; shift ;;
        --out|-o) out=${2:?--out DIR}; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "mutants.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done

if ! cargo mutants --version >/dev/null 2>&1; then
    echo "mutants.sh: installing cargo-mutants" >&2
    nice -n "$nice_level" cargo install cargo-mutants --locked
fi

args=(--no-shuffle)

# --file: a copy of the config whose examine_globs lists only these files. (cargo-mutants
# appends command-line --file globs to the config's, so --file alone would not narrow the
# run; and --re does not filter its struct-field mutants.)
tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT
label=all
if [[ ${#files[@]} -gt 0 ]]; then
    globs=""
    label=""
    for f in "${files[@]}"; do
        f=${f#./}
        if ! grep -qF "\"$f\"" "$config"; then
            echo "mutants.sh: $f is not in examine_globs of .cargo/mutants.toml" >&2
            exit 2
        fi
        globs+="\"$f\", "
        stem=$(basename "$f" .rs)
        label+="${label:++}$stem"
    done
    awk -v globs="examine_globs = [${globs%, }]" '
        /^examine_globs *= *\[/ { skip = 1; print globs }
        skip { if (/\]/) skip = 0; next }
        { print }
    ' "$config" >"$tmpdir/mutants.toml"
    config="$tmpdir/mutants.toml"
fi
args+=(--config "$config")
if [[ -n $seeds ]]; then
    # An [env] entry of cargo's config never overrides the environment.
    export JETSIM_MUTATION_SEEDS=$seeds
fi
if [[ -n $shard ]]; then
    if [[ ! $shard =~ ^([0-9]+)/([0-9]+)$ ]] || ((BASH_REMATCH[1] < 1 || BASH_REMATCH[1] > BASH_REMATCH[2])); then
        echo "mutants.sh: --shard wants K/N with 1 <= K <= N, got $shard" >&2
        exit 2
    fi
    k=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]}
    args+=(--shard "$((k - 1))/$n")
    label+=".shard-$k-of-$n"
fi

# --rev: mutate a scratch export of that commit plus this tooling.
dir=$root
if [[ -n $rev ]]; then
    dir="$tmpdir/tree"
    mkdir -p "$dir"
    git -C "$root" archive "$rev" | tar -x -C "$dir"
    for f in .cargo/mutants.toml sim/tests/mutation_campaign.rs; do
        mkdir -p "$dir/$(dirname "$f")"
        cp "$root/$f" "$dir/$f"
    done
    label+=".at-$(git -C "$root" rev-parse --short "$rev")"
fi
args+=(--dir "$dir")

if ((list)); then
    nice -n "$nice_level" cargo mutants "${args[@]}" --list "${extra[@]}" | tee "$tmpdir/list"
    echo "--- mutants per file:"
    cut -d: -f1 "$tmpdir/list" | sort | uniq -c
    exit 0
fi

out=${out:-$root/mutants.out/$label}
mkdir -p "$out"
echo "mutants.sh: results in $out/mutants.out" >&2
status=0
nice -n "$nice_level" cargo mutants "${args[@]}" --output "$out" "${extra[@]}" || status=$?

# cargo-mutants exits 0 if all caught, 2 if some missed, 3 on timeouts, 4 if the baseline
# failed: summarise whatever it left.
results="$out/mutants.out"
if [[ -d $results ]]; then
    echo "--- per file: caught missed timeout unviable"
    for f in $(cat "$results"/{caught,missed,timeout,unviable}.txt 2>/dev/null | cut -d: -f1 | sort -u); do
        printf '%-28s' "$f"
        for kind in caught missed timeout unviable; do
            printf ' %6d' "$(grep -c "^$f:" "$results/$kind.txt" 2>/dev/null || true)"
        done
        echo
    done
    if [[ -s $results/missed.txt ]]; then
        echo "--- missed:"
        cat "$results/missed.txt"
    fi
fi
exit "$status"
