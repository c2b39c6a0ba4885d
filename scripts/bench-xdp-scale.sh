#!/usr/bin/env bash
# Many concurrent TCP connections, one idle IPC$ session each, in one
# smbcore process (issue 14): the server in an AF_XDP lab (scripts/xdp-lab),
# smb-loadgen's idle scenario from the client namespace with WORKERS worker
# processes over CLIENTS source addresses, every session held idle until
# autodisconnect reaps it.
#
# Recorded: the peak of the server's connections and sessions (`ctl stats`
# sampled every second, `ctl sessions` counted once at the peak), its open
# descriptors (/proc/PID/fd) and RSS at that peak, the client namespace's
# TCP sockets, and the reaping result summed over the workers (loadgen's
# JSON: opened, reaped, reaped early, never reaped, lateness).
#
#   scripts/bench-xdp-scale.sh                        (200,000 connections over xdp)
#   CONNECTIONS=10000 scripts/bench-xdp-scale.sh
#   CONNECTIONS=15000 TRANSPORT=mio scripts/bench-xdp-scale.sh   (the kernel path, for comparison)
#
# Settings (environment): CONNECTIONS (200000), TRANSPORT (xdp), WORKERS
# (one per 18,000 connections), CLIENTS (source addresses, one per 10,000
# connections, at least 2: connect() tries the even ports of the ephemeral
# range first, and once an address has used its 14,116 even ports every
# connect walks all of them before it finds an odd one; 50,000 connections
# opened at 1,200/s over 3 addresses, at 8,500/s over 5), AUTODISCONNECT (long enough that every session is
# open before the first is due: 20 s + 1 s per 4,000 connections, below the
# 2 minute TCP keep-alive), HOLD (5s),
# RATE (open-loop setups/s over all workers; empty: as fast as possible),
# LIMIT_S (the whole run is killed past it; 600 + 1 s per 1,000), LIST
# (1: count `ctl sessions` at the peak, whose listing adds to the RSS; 0:
# not), OUT (a directory to keep the logs, the samples and the JSON in).
#
# Besides the RSS at the peak it prints the most RSS while sessions were
# being reaped (the samples after the peak): what the connections closing
# (and then in TIME-WAIT) add.
#
# Bounded: every process runs under `timeout`; the lab is removed at the
# end, also on failure or Ctrl-C. Needs root. Exit status 0 when every
# session opened, was reaped on time (0 early, 0 never) and the server's
# descriptors stayed under 100 (xdp only).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-200000}"
TRANSPORT="${TRANSPORT:-xdp}"
WORKERS="${WORKERS:-$(((CONNECTIONS + 17999) / 18000))}"
CLIENTS="${CLIENTS:-$(((CONNECTIONS + 9999) / 10000))}"
[ "$CLIENTS" -ge 2 ] || CLIENTS=2
AUTODISCONNECT="${AUTODISCONNECT:-$((20 + CONNECTIONS / 4000))s}"
HOLD="${HOLD:-5s}"
RATE="${RATE:-}"
LIMIT_S="${LIMIT_S:-$((600 + CONNECTIONS / 1000))}"
PORT=4450
FD_MAX=100

cargo build --release --quiet --bin smbcore --bin smb-loadgen
lab="xscale$$"
dir="${OUT:-$(mktemp -d)}"
mkdir -p "$dir"
chmod 700 "$dir"
server_pid=""
sampler_pid=""
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "${smb_pid:-$server_pid}" 2>/dev/null || true
  scripts/xdp-lab -n "$lab" down
  [ -n "${OUT:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
eval "$(scripts/xdp-lab -n "$lab" up --clients "$CLIENTS")"
cli() { scripts/xdp-lab -n "$lab" exec client "$@"; }
srv() { scripts/xdp-lab -n "$lab" exec server "$@"; }

# The client namespace holds the kernel's side of every connection: the
# whole ephemeral range per address (xdp-lab sets it). The kernel path's
# listener in the server namespace gets a long SYN queue and accept
# backlog (per-namespace sysctls; netdev_max_backlog is global and left).
srv sysctl -qw net.ipv4.tcp_max_syn_backlog=65536 net.core.somaxconn=65536
# Connection tracking is off unless a rule needs it; report if it is on.
ct="$(cli cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo n/a)"

admin="$dir/admin.sock"
extra=()
[ "$TRANSPORT" = xdp ] && extra=(--xdp-interface "$SERVER_IF")
# The xdp transport's automatic max-connections follows memory (a quarter
# of it at 16 KiB per connection); the kernel path's is the open-files
# limit, which it cannot pass anyway.
[ "$TRANSPORT" = xdp ] || extra+=(--max-connections "$((CONNECTIONS + 1000))")
srv timeout "$LIMIT_S" target/release/smbcore serve --transport "$TRANSPORT" "${extra[@]}" \
  --listen "$SERVER_ADDR:$PORT" --threads 1 --autodisconnect "$AUTODISCONNECT" \
  --admin-socket "$admin" >"$dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -S "$admin" ] && break; sleep 0.1; done
[ -S "$admin" ] || { cat "$dir/server.log"; exit 1; }
# The smbcore process itself (under `timeout`, run from a subshell): the
# one in the server namespace named smbcore.
smb_pid="$(for p in $(ip netns pids "$lab-srv"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = smbcore ] && echo "$p"; done | head -1)"
[ -n "$smb_pid" ] || { echo "no smbcore process in $lab-srv"; exit 1; }
# The UMEM (xdp): 64 MiB per shard, mapped with MAP_POPULATE, so resident
# from the start: a mapping with at least 64 MiB resident (the kernel may
# merge it with a neighbour; nothing else of a fresh server is that large).
umem="$(awk '/^Rss:/ && $2 >= 65536 {s += 65536} END {print s}' "/proc/$smb_pid/smaps")"
ctl() { target/release/smbcore ctl --admin-socket "$admin" "$@"; }

# Once a second: connections, sessions, descriptors, RSS (KiB), the client
# namespace's TCP sockets in use.
sample() {
  while kill -0 "$server_pid" 2>/dev/null; do
    local s fds rss tcp
    s="$(ctl stats --json 2>/dev/null | jq -r '"\(.connections) \(.sessions)"' 2>/dev/null || echo "- -")"
    fds="$(ls "/proc/$smb_pid/fd" 2>/dev/null | wc -l)"
    rss="$(awk '/^VmRSS/ {print $2}' "/proc/$smb_pid/status" 2>/dev/null || echo -)"
    tcp="$(cli awk '/^TCP:/ {print $3}' /proc/net/sockstat 2>/dev/null || echo -)"
    echo "$(date +%s.%N | cut -c1-14) $s $fds $rss $tcp"
    sleep 1
  done
}
sample >"$dir/samples.txt" &
sampler_pid=$!

rate=()
[ -n "$RATE" ] && rate=(--rate "$RATE")
echo "== $CONNECTIONS connections over $TRANSPORT: $WORKERS workers, $CLIENTS source addresses, autodisconnect $AUTODISCONNECT (conntrack entries in the client namespace: $ct)"
set +e
cli timeout "$LIMIT_S" target/release/smb-loadgen --target "$SERVER_ADDR:$PORT" --no-progress \
  --sessions "$CONNECTIONS" --workers "$WORKERS" --source-ips "198.18.1.1-198.18.1.$CLIENTS" \
  --autodisconnect "$AUTODISCONNECT" --hold "$HOLD" --probes 0 --baseline 0s "${rate[@]}" \
  --json "$dir/loadgen.json" >"$dir/loadgen.log" 2>&1 &
loadgen_pid=$!
# Count `ctl sessions` once, when the sampled sessions stop growing.
listed=""
last=0
while kill -0 "$loadgen_pid" 2>/dev/null; do
  sleep 2
  now="$(tail -1 "$dir/samples.txt" 2>/dev/null | awk '{print $3}')"
  if [ "${LIST:-1}" = 1 ] && [ -z "$listed" ] && [[ "$now" =~ ^[0-9]+$ ]] && [ "$now" -ge "$CONNECTIONS" ] && [ "$now" = "$last" ]; then
    t0="$(date +%s%N)"
    listed="$(ctl sessions 2>/dev/null | grep -c 'IPC\$' || true)"
    echo "  ctl sessions at the peak: $listed IPC\$ sessions listed in $((($(date +%s%N) - t0) / 1000000)) ms"
  fi
  [[ "$now" =~ ^[0-9]+$ ]] && last="$now"
done
wait "$loadgen_pid"
rc=$?
set -e
grep -E "^open:|whole session|^reaped|error|Error|workers" "$dir/loadgen.log" | head -20 || true

ctl stats --json >"$dir/stats.json" 2>/dev/null || true
ctl config show >"$dir/config.txt" 2>/dev/null || true
kill "$smb_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""
kill "$sampler_pid" 2>/dev/null || true
sampler_pid=""

# The peak: the sample with the most connections (the first such).
read -r peak_t peak_conns peak_sess peak_fds peak_rss peak_tcp < <(
  awk '$2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $2 + $3 > m {m = $2 + $3; l = $0} END {print l}' "$dir/samples.txt")
max_fds="$(awk '$4 ~ /^[0-9]+$/ && $4 > m {m = $4} END {print m + 0}' "$dir/samples.txt")"
max_rss="$(awk '$5 ~ /^[0-9]+$/ && $5 > m {m = $5} END {print m + 0}' "$dir/samples.txt")"
first_rss="$(awk '$5 ~ /^[0-9]+$/ {print $5; exit}' "$dir/samples.txt")"
j() { jq -r "$1 // \"null\"" "$dir/loadgen.json" 2>/dev/null || echo null; }
echo "peak: connections=$peak_conns sessions=$peak_sess (ctl sessions listed ${listed:-not counted}) server_fds=$peak_fds (max $max_fds) server_rss=$((peak_rss / 1024)) MiB (max $((max_rss / 1024)) MiB with the \`ctl sessions\` listing, at start $((first_rss / 1024)) MiB) client_tcp_inuse=$peak_tcp"
reap_rss="$(awk -v t="$peak_t" '$1 > t && $5 ~ /^[0-9]+$/ && $5 > m {m = $5} END {print m + 0}' "$dir/samples.txt")"
echo "server RSS while reaping: max $((reap_rss / 1024)) MiB (at the peak of connections $((peak_rss / 1024)) MiB)"
if [[ "$peak_conns" =~ ^[0-9]+$ ]] && [ "$peak_conns" -gt 0 ]; then
  echo "server RSS per connection at the peak: $(((peak_rss - first_rss) * 1024 / peak_conns)) bytes (RSS growth since the start over connections; the UMEM, $((umem / 1024)) MiB, was resident from the start)"
fi
echo "loadgen: opened=$(j .opened)/$(j .sessions) setup_failed=$(j .setup_failed) setup/s=$(j .setup_per_sec) open_seconds=$(j .open_seconds) reaped=$(j .reaped) early=$(j .reaped_early) never=$(j .never_reaped) lateness_ms p50/p99/max=$(j .lateness_ms.p50)/$(j .lateness_ms.p99)/$(j .lateness_ms.max) first_error=$(j .first_error)"
echo "server: max_connections=$(awk '$1 == "max-connections" {print $2; exit}' "$dir/config.txt") sessions_timed_out=$(jq -r .sessions_timed_out "$dir/stats.json" 2>/dev/null) connections_refused=$(jq -r .connections_refused "$dir/stats.json" 2>/dev/null) protocol_errors=$(jq -r .protocol_errors "$dir/stats.json" 2>/dev/null)"
# The xdp shards' TCP and AF_XDP counters, where the build reports them.
jq -c '.xdp[]? | del(.shard)' "$dir/stats.json" 2>/dev/null | sed 's/^/  xdp shard: /' || true
grep -h "shard stopped" "$dir/server.log" | sed 's/\x1b\[[0-9;]*m//g; s/^.*shard stopped/  shard stopped/' || true
[ -n "${OUT:-}" ] && echo "logs, samples (time connections sessions fds rss_kib client_tcp) and JSON in $dir"

ok=1
[ "$rc" -eq 0 ] || { echo "FAIL: loadgen exit status $rc"; ok=0; }
if [ "$TRANSPORT" = xdp ] && [ "$max_fds" -ge "$FD_MAX" ]; then
  echo "FAIL: the server held $max_fds descriptors (limit $FD_MAX)"
  ok=0
fi
[ "$(j .reaped_early)" = 0 ] || { echo "FAIL: reaped early"; ok=0; }
[ "$(j .never_reaped)" = 0 ] || { echo "FAIL: never reaped"; ok=0; }
[ "$ok" = 1 ] && echo "OK"
[ "$ok" = 1 ]
