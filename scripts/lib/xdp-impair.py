#!/usr/bin/python3
"""A user-space impairing L2 forwarder for the AF_XDP lab (scripts/xdp-lab
up --impair): netem's loss and reorder, which this kernel lacks.

    `tc qdisc add dev lo root netem loss 1%` answers here
    "Error: Specified qdisc kind is unknown." (no sch_netem, and no
    loadable modules), so the lab puts this program in a third namespace,
    between the server's and the client's veth, instead.

Usage: xdp-impair.py IF_A IF_B STATS_FILE [loss=P] [reorder=P] [seed=N]

Forwards every Ethernet frame that arrives on IF_A out of IF_B and back,
through AF_PACKET sockets (ETH_P_ALL; frames this program sent are seen
again as PACKET_OUTGOING and skipped). In each direction, independently:

- loss=P: P % of frames are dropped (netem `loss P%`).
- reorder=P: P % of frames are held back and sent right after the next
  frame of that direction that is sent, so those two arrive swapped (as
  netem's `reorder` swaps a frame with its successor). A held frame with
  no successor within HOLD_MAX is sent alone (counted, not as reordered).

The counters (frames, dropped, held, reordered, released_alone, errors, per
direction) are written as JSON to STATS_FILE (atomically, by rename) every
half second when they changed, and on SIGTERM, which ends the program.
"""

import json
import os
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
HOLD_MAX = 0.05


class Direction:
    def __init__(self, name, out_sock):
        self.name = name
        self.out = out_sock
        self.held = None
        self.held_at = 0.0
        self.c = dict(frames=0, dropped=0, held=0, reordered=0, released_alone=0, errors=0)

    def send(self, frame):
        try:
            self.out.send(frame)
        except OSError:
            self.c["errors"] += 1

    def frame(self, frame, rng, loss, reorder, now):
        self.c["frames"] += 1
        r = rng.random() * 100.0
        if r < loss:
            self.c["dropped"] += 1
            return
        if r < loss + reorder and self.held is None:
            self.held = frame
            self.held_at = now
            self.c["held"] += 1
            return
        self.send(frame)
        if self.held is not None:
            self.send(self.held)
            self.held = None
            self.c["reordered"] += 1

    def expire(self, now):
        if self.held is not None and now - self.held_at >= HOLD_MAX:
            self.send(self.held)
            self.held = None
            self.c["released_alone"] += 1


def open_if(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((name, ETH_P_ALL))
    s.setblocking(False)
    return s


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    if_a, if_b, stats_path = argv[1], argv[2], argv[3]
    opts = {"loss": 0.0, "reorder": 0.0, "seed": None}
    for kv in argv[4:]:
        k, _, v = kv.partition("=")
        if k not in opts or not v:
            print(f"xdp-impair: unknown setting {kv!r}", file=sys.stderr)
            return 2
        opts[k] = float(v) if k != "seed" else int(v)
    if not (0 <= opts["loss"] <= 100 and 0 <= opts["reorder"] <= 100):
        print("xdp-impair: loss and reorder are percentages", file=sys.stderr)
        return 2
    rng = random.Random(opts["seed"])
    sa, sb = open_if(if_a), open_if(if_b)
    dirs = {sa.fileno(): (sa, Direction(f"{if_a}->{if_b}", sb)),
            sb.fileno(): (sb, Direction(f"{if_b}->{if_a}", sa))}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    last_written = None
    next_write = 0.0

    def write_stats():
        nonlocal last_written
        doc = {"loss": opts["loss"], "reorder": opts["reorder"],
               "directions": {d.name: d.c for _, d in dirs.values()}}
        text = json.dumps(doc, sort_keys=True)
        if text == last_written:
            return
        tmp = stats_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.rename(tmp, stats_path)
        last_written = text

    write_stats()
    while not stop:
        try:
            ready, _, _ = select.select(list(dirs), [], [], HOLD_MAX / 2)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in ready:
            sock, d = dirs[fd]
            for _ in range(64):
                try:
                    frame, addr = sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    d.c["errors"] += 1
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                d.frame(frame, rng, opts["loss"], opts["reorder"], now)
        for _, d in dirs.values():
            d.expire(now)
        if now >= next_write:
            write_stats()
            next_write = now + 0.5
    write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
