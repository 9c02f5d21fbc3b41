#!/usr/bin/env bash
# Starts a throw-away banterd (release build, temp data dir, CPU 1) configured for load, runs
# one banter-bench workload against it (CPU 0), prints the result and the server's CPU and
# memory, and stops the server. Usage:
#   benches/run.sh fanout --members 100 --messages 1000
#   benches/run.sh durable --clients 32 --messages 200
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BANTERD:-}" ] || cargo build --release --quiet -p banter-server
cargo build --release --quiet -p banter-benches
port=$((20000 + RANDOM % 10000))
data=$(mktemp -d)
# The data dir goes only once the server has shut down (it flushes storage on the way).
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
BANTER_ARGON2_MEMORY_KIB=1024 BANTER_ARGON2_ITERATIONS=1 \
BANTER_RATE_MESSAGE=1000000/60000000 BANTER_RATE_JOIN=1000000/60000000 \
BANTER_RATE_AUTH=1000000/60000000 BANTER_MAX_CONNECTIONS_PER_IP=100000 BANTER_MAX_CONNECTIONS=100000 \
BANTER_RETRY_ABOVE_INCOMING=100000 RUST_LOG=warn \
    taskset -c 1 "${BANTERD:-target/release/banterd}" run --data-dir "$data" --listen "127.0.0.1:$port" >/dev/null &
server=$!
sleep 1
ticks=$(getconf CLK_TCK)
cpu_before=$(awk '{print $14 + $15}' "/proc/$server/stat")
started=$(date +%s.%N)
BANTER_SERVER_PID=$server taskset -c 0 target/release/banter-bench --server "127.0.0.1:$port" --accept-new-cert "$@"
ended=$(date +%s.%N)
cpu_after=$(awk '{print $14 + $15}' "/proc/$server/stat")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
echo "server_cpu_percent           $(echo "($cpu_after - $cpu_before) / $ticks / ($ended - $started) * 100" | bc -l | cut -c1-5)"
echo "server_peak_rss_kib          $rss"
