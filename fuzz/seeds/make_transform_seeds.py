#!/usr/bin/env python3
"""Builds seeds for the `transform` fuzz target (fuzz/seeds/transform). Each seed is
the target's input: one byte choosing the cipher (index into Cipher::DEFAULT_ORDER,
mod 4), one byte choosing the bit to flip, then the message: a plain SMB2 ECHO
request, a TRANSFORM header (MS-SMB2 2.2.41) followed by garbage, a TRANSFORM whose
OriginalMessageSize lies, a TRANSFORM inside a TRANSFORM, a truncated TRANSFORM header,
and a 4096-byte message. Run from anywhere; python3, stdlib only. Use with
    cd fuzz && cargo +nightly fuzz run transform corpus/transform seeds/transform -- -max_len=4096
"""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transform")


def echo(sid=0x41):
    hdr = b"\xfeSMB" + struct.pack(
        "<HHIHHIIQIIQ16s", 64, 1, 0, 13, 1, 0, 0, 7, 0, 0, sid, b"\0" * 16
    )
    return hdr + struct.pack("<HH", 4, 0)


def transform(inner, size=None, flags=1, sid=0x41):
    size = len(inner) if size is None else size
    return (
        b"\xfdSMB"
        + b"\x11" * 16  # Signature (tag)
        + struct.pack("<Q8s", 1, b"\0" * 8)  # Nonce
        + struct.pack("<IHHQ", size, 0, flags, sid)
        + inner
    )


SEEDS = {
    "echo-ccm": bytes([0, 3]) + echo(),
    "echo-gcm": bytes([1, 200]) + echo(),
    "echo-256-ccm": bytes([2, 77]) + echo(),
    "echo-256-gcm": bytes([3, 255]) + echo(),
    "transform-garbage": bytes([1, 9]) + transform(b"\x5a" * 68),
    "transform-size-lies": bytes([0, 40]) + transform(echo(), size=4000),
    "transform-flags-zero": bytes([3, 1]) + transform(echo(), flags=0),
    "transform-in-transform": bytes([1, 100]) + transform(transform(echo())),
    "transform-truncated": bytes([2, 5]) + transform(b"")[:30],
    "long-4k": bytes([3, 17]) + echo() + b"\xa5" * (4096 - 2 - 68),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")
