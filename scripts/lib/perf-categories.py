#!/usr/bin/env python3
"""Where a server spent its time, by kind of work: reads `perf script -F comm,pid,ip,sym`
(of a `perf record -e cpu-clock -g`) on stdin and prints each category's share of the
samples of `--pid PID` or of the threads whose name matches `--comm REGEX`. Used by scripts/bench-xdp-lab.sh (PROFILE=DIR).

A sample goes to the first rule its call chain matches (kernel chains are whole; user-space
chains of a release build without frame pointers are mostly the leaf alone, so user samples
go by the first frame, leaf first, that names one of our crates or smoltcp). Over veth a
frame the server sends is delivered to the client's kernel in the sender's context
(veth_xmit -> netif_rx -> the backlog softirq on the way out of the syscall), so the
client's TCP receive shows up here: it is a category of its own, a cost a real NIC would
not put on the server.
"""
import re
import sys
from collections import Counter

COPY_LEAF = re.compile(r"memcpy|memmove|copy_user|rep_movs|skb_store_bits|skb_copy_bits|copy_to_user|copy_from_user|_copy_from_iter|_copy_to_iter")
XSK_RX = re.compile(r"^(__xsk_rcv|xsk_rcv|xsk_generic_rcv|__xsk_map_redirect|xdp_do_redirect|xdp_do_generic_redirect|do_xdp_generic|netif_receive_generic_xdp|bpf_prog_|veth_xdp_rcv|veth_poll|bpf_dispatcher)")
XSK_TX = re.compile(r"^(__xsk_generic_xmit|xsk_sendmsg|xsk_generic_xmit|xsk_build_skb|xsk_destruct_skb)")
PEER_RX = re.compile(r"^(tcp_v4_rcv|ip_rcv|ip_local_deliver|ip_protocol_deliver_rcu|__netif_receive_skb|process_backlog|tcp_rcv_established)")
OWN_TCP_TX = re.compile(r"^(tcp_sendmsg|tcp_write_xmit|__tcp_transmit_skb|ip_queue_xmit|ip_finish_output|__dev_queue_xmit|veth_xmit)")
OWN_TCP_RX = re.compile(r"^(tcp_recvmsg|tcp_read|sock_recvmsg|tcp_rcv_space|io_recv|tcp_cleanup_rbuf)")
WAIT = re.compile(r"^(finish_task_switch|__schedule|schedule|_raw_spin_unlock_irqrestore|_raw_spin_unlock_irq|do_syscall_64|entry_SYSCALL|syscall_exit|do_sys_poll|__x64_sys_ppoll|do_poll|io_uring_enter|__do_sys_io_uring_enter|ep_poll|do_epoll_wait|try_to_wake_up|read_tsc|ktime_get|hrtimer|eventfd)")
SKB = re.compile(r"^(__alloc_skb|alloc_skb|kfree_skb|skb_release|consume_skb|__slab|slab_|kmem_cache|kfree|__kmalloc|___slab_alloc|sk_skb_reason_drop)")

USER = [
    (re.compile(r"^(<)?smoltcp::|^<smoltcp::"), "user-space TCP (smoltcp)"),
    (re.compile(r"smb_usertcp::"), "user-space TCP (smb-usertcp: flow table, timers, checks)"),
    (re.compile(r"sha2::|sha1|aes::|hmac|cmac|md4|md5|digest::|ghash|polyval|ccm|gcm|ctr::"), "crypto (NTLM, signing)"),
    (re.compile(r"smb_session::|smb_wire::|smb_auth::|smb_rpc::"), "SMB engine (smb-session, smb-wire, smb-auth, smb-rpc)"),
    (re.compile(r"smb_server::transport::xdp|xdpilone::"), "xdp transport loop and rings"),
    (re.compile(r"smb_server::"), "server loop (shard, transport)"),
    (re.compile(r"^__memmove|^__memcpy|^__memset|memcpy|memmove"), "user memcpy/memset (libc)"),
    (re.compile(r"malloc|free|realloc|_int_|cfree"), "allocator (libc)"),
]


def classify(comm, frames):
    if not frames:
        return "unknown"
    syms = [s for _, s in frames]
    leaf_ip, leaf = frames[0]
    kernel = leaf_ip.startswith("ffffffff")
    if kernel:
        has = lambda rx: any(rx.search(s) for s in syms)
        if COPY_LEAF.search(leaf) and any("xsk" in s for s in syms):
            return "AF_XDP copy to/from UMEM"
        if has(XSK_RX):
            return "XDP receive (program, redirect, AF_XDP rx)"
        if has(PEER_RX):
            return "kernel TCP/IP receive in softirq (over veth: mostly the peer's, run in the sender's context)"
        if has(XSK_TX):
            return "AF_XDP transmit (skb build, veth_xmit)"
        if has(OWN_TCP_TX):
            return "kernel TCP send (own)"
        if has(OWN_TCP_RX):
            return "kernel TCP receive (own)"
        if WAIT.search(leaf) or any(WAIT.search(s) for s in syms[:3]):
            return "syscall entry, wait, wake-up, clock"
        if SKB.search(leaf):
            return "skb and slab alloc/free"
        return "kernel other"
    for _, s in frames:
        for rx, name in USER:
            if rx.search(s):
                return name
    return "user other (std, allocator)"


def main():
    args = sys.argv[1:]
    want_pid = args[args.index("--pid") + 1] if "--pid" in args else None
    want_comm = re.compile(args[args.index("--comm") + 1]) if "--comm" in args else None
    counts = Counter()
    comm, frames = None, []
    total = 0

    def flush():
        nonlocal total
        if comm is None:
            return
        name, _, pid = comm.rpartition(" ")
        if want_pid is not None and pid != want_pid:
            return
        if want_comm is not None and not want_comm.search(name.strip()):
            return
        counts[classify(name, frames)] += 1
        total += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            comm, frames = None, []
            continue
        if not line[0].isspace():
            flush()
            comm, frames = line.strip(), []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            frames.append((parts[0], parts[1]))
    flush()
    if total == 0:
        print("    (no samples)")
        return
    for name, n in counts.most_common():
        print(f"    {100.0 * n / total:5.1f} %  {name}")
    print(f"    ({total} samples)")


if __name__ == "__main__":
    main()
