#!/usr/bin/env bash
# Side by side: the same smb-loadgen load against smbcore and against Samba's smbd (and, when
# RUST_SMB_SERVER_CMD is set, a third-party server such as the Rust `smb-server` crate's
# example), on this machine, in one run; prints one table (see loadgen/README.md, "Side by side
# with Samba").
#
# For each server: start it on a loopback high port, open N anonymous IPC$ sessions with
# smb-loadgen (2 ECHO probes running throughout), then, while the sessions sit idle, sample
# the server's memory (RSS for smbcore's one process; PSS summed over smbd's
# process-per-connection tree) and its CPU time (utime + stime from /proc/PID/stat, summed over
# its processes) over an idle window; the reaping figures come from smb-loadgen's --json.
#
# Both servers get the same idle timeout: smbcore `--autodisconnect 1m`, Samba `deadtime = 1`
# (its finest; Samba checks it once a minute, so its reaps land 60-72 s after the deadline's
# start); the optional third one is handed the same as RUST_SMB_IDLE_TIMEOUT_S (seconds). A run takes about 2.5 minutes (3.5 with the third server). Must run as root (smbd).
# Self-cleaning.
#
# Usage: scripts/compare-samba.sh [SESSIONS]      (default 1000)
# Env:   SMBCORE_PORT (default 14450), SMBD_PORT (default 14451), IDLE_WINDOW_S (default 20),
#        TIMEOUT_MIN (idle timeout in minutes for both servers, default 1),
#        PROBES (ECHO probe connections, default 2; 0 measures a server with idle sessions only),
#        CARGO_TARGET_DIR (where the release binaries are built).
#        RUST_SMB_SERVER_CMD (optional): a shell command line that starts a third server in the
#        foreground, listening on 127.0.0.1:$RUST_SMB_PORT, idle timeout $RUST_SMB_IDLE_TIMEOUT_S
#        seconds; both variables are exported by this script (RUST_SMB_PORT defaults to 14452,
#        RUST_SMB_IDLE_TIMEOUT_S is TIMEOUT_MIN * 60). It is measured like smbcore (RSS, summed
#        over its process session) as a third row named $RUST_SMB_NAME (default
#        "smb-server (Rust)"). This script builds nothing for it; loadgen/README.md says how the
#        crate's example server was built by hand. Example:
#        RUST_SMB_SERVER_CMD='SMB_LISTEN=127.0.0.1:$RUST_SMB_PORT \
#          SMB_IDLE_TIMEOUT_S=$RUST_SMB_IDLE_TIMEOUT_S SMB_ROOT=/tmp/rsmb-root /path/to/rsmb' \
#          scripts/compare-samba.sh 1000
# The issue's figure (10,000 sessions idle for a minute, no probes):
#        TIMEOUT_MIN=4 IDLE_WINDOW_S=60 PROBES=0 scripts/compare-samba.sh 10000
set -euo pipefail

N="${1:-1000}"
SMBCORE_PORT="${SMBCORE_PORT:-14450}"
SMBD_PORT="${SMBD_PORT:-14451}"
IDLE_WINDOW_S="${IDLE_WINDOW_S:-20}"
TIMEOUT_MIN="${TIMEOUT_MIN:-1}"
PROBES="${PROBES:-2}"
RUST_SMB_SERVER_CMD="${RUST_SMB_SERVER_CMD:-}"
RUST_SMB_NAME="${RUST_SMB_NAME:-smb-server (Rust)}"
export RUST_SMB_PORT="${RUST_SMB_PORT:-14452}"
export RUST_SMB_IDLE_TIMEOUT_S="$((TIMEOUT_MIN * 60))"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

for tool in smbd python3 cargo setsid; do
    command -v "$tool" >/dev/null || { echo "compare-samba: $tool not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "compare-samba: must run as root (smbd)" >&2; exit 1; }

(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q --bin smbcore --bin smb-loadgen)
SMBCORE="$TARGET_DIR/release/smbcore"
LOADGEN="$TARGET_DIR/release/smb-loadgen"

. "$ROOT/scripts/lib/samba-sandbox.sh"
WORK="$(mktemp -d /tmp/smbcmp.XXXXXX)"
SMBCORE_PID=""
SMBD_PID=""
RUST_PID=""
LG_PID=""
cleanup() {
    [ -n "$LG_PID" ] && { kill "$LG_PID" 2>/dev/null || true; wait "$LG_PID" 2>/dev/null || true; }
    [ -n "$SMBCORE_PID" ] && { kill "$SMBCORE_PID" 2>/dev/null || true; wait "$SMBCORE_PID" 2>/dev/null || true; }
    if [ -n "$RUST_PID" ]; then
        # The third server runs in its own session and process group (setsid).
        kill -- "-$RUST_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$RUST_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 -- "-$RUST_PID" 2>/dev/null || true
        wait "$RUST_PID" 2>/dev/null || true
    fi
    samba_stop "$WORK" "$SMBD_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# pids_of KIND ROOTPID: the server's processes (smbd and the third server: their whole session).
pids_of() {
    if [ "$1" = smbd ] || [ "$1" = rust ]; then ps -o pid= -s "$2" | tr -d ' '; else echo "$2"; fi
}
# mem_kib KIND ROOTPID: RSS (summed over the third server's processes), or the PSS sum over
# smbd's processes (KiB).
mem_kib() {
    local total=0 v
    for p in $(pids_of "$1" "$2"); do
        if [ "$1" = smbd ]; then
            v="$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)"
        else
            v="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)"
        fi
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
# cpu_snapshot KIND ROOTPID: "pid ticks" lines (utime + stime, fields 14 and 15).
cpu_snapshot() {
    for p in $(pids_of "$1" "$2"); do
        [ -r "/proc/$p/stat" ] || continue
        sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk -v p="$p" '{print p, $12 + $13}'
    done
}

# measure NAME KIND ROOTPID PORT [LABEL]: runs the load, prints one JSON line of figures.
measure() {
    local name="$1" kind="$2" root="$3" port="$4" label="${5:-$1}"
    local json="$WORK/$name.json" log="$WORK/$name.log"
    local mem0; mem0="$(mem_kib "$kind" "$root")"
    "$LOADGEN" --target "127.0.0.1:$port" --sessions "$N" --concurrency 32 \
        --autodisconnect "${TIMEOUT_MIN}m" --hold 20s --probes "$PROBES" --probe-rate 50 --baseline 2s \
        --no-progress --json "$json" >"$WORK/$name.out" 2>"$log" &
    LG_PID=$!
    for _ in $(seq 1200); do
        grep -q '^opening: .* done' "$log" 2>/dev/null && break
        kill -0 "$LG_PID" 2>/dev/null || break
        sleep 0.1
    done
    sleep 3
    local mem1; mem1="$(mem_kib "$kind" "$root")"
    cpu_snapshot "$kind" "$root" >"$WORK/$name.cpu0"
    sleep "$IDLE_WINDOW_S"
    cpu_snapshot "$kind" "$root" >"$WORK/$name.cpu1"
    wait "$LG_PID" || true
    LG_PID=""
    [ -s "$json" ] || { echo "compare-samba: no result for $name:" >&2; cat "$log" >&2; exit 1; }
    python3 - "$json" "$mem0" "$mem1" "$WORK/$name.cpu0" "$WORK/$name.cpu1" "$IDLE_WINDOW_S" "$label" "$kind" <<'EOF'
import json, os, sys
j = json.load(open(sys.argv[1]))
kind = sys.argv[8]
mem0, mem1 = int(sys.argv[2]), int(sys.argv[3])
def snap(p):
    d = {}
    for line in open(p):
        pid, t = line.split()
        d[pid] = int(t)
    return d
a, b = snap(sys.argv[4]), snap(sys.argv[5])
hz = os.sysconf("SC_CLK_TCK")
cpu = sum(b[p] - a[p] for p in b if p in a) / hz
opened = max(j["opened"], 1)
print(json.dumps({
    "server": sys.argv[7],
    "mem": "PSS" if kind == "smbd" else "RSS",
    "opened": j["opened"],
    "setup_per_sec": j["setup_per_sec"],
    "kib_per_session": (mem1 - mem0) / opened,
    "lateness_p50_ms": j["lateness_ms"]["p50"],
    "lateness_p99_ms": j["lateness_ms"]["p99"],
    "lateness_max_ms": j["lateness_ms"]["max"],
    "reaped_early": j["reaped_early"],
    "never_reaped": j["never_reaped"],
    "idle_cpu_s": cpu,
    "idle_window_s": float(sys.argv[6]),
    "probe_p99_baseline_ms": (j.get("probe_ms") or {}).get("baseline", {}).get("p99"),
    "probe_p99_idle_ms": (j.get("probe_ms") or {}).get("idle", {}).get("p99"),
}))
EOF
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "compare-samba: nothing listens on port $1" >&2
    return 1
}

# ---- smbcore ----
"$SMBCORE" serve --listen "127.0.0.1:$SMBCORE_PORT" --autodisconnect "$TIMEOUT_MIN" \
    --admin-socket "$WORK/smbcore.sock" >"$WORK/smbcore.server.log" 2>&1 &
SMBCORE_PID=$!
wait_port "$SMBCORE_PORT"
echo "compare-samba: smbcore: $N sessions ..." >&2
measure smbcore smbcore "$SMBCORE_PID" "$SMBCORE_PORT" >"$WORK/rows"
kill "$SMBCORE_PID"; wait "$SMBCORE_PID" 2>/dev/null || true; SMBCORE_PID=""

# ---- Samba ----
CONF="$WORK/smb.conf"
{
    samba_global_conf "$WORK" "$SMBD_PORT" COMPARE SMBCMP 0
    echo "    deadtime = $TIMEOUT_MIN"
    echo "    max connections = 0"
} >"$CONF"
samba_start "$WORK" "$CONF"
wait_port "$SMBD_PORT"
echo "compare-samba: Samba smbd $(smbd --version | sed 's/Version //'): $N sessions ..." >&2
measure samba smbd "$SMBD_PID" "$SMBD_PORT" >>"$WORK/rows"

# ---- the third server (optional; built by hand, see loadgen/README.md) ----
if [ -n "$RUST_SMB_SERVER_CMD" ]; then
    # smbd's tree goes first, so that it does not share the machine with the third server.
    samba_stop "$WORK" "$SMBD_PID"
    SMBD_PID=""
    setsid bash -c "$RUST_SMB_SERVER_CMD" >"$WORK/rust.server.log" 2>&1 &
    RUST_PID=$!
    wait_port "$RUST_SMB_PORT" || { cat "$WORK/rust.server.log" >&2; exit 1; }
    echo "compare-samba: $RUST_SMB_NAME: $N sessions ..." >&2
    measure rust rust "$RUST_PID" "$RUST_SMB_PORT" "$RUST_SMB_NAME" >>"$WORK/rows"
fi

# ---- the table ----
python3 - "$WORK/rows" "$N" <<'EOF'
import json, sys, platform, datetime, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"{sys.argv[2]} anonymous IPC$ sessions, same load, one run, {datetime.date.today()} on "
      f"{os.cpu_count()} x {model}, Linux {platform.release()}")
print()
def f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)
print("| server | setup sessions/s | memory per idle session | reaping lateness p50 / p99 / max | early / never reaped | CPU s while idle | probe p99 without / with idle sessions |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    mem = r["mem"]
    print(f"| {r['server']} | {r['setup_per_sec']:.0f} | {r['kib_per_session']:.1f} KiB ({mem}) | "
          f"{f(r['lateness_p50_ms'])} / {f(r['lateness_p99_ms'])} / {f(r['lateness_max_ms'])} ms | "
          f"{r['reaped_early']} / {r['never_reaped']} | {r['idle_cpu_s']:.2f} in {r['idle_window_s']:.0f} s | "
          f"{f(r['probe_p99_baseline_ms'])} / {f(r['probe_p99_idle_ms'])} ms |")
EOF
