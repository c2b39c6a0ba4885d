//! Memory of one idle connection holding one idle IPC$ session on the
//! AF_XDP path, TCP state and SMB together (issue 14: goal 2 KiB or less),
//! counted with dhat's global allocator (live heap bytes, like
//! `engine_alloc.rs` and `memfs_alloc.rs`).
//!
//! TCP: N connections are opened in memory into a server `TcpStack`
//! configured as the xdp transport configures it (4 KiB buffers each way,
//! keep-alive on, parking after 1 s idle), the client side is dropped, and
//! the server's live bytes are counted while the connections are
//! established and again once they are parked (socket and buffers freed,
//! one keep-alive timer each in the wheel). SMB: N in-memory connections
//! each NEGOTIATE, log on anonymously and connect IPC$ on one `Engine`
//! (the shard's session table and timer wheel included); the client side
//! is dropped and the engine's live bytes are counted.
//!
//! The same for connections in TIME-WAIT after the server closed them
//! (what reaping leaves behind) and for half-open ones under a SYN flood.
//!
//! `cargo test --test usertcp_memory` (no libtest harness: dhat counts
//! every thread's allocations).

#[allow(unused_imports)]
#[path = "../benches/support/mem_client.rs"]
mod mem_client;

use std::net::{Ipv4Addr, SocketAddrV4};

use smb_usertcp::smoltcp::time::{Duration, Instant};
use smb_usertcp::{PacketQueue, StackConfig, TcpStack};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn live() -> usize {
    dhat::HeapStats::get().curr_bytes
}

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENTS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)];

/// What the xdp transport keeps per connection beside TCP (its `XConn`:
/// the engine's connection id, a frame's partial bytes, a flag).
type XConn = Option<(u64, Vec<u8>, bool)>;

/// A server stack as the xdp transport makes it: 4 KiB buffers each way,
/// keep-alive, and (`park`) parking after 1 s idle.
fn xdp_server(now: Instant, park: bool) -> TcpStack<XConn> {
    let mut cfg = StackConfig::new(vec![SERVER], Some(445), 12);
    cfg.rx_buffer = 4096;
    cfg.tx_buffer = 4096;
    cfg.keep_alive = Some(Duration::from_secs(60));
    cfg.park_after = park.then(|| Duration::from_secs(1));
    TcpStack::new(cfg, now).unwrap()
}

/// The client side: small buffers (it is dropped before the count).
fn client_stack(now: Instant) -> TcpStack<()> {
    let mut cfg = StackConfig::new(CLIENTS.to_vec(), None, 11);
    cfg.rx_buffer = 256;
    cfg.tx_buffer = 256;
    TcpStack::new(cfg, now).unwrap()
}

/// Live server bytes per connection: (established, parked).
fn tcp_bytes(n: usize) -> (f64, f64) {
    let mut now = Instant::from_secs(1);
    let before = live();
    let mut server = xdp_server(now, true);
    {
        let mut client = client_stack(now);
        let (mut to_server, mut to_client) = (PacketQueue::default(), PacketQueue::default());
        let remote = SocketAddrV4::new(SERVER, 445);
        for i in 0..n {
            let local = SocketAddrV4::new(CLIENTS[i % 2], 1024 + (i / 2) as u16);
            client
                .connect(now, local, remote, [0; 6], &mut to_server, ())
                .unwrap();
            while !to_server.packets.is_empty() || !to_client.packets.is_empty() {
                for p in std::mem::take(&mut to_server.packets) {
                    server.ingress(now, [0; 6], &p, &mut to_client, || None);
                }
                for p in std::mem::take(&mut to_client.packets) {
                    client.ingress(now, [0; 6], &p, &mut to_server, || ());
                }
            }
        }
    }
    assert_eq!(server.len(), n);
    let established = (live() - before) as f64 / n as f64;
    // Idle past park_after: every connection parks.
    let until = now + Duration::from_secs(2);
    let mut out = PacketQueue::default();
    let mut fired = Vec::new();
    while now < until {
        now = match server.next_deadline() {
            Some(t) if t > now && t <= until => t,
            Some(_) => now + Duration::from_micros(1),
            None => until,
        };
        server.poll_timers(now, &mut out, &mut fired);
        fired.clear();
    }
    assert!(out.packets.is_empty(), "parking sends nothing");
    drop(out);
    drop(fired);
    assert_eq!(server.parked(), n, "every idle connection parked");
    assert_eq!(server.timer_entries(), n, "one keep-alive timer each");
    let parked = (live() - before) as f64 / n as f64;
    drop(server);
    (established, parked)
}

/// Live server bytes per connection in TIME-WAIT: `n` connections that
/// the server closes first (as when it reaps idle sessions) and the
/// client then closes, so that each holds its 4-tuple on the server for
/// `smb_usertcp::TIME_WAIT`.
fn time_wait_bytes(n: usize) -> f64 {
    let now = Instant::from_secs(1);
    let before = live();
    let mut server = xdp_server(now, false);
    {
        let mut client = client_stack(now);
        let (mut to_server, mut to_client) = (PacketQueue::default(), PacketQueue::default());
        let remote = SocketAddrV4::new(SERVER, 445);
        let run = |server: &mut TcpStack<XConn>,
                   client: &mut TcpStack<()>,
                   to_server: &mut PacketQueue,
                   to_client: &mut PacketQueue| {
            while !to_server.packets.is_empty() || !to_client.packets.is_empty() {
                for p in std::mem::take(&mut to_server.packets) {
                    server.ingress(now, [0; 6], &p, to_client, || None);
                }
                for p in std::mem::take(&mut to_client.packets) {
                    client.ingress(now, [0; 6], &p, to_server, || ());
                }
            }
        };
        for i in 0..n {
            let local = SocketAddrV4::new(CLIENTS[i % 2], 1024 + (i / 2) as u16);
            let c = client
                .connect(now, local, remote, [0; 6], &mut to_server, ())
                .unwrap();
            run(&mut server, &mut client, &mut to_server, &mut to_client);
            let s = server
                .find(&smb_usertcp::FlowKey {
                    remote: local,
                    local: remote,
                })
                .unwrap();
            // The server closes first; then the client.
            server.flow_mut(s).unwrap().socket_mut().close();
            server.poll(now, s, &mut to_client);
            run(&mut server, &mut client, &mut to_server, &mut to_client);
            client.flow_mut(c).unwrap().socket_mut().close();
            client.poll(now, c, &mut to_server);
            run(&mut server, &mut client, &mut to_server, &mut to_client);
            client.remove(c);
        }
    }
    assert_eq!(server.len(), n);
    assert_eq!(server.time_wait(), n, "every connection in TIME-WAIT");
    let per = (live() - before) as f64 / n as f64;
    drop(server);
    per
}

/// Live server bytes per half-open connection under a flood of `n`
/// spoofed SYNs (the half-open table holding all of them).
fn half_open_bytes(n: usize) -> f64 {
    let now = Instant::from_secs(1);
    let before = live();
    let mut cfg = StackConfig::new(vec![SERVER], Some(445), 12);
    cfg.max_half_open = n;
    let mut server: TcpStack<XConn> = TcpStack::new(cfg, now).unwrap();
    let mut out = PacketQueue::default();
    for i in 0..n {
        let syn = spoofed_syn(i as u32);
        server.ingress(now, [0; 6], &syn, &mut out, || None);
        out.packets.clear();
    }
    out.packets.shrink_to_fit();
    assert_eq!(server.half_open(), n);
    let per = (live() - before) as f64 / n as f64;
    drop(server);
    per
}

/// A SYN from 198.19.x.y (RFC 9293 section 3.1), checksums right.
fn spoofed_syn(i: u32) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[198, 19, (i >> 8) as u8, i as u8]);
    p[16..20].copy_from_slice(&SERVER.octets());
    p[20..22].copy_from_slice(&(1024 + (i >> 16) as u16).to_be_bytes());
    p[22..24].copy_from_slice(&445u16.to_be_bytes());
    p[24..28].copy_from_slice(&i.to_be_bytes());
    p[32] = 0x50;
    p[33] = 0x02;
    p[34..36].copy_from_slice(&64240u16.to_be_bytes());
    let sum = |d: &[u8], mut acc: u32| {
        for c in d.chunks(2) {
            acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    };
    let ip = sum(&p[..20], 0);
    p[10..12].copy_from_slice(&ip.to_be_bytes());
    let mut pseudo = Vec::from(&p[12..20]);
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&p[20..40]);
    let tcp = sum(&pseudo, 0);
    p[36..38].copy_from_slice(&tcp.to_be_bytes());
    p
}

/// Live engine bytes per connection with one anonymous IPC$ session.
fn smb_bytes(n: usize) -> f64 {
    let start = std::time::Instant::now();
    let before = live();
    let mut e = mem_client::engine(start);
    for _ in 0..n {
        let mut m = mem_client::MemConn::accept(&mut e, start);
        m.negotiate(&mut e);
        let sid = m.anonymous_login(&mut e);
        m.tree_connect_ipc(&mut e, sid);
    }
    let per = (live() - before) as f64 / n as f64;
    drop(e);
    per
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    println!(
        "size_of: Flow<XConn> {} B (in the flow slab), smoltcp tcp::Socket {} B (freed when parked)",
        std::mem::size_of::<smb_usertcp::Flow<XConn>>(),
        std::mem::size_of::<smb_usertcp::smoltcp::socket::tcp::Socket<'static>>()
    );
    println!(
        "{:>7} {:>16} {:>12} {:>10} {:>18}",
        "conns", "TCP established", "TCP parked", "SMB IPC$", "parked TCP + SMB"
    );
    for n in [1_000, 10_000] {
        let (established, parked) = tcp_bytes(n);
        let smb = smb_bytes(n);
        let total = parked + smb;
        println!("{n:>7} {established:>16.0} {parked:>12.0} {smb:>10.0} {total:>18.0}");
        // The buffers alone are 8 KiB while established; parked, a
        // connection keeps a few hundred bytes of TCP state.
        assert!(established > 8192.0, "{established}");
        assert!(parked < 512.0, "parked TCP {parked} B per connection");
        assert!(
            total <= 2048.0,
            "TCP + SMB {total} B per idle IPC$ connection, over the 2 KiB goal"
        );
    }
    // A SYN flood: each half-open connection holds 1 KiB buffers each
    // way, not the 4 KiB an established one gets.
    let n = 10_000;
    let half_open = half_open_bytes(n);
    println!("{n:>7} half-open (spoofed SYNs): {half_open:.0} B per connection");
    assert!(half_open < 4096.0, "{half_open}");
    // Reaping: the server closes first and holds each 4-tuple in
    // TIME-WAIT, without its socket or buffers.
    let time_wait = time_wait_bytes(n);
    println!("{n:>7} in TIME-WAIT (the server closed first): {time_wait:.0} B per connection");
    assert!(time_wait < 512.0, "{time_wait}");
}
