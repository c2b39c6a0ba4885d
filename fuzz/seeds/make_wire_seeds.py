#!/usr/bin/env python3
"""Builds seeds for the `wire` fuzz target (fuzz/seeds/wire): one well-formed
message per file command the views cover (FLUSH, LOCK, QUERY_DIRECTORY,
SET_INFO, CHANGE_NOTIFY, OPLOCK_BREAK in its three forms, and the responses
with directory / FILE_NOTIFY_INFORMATION lists), each both framed (RFC 1002)
and bare. Hand-built from MS-SMB2 2.2.17-2.2.40 and MS-FSCC 2.4.28 / 2.7.1.
Run from anywhere; python3, stdlib only. Use with
    cd fuzz && cargo +nightly fuzz run wire corpus/wire seeds/wire
"""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wire")


def hdr(cmd, resp=False):
    return b"\xfeSMB" + struct.pack(
        "<HHIHHIIQIIQ16s", 64, 1, 0, cmd, 1, 1 if resp else 0, 0, 5, 0, 0, 0, b"\0" * 16
    )


def frame(m):
    return struct.pack(">I", len(m)) + m


def entry(name, nxt, action_or_index):
    b = name.encode("utf-16le")
    return struct.pack("<III", nxt, action_or_index, len(b)) + b


def padded(e, n):
    return e + b"\0" * (n - len(e))


FID = struct.pack("<QQ", 1, 2)
PATTERN = "*.txt".encode("utf-16le")
NAMES = padded(entry(".", 16, 0), 16) + entry("..", 0, 1)  # FileNamesInformation
NOTES = padded(entry("ab", 20, 1), 20) + entry("c", 0, 2)  # FILE_NOTIFY_INFORMATION

SEEDS = {
    "flush": hdr(7) + struct.pack("<HHI", 24, 0, 0) + FID,
    "lock": hdr(10) + struct.pack("<HHI", 48, 2, 0x13) + FID
    + struct.pack("<QQII", 0, 10, 2, 0) * 2,
    "query_directory": hdr(14) + struct.pack("<HBBI", 33, 0x25, 1, 0) + FID
    + struct.pack("<HHI", 96, len(PATTERN), 65536) + PATTERN,
    "set_info": hdr(17) + struct.pack("<HBBIHHI", 33, 1, 13, 1, 96, 0, 0) + FID + b"\x01",
    "change_notify": hdr(15) + struct.pack("<HHI", 32, 1, 4096) + FID + struct.pack("<II", 0x17, 0),
    "oplock_ack": hdr(18) + struct.pack("<HBBI", 24, 1, 0, 0) + FID,
    "lease_ack": hdr(18) + struct.pack("<HHI", 36, 0, 0) + b"K" * 16 + struct.pack("<IQ", 1, 0),
    "lease_notification": hdr(18, True) + struct.pack("<HHI", 44, 1, 1) + b"K" * 16
    + struct.pack("<IIIII", 7, 1, 0, 0, 0),
    "set_info_response": hdr(17, True) + struct.pack("<H", 2),
    "query_directory_response": hdr(14, True) + struct.pack("<HHI", 9, 72, len(NAMES)) + NAMES,
    "change_notify_response": hdr(15, True) + struct.pack("<HHI", 9, 72, len(NOTES)) + NOTES,
}

os.makedirs(OUT, exist_ok=True)
for name, msg in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(frame(msg))
    with open(os.path.join(OUT, name + "-bare"), "wb") as f:
        f.write(msg)
print(f"{2 * len(SEEDS)} seeds in {OUT}")
