#!/usr/bin/env python3
"""Builds the seed corpus of the `rpc` fuzz target (fuzz/seeds/rpc) from the
impacket request vectors in crates/smb-rpc/tests/vectors, in the target's
input layout: a setup byte, then operations (op byte, u16 LE length, bytes).
See fuzz/fuzz_targets/rpc.rs. Run from anywhere; python3, stdlib only.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "crates", "smb-rpc", "tests", "vectors")
OUT = os.path.join(HERE, "rpc")

WRITE, READ, TRANSCEIVE, REQUEST, DRAIN, CLIENT = range(6)
ADMIN, SMALL = 1, 2
BIND_NDR20, BIND_NDR64 = 1 << 2, 2 << 2


def op(code, arg=b""):
    return bytes([code]) + struct.pack("<H", len(arg)) + arg


def drain(chunk):
    return bytes([DRAIN]) + struct.pack("<H", chunk)


def pdus(data):
    """Splits concatenated PDUs at frag_length."""
    out = []
    while len(data) >= 16:
        n = struct.unpack_from("<H", data, 8)[0]
        out.append(data[:n])
        data = data[n:]
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    names = sorted(f for f in os.listdir(VECTORS) if f.endswith(".bin"))
    seeds = {}
    for syntax, bind_bit in (("ndr20", BIND_NDR20), ("ndr64", BIND_NDR64)):
        bind = open(os.path.join(VECTORS, f"{syntax}_bind.bin"), "rb").read()
        for name in names:
            if not name.startswith(syntax) or name.endswith("_bind.bin"):
                continue
            req = open(os.path.join(VECTORS, name), "rb").read()
            stem = name[:-4]
            for setup in (ADMIN, 0, ADMIN | SMALL):
                # Bind and request as SMB2 WRITEs, answers read in pieces.
                seeds[f"{stem}-write-{setup}"] = (
                    bytes([setup]) + op(WRITE, bind) + drain(4096)
                    + b"".join(op(WRITE, p) for p in pdus(req)) + drain(64) + op(CLIENT)
                )
            # The same through FSCTL_PIPE_TRANSCEIVE (max out = 5 * 64 bytes).
            seeds[f"{stem}-transceive"] = (
                bytes([ADMIN]) + op(TRANSCEIVE, bind)
                + b"".join(op(TRANSCEIVE, p) for p in pdus(req)) + drain(1000)
            )
            # Bound first, then the request stub alone (srvsvc decoding).
            frags = pdus(req)
            if len(frags) == 1:
                p = frags[0]
                opnum = struct.unpack_from("<H", p, 22)[0]
                frag_len = struct.unpack_from("<H", p, 8)[0]
                auth_len = struct.unpack_from("<H", p, 10)[0]
                stub = p[24:frag_len - (auth_len + 8 if auth_len else 0)]
                seeds[f"{stem}-request"] = (
                    bytes([ADMIN | bind_bit]) + op(REQUEST, bytes([opnum, 0, 255]) + stub)
                    + drain(4096)
                )
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {OUT}")


if __name__ == "__main__":
    main()
