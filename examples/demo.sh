#!/usr/bin/env bash
# One-command local demo: starts 3 Serf agents on loopback, the clusterm daemon with
# Serf discovery and a command push (examples/demo/provision.sh), waits until the agents
# are discovered, commissions one master and two workers with clusterctl, and prints the
# node table. Everything it starts is stopped when it exits.
#
#   bash examples/demo.sh            # needs `serf` (apt-get install -y serf)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

command -v serf >/dev/null || { echo "demo: serf not found: apt-get install -y serf" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clusterm-target}"
echo "== building clusterm and clusterctl"
cargo build -q -p clusterm-examples --bins
BIN="$CARGO_TARGET_DIR/debug"

WORK=$(mktemp -d -t clusterm-demo.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A TCP port nothing answers on right now.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

echo "== starting 3 serf agents on 127.0.0.1"
FIRST_GOSSIP=""
FIRST_RPC=""
for i in 1 2 3; do
    gossip=$(free_port)
    rpc=$(free_port)
    args=(agent -node "demo-agent-$i" -bind "127.0.0.1:$gossip" -rpc-addr "127.0.0.1:$rpc"
          -tag "NodeLabel=demo-$i" -tag "NodeSerial=DEMO-000$i" -tag "NodeAddr=127.0.0.1"
          -profile local)
    if [ -n "$FIRST_GOSSIP" ]; then
        args+=(-retry-join "127.0.0.1:$FIRST_GOSSIP" -retry-interval 1s)
    else
        FIRST_GOSSIP=$gossip
        FIRST_RPC=$rpc
    fi
    setsid serf "${args[@]}" >"$WORK/serf-$i.log" 2>&1 &
    PIDS+=($!)
done

API_PORT=$(free_port)
cat >"$WORK/clusterm.toml" <<TOML
data_dir = "$WORK/data"

[api]
listen = "127.0.0.1:$API_PORT"

[discovery]
name = "serf"
config = { rpc_addr = "127.0.0.1:$FIRST_RPC" }

[push]
name = "command"

[push.config.commands]
provision = ["$ROOT/examples/demo/provision.sh", "provision"]
upgrade = ["$ROOT/examples/demo/provision.sh", "upgrade"]
cleanup = ["$ROOT/examples/demo/provision.sh", "cleanup"]
verify = ["$ROOT/examples/demo/provision.sh", "verify"]
TOML

echo "== starting clusterm on 127.0.0.1:$API_PORT (log: $WORK/clusterm.log)"
setsid "$BIN/clusterm" --config "$WORK/clusterm.toml" >"$WORK/clusterm.log" 2>&1 &
PIDS+=($!)

export CLUSTERCTL_URL="http://127.0.0.1:$API_PORT"
ctl() { "$BIN/clusterctl" "$@"; }

echo "== waiting for the 3 agents to be discovered"
for _ in $(seq 1 600); do
    found=$(ctl nodes get --status Discovered 2>/dev/null | grep -c 'demo-' || true)
    [ "$found" = 3 ] && break
    sleep 0.1
done
if [ "$found" != 3 ]; then
    echo "demo: only $found of 3 nodes discovered; clusterm log:" >&2
    tail -20 "$WORK/clusterm.log" >&2
    exit 1
fi
ctl nodes get

echo "== commissioning demo-1 as master, then demo-2 and demo-3 as workers"
ctl node commission demo-1 --host-group service-master --wait
ctl nodes commission demo-2 demo-3 --host-group service-worker --wait

echo "== the inventory"
ctl nodes get
echo "== the last job's log"
ctl job get last --follow
