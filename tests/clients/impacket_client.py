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
  impacket_client.py listhold PORT USER PASSWORD DIALECT SECONDS
      As login, but after the share list prints "LISTED" and waits for a line
      on stdin (at most SECONDS), so that the caller can look at the server
      while the session is up; then "ENCRYPTING <0|1>" (whether impacket
      seals its requests: it does on 3.x when the server announces
      CAP_ENCRYPTION or sets SESSION_FLAG_ENCRYPT_DATA), tree disconnect,
      log off, "LOGOFF ok".
  impacket_client.py hold PORT USER PASSWORD CLIENTNAME SECONDS
      Log in as USER from workstation CLIENTNAME, connect IPC$ and keep only
      that tree. Prints "READY" and then waits, sending nothing, until the
      server closes the connection ("DROPPED", exit 0) or SECONDS pass
      ("TIMEOUT", exit 2).
  impacket_client.py setdisc PORT USER PASSWORD LEVEL MINUTES
      Log in, bind srvsvc and call NetrServerSetInfo at LEVEL (1010: only
      sv1010_disc; 102: the server's own SERVER_INFO_102 from
      NetrServerGetInfo with sv102_disc replaced) with autodisconnect MINUTES.
      Prints "SETINFO <NET_API_STATUS>" and then "DISC <sv102_disc>" as
      NetrServerGetInfo level 102 answers right after; exits 0.
  impacket_client.py files PORT USER PASSWORD LEVEL
      Log in, bind srvsvc, call NetrFileEnum at LEVEL (2 or 3); prints
      "STATUS <NET_API_STATUS>" and one "FILE <id> <path> <user>" line per
      entry (path and user "-" at level 2); exits 0.
  impacket_client.py fileclose PORT USER PASSWORD ID
      Log in, bind srvsvc, call NetrFileGetInfo level 3 for ID (prints
      "GETINFO <NET_API_STATUS> <path> <user>", path and user "-" when it
      failed), then NetrFileClose of ID (prints "CLOSE <NET_API_STATUS>");
      exits 0.
  impacket_client.py sessdel PORT USER PASSWORD CLIENT USERNAME
      Log in, bind srvsvc, call NetrSessionDel(CLIENT, USERNAME) (either
      may be "" for none); prints "SESSDEL <NET_API_STATUS>"; exits 0.
  impacket_client.py holdfile PORT USER PASSWORD SHARE PATH LOCKS
      Log in as USER, connect SHARE, create PATH (its directory first, if
      PATH has one) with GENERIC_ALL, write 8 bytes to it, take LOCKS
      exclusive one-byte locks, print "READY" and keep the open. Then one
      command a line on stdin: "read" READs the held open and prints
      "READ OK <bytes>" or "READ <NTSTATUS as 0x...>"; "quit" (or end of
      input) exits 0 without closing anything.

The host is 127.0.0.1 (SMBCORE_TEST_HOST overrides it, for a client in
a network namespace a test made).
"""

import os
import select
import sys
import time

from impacket import smb3structs
from impacket.dcerpc.v5 import srvs, transport
from impacket.dcerpc.v5.dtypes import NULL
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.smbconnection import SMBConnection

HOST = os.environ.get("SMBCORE_TEST_HOST", "127.0.0.1")

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


def login(port, user, password, dialect=None, hold_seconds=None):
    conn = connect(port, dialect)
    say("DIALECT", hex(conn.getDialect()))
    conn.login(user, password)
    say("LOGIN", "guest" if conn.isGuestSession() else ("anonymous" if user == "" else user))
    tid = conn.connectTree("IPC$")
    say("TREE", tid)
    for share in conn.listShares():
        name = share["shi1_netname"][:-1]
        say("SHARE", name, hex(share["shi1_type"]))
    if hold_seconds is not None:
        say("LISTED")
        select.select([sys.stdin], [], [], hold_seconds)
        flags = conn.getSMBServer()._Session["SessionFlags"]
        say("ENCRYPTING", int(bool(flags & smb3structs.SMB2_SESSION_FLAG_ENCRYPT_DATA)))
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


def srvsvc(port, user, password):
    conn = SMBConnection(HOST, HOST, sess_port=port, timeout=10)
    conn.login(user, password)
    rpc = transport.SMBTransport(HOST, port, r"\srvsvc", smb_connection=conn)
    dce = rpc.get_dce_rpc()
    dce.connect()
    dce.bind(srvs.MSRPC_UUID_SRVS)
    return conn, dce


def error_code(e):
    code = getattr(e, "error_code", None)
    if code is None:
        code = e.get_error_code()
    return code


def setdisc(port, user, password, level, minutes):
    conn, dce = srvsvc(port, user, password)
    req = srvs.NetrServerSetInfo()
    req["ServerName"] = NULL
    req["Level"] = level
    req["InfoStruct"]["tag"] = level
    if level == 1010:
        req["InfoStruct"]["ServerInfo1010"]["sv1010_disc"] = minutes
    else:
        cur = srvs.hNetrServerGetInfo(dce, 102)["InfoStruct"]["ServerInfo102"]
        info = req["InfoStruct"]["ServerInfo102"]
        for f in ("sv102_platform_id", "sv102_name", "sv102_version_major",
                  "sv102_version_minor", "sv102_type", "sv102_comment", "sv102_users",
                  "sv102_hidden", "sv102_announce", "sv102_anndelta", "sv102_licenses",
                  "sv102_userpath"):
            info[f] = cur[f]
        info["sv102_disc"] = minutes
    try:
        resp = dce.request(req)
        say("SETINFO", resp["ErrorCode"])
    except DCERPCException as e:
        say("SETINFO", error_code(e))
    try:
        info = srvs.hNetrServerGetInfo(dce, 102)["InfoStruct"]["ServerInfo102"]
        disc = info["sv102_disc"]
        say("DISC", disc - (1 << 32) if disc >= (1 << 31) else disc)
    except DCERPCException as e:
        say("GETINFO", error_code(e))
    dce.disconnect()
    try:
        conn.logoff()
    except Exception:  # autodisconnect 0 may have reaped it already
        pass
    return 0


def files(port, user, password, level):
    conn, dce = srvsvc(port, user, password)
    try:
        resp = srvs.hNetrFileEnum(dce, NULL, NULL, level)
        say("STATUS", resp["ErrorCode"])
        buf = resp["InfoStruct"]["FileInfo"]["Level%d" % level]["Buffer"]
        for f in buf or []:
            if level == 3:
                say("FILE", f["fi3_id"], f["fi3_path_name"][:-1], f["fi3_username"][:-1])
            else:
                say("FILE", f["fi2_id"], "-", "-")
    except DCERPCException as e:
        say("STATUS", error_code(e))
    dce.disconnect()
    conn.logoff()
    return 0


def fileclose(port, user, password, file_id):
    conn, dce = srvsvc(port, user, password)
    try:
        resp = srvs.hNetrFileGetInfo(dce, file_id, 3)
        f = resp["InfoStruct"]["FileInfo3"]
        say("GETINFO", resp["ErrorCode"], f["fi3_path_name"][:-1], f["fi3_username"][:-1])
    except DCERPCException as e:
        say("GETINFO", error_code(e), "-", "-")
    try:
        resp = srvs.hNetrFileClose(dce, file_id)
        say("CLOSE", resp["ErrorCode"])
    except DCERPCException as e:
        say("CLOSE", error_code(e))
    dce.disconnect()
    conn.logoff()
    return 0


def sessdel(port, user, password, client, username):
    conn, dce = srvsvc(port, user, password)
    try:
        resp = srvs.hNetrSessionDel(dce, client + "\x00" if client else NULL,
                                    username + "\x00" if username else NULL)
        say("SESSDEL", resp["ErrorCode"])
    except DCERPCException as e:
        say("SESSDEL", error_code(e))
    dce.disconnect()
    conn.logoff()
    return 0


def lock(smb, tid, fid, count):
    """LOCK with COUNT exclusive one-byte elements (impacket 0.10's own
    SMB3.lock joins the elements as text)."""
    packet = smb.SMB_PACKET()
    packet["Command"] = smb3structs.SMB2_LOCK
    packet["TreeID"] = tid
    req = smb3structs.SMB2Lock()
    req["FileID"] = fid
    req["LockCount"] = count
    elements = b""
    for i in range(count):
        e = smb3structs.SMB2_LOCK_ELEMENT()
        e["Offset"] = i
        e["Length"] = 1
        e["Flags"] = smb3structs.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | smb3structs.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
        elements += e.getData()
    req["Locks"] = elements
    packet["Data"] = req
    ans = smb.recvSMB(smb.sendSMB(packet))
    if not ans.isValidAnswer(0):  # STATUS_SUCCESS
        raise RuntimeError("LOCK failed")


def holdfile(port, user, password, share, path, locks):
    from impacket.smbconnection import SessionError
    conn = SMBConnection(HOST, HOST, sess_port=port, timeout=10)
    conn.login(user, password)
    tid = conn.connectTree(share)
    if "\\" in path:
        try:
            conn.createDirectory(share, path.rsplit("\\", 1)[0])
        except SessionError:
            pass  # already there
    fid = conn.createFile(tid, path)
    conn.writeFile(tid, fid, b"smbcore\n")
    if locks:
        lock(conn.getSMBServer(), tid, fid, locks)
    say("READY")
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "read":
            try:
                data = conn.readFile(tid, fid, 0, 8)
                say("READ", "OK", len(data))
            except SessionError as e:
                say("READ", hex(e.getErrorCode()))
        elif cmd == "quit":
            break
    return 0


def main(argv):
    mode = argv[1]
    port = int(argv[2])
    if mode == "login":
        login(port, argv[3], argv[4], argv[5] if len(argv) > 5 else None)
        return 0
    if mode == "listhold":
        login(port, argv[3], argv[4], argv[5], float(argv[6]))
        return 0
    if mode == "hold":
        return hold(port, argv[3], argv[4], argv[5], float(argv[6]))
    if mode == "setdisc":
        return setdisc(port, argv[3], argv[4], int(argv[5]), int(argv[6]))
    if mode == "files":
        return files(port, argv[3], argv[4], int(argv[5]))
    if mode == "fileclose":
        return fileclose(port, argv[3], argv[4], int(argv[5]))
    if mode == "sessdel":
        return sessdel(port, argv[3], argv[4], argv[5], argv[6])
    if mode == "holdfile":
        return holdfile(port, argv[3], argv[4], argv[5], argv[6], int(argv[7]))
    raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as e:  # report the client's view of any failure
        say("ERROR", type(e).__name__, e)
        sys.exit(1)
