#!/usr/bin/env bash
# SMB3 encryption, what it costs, four servers side by side in one run: smbcore on mio, smbcore
# on io_uring, Samba's smbd (loopback high port, private configuration,
# scripts/lib/samba-sandbox.sh) and, when RUST_SMB_SERVER_CMD is set, the Rust `smb-server`
# crate's example server. Each server runs twice, started fresh each time: once in the clear
# (the baseline) and once with every session encrypted:
#
#   smbcore   --encryption required
#   smbd      server smb encrypt = required
#   Rust peer RUST_SMB_ENCRYPT=1 in its command's environment (SmbServerBuilder::encrypt_data
#             and Share::encrypt_data; the command line decides how it passes that on)
#
# and each run measures, with the release smb-loadgen logged in as a user (NTLMv2; requests are
# signed in the clear run and sealed in TRANSFORM messages with --encrypt in the encrypted run,
# MS-SMB2 3.1.4.3; a response in the clear fails an encrypted connection):
#
#   echo/s:    smb-loadgen --scenario echo, CONNECTIONS connections, queue depth QUEUE_DEPTH,
#              ECHO_SECONDS s: requests/s and latency p50/p99 (corrected for coordinated omission);
#   setups/s:  smb-loadgen --scenario churn --new-connection-each-time (connect, NEGOTIATE,
#              SESSION_SETUP x2, TREE_CONNECT IPC$, LOGOFF, close; 100 in progress at once),
#              SESSIONS sessions or SETUP_MAX_S, whichever ends first.
#
# One markdown table: each server's clear and encrypted figures and the encrypted / clear ratio
# (what encryption costs on that server), then io_uring smbcore's encrypted figures over the
# best peer's (the best server that is not smbcore) and over mio smbcore's.
#
# Usage: scripts/bench-encryption.sh [ECHO_SECONDS] [SESSIONS]     (defaults 10 and 5000)
# Env:   CIPHER (aes-128-gcm; aes-128-ccm, aes-256-ccm or aes-256-gcm: the only cipher the
#        encrypted runs offer, so every server uses it or the run fails and says so),
#        CONNECTIONS (100), QUEUE_DEPTH (4), SETUP_MAX_S (60), SKIP_SAMBA=1, SMBCORE_EXTRA
#        (extra `smbcore serve` options), CARGO_TARGET_DIR (where the release binaries are built),
#        KEEP_WORK=1 (keep the servers' logs and smb-loadgen's JSON and logs, and say where).
#        RUST_SMB_SERVER_CMD (optional): a shell command line that starts the Rust peer in the
#        foreground on 127.0.0.1:$RUST_SMB_PORT with user $RUST_SMB_USER (default alice) whose
#        password is $RUST_SMB_PASSWORD, encrypting every session when $RUST_SMB_ENCRYPT is 1;
#        the script exports RUST_SMB_PORT, RUST_SMB_PASSWORD, RUST_SMB_ENCRYPT (0 or 1) and
#        RUST_SMB_IDLE_TIMEOUT_S (900). RUST_SMB_NAME names its row (default "smb-server
#        (Rust)"). Not set: the peer is skipped, with a line saying so. Example, with the peer
#        built as loadgen/README.md says ("The Rust peer with encryption"):
#        RUST_SMB_SERVER_CMD='SMB_LISTEN=127.0.0.1:$RUST_SMB_PORT SMB_PASSWORD=$RUST_SMB_PASSWORD \
#          SMB_ENCRYPT=$RUST_SMB_ENCRYPT SMB_IDLE_TIMEOUT_S=$RUST_SMB_IDLE_TIMEOUT_S \
#          SMB_MAX_CONNECTIONS=20000 SMB_ROOT=/tmp/rsmb-root /work/targets/rustsmb/release/rsmb' \
#          scripts/bench-encryption.sh
#
# Needs: root (smbd), smbd (samba), pdbedit, python3. Loopback only; every step is bounded in
# time; every process it starts is stopped on exit (trap). A run with the defaults takes about
# 4 minutes with all four servers.
set -euo pipefail

ECHO_S="${1:-10}"
SESSIONS="${2:-5000}"
CIPHER="${CIPHER:-aes-128-gcm}"
CONNECTIONS="${CONNECTIONS:-100}"
QUEUE_DEPTH="${QUEUE_DEPTH:-4}"
SETUP_MAX_S="${SETUP_MAX_S:-60}"
SKIP_SAMBA="${SKIP_SAMBA:-0}"
RUST_SMB_SERVER_CMD="${RUST_SMB_SERVER_CMD:-}"
RUST_SMB_NAME="${RUST_SMB_NAME:-smb-server (Rust)}"
RUST_SMB_USER="${RUST_SMB_USER:-alice}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

say() { echo "bench-encryption: $*" >&2; }
die() { say "$*"; exit 1; }

case "$CIPHER" in
    aes-128-ccm | aes-128-gcm | aes-256-ccm | aes-256-gcm) ;;
    *) die "CIPHER must be aes-128-ccm, aes-128-gcm, aes-256-ccm or aes-256-gcm (not $CIPHER)" ;;
esac
for tool in python3 cargo setsid timeout; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
if [ "$SKIP_SAMBA" = 1 ]; then
    say "SKIP_SAMBA=1: Samba is skipped"
elif ! command -v smbd >/dev/null || ! command -v pdbedit >/dev/null; then
    SKIP_SAMBA=1; say "smbd or pdbedit not found (package samba): Samba is skipped"
elif [ "$(id -u)" != 0 ]; then
    SKIP_SAMBA=1; say "not root: Samba (smbd) is skipped"
fi

(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q --bin smbcore --bin smb-loadgen)
SMBCORE="$TARGET_DIR/release/smbcore"
LOADGEN="$TARGET_DIR/release/smb-loadgen"

. "$ROOT/scripts/lib/samba-sandbox.sh"
. "$ROOT/scripts/lib/bench-results.sh"
WORK="$(mktemp -d /tmp/benchenc.XXXXXX)"
chmod 700 "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# One password for every server's user: smbcore's `bench` (users file), Samba's tdbsam account
# for root (smbd runs as root here), the Rust peer's $RUST_SMB_USER.
PASSWORD="Enc-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$WORK/users.toml" <<EOF
[[user]]
name = "bench"
password = "$PASSWORD"
EOF

SRV_KIND=""
SRV_PID=""
SRV_PORT=""
SRV_USER=""
SMBD_PID=""
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
    stop_server
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        say "logs and loadgen JSON kept in $WORK"
    else
        rm -rf "$WORK"
    fi
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

# start_* MODE: MODE is clear or encrypted.
start_smbcore() { # TRANSPORT MODE
    local enc=off
    [ "$2" = encrypted ] && enc=required
    SRV_KIND=smbcore; SRV_PORT="$(free_port)"; SRV_USER=bench
    # shellcheck disable=SC2086
    "$SMBCORE" serve --listen "127.0.0.1:$SRV_PORT" --admin-socket "$WORK/smbcore-$SRV_PORT.sock" \
        --transport "$1" --users "$WORK/users.toml" --encryption "$enc" ${SMBCORE_EXTRA:-} \
        >"$WORK/smbcore-$SRV_PORT.log" 2>&1 &
    SRV_PID=$!
    wait_port "$SRV_PORT" || { cat "$WORK/smbcore-$SRV_PORT.log" >&2; die "smbcore did not listen"; }
}
start_samba() { # MODE
    local enc=default
    [ "$1" = encrypted ] && enc=required
    SRV_KIND=smbd; SRV_PORT="$(free_port)"; SRV_USER=root
    rm -rf "$WORK/samba"
    {
        samba_global_conf "$WORK/samba" "$SRV_PORT" BENCHENC BENCHENC 0
        echo "    max connections = 0"
        echo "    server smb encrypt = $enc"
    } >"$WORK/smb.conf"
    printf '%s\n%s\n' "$PASSWORD" "$PASSWORD" |
        pdbedit -s "$WORK/smb.conf" -a -u root -t >/dev/null 2>&1 || die "pdbedit failed"
    samba_start "$WORK/samba" "$WORK/smb.conf"
    SRV_PID="$SMBD_PID"
    wait_port "$SRV_PORT" || { cat "$WORK/samba/log/smbd.out" >&2; die "smbd did not listen"; }
}
start_rust() { # MODE
    SRV_KIND=rust; SRV_PORT="$(free_port)"; SRV_USER="$RUST_SMB_USER"
    local enc=0
    [ "$1" = encrypted ] && enc=1
    export RUST_SMB_PORT="$SRV_PORT" RUST_SMB_IDLE_TIMEOUT_S=900 RUST_SMB_PASSWORD="$PASSWORD" \
        RUST_SMB_ENCRYPT="$enc"
    setsid bash -c "$RUST_SMB_SERVER_CMD" >"$WORK/rust-$SRV_PORT.log" 2>&1 &
    SRV_PID=$!
    wait_port "$SRV_PORT" || { cat "$WORK/rust-$SRV_PORT.log" >&2; die "the Rust peer did not listen on $SRV_PORT"; }
}

# record SERVER MODE FIGURE KEY=VALUE... : one JSON line of results (values are JSON or strings).
record() { json_row "server mode figure" "$@" >>"$RESULTS"; }

# The login and, in the encrypted run, --encrypt --cipher.
client_args() { # MODE
    echo "--user $SRV_USER --password $PASSWORD"
    [ "$1" = encrypted ] && echo "--encrypt --cipher $CIPHER"
    return 0
}

fig_echo() { # NAME MODE
    local json="$WORK/echo-$SRV_PORT.json" log="$WORK/echo-$SRV_PORT.log"
    say "$1, $2: smb-loadgen --scenario echo, $CONNECTIONS connections, ${ECHO_S} s ..."
    # shellcheck disable=SC2046
    timeout -k 5 $((ECHO_S + 120)) "$LOADGEN" --scenario echo --target "127.0.0.1:$SRV_PORT" \
        $(client_args "$2") --connections "$CONNECTIONS" --queue-depth "$QUEUE_DEPTH" \
        --duration "${ECHO_S}s" --no-progress --json "$json" >"$log" 2>&1 || true
    if [ -s "$json" ]; then
        record "$1" "$2" echo "rate=$(jget "$json" 'j["requests_per_sec"]')" \
            "p50=$(jget "$json" 'j["latency_ms"]["p50"]')" "p99=$(jget "$json" 'j["latency_ms"]["p99"]')" \
            "errors=$(jget "$json" 'j["errors"] + j["setup_failed"]')" \
            "ready=$(jget "$json" 'j["connections_ready"]')" \
            "first_error=$(jget "$json" 'j["first_error"]')"
    else
        record "$1" "$2" echo "error=$(first_error "$log")"
    fi
}

fig_setup() { # NAME MODE
    local json="$WORK/setup-$SRV_PORT.json" log="$WORK/setup-$SRV_PORT.log"
    say "$1, $2: smb-loadgen --scenario churn --new-connection-each-time, $SESSIONS sessions (at most ${SETUP_MAX_S} s) ..."
    # shellcheck disable=SC2046
    timeout -k 5 $((SETUP_MAX_S + 120)) "$LOADGEN" --scenario churn --new-connection-each-time \
        --target "127.0.0.1:$SRV_PORT" $(client_args "$2") --connections 100 --sessions "$SESSIONS" \
        --duration "${SETUP_MAX_S}s" --no-progress --json "$json" >"$log" 2>&1 || true
    if [ -s "$json" ]; then
        record "$1" "$2" setup "rate=$(jget "$json" 'j["sessions_per_sec"]')" \
            "completed=$(jget "$json" 'j["sessions_completed"]')" "failed=$(jget "$json" 'j["sessions_failed"]')" \
            "p50=$(jget "$json" 'j["session_ms"]["p50"]')" "p99=$(jget "$json" 'j["session_ms"]["p99"]')" \
            "first_error=$(jget "$json" 'j["first_error"]')"
    else
        record "$1" "$2" setup "error=$(first_error "$log")"
    fi
}

run_server() { # NAME START-FUNCTION [ARG]: both modes, a fresh server for each
    local mode
    for mode in clear encrypted; do
        "$2" ${3:+"$3"} "$mode"
        fig_echo "$1" "$mode"
        fig_setup "$1" "$mode"
        stop_server
    done
}

# ---- the run ----
for t in mio io-uring; do
    run_server "smbcore ($t)" start_smbcore "$t"
done
if [ "$SKIP_SAMBA" != 1 ]; then
    run_server "Samba $(smbd --version | sed 's/^Version //')" start_samba
fi
SKIPPED_RUST=""
if [ -n "$RUST_SMB_SERVER_CMD" ]; then
    run_server "$RUST_SMB_NAME" start_rust
else
    SKIPPED_RUST="RUST_SMB_SERVER_CMD is not set: the Rust smb-server peer was skipped (loadgen/README.md says how to build and name it)."
    say "$SKIPPED_RUST"
fi

# ---- the table ----
python3 - "$RESULTS" "$ECHO_S" "$SESSIONS" "$SETUP_MAX_S" "$CONNECTIONS" "$QUEUE_DEPTH" "$CIPHER" \
    "$SKIPPED_RUST" <<'EOF'
import datetime, json, os, platform, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
echo_s, sessions, setup_max, conns, qd = map(int, sys.argv[2:7])
cipher, skipped = sys.argv[7], sys.argv[8]
IOU = "smbcore (io-uring)"
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"bench-encryption, one run, {datetime.datetime.now():%Y-%m-%d %H:%M} on {os.cpu_count()} x {model}, "
      f"Linux {platform.release()} (load average {os.getloadavg()[0]:.1f} at the end); client and server share the machine.")
print(f"\nEncrypted runs: every session encrypted with {cipher.upper()} (SMB 3.1.1); clear runs: the same "
      f"user, requests signed. echo: smb-loadgen --scenario echo, {conns} connections x queue depth {qd}, "
      f"{echo_s} s. setups: smb-loadgen --scenario churn --new-connection-each-time, 100 at once, "
      f"{sessions:,} sessions or {setup_max} s.")
if skipped:
    print(f"\n{skipped}")

servers = list(dict.fromkeys(r["server"] for r in rows))
def get(server, mode, figure):
    return next((r for r in rows if r["server"] == server and r["mode"] == mode and r["figure"] == figure), None)
def rate(r):
    return None if r is None or "error" in r else r.get("rate")
def cell(r, lat=True):
    if r is None:
        return "-"
    if "error" in r:
        return f"failed: {r['error']}"
    if r.get("rate") is None:
        return "no figure"
    s = f"{r['rate']:,.0f}"
    if lat and r.get("p50") is not None:
        s += f" ({r['p50']:.2f} / {r['p99']:.2f})"
    bad = r.get("errors") or r.get("failed")
    if bad:
        first = f": {r['first_error']}" if r.get("first_error") else ""
        s += f", {bad} failed{first}"
    return s
def ratio(a, b):
    return "-" if not a or not b else f"{a / b:.2f}"

print()
print("| server | echo/s clear (p50 / p99 ms) | echo/s encrypted (p50 / p99 ms) | echo enc / clear "
      "| setups/s clear | setups/s encrypted | setups enc / clear |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s in servers:
    ec, ee = get(s, "clear", "echo"), get(s, "encrypted", "echo")
    sc, se = get(s, "clear", "setup"), get(s, "encrypted", "setup")
    print(f"| {s} | {cell(ec)} | {cell(ee)} | {ratio(rate(ee), rate(ec))} | {cell(sc, False)} | "
          f"{cell(se, False)} | {ratio(rate(se), rate(sc))} |")

print()
MIO = "smbcore (mio)"
for figure, label in (("echo", "encrypted echo/s"), ("setup", "encrypted setups/s")):
    mine = rate(get(IOU, "encrypted", figure))
    peers = [(s, rate(get(s, "encrypted", figure))) for s in servers if not s.startswith("smbcore")]
    peers = [(s, v) for s, v in peers if v]
    if not mine or not peers:
        print(f"{label}, io_uring smbcore / best peer: - (a server gave no figure)  ")
    else:
        best, v = max(peers, key=lambda x: x[1])
        print(f"{label}, io_uring smbcore / best peer ({best}, {v:,.0f}): **{mine / v:.2f}x**  ")
    mio = rate(get(MIO, "encrypted", figure))
    if mine and mio:
        print(f"{label}, io_uring smbcore / mio smbcore: {mine / mio:.2f}x  ")
EOF
