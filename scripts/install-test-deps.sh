#!/usr/bin/env bash
# Installs what the test suite needs on a bare Debian machine: the real SMB
# clients and peers it tests against, and the Rust components CI checks with.
# Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
command -v smbclient  >/dev/null 2>&1 || need+=(smbclient)
command -v rpcclient  >/dev/null 2>&1 || need+=(smbclient)
command -v smbtorture >/dev/null 2>&1 || need+=(samba-testsuite)
command -v smbd       >/dev/null 2>&1 || [ -x /usr/sbin/smbd ] || need+=(samba)
/usr/bin/python3 -c 'import impacket' >/dev/null 2>&1 || need+=(python3-impacket)
# Kerberos: the test realm (scripts/krb5-realm.sh) needs the MIT KDC, its
# admin tools and kinit; building smb-krb5 needs the GSS-API headers and
# libclang (bindgen in libgssapi-sys).
[ -x /usr/sbin/krb5kdc ]      || need+=(krb5-kdc)
[ -x /usr/sbin/kadmin.local ] || need+=(krb5-admin-server)
command -v kinit >/dev/null 2>&1 || need+=(krb5-user)
command -v krb5-config >/dev/null 2>&1 || need+=(libkrb5-dev)
# The AF_XDP lab (scripts/xdp-lab): namespaces and veth (iproute2), checksum
# offload off on the client side (ethtool), a reachability check (ping);
# python3 runs its impairing forwarder (scripts/lib/xdp-impair.py).
command -v ip      >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v ethtool >/dev/null 2>&1 || [ -x /usr/sbin/ethtool ] || need+=(ethtool)
command -v ping    >/dev/null 2>&1 || need+=(iputils-ping)
# Vanished clients in the lab: nft drops everything in the client namespace.
command -v nft     >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
