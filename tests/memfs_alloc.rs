//! Allocations per CREATE + READ 4 KiB + CLOSE (one related compound) on
//! the memfs example's share through the engine, counted with dhat: the
//! figure `benches/memfs.rs` pairs with its time. Reported, and bounded
//! loosely so that a change that multiplies them is noticed.

#[path = "../benches/memfs.rs"]
#[allow(dead_code)]
mod bench;

use std::time::Instant;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let (mut e, mut m, starts) = bench::setup(Instant::now());
    for _ in 0..100 {
        m.resend_compound(&mut e, &starts);
    }
    let before = dhat::HeapStats::get();
    const N: u64 = 10_000;
    for _ in 0..N {
        m.resend_compound(&mut e, &starts);
    }
    let after = dhat::HeapStats::get();
    let blocks = (after.total_blocks - before.total_blocks) as f64 / N as f64;
    let bytes = (after.total_bytes - before.total_bytes) as f64 / N as f64;
    println!("memfs CREATE + READ 4 KiB + CLOSE: {blocks:.1} allocations, {bytes:.0} bytes per operation");
    assert!(blocks < 64.0, "{blocks} allocations per operation");
    println!("test result: ok. 1 passed; 0 failed");
}
