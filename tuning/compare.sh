#!/usr/bin/env bash
# Runs `ordergate-bench compare` several times and prints each run's headline
# numbers and their median across runs. One run already interleaves its rows
# so that noise lands on all of them alike; on a shared or small host the
# noise also changes from one run to the next (other jobs come and go), so
# read the median of a few runs, and the spread, rather than one table.
#
#   tuning/compare.sh [RUNS] [compare flags...]     e.g. tuning/compare.sh 5 --cpu any
#
# RUNS defaults to 5. The binary is $ORDERGATE_BENCH, else
# target/release/ordergate-bench (build it first: cargo build --release).
# Each run's full table goes to stdout as it finishes; the JSON files are
# kept in $COMPARE_OUT if set, else in a temp dir removed at exit.
set -euo pipefail

runs=5
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    runs=$1
    shift
fi
bin=${ORDERGATE_BENCH:-target/release/ordergate-bench}
if [[ ! -x $bin ]]; then
    echo "compare.sh: no $bin: run cargo build --release, or set ORDERGATE_BENCH" >&2
    exit 2
fi
if [[ -n ${COMPARE_OUT:-} ]]; then
    out=$COMPARE_OUT
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

for ((i = 1; i <= runs; i++)); do
    echo "=== run $i of $runs"
    "$bin" compare --json "$out/run-$i.json" "$@"
done

# One number from a run's JSON (ordergate-bench compare --json), by its
# path of keys: "n/a" where it is null or absent (no HAProxy row).
field() { # FILE KEY...
    python3 - "$@" <<'PY'
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value.get(key) if isinstance(value, dict) else None
print("n/a" if value is None else value)
PY
}
median() {
    grep -E '^-?[0-9.]+$' | sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) { print "n/a"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
printf '%-6s %22s %22s %20s\n' run "ordergate added p50" "HAProxy added p50" "ratio p50"
for ((i = 1; i <= runs; i++)); do
    f=$out/run-$i.json
    printf '%-6s %19s µs %19s µs %20s\n' "$i" "$(field "$f" added ordergate p50_us)" \
        "$(field "$f" added haproxy p50_us)" "$(field "$f" ratio_ordergate_to_haproxy p50)"
done
printf '%-6s %19s µs %19s µs %20s\n' median \
    "$(for f in "$out"/run-*.json; do field "$f" added ordergate p50_us; done | median)" \
    "$(for f in "$out"/run-*.json; do field "$f" added haproxy p50_us; done | median)" \
    "$(for f in "$out"/run-*.json; do field "$f" ratio_ordergate_to_haproxy p50; done | median)"
echo "(goals, for context: ratio ≤ 0.10, ordergate added p50 ≤ 1.5 µs)"
