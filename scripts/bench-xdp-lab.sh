#!/usr/bin/env bash
# Side by side in one AF_XDP lab (scripts/xdp-lab): the same release
# smbcore on the kernel's TCP (mio, io-uring) and on AF_XDP + user-space TCP
# (xdp), loaded by smb-loadgen from the client namespace: idle sessions
# opened and reaped, session churn, ECHO throughput. Bounded: SESSIONS idle
# sessions, DURATION per timed scenario; the lab is removed at the end,
# also on failure. Needs root. Reports the loadgen's summary lines as they
# come out.
#
#   scripts/bench-xdp-lab.sh [TRANSPORTS...]     (default: mio io-uring xdp)
#   SESSIONS=2000 DURATION=5s CONNECTIONS=50 scripts/bench-xdp-lab.sh xdp
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS="${SESSIONS:-2000}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-50}"
PORT=4450
transports=("$@")
[ ${#transports[@]} -gt 0 ] || transports=(mio io-uring xdp)

cargo build --release --quiet --bin smbcore --bin smb-loadgen
lab="xbench$$"
dir="$(mktemp -d)"
chmod 700 "$dir"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  scripts/xdp-lab -n "$lab" down
  rm -rf "$dir"
}
trap cleanup EXIT
eval "$(scripts/xdp-lab -n "$lab" up --clients 2)"

for t in "${transports[@]}"; do
  echo "== transport $t"
  extra=()
  [ "$t" = xdp ] && extra=(--xdp-interface "$SERVER_IF")
  scripts/xdp-lab -n "$lab" exec server target/release/smbcore serve --transport "$t" "${extra[@]}" \
    --listen "$SERVER_ADDR:$PORT" --threads 1 --autodisconnect 3s \
    --admin-socket "$dir/admin.sock" >"$dir/server-$t.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do [ -S "$dir/admin.sock" ] && break; sleep 0.1; done
  [ -S "$dir/admin.sock" ] || { cat "$dir/server-$t.log"; exit 1; }
  run() { scripts/xdp-lab -n "$lab" exec client target/release/smb-loadgen --target "$SERVER_ADDR:$PORT" --no-progress "$@"; }
  run --sessions "$SESSIONS" --autodisconnect 3s 2>&1 | grep -E "^open:|whole session|end - \(last response|^reaped" || true
  run --scenario churn --connections "$CONNECTIONS" --duration "$DURATION" 2>&1 | grep -E "sessions/s|^  whole|errors" | head -4 || true
  run --scenario echo --connections "$CONNECTIONS" --queue-depth 4 --duration "$DURATION" 2>&1 | grep -E "requests/s|^  ECHO|errors" | head -4 || true
  scripts/xdp-lab -n "$lab" exec server target/release/smbcore ctl --admin-socket "$dir/admin.sock" stats \
    | grep -E "^(protocol_errors|connections_refused|sockets) " || true
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  grep -h "shard stopped" "$dir/server-$t.log" | sed 's/\x1b\[[0-9;]*m//g; s/^.*shard stopped/  shard stopped/' || true
  server_pid=""
  rm -f "$dir/admin.sock"
done
