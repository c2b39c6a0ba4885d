#!/usr/bin/env bash
# Capture SMB test vectors from real clients talking to a real Samba smbd.
#
# Runs smbd (Samba 4.17, Debian package `samba`) on 127.0.0.1:$SMBD_PORT only,
# puts scripts/nbss_record_proxy.py in front of it on 127.0.0.1:$PROXY_PORT and
# runs each client through the proxy, recording per TCP connection the exact
# client->server and server->client NBSS byte streams:
#
#     OUT/<name>-<n>.c2s.bin   OUT/<name>-<n>.s2c.bin
#
# Needs (Debian 12): samba, smbclient (smbclient, rpcclient), samba-testsuite
# (smbtorture), python3-impacket (run with /usr/bin/python3), python3, and
# useradd/userdel (passwd) because smbpasswd only accepts an existing system
# user. Must run as root (smbd, useradd). Re-runnable and self-cleaning: every
# run starts from a fresh temp dir, which is removed on exit with all processes.
#
# Usage: scripts/capture-vectors.sh [OUTDIR]     (default: tests/vectors)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/tests/vectors}"
SMBD_PORT="${SMBD_PORT:-14451}"
PROXY_PORT="${PROXY_PORT:-14450}"
SMB_USER="${SMB_USER:-smbtest}"
SMB_PASS="${SMB_PASS:-Vect0rs-Pa55}"
PY=/usr/bin/python3 # Debian's python, the one python3-impacket is installed for

for tool in smbd smbpasswd smbclient rpcclient smbtorture useradd "$PY"; do
    command -v "$tool" >/dev/null || { echo "capture-vectors: missing $tool" >&2; exit 1; }
done
"$PY" -c 'import impacket' 2>/dev/null || { echo "capture-vectors: python3-impacket missing" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "capture-vectors: must run as root (smbd, useradd)" >&2; exit 1; }

. "$ROOT/scripts/lib/samba-sandbox.sh"
WORK="$(mktemp -d /tmp/smbvec.XXXXXX)"
SMBD_PID=""
PROXY_PID=""
cleanup() {
    if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; fi
    samba_stop "$WORK" "$SMBD_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK"/{share,rec}
chmod 777 "$WORK/share"
CONF="$WORK/smb.conf"
{
    samba_global_conf "$WORK" "$SMBD_PORT" VECTORS SMBVEC 1
    cat <<EOF
    server string = smbcore vectors
[tmp]
    path = $WORK/share
    read only = no
    comment = capture share
EOF
} >"$CONF"

if ! id "$SMB_USER" >/dev/null 2>&1; then
    useradd --no-create-home --shell /usr/sbin/nologin "$SMB_USER"
fi
printf '%s\n%s\n' "$SMB_PASS" "$SMB_PASS" | smbpasswd -c "$CONF" -a -s "$SMB_USER" >/dev/null

samba_start "$WORK" "$CONF"
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SMBD_PORT") 2>/dev/null && break
    kill -0 "$SMBD_PID" 2>/dev/null || { cat "$WORK/log/smbd.out" >&2; exit 1; }
    sleep 0.1
done

# record NAME CMD...: run one client through a fresh proxy into $WORK/rec/NAME-*.bin
record() {
    local name="$1"; shift
    rm -f "$WORK/proxy.ready"
    "$PY" "$ROOT/scripts/nbss_record_proxy.py" --listen "$PROXY_PORT" \
        --upstream "127.0.0.1:$SMBD_PORT" --outdir "$WORK/rec" --prefix "$name" \
        --ready-file "$WORK/proxy.ready" &
    PROXY_PID=$!
    for _ in $(seq 100); do [ -s "$WORK/proxy.ready" ] && break; sleep 0.05; done
    echo "== $name: $*" | sed "s/$SMB_PASS/PASSWORD/g"
    if ! timeout 60 "$@" >"$WORK/log/$name.client" 2>&1; then
        echo "   (client exited non-zero; output follows)"
    fi
    sed 's/^/   | /' "$WORK/log/$name.client" | head -20
    kill "$PROXY_PID"; wait "$PROXY_PID" || true; PROXY_PID=""
}

cat >"$WORK/impacket_client.py" <<'EOF'
import sys
from impacket.smbconnection import SMBConnection
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# preferredDialect unset: impacket starts with the SMB1 multi-protocol NEGOTIATE.
conn = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=port)
print('dialect', hex(conn.getDialect()))
conn.login(user, password)
for share in conn.listShares():
    print('share', share['shi1_netname'][:-1])
tid = conn.connectTree('IPC$')
print('tree', tid)
conn.disconnectTree(tid)
conn.logoff()
conn.close()
EOF

U="$SMB_USER%$SMB_PASS"
P="$PROXY_PORT"
record smbclient-L-anon        smbclient -L //127.0.0.1 -p "$P" -N
record smbclient-L-user-smb311 smbclient -L //127.0.0.1 -p "$P" -U "$U" -m SMB3_11
record smbclient-L-user-smb202 smbclient -L //127.0.0.1 -p "$P" -U "$U" -m SMB2_02
record smbclient-L-user-signed smbclient -L //127.0.0.1 -p "$P" -U "$U" --option='client signing=required'
record smbclient-ipc-exit      smbclient //127.0.0.1/IPC\$ -p "$P" -U "$U" -c exit
record rpcclient-srvinfo       rpcclient 127.0.0.1 -p "$P" -U "$U" -c 'srvinfo;netshareenumall'
record impacket-anon           "$PY" "$WORK/impacket_client.py" "$P" '' ''
record impacket-user           "$PY" "$WORK/impacket_client.py" "$P" "$SMB_USER" "$SMB_PASS"
record smbtorture-two-logoff   smbtorture //127.0.0.1/IPC\$ -p "$P" -U "$U" smb2.session.two_logoff

mkdir -p "$OUT"
rm -f "$OUT"/*.c2s.bin "$OUT"/*.s2c.bin # a previous capture's streams
# Keep only connections that carried bytes both ways.
for c2s in "$WORK"/rec/*.c2s.bin; do
    s2c="${c2s%.c2s.bin}.s2c.bin"
    if [ -s "$c2s" ] && [ -s "$s2c" ]; then
        cp "$c2s" "$s2c" "$OUT/"
    fi
done
echo "== versions"
echo "smbd $(smbd --version)"
echo "smbclient $(smbclient --version)"
echo "python3-impacket $(dpkg-query -W -f='${Version}' python3-impacket 2>/dev/null || echo '?')"
echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"
ls -l "$OUT"
echo "now run tests/vectors/make-tshark-tables.sh and update the expectations in"
echo "crates/smb-wire/tests/real_vectors.rs and crates/smb-server/src/dump.rs (ids and keys change)"
