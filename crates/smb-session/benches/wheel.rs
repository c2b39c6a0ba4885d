//! Timer structures side by side at 1k, 10k, 100k and 1M pending timers:
//! the hierarchical [`TimerWheel`], a `BinaryHeap` (lazy deletion), a
//! `BTreeMap`, and the scan-every-session check a periodic idle sweep (Samba's
//! 60 s `deadtime` check) does.
//!
//! Operations (ns per operation; the pending count stays at N):
//! - `insert`: file a new timer (removed again outside the timed region);
//! - `cancel`: remove a random pending timer (refiled outside the timed region);
//! - `touch`: move a random pending timer to a new deadline (an eager re-arm);
//! - `expire`: per timer that fires while time advances 1 ms at a time with
//!   deadlines spread over N ms (one expiry per ms), each refiled N ms later;
//! - `scan`: one sweep over N sessions' `last_activity` (ns per sweep).
//!
//! Run: `cargo bench -p smb-session --bench wheel -- --warm-up-time 1 --measurement-time 2`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use smb_session::wheel::{TimerKey, TimerWheel};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
const CHUNK: u64 = 1024;

/// A small, fast PRNG so the benchmark measures the structures, not the RNG.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The operations every timer structure offers, over ids `0..`.
trait Timers {
    type Handle: Copy;
    fn insert(&mut self, id: u32, deadline: u64) -> Self::Handle;
    fn cancel(&mut self, h: Self::Handle);
    fn reschedule(&mut self, h: Self::Handle, deadline: u64) -> Self::Handle;
    fn poll(&mut self, now: u64, fired: &mut Vec<u32>);
    /// Untimed housekeeping between chunks.
    fn maintain(&mut self) {}
}

impl Timers for TimerWheel<u32> {
    type Handle = TimerKey;
    fn insert(&mut self, id: u32, deadline: u64) -> TimerKey {
        TimerWheel::insert(self, deadline, id)
    }
    fn cancel(&mut self, h: TimerKey) {
        TimerWheel::cancel(self, h);
    }
    fn reschedule(&mut self, h: TimerKey, deadline: u64) -> TimerKey {
        TimerWheel::reschedule(self, h, deadline);
        h
    }
    fn poll(&mut self, now: u64, fired: &mut Vec<u32>) {
        TimerWheel::poll(self, now, &mut |_, id| fired.push(id));
    }
}

/// A binary heap with lazy deletion: cancel bumps the id's generation; stale
/// entries are skipped when popped and purged between chunks.
#[derive(Default)]
struct Heap {
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
    generation: Vec<u32>,
    live: usize,
}

impl Timers for Heap {
    type Handle = u32;
    fn insert(&mut self, id: u32, deadline: u64) -> u32 {
        let i = id as usize;
        if i >= self.generation.len() {
            self.generation.resize(i + 1, 0);
        }
        self.generation[i] = self.generation[i].wrapping_add(1);
        self.heap.push(Reverse((deadline, id, self.generation[i])));
        self.live += 1;
        id
    }
    fn cancel(&mut self, id: u32) {
        let g = &mut self.generation[id as usize];
        *g = g.wrapping_add(1);
        self.live -= 1;
    }
    fn reschedule(&mut self, id: u32, deadline: u64) -> u32 {
        self.cancel(id);
        self.insert(id, deadline)
    }
    fn poll(&mut self, now: u64, fired: &mut Vec<u32>) {
        while let Some(&Reverse((d, id, g))) = self.heap.peek() {
            if d > now {
                break;
            }
            self.heap.pop();
            if self.generation[id as usize] == g {
                self.generation[id as usize] = g.wrapping_add(1);
                self.live -= 1;
                fired.push(id);
            }
        }
    }
    fn maintain(&mut self) {
        if self.heap.len() > 2 * self.live + 1024 {
            let generation = &self.generation;
            self.heap
                .retain(|&Reverse((_, id, g))| generation[id as usize] == g);
        }
    }
}

/// A sorted map keyed by (deadline, id).
#[derive(Default)]
struct Tree {
    map: BTreeMap<(u64, u32), ()>,
}

impl Timers for Tree {
    type Handle = (u64, u32);
    fn insert(&mut self, id: u32, deadline: u64) -> (u64, u32) {
        self.map.insert((deadline, id), ());
        (deadline, id)
    }
    fn cancel(&mut self, h: (u64, u32)) {
        self.map.remove(&h);
    }
    fn reschedule(&mut self, h: (u64, u32), deadline: u64) -> (u64, u32) {
        self.map.remove(&h);
        self.insert(h.1, deadline)
    }
    fn poll(&mut self, now: u64, fired: &mut Vec<u32>) {
        while let Some(e) = self.map.first_entry() {
            if e.key().0 > now {
                break;
            }
            fired.push(e.key().1);
            e.remove();
        }
    }
}

/// N timers with deadlines spread over (0, N] ms: about one expiry per ms.
fn filled<T: Timers>(mut t: T, n: usize, rng: &mut XorShift) -> (T, Vec<T::Handle>) {
    let keys = (0..n as u32)
        .map(|id| t.insert(id, 1 + rng.below(n as u64)))
        .collect();
    (t, keys)
}

fn group_for<T: Timers>(c: &mut Criterion, name: &str, make: fn() -> T) {
    for &n in &SIZES {
        let mut g = c.benchmark_group(format!("wheel/{n}"));
        if n >= 1_000_000 {
            g.sample_size(10);
        } else if n >= 100_000 {
            g.sample_size(20);
        }
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut t, mut keys) = filled(make(), n, &mut rng);
        let span = n as u64;

        g.bench_function(BenchmarkId::new("insert", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                let mut tmp = Vec::with_capacity(CHUNK as usize);
                while done < iters {
                    let k = CHUNK.min(iters - done);
                    let start = Instant::now();
                    for j in 0..k {
                        tmp.push(t.insert(n as u32 + j as u32, 1 + rng.below(span)));
                    }
                    total += start.elapsed();
                    for h in tmp.drain(..) {
                        t.cancel(h);
                    }
                    t.maintain();
                    done += k;
                }
                total
            })
        });

        g.bench_function(BenchmarkId::new("cancel", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                let mut picked = Vec::with_capacity(CHUNK as usize);
                while done < iters {
                    let k = CHUNK.min(iters - done);
                    picked.clear();
                    picked.extend((0..k).map(|_| rng.below(n as u64) as usize));
                    picked.sort_unstable();
                    picked.dedup();
                    let start = Instant::now();
                    for &i in &picked {
                        t.cancel(keys[i]);
                    }
                    total += start.elapsed();
                    for &i in &picked {
                        keys[i] = t.insert(i as u32, 1 + rng.below(span));
                    }
                    t.maintain();
                    // dedup may have dropped a few: count what was timed
                    done += picked.len() as u64;
                }
                total
            })
        });

        g.bench_function(BenchmarkId::new("touch", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let k = CHUNK.min(iters - done);
                    let start = Instant::now();
                    for _ in 0..k {
                        let i = rng.below(n as u64) as usize;
                        keys[i] = t.reschedule(keys[i], 1 + rng.below(span));
                    }
                    total += start.elapsed();
                    t.maintain();
                    done += k;
                }
                total
            })
        });
        drop((t, keys));

        // Expiry in steady state: time moves 1 ms per poll.
        let (mut t, mut keys) = filled(make(), n, &mut rng);
        let mut now = 0u64;
        let mut fired = Vec::new();
        g.bench_function(BenchmarkId::new("expire", name), |b| {
            b.iter_custom(|iters| {
                let mut count = 0u64;
                let start = Instant::now();
                while count < iters {
                    now += 1;
                    fired.clear();
                    t.poll(now, &mut fired);
                    for &id in &fired {
                        keys[id as usize] = t.insert(id, now + 1 + rng.below(span));
                    }
                    count += fired.len() as u64;
                }
                let el = start.elapsed();
                t.maintain();
                // scale to the requested number of expiries
                el.mul_f64(iters as f64 / count.max(1) as f64)
            })
        });
        black_box(&keys);
        g.finish();
    }
}

/// The periodic sweep: one pass over every session's last activity, reaping
/// (here: renewing) those idle past the timeout. ns per pass.
fn scan(c: &mut Criterion) {
    for &n in &SIZES {
        let mut g = c.benchmark_group(format!("wheel/{n}"));
        if n >= 100_000 {
            g.sample_size(10);
        }
        let mut rng = XorShift(7);
        let timeout = n as u64;
        let mut last: Vec<u64> = (0..n).map(|_| rng.below(timeout)).collect();
        let mut now = timeout;
        g.bench_function(BenchmarkId::new("scan", "sweep"), |b| {
            b.iter(|| {
                now += 1;
                let mut reaped = 0u32;
                for l in last.iter_mut() {
                    if now - *l >= timeout {
                        *l = now;
                        reaped += 1;
                    }
                }
                black_box(reaped)
            })
        });
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    group_for(c, "timer-wheel", TimerWheel::<u32>::new);
    group_for(c, "binary-heap", Heap::default);
    group_for(c, "btreemap", Tree::default);
    scan(c);
}

criterion_group!(wheel, benches);
criterion_main!(wheel);
