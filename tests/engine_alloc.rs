//! Allocations per request in the engine's steady state, counted with dhat's
//! global allocator: ECHO and TREE_CONNECT (IPC$) allocate nothing once a
//! session exists and the buffers are warm (issue: protocol engine,
//! Performance). Session establishment is counted and reported, not bounded.
//!
//! This test has no libtest harness (`harness = false`): dhat counts every
//! thread's allocations, and the harness's own threads would be counted too.

#[path = "../benches/support/mem_client.rs"]
mod mem_client;

use std::time::Instant;

use mem_client::{engine, first_response, Four, MemConn};
use smb_wire::header::Command;
use smb_wire::NtStatus;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let start = Instant::now();
    let mut e = engine(start);
    let mut m = MemConn::accept(&mut e, start);
    m.negotiate(&mut e);
    let before_setup = blocks();
    let sid = m.anonymous_login(&mut e);
    let setup_blocks = blocks() - before_setup;

    // ECHO: warm up once, then count.
    m.build(Command::Echo, sid, 0, &Four);
    let mut echo_frame = m.built();
    m.send_kept(&mut e, &mut echo_frame);
    let b = blocks();
    for _ in 0..10_000 {
        m.send_kept(&mut e, &mut echo_frame);
    }
    let echo = blocks() - b;
    assert_eq!(first_response(&m.out).0, NtStatus::SUCCESS);

    // TREE_CONNECT IPC$ then TREE_DISCONNECT, warm, then count pairs. The
    // session keeps one IPC$ tree throughout, as a server's sessions do, so
    // the interned share name stays alive.
    m.tree_connect_ipc(&mut e, sid);
    m.build_tree_connect_ipc(sid);
    let mut connect = m.built();
    m.build(Command::TreeDisconnect, sid, 0, &Four);
    let mut disconnect = m.built();
    let mut pair = |m: &mut MemConn, e: &mut mem_client_engine::E| {
        m.send_kept(e, &mut connect);
        let (st, _, tree, _) = first_response(&m.out);
        assert_eq!(st, NtStatus::SUCCESS);
        disconnect[4 + 36..4 + 40].copy_from_slice(&tree.to_le_bytes());
        m.send_kept(e, &mut disconnect);
        assert_eq!(first_response(&m.out).0, NtStatus::SUCCESS);
    };
    pair(&mut m, &mut e);
    let b = blocks();
    for _ in 0..10_000 {
        pair(&mut m, &mut e);
    }
    let tree = blocks() - b;
    println!(
        "allocations: anonymous session setup (2 legs) = {setup_blocks}; \
         ECHO = {echo} per 10000; TREE_CONNECT+TREE_DISCONNECT = {tree} per 10000 pairs"
    );
    assert_eq!(echo, 0, "ECHO allocated");
    assert_eq!(tree, 0, "TREE_CONNECT/TREE_DISCONNECT allocated");
    println!("test echo_and_tree_connect_allocate_nothing ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

mod mem_client_engine {
    pub type E = smb_session::engine::Engine;
}
