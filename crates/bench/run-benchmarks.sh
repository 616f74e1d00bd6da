#!/usr/bin/env bash
# Reproduces the figures in docs/benchmarks.md: builds eventd and
# eventd-bench in release mode, then runs every eventd-bench subcommand
# against a fresh eventd on a loopback port, printing each summary.
#
# Usage: crates/bench/run-benchmarks.sh [PORT]   (default port 29917)
#
# Each measurement gets its own router process, so one test's memory and
# queues do not carry into the next. Run it on a quiet machine: every
# summary ends with the load average, and figures taken under load are
# slower and noisier.
set -euo pipefail

port="${1:-29917}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

cargo build --release -p elvin-router -p elvin-bench
eventd="$root/target/release/eventd"
bench="$root/target/release/eventd-bench"
router="elvin://127.0.0.1:$port"
router_pid=""

start_router() {
    "$eventd" --listen "$router" --log-level warn &
    router_pid=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "eventd did not start on port $port" >&2
    exit 1
}

stop_router() {
    if [ -n "$router_pid" ]; then
        kill "$router_pid" 2>/dev/null || true
        wait "$router_pid" 2>/dev/null || true
        router_pid=""
    fi
}
trap stop_router EXIT

echo "== floor"
"$bench" floor

for test in pingpong throughput subscriptions connections; do
    echo "== $test"
    start_router
    "$bench" --router "$router" "$test" || echo "eventd-bench $test exited with status $?"
    stop_router
done
