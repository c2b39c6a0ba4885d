//! A client stack and a server stack joined in memory (quinn-proto's
//! `Pair`, with a fake clock).

use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::socket::tcp::State;
use smoltcp::time::{Duration, Instant};

use crate::{Egress, FlowId, Ingress, LinkAddr, StackConfig, TcpStack};

#[derive(Default)]
struct Wire {
    packets: Vec<Vec<u8>>,
}

impl Egress for Wire {
    fn buffer(&mut self, _: LinkAddr, len: usize) -> Option<&mut [u8]> {
        self.packets.push(vec![0; len]);
        self.packets.last_mut().map(|p| &mut p[..])
    }
    fn commit(&mut self, _: LinkAddr, _: usize) {}
}

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

    fn connect(&mut self, port: u16) -> (FlowId, FlowId) {
        let c = self
            .client
            .connect(
                self.now,
                SocketAddrV4::new(CLIENT, port),
                SocketAddrV4::new(SERVER, 445),
                [2; 6],
                &mut self.to_server,
                0,
            )
            .unwrap();
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
    let mut buf = [0u8; 16];
    let got = p
        .server
        .flow_mut(s)
        .unwrap()
        .socket_mut()
        .recv_slice(&mut buf)
        .unwrap();
    assert_eq!(&buf[..got], b"hello");
    assert!(!p.server.flow(s2).unwrap().socket().can_recv());
    p.server
        .flow_mut(s2)
        .unwrap()
        .socket_mut()
        .send_slice(b"pong")
        .unwrap();
    p.server.poll(p.now, s2, &mut p.to_client);
    p.run();
    let got = p
        .client
        .flow_mut(c2)
        .unwrap()
        .socket_mut()
        .recv_slice(&mut buf)
        .unwrap();
    assert_eq!(&buf[..got], b"pong");

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
    // The client waits out TIME-WAIT on its timers.
    assert_eq!(p.client.flow(c).unwrap().socket().state(), State::TimeWait);
    p.now += Duration::from_secs(30);
    let mut fired = Vec::new();
    p.client.poll_timers(p.now, &mut p.to_server, &mut fired);
    assert!(fired.contains(&c));
    assert_eq!(p.client.flow(c).unwrap().socket().state(), State::Closed);
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
    let c2 = p
        .client
        .connect(
            p.now,
            SocketAddrV4::new(CLIENT, 40001),
            SocketAddrV4::new(SERVER, 445),
            [2; 6],
            &mut p.to_server,
            0,
        )
        .unwrap();
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

mod hostile;
