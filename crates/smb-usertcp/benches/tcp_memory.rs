//! Heap bytes of an idle established connection on the server side of
//! [`TcpStack`], TCP state and buffers together (issue 14; ARCHITECTURE.md,
//! "User-space TCP"), measured with dhat's global allocator (live heap
//! bytes) like `smb-session`'s table memory test.
//!
//! N connections are opened in memory from a client stack, the client
//! stack is dropped, and what is still live beyond the starting point is
//! the server's: its flows, their sockets and buffers, the hash and the
//! slab (at their grown capacity, as in a running server).
//!
//! `cargo bench -p smb-usertcp --bench tcp_memory` (arguments: connection
//! counts, default `1000 10000 100000`).

use std::net::{Ipv4Addr, SocketAddrV4};

use smb_usertcp::smoltcp::socket::tcp;
use smb_usertcp::smoltcp::time::Instant;
use smb_usertcp::{PacketQueue, StackConfig, TcpStack};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENTS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)];

/// Live bytes the server holds for `n` idle established connections with
/// `buffer` bytes each way.
fn server_bytes(n: usize, buffer: usize) -> usize {
    let now = Instant::from_secs(1);
    let before = dhat::HeapStats::get().curr_bytes;
    let mut scfg = StackConfig::new(vec![SERVER], Some(445), 12);
    scfg.rx_buffer = buffer;
    scfg.tx_buffer = buffer;
    let mut server: TcpStack<()> = TcpStack::new(scfg, now).unwrap();
    {
        let mut ccfg = StackConfig::new(CLIENTS.to_vec(), None, 11);
        ccfg.rx_buffer = 256;
        ccfg.tx_buffer = 256;
        let mut client: TcpStack<()> = TcpStack::new(ccfg, now).unwrap();
        let mut to_server = PacketQueue::default();
        let mut to_client = PacketQueue::default();
        let remote = SocketAddrV4::new(SERVER, 445);
        for i in 0..n {
            let local = SocketAddrV4::new(CLIENTS[i % 2], 1024 + (i / 2) as u16);
            client
                .connect(now, local, remote, [0; 6], &mut to_server, ())
                .unwrap();
            while !to_server.packets.is_empty() || !to_client.packets.is_empty() {
                for p in std::mem::take(&mut to_server.packets) {
                    server.ingress(now, [0; 6], &p, &mut to_client, || ());
                }
                for p in std::mem::take(&mut to_client.packets) {
                    client.ingress(now, [0; 6], &p, &mut to_server, || ());
                }
            }
        }
    }
    assert_eq!(server.len(), n);
    let after = dhat::HeapStats::get().curr_bytes;
    drop(server);
    after - before
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
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
        "{:>8} {:>14} {:>16} {:>22}",
        "conns", "buffers/side", "server B/conn", "B/conn less buffers"
    );
    for &n in &counts {
        for buffer in [1024, 4096] {
            let per = server_bytes(n, buffer) as f64 / n as f64;
            println!(
                "{:>8} {:>14} {:>16.0} {:>22.0}",
                n,
                buffer,
                per,
                per - 2.0 * buffer as f64
            );
        }
    }
}
