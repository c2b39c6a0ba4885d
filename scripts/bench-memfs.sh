#!/usr/bin/env bash
# The memfs example (examples/memfs, one shard, io_uring) beside Samba's smbd serving a
# tmpfs directory (loopback high port, private configuration, scripts/lib/samba-sandbox.sh),
# one server at a time, one markdown table:
#
#   - opens/s: smbtorture smb2.bench.path-contention-shared (CREATE + CLOSE of one path,
#     nprocs=4, qdepth=4, SECONDS s; the last per-second rate of the run is not used, the
#     mean of the per-second rates is);
#   - echo/s on the share's session: smbtorture smb2.bench.echo (nprocs=4, qdepth=4);
#   - smb-loadgen --scenario echo, 100 connections x queue depth 4: requests/s, p50/p99;
#   - smbclient put / get of a SIZE_MIB MiB file at SMB3_11 with signing: MiB/s.
#
# smbtorture 4.17 (Debian 12) has no smb2.bench.read / smb2.bench.write (they came in
# later Samba releases); the smbclient transfers stand in for them.
#
# Usage: scripts/bench-memfs.sh [SECONDS] [SIZE_MIB]      (defaults 5 and 256)
# Env:   MEMFS_EXTRA (extra memfs options, e.g. "--transport mio"), SKIP_SAMBA=1,
#        CARGO_TARGET_DIR.
# Needs: root (smbd), smbd, smbtorture, smbclient, python3. Every process it starts is
# stopped on exit.
set -euo pipefail

SECS="${1:-5}"
SIZE_MIB="${2:-256}"
SKIP_SAMBA="${SKIP_SAMBA:-0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
say() { echo "bench-memfs: $*" >&2; }
die() { say "$*"; exit 1; }

for tool in smbtorture smbclient python3 cargo; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
if [ "$SKIP_SAMBA" != 1 ] && { ! command -v smbd >/dev/null || [ "$(id -u)" != 0 ]; }; then
    SKIP_SAMBA=1; say "smbd needs root and the samba package: Samba is skipped"
fi
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q --example memfs --bin smb-loadgen)
MEMFS="$TARGET_DIR/release/examples/memfs"
LOADGEN="$TARGET_DIR/release/smb-loadgen"

. "$ROOT/scripts/lib/samba-sandbox.sh"
WORK="$(mktemp -d /tmp/benchmemfs.XXXXXX)"
SHARE_DIR="$(mktemp -d /dev/shm/benchmemfs-share.XXXXXX)" # tmpfs
chmod 700 "$WORK"
RESULTS="$WORK/results.txt"
: >"$RESULTS"
SRV_KIND=""; SRV_PID=""; SRV_PORT=""; SMBD_PID=""
stop_server() {
    case "$SRV_KIND" in
        memfs) kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true ;;
        smbd) samba_stop "$WORK/samba" "$SMBD_PID"; SMBD_PID="" ;;
    esac
    SRV_KIND=""; SRV_PID=""
}
cleanup() { stop_server; rm -rf "$WORK" "$SHARE_DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

USER_NAME=bench
USER_PW='B3nchPass!'
start_memfs() {
    SRV_KIND=memfs; SRV_PORT="$(free_port)"
    # shellcheck disable=SC2086
    "$MEMFS" --listen "127.0.0.1:$SRV_PORT" --user "$USER_NAME:$USER_PW" --max-bytes $((4 << 30)) \
        ${MEMFS_EXTRA:-} >"$WORK/memfs.log" 2>&1 &
    SRV_PID=$!
    wait_port "$SRV_PORT" || { cat "$WORK/memfs.log" >&2; die "memfs did not listen"; }
}
start_samba() {
    SRV_KIND=smbd; SRV_PORT="$(free_port)"
    {
        samba_global_conf "$WORK/samba" "$SRV_PORT" BENCHMEMFS BENCHMEMFS 0
        echo "    max connections = 0"
        printf '[mem]\n    path = %s\n    read only = no\n    force user = root\n' "$SHARE_DIR"
    } >"$WORK/smb.conf"
    # The tdbsam account maps to the unix account root (smbd runs as root here).
    printf '%s\n%s\n' "$USER_PW" "$USER_PW" |
        pdbedit -s "$WORK/smb.conf" -a -u root -t >/dev/null 2>&1 || die "pdbedit failed"
    samba_start "$WORK/samba" "$WORK/smb.conf"
    SRV_PID="$SMBD_PID"
    wait_port "$SRV_PORT" || { cat "$WORK/samba/log/smbd.out" >&2; die "smbd did not listen"; }
}
creds() { [ "$SRV_KIND" = smbd ] && echo "root%$USER_PW" || echo "$USER_NAME%$USER_PW"; }
record() { echo "$*" >>"$RESULTS"; }

# mean of the per-second rates of one kind (open, echo) in a smbtorture bench output
torture_rate() { # FILE KIND
    grep -o "$2\[num/s=[0-9]*" "$1" | cut -d= -f2 | awk '{s += $1; n++} END {if (n) printf "%d", s / n}'
}

run_all() { # NAME
    local name="$1" out
    out="$WORK/contention.txt"
    say "$name: smbtorture smb2.bench.path-contention-shared, ${SECS} s ..."
    timeout -k 5 $((SECS + 60)) smbtorture //127.0.0.1/mem -p "$SRV_PORT" -U "$(creds)" \
        smb2.bench.path-contention-shared --option=torture:timelimit="$SECS" \
        --option=torture:nprocs=4 --option=torture:qdepth=4 >"$out" 2>&1 || true
    record "$name opens $(grep -q '^success:' "$out" && torture_rate "$out" open || echo error)"
    out="$WORK/echo.txt"
    say "$name: smbtorture smb2.bench.echo, ${SECS} s ..."
    timeout -k 5 $((SECS + 60)) smbtorture //127.0.0.1/mem -p "$SRV_PORT" -U "$(creds)" \
        smb2.bench.echo --option=torture:timelimit="$SECS" \
        --option=torture:nprocs=4 --option=torture:qdepth=4 >"$out" 2>&1 || true
    record "$name echo $(grep -q '^success:' "$out" && grep -o 'num/s=[0-9]*' "$out" | tail -1 | cut -d= -f2 || echo error)"
    say "$name: smb-loadgen --scenario echo, 100 connections, ${SECS} s ..."
    local json="$WORK/loadgen.json"
    rm -f "$json"
    timeout -k 5 $((SECS + 120)) "$LOADGEN" --scenario echo --target "127.0.0.1:$SRV_PORT" \
        --connections 100 --queue-depth 4 --duration "${SECS}s" --no-progress --json "$json" \
        >"$WORK/loadgen.log" 2>&1 || true
    if [ -s "$json" ]; then
        record "$name loadgen $(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(round(j["requests_per_sec"]), j["latency_ms"]["p50"], j["latency_ms"]["p99"])' "$json")"
    else
        record "$name loadgen error error error"
    fi
    say "$name: smbclient put / get, $SIZE_MIB MiB ..."
    local t0 t1 t2
    t0="$(date +%s.%N)"
    smbclient //127.0.0.1/mem -p "$SRV_PORT" -U "$(creds)" -m SMB3_11 \
        --option='client signing=required' -c "put $WORK/big.bin big.bin" >"$WORK/put.txt" 2>&1 || true
    t1="$(date +%s.%N)"
    smbclient //127.0.0.1/mem -p "$SRV_PORT" -U "$(creds)" -m SMB3_11 \
        --option='client signing=required' -c "get big.bin $WORK/back.bin" >"$WORK/get.txt" 2>&1 || true
    t2="$(date +%s.%N)"
    if cmp -s "$WORK/big.bin" "$WORK/back.bin"; then
        record "$name transfer $(python3 -c "print(round($SIZE_MIB/($t1-$t0)), round($SIZE_MIB/($t2-$t1)))")"
    else
        record "$name transfer error error"
    fi
    rm -f "$WORK/back.bin"
}

head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/big.bin"
start_memfs; run_all memfs; stop_server
if [ "$SKIP_SAMBA" != 1 ]; then start_samba; run_all "Samba (tmpfs)"; stop_server; fi

python3 - "$RESULTS" "$SECS" "$SIZE_MIB" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    # the name may contain spaces: the kind is the first known word
    for i, p in enumerate(parts):
        if p in ("opens", "echo", "loadgen", "transfer"):
            rows.setdefault(" ".join(parts[:i]), {})[p] = parts[i + 1:]
            break
secs, size = sys.argv[2], sys.argv[3]
print(f"| server | opens/s (path-contention-shared) | echo/s (smb2.bench.echo) | loadgen echo req/s (p50 / p99 ms) | put / get {size} MiB, MiB/s |")
print("|---|---:|---:|---:|---:|")
for name, r in rows.items():
    o = r.get("opens", ["-"])[0]
    e = r.get("echo", ["-"])[0]
    l = r.get("loadgen", ["-", "-", "-"])
    t = r.get("transfer", ["-", "-"])
    print(f"| {name} | {o} | {e} | {l[0]} ({l[1]} / {l[2]}) | {t[0]} / {t[1]} |")
PY
