#!/usr/bin/env bash
# Several receive queues (issue 14: one AF_XDP socket per queue): a veth
# pair made with QUEUES receive and transmit queues on each end, the xdp
# transport with one shard per queue, SESSIONS idle IPC$ sessions from
# smb-loadgen over CLIENTS source addresses. Shows, per shard, the sessions
# it holds (the shard is the top bits of a session id, `ctl sessions
# --json`) and, per queue, the packets the veth received on it: veth hands
# a frame to the peer's receive queue with the number of the transmit queue
# the sender picked (veth_xmit: skb_get_queue_mapping), and the sender picks
# it from the flow's hash (no XPS on veth), so connections spread over the
# queues by 4-tuple and each queue's XDP program redirects into that
# queue's socket.
#
#   scripts/bench-xdp-queues.sh                 (QUEUES=2 SESSIONS=4000)
#
# The namespaces are made and removed here (also on failure), like
# scripts/xdp-lab's but with queues; needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

QUEUES="${QUEUES:-2}"
SESSIONS="${SESSIONS:-4000}"
CLIENTS="${CLIENTS:-2}"
PORT=4450
cargo build --release --quiet --bin smbcore --bin smb-loadgen

name="xq$$"
srv="$name-srv"
cli="$name-cli"
dir="$(mktemp -d)"
chmod 700 "$dir"
clear_ns() {
  local ns="$1" p
  ip netns list | awk '{print $1}' | grep -qx "$ns" || return 0
  for p in $(ip netns pids "$ns"); do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
}
cleanup() {
  clear_ns "$srv"
  clear_ns "$cli"
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$srv"
ip netns add "$cli"
ip link add xl-srv numtxqueues "$QUEUES" numrxqueues "$QUEUES" netns "$srv" type veth \
  peer name xl-cli numtxqueues "$QUEUES" numrxqueues "$QUEUES" netns "$cli"
ip -n "$srv" link set lo up
ip -n "$cli" link set lo up
ip -n "$srv" addr add 198.18.0.1/15 dev xl-srv
for i in $(seq 1 "$CLIENTS"); do ip -n "$cli" addr add "198.18.1.$i/15" dev xl-cli; done
# As scripts/xdp-lab: no checksum or segmentation offload toward AF_XDP.
ip netns exec "$cli" ethtool -K xl-cli tx off tso off gso off >/dev/null 2>&1
ip netns exec "$srv" ethtool -K xl-srv gro off >/dev/null 2>&1 || true
ip -n "$srv" link set xl-srv up
ip -n "$cli" link set xl-cli up
ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
echo "== veth with $QUEUES queues: $(ip netns exec "$srv" ls /sys/class/net/xl-srv/queues | tr '\n' ' ')"

ip netns exec "$srv" timeout 300 target/release/smbcore serve --transport xdp --xdp-interface xl-srv \
  --listen 198.18.0.1:$PORT --threads 1 --autodisconnect 10s \
  --admin-socket "$dir/admin.sock" >"$dir/server.log" 2>&1 &
for _ in $(seq 100); do [ -S "$dir/admin.sock" ] && break; sleep 0.1; done
[ -S "$dir/admin.sock" ] || { cat "$dir/server.log"; exit 1; }
ctl() { ip netns exec "$srv" target/release/smbcore ctl --admin-socket "$dir/admin.sock" "$@"; }
echo "  shards: $(ctl stats --json | jq .shards), XDP mode: $(sed 's/\x1b\[[0-9;]*m//g' "$dir/server.log" | grep -o 'mode=[^ ]*' | head -1)"
rxq() {
  ip netns exec "$srv" ethtool -S xl-srv 2>/dev/null | grep -E 'rx_queue_[0-9]+_(xdp_packets|packets)' | tr -s ' ' | paste -sd' ' || true
}
before="$(rxq)"
ip netns exec "$cli" timeout 120 target/release/smb-loadgen --target 198.18.0.1:$PORT --no-progress \
  --sessions "$SESSIONS" --workers "$(((SESSIONS + 17999) / 18000))" --source-ips "198.18.1.1-198.18.1.$CLIENTS" --autodisconnect 10s \
  --probes 0 --baseline 0s --json "$dir/idle.json" >"$dir/loadgen.log" 2>&1 &
lg=$!
# Once every session is open: how they spread over the shards.
for _ in $(seq 600); do
  n="$(ctl stats --json 2>/dev/null | jq .sessions || echo 0)"
  [ "$n" -ge "$SESSIONS" ] && break
  kill -0 "$lg" 2>/dev/null || break
  sleep 0.2
done
ctl sessions --json >"$dir/sessions.json"
echo "  sessions per shard (session id >> 48: its top 16 bits):"
jq -r '.[] | .id' "$dir/sessions.json" 2>/dev/null | python3 -c '
import sys, collections
c = collections.Counter((int(x, 0) if x.startswith("0x") else int(x)) >> 48 for x in sys.stdin.read().split())
for s, n in sorted(c.items()): print(f"    shard {s}: {n}")'
echo "  veth receive queues (ethtool -S xl-srv) before: $before"
echo "                                            after: $(rxq)"
wait "$lg" || true
grep -E "^open:|^reaped" "$dir/loadgen.log" || tail -5 "$dir/loadgen.log"
ctl stats --json | jq -c '{connections_ended, protocol_errors, sessions_timed_out}'
