#!/usr/bin/env bash
# The server's own reaping lateness (ctl stats, lateness_us_by_reason.timed_out) for 2,000
# idle IPC$ sessions (autodisconnect 6 s) while smb-loadgen echo runs (100 connections x 4
# in flight) beside them in 4-second runs (ECHO is not session activity, so each echo run
# uses fresh connections before its own sessions would be reaped). Loopback only; stops by
# itself in about 20 s.
#
#   scripts/bench-lateness.sh TRANSPORT [SMBCORE_BINARY]     (TRANSPORT: io-uring or mio)
#
# Prints the histogram (microseconds) and smb-loadgen's early / never-reaped line. Needs a
# release build (cargo build --release --bin smbcore --bin smb-loadgen) and python3.
#
# ECHO_NICE=N runs the echo load at that nice value (a server given the CPU first).
# With SCHED=1 it also records the scheduler (`perf sched record`, system-wide, while the idle
# sessions are opened and reaped) and prints the shard threads' scheduling delay: how long a
# shard thread that was woken waited for a CPU (`perf sched timehist`, "sch delay"). A reap
# cannot happen before its shard runs, so that delay is a floor under the lateness that no
# timer can remove.
set -uo pipefail
T=${1:?transport}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN=${2:-$ROOT/target/release/smbcore}; LG=$ROOT/target/release/smb-loadgen
P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
W=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT
"$BIN" serve --listen 127.0.0.1:$P --admin-socket $W/a.sock --transport $T --autodisconnect 6s >$W/log 2>&1 &
PID=$!; sleep 0.5
( end=$((SECONDS+14)); while [ $SECONDS -lt $end ]; do nice -n "${ECHO_NICE:-0}" $LG --target 127.0.0.1:$P --scenario echo --connections 100 --queue-depth 4 --duration 4s --no-progress >/dev/null 2>&1; done ) &
EP=$!
sleep 1
if [ "${SCHED:-0}" = 1 ]; then
  mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
  perf sched record -a -o $W/sched.data >/dev/null 2>&1 &
  SP=$!
fi
$LG --target 127.0.0.1:$P --sessions 2000 --autodisconnect 6s --probes 0 --baseline 0s --no-progress > $W/idle.txt 2>&1
[ "${SCHED:-0}" = 1 ] && { kill -INT $SP; wait $SP 2>/dev/null; }
wait $EP
"$BIN" ctl --admin-socket $W/a.sock stats --json > $W/stats.json
kill $PID; wait $PID 2>/dev/null
python3 - "$W/stats.json" "$T $BIN" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(sys.argv[2], "reaping lateness of timed-out sessions (us):", j["lateness_us_by_reason"]["timed_out"])
PY
grep -E "reaped|result" "$W/idle.txt"
if [ "${SCHED:-0}" = 1 ]; then
  perf sched timehist -i $W/sched.data 2>/dev/null | python3 -c '
import sys
d = []
for line in sys.stdin:
    f = line.split()
    # time cpu task[tid/pid] wait-time sch-delay run-time (ms)
    if len(f) >= 6 and f[2].startswith("smbcore-shard"):
        try:
            d.append(float(f[4]))
        except ValueError:
            pass
d.sort()
if d:
    q = lambda p: d[min(len(d) - 1, int(p * len(d)))]
    print(f"shard scheduling delay (ms, {len(d)} wake-ups): p50 {q(.5):.3f} p99 {q(.99):.3f} p99.9 {q(.999):.3f} max {d[-1]:.3f}")
else:
    print("shard scheduling delay: no samples (perf sched timehist)")
'
fi
