#!/usr/bin/env python3
"""Builds seeds for the `tcp_segment` fuzz target (fuzz/seeds/tcp_segment):
a few inputs in its step format (see fuzz_targets/tcp_segment.rs) holding
valid IPv4 TCP segments (RFC 791 section 3.1, RFC 9293 section 3.1) and
replays of the segments the client really sent, edited into a RST, a SYN,
a FIN and a window probe. Run from anywhere; python3, stdlib only. Use with
    cd fuzz && cargo +nightly fuzz run tcp_segment corpus/tcp_segment seeds/tcp_segment
"""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp_segment")
CLIENT = bytes([198, 18, 1, 1])
SERVER = bytes([198, 18, 0, 1])


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def segment(sport, dport, seq, ack, flags, payload=b"", src=CLIENT, dst=SERVER):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 1024, 0, 0) + payload
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + tcp


def raw(p):
    return b"\x00" + struct.pack("<H", len(p)) + p


def template(pick, edits=()):
    out = bytes([2, pick, len(edits)])
    for off, val in edits:
        out += struct.pack("<HB", off, val)
    return out


def time_ms(ms):
    return b"\x03" + struct.pack("<H", ms)


SEEDS = {
    "syn": raw(segment(41000, 445, 1000, 0, 0x02)),
    "syn-other-port": raw(segment(41001, 446, 1000, 0, 0x02)),
    "ack-no-flow": raw(segment(41002, 445, 1000, 5000, 0x18, b"hello")),
    "rst-no-flow": raw(segment(41003, 445, 1000, 5000, 0x04)),
    "replays": template(0) + template(1) + template(2) + template(3),
    "replay-as-rst": template(3, [(33, 0x04)]) + template(3, [(33, 0x14), (27, 0x01)]),
    "replay-as-syn": template(3, [(33, 0x02)]),
    "replay-as-fin": template(4, [(33, 0x11)]),
    "replay-lying-lengths": template(4, [(3, 0xFF)]) + template(4, [(0, 0x4F)]) + template(4, [(32, 0xF0)]),
    "traffic": b"\x05\x40" + time_ms(10) + b"\x04" + b"\x06\x00" + b"\x07" + b"\x05\x10"
    + bytes([0x13]) + struct.pack("<H", 200) + b"\x04" + b"\x06\x01",
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(len(SEEDS), "seeds in", OUT)
