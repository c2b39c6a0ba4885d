#!/usr/bin/env python3
"""Wrap recorded NBSS streams into a pcap so Wireshark/tshark can decode them.

Independent cross-check for the vectors in this folder (python3 stdlib only):

    python3 tests/vectors/to_pcap.py smbclient-L-anon-0 /tmp/x.pcap
    tshark -r /tmp/x.pcap -V -Y smb2

BASE names the pair BASE.c2s.bin / BASE.s2c.bin. Each NBSS frame becomes one
TCP segment (client 127.0.0.1:40000 <-> server 127.0.0.2:445) with correct
sequence numbers per direction. The two directions were recorded separately,
so the pcap interleaves them by taking one frame from each side in turn; the
real timing is not known.
"""

import struct
import sys


def frames(data):
    off = 0
    while off + 4 <= len(data):
        length = int.from_bytes(data[off + 1:off + 4], "big")
        yield data[off:off + 4 + length]
        off += 4 + length


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def packet(src, dst, sport, dport, seq, ack, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x18, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    return eth + ip + tcp + payload


def main():
    base, out = sys.argv[1], sys.argv[2]
    c2s = list(frames(open(base + ".c2s.bin", "rb").read()))
    s2c = list(frames(open(base + ".s2c.bin", "rb").read()))
    cli, srv = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2])
    cseq, sseq = 1000, 5000
    pkts = []
    for i in range(max(len(c2s), len(s2c))):
        if i < len(c2s):
            pkts.append(packet(cli, srv, 40000, 445, cseq, sseq, c2s[i]))
            cseq += len(c2s[i])
        if i < len(s2c):
            pkts.append(packet(srv, cli, 445, 40000, sseq, cseq, s2c[i]))
            sseq += len(s2c[i])
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for n, p in enumerate(pkts):
            f.write(struct.pack("<IIII", n, 0, len(p), len(p)))
            f.write(p)


if __name__ == "__main__":
    main()
