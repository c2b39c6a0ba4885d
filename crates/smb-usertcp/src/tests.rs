//! A client stack and a server stack joined in memory (quinn-proto's
//! `Pair`, with a fake clock).

use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::socket::tcp::State;
use smoltcp::time::{Duration, Instant};

use crate::{Egress, FlowId, Ingress, LinkAddr, StackConfig, TcpStack};

/// One direction of the in-memory link.
type Wire = crate::PacketQueue;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

struct Pair {
    client: TcpStack<u32>,
    server: TcpStack<u32>,
    now: Instant,
    to_server: Wire,
    to_client: Wire,
    server_events: Vec<Ingress>,
}

impl Pair {
    fn new() -> Pair {
        let now = Instant::from_secs(1000);
        Pair {
            client: TcpStack::new(StackConfig::new(vec![CLIENT], None, 1), now).unwrap(),
            server: TcpStack::new(StackConfig::new(vec![SERVER], Some(445), 2), now).unwrap(),
            now,
            to_server: Wire::default(),
            to_client: Wire::default(),
            server_events: Vec::new(),
        }
    }

    /// Deliver until both directions are quiet.
    fn run(&mut self) {
        for _ in 0..1000 {
            if self.to_server.packets.is_empty() && self.to_client.packets.is_empty() {
                return;
            }
            for p in std::mem::take(&mut self.to_server.packets) {
                let ev = self
                    .server
                    .ingress(self.now, [1; 6], &p, &mut self.to_client, || 7);
                self.server_events.push(ev);
            }
            for p in std::mem::take(&mut self.to_client.packets) {
                self.client
                    .ingress(self.now, [2; 6], &p, &mut self.to_server, || 0);
            }
        }
        panic!("the pair never went quiet");
    }

    /// The client's SYN from `port` to the server, queued, not yet
    /// delivered.
    fn start_connect(&mut self, port: u16) -> FlowId {
        self.client
            .connect(
                self.now,
                SocketAddrV4::new(CLIENT, port),
                SocketAddrV4::new(SERVER, 445),
                [2; 6],
                &mut self.to_server,
                0,
            )
            .unwrap()
    }

    /// A connection from `port`, handshake done: (client's, server's).
    fn connect(&mut self, port: u16) -> (FlowId, FlowId) {
        let c = self.start_connect(port);
        self.run();
        let s = self
            .server
            .find(&crate::FlowKey {
                remote: SocketAddrV4::new(CLIENT, port),
                local: SocketAddrV4::new(SERVER, 445),
            })
            .expect("the server has the flow");
        (c, s)
    }
}

/// Everything flow `id` of `stack` has received and not yet read.
fn received<T>(stack: &mut TcpStack<T>, id: FlowId) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let sock = stack.flow_mut(id).expect("the flow").socket_mut();
    while let Ok(n @ 1..) = sock.recv_slice(&mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn a_connection_opens_carries_bytes_both_ways_and_closes_through_the_hash() {
    let mut p = Pair::new();
    let (c, s) = p.connect(40000);
    assert!(matches!(p.server_events[0], Ingress::New(id) if id == s));
    assert_eq!(p.server.flow(s).unwrap().user, 7);
    assert_eq!(p.server.flow(s).unwrap().link(), [1; 6], "link learned");
    assert_eq!(
        p.client.flow(c).unwrap().socket().state(),
        State::Established
    );
    assert_eq!(
        p.server.flow(s).unwrap().socket().state(),
        State::Established
    );

    // A second connection does not see the first one's bytes.
    let (c2, s2) = p.connect(40001);
    let n = p
        .client
        .flow_mut(c)
        .unwrap()
        .socket_mut()
        .send_slice(b"hello")
        .unwrap();
    assert_eq!(n, 5);
    p.client.poll(p.now, c, &mut p.to_server);
    p.run();
    assert_eq!(received(&mut p.server, s), b"hello");
    assert!(!p.server.flow(s2).unwrap().socket().can_recv());
    p.server
        .flow_mut(s2)
        .unwrap()
        .socket_mut()
        .send_slice(b"pong")
        .unwrap();
    p.server.poll(p.now, s2, &mut p.to_client);
    p.run();
    assert_eq!(received(&mut p.client, c2), b"pong");

    // Close from the client; the server sees the FIN, closes too.
    p.client.flow_mut(c).unwrap().socket_mut().close();
    p.client.poll(p.now, c, &mut p.to_server);
    p.run();
    assert_eq!(p.server.flow(s).unwrap().socket().state(), State::CloseWait);
    p.server.flow_mut(s).unwrap().socket_mut().close();
    p.server.poll(p.now, s, &mut p.to_client);
    p.run();
    assert_eq!(p.server.flow(s).unwrap().socket().state(), State::Closed);
    assert_eq!(p.server.remove(s), Some(7));
    assert!(p.server.flow(s).is_none(), "a removed id is stale");
    // The client waits out TIME-WAIT on its timers, its socket freed.
    assert_eq!(p.client.flow(c).unwrap().state(), State::TimeWait);
    assert_eq!(p.client.time_wait(), 1);
    p.now += Duration::from_secs(30);
    let mut fired = Vec::new();
    p.client.poll_timers(p.now, &mut p.to_server, &mut fired);
    assert!(fired.contains(&c));
    assert_eq!(p.client.flow(c).unwrap().state(), State::Closed);
    assert_eq!(p.client.time_wait(), 0);
    // The close handshake (LAST-ACK, TIME-WAIT) ends nothing abnormally.
    for st in [p.server.stats(), p.client.stats()] {
        assert_eq!((st.reset_by_peer, st.timed_out), (0, 0), "{st:?}");
    }
}

#[test]
fn a_segment_of_no_connection_is_answered_with_a_reset_and_makes_no_flow() {
    let mut p = Pair::new();
    let (c, s) = p.connect(40000);
    // The server forgets the connection; the client's next data segment
    // gets a RST (RFC 9293 section 3.10.7.1) and the client's socket closes.
    p.server.remove(s);
    p.client
        .flow_mut(c)
        .unwrap()
        .socket_mut()
        .send_slice(b"x")
        .unwrap();
    p.client.poll(p.now, c, &mut p.to_server);
    p.server_events.clear();
    p.run();
    assert_eq!(p.server_events[0], Ingress::NoFlow);
    assert!(p.server.is_empty());
    assert_eq!(p.client.flow(c).unwrap().socket().state(), State::Closed);
}

#[test]
fn bad_checksums_and_garbage_make_no_flow_and_harm_no_connection() {
    let mut p = Pair::new();
    let (c, s) = p.connect(40000);
    // A SYN from another port, with its checksum broken.
    let c2 = p.start_connect(40001);
    let mut syn = p.to_server.packets.pop().unwrap();
    syn[36] ^= 0xff; // the TCP checksum's first byte
    let ev = p
        .server
        .ingress(p.now, [1; 6], &syn, &mut p.to_client, || 9);
    assert_eq!(ev, Ingress::Dropped);
    assert_eq!(p.server.len(), 1);
    assert!(p.to_client.packets.is_empty(), "no answer to a broken SYN");
    let _ = c2;
    for garbage in [&b""[..], &[0x45; 3][..], &[0x60; 60][..], &[0xff; 1500][..]] {
        assert_eq!(
            p.server
                .ingress(p.now, [1; 6], garbage, &mut p.to_client, || 9),
            Ingress::Dropped
        );
    }
    // The first connection still works.
    p.client
        .flow_mut(c)
        .unwrap()
        .socket_mut()
        .send_slice(b"ok")
        .unwrap();
    p.client.poll(p.now, c, &mut p.to_server);
    p.run();
    assert!(p.server.flow(s).unwrap().socket().can_recv());
}

#[test]
fn a_syn_past_max_flows_is_dropped() {
    let mut p = Pair::new();
    p.server = TcpStack::new(
        StackConfig {
            max_flows: 1,
            ..StackConfig::new(vec![SERVER], Some(445), 2)
        },
        p.now,
    )
    .unwrap();
    p.connect(40000);
    p.server_events.clear();
    let _ = p.client.connect(
        p.now,
        SocketAddrV4::new(CLIENT, 40001),
        SocketAddrV4::new(SERVER, 445),
        [2; 6],
        &mut p.to_server,
        0,
    );
    p.run();
    assert_eq!(p.server_events, [Ingress::Dropped]);
    assert_eq!(p.server.len(), 1);
}

/// RFC 1071 ones' complement sum.
fn csum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        for pair in c.chunks(2) {
            let word = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_be_bytes([pair[0], 0])
            };
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recompute the IPv4 header and TCP checksums of `p` as far as its own
/// (possibly lying) lengths allow, so that a forged segment gets past the
/// checksum test and reaches TCP itself.
fn fix_checksums(p: &mut [u8]) {
    if p.len() < 20 {
        return;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || ihl > p.len() {
        return;
    }
    p[10] = 0;
    p[11] = 0;
    let c = csum(&[&p[..ihl]]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if total < ihl + 18 {
        return;
    }
    p[ihl + 16] = 0;
    p[ihl + 17] = 0;
    let len = ((total - ihl) as u16).to_be_bytes();
    let pseudo = [
        p[12], p[13], p[14], p[15], p[16], p[17], p[18], p[19], 0, 6, len[0], len[1],
    ];
    let c = csum(&[&pseudo, &p[ihl..total]]);
    p[ihl + 16..ihl + 18].copy_from_slice(&c.to_be_bytes());
}

/// The next data segment of client flow `c`, captured instead of sent.
fn data_segment(p: &mut Pair, c: FlowId, data: &[u8]) -> Vec<u8> {
    p.client
        .flow_mut(c)
        .unwrap()
        .socket_mut()
        .send_slice(data)
        .unwrap();
    let mut q = Wire::default();
    p.client.poll(p.now, c, &mut q);
    assert_eq!(q.packets.len(), 1);
    q.packets.pop().unwrap()
}

fn seq_of(seg: &[u8]) -> u32 {
    u32::from_be_bytes([seg[24], seg[25], seg[26], seg[27]])
}

fn set_seq(seg: &mut [u8], seq: u32) {
    seg[24..28].copy_from_slice(&seq.to_be_bytes());
}

#[test]
fn forged_segments_are_dropped_or_answered_per_rfc_9293_and_harm_no_connection() {
    let mut p = Pair::new();
    let (c, s) = p.connect(40000);
    let (c2, s2) = p.connect(40001);
    let good = data_segment(&mut p, c, b"abc");
    let feed = |p: &mut Pair, seg: &[u8]| {
        let mut q = Wire::default();
        let ev = p.server.ingress(p.now, [1; 6], seg, &mut q, || 9);
        (ev, q.packets)
    };

    // A RST whose sequence number is not the next expected one: no reset
    // (RFC 9293 section 3.10.7.4 / RFC 5961 section 3.2).
    let mut rst = good[..40].to_vec();
    rst[2..4].copy_from_slice(&40u16.to_be_bytes());
    rst[33] = 0x04;
    set_seq(&mut rst, seq_of(&good).wrapping_add(100_000));
    fix_checksums(&mut rst);
    feed(&mut p, &rst);
    assert_eq!(
        p.server.flow(s).unwrap().socket().state(),
        State::Established
    );

    // Data far outside the receive window: not taken, answered with an ACK
    // (RFC 9293 section 3.10.7.4, first check). smoltcp sends at most one
    // such ACK a second (the RST above drew one; RFC 5961 section 7), so
    // the clock moves on first.
    p.now += Duration::from_secs(2);
    let mut outside = good.clone();
    set_seq(&mut outside, seq_of(&good).wrapping_add(1 << 30));
    fix_checksums(&mut outside);
    let (_, answers) = feed(&mut p, &outside);
    assert!(!p.server.flow(s).unwrap().socket().can_recv());
    assert_eq!(
        answers.len(),
        1,
        "an ACK for the segment outside the window"
    );

    // A data offset that puts the options past the end of the segment.
    let mut options = good.clone();
    options[32] = 0xf0; // 60-byte TCP header in a 43-byte segment
    fix_checksums(&mut options);
    assert_eq!(feed(&mut p, &options).1.len(), 0);
    // IPv4 total length longer than the bytes, and shorter than the headers.
    let mut long = good.clone();
    long[2..4].copy_from_slice(&1400u16.to_be_bytes());
    fix_checksums(&mut long);
    assert_eq!(feed(&mut p, &long).0, Ingress::Dropped);
    let mut short = good.clone();
    short[2..4].copy_from_slice(&30u16.to_be_bytes());
    fix_checksums(&mut short);
    assert_eq!(feed(&mut p, &short).0, Ingress::Dropped);
    // A bad checksum.
    let mut bad = good.clone();
    bad[40] ^= 1;
    feed(&mut p, &bad);
    assert!(!p.server.flow(s).unwrap().socket().can_recv());

    // The genuine segment still lands, once, in its own connection only.
    feed(&mut p, &good);
    assert_eq!(received(&mut p.server, s), b"abc");
    assert!(!p.server.flow(s2).unwrap().socket().can_recv());
    assert_eq!(p.server.len(), 2);
    let _ = c2;
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Any bytes changed anywhere in a genuine segment (checksums made
    /// right again, so TCP itself sees them): no panic, at most the
    /// segment's own connection changes, and the other connection carries
    /// data as before.
    #[test]
    fn mutated_segments_never_touch_another_connection(
        edits in proptest::collection::vec((0usize..64, proptest::num::u8::ANY), 1..6),
        cut in 0usize..64,
    ) {
        let mut p = Pair::new();
        let (c, _s) = p.connect(40000);
        let (c2, s2) = p.connect(40001);
        let mut seg = data_segment(&mut p, c, b"payload!");
        for (at, v) in edits {
            if at < seg.len() {
                seg[at] = v;
            }
        }
        if cut < seg.len() && cut > 0 {
            seg.truncate(seg.len() - cut.min(seg.len() - 1));
        }
        fix_checksums(&mut seg);
        let mut q = Wire::default();
        let _ = p.server.ingress(p.now, [1; 6], &seg, &mut q, || 9);
        proptest::prop_assert!(p.server.len() <= 3);
        proptest::prop_assert_eq!(p.server.flow(s2).unwrap().socket().state(), State::Established);
        p.client.flow_mut(c2).unwrap().socket_mut().send_slice(b"ok").unwrap();
        p.client.poll(p.now, c2, &mut p.to_server);
        p.run();
        let mut buf = [0u8; 8];
        let n = p.server.flow_mut(s2).unwrap().socket_mut().recv_slice(&mut buf).unwrap();
        proptest::prop_assert_eq!(&buf[..n], b"ok");
    }
}

/// An egress that takes `room` more packets, then none.
struct Tight {
    room: usize,
    wire: Wire,
}

impl Egress for Tight {
    fn buffer(&mut self, link: LinkAddr, len: usize) -> Option<&mut [u8]> {
        if self.room == 0 {
            return None;
        }
        self.wire.buffer(link, len)
    }
    fn commit(&mut self, _: LinkAddr, _: usize) {
        self.room = self.room.saturating_sub(1);
    }
    fn has_room(&self) -> bool {
        self.room > 0
    }
}

#[test]
fn with_no_room_to_send_tcp_holds_its_data_and_sends_it_once_room_returns() {
    let mut p = Pair::new();
    let (c, s) = p.connect(40000);
    p.server
        .flow_mut(s)
        .unwrap()
        .socket_mut()
        .send_slice(&[7u8; 3000])
        .unwrap();
    let mut tight = Tight {
        room: 0,
        wire: Wire::default(),
    };
    p.server.poll(p.now, s, &mut tight);
    assert!(tight.wire.packets.is_empty());
    assert!(p.server.has_blocked(), "the flow waits for room");
    // One packet of room: one segment, still blocked for the rest.
    tight.room = 1;
    p.server.poll_blocked(p.now, &mut tight);
    assert_eq!(tight.wire.packets.len(), 1);
    assert!(p.server.has_blocked());
    // Room again: the rest goes, nothing was lost on the way.
    tight.room = 100;
    p.server.poll_blocked(p.now, &mut tight);
    assert!(!p.server.has_blocked());
    p.to_client.packets.append(&mut tight.wire.packets);
    p.run();
    assert_eq!(received(&mut p.client, c), vec![7u8; 3000]);
}

mod defence;
mod hostile;
mod time_wait;
