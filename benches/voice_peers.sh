#!/usr/bin/env bash
# Voice relay side by side with murmurd (workload W4 of ../shared/research/perf-anchors.md):
# K clients in one room all talking, 50 packets/s of 80 bytes each, for each K alternating
# murmurd (driven by the peers' mumble_load.py, TCP-tunnelled voice) and banterd (banter-bench
# voice, QUIC datagrams). Servers on CPU 1, generators on CPU 0. Needs murmurd
# (`source ../shared/tools/peers/peers.sh; peer_install`, or apt-get install mumble-server).
# Usage: benches/voice_peers.sh [K...]   (default 10 20 30 40)
set -euo pipefail
cd "$(dirname "$0")/.."
peers=$(cd "${PEERS:-../shared/tools/peers}" && pwd)
seconds=${RUN_SECONDS:-10}
set +u
# shellcheck source=/dev/null
source "$peers/peers.sh"
set -u
cargo build --release --quiet -p banter-server -p banter-benches
ticks=$(getconf CLK_TCK)
for k in "${@:-10 20 30 40}"; do
    for k1 in $k; do
        peer_start mumble
        before=$(peer_cpu_ticks)
        started=$(date +%s.%N)
        result=$(taskset -c 0 python3 "$peers/mumble_load.py" "$k1" "$seconds" 80 "$PEER_PORT" | grep RESULT)
        ended=$(date +%s.%N)
        after=$(peer_cpu_ticks)
        peer_stop || true
        cpu=$(echo "($after - $before) / $ticks / ($ended - $started) * 100" | bc -l | cut -c1-5)
        echo "murmurd K=$k1: $result server_cpu_percent=$cpu"
        echo "banterd K=$k1:"
        benches/run.sh voice --speakers "$k1" --seconds "$seconds" |
            grep -E "relayed_per_s|loss|latency.p50|latency.p99_|cpu" | sed 's/^/    /'
    done
done
