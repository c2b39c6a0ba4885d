#!/usr/bin/env bash
# Side by side, in one run: smbcore on the mio and the io_uring transport.
# For each: system calls, user and system CPU per session (open to reap,
# smb-loadgen against `smbcore serve`, one session per connection) and per
# echo (smbtorture smb2.bench.echo), and the rates. Everything stays on
# 127.0.0.1 and stops by itself.
#
#   scripts/bench-transports.sh [SESSIONS] [ECHO_SECONDS]
#
# VARIANTS lists the servers to compare (default "mio io-uring"); a variant
# is a transport with extra server options joined by '+', e.g.
#   VARIANTS="mio io-uring io-uring+--io-uring-min-wait+50 io-uring+--io-uring-sqpoll+100"
# A variant may start with another server binary and a colon, to compare
# builds in one run: VARIANTS="/tmp/old/smbcore:io-uring io-uring".
#
# Needs: a release build (built here), perf (system calls are counted with
# `perf stat -e raw_syscalls:sys_enter`, tracefs is mounted if needed),
# smbtorture (package samba-testsuite). Extra server options for every run
# can be given in SMBCORE_EXTRA, e.g. SMBCORE_EXTRA="--threads 1".
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${1:-10000}
ECHO_S=${2:-6}
cargo build --release --bin smbcore --bin smb-loadgen >/dev/null 2>&1
BIN=target/release
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
chmod 700 "$WORK"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cpu_ticks() { # PID -> "utime stime"
  awk '{print $14, $15}' "/proc/$1/stat"
}

start_server() { # VARIANT PORT [AUTODISCONNECT] -> PID
  local v=$1 bin="$BIN/smbcore" extra="" ad=${3:-2s}
  case "$v" in *:*) bin=${v%%:*}; v=${v#*:};; esac
  local t=${v%%+*}
  [ "$t" != "$v" ] && extra=${v#*+} && extra=${extra//+/ }
  # shellcheck disable=SC2086
  "$bin" serve --listen "127.0.0.1:$2" --admin-socket "$WORK/a-$2.sock" \
    --transport "$t" --autodisconnect="$ad" $extra ${SMBCORE_EXTRA:-} >"$WORK/log-$2" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do [ -S "$WORK/a-$2.sock" ] && break; sleep 0.05; done
  echo "$pid"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

printf '%-40s | %-30s | %-40s\n' transport "sessions ($SESSIONS, open to reap)" "echo (smbtorture, nprocs=4 qdepth=4, ${ECHO_S}s)"
printf '%-40s | %-30s | %-40s\n' "" "setups/s  syscalls  us user/sys" "echo/s  syscalls/echo  us user/sys"
for T in ${VARIANTS:-mio io-uring}; do
  # Sessions: open SESSIONS, let them be reaped.
  P=$(free_port); PID=$(start_server "$T" "$P")
  read -r u0 s0 < <(cpu_ticks "$PID")
  perf stat -e raw_syscalls:sys_enter -p "$PID" -o "$WORK/perf-s" &
  PERF=$!
  sleep 0.2
  "$BIN/smb-loadgen" --target "127.0.0.1:$P" --sessions "$SESSIONS" --autodisconnect 2s \
    --probes 0 --baseline 0s --no-progress --json "$WORK/lg.json" >"$WORK/lg.txt" 2>&1
  kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
  read -r u1 s1 < <(cpu_ticks "$PID")
  kill "$PID"; wait "$PID" 2>/dev/null || true
  sc=$(awk '/raw_syscalls/ {gsub(",", "", $1); print $1}' "$WORK/perf-s")
  rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["setup_per_sec"]))' "$WORK/lg.json")
  per_s=$(python3 -c "print(f'{$sc/$SESSIONS:.2f}')")
  cpu_s=$(python3 -c "print(f'{($u1-$u0)*1e6/$TICK/$SESSIONS:.1f}/{($s1-$s0)*1e6/$TICK/$SESSIONS:.1f}')")

  # Echo. ECHO is not session activity: with autodisconnect on, the
  # benchmark's own sessions would be reaped in the middle of the run.
  P=$(free_port); PID=$(start_server "$T" "$P" -1)
  read -r u0 s0 < <(cpu_ticks "$PID")
  perf stat -e raw_syscalls:sys_enter -p "$PID" -o "$WORK/perf-e" &
  PERF=$!
  sleep 0.2
  timeout $((ECHO_S + 30)) smbtorture "//127.0.0.1/IPC\$" -p "$P" -U% smb2.bench.echo \
    --option=torture:timelimit="$ECHO_S" --option=torture:nprocs=4 --option=torture:qdepth=4 \
    >"$WORK/echo.txt" 2>&1 || true
  kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
  read -r u1 s1 < <(cpu_ticks "$PID")
  kill "$PID"; wait "$PID" 2>/dev/null || true
  sc=$(awk '/raw_syscalls/ {gsub(",", "", $1); print $1}' "$WORK/perf-e")
  # The last num/s is the run's average (finished echos / timelimit); the
  # earlier ones are per-second progress lines.
  echo_rate=$(grep -o 'num/s=[0-9]*' "$WORK/echo.txt" | tail -1 | cut -d= -f2)
  echo_rate=${echo_rate:-0}
  total=$((echo_rate * ECHO_S))
  per_e=$(python3 -c "print(f'{$sc/max($total,1):.2f}')")
  cpu_e=$(python3 -c "print(f'{($u1-$u0)*1e6/$TICK/max($total,1):.2f}/{($s1-$s0)*1e6/$TICK/max($total,1):.2f}')")
  printf '%-40s | %8s  %8s  %11s | %6s  %13s  %13s\n' "$T" "$rate" "$per_s" "$cpu_s" "$echo_rate" "$per_e" "$cpu_e"
done
