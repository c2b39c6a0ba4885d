//! Feeds arbitrary IPv4 packets, mutated copies of real segments and time
//! steps into smb-usertcp's `TcpStack` (the AF_XDP transport's TCP, issue
//! 14) while a real client stack holds connections to it: a victim whose
//! 4-tuple the input may use, and a bystander whose 4-tuple it may not.
//!
//! The server parks idle connections after 500 ms (freeing the socket,
//! restoring it at the next segment or write), holds at most
//! `MAX_FLOWS / 2` half-open connections, and keeps the connections it
//! closed first in TIME-WAIT without their sockets (answering FINs, RSTs
//! and SYNs for them itself).
//!
//! Checks that nothing panics, that the server never holds more than
//! `max_flows` connections (half-open ones at most `max_half_open`) nor
//! more timer entries than its bound
//! (`TcpStack::timer_entries`), that no flow is left in LISTEN, and that the bystander is never harmed: it
//! stays ESTABLISHED and every byte it sends arrives once and in order
//! (RFC 9293 section 3.10.7.4; hostile input is dropped or answered, never
//! taken by another connection).
//!
//! Input: steps, each an op byte and its arguments (missing bytes read as
//! zero, so every input is valid):
//!
//! - 0: a raw packet: a u16 length, then that many bytes;
//! - 1: the same, with its IPv4 header and TCP checksums made right over
//!   whatever lengths it claims (so mutations reach past the checksums);
//! - 2: a template (a segment the client stack really sent: its SYN, ACKs,
//!   data) picked by a byte, with up to 7 (offset, value) byte writes,
//!   checksums fixed when bit 7 of the pick byte is clear;
//! - 3: the clock moves a u16 of milliseconds (seconds when the op byte's
//!   bit 4 is set) and both stacks run their timers;
//! - 4: the bystander sends a few bytes both ways; they must arrive;
//! - 5: the victim's client sends a few bytes;
//! - 6: the server application reads every flow, drops those that closed
//!   (by the flow's state: one in TIME-WAIT stays to its end), and, when
//!   the arg byte is odd, closes every flow but the bystander's, after
//!   which the victim's client closes too (so the server's side enters
//!   TIME-WAIT);
//! - 7: the client opens another connection (a fresh victim).
//!
//! Run: `cd fuzz && cargo +nightly fuzz run tcp_segment corpus/tcp_segment
//! seeds/tcp_segment -- -max_total_time=300` (seeds from
//! `seeds/make_tcp_seeds.py`).
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use libfuzzer_sys::fuzz_target;
use smb_usertcp::smoltcp::socket::tcp::State;
use smb_usertcp::smoltcp::time::{Duration, Instant};
use smb_usertcp::{Egress, FlowId, FlowKey, LinkAddr, SegmentInfo, StackConfig, TcpStack};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const MAX_FLOWS: usize = 16;
const BYSTANDER_PORT: u16 = 40000;

#[derive(Default)]
struct Wire {
    packets: Vec<Vec<u8>>,
}

impl Egress for Wire {
    fn buffer(&mut self, _: LinkAddr, len: usize) -> Option<&mut [u8]> {
        if self.packets.len() >= 4096 {
            return None; // a full ring: TCP must cope with the loss
        }
        self.packets.push(vec![0; len]);
        self.packets.last_mut().map(|p| &mut p[..])
    }
    fn commit(&mut self, _: LinkAddr, _: usize) {}
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Make the IPv4 header checksum (RFC 791 section 3.1) and the TCP
/// checksum (RFC 9293 section 3.1) right for the lengths the packet
/// claims, as far as the bytes go.
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
    let c = fold(sum16(&p[..ihl], 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    if total < ihl + 18 {
        return;
    }
    let (src, dst) = ([p[12], p[13], p[14], p[15]], [p[16], p[17], p[18], p[19]]);
    let tcp = &mut p[ihl..total];
    tcp[16] = 0;
    tcp[17] = 0;
    let mut acc = sum16(&src, 0);
    acc = sum16(&dst, acc);
    acc += 6 + tcp.len() as u32;
    let c = fold(sum16(tcp, acc));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
}

struct Lab {
    client: TcpStack<()>,
    server: TcpStack<()>,
    now: Instant,
    to_server: Wire,
    to_client: Wire,
    /// The bystander's flow on the client and on the server.
    bystander: (FlowId, FlowId),
    victim: Option<FlowId>,
    templates: Vec<Vec<u8>>,
    /// Bytes the bystander sent / the server received from it.
    sent: u64,
    received: u64,
    next_port: u16,
}

fn bystander_key() -> FlowKey {
    FlowKey {
        remote: SocketAddrV4::new(CLIENT, BYSTANDER_PORT),
        local: SocketAddrV4::new(SERVER, 445),
    }
}

impl Lab {
    fn new() -> Lab {
        let now = Instant::from_secs(1000);
        let small = |cfg: StackConfig| StackConfig {
            rx_buffer: 1024,
            tx_buffer: 1024,
            max_flows: MAX_FLOWS,
            ..cfg
        };
        let mut client =
            TcpStack::new(small(StackConfig::new(vec![CLIENT], None, 1)), now).unwrap();
        // The server parks idle connections (the xdp transport's setting,
        // shortened) and bounds its half-open table, so the input reaches
        // parking, restoring and eviction too.
        let mut server = TcpStack::new(
            StackConfig {
                park_after: Some(Duration::from_millis(500)),
                keep_alive: Some(Duration::from_secs(5)),
                max_half_open: MAX_FLOWS / 2,
                ..small(StackConfig::new(vec![SERVER], Some(445), 2))
            },
            now,
        )
        .unwrap();
        let (mut to_server, mut to_client) = (Wire::default(), Wire::default());
        let c = client
            .connect(
                now,
                SocketAddrV4::new(CLIENT, BYSTANDER_PORT),
                SocketAddrV4::new(SERVER, 445),
                [2; 6],
                &mut to_server,
                (),
            )
            .expect("the bystander connects");
        let syn = to_server.packets.pop().expect("a SYN");
        server.ingress(now, [1; 6], &syn, &mut to_client, || ());
        let s = server
            .find(&bystander_key())
            .expect("server has the bystander");
        let mut lab = Lab {
            client,
            server,
            now,
            to_server,
            to_client,
            bystander: (c, s),
            victim: None,
            templates: Vec::new(),
            sent: 0,
            received: 0,
            next_port: 40001,
        };
        lab.run();
        lab.victim = lab.open(40001);
        lab.client_send(lab.victim, b"hello");
        lab.bystander_exchange();
        lab
    }

    fn open(&mut self, port: u16) -> Option<FlowId> {
        let c = self
            .client
            .connect(
                self.now,
                SocketAddrV4::new(CLIENT, port),
                SocketAddrV4::new(SERVER, 445),
                [2; 6],
                &mut self.to_server,
                (),
            )
            .ok()?;
        self.run();
        Some(c)
    }

    /// Deliver until both directions are quiet (or a bounded number of
    /// rounds: two stacks may legitimately ping-pong ACKs for a while).
    fn run(&mut self) {
        for _ in 0..64 {
            if self.to_server.packets.is_empty() && self.to_client.packets.is_empty() {
                return;
            }
            for p in std::mem::take(&mut self.to_server.packets) {
                if self.templates.len() < 32 {
                    self.templates.push(p.clone());
                } else {
                    let i = p.len() % 32;
                    self.templates[i] = p.clone();
                }
                self.server
                    .ingress(self.now, [1; 6], &p, &mut self.to_client, || ());
                self.check();
            }
            for p in std::mem::take(&mut self.to_client.packets) {
                self.client
                    .ingress(self.now, [2; 6], &p, &mut self.to_server, || ());
            }
        }
    }

    fn check(&self) {
        assert!(
            self.server.len() <= MAX_FLOWS,
            "{} flows",
            self.server.len()
        );
        assert!(self.server.half_open() <= MAX_FLOWS / 2);
        assert!(
            self.server.timer_entries() <= self.server.timer_bound(),
            "{} timer entries",
            self.server.timer_entries()
        );
        // A flow never sits in LISTEN (it would hold its slot forever).
        for id in self.server.flow_ids() {
            let f = self.server.flow(id).expect("listed");
            assert_ne!(f.state(), State::Listen, "{:?}", f.key());
        }
        let s = self.server.flow(self.bystander.1).expect("bystander kept");
        assert_eq!(s.state(), State::Established, "bystander harmed");
    }

    /// A packet from the input, unless it claims the bystander's 4-tuple.
    fn inject(&mut self, p: &[u8]) {
        if SegmentInfo::parse(p).is_some_and(|s| s.key == bystander_key()) {
            return;
        }
        self.server
            .ingress(self.now, [9; 6], p, &mut self.to_client, || ());
        self.check();
        self.run();
    }

    fn client_send(&mut self, id: Option<FlowId>, data: &[u8]) {
        let Some(id) = id else { return };
        if let Some(f) = self.client.flow_mut(id) {
            let _ = f.socket_mut().send_slice(data);
        }
        self.client.poll(self.now, id, &mut self.to_server);
        self.run();
    }

    /// The bystander sends a counted pattern; whatever the server holds of
    /// it must be exactly the next bytes of the pattern.
    fn bystander_exchange(&mut self) {
        let (c, s) = self.bystander;
        let pattern: Vec<u8> = (self.sent..self.sent + 100).map(|i| i as u8).collect();
        let n = self
            .client
            .flow_mut(c)
            .expect("bystander client kept")
            .socket_mut()
            .send_slice(&pattern)
            .unwrap_or(0);
        self.sent += n as u64;
        self.client.poll(self.now, c, &mut self.to_server);
        self.run();
        self.drain_bystander();
        let srv = self
            .server
            .flow_mut(s)
            .expect("bystander kept")
            .socket_mut();
        let _ = srv.send_slice(b"pong");
        self.server.poll(self.now, s, &mut self.to_client);
        self.run();
        let cl = self
            .client
            .flow_mut(c)
            .expect("bystander client kept")
            .socket_mut();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = cl.recv_slice(&mut buf) {
            assert!(buf[..n].chunks(4).all(|c| b"pong".starts_with(c)), "pong");
        }
    }

    fn drain_bystander(&mut self) {
        let srv = self
            .server
            .flow_mut(self.bystander.1)
            .expect("bystander kept")
            .socket_mut();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = srv.recv_slice(&mut buf) {
            for &b in &buf[..n] {
                assert_eq!(b, self.received as u8, "bystander byte {}", self.received);
                self.received += 1;
            }
        }
        assert!(self.received <= self.sent);
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.byte();
        match op & 7 {
            0 | 1 => {
                let len = usize::from(input.u16() % 2048);
                let mut p = input.bytes(len);
                if op & 7 == 1 {
                    fix_checksums(&mut p);
                }
                self.inject(&p);
            }
            2 => {
                let pick = input.byte();
                let n = input.byte() % 8;
                let mut edits = Vec::new();
                for _ in 0..n {
                    edits.push((usize::from(input.u16()), input.byte()));
                }
                if self.templates.is_empty() {
                    return;
                }
                let mut p = self.templates[usize::from(pick & 0x7f) % self.templates.len()].clone();
                for (at, v) in edits {
                    let at = at % p.len().max(1);
                    if let Some(b) = p.get_mut(at) {
                        *b = v;
                    }
                }
                if pick & 0x80 == 0 {
                    fix_checksums(&mut p);
                }
                self.inject(&p);
            }
            3 => {
                let d = u64::from(input.u16());
                self.now += if op & 0x10 != 0 {
                    Duration::from_secs(d)
                } else {
                    Duration::from_millis(d)
                };
                let mut fired = Vec::new();
                self.server
                    .poll_timers(self.now, &mut self.to_client, &mut fired);
                self.client
                    .poll_timers(self.now, &mut self.to_server, &mut fired);
                self.check();
                self.run();
            }
            4 => self.bystander_exchange(),
            5 => {
                let n = usize::from(input.byte());
                let data = vec![b'v'; n];
                self.client_send(self.victim, &data);
            }
            6 => {
                let close_victim = input.byte() & 1 == 1;
                self.drain_bystander();
                let mut gone = Vec::new();
                let ids: Vec<FlowId> = self.server.flow_ids().collect();
                for id in ids {
                    if id == self.bystander.1 {
                        continue;
                    }
                    let f = self.server.flow_mut(id).expect("listed");
                    let sock = f.socket_mut();
                    let mut buf = [0u8; 2048];
                    while let Ok(1..) = sock.recv_slice(&mut buf) {}
                    if close_victim {
                        sock.close();
                    }
                    // The flow's state, not its socket's: one in TIME-WAIT
                    // has a CLOSED placeholder and stays to its end.
                    if f.state() == State::Closed {
                        gone.push(id);
                    }
                }
                for id in gone {
                    self.server.remove(id);
                }
                if close_victim {
                    // The server's FINs go, and the victim's client closes
                    // at the EOF as a real one does: the server's side
                    // waits out TIME-WAIT without its socket.
                    let ids: Vec<FlowId> = self.server.flow_ids().collect();
                    for id in ids {
                        self.server.poll(self.now, id, &mut self.to_client);
                    }
                    self.run();
                    if let Some(v) = self.victim {
                        if self.client.flow(v).is_some_and(|f| f.state() == State::CloseWait) {
                            if let Some(f) = self.client.flow_mut(v) {
                                f.socket_mut().close();
                            }
                            self.client.poll(self.now, v, &mut self.to_server);
                            self.run();
                        }
                    }
                }
                self.check();
            }
            _ => {
                let port = self.next_port.wrapping_add(1).max(40001);
                self.next_port = port;
                if let Some(v) = self.open(port) {
                    self.victim = Some(v);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lab = Lab::new();
    let mut input = Input(data);
    let mut steps = 0;
    while !input.0.is_empty() && steps < 256 {
        lab.step(&mut input);
        steps += 1;
    }
    // The bystander still carries bytes, in order, to the end.
    lab.bystander_exchange();
    lab.check();
    assert_eq!(lab.received, lab.sent, "every bystander byte arrived");
});
