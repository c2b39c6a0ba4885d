#!/usr/bin/python3
"""impacket as a real SMB client for smbcore's integration tests.

Usage:
  impacket_client.py login PORT USER PASSWORD [DIALECT]
      Log in (USER "" = anonymous), connect IPC$, list shares, disconnect the
      tree, log off. Prints one line per step ("DIALECT 0x...", "SHARE name
      type", "LOGOFF ok") and exits 0; any failure exits 1 with the error.
      DIALECT is one of 2.002, 2.1, 3.0, 3.1.1 (an SMB2 NEGOTIATE offering
      only that one), or smb1-2.002 (an SMB1 multi-protocol NEGOTIATE that
      offers "NT LM 0.12" and "SMB 2.002" only); without it impacket starts
      with its SMB1 multi-protocol NEGOTIATE offering "SMB 2.002" and
      "SMB 2.???", then an SMB2 NEGOTIATE of 2.002, 2.1 and 3.0.
  impacket_client.py hold PORT USER PASSWORD CLIENTNAME SECONDS
      Log in as USER from workstation CLIENTNAME, connect IPC$ and keep only
      that tree. Prints "READY" and then waits, sending nothing, until the
      server closes the connection ("DROPPED", exit 0) or SECONDS pass
      ("TIMEOUT", exit 2).

Loopback only: the host is always 127.0.0.1.
"""

import select
import sys
import time

from impacket import smb3structs
from impacket.smbconnection import SMBConnection

HOST = "127.0.0.1"

DIALECTS = {
    "2.002": smb3structs.SMB2_DIALECT_002,
    "2.1": smb3structs.SMB2_DIALECT_21,
    "3.0": smb3structs.SMB2_DIALECT_30,
    "3.1.1": smb3structs.SMB2_DIALECT_311,
}


def say(*parts):
    print(*parts, flush=True)


def connect(port, dialect):
    if dialect == "smb1-2.002":
        conn = SMBConnection(HOST, HOST, sess_port=port, timeout=10, manualNegotiate=True)
        conn.negotiateSession(negoData="\x02NT LM 0.12\x00\x02SMB 2.002\x00")
        return conn
    return SMBConnection(HOST, HOST, sess_port=port, timeout=10,
                         preferredDialect=DIALECTS[dialect] if dialect else None)


def login(port, user, password, dialect=None):
    conn = connect(port, dialect)
    say("DIALECT", hex(conn.getDialect()))
    conn.login(user, password)
    say("LOGIN", "guest" if conn.isGuestSession() else ("anonymous" if user == "" else user))
    tid = conn.connectTree("IPC$")
    say("TREE", tid)
    for share in conn.listShares():
        name = share["shi1_netname"][:-1]
        say("SHARE", name, hex(share["shi1_type"]))
    conn.disconnectTree(tid)
    conn.logoff()
    say("LOGOFF", "ok")
    conn.close()


def hold(port, user, password, client_name, seconds):
    conn = SMBConnection(HOST, HOST, myName=client_name, sess_port=port, timeout=10)
    conn.login(user, password)
    conn.connectTree("IPC$")
    say("READY")
    sock = conn.getSMBServer().get_socket()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            # The server sends nothing unsolicited here: readable means the
            # connection was closed (recv returns b"") or reset.
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                say("DROPPED")
                return 0
    say("TIMEOUT")
    return 2


def main(argv):
    mode = argv[1]
    port = int(argv[2])
    if mode == "login":
        login(port, argv[3], argv[4], argv[5] if len(argv) > 5 else None)
        return 0
    if mode == "hold":
        return hold(port, argv[3], argv[4], argv[5], float(argv[6]))
    raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as e:  # report the client's view of any failure
        say("ERROR", type(e).__name__, e)
        sys.exit(1)
