//! In-memory session establishment through the engine (no sockets): NEGOTIATE,
//! two anonymous SESSION_SETUP legs, TREE_CONNECT IPC$ — the work a server does
//! per IPC$ session — plus steady-state ECHO and TREE_CONNECT.
//!
//! `cargo bench --bench session_setup -- --warm-up-time 1 --measurement-time 3`

#[path = "support/mem_client.rs"]
mod mem_client;

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use mem_client::{engine, Four, MemConn};
use smb_wire::header::Command;

fn establish(c: &mut Criterion) {
    let start = Instant::now();
    let mut g = c.benchmark_group("engine");
    g.bench_function("establish_ipc_session", |b| {
        let mut e = engine(start);
        b.iter(|| {
            let mut m = MemConn::accept(&mut e, start);
            m.negotiate(&mut e);
            let sid = m.anonymous_login(&mut e);
            m.tree_connect_ipc(&mut e, sid);
            e.connection_closed(m.conn, start);
        })
    });
    g.bench_function("echo", |b| {
        let mut e = engine(start);
        let mut m = MemConn::accept(&mut e, start);
        m.negotiate(&mut e);
        let sid = m.anonymous_login(&mut e);
        m.build(Command::Echo, sid, 0, &Four);
        b.iter(|| m.resend_next(&mut e))
    });
    g.bench_function("tree_connect_disconnect_ipc", |b| {
        let mut e = engine(start);
        let mut m = MemConn::accept(&mut e, start);
        m.negotiate(&mut e);
        let sid = m.anonymous_login(&mut e);
        b.iter(|| {
            let tree = m.tree_connect_ipc(&mut e, sid);
            m.build(Command::TreeDisconnect, sid, tree, &Four);
            m.send(&mut e)
        })
    });
    g.finish();
}

criterion_group!(benches, establish);
criterion_main!(benches);
