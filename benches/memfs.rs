//! The memfs example's share through the engine, in memory (no sockets):
//! one related compound CREATE + READ 4 KiB + CLOSE of an existing file
//! per iteration, the work a client does to read a small file. Allocations
//! per iteration are counted by `tests/memfs_alloc.rs` (dhat).
//!
//! `cargo bench --bench memfs -- --warm-up-time 1 --measurement-time 3`

#[path = "../examples/memfs/fs.rs"]
mod fs;
#[path = "support/mem_client.rs"]
#[allow(unused_imports)]
mod mem_client;

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mem_client::{engine_with, first_response, MemConn};
use smb_session::engine::{Engine, StaticShares};
use smb_wire::header::Command;
use smb_wire::msg::close::CloseRequestRepr;
use smb_wire::msg::create::CreateRequestRepr;
use smb_wire::msg::read::ReadRequestRepr;
use smb_wire::msg::write::WriteRequestRepr;
use smb_wire::msg::FileId;
use smb_wire::NtStatus;

/// An engine serving memfs as `mem`, a session and tree on it, a 4 KiB file
/// `bench.dat`, and the compound CREATE + READ + CLOSE built, with the
/// offsets of its messages.
pub(crate) fn setup(start: Instant) -> (Engine, MemConn, Vec<usize>) {
    let memfs = fs::MemFs::new(1 << 30);
    let share = memfs.share("mem");
    let mut e = engine_with(start, |cfg| {
        cfg.shares = std::sync::Arc::new(StaticShares(vec![share]));
    });
    let mut m = MemConn::accept(&mut e, start);
    m.negotiate(&mut e);
    let sid = m.anonymous_login(&mut e);
    let tree = m.tree_connect(&mut e, sid, "mem");
    let mut name = Vec::new();
    smb_wire::utf16::encode_into("bench.dat", &mut name);
    let create = |disposition| CreateRequestRepr {
        desired_access: 0x0012_019F,
        share_access: 7,
        create_disposition: disposition,
        name: &name,
        ..Default::default()
    };
    let data = vec![0x5a; 4096];
    let write = WriteRequestRepr {
        offset: 0,
        file_id: FileId::RELATED,
        data: &data,
        ..Default::default()
    };
    let close = CloseRequestRepr {
        flags: 0,
        file_id: FileId::RELATED,
    };
    m.build_related(
        sid,
        tree,
        &[
            (Command::Create, &create(5)),
            (Command::Write, &write),
            (Command::Close, &close),
        ],
    );
    m.send(&mut e);
    assert_eq!(first_response(&m.out).0, NtStatus::SUCCESS);
    let read = ReadRequestRepr {
        length: 4096,
        offset: 0,
        file_id: FileId::RELATED,
        ..Default::default()
    };
    m.build_related(
        sid,
        tree,
        &[
            (Command::Create, &create(1)),
            (Command::Read, &read),
            (Command::Close, &close),
        ],
    );
    let starts = m.compound_starts();
    m.resend_compound(&mut e, &starts);
    assert_eq!(first_response(&m.out).0, NtStatus::SUCCESS);
    assert!(m.out.len() > 4096, "the read answered 4 KiB");
    (e, m, starts)
}

fn memfs(c: &mut Criterion) {
    let start = Instant::now();
    let mut g = c.benchmark_group("memfs");
    g.throughput(Throughput::Elements(1));
    g.bench_function("create_read4k_close", |b| {
        let (mut e, mut m, starts) = setup(start);
        b.iter(|| m.resend_compound(&mut e, &starts))
    });
    g.finish();
}

criterion_group!(benches, memfs);
criterion_main!(benches);
