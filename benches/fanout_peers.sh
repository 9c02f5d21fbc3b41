#!/usr/bin/env bash
# Fan-out side by side with the peers (workload W1 of ../shared/research/perf-anchors.md):
# one room (topic, channel), one publisher, 100-byte messages; for each case, each peer and
# then banterd, in one session. Servers on CPU 1, generators on CPU 0. The peers are driven by
# the peers' fanbench, banterd by banter-bench (every banterd delivery is durable first).
# Needs the peers installed (`source ../shared/tools/peers/peers.sh; peer_install`).
# Usage: benches/fanout_peers.sh [PEER...]   (default: nats mosquitto)
set -euo pipefail
cd "$(dirname "$0")/.."
peers_dir=$(cd "${PEERS:-../shared/tools/peers}" && pwd)
cases=${CASES:-"50 100000|200 25000|50 10000 1000|200 5000 1000"}
set +u
# shellcheck source=/dev/null
source "$peers_dir/peers.sh"
set -u
cargo build --release --quiet -p banter-server -p banter-benches
ticks=$(getconf CLK_TCK)
IFS='|'
for case in $cases; do
    unset IFS
    read -r n m rate <<<"$case"
    rate_args=(); bench_rate=()
    if [ -n "${rate:-}" ]; then rate_args=(--rate "$rate"); bench_rate=(--rate "$rate"); fi
    echo "== N=$n messages=$m rate=${rate:-max}"
    for peer in "${@:-nats mosquitto}"; do
        for p in $peer; do
            proto=nats; [ "$p" = mosquitto ] && proto=mqtt
            peer_start "$p"
            before=$(peer_cpu_ticks); started=$(date +%s.%N)
            out=$(taskset -c 0 timeout 120 "$W/fanbench" --proto "$proto" --port "$PEER_PORT" \
                --subs "$n" --msgs "$m" "${rate_args[@]}" 2>&1 | grep RESULT || true)
            ended=$(date +%s.%N); after=$(peer_cpu_ticks)
            peer_stop || true
            cpu=$(echo "($after - $before) / $ticks / ($ended - $started) * 100" | bc -l | cut -c1-5)
            echo "  $p: $out server_cpu_percent=$cpu"
        done
    done
    # banterd twice: the publisher on a request stream per post, then on one post stream.
    for publish in "" --stream; do
        echo "  banterd ${publish:-(a stream per post)}:"
        benches/run.sh fanout --members "$n" --messages "$m" "${bench_rate[@]}" $publish |
            grep -E "deliveries_per_s|lost|latency.p50|latency.p99_|server_cpu" | sed 's/^/    /'
    done
    IFS='|'
done
