#!/usr/bin/env bash
# A capacity sweep from a fresh checkout, in one command: builds ordergate
# and ordergate-bench, makes a throwaway API key, starts `ordergate serve` on
# a loopback port (one busy-spinning reactor pinned to the last CPU, the
# engine on its thread), runs `ordergate-bench load --sweep` against it from
# the first CPU, then stops the gateway and removes the key.
#
#   tuning/sweep.sh [load flags...]     e.g. tuning/sweep.sh --slo-p99 500us
#
# Prints the sweep's table and its verdict; writes sweep.json and sweep.svg
# (p50/p99/p99.9 against the offered rate, with the SLO) to $SWEEP_OUT,
# default ./sweep-out. Any `ordergate-bench load` flag may follow; one that the
# defaults below also set replaces the default (--sessions, --threads,
# --pin, --slo-p99, --sweep-start, --sweep-step-factor, --sweep-max,
# --step-duration, --warmup, --json, --plot).
#
# The key and the session limits are set far above any offered rate, so a
# step ends on latency or achieved rate, never on THROTTLED. The gateway's
# stop summary (its io_uring health counters among them) goes to
# $SWEEP_OUT/serve.log. $ORDERGATE and $ORDERGATE_BENCH name the gateway
# and the bench binaries to use instead of building them (the test suite
# runs the script that way; $ORDERGATE_BENCH defaults to ordergate-bench
# beside $ORDERGATE).
set -euo pipefail

cd "$(dirname "$0")/.."
out=${SWEEP_OUT:-sweep-out}
mkdir -p "$out"
if [[ -n ${ORDERGATE:-} ]]; then
    bin=$ORDERGATE
    bench=${ORDERGATE_BENCH:-$(dirname "$ORDERGATE")/ordergate-bench}
else
    # The root's default members: both binaries.
    cargo build --release --quiet
    bin=target/release/ordergate
    bench=${ORDERGATE_BENCH:-target/release/ordergate-bench}
fi

cpus=$(nproc)
reactor_cpu=$((cpus - 1))
load_cpu=0
# A busy-spinning reactor needs a CPU the load does not use; with one CPU
# it would starve the load, so it backs off instead.
idle=busy-spin
if ((cpus < 2)); then
    idle=backoff
fi

dir=$(mktemp -d)
serve_pid=
cleanup() {
    if [[ -n $serve_pid ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

key_id=4242
secret=$("$bin" keys new --id "$key_id" | sed -n 's/^secret = "\([0-9a-f]*\)"$/\1/p')
if [[ ${#secret} -ne 64 ]]; then
    echo "sweep.sh: could not make a key with \`ordergate keys new\`" >&2
    exit 2
fi
umask 077
printf '%s\n' "$secret" >"$dir/secret.hex"
cat >"$dir/keys.toml" <<EOF
[[key]]
id = $key_id
secret = "$secret"
scopes = ["trade", "cancel"]
environment = "production"
allow = ["127.0.0.1"]
msgs_per_sec = 10000000
burst = 1000000
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 19000)
cat >"$dir/ordergate.toml" <<EOF
listen = "127.0.0.1:$port"
keys = "keys.toml"
audit_journal = "audit.journal"
stats_file = "stats"

[reactors]
count = 1
cores = [$reactor_cpu]
idle = "$idle"

[session]
msgs_per_sec = 10000000
burst = 1000000
EOF

"$bin" serve --config "$dir/ordergate.toml" --admin-socket "$dir/admin.sock" >"$out/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        echo "sweep.sh: ordergate serve exited; its output:" >&2
        cat "$out/serve.log" >&2
        exit 1
    fi
    sleep 0.1
done

echo "sweep.sh: gateway on 127.0.0.1:$port (reactor on CPU $reactor_cpu, $idle), load from CPU $load_cpu; outputs in $out/"
# The defaults, each dropped when the caller gives the same flag (clap
# refuses a flag given twice).
defaults=(
    --sessions 8 --threads 1 --pin "$load_cpu"
    --slo-p99 1ms --sweep-start 5000 --sweep-step-factor 1.5 --sweep-max 1000000
    --step-duration 3s --warmup 1s
    --json "$out/sweep.json" --plot "$out/sweep.svg"
)
args=()
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
    flag=${defaults[i]}
    given=no
    for a in "$@"; do
        if [[ $a == "$flag" || $a == "$flag="* ]]; then
            given=yes
        fi
    done
    if [[ $given == no ]]; then
        args+=("$flag" "${defaults[i + 1]}")
    fi
done
"$bench" load --connect "127.0.0.1:$port" --key-id "$key_id" --secret-file "$dir/secret.hex" \
    --sweep "${args[@]}" "$@"
