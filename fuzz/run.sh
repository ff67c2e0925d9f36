#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, from the
# committed seed corpus, and prints each target's executions, executions
# per second and verdict. New inputs go to a scratch corpus, not the
# committed one; a crash leaves its input under fuzz/artifacts/TARGET/.
#
#   fuzz/run.sh SECONDS [TARGET ...]
#
# The targets (docs/TESTING.md, "Fuzzing", says what each checks):
#
#   decode_differential  the wire decoder against a reference decoder
#   frame_reader         the client's reassembler, whole / bytewise / chunked
#   keys_file            keys-file parser: errors name a line, never a secret
#   config_file          serve config parser: the same
#   session_pipeline     sessions, slab, rings, engine under arbitrary
#                        interleavings and faults, invariants every step
#   engine_differential  the matching engine against a reference book
#   journal_verify       audit verify on arbitrary and mutated journals
#
# An input slower than TIMEOUT seconds (default 10; every target's loops are
# bounded, so it means a hang) counts as a crash. To replay one:
#   fuzz/target/x86_64-unknown-linux-gnu/release/TARGET fuzz/artifacts/TARGET/crash-…
# (OGFUZZ_TRACE=1 makes session_pipeline print each step and every frame a
# client reads). Seeds for session_pipeline and engine_differential are
# written by fuzz/seeds/*.py; rerun them after changing a target's input
# types.
#
# Needs the nightly toolchain (cargo-fuzz builds with sanitizers) and
# cargo-fuzz; installs cargo-fuzz from crates.io if it is missing. Exits 0
# when every target ran without a crash, 1 on a crash, 3 when the tools
# are not there (the caller decides whether that is a skip).
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET ...]}
shift
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 3
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (once)"
    if ! cargo install cargo-fuzz --locked >/tmp/ordergate-cargo-fuzz-install.log 2>&1; then
        echo "fuzz: skipped: cargo-fuzz did not install (see /tmp/ordergate-cargo-fuzz-install.log)"
        exit 3
    fi
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
cargo +nightly fuzz build --fuzz-dir fuzz "${targets[@]/#/}" >/dev/null 2>&1 || \
    cargo +nightly fuzz build --fuzz-dir fuzz || exit 1
scratch=$(mktemp -d /tmp/ordergate-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
status=0
total=0
printf '%-22s %14s %12s  %s\n' target executions "exec/s" verdict
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="$scratch/$t.log"
    cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -max_len=4096 \
        -timeout="${TIMEOUT:-10}" \
        -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    per_s=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    verdict="no crash"
    if [ $rc -ne 0 ]; then
        verdict="CRASH (exit $rc): $(grep -m1 -E 'panicked|ERROR:' "$log")"
        tail -40 "$log"
        status=1
    fi
    total=$((total + ${execs:-0}))
    printf '%-22s %14s %12s  %s\n' "$t" "${execs:-?}" "${per_s:-?}" "$verdict"
done
printf '%-22s %14s\n' total "$total"
exit $status
