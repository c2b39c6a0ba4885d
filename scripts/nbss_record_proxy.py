#!/usr/bin/env python3
"""Recording TCP proxy for capturing SMB test vectors (python3, stdlib only).

Listens on 127.0.0.1:LISTEN_PORT, forwards every accepted connection to
UPSTREAM_HOST:UPSTREAM_PORT and records, per TCP connection n (counted from 0),
the exact bytes of each direction:

    OUTDIR/PREFIX-n.c2s.bin   client -> server (the whole NBSS stream as sent)
    OUTDIR/PREFIX-n.s2c.bin   server -> client

Nothing is parsed or altered; a half-close on one side is passed on to the
other side, so the recording ends where the real conversation ends.

On SIGTERM or SIGINT the proxy stops accepting, waits up to --drain seconds for
open connections to finish, closes its files and exits 0. Once it is listening
it writes its pid to --ready-file (if given), so a script can wait for it.

Usage:
    nbss_record_proxy.py --listen 14450 --upstream 127.0.0.1:14451 \
        --outdir DIR --prefix NAME [--ready-file FILE] [--drain 5]
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time


def pump(src, dst, path, done):
    """Copy src -> dst until EOF, appending every chunk to the file at path."""
    with open(path, "wb") as rec:
        try:
            while True:
                try:
                    chunk = src.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                rec.write(chunk)
                try:
                    dst.sendall(chunk)
                except OSError:
                    break
        finally:
            rec.flush()
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            done.set()


class Proxy:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.active = []  # (client, upstream, [events])
        self.count = 0
        self.stopping = threading.Event()
        uh, up = args.upstream.rsplit(":", 1)
        self.upstream = (uh, int(up))

    def handle(self, client):
        with self.lock:
            n = self.count
            self.count += 1
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
        except OSError as e:
            print(f"proxy: upstream connect failed: {e}", file=sys.stderr)
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        base = os.path.join(self.args.outdir, f"{self.args.prefix}-{n}")
        e1, e2 = threading.Event(), threading.Event()
        entry = (client, upstream, [e1, e2])
        with self.lock:
            self.active.append(entry)
        t1 = threading.Thread(target=pump, args=(client, upstream, base + ".c2s.bin", e1), daemon=True)
        t2 = threading.Thread(target=pump, args=(upstream, client, base + ".s2c.bin", e2), daemon=True)
        t1.start()
        t2.start()
        t1.join()
        t2.join()
        client.close()
        upstream.close()
        with self.lock:
            self.active.remove(entry)

    def serve(self):
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", self.args.listen))
        lsock.listen(64)
        lsock.settimeout(0.2)
        if self.args.ready_file:
            with open(self.args.ready_file, "w") as f:
                f.write(f"{os.getpid()}\n")
        while not self.stopping.is_set():
            try:
                client, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            client.settimeout(None)
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()
        lsock.close()
        deadline = time.monotonic() + self.args.drain
        while time.monotonic() < deadline:
            with self.lock:
                if not self.active:
                    break
            time.sleep(0.05)
        with self.lock:
            left = list(self.active)
        for client, upstream, _ in left:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        # Let the pump threads close their files.
        for _, _, events in left:
            for e in events:
                e.wait(2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", required=True, help="HOST:PORT")
    p.add_argument("--outdir", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--ready-file")
    p.add_argument("--drain", type=float, default=5.0)
    args = p.parse_args()
    proxy = Proxy(args)

    def stop(_signum, _frame):
        proxy.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    proxy.serve()


if __name__ == "__main__":
    main()
