#!/usr/bin/env bash
# A throwaway MIT Kerberos realm on a loopback port, for the Kerberos tests
# and measurements. Runs unprivileged-friendly: everything lives in DIR.
#
#   scripts/krb5-realm.sh start DIR [PORT]   create realm SMBCORE.TEST, start the KDC
#   scripts/krb5-realm.sh stop DIR           stop the KDC and remove DIR
#   scripts/krb5-realm.sh env DIR            print the environment to use it
#
# `start` writes DIR/krb5.conf, DIR/kdc.conf, the database, and
#   DIR/cifs.keytab   cifs/smbserver.smbcore.test and cifs/localhost (the server's keytab)
#   DIR/other.keytab  host/smbserver.smbcore.test (a ticket for another service)
#   DIR/wrong.keytab  cifs/smbserver.smbcore.test with a key the KDC does not have
#   DIR/host.keytab   cifs/<this machine's host name> (smbtorture has no -I: it
#                     connects to a name, and the machine's own name resolves)
# and the users alice (password alice-pw), bob (bob-pw, an administrator in
# the tests), and short (short-pw, tickets of at most KRB5_SHORT_LIFE,
# default 20 seconds, for the expiry tests). DIR/env has the variables
# (KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5CCNAME, SMBCORE_KRB5_REALM, ...).
# Clients must name the server by a host name, not an address. Samba's
# clients (smbclient, rpcclient 4.17) refuse Kerberos to `localhost` too, so
# they name smbserver.smbcore.test and connect with `-I 127.0.0.1`; the
# server runs with --kerberos-service cifs/smbserver.smbcore.test.
set -euo pipefail

cmd=${1:?usage: krb5-realm.sh start|stop|env DIR [PORT]}
dir=${2:?usage: krb5-realm.sh start|stop|env DIR [PORT]}
realm=SMBCORE.TEST
host=smbserver.smbcore.test
lhost=$(tr 'A-Z' 'a-z' </proc/sys/kernel/hostname 2>/dev/null || echo localhost)

case "$cmd" in
stop)
  if [ -f "$dir/kdc.pid" ]; then
    kill "$(cat "$dir/kdc.pid")" 2>/dev/null || true
  fi
  rm -rf "$dir"
  exit 0
  ;;
env)
  cat "$dir/env"
  exit 0
  ;;
start) ;;
*)
  echo "unknown command $cmd" >&2
  exit 2
  ;;
esac

for tool in krb5kdc kdb5_util kadmin.local kinit; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "krb5-realm: $tool missing (apt-get install krb5-kdc krb5-user)" >&2
    exit 3
  fi
done
export PATH="$PATH:/usr/sbin"

port=${3:-0}
if [ "$port" = 0 ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
short_life=${KRB5_SHORT_LIFE:-20s}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

cat >"$dir/krb5.conf" <<EOF
[libdefaults]
    default_realm = $realm
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    clockskew = 300
    ticket_lifetime = 10h
[realms]
    $realm = {
        kdc = 127.0.0.1:$port
        admin_server = 127.0.0.1:$port
    }
[domain_realm]
    localhost = $realm
    .localhost = $realm
    .smbcore.test = $realm
    smbcore.test = $realm
EOF

cat >"$dir/kdc.conf" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$port
    kdc_tcp_listen = 127.0.0.1:$port
[realms]
    $realm = {
        database_name = $dir/principal
        key_stash_file = $dir/stash
        acl_file = $dir/kadm5.acl
        max_life = 10h
        max_renewable_life = 1d
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }
[logging]
    kdc = FILE:$dir/kdc.log
EOF
: >"$dir/kadm5.acl"

export KRB5_CONFIG="$dir/krb5.conf" KRB5_KDC_PROFILE="$dir/kdc.conf"
kdb5_util create -s -r "$realm" -P "master-$$-$RANDOM" >/dev/null
ka() { kadmin.local -r "$realm" -q "$1" >/dev/null 2>&1; }
ka "addprinc -pw alice-pw alice"
ka "addprinc -pw bob-pw bob"
ka "addprinc -pw short-pw -maxlife $short_life short"
ka "addprinc -randkey cifs/localhost"
ka "addprinc -randkey cifs/$host"
ka "addprinc -randkey host/localhost"
ka "addprinc -randkey host/$host"
ka "ktadd -k $dir/cifs.keytab cifs/localhost"
ka "ktadd -k $dir/cifs.keytab cifs/$host"
ka "ktadd -k $dir/other.keytab host/localhost"
ka "ktadd -k $dir/other.keytab host/$host"
if [ "$lhost" != localhost ] && [ "$lhost" != "$host" ]; then
  ka "addprinc -randkey cifs/$lhost"
  ka "ktadd -k $dir/host.keytab cifs/$lhost"
fi
# The right name and key version with a key the KDC does not have.
kvno=$(klist -k "$dir/cifs.keytab" | awk '/cifs\/localhost/ {print $1; exit}')
for p in cifs/localhost cifs/$host; do
  printf 'addent -password -p %s@%s -k %s -e aes256-cts-hmac-sha1-96\nnot-the-key\naddent -password -p %s@%s -k %s -e aes128-cts-hmac-sha1-96\nnot-the-key\n' \
    "$p" "$realm" "$kvno" "$p" "$realm" "$kvno"
done | { cat; printf 'wkt %s\nquit\n' "$dir/wrong.keytab"; } | ktutil >/dev/null

krb5kdc -n -P "$dir/kdc.pid" >"$dir/kdc.out" 2>&1 &
echo $! >"$dir/kdc.pid"
for _ in $(seq 1 50); do
  if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); s.connect(('127.0.0.1',$port))" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

cat >"$dir/env" <<EOF
export KRB5_CONFIG=$dir/krb5.conf
export KRB5_KDC_PROFILE=$dir/kdc.conf
export KRB5CCNAME=FILE:$dir/ccache
export SMBCORE_KRB5_REALM=$realm
export SMBCORE_KRB5_KEYTAB=$dir/cifs.keytab
export SMBCORE_KRB5_PORT=$port
export SMBCORE_KRB5_HOST=$host
export SMBCORE_KRB5_SERVICE=cifs/$host
export SMBCORE_KRB5_LOCAL_HOST=$lhost
export SMBCORE_KRB5_LOCAL_KEYTAB=$dir/host.keytab
EOF
echo "realm $realm: KDC on 127.0.0.1:$port, files in $dir (source $dir/env)"
