//! Per-segment cost of TCP in user space at 1k, 10k and 100k connections,
//! and the memory of an idle connection (issue 14; ARCHITECTURE.md, "User
//! space TCP"). In memory, no kernel: a smoltcp client stack and a server
//! stack joined by packet queues, on a fake clock.
//!
//! For each N, N connections are opened (through the hashed stack, which
//! is fast at any N), then data segments (one byte each, to a connection
//! picked at random) are delivered to the server and timed one by one:
//!
//! - `hash`: `TcpStack::ingress`, the 4-tuple hash to a socket set of one;
//! - `one-set`: the same sockets moved into one smoltcp `SocketSet` polled
//!   by `Interface::poll`, the way smoltcp is used out of the box (it scans
//!   the set for the socket that accepts the segment, then walks every
//!   socket for egress).
//!
//! Each measurement stops after `SEGMENTS` segments or `BUDGET` of timed
//! work, whichever comes first. The memory of a connection is measured by
//! `benches/tcp_memory.rs` (dhat's allocator would slow this one down).
//!
//! `cargo bench -p smb-usertcp --bench tcp_stack` (arguments: connection
//! counts, default `1000 10000 100000`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use smb_usertcp::smoltcp::socket::tcp;
use smb_usertcp::smoltcp::time::Instant;
use smb_usertcp::{Egress, FlowId, FlowKey, LinkAddr, PacketQueue, StackConfig, TcpStack};

const SEGMENTS: usize = 20_000;
const BUDGET: Duration = Duration::from_secs(3);

/// Keeps nothing (the server's ACKs are not needed by the measurement).
struct Sink;

impl Egress for Sink {
    fn buffer(&mut self, _: LinkAddr, _: usize) -> Option<&mut [u8]> {
        None
    }
    fn commit(&mut self, _: LinkAddr, _: usize) {}
}

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENTS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)];

struct Lab {
    client: TcpStack<()>,
    server: TcpStack<()>,
    conns: Vec<FlowId>,
    now: Instant,
}

/// `n` established connections through the hashed stacks.
fn open(n: usize, buffer: usize) -> Lab {
    let now = Instant::from_secs(1);
    let mut ccfg = StackConfig::new(CLIENTS.to_vec(), None, 11);
    ccfg.rx_buffer = 1024;
    ccfg.tx_buffer = 1024;
    let mut scfg = StackConfig::new(vec![SERVER], Some(445), 12);
    scfg.rx_buffer = buffer;
    scfg.tx_buffer = buffer;
    let mut client = TcpStack::new(ccfg, now).unwrap();
    let mut server = TcpStack::new(scfg, now).unwrap();
    let mut to_server = PacketQueue::default();
    let mut to_client = PacketQueue::default();
    let mut conns = Vec::with_capacity(n);
    let remote = SocketAddrV4::new(SERVER, 445);
    for i in 0..n {
        let local = SocketAddrV4::new(CLIENTS[i % 2], 1024 + (i / 2) as u16);
        let id = client
            .connect(now, local, remote, [0; 6], &mut to_server, ())
            .unwrap();
        conns.push(id);
        while !to_server.packets.is_empty() || !to_client.packets.is_empty() {
            for p in std::mem::take(&mut to_server.packets) {
                server.ingress(now, [0; 6], &p, &mut to_client, || ());
            }
            for p in std::mem::take(&mut to_client.packets) {
                client.ingress(now, [0; 6], &p, &mut to_server, || ());
            }
        }
        debug_assert_eq!(
            client.flow(id).unwrap().socket().state(),
            tcp::State::Established
        );
    }
    assert_eq!(server.len(), n);
    Lab {
        client,
        server,
        conns,
        now,
    }
}

/// The next data segment: one byte on a connection picked at random.
fn next_segment(lab: &mut Lab, rng: &mut u64) -> (Vec<u8>, FlowKey) {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let id = lab.conns[(*rng % lab.conns.len() as u64) as usize];
    let key = lab.client.flow(id).unwrap().key();
    lab.client
        .flow_mut(id)
        .unwrap()
        .socket_mut()
        .send_slice(b"x")
        .unwrap();
    let mut q = PacketQueue::default();
    lab.client.poll(lab.now, id, &mut q);
    assert_eq!(q.packets.len(), 1);
    // The server's key is the client's turned around.
    let server_key = FlowKey {
        remote: key.local,
        local: key.remote,
    };
    (q.packets.pop().unwrap(), server_key)
}

struct Timing {
    segments: usize,
    mean_ns: f64,
    median_ns: u128,
}

fn summarize(mut ns: Vec<u128>) -> Timing {
    ns.sort_unstable();
    let total: u128 = ns.iter().sum();
    Timing {
        segments: ns.len(),
        mean_ns: total as f64 / ns.len() as f64,
        median_ns: ns[ns.len() / 2],
    }
}

fn measure_hash(lab: &mut Lab) -> Timing {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut ns = Vec::new();
    let mut spent = Duration::ZERO;
    let mut buf = [0u8; 16];
    while ns.len() < SEGMENTS && spent < BUDGET {
        let (seg, key) = next_segment(lab, &mut rng);
        let t = std::time::Instant::now();
        let ev = lab.server.ingress(lab.now, [0; 6], &seg, &mut Sink, || ());
        let d = t.elapsed();
        assert!(matches!(ev, smb_usertcp::Ingress::Flow(_)));
        let id = lab.server.find(&key).unwrap();
        let got = lab
            .server
            .flow_mut(id)
            .unwrap()
            .socket_mut()
            .recv_slice(&mut buf);
        assert_eq!(got, Ok(1), "the byte reached its connection");
        spent += d;
        ns.push(d.as_nanos());
    }
    summarize(ns)
}

fn measure_one_set(lab: Lab) -> Timing {
    let Lab {
        mut client,
        server,
        conns,
        now,
    } = lab;
    let mut one = server.into_single_set();
    let mut lab = Lab {
        client: std::mem::replace(
            &mut client,
            TcpStack::new(StackConfig::new(vec![SERVER], None, 0), now).unwrap(),
        ),
        server: TcpStack::new(StackConfig::new(vec![SERVER], None, 0), now).unwrap(),
        conns,
        now,
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut ns = Vec::new();
    let mut spent = Duration::ZERO;
    let mut buf = [0u8; 16];
    while ns.len() < SEGMENTS && spent < BUDGET {
        let (seg, key) = next_segment(&mut lab, &mut rng);
        let t = std::time::Instant::now();
        one.ingress(lab.now, &seg, &mut Sink);
        let d = t.elapsed();
        let got = one.socket(&key).unwrap().recv_slice(&mut buf);
        assert_eq!(got, Ok(1), "the byte reached its connection");
        spent += d;
        ns.push(d.as_nanos());
    }
    summarize(ns)
}

fn main() {
    let mut counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    if counts.is_empty() {
        counts = vec![1_000, 10_000, 100_000];
    }
    println!(
        "size_of::<smoltcp::socket::tcp::Socket>() = {} bytes",
        std::mem::size_of::<tcp::Socket<'static>>()
    );
    println!(
        "{:>8} {:>8} {:>10} {:>12} {:>12}",
        "conns", "variant", "segments", "mean ns/seg", "median ns"
    );
    for &n in &counts {
        let mut lab = open(n, 4096);
        let h = measure_hash(&mut lab);
        println!(
            "{:>8} {:>8} {:>10} {:>12.0} {:>12}",
            n, "hash", h.segments, h.mean_ns, h.median_ns
        );
        let o = measure_one_set(lab);
        println!(
            "{:>8} {:>8} {:>10} {:>12.0} {:>12}",
            n, "one-set", o.segments, o.mean_ns, o.median_ns
        );
    }
}
