#!/usr/bin/env python3
"""Seed corpus for the `engine` fuzz target from the real-client captures.

    python3 fuzz/engine_seeds.py fuzz/corpus/engine

Each tests/vectors/*.c2s.bin stream (direct-TCP NBSS frames) becomes inputs
in the target's format (see fuzz_targets/engine.rs): a flag byte, then
steps, each a little-endian u16 (op << 12 | arg) followed, for frame steps,
by `arg` payload bytes.
"""
import glob
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def frames(stream):
    i = 0
    while i + 4 <= len(stream):
        n = int.from_bytes(stream[i + 1:i + 4], "big")
        yield stream[i + 4:i + 4 + n]
        i += 4 + n


def step(op, arg, payload=b""):
    assert 0 <= op < 16 and 0 <= arg < 4096
    return ((op << 12) | arg).to_bytes(2, "little") + payload


def frame(op, f):
    return step(op, len(f), f) if len(f) < 4096 else b""


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = []
    for path in sorted(glob.glob(os.path.join(HERE, "..", "tests", "vectors", "*.c2s.bin"))):
        fs = list(frames(open(path, "rb").read()))
        # The client on victim 0, as captured.
        seeds.append(b"\0" + b"".join(frame(0, f) for f in fs))
        # The same with the ids our server hands out (op 8).
        seeds.append(b"\0" + b"".join(frame(8, f) for f in fs))
        # On victim 1 (op 11), the bystander sending ECHOs in between.
        seeds.append(b"\0" + b"".join(frame(11, f) + step(15, 0) for f in fs))
        # On victim 0; its socket goes, the client reconnects, the clock
        # jumps past the pre-auth deadline and then past autodisconnect.
        seeds.append(
            b"\0"
            + b"".join(frame(8, f) for f in fs)
            + step(13, 0)
            + b"".join(frame(8, f) for f in fs)
            + step(12, 40)
            + step(12, 16 * 60)
        )
    for s in seeds:
        if len(s) <= 8192:
            with open(os.path.join(out, hashlib.sha1(s).hexdigest()), "wb") as f:
                f.write(s)
    print(len(seeds), "seeds in", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "engine"))
