#!/usr/bin/env bash
# Four servers side by side, in one run: smbcore on mio, smbcore on io_uring, Samba's smbd
# (loopback high port, private configuration, scripts/lib/samba-sandbox.sh) and, when
# RUST_SMB_SERVER_CMD is set, the Rust `smb-server` crate's example server. One server at a
# time, each started fresh and stopped before the next; prints one markdown table per figure,
# with the ratio of io_uring smbcore to the best of the other servers (see loadgen/README.md,
# "Four servers side by side").
#
# Figures, for each server:
#   1. smbtorture smb2.bench.echo (nprocs=4, qdepth=4, anonymous IPC$): echo/s, and the
#      server's user/system CPU per echo (/proc/PID/stat, summed over its processes);
#   2. smb-loadgen --scenario echo, 100 and 1,000 connections, queue depth 4: requests/s and
#      latency p50/p99 (corrected for coordinated omission);
#   3. session setups/s, one session per connection: smb-loadgen --scenario churn
#      --new-connection-each-time (connect, NEGOTIATE, SESSION_SETUP x2, TREE_CONNECT IPC$,
#      LOGOFF, close; 100 in progress at once), SESSIONS sessions or SETUP_MAX_S, whichever
#      ends first;
#   4. smbcore only (mio and io_uring): reaping lateness of an idle run (smb-loadgen
#      --scenario idle, REAP_SESSIONS sessions, autodisconnect REAP_TIMEOUT_S) alone, and
#      again while a second smb-loadgen runs --scenario echo against the same server at full
#      speed. ECHO is no session activity, so an echo connection would itself be reaped after
#      REAP_TIMEOUT_S: the echo load runs as back-to-back runs of REAP_TIMEOUT_S - 3 seconds,
#      each on fresh connections (a gap of a few tens of ms between two runs).
#
# Usage: scripts/bench-peers.sh [ECHO_SECONDS] [SESSIONS]     (defaults 10 and 10000)
# Env:   REAP_SESSIONS (2000), REAP_TIMEOUT_S (10), REAP_ECHO_CONNECTIONS (100),
#        SETUP_MAX_S (60: the longest a setup-rate run may take; Samba forks per connection),
#        SKIP_SAMBA=1 (no smbd), SMBCORE_EXTRA (extra `smbcore serve` options, e.g.
#        "--threads 1"), CARGO_TARGET_DIR (where the release binaries are built).
#        RUST_SMB_SERVER_CMD (optional): a shell command line that starts the Rust peer in the
#        foreground, listening on 127.0.0.1:$RUST_SMB_PORT; the script exports RUST_SMB_PORT
#        (a free port) and RUST_SMB_IDLE_TIMEOUT_S (900); RUST_SMB_NAME names its row
#        (default "smb-server (Rust)"). Not set: the peer is skipped, with a line saying so.
#        Example (how it was built: loadgen/README.md):
#        RUST_SMB_SERVER_CMD='SMB_LISTEN=127.0.0.1:$RUST_SMB_PORT \
#          SMB_IDLE_TIMEOUT_S=$RUST_SMB_IDLE_TIMEOUT_S SMB_MAX_CONNECTIONS=20000 \
#          SMB_ROOT=/tmp/rsmb-root /work/targets/rustsmb/release/rsmb' scripts/bench-peers.sh
#
# Needs: root (smbd), smbtorture (samba-testsuite), smbd (samba), python3, /usr/bin/time (time). Loopback only;
# every step is bounded in time; every process it starts is stopped on exit (trap).
# A run with the defaults takes about 6 minutes (3 with ECHO_SECONDS=5 SESSIONS=2000).
set -euo pipefail

ECHO_S="${1:-10}"
SESSIONS="${2:-10000}"
REAP_SESSIONS="${REAP_SESSIONS:-2000}"
REAP_TIMEOUT_S="${REAP_TIMEOUT_S:-10}"
REAP_ECHO_CONNECTIONS="${REAP_ECHO_CONNECTIONS:-100}"
SETUP_MAX_S="${SETUP_MAX_S:-60}"
SKIP_SAMBA="${SKIP_SAMBA:-0}"
RUST_SMB_SERVER_CMD="${RUST_SMB_SERVER_CMD:-}"
RUST_SMB_NAME="${RUST_SMB_NAME:-smb-server (Rust)}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

say() { echo "bench-peers: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$REAP_TIMEOUT_S" -ge 4 ] || die "REAP_TIMEOUT_S must be at least 4 (the echo runs beside it last REAP_TIMEOUT_S - 3 s)"
for tool in python3 cargo setsid timeout; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
HAVE_TORTURE=1
command -v smbtorture >/dev/null || { HAVE_TORTURE=0; say "smbtorture not found (package samba-testsuite): figure 1 is skipped"; }
if [ "$SKIP_SAMBA" = 1 ]; then
    say "SKIP_SAMBA=1: Samba is skipped"
elif ! command -v smbd >/dev/null; then
    SKIP_SAMBA=1; say "smbd not found (package samba): Samba is skipped"
elif [ "$(id -u)" != 0 ]; then
    SKIP_SAMBA=1; say "not root: Samba (smbd) is skipped"
fi

(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q --bin smbcore --bin smb-loadgen)
SMBCORE="$TARGET_DIR/release/smbcore"
LOADGEN="$TARGET_DIR/release/smb-loadgen"

. "$ROOT/scripts/lib/samba-sandbox.sh"
. "$ROOT/scripts/lib/bench-results.sh"
WORK="$(mktemp -d /tmp/benchpeers.XXXXXX)"
chmod 700 "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# The server under test: SRV_KIND (smbcore, smbd or rust), SRV_PID (for smbd and rust: the
# leader of its own session, started with setsid), SRV_PORT. BURSTS_PID: the echo-run loop of
# figure 4, in its own session too.
SRV_KIND=""
SRV_PID=""
SRV_PORT=""
SMBD_PID=""
BURSTS_PID=""
kill_session() { # PID: TERM, then KILL, to the process group PID leads
    kill -- "-$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- "-$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
stop_server() {
    case "$SRV_KIND" in
        smbcore) kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true ;;
        smbd) samba_stop "$WORK/samba" "$SMBD_PID"; SMBD_PID="" ;;
        rust) kill_session "$SRV_PID" ;;
    esac
    SRV_KIND=""; SRV_PID=""
}
cleanup() {
    [ -n "$BURSTS_PID" ] && kill_session "$BURSTS_PID"
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # PORT
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start_smbcore() { # TRANSPORT [AUTODISCONNECT]
    SRV_KIND=smbcore; SRV_PORT="$(free_port)"
    # shellcheck disable=SC2086
    "$SMBCORE" serve --listen "127.0.0.1:$SRV_PORT" --admin-socket "$WORK/smbcore-$SRV_PORT.sock" \
        --transport "$1" --autodisconnect "${2:-15}" ${SMBCORE_EXTRA:-} \
        >"$WORK/smbcore-$SRV_PORT.log" 2>&1 &
    SRV_PID=$!
    wait_port "$SRV_PORT" || { cat "$WORK/smbcore-$SRV_PORT.log" >&2; die "smbcore did not listen"; }
}
start_samba() {
    SRV_KIND=smbd; SRV_PORT="$(free_port)"
    {
        samba_global_conf "$WORK/samba" "$SRV_PORT" BENCHPEERS BENCHPEERS 0
        echo "    max connections = 0"
    } >"$WORK/smb.conf"
    samba_start "$WORK/samba" "$WORK/smb.conf"
    SRV_PID="$SMBD_PID"
    wait_port "$SRV_PORT" || { cat "$WORK/samba/log/smbd.out" >&2; die "smbd did not listen"; }
}
start_rust() {
    SRV_KIND=rust; SRV_PORT="$(free_port)"
    export RUST_SMB_PORT="$SRV_PORT" RUST_SMB_IDLE_TIMEOUT_S=900
    setsid bash -c "$RUST_SMB_SERVER_CMD" >"$WORK/rust.log" 2>&1 &
    SRV_PID=$!
    wait_port "$SRV_PORT" || { cat "$WORK/rust.log" >&2; die "the Rust peer did not listen on $SRV_PORT"; }
}

# cpu_ticks -> "user system" clock ticks, summed over the server's processes, each with the
# children it has waited for (cutime, cstime): smbd's per-connection processes that exit
# before the second sample still count, in the parent's.
cpu_ticks() {
    local pids="$SRV_PID"
    [ "$SRV_KIND" = smbcore ] || pids="$(ps -o pid= -s "$SRV_PID" | tr -d ' ')"
    for p in $pids; do
        sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true
    done | awk '{u += $12 + $14; s += $13 + $15} END {print u + 0, s + 0}'
}

# client_cpu FILE: user + system CPU seconds of a client run (/usr/bin/time -f '%U %S'), or null.
client_cpu() {
    awk 'NF == 2 && $1 ~ /^[0-9.]+$/ {v = $1 + $2} END {if (v == "") print "null"; else print v}' "$1" 2>/dev/null || echo null
}

# record SERVER FIGURE KEY=VALUE... : one JSON line of results (values are JSON or strings).
record() { json_row "server figure" "$@" >>"$RESULTS"; }

# ---- figure 1: smbtorture smb2.bench.echo ----
fig_torture() { # NAME
    [ "$HAVE_TORTURE" = 1 ] || return 0
    local out="$WORK/torture-$SRV_PORT.txt" u0 s0 u1 s1 rate
    say "$1: smbtorture smb2.bench.echo, ${ECHO_S} s ..."
    read -r u0 s0 < <(cpu_ticks)
    /usr/bin/time -f '%U %S' -o "$out.cpu" \
        timeout -k 5 $((ECHO_S + 60)) smbtorture "//127.0.0.1/IPC\$" -p "$SRV_PORT" -U% smb2.bench.echo \
        --option=torture:timelimit="$ECHO_S" --option=torture:nprocs=4 --option=torture:qdepth=4 \
        >"$out" 2>&1 || true
    read -r u1 s1 < <(cpu_ticks)
    # The last num/s is the run's average (finished echos / timelimit); the earlier ones are
    # per-second progress lines.
    rate="$(grep -o 'num/s=[0-9]*' "$out" | tail -1 | cut -d= -f2)"
    if [ -n "$rate" ] && grep -q '^success: echo' "$out"; then
        record "$1" torture "echo_per_sec=$rate" "user_ticks=$((u1 - u0))" "sys_ticks=$((s1 - s0))" \
            "seconds=$ECHO_S" "client_cpu_s=$(client_cpu "$out.cpu")"
    else
        record "$1" torture "error=$(last_line "$out")"
    fi
}

# ---- figure 2: smb-loadgen --scenario echo ----
fig_echo() { # NAME CONNECTIONS
    local json="$WORK/echo-$SRV_PORT-$2.json" log="$WORK/echo-$SRV_PORT-$2.log"
    say "$1: smb-loadgen --scenario echo, $2 connections, ${ECHO_S} s ..."
    timeout -k 5 $((ECHO_S + 120)) "$LOADGEN" --scenario echo --target "127.0.0.1:$SRV_PORT" \
        --connections "$2" --queue-depth 4 --duration "${ECHO_S}s" --no-progress --json "$json" \
        >"$log" 2>&1 || true
    if [ -s "$json" ]; then
        record "$1" "echo$2" "connections=$2" "rate=$(jget "$json" 'j["requests_per_sec"]')" \
            "p50=$(jget "$json" 'j["latency_ms"]["p50"]')" "p99=$(jget "$json" 'j["latency_ms"]["p99"]')" \
            "errors=$(jget "$json" 'j["errors"] + j["setup_failed"]')" \
            "ready=$(jget "$json" 'j["connections_ready"]')"
    else
        record "$1" "echo$2" "connections=$2" "error=$(first_error "$log")"
    fi
}

# ---- figure 3: session setups/s, one session per connection ----
fig_setup() { # NAME
    local json="$WORK/setup-$SRV_PORT.json" log="$WORK/setup-$SRV_PORT.log" u0 s0 u1 s1
    read -r u0 s0 < <(cpu_ticks)
    say "$1: smb-loadgen --scenario churn --new-connection-each-time, $SESSIONS sessions (at most ${SETUP_MAX_S} s) ..."
    /usr/bin/time -f '%U %S' -o "$json.cpu" \
    timeout -k 5 $((SETUP_MAX_S + 120)) "$LOADGEN" --scenario churn --new-connection-each-time \
        --target "127.0.0.1:$SRV_PORT" --connections 100 --sessions "$SESSIONS" \
        --duration "${SETUP_MAX_S}s" --no-progress --json "$json" >"$log" 2>&1 || true
    read -r u1 s1 < <(cpu_ticks)
    if [ -s "$json" ]; then
        record "$1" setup "user_ticks=$((u1 - u0))" "sys_ticks=$((s1 - s0))" "rate=$(jget "$json" 'j["sessions_per_sec"]')" \
            "completed=$(jget "$json" 'j["sessions_completed"]')" "failed=$(jget "$json" 'j["sessions_failed"]')" \
            "p50=$(jget "$json" 'j["session_ms"]["p50"]')" "p99=$(jget "$json" 'j["session_ms"]["p99"]')" \
            "first_error=$(jget "$json" 'j["first_error"]')" "client_cpu_s=$(client_cpu "$json.cpu")"
    else
        record "$1" setup "error=$(first_error "$log")"
    fi
}

# ---- figure 4: reaping lateness, alone and under an echo load (smbcore only) ----
fig_reaping() { # NAME TRANSPORT
    local load json log burst_s=$((REAP_TIMEOUT_S - 3))
    for load in none echo; do
        start_smbcore "$2" "${REAP_TIMEOUT_S}s"
        json="$WORK/reap-$SRV_PORT.json"; log="$WORK/reap-$SRV_PORT.log"
        if [ "$load" = echo ]; then
            say "$1: idle run, $REAP_SESSIONS sessions, with echo runs of ${burst_s} s beside it ..."
            mkdir -p "$WORK/bursts-$SRV_PORT"
            setsid bash -c 'i=0
                while [ ! -e "$1/stop" ]; do
                    i=$((i + 1))
                    "$2" --scenario echo --target "127.0.0.1:$3" --connections "$4" --queue-depth 4 \
                        --duration "$5s" --no-progress --json "$1/$i.json" >"$1/$i.log" 2>&1 || true
                done' bursts "$WORK/bursts-$SRV_PORT" "$LOADGEN" "$SRV_PORT" "$REAP_ECHO_CONNECTIONS" "$burst_s" \
                </dev/null >/dev/null 2>&1 &
            BURSTS_PID=$!
            sleep 1   # the first echo run is set up and sending
        else
            say "$1: idle run, $REAP_SESSIONS sessions, nothing else ..."
        fi
        timeout -k 5 $((REAP_TIMEOUT_S + 180)) "$LOADGEN" --target "127.0.0.1:$SRV_PORT" \
            --sessions "$REAP_SESSIONS" --autodisconnect "${REAP_TIMEOUT_S}s" --hold 2s \
            --probes 0 --baseline 0s --no-progress --json "$json" >"$log" 2>&1 || true
        local extra=()
        if [ "$load" = echo ]; then
            touch "$WORK/bursts-$SRV_PORT/stop"
            for _ in $(seq $(((burst_s + 15) * 10))); do kill -0 "$BURSTS_PID" 2>/dev/null || break; sleep 0.1; done
            kill_session "$BURSTS_PID"; BURSTS_PID=""
            extra=("echo=$(python3 - "$WORK/bursts-$SRV_PORT" <<'EOF'
import glob, json, sys
runs = []
for f in glob.glob(sys.argv[1] + "/*.json"):
    try:
        runs.append(json.load(open(f)))
    except ValueError:
        pass
answered = sum(r["requests_answered"] for r in runs)
secs = sum(r["seconds"] for r in runs)
print(json.dumps({"runs": len(runs), "rate": answered / secs if secs else None,
                  "errors": sum(r["errors"] + r["setup_failed"] for r in runs)}))
EOF
)")
        fi
        if [ -s "$json" ]; then
            record "$1" reaping "load=$load" "opened=$(jget "$json" 'j["opened"]')" \
                "setup_rate=$(jget "$json" 'j["setup_per_sec"]')" \
                "p50=$(jget "$json" 'j["lateness_ms"]["p50"]')" "p99=$(jget "$json" 'j["lateness_ms"]["p99"]')" \
                "max=$(jget "$json" 'j["lateness_ms"]["max"]')" "early=$(jget "$json" 'j["reaped_early"]')" \
                "never=$(jget "$json" 'j["never_reaped"]')" "${extra[@]}"
        else
            record "$1" reaping "load=$load" "error=$(first_error "$log")" "${extra[@]}"
        fi
        stop_server
    done
}

all_figures() { # NAME: figures 1 to 3 against the server just started
    fig_torture "$1"
    fig_echo "$1" 100
    fig_echo "$1" 1000
    fig_setup "$1"
}

# ---- the run ----
for t in mio io-uring; do
    name="smbcore ($t)"
    start_smbcore "$t"
    all_figures "$name"
    stop_server
    fig_reaping "$name" "$t"
done
if [ "$SKIP_SAMBA" != 1 ]; then
    name="Samba $(smbd --version | sed 's/^Version //')"
    start_samba
    all_figures "$name"
    stop_server
fi
SKIPPED_RUST=""
if [ -n "$RUST_SMB_SERVER_CMD" ]; then
    start_rust
    all_figures "$RUST_SMB_NAME"
    stop_server
else
    SKIPPED_RUST="RUST_SMB_SERVER_CMD is not set: the Rust smb-server peer was skipped (loadgen/README.md says how to build and name it)."
    say "$SKIPPED_RUST"
fi

# ---- the tables ----
python3 - "$RESULTS" "$ECHO_S" "$SESSIONS" "$SETUP_MAX_S" "$REAP_SESSIONS" "$REAP_TIMEOUT_S" \
    "$REAP_ECHO_CONNECTIONS" "$(getconf CLK_TCK)" "$SKIPPED_RUST" <<'EOF'
import datetime, json, os, platform, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
echo_s, sessions, setup_max, reap_n, reap_t, reap_c, hz = map(int, sys.argv[2:9])
skipped = sys.argv[9]
IOU = "smbcore (io-uring)"
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
load = os.getloadavg()[0]
print(f"bench-peers, one run, {datetime.datetime.now():%Y-%m-%d %H:%M} on {os.cpu_count()} x {model}, "
      f"Linux {platform.release()} (load average {load:.1f} at the end); client and server share the machine.")
if skipped:
    print()
    print(skipped)

def fig(name):
    return [r for r in rows if r["figure"] == name]
def num(v, fmt="{:,.0f}"):
    return "-" if v is None else fmt.format(v)
def ms(v):
    return "-" if v is None else f"{v:.2f}"
NCPU = os.cpu_count() or 1
CEILING_NOTE = (f"\nThe ceiling is what the client alone could drive on this machine's {NCPU} cores "
                "if the server used no CPU at all: cores / the client's CPU per operation "
                "(client and server share the cores).")

def client(r, n):
    """The client's CPU per operation (µs) and the zero-cost-server ceiling, as two cells."""
    c = r.get("client_cpu_s")
    if not c or not n:
        return "- | -"
    per = c * 1e6 / n
    return f"{per:.1f} | {num(NCPU * 1e6 / per)}"

def ratio(rs, key="rate"):
    """io_uring smbcore's value / the best other server's (higher is better)."""
    mine = next((r.get(key) for r in rs if r["server"] == IOU), None)
    others = [r for r in rs if r["server"] != IOU and r.get(key)]
    if not mine or not others:
        return "ratio: - (a server gave no figure)"
    best = max(others, key=lambda r: r[key])
    return f"io_uring smbcore / best other ({best['server']}, {num(best[key])}): **{mine / best[key]:.2f}x**"

rs = fig("torture")
if rs:
    print(f"\n### 1. smbtorture smb2.bench.echo, nprocs=4 qdepth=4, {echo_s} s\n")
    print("| server | echo/s | server CPU per echo, user / system (µs) | smbtorture's CPU per echo (µs) | ceiling with a server that costs nothing (echo/s) |")
    print("|---|---:|---:|---:|---:|")
    for r in rs:
        if "error" in r:
            print(f"| {r['server']} | failed: {r['error']} | - | - | - |")
            continue
        n = r["echo_per_sec"] * r["seconds"]
        u, s = r["user_ticks"] / hz * 1e6 / max(n, 1), r["sys_ticks"] / hz * 1e6 / max(n, 1)
        r["rate"] = r["echo_per_sec"]
        print(f"| {r['server']} | {num(r['echo_per_sec'])} | {u:.2f} / {s:.2f} | {client(r, n)} |")
    print(f"\n{ratio(rs)}")
    print(CEILING_NOTE)

for c in (100, 1000):
    rs = fig(f"echo{c}")
    print(f"\n### 2. smb-loadgen --scenario echo, {c:,} connections, queue depth 4, {echo_s} s\n")
    print("| server | requests/s | latency p50 / p99 (ms, corrected) | errors |")
    print("|---|---:|---:|---:|")
    for r in rs:
        if "error" in r:
            print(f"| {r['server']} | failed: {r['error']} | - | - |")
        else:
            print(f"| {r['server']} | {num(r['rate'])} | {ms(r['p50'])} / {ms(r['p99'])} | {r['errors']} |")
    print(f"\n{ratio(rs)}")

rs = fig("setup")
print(f"\n### 3. Session setups/s, one session per connection (smb-loadgen --scenario churn "
      f"--new-connection-each-time, 100 at once, {sessions:,} sessions or {setup_max} s)\n")
print("| server | sessions/s | session p50 / p99 (ms, corrected) | completed / failed | server CPU per session, user / system (µs) | smb-loadgen's CPU per session (µs) | ceiling with a server that costs nothing (sessions/s) | ceiling with the server's system time only (sessions/s) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rs:
    if "error" in r:
        print(f"| {r['server']} | failed: {r['error']} | - | - | - | - | - | - |")
    else:
        err = f" ({r['first_error']})" if r.get("first_error") else ""
        n = max(r["completed"] or 0, 1)
        u, s = r["user_ticks"] / hz * 1e6 / n, r["sys_ticks"] / hz * 1e6 / n
        c = r.get("client_cpu_s")
        sys_only = num(NCPU * 1e6 / (c * 1e6 / n + s)) if c else "-"
        print(f"| {r['server']} | {num(r['rate'])} | {ms(r['p50'])} / {ms(r['p99'])} | "
              f"{r['completed']} / {r['failed']}{err} | {u:.1f} / {s:.1f} | {client(r, r['completed'])} | {sys_only} |")
print(f"\n{ratio(rs)}")
print(CEILING_NOTE + " The last column adds the server's system time (the kernel's TCP and "
      "socket work for it) to the client's: what any server on the kernel's TCP could reach "
      "at most, whatever its own code costs.")

rs = fig("reaping")
if rs:
    print(f"\n### 4. Reaping lateness, smbcore: {reap_n:,} idle sessions, autodisconnect {reap_t} s, "
          f"alone and beside an echo load ({reap_c} connections, queue depth 4, runs of {reap_t - 3} s)\n")
    print("| server | echo load beside | lateness p50 / p99 / max (ms) | early / never reaped | echo requests/s beside (runs, errors) |")
    print("|---|---|---:|---:|---:|")
    for r in rs:
        e = r.get("echo")
        beside = "-" if not e else f"{num(e['rate'])} ({e['runs']}, {e['errors']})"
        if "error" in r:
            print(f"| {r['server']} | {r['load']} | failed: {r['error']} | - | {beside} |")
        else:
            print(f"| {r['server']} | {r['load']} | {ms(r['p50'])} / {ms(r['p99'])} / {ms(r['max'])} | "
                  f"{r['early']} / {r['never']} | {beside} |")
    p99 = {r["server"]: r.get("p99") for r in rs if r["load"] == "echo"}
    if p99.get(IOU) and p99.get("smbcore (mio)"):
        print(f"\nlateness p99 beside the echo load, io_uring / mio: **{p99[IOU] / p99['smbcore (mio)']:.2f}x** (lower is better)")
    for r in rs:
        if r["server"] == IOU and r["load"] == "echo" and r.get("p99") is not None:
            ok = r["p99"] <= 2.0 and r["early"] == 0
            print(f"\nio_uring under echo load: p99 {r['p99']:.2f} ms, {r['early']} early "
                  f"(target p99 <= 2 ms, 0 early: {'met' if ok else 'missed'})")
EOF
