//! Bytes of table memory per idle session holding one IPC$ tree, measured with
//! dhat's global allocator (live heap bytes). Run with
//! `cargo test -p smb-session --release --test memory` to see the figures.

use smb_session::table::{record_sizes, SessionInfo, SessionTable, TableConfig, UserName};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

// dhat's global allocator tracks live heap bytes; the file has no libtest
// harness (`harness = false`), so nothing else allocates meanwhile.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

fn info() -> SessionInfo {
    SessionInfo {
        user: UserName::User("CORP\\loadgen".into()),
        admin: false,
        computer_name: Some("LOADGEN01".into()),
        dialect: 0x0311,
        signed: true,
    }
}

/// Bytes allocated by the table for `n` clients, each one connection with one
/// authenticated, idle session holding an IPC$ tree.
fn bytes_for(n: u32, sessions_per_conn: u32) -> usize {
    let base = Instant::now();
    let mut cfg = TableConfig::default();
    cfg.max_sessions_per_connection = sessions_per_conn as usize;
    let before = live_bytes();
    let mut t: SessionTable = SessionTable::new(0, base, cfg);
    let mut made = 0;
    let mut i = 0u32;
    while made < n {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        let now = base + Duration::from_micros(u64::from(i));
        let c = t.add_connection(SocketAddr::new(ip, 50_000), now);
        for _ in 0..sessions_per_conn.min(n - made) {
            let s = t.create_session(c, now).unwrap();
            t.authenticate_session(s, info(), now).unwrap();
            t.connect_tree(s, "IPC$", true, now).unwrap();
            made += 1;
        }
        i += 1;
    }
    let used = live_bytes() - before;
    assert_eq!(t.session_count(), n as usize);
    assert_eq!(t.tree_count(), n as usize);
    let accounted = t.heap_bytes();
    // heap_bytes() (slab capacities x slot sizes) agrees with the allocator
    // to within the interner and hash map overhead.
    assert!(
        accounted.abs_diff(used) < used / 20,
        "{accounted} vs {used}"
    );
    drop(t);
    used
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    for (name, size) in record_sizes() {
        println!("{name}: {size} B");
    }
    let n = 1 << 16;
    let per_client = bytes_for(n, 1) as f64 / f64::from(n);
    println!("per idle session + its connection, n=2^16 (slabs full): {per_client:.1} B");
    let per_session = bytes_for(n, 8) as f64 / f64::from(n);
    println!("per idle session, 8 per connection, n=2^16: {per_session:.1} B");
    let m = 100_000;
    let grown = bytes_for(m, 1) as f64 / f64::from(m);
    println!("per idle session + its connection, n=100000 (slab growth slack): {grown:.1} B");
    assert!(per_client < 256.0, "{per_client} B per session");
    assert!(per_session < per_client);
    println!("test bytes_per_idle_session_with_ipc_tree ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
