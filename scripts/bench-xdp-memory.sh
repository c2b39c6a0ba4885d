#!/usr/bin/env bash
# Memory per connection with one idle IPC$ session, TCP state and SMB
# together (issue 14), the same way for the kernel's TCP (mio, io-uring) and
# for AF_XDP + user-space TCP (xdp), in one AF_XDP lab (scripts/xdp-lab):
# smb-loadgen opens N one-session connections from the client namespace and
# holds them idle; once the server counts all N, this script reads
#
# - the server's RSS growth (VmRSS after - before) / N. For xdp the UMEM (a
#   fixed area per shard, resident from the start) is read from
#   /proc/PID/smaps and reported apart, not per connection;
# - the kernel's slab memory (sum of active objects x object size over
#   /proc/slabinfo) growth / N, and the caches that grew most. Slab is
#   global: it holds the client's sockets too. The xdp run has no kernel
#   socket on the server's side, so its slab growth is the client's alone,
#   and the kernel path's server-side socket cost is its growth minus the
#   xdp run's, summed over the caches a socket uses (SOCK_CACHES: the
#   socket, its inode, file, dentry, epoll item, io_uring's and the small
#   kmalloc caches; printed as "server kernel/conn" with each cache's
#   share). Other caches (proc inodes read by the sampling, ...) are left
#   out of that figure;
# - TCP sockets in use and TCP memory pages of /proc/net/sockstat in the
#   server's namespace (`mem` pages are global and count queued data only).
#
# A kernel-path server holds one descriptor per connection, so it stops
# below the 20,000 open-files limit: its counts are capped at KERNEL_MAX
# (19,000). Other builds on the machine move the global slab figures a little;
# compare figures of one run.
#
# RSS is a high-water mark: memory a connection frees once idle (a parked
# connection's TCP buffers, on a build that parks them) goes back to
# malloc, not to the system. RATE (setups/s, open loop) keeps the
# connections that are new, and not idle yet, few; SETTLE (seconds, default
# 2) is how long after the last setup the figures are read.
#
#   scripts/bench-xdp-memory.sh [TRANSPORTS...]     (default: xdp mio io-uring)
#   COUNTS="10000 50000" scripts/bench-xdp-memory.sh xdp
#   RATE=2000 SETTLE=5 scripts/bench-xdp-memory.sh xdp
#
# Bounded: each step under `timeout`; the lab is removed at the end, also on
# failure. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS="${COUNTS:-10000 50000}"
KERNEL_MAX="${KERNEL_MAX:-19000}"
RATE="${RATE:-}"
SETTLE="${SETTLE:-2}"
rate=()
[ -n "$RATE" ] && rate=(--rate "$RATE")
PORT=4450
transports=("$@")
[ ${#transports[@]} -gt 0 ] || transports=(xdp mio io-uring)

cargo build --release --quiet --bin smbcore --bin smb-loadgen
lab="xmem$$"
dir="$(mktemp -d)"
chmod 700 "$dir"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "${smb_pid:-$server_pid}" 2>/dev/null || true
  scripts/xdp-lab -n "$lab" down
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
eval "$(scripts/xdp-lab -n "$lab" up --clients 4)"
cli() { scripts/xdp-lab -n "$lab" exec client "$@"; }
srv() { scripts/xdp-lab -n "$lab" exec server "$@"; }
srv sysctl -qw net.ipv4.tcp_max_syn_backlog=65536 net.core.somaxconn=65536

slab_bytes() { awk 'NR > 2 {s += $2 * $4} END {print s}' /proc/slabinfo; }
slab_snap() { awk 'NR > 2 {print $1, $2 * $4}' /proc/slabinfo | sort; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# The UMEM's resident KiB, read before any load: 64 MiB per mapping with
# at least that much resident (xsk.rs: 2 x 16,384 frames of 2 KiB, mapped
# with MAP_POPULATE, so it is in the baseline and never in the growth; the
# kernel may merge it with a neighbouring mapping; nothing else of a fresh
# server is that large); 0 on the kernel path.
umem_kib() {
  awk '/^Rss:/ && $2 >= 65536 {s += 65536} END {print s}' "/proc/$1/smaps"
}
sockstat() { srv awk '/^TCP:/ {print "inuse=" $3 " mem_pages=" $NF}' /proc/net/sockstat; }

# The caches a connected TCP socket with a descriptor takes from.
SOCK_CACHES="TCP request_sock_TCP sock_inode_cache filp dentry eventpoll_epi eventpoll_pwq skbuff_head_cache kmalloc-32 kmalloc-64 kmalloc-96 kmalloc-128 kmalloc-192 kmalloc-256 kmalloc-512 kmalloc-1k kmalloc-2k kmalloc-4k kmalloc-cg-32 kmalloc-cg-64 kmalloc-cg-96 kmalloc-cg-128 kmalloc-cg-192 kmalloc-cg-256 kmalloc-cg-512 kmalloc-cg-1k kmalloc-cg-2k kmalloc-cg-4k"
# Growth per connection of each socket cache: "name bytes" lines.
sock_growth() {
  join "$1" "$2" | awk -v n="$3" -v list=" $SOCK_CACHES " 'index(list, " " $1 " ") {printf "%s %.0f\n", $1, ($3 - $2) / n}' | sort
}
declare -A client_slab
for t in "${transports[@]}"; do
  for n in $COUNTS; do
    if [ "$t" != xdp ] && [ "$n" -gt "$KERNEL_MAX" ]; then
      echo "== $t $n: capped at $KERNEL_MAX (one descriptor per connection, 20,000 at most per process)"
      n="$KERNEL_MAX"
    fi
    admin="$dir/admin.sock"
    extra=()
    [ "$t" = xdp ] && extra=(--xdp-interface "$SERVER_IF")
    srv timeout 900 target/release/smbcore serve --transport "$t" "${extra[@]}" \
      --listen "$SERVER_ADDR:$PORT" --threads 1 --autodisconnect 10m \
      --max-connections "$((n + 1000))" --admin-socket "$admin" >"$dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do [ -S "$admin" ] && break; sleep 0.1; done
    [ -S "$admin" ] || { cat "$dir/server.log"; exit 1; }
    # The smbcore process itself (under `timeout`, run from a subshell): the
    # one in the server namespace named smbcore.
    smb_pid="$(for p in $(ip netns pids "$lab-srv"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = smbcore ] && echo "$p"; done | head -1)"
    [ -n "$smb_pid" ] || { echo "no smbcore process in $lab-srv"; exit 1; }
    ctl() { target/release/smbcore ctl --admin-socket "$admin" "$@"; }
    sleep 1
    rss0="$(rss_kib "$smb_pid")"
    umem0="$(umem_kib "$smb_pid")"
    slab0="$(slab_bytes)"
    slab_snap >"$dir/slab0"
    ss0="$(sockstat)"
    # The sessions stay open (10 minute autodisconnect) until this script
    # ends the load generator.
    cli timeout 600 target/release/smb-loadgen --target "$SERVER_ADDR:$PORT" --no-progress \
      --sessions "$n" --workers "$(((n + 17999) / 18000))" --source-ips 198.18.1.1-198.18.1.4 \
      --autodisconnect 10m --probes 0 --baseline 0s "${rate[@]}" >"$dir/loadgen.log" 2>&1 &
    lg=$!
    got=0
    for _ in $(seq 600); do
      got="$(ctl stats --json 2>/dev/null | jq -r '"\(.connections) \(.sessions)"' || echo "0 0")"
      read -r c s <<<"$got"
      [ "$c" -ge "$n" ] && [ "$s" -ge "$n" ] && break
      kill -0 "$lg" 2>/dev/null || break
      sleep 1
    done
    sleep "$SETTLE" # the last answers and ACKs settle
    read -r c s <<<"$(ctl stats --json | jq -r '"\(.connections) \(.sessions)"')"
    rss1="$(rss_kib "$smb_pid")"
    slab1="$(slab_bytes)"
    slab_snap >"$dir/slab1"
    ss1="$(sockstat)"
    top="$(join "$dir/slab0" "$dir/slab1" | awk -v n="$c" '{d = $3 - $2; if (d > 0) printf "%d %s %.0f\n", d, $1, d / n}' |
      sort -rn | head -6 | awk '{printf "%s %s B/conn, ", $2, $3}')"
    # End the load (its workers too) before the server: no reaping here.
    for p in $(ip netns pids "$lab-cli"); do kill "$p" 2>/dev/null || true; done
    wait "$lg" 2>/dev/null || true
    kill "$smb_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    rm -f "$admin"
    if [ "$c" -lt "$n" ]; then
      echo "== $t $n: only $c connections, $s sessions opened; the load generator's and the server's last lines:"
      tail -3 "$dir/loadgen.log"
      tail -3 "$dir/server.log" | sed 's/\x1b\[[0-9;]*m//g'
      continue
    fi
    rss_pc=$(((rss1 - rss0) * 1024 / c))
    slab_pc=$(((slab1 - slab0) / c))
    line="== $t connections=$c sessions=$s${RATE:+ (opened at $RATE/s)}: server RSS/conn (UMEM apart)=$rss_pc B; slab/conn (client and server)=$slab_pc B"
    if [ "$t" = xdp ]; then
      client_slab[$n]="$slab_pc"
      client_slab[any]="$slab_pc"
      sock_growth "$dir/slab0" "$dir/slab1" "$c" >"$dir/xdp-sock.$n"
      cp "$dir/xdp-sock.$n" "$dir/xdp-sock.any"
      line+="; UMEM $((umem0 / 1024)) MiB resident from the start (fixed per shard, not in the growth)"
      line+="; total/conn = $rss_pc B"
    elif [ -f "$dir/xdp-sock.any" ]; then
      ref="$dir/xdp-sock.$n"
      [ -f "$ref" ] || ref="$dir/xdp-sock.any"
      sock_growth "$dir/slab0" "$dir/slab1" "$c" | join - "$ref" |
        awk '{d = $2 - $3; if (d > 16 || d < -16) printf "%s %d\n", $1, d}' | sort -k2 -rn >"$dir/server-sock"
      k="$(awk '{s += $2} END {print s + 0}' "$dir/server-sock")"
      line+="; server kernel/conn (socket caches, minus the xdp run's client-only growth)=$k B; total/conn = $((rss_pc + k)) B"
      line+=$'\n'"   server kernel by cache: $(awk '{printf "%s %s B, ", $1, $2}' "$dir/server-sock" | sed 's/, $//')"
    fi
    echo "$line"
    echo "   RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB; sockstat (server ns) before: $ss0, after: $ss1"
    echo "   slab grew most: ${top%, }"
  done
done
