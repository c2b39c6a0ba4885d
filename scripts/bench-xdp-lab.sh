#!/usr/bin/env bash
# Side by side in one AF_XDP lab (scripts/xdp-lab): the same release
# smbcore on the kernel's TCP (mio, io-uring) and on AF_XDP + user-space TCP
# (xdp), loaded by smb-loadgen from the client namespace: idle sessions
# opened and reaped, session churn (on kept connections and with a new TCP
# connection each time), ECHO throughput. Bounded: SESSIONS idle
# sessions, DURATION per timed scenario; the lab is removed at the end,
# also on failure. Needs root. Reports the loadgen's summary lines as they
# come out.
#
# With PROFILE=DIR, `perf record -e cpu-clock -g` samples the server during
# the churn and the echo runs of every transport, and the flat profile
# (`perf report --no-children --percent-limit 2`, by symbol and by shared
# object) is printed and kept in DIR with the raw perf.data files.
#
#   scripts/bench-xdp-lab.sh [TRANSPORTS...]     (default: mio io-uring xdp)
#   SESSIONS=2000 DURATION=5s CONNECTIONS=50 scripts/bench-xdp-lab.sh xdp
#   PROFILE=/tmp/xdp-prof scripts/bench-xdp-lab.sh xdp
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS="${SESSIONS:-2000}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-50}"
PROFILE="${PROFILE:-}"
PORT=4450
transports=("$@")
[ ${#transports[@]} -gt 0 ] || transports=(mio io-uring xdp)

cargo build --release --quiet --bin smbcore --bin smb-loadgen
lab="xbench$$"
dir="$(mktemp -d)"
chmod 700 "$dir"
server_pid=""
cleanup() {
  [ -n "${perf_pid:-}" ] && kill -INT "$perf_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  scripts/xdp-lab -n "$lab" down
  rm -rf "$dir"
}
trap cleanup EXIT
perf_pid=""
perf_name=""
# Sample the server for the scenario that follows (PROFILE only).
prof_start() {
  [ -n "$PROFILE" ] || return 0
  mkdir -p "$PROFILE"
  perf_name="$PROFILE/$t-$1"
  perf record -q -e cpu-clock -g -p "$server_pid" -o "$perf_name.data" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
}
# Stop sampling; print the flat profile (self time) by symbol and by object.
prof_end() {
  [ -n "$perf_pid" ] || return 0
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=""
  perf report -i "$perf_name.data" --no-children --percent-limit 2 --stdio 2>/dev/null |
    grep -vE '^$' >"$perf_name.txt" || true
  perf report -i "$perf_name.data" --no-children --sort dso --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -8 >"$perf_name.dso.txt" || true
  perf report -i "$perf_name.data" --no-children --percent-limit 2 --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' >"$perf_name.flat.txt" || true
  echo "  profile of the server ($perf_name.data), by object:"
  sed 's/^/    /' "$perf_name.dso.txt"
  echo "  by symbol (self, >= 2 %):"
  sed 's/^/    /' "$perf_name.flat.txt"
}
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
  prof_start churn
  run --scenario churn --connections "$CONNECTIONS" --duration "$DURATION" 2>&1 | grep -E "sessions/s|^  whole|errors" | head -4 || true
  prof_end
  prof_start connect
  run --scenario churn --new-connection-each-time --source-ips 198.18.1.1-198.18.1.2 --connections "$CONNECTIONS" --duration "$DURATION" 2>&1 | grep -E "sessions/s|^  whole|errors" | sed 's/^/  new connection each time: /' | head -4 || true
  prof_end
  prof_start echo
  run --scenario echo --connections "$CONNECTIONS" --queue-depth 4 --duration "$DURATION" 2>&1 | grep -E "requests/s|^  ECHO|errors" | head -4 || true
  prof_end
  scripts/xdp-lab -n "$lab" exec server target/release/smbcore ctl --admin-socket "$dir/admin.sock" stats \
    | grep -E "^(protocol_errors|connections_refused|sockets) " || true
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  grep -h "shard stopped" "$dir/server-$t.log" | sed 's/\x1b\[[0-9;]*m//g; s/^.*shard stopped/  shard stopped/' || true
  server_pid=""
  rm -f "$dir/admin.sock"
done
