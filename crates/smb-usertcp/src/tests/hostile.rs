//! Hostile input (issue 14): malformed IPv4/TCP packets and segments a
//! connection must not act on, fed at a server stack that holds several
//! established connections carrying data. Each kind gets its defined answer
//! (dropped, or answered per RFC 9293 / RFC 5961) and the other
//! connections carry on: their state is unchanged and their bytes keep
//! arriving in order.
//!
//! The packets are built here from the RFCs' layouts (RFC 791 section 3.1,
//! RFC 9293 section 3.1), with sequence and acknowledgement numbers read
//! from the segments the stacks really exchanged, not from the stack's own
//! bookkeeping.

use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::socket::tcp::State;
use smoltcp::time::Duration;

use super::{Pair, CLIENT, SERVER};
use crate::{FlowId, Ingress};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

fn sum(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> [u8; 2] {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    (!(acc as u16)).to_be_bytes()
}

/// Make both checksums right for the lengths the packet claims (so that a
/// test of a lying field is not a test of a checksum).
fn fix(p: &mut [u8]) {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let ihl = ihl.clamp(20, p.len());
    p[10..12].fill(0);
    let c = fold(sum(&p[..ihl], 0));
    p[10..12].copy_from_slice(&c);
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if total < ihl + 18 {
        return;
    }
    let mut pseudo = sum(&p[12..20], 6);
    pseudo += (total - ihl) as u32;
    let tcp = &mut p[ihl..total];
    tcp[16..18].fill(0);
    let c = fold(sum(tcp, pseudo));
    tcp[16..18].copy_from_slice(&c);
}

/// An IPv4 TCP segment from `src` to `dst`, checksums right.
pub(super) fn segment(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let total = 40 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.ip().octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[28..32].copy_from_slice(&ack.to_be_bytes());
    p[32] = 0x50;
    p[33] = flags;
    p[34..36].copy_from_slice(&1024u16.to_be_bytes());
    p[40..].copy_from_slice(payload);
    fix(&mut p);
    p
}

/// The fields of a segment the server sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Out {
    pub(super) dport: u16,
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) flags: u8,
    pub(super) len: usize,
}

pub(super) fn read(p: &[u8]) -> Out {
    let t = &p[20..];
    Out {
        dport: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        flags: t[13],
        len: p.len() - 20 - usize::from(t[12] >> 4) * 4,
    }
}

fn client(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(CLIENT, port)
}

fn server() -> SocketAddrV4 {
    SocketAddrV4::new(SERVER, 445)
}

/// One connection of the lab, with what has gone over it.
struct Conn {
    port: u16,
    c: FlowId,
    s: FlowId,
    /// Bytes the client sent and the server read, and back.
    up: u64,
    down: u64,
    /// The client's next sequence number (the server's RCV.NXT) and the
    /// server's (its SND.NXT), read off the wire.
    client_nxt: u32,
    server_nxt: u32,
}

struct Lab {
    p: Pair,
    conns: Vec<Conn>,
}

/// What a connection's server side looks like from outside.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    state: State,
    recv_queue: usize,
    send_queue: usize,
    tcb: (Option<u32>, Option<u32>),
}

impl Lab {
    /// Three established connections (ports 40000-40002) that have carried
    /// bytes both ways.
    fn new() -> Lab {
        let mut p = Pair::new();
        let mut conns = Vec::new();
        for port in 40000..40003 {
            let (c, s) = p.connect(port);
            conns.push(Conn {
                port,
                c,
                s,
                up: 0,
                down: 0,
                client_nxt: 0,
                server_nxt: 0,
            });
        }
        let mut lab = Lab { p, conns };
        for i in 0..3 {
            lab.exchange(i);
        }
        lab
    }

    /// Connection `i` carries a counted pattern each way; every byte
    /// arrives, once and in order. Records the sequence numbers seen.
    fn exchange(&mut self, i: usize) {
        let p = &mut self.p;
        let k = &mut self.conns[i];
        let up: Vec<u8> = (k.up..k.up + 37)
            .map(|b| (b as u8) ^ (k.port as u8))
            .collect();
        let n = p
            .client
            .flow_mut(k.c)
            .unwrap()
            .socket_mut()
            .send_slice(&up)
            .unwrap();
        assert_eq!(n, up.len());
        p.client.poll(p.now, k.c, &mut p.to_server);
        let sent = read(p.to_server.packets.last().expect("a data segment"));
        k.client_nxt = sent.seq.wrapping_add(sent.len as u32);
        p.run();
        let mut buf = [0u8; 256];
        let got = p
            .server
            .flow_mut(k.s)
            .unwrap()
            .socket_mut()
            .recv_slice(&mut buf)
            .unwrap();
        assert_eq!(&buf[..got], &up[..], "connection {i}: bytes up, in order");
        k.up += got as u64;

        let down: Vec<u8> = (k.down..k.down + 23).map(|b| b as u8).collect();
        p.server
            .flow_mut(k.s)
            .unwrap()
            .socket_mut()
            .send_slice(&down)
            .unwrap();
        p.server.poll(p.now, k.s, &mut p.to_client);
        let sent = read(p.to_client.packets.last().expect("a data segment"));
        k.server_nxt = sent.seq.wrapping_add(sent.len as u32);
        p.run();
        let got = p
            .client
            .flow_mut(k.c)
            .unwrap()
            .socket_mut()
            .recv_slice(&mut buf)
            .unwrap();
        assert_eq!(
            &buf[..got],
            &down[..],
            "connection {i}: bytes down, in order"
        );
        k.down += got as u64;
    }

    fn snapshot(&self, i: usize) -> Snapshot {
        let f = self.p.server.flow(self.conns[i].s).expect("flow kept");
        Snapshot {
            state: f.socket().state(),
            recv_queue: f.socket().recv_queue(),
            send_queue: f.socket().send_queue(),
            tcb: f.tcb(),
        }
    }

    /// Feed one packet at the server; return what it made of it and what
    /// it sent in answer. Connections other than `victim` (all, for
    /// `None`) must be untouched, and afterwards still carry bytes.
    fn feed(&mut self, victim: Option<usize>, packet: &[u8]) -> (Ingress, Vec<Out>) {
        let others: Vec<usize> = (0..self.conns.len())
            .filter(|&i| Some(i) != victim)
            .collect();
        let before: Vec<Snapshot> = others.iter().map(|&i| self.snapshot(i)).collect();
        let flows = self.p.server.len();
        let ev = self
            .p
            .server
            .ingress(self.p.now, [9; 6], packet, &mut self.p.to_client, || 99);
        let out: Vec<Out> = self.p.to_client.packets.iter().map(|p| read(p)).collect();
        for (&i, b) in others.iter().zip(&before) {
            assert_eq!(&self.snapshot(i), b, "connection {i} touched");
        }
        if !matches!(ev, Ingress::New(_)) {
            assert_eq!(self.p.server.len(), flows, "no flow made or lost");
        }
        (ev, out)
    }

    /// Drop what the server answered (it went to a spoofed peer) and check
    /// that the other connections carry bytes.
    fn carry_on(&mut self, victim: Option<usize>) {
        self.p.to_client.packets.clear();
        for i in 0..self.conns.len() {
            if Some(i) != victim {
                self.exchange(i);
            }
        }
    }

    /// A data segment of connection `i` the server would accept.
    fn good_data(&self, i: usize, payload: &[u8]) -> Vec<u8> {
        let k = &self.conns[i];
        segment(
            client(k.port),
            server(),
            k.client_nxt,
            k.server_nxt,
            ACK | PSH,
            payload,
        )
    }

    fn state(&self, i: usize) -> State {
        self.snapshot(i).state
    }
}

#[test]
fn a_well_formed_segment_built_here_is_taken() {
    // The control for every test below: the same builder's packet, with
    // nothing wrong, is accepted (so a drop below is the defect's doing).
    let mut lab = Lab::new();
    let p = lab.good_data(0, b"abc");
    let (ev, _) = lab.feed(Some(0), &p);
    assert_eq!(ev, Ingress::Flow(lab.conns[0].s));
    assert_eq!(lab.snapshot(0).recv_queue, 3, "the bytes were taken");
    // Link padding past the IPv4 total length (an Ethernet frame's
    // minimum size) is not part of the datagram (RFC 791 section 3.1).
    let mut padded = lab.good_data(1, b"xyz");
    padded.extend_from_slice(&[0xee; 6]);
    let (ev, _) = lab.feed(Some(1), &padded);
    assert_eq!(ev, Ingress::Flow(lab.conns[1].s));
    assert_eq!(lab.snapshot(1).recv_queue, 3, "three bytes, not nine");
}

#[test]
fn malformed_ipv4_and_tcp_headers_are_dropped_without_an_answer() {
    let mut lab = Lab::new();
    let good = lab.good_data(0, b"abcdef");
    type Mangle = fn(&mut Vec<u8>);
    let cases: [(&str, Mangle); 13] = [
        ("bad IPv4 header checksum", |p| p[10] ^= 0x5a),
        ("bad TCP checksum", |p| p[36] ^= 0x5a),
        ("total length past the bytes", |p| {
            p[2..4].copy_from_slice(&1000u16.to_be_bytes());
            fix(p);
        }),
        ("total length one short (cuts the payload)", |p| {
            let t = u16::from_be_bytes([p[2], p[3]]) - 1;
            p[2..4].copy_from_slice(&t.to_be_bytes());
            // IPv4 checksum right; the TCP checksum covers the old length.
            p[10..12].fill(0);
            let c = fold(sum(&p[..20], 0));
            p[10..12].copy_from_slice(&c);
        }),
        ("total length below the IPv4 header", |p| {
            p[2..4].copy_from_slice(&19u16.to_be_bytes());
            fix(p);
        }),
        ("total length below the TCP header", |p| {
            p[2..4].copy_from_slice(&30u16.to_be_bytes());
            fix(p);
        }),
        ("IHL 4", |p| {
            p[0] = 0x44;
            fix(p);
        }),
        ("IHL 0", |p| {
            p[0] = 0x40;
            fix(p);
        }),
        ("IHL past the total length", |p| {
            p[0] = 0x4f;
            fix(p);
        }),
        ("TCP data offset 4", |p| {
            p[32] = 0x40;
            fix(p);
        }),
        (
            "TCP data offset past the segment (options past the header)",
            |p| {
                p[32] = 0xf0;
                p.truncate(50);
                p[2..4].copy_from_slice(&50u16.to_be_bytes());
                fix(p);
            },
        ),
        ("more fragments", |p| {
            p[6] = 0x20;
            fix(p);
        }),
        ("fragment offset", |p| {
            p[6] = 0x00;
            p[7] = 0x01;
            fix(p);
        }),
    ];
    for (what, mangle) in cases {
        let mut p = good.clone();
        mangle(&mut p);
        assert_ne!(p, good, "{what}: the case changes the packet");
        let (ev, out) = lab.feed(Some(0), &p);
        assert_eq!(ev, Ingress::Dropped, "{what}");
        assert_eq!(out, [], "{what}: no answer");
        assert_eq!(lab.snapshot(0).recv_queue, 0, "{what}: no byte taken");
        assert_eq!(lab.state(0), State::Established, "{what}");
        lab.carry_on(None);
    }
    // Version 6 in an IPv4 frame, UDP, and the victim itself still work.
    let mut v6 = good.clone();
    v6[0] = 0x65;
    assert_eq!(lab.feed(None, &v6).0, Ingress::Dropped);
    let mut udp = good.clone();
    udp[9] = 17;
    fix(&mut udp);
    assert_eq!(lab.feed(None, &udp).0, Ingress::Dropped);
    let ok = lab.good_data(0, b"abcdef");
    assert_eq!(lab.feed(Some(0), &ok).0, Ingress::Flow(lab.conns[0].s));
    assert_eq!(lab.snapshot(0).recv_queue, 6, "the victim still takes data");
}

#[test]
fn truncated_packets_of_every_length_are_dropped() {
    let mut lab = Lab::new();
    let data = lab.good_data(0, b"abcdef");
    let syn = segment(client(41000), server(), 7, 0, SYN, &[]);
    let rst = segment(
        client(40000),
        server(),
        lab.conns[0].client_nxt,
        0,
        RST,
        &[],
    );
    for whole in [&data, &syn, &rst] {
        for n in 0..=40 {
            if n == whole.len() {
                continue;
            }
            let (ev, out) = lab.feed(None, &whole[..n]);
            assert_eq!(ev, Ingress::Dropped, "length {n}");
            assert_eq!(out, [], "length {n}: no answer");
        }
    }
    assert_eq!(lab.state(0), State::Established);
    lab.carry_on(None);
    assert_eq!(lab.p.server.len(), 3);
}

#[test]
fn a_segment_wholly_outside_the_receive_window_gets_an_ack_and_no_byte_is_taken() {
    let mut lab = Lab::new();
    // RFC 9293 section 3.10.7.4: an unacceptable segment is answered with
    // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and its data is not taken.
    for (what, delta) in [
        ("past the window", 100_000u32),
        ("before the window (old data)", 5_000u32.wrapping_neg()),
        ("half the sequence space away", 1 << 31),
    ] {
        let k = &lab.conns[0];
        let (nxt, una, port) = (k.client_nxt, k.server_nxt, k.port);
        let p = segment(
            client(port),
            server(),
            nxt.wrapping_add(delta),
            una,
            ACK | PSH,
            b"evil!",
        );
        let (ev, out) = lab.feed(Some(0), &p);
        assert_eq!(ev, Ingress::Flow(lab.conns[0].s), "{what}");
        assert_eq!(
            out,
            [Out {
                dport: port,
                seq: una,
                ack: nxt,
                flags: ACK,
                len: 0
            }],
            "{what}"
        );
        assert_eq!(lab.snapshot(0).recv_queue, 0, "{what}: no byte taken");
        assert_eq!(lab.state(0), State::Established);
        // smoltcp sends this ACK through its challenge-ACK limiter (one a
        // second per connection, RFC 5961 section 7): a second one within
        // the second gets none, and nothing else changes.
        lab.p.to_client.packets.clear();
        let (ev, out) = lab.feed(Some(0), &p);
        assert_eq!(ev, Ingress::Flow(lab.conns[0].s));
        assert_eq!(out, [], "{what}: rate-limited");
        assert_eq!(lab.snapshot(0).recv_queue, 0);
        lab.p.now += Duration::from_secs(1);
        // All three, the victim included, still carry bytes in order.
        lab.carry_on(None);
    }
}

/// The challenge ACK of RFC 5961 (`<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`)
/// to connection `i`'s client.
fn challenge(lab: &Lab, i: usize) -> Out {
    let k = &lab.conns[i];
    Out {
        dport: k.port,
        seq: k.server_nxt,
        ack: k.client_nxt,
        flags: ACK,
        len: 0,
    }
}

#[test]
fn a_rst_outside_the_window_is_dropped_and_one_inside_but_not_exact_is_challenged() {
    let mut lab = Lab::new();
    let (nxt, una, port) = (lab.conns[0].client_nxt, lab.conns[0].server_nxt, 40000);
    // RFC 9293 section 3.10.7.4, second check, 1): outside the window the
    // RST is dropped silently (smoltcp on its own would ACK it).
    for seq in [
        nxt.wrapping_sub(1),
        nxt.wrapping_add(100_000),
        nxt ^ 0x8000_0000,
    ] {
        for flags in [RST, RST | ACK] {
            let p = segment(client(port), server(), seq, una, flags, &[]);
            let (ev, out) = lab.feed(Some(0), &p);
            assert_eq!(ev, Ingress::Dropped, "seq {seq}");
            assert_eq!(out, [], "no answer");
            assert_eq!(lab.state(0), State::Established);
        }
    }
    lab.carry_on(None);
    // 3): in the window but not RCV.NXT: a challenge ACK, and the
    // connection stays (smoltcp on its own would reset it).
    let (nxt, una) = (lab.conns[0].client_nxt, lab.conns[0].server_nxt);
    let want = challenge(&lab, 0);
    let p = segment(client(port), server(), nxt.wrapping_add(1), una, RST, &[]);
    let (ev, out) = lab.feed(Some(0), &p);
    assert_eq!(ev, Ingress::Flow(lab.conns[0].s));
    assert_eq!(out, [want]);
    assert_eq!(lab.state(0), State::Established);
    // The challenge ACK is a segment the real client takes (its checksums
    // are right, its numbers acceptable) without harm.
    let ack = lab.p.to_client.packets.pop().unwrap();
    let ev = lab
        .p
        .client
        .ingress(lab.p.now, [2; 6], &ack, &mut lab.p.to_server, || 0);
    assert_eq!(ev, Ingress::Flow(lab.conns[0].c));
    assert_eq!(
        lab.p.client.flow(lab.conns[0].c).unwrap().socket().state(),
        State::Established
    );
    lab.p.to_server.packets.clear();
    // At most one a second per connection (RFC 5961 section 7).
    let p = segment(
        client(port),
        server(),
        nxt.wrapping_add(700),
        una,
        RST | ACK,
        &[],
    );
    let (ev, out) = lab.feed(Some(0), &p);
    assert_eq!(ev, Ingress::Flow(lab.conns[0].s));
    assert_eq!(out, [], "rate-limited");
    assert_eq!(lab.state(0), State::Established);
    lab.p.now += Duration::from_secs(1);
    let (_, out) = lab.feed(Some(0), &p);
    assert_eq!(out, [want], "a second later, challenged again");
    lab.carry_on(None);
}

#[test]
fn a_rst_at_exactly_rcv_nxt_resets_only_its_connection() {
    let mut lab = Lab::new();
    // Bytes taken but not yet acknowledged (smoltcp delays the ACK): the
    // stack's RCV.NXT must include them.
    let data = lab.good_data(0, b"abc");
    let (ev, out) = lab.feed(Some(0), &data);
    assert_eq!(ev, Ingress::Flow(lab.conns[0].s));
    assert_eq!(out, [], "the ACK is delayed");
    let (nxt, una) = (lab.conns[0].client_nxt, lab.conns[0].server_nxt);
    // The old RCV.NXT is now before the window: dropped.
    let old = segment(client(40000), server(), nxt, una, RST, &[]);
    assert_eq!(lab.feed(Some(0), &old), (Ingress::Dropped, vec![]));
    assert_eq!(lab.state(0), State::Established);
    let exact = segment(client(40000), server(), nxt.wrapping_add(3), una, RST, &[]);
    let (ev, out) = lab.feed(Some(0), &exact);
    assert_eq!(ev, Ingress::Flow(lab.conns[0].s));
    assert_eq!(out, [], "no answer to a RST");
    assert_eq!(lab.state(0), State::Closed, "reset (RFC 9293 3.10.7.4)");
    lab.carry_on(Some(0));
    // RST|ACK exact on another connection resets it too.
    let (nxt, una) = (lab.conns[1].client_nxt, lab.conns[1].server_nxt);
    let p = segment(client(40001), server(), nxt, una, RST | ACK, &[]);
    assert_eq!(lab.feed(Some(1), &p).0, Ingress::Flow(lab.conns[1].s));
    assert_eq!(lab.state(1), State::Closed);
    lab.exchange(2);
    // Both counted as reset by the peer; the dropped and challenged RSTs
    // not.
    let st = lab.p.server.stats();
    assert_eq!((st.reset_by_peer, st.timed_out), (2, 0), "{st:?}");
}

#[test]
fn a_syn_on_an_established_connection_gets_a_challenge_ack_and_changes_nothing() {
    let mut lab = Lab::new();
    let (nxt, una) = (lab.conns[0].client_nxt, lab.conns[0].server_nxt);
    // RFC 9293 section 3.10.7.4, fourth check (RFC 5961 section 4.2): in
    // the window or not, with ACK or not.
    for (seq, flags) in [
        (nxt, SYN),
        (nxt.wrapping_add(10), SYN),
        (nxt.wrapping_add(1 << 30), SYN),
        (nxt, SYN | ACK),
        (nxt.wrapping_sub(1), SYN | ACK),
    ] {
        let p = segment(client(40000), server(), seq, una, flags, &[]);
        let before = lab.snapshot(0);
        let want = challenge(&lab, 0);
        let (ev, out) = lab.feed(Some(0), &p);
        assert_eq!(ev, Ingress::Flow(lab.conns[0].s));
        assert_eq!(out, [want], "seq {seq} flags {flags:#x}");
        assert_eq!(lab.snapshot(0), before, "the connection is unchanged");
        lab.p.to_client.packets.clear();
        let (_, out) = lab.feed(Some(0), &p);
        assert_eq!(out, [], "rate-limited");
        lab.p.now += Duration::from_secs(1);
        lab.carry_on(None);
    }
    assert_eq!(lab.p.server.len(), 3, "no second flow for the 4-tuple");
}

#[test]
fn a_segment_of_no_connection_gets_a_reset_and_a_reset_gets_nothing() {
    let mut lab = Lab::new();
    let stranger = client(41000);
    // RFC 9293 section 3.10.7.1: with ACK, <SEQ=SEG.ACK><CTL=RST>.
    let p = segment(stranger, server(), 1000, 5000, ACK | PSH, b"hi");
    let (ev, out) = lab.feed(None, &p);
    assert_eq!(ev, Ingress::NoFlow);
    assert_eq!(
        out,
        [Out {
            dport: 41000,
            seq: 5000,
            ack: 0,
            flags: RST,
            len: 0
        }]
    );
    lab.carry_on(None);
    // Without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    let p = segment(stranger, server(), 1000, 0, PSH, b"hi");
    let (ev, out) = lab.feed(None, &p);
    assert_eq!(ev, Ingress::NoFlow);
    assert_eq!(
        out,
        [Out {
            dport: 41000,
            seq: 0,
            ack: 1002,
            flags: RST | ACK,
            len: 0
        }]
    );
    lab.carry_on(None);
    // A SYN to a port nobody listens on: refused the same way.
    let p = segment(stranger, SocketAddrV4::new(SERVER, 446), 77, 0, SYN, &[]);
    let (ev, out) = lab.feed(None, &p);
    assert_eq!(ev, Ingress::NoFlow);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].ack), (RST | ACK, 78));
    lab.carry_on(None);
    // Never a RST in reply to a RST.
    for flags in [RST, RST | ACK] {
        let p = segment(stranger, server(), 1000, 5000, flags, &[]);
        assert_eq!(lab.feed(None, &p), (Ingress::NoFlow, vec![]));
    }
    lab.carry_on(None);
    assert_eq!(lab.p.server.len(), 3, "no flow made");
}

#[test]
fn broadcast_multicast_zero_loopback_and_own_sources_are_dropped() {
    let mut lab = Lab::new();
    for src in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(239, 255, 255, 250),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(0, 1, 2, 3),
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(240, 0, 0, 1),
        SERVER,
    ] {
        let from = SocketAddrV4::new(src, 40000);
        for (flags, payload) in [(SYN, &b""[..]), (ACK | PSH, &b"data"[..]), (RST, &b""[..])] {
            let p = segment(from, server(), 1, 1, flags, payload);
            let (ev, out) = lab.feed(None, &p);
            assert_eq!(ev, Ingress::Dropped, "from {src} flags {flags:#x}");
            assert_eq!(
                out,
                [],
                "from {src}: no answer (a RST to a broadcast would reach everyone)"
            );
        }
    }
    // Nor may a SYN addressed to a broadcast, multicast or other address
    // open anything (RFC 1122 section 4.2.3.10) or draw a RST.
    for dst in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(198, 18, 0, 2),
    ] {
        let p = segment(client(41000), SocketAddrV4::new(dst, 445), 1, 0, SYN, &[]);
        assert_eq!(lab.feed(None, &p), (Ingress::Dropped, vec![]), "to {dst}");
    }
    assert_eq!(lab.p.server.len(), 3, "no flow made");
    lab.carry_on(None);
}

#[test]
fn a_half_open_connection_reset_by_its_peer_is_closed_not_left_listening() {
    let mut lab = Lab::new();
    let peer = client(41000);
    let syn = segment(peer, server(), 1000, 0, SYN, &[]);
    let (ev, out) = lab.feed(None, &syn);
    let Ingress::New(id) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(out.len(), 1, "a SYN-ACK");
    assert_eq!((out[0].flags, out[0].ack), (SYN | ACK, 1001));
    let iss = out[0].seq;
    lab.p.to_client.packets.clear();
    // In the window but not exact: challenged, still half-open.
    let p = segment(peer, server(), 1005, 0, RST, &[]);
    let (ev, out) = lab.feed(None, &p);
    assert_eq!(ev, Ingress::Flow(id));
    assert_eq!(
        out,
        [Out {
            dport: 41000,
            seq: iss.wrapping_add(1),
            ack: 1001,
            flags: ACK,
            len: 0
        }]
    );
    let state = |lab: &Lab| lab.p.server.flow(id).unwrap().socket().state();
    assert_eq!(state(&lab), State::SynReceived);
    lab.p.to_client.packets.clear();
    // Exact: the connection is over, and closed (smoltcp alone would put
    // the socket back in LISTEN, where it would hold its slot forever).
    let p = segment(peer, server(), 1001, 0, RST, &[]);
    assert_eq!(lab.feed(None, &p), (Ingress::Flow(id), vec![]));
    assert_eq!(state(&lab), State::Closed);
    assert_eq!(lab.p.server.remove(id), Some(99));
    assert_eq!(lab.p.server.len(), 3);
    lab.carry_on(None);
}

#[test]
fn syn_churn_cannot_grow_the_timer_heap() {
    let mut lab = Lab::new();
    // Every SYN files a retransmission timer; the flow is then dropped by
    // the application. Stale entries are compacted away.
    for port in 0..5000u16 {
        let syn = segment(client(20000 + port), server(), 1, 0, SYN, &[]);
        let ev = lab
            .p
            .server
            .ingress(lab.p.now, [9; 6], &syn, &mut lab.p.to_client, || 0);
        let Ingress::New(id) = ev else {
            panic!("{ev:?}")
        };
        lab.p.server.remove(id);
        assert!(lab.p.server.timer_entries() <= lab.p.server.timer_bound());
    }
    assert!(
        lab.p.server.timer_entries() < 2000,
        "{}",
        lab.p.server.timer_entries()
    );
    assert_eq!(lab.p.server.len(), 3);
    lab.carry_on(None);
}

#[test]
fn data_past_the_advertised_window_is_trimmed_not_taken_whole() {
    // smoltcp takes whatever fits its buffer; after the application read,
    // that is more than the window it advertised, and its next window
    // computation then panicked (found by fuzz/fuzz_targets/tcp_segment.rs:
    // "attempt to subtract sequence numbers with underflow" in
    // `last_scaled_window`). RFC 9293 section 3.10.7.4 takes only the
    // part of a segment inside the window.
    let mut lab = Lab::new();
    let (nxt, una) = (lab.conns[0].client_nxt, lab.conns[0].server_nxt);
    let fill = lab.good_data(0, &[7u8; 1400]);
    assert_eq!(lab.feed(Some(0), &fill).0, Ingress::Flow(lab.conns[0].s));
    let more = segment(
        client(40000),
        server(),
        nxt.wrapping_add(1400),
        una,
        ACK,
        &[8u8; 1400],
    );
    assert_eq!(lab.feed(Some(0), &more).0, Ingress::Flow(lab.conns[0].s));
    // The delayed ACK advertises 4096 - 2800 = 1296 bytes.
    lab.p.now += Duration::from_millis(20);
    let mut fired = Vec::new();
    lab.p
        .server
        .poll_timers(lab.p.now, &mut lab.p.to_client, &mut fired);
    let ack = read(lab.p.to_client.packets.last().expect("the delayed ACK"));
    assert_eq!(ack.ack, nxt.wrapping_add(2800));
    let wnd = u16::from_be_bytes({
        let p = lab.p.to_client.packets.last().unwrap();
        [p[34], p[35]]
    });
    assert_eq!(wnd, 1296);
    lab.p.to_client.packets.clear();
    // The application reads everything (no poll, so no window update).
    let mut buf = [0u8; 4096];
    let s = lab.conns[0].s;
    let n = lab
        .p
        .server
        .flow_mut(s)
        .unwrap()
        .socket_mut()
        .recv_slice(&mut buf)
        .unwrap();
    assert_eq!(n, 2800);
    // 1400 bytes more: 104 past the edge the peer was given, inside the
    // buffer smoltcp now has free. Only the 1296 inside are taken; the
    // FIN after them is past the edge too and is not.
    let over = segment(
        client(40000),
        server(),
        nxt.wrapping_add(2800),
        una,
        ACK | FIN,
        &[9u8; 1400],
    );
    assert_eq!(lab.feed(Some(0), &over).0, Ingress::Flow(s));
    assert_eq!(lab.snapshot(0).recv_queue, 1296);
    assert_eq!(lab.state(0), State::Established, "the FIN was trimmed off");
    lab.p.to_client.packets.clear();
    lab.carry_on(Some(0));
}

#[test]
fn an_ack_of_data_not_yet_sent_is_challenged_and_the_data_kept() {
    // RFC 9293 section 3.10.7.4, fifth check: SEG.ACK > SND.NXT gets an
    // ACK and the segment is dropped. smoltcp accepts ACKs up to the end
    // of its send buffer, so a lying peer would make it drop bytes queued
    // but never sent.
    let mut lab = Lab::new();
    let (nxt, una) = (lab.conns[0].client_nxt, lab.conns[0].server_nxt);
    let s = lab.conns[0].s;
    let want = challenge(&lab, 0);
    // Bytes sent but not yet acknowledged (the client delays its ACK) are
    // in the queue too.
    let in_flight = lab.snapshot(0).send_queue;
    lab.p
        .server
        .flow_mut(s)
        .unwrap()
        .socket_mut()
        .send_slice(b"0123456789")
        .unwrap();
    let lie = segment(client(40000), server(), nxt, una.wrapping_add(10), ACK, &[]);
    let (ev, out) = lab.feed(Some(0), &lie);
    assert_eq!(ev, Ingress::Flow(s));
    assert_eq!(out, [want]);
    assert_eq!(
        lab.snapshot(0).send_queue,
        in_flight + 10,
        "the queued bytes are kept"
    );
    lab.p.to_client.packets.clear();
    // They go out, and the client gets them.
    lab.p.server.poll(lab.p.now, s, &mut lab.p.to_client);
    lab.p.run();
    let mut buf = [0u8; 64];
    let c = lab.conns[0].c;
    let n = lab
        .p
        .client
        .flow_mut(c)
        .unwrap()
        .socket_mut()
        .recv_slice(&mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"0123456789");
    lab.conns[0].server_nxt = una.wrapping_add(10);
    lab.p.now += Duration::from_secs(1);
    lab.carry_on(None);
}
