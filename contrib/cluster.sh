#!/usr/bin/env bash
# A 3-node banterd cluster on this machine, for trying cluster mode (docs/cluster.md): one
# PostgreSQL and one nats-server of its own, three banterd nodes on 127.0.0.1:4433-4435
# sharing one identity (signing key and certificate) and one files directory. Everything
# lives under DIR (default: a new temporary directory) and stops on Ctrl+C.
#
#   contrib/cluster.sh [DIR]
#   banter --server 127.0.0.1:4433,127.0.0.1:4434,127.0.0.1:4435 --accept-new-cert register ada
#
# Needs PostgreSQL (/usr/lib/postgresql/*/bin or the PATH) and nats-server (scripts/test
# installs both); builds banterd in release mode unless BANTERD names a binary. Extra
# BANTER_* variables in the environment reach every node (e.g. raised rate limits for
# benches/README.md's cluster runs).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$(mktemp -d -t banter-cluster.XXXXXX)}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

if [[ -z "${BANTERD:-}" ]]; then
    cargo build --release --locked -q -p banter-server --manifest-path "$root/Cargo.toml"
    BANTERD="${CARGO_TARGET_DIR:-$root/target}/release/banterd"
fi
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [[ -z "$pg_bin" ]]; then
    pg_bin="$(dirname "$(command -v postgres || echo /nonexistent/postgres)")"
fi
[[ -x "$pg_bin/postgres" ]] || { echo "PostgreSQL is not installed" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "nats-server is not installed" >&2; exit 1; }

# PostgreSQL refuses to run as root: then it runs as the postgres user.
as_pg() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pids=()
stop() {
    trap - EXIT INT TERM
    echo "stopping the cluster"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    as_pg "$pg_bin/pg_ctl" stop -D "$dir/pg/data" -m fast >/dev/null 2>&1 || true
}
trap stop EXIT INT TERM

pg_port=55432
nats_port=54222
if [[ ! -d "$dir/pg" ]]; then
    mkdir -p "$dir/pg"
    # The postgres user must reach its directory.
    [[ "$(id -u)" == 0 ]] && chmod 755 "$dir" && chown postgres: "$dir/pg"
    as_pg "$pg_bin/initdb" -D "$dir/pg/data" -U banter --auth=trust -E UTF8 >/dev/null
fi
if "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
    echo "port $pg_port is taken (another cluster.sh still running?)" >&2
    exit 1
fi
as_pg "$pg_bin/pg_ctl" start -w -D "$dir/pg/data" -l "$dir/pg/postgres.log" \
    -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1" >/dev/null
nats-server -a 127.0.0.1 -p "$nats_port" >"$dir/nats.log" 2>&1 &
pids+=($!)
until (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; do sleep 0.1; done

export BANTER_STORE=postgres
export BANTER_DATABASE_URL="host=127.0.0.1 port=$pg_port user=banter dbname=postgres"
export BANTER_BUS=nats
export BANTER_NATS_URL="nats://127.0.0.1:$nats_port"
export BANTER_FILES_DIR="$dir/files"
mkdir -p "$BANTER_FILES_DIR"

# The first node creates the identity; the others get a copy, as an operator distributes it.
for n in 1 2 3; do
    node="$dir/node$n"
    if [[ $n != 1 && ! -e "$node/server.key" ]]; then
        until [[ -s "$dir/node1/cert-key.pem" && -s "$dir/node1/cert.pem" ]]; do
            kill -0 "${pids[-1]}" 2>/dev/null || { echo "node 1 failed: see $dir/node1.log" >&2; exit 1; }
            sleep 0.2
        done
        mkdir -p "$node" && chmod 700 "$node"
        cp -p "$dir/node1/server.key" "$dir/node1/cert.pem" "$dir/node1/cert-key.pem" "$node/"
    fi
    "$BANTERD" run --data-dir "$node" --listen "127.0.0.1:$((4432 + n))" \
        >"$dir/node$n.log" 2>&1 &
    pids+=($!)
done

echo "cluster in $dir: nodes 127.0.0.1:4433, :4434, :4435 (logs node1..3.log, pg/postgres.log); Ctrl+C stops it"
wait -n "${pids[@]}" || true
echo "a process of the cluster ended; see the logs in $dir" >&2
