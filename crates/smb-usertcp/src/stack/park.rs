//! Parking an idle connection: its smoltcp socket and both buffers are
//! freed, and rebuilt when it is next used by replaying its handshake into
//! a fresh socket (ARCHITECTURE.md, "Parking idle connections"). smoltcp
//! 0.12 has no call that swaps a live socket's buffers or sets its
//! sequence numbers; a replayed SYN at RCV.NXT - 1 answered with an ISN of
//! SND.NXT - 1 (the interface seeded for it, `crate::isn::seed_for`) and
//! the peer's ACK of SND.NXT leave a fresh socket ESTABLISHED with the
//! same numbers, window scale and MSS (RFC 9293 section 3.5, RFC 7323
//! section 2.2). The same replay gives a connection established on a
//! half-open socket's small buffers its full-size ones.

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use super::{make_iface, write_ip_tcp, Flow, TcpStack};
use crate::device::{Discard, OnePacket};
use crate::flow::FlowKey;

/// A segment from the peer of `key` to this host, replayed into a fresh
/// socket to restore a parked flow (never sent; checksums are right all
/// the same).
fn replayed(key: &FlowKey, seq: u32, ack: u32, flags: u8, wnd: u16, opts: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40 + opts.len()];
    write_ip_tcp(&mut p, key.remote, key.local, seq, ack, flags, wnd, opts);
    p
}

impl<T> TcpStack<T> {
    /// The flow may be parked: a connection opened by a SYN, ESTABLISHED,
    /// with nothing unsent or unacknowledged (the send buffer holds both),
    /// nothing unread, and every byte received acknowledged (no ACK
    /// pending), not waiting for room to send, and keeping the
    /// keep-alive the stack gave it (a caller that turned a socket's
    /// keep-alive on to probe it, as the xdp transport's keep-alive watch
    /// does, keeps the socket, and smoltcp's probes with it, until it
    /// turns it off again).
    pub(super) fn parkable(&self, flow: &Flow<T>) -> bool {
        if self.cfg.park_after.is_none()
            || flow.parked
            || flow.time_wait != super::TimeWait::No
            || flow.probing
            || flow.syn.is_none()
            || flow.blocked
        {
            return false;
        }
        let sock = flow.socket();
        sock.state() == tcp::State::Established
            && sock.keep_alive() == self.cfg.keep_alive
            && sock.send_queue() == 0
            && sock.recv_queue() == 0
            && flow.rcv_nxt.is_some()
            && flow.sent.snd_nxt.is_some()
            && flow.sent.ack == flow.rcv_nxt
    }

    /// Free an idle flow's socket and buffers, keeping what rebuilds it:
    /// SND.NXT and RCV.NXT (followed already), the peer's SYN options and
    /// last window. A keep-alive interval files its timer.
    pub(super) fn park(&mut self, index: usize, now: Instant) {
        let flow = &mut self.flows[index];
        let _ = flow.set.remove(flow.handle);
        flow.set = SocketSet::new(Vec::new());
        flow.parked = true;
        // No timer but the keep-alive's (a pending want is void).
        flow.want = None;
        self.parked_len += 1;
        self.stats.parks += 1;
        if let Some(ka) = self.cfg.keep_alive {
            // Due when smoltcp's would have been: keep-alive after the
            // last activity (RFC 9293 section 3.8.4).
            let due = flow.touched.saturating_add(ka.total_micros() as i64);
            self.want_timer(index, due.max(now.total_micros()));
        }
    }

    /// Rebuild a parked flow's socket in ESTABLISHED with the same
    /// sequence numbers, windows and options, by replaying its handshake
    /// into a fresh listening socket: a SYN from the peer at RCV.NXT - 1
    /// with the options it first sent, answered with an ISN of SND.NXT - 1
    /// (the interface seeded for it, as for RFC 6528 ISNs), then the
    /// peer's ACK of SND.NXT with its last window. What smoltcp answers to
    /// these goes nowhere. Congestion state and the RTT estimate start
    /// afresh (RFC 5681 section 4.1 allows restarting an idle
    /// connection's window). Should the replay fail (it does not with
    /// smoltcp 0.12; a test checks), the socket is left closed and the
    /// caller sees the connection end.
    pub(super) fn unpark(&mut self, index: usize, now: Instant) {
        self.rebuild(index, now);
        let flow = &mut self.flows[index];
        flow.parked = false;
        self.parked_len -= 1;
        self.stats.restores += 1;
    }

    /// A connection just established on a half-open socket's small
    /// buffers gets full-size ones (the same replay as [`Self::unpark`]),
    /// if nothing is queued either way; else it keeps the small ones
    /// until it is next parked and restored.
    pub(super) fn regrow(&mut self, index: usize, now: Instant) {
        let flow = &mut self.flows[index];
        let sock = flow.socket();
        if sock.recv_capacity() >= self.cfg.rx_buffer
            || sock.recv_queue() != 0
            || sock.send_queue() != 0
            || flow.syn.is_none()
            || flow.rcv_nxt.is_none()
            || flow.sent.snd_nxt.is_none()
        {
            return;
        }
        let _ = flow.set.remove(flow.handle);
        self.rebuild(index, now);
    }

    /// The replay of [`Self::unpark`] into a fresh socket with full-size
    /// buffers, which becomes the flow's.
    fn rebuild(&mut self, index: usize, now: Instant) {
        let mut sock = self.new_socket();
        let flow = &self.flows[index];
        let (Some(syn), Some(rcv_nxt), Some(snd_nxt)) = (flow.syn, flow.rcv_nxt, flow.sent.snd_nxt)
        else {
            // Only flows that have all three are parked or regrown; were
            // one missing, the flow ends (a closed socket, never none).
            let mut set = SocketSet::new(Vec::with_capacity(1));
            sock.abort();
            let handle = set.add(sock);
            let flow = &mut self.flows[index];
            flow.set = set;
            flow.handle = handle;
            return;
        };
        let key = flow.key;
        let (link, wnd) = (flow.link, flow.peer_wnd);
        let endpoint = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(*key.local.ip())),
            port: key.local.port(),
        };
        let _ = sock.listen(endpoint);
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let handle = set.add(sock);
        self.iface = make_iface(
            &self.cfg,
            crate::isn::seed_for(snd_nxt.wrapping_sub(1)),
            now,
        );
        let mut opts = Vec::with_capacity(12);
        if let Some(mss) = syn.mss {
            opts.extend_from_slice(&[2, 4]);
            opts.extend_from_slice(&mss.to_be_bytes());
        }
        if let Some(ws) = syn.ws {
            opts.extend_from_slice(&[1, 3, 3, ws]);
        }
        if syn.sack {
            opts.extend_from_slice(&[1, 1, 4, 2]);
        }
        let syn_seg = replayed(&key, rcv_nxt.wrapping_sub(1), 0, 0x02, wnd, &opts);
        let ack_seg = replayed(&key, rcv_nxt, snd_nxt, 0x10, wnd, &[]);
        for seg in [&syn_seg, &ack_seg] {
            let mut dev = OnePacket {
                rx: Some(seg),
                egress: &mut Discard,
                link,
                scratch: &mut self.scratch,
                mtu: self.cfg.mtu,
                sent: None,
            };
            self.iface.poll(now, &mut dev, &mut set);
        }
        let flow = &mut self.flows[index];
        flow.set = set;
        flow.handle = handle;
        if flow.socket().state() != tcp::State::Established {
            flow.socket_mut().abort();
        }
    }
}
