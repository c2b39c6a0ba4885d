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
# With PROFILE=DIR, `perf record -e cpu-clock -g -a` samples the machine
# during the timed runs of every transport; the server's flat profile
# (`perf report --pid PID --no-children --percent-limit 2`) and the time by
# kind of work of the server and of the client side are printed and kept
# in DIR with the perf.data files.
#
# Beside each timed scenario: the server's CPU time per request and per
# packet (/proc/PID/stat over the packets the link carried both ways).
# TRANSPORTS ending in -lo (mio-lo, io-uring-lo) run the kernel path over
# loopback inside the server namespace instead of across the veth pair,
# for the per-packet cost of the veth path against loopback.
#
#   scripts/bench-xdp-lab.sh [TRANSPORTS...]     (default: mio io-uring xdp mio-lo)
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
[ ${#transports[@]} -gt 0 ] || transports=(mio io-uring xdp mio-lo)

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
# Sample the whole machine for the scenario that follows (PROFILE only):
# over veth the frames a process sends are received by the peer in the
# sender's context, and the server's AF_XDP receive runs in the client's,
# so the server alone does not show where a packet's time goes.
prof_start() {
  [ -n "$PROFILE" ] || return 0
  mkdir -p "$PROFILE"
  perf_name="$PROFILE/$t-$1"
  perf record -q -e cpu-clock -g -a -o "$perf_name.data" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
}
# Stop sampling; print the server's flat profile (self time, >= 2 %), and
# the time by kind of work (scripts/lib/perf-categories.py) of the server
# and of the client side (load generator, softirq threads).
prof_end() {
  [ -n "$perf_pid" ] || return 0
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=""
  perf report -i "$perf_name.data" --pid "$server_pid" --percentage relative --no-children --percent-limit 2 --stdio 2>/dev/null |
    grep -vE '^$' >"$perf_name.txt" || true
  perf report -i "$perf_name.data" --pid "$server_pid" --percentage relative --no-children --percent-limit 2 --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' >"$perf_name.flat.txt" || true
  perf script -i "$perf_name.data" -F comm,pid,ip,sym 2>/dev/null >"$perf_name.script" || true
  echo "  server ($perf_name.data), by symbol (self, >= 2 % of the server's samples):"
  sed 's/^/    /' "$perf_name.flat.txt"
  echo "  server, by kind of work:"
  python3 scripts/lib/perf-categories.py --pid "$server_pid" <"$perf_name.script" | tee "$perf_name.categories.txt"
  echo "  client side (smb-loadgen, ksoftirqd), by kind of work:"
  python3 scripts/lib/perf-categories.py --comm '^(smb-loadgen|loadgen|ksoftirqd)' <"$perf_name.script" | tee "$perf_name.client.txt"
  rm -f "$perf_name.script"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat" 2>/dev/null || echo 0; }
# Packets both ways on the link the load crosses (the client's veth end in
# the lab; lo, counted once, on loopback).
packets() {
  if [ "$lo" = 1 ]; then
    ip -n "$lab-srv" -s -j link show lo | jq '.[0].stats64.tx.packets'
  else
    ip -n "$lab-cli" -s -j link show "$CLIENT_IF" | jq '.[0].stats64.tx.packets + .[0].stats64.rx.packets'
  fi
}
# Run a timed scenario and print the server's CPU per packet beside it.
timed() {
  local name="$1" filter="$2" t0 p0 t1 p1 out
  shift 2
  prof_start "$name"
  t0="$(cpu_ticks)"
  p0="$(packets)"
  out="$(run "$@" 2>&1 | grep -E "$filter" | head -4 || true)"
  t1="$(cpu_ticks)"
  p1="$(packets)"
  echo "$out"
  python3 - "$out" "$t0" "$t1" "$p0" "$p1" "$(getconf CLK_TCK)" <<'PYEOF'
import re, sys
out, t0, t1, p0, p1, hz = sys.argv[1], *map(int, sys.argv[2:])
m = re.search(r"(\d+) (?:answered|logged off) of", out)
n = int(m.group(1)) if m else 0
cpu_us = (t1 - t0) * 1e6 / hz
pk = p1 - p0
if n and pk:
    print(f"  server CPU {cpu_us / 1e6:.2f} s: {cpu_us / n:.1f} us per request/session, "
          f"{cpu_us / pk:.2f} us per packet; {pk} packets, {pk / n:.1f} per request/session")
PYEOF
  prof_end
}
eval "$(scripts/xdp-lab -n "$lab" up --clients $((4 * ${#transports[@]})))"
# A new connection per session: a client port in TIME-WAIT may be taken
# again (RFC 6191 timestamps), and each transport gets four source
# addresses of its own, so that connect() does not walk an ephemeral range
# full of the previous runs' TIME-WAIT sockets (Linux tries the even ports
# first; that walk, inet_bhash2_conflict, took 43 % of the client's CPU
# when the runs shared two addresses).
for ns in server client; do
  scripts/xdp-lab -n "$lab" exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1
done

k=0
for t in "${transports[@]}"; do
  echo "== transport $t"
  k=$((k + 1))
  kind="${t%-lo}"
  lo=0
  [ "$kind" != "$t" ] && lo=1
  extra=()
  [ "$kind" = xdp ] && extra=(--xdp-interface "$SERVER_IF")
  if [ "$lo" = 1 ]; then
    addr=127.0.0.1
    side=server
    sources="127.0.$k.2-127.0.$k.5"
  else
    addr="$SERVER_ADDR"
    side=client
    sources="198.18.1.$((4 * k - 3))-198.18.1.$((4 * k))"
  fi
  scripts/xdp-lab -n "$lab" exec server target/release/smbcore serve --transport "$kind" "${extra[@]}" \
    --listen "$addr:$PORT" --threads 1 --autodisconnect 3s \
    --admin-socket "$dir/admin.sock" >"$dir/server-$t.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do [ -S "$dir/admin.sock" ] && break; sleep 0.1; done
  [ -S "$dir/admin.sock" ] || { cat "$dir/server-$t.log"; exit 1; }
  run() { scripts/xdp-lab -n "$lab" exec "$side" target/release/smb-loadgen --target "$addr:$PORT" --no-progress "$@"; }
  run --sessions "$SESSIONS" --autodisconnect 3s 2>&1 | grep -E "^open:|whole session|end - \(last response|^reaped" || true
  timed churn "sessions/s|^  whole|errors" --scenario churn --connections "$CONNECTIONS" --duration "$DURATION"
  echo "  new connection each time:"
  timed connect "sessions/s|^  whole|errors" --scenario churn --new-connection-each-time --source-ips "$sources" \
    --connections "$CONNECTIONS" --duration "$DURATION"
  timed echo "requests/s|^  ECHO|errors" --scenario echo --connections "$CONNECTIONS" --queue-depth 4 --duration "$DURATION"
  scripts/xdp-lab -n "$lab" exec server target/release/smbcore ctl --admin-socket "$dir/admin.sock" stats \
    | grep -E "^(protocol_errors|connections_refused|sockets) " || true
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  grep -h "shard stopped" "$dir/server-$t.log" | sed 's/\x1b\[[0-9;]*m//g; s/^.*shard stopped/  shard stopped/' || true
  server_pid=""
  rm -f "$dir/admin.sock"
done
