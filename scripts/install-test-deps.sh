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
