//! Timer structures side by side at 1k, 10k, 100k and 1M pending timers:
//! the hierarchical [`TimerWheel`]; `linked`, the previous wheel design (the
//! same levels, entries in a `slab` on intrusive doubly-linked slot lists),
//! kept here as the "before" baseline; a `BinaryHeap` (lazy deletion); a
//! `BTreeMap`; the scan-every-session check a periodic idle sweep (Samba's 60 s
//! `deadtime` check) does; and two memory baselines.
//!
//! Every structure holds N timers with deadlines spread uniformly over the
//! next N ticks (one expiry per tick on average). Figures are ns per
//! operation; everything random (ids, deadlines) is drawn before the timed
//! section, and the pending count stays at N:
//! - `insert`: file 1024 new timers (cancelled again, untimed);
//! - `cancel`: cancel 1024 distinct random pending timers (refiled, untimed);
//!   independent operations, so the CPU overlaps their memory misses;
//! - `cancel-chain`: the same, but each cancel waits for the one before (its
//!   key is found from the previous result): the latency of one cancel;
//! - `touch`: move a random pending timer to a new random deadline in the
//!   window (the wheel's `reschedule`: later is lazy, earlier refiles);
//! - `expire`: per timer fired while time advances one tick per poll, 64 polls
//!   per timed batch; fired timers are refiled N ticks ahead, untimed;
//! - `scan/sweep`: one pass over N sessions' `last_activity` (ns per pass);
//! - `mem/random-read`: one read of a random element of an N x 24-byte array
//!   (the wheel's entry size), independent reads (so misses overlap, like
//!   independent timer operations);
//! - `mem/random-write`: the same, but each access updates the element (a
//!   read-modify-write, as a cancel does to its entry);
//! - `mem/chase`: one dependent read in a random cycle over the same array
//!   (a full miss latency at sizes beyond the caches).
//!
//! Run (about 4 minutes):
//! `cargo bench -p smb-session --bench wheel`
//! (defaults: 0.5 s warm-up, 1.5 s measurement, 20 samples).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use smb_session::wheel::{TimerKey, TimerWheel};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
/// Operations per timed batch.
const CHUNK: usize = 1024;
/// Polls (ticks) per timed batch of `expire`.
const STEPS: u64 = 64;

/// A small, fast PRNG (used only outside timed sections).
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

    /// A random permutation of `0..n`.
    fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut v: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
        v
    }
}

/// The operations every timer structure offers, over ids `0..`.
trait Timers {
    type Handle: Copy;
    fn insert(&mut self, id: u32, deadline: u64) -> Self::Handle;
    /// Cancels a pending timer; returns its id.
    fn cancel(&mut self, h: Self::Handle) -> u32;
    fn reschedule(&mut self, h: Self::Handle, deadline: u64) -> Self::Handle;
    fn poll(&mut self, now: u64, fired: &mut Vec<u32>);
    /// Untimed housekeeping between batches.
    fn maintain(&mut self) {}
}

impl Timers for TimerWheel<u32> {
    type Handle = TimerKey;
    fn insert(&mut self, id: u32, deadline: u64) -> TimerKey {
        TimerWheel::insert(self, deadline, id)
    }
    fn cancel(&mut self, h: TimerKey) -> u32 {
        TimerWheel::cancel(self, h).unwrap_or(u32::MAX)
    }
    fn reschedule(&mut self, h: TimerKey, deadline: u64) -> TimerKey {
        TimerWheel::reschedule(self, h, deadline);
        h
    }
    fn poll(&mut self, now: u64, fired: &mut Vec<u32>) {
        TimerWheel::poll(self, now, &mut |_, id| fired.push(id));
    }
}

/// The previous wheel: the same six 64-slot levels and bitmaps, entries in a
/// `slab` linked into doubly-linked slot lists by index; cancel and reschedule
/// unlink at once (touching the entry and both neighbours) and every cascade
/// walks the entries themselves.
mod linked {
    use slab::Slab;

    const LEVELS: usize = 6;
    const SLOTS: usize = 64;
    const BITS: u32 = 6;
    const SPAN: u64 = 1 << (BITS as u64 * LEVELS as u64);
    const NIL: u32 = u32::MAX;
    const PENDING: u8 = u8::MAX;

    struct Entry {
        deadline: u64,
        prev: u32,
        next: u32,
        generation: u32,
        level: u8,
        value: u32,
    }

    /// See the module documentation.
    pub struct Wheel {
        entries: Slab<Entry>,
        occupied: [u64; LEVELS],
        heads: [[u32; SLOTS]; LEVELS],
        pending: u32,
        elapsed: u64,
        generation: u32,
    }

    fn slot_for(deadline: u64, level: usize) -> usize {
        ((deadline >> (level as u32 * BITS)) as usize) & (SLOTS - 1)
    }

    fn level_for(elapsed: u64, deadline: u64) -> usize {
        let masked = ((elapsed ^ deadline) | (SLOTS as u64 - 1)).min(SPAN - 1);
        ((63 - masked.leading_zeros()) / BITS) as usize
    }

    impl Wheel {
        pub fn new() -> Self {
            Wheel {
                entries: Slab::new(),
                occupied: [0; LEVELS],
                heads: [[NIL; SLOTS]; LEVELS],
                pending: NIL,
                elapsed: 0,
                generation: 0,
            }
        }

        pub fn insert(&mut self, deadline: u64, value: u32) -> (u32, u32) {
            self.generation = self.generation.wrapping_add(1);
            let index = self.entries.insert(Entry {
                deadline,
                prev: NIL,
                next: NIL,
                generation: self.generation,
                level: PENDING,
                value,
            }) as u32;
            self.link(index);
            (index, self.generation)
        }

        fn valid(&self, (index, generation): (u32, u32)) -> bool {
            self.entries
                .get(index as usize)
                .is_some_and(|e| e.generation == generation)
        }

        pub fn cancel(&mut self, key: (u32, u32)) -> Option<u32> {
            if !self.valid(key) {
                return None;
            }
            self.unlink(key.0);
            Some(self.entries.remove(key.0 as usize).value)
        }

        pub fn reschedule(&mut self, key: (u32, u32), deadline: u64) -> bool {
            if !self.valid(key) {
                return false;
            }
            self.unlink(key.0);
            self.entries[key.0 as usize].deadline = deadline;
            self.link(key.0);
            true
        }

        fn next_expiration(&self) -> Option<(usize, usize, u64)> {
            for level in 0..LEVELS {
                let occupied = self.occupied[level];
                if occupied == 0 {
                    continue;
                }
                let width = 1u64 << (level as u32 * BITS);
                let from = (slot_for(self.elapsed, level) + 1) % SLOTS;
                let slot =
                    (from + occupied.rotate_right(from as u32).trailing_zeros() as usize) % SLOTS;
                let range = width << BITS;
                let mut at = (self.elapsed & !(range - 1)) + slot as u64 * width;
                if at <= self.elapsed {
                    at = at.saturating_add(range);
                }
                return Some((level, slot, at));
            }
            None
        }

        pub fn poll(&mut self, now: u64, fire: &mut impl FnMut(u32)) {
            loop {
                while self.pending != NIL {
                    let index = self.pending;
                    self.unlink(index);
                    fire(self.entries.remove(index as usize).value);
                }
                match self.next_expiration() {
                    Some((level, slot, at)) if at <= now => {
                        self.elapsed = at;
                        let mut index = self.heads[level][slot];
                        self.heads[level][slot] = NIL;
                        self.occupied[level] &= !(1u64 << slot);
                        while index != NIL {
                            let next = self.entries[index as usize].next;
                            self.link(index);
                            index = next;
                        }
                    }
                    _ => {
                        self.elapsed = self.elapsed.max(now);
                        return;
                    }
                }
            }
        }

        fn link(&mut self, index: u32) {
            let deadline = self.entries[index as usize].deadline;
            let (level, head) = if deadline <= self.elapsed {
                (PENDING, &mut self.pending)
            } else {
                let level = level_for(self.elapsed, deadline);
                let slot = slot_for(deadline, level);
                self.occupied[level] |= 1u64 << slot;
                (level as u8, &mut self.heads[level][slot])
            };
            let old = std::mem::replace(head, index);
            let e = &mut self.entries[index as usize];
            e.level = level;
            e.prev = NIL;
            e.next = old;
            if old != NIL {
                self.entries[old as usize].prev = index;
            }
        }

        fn unlink(&mut self, index: u32) {
            let e = &self.entries[index as usize];
            let (prev, next, level, deadline) = (e.prev, e.next, e.level, e.deadline);
            if next != NIL {
                self.entries[next as usize].prev = prev;
            }
            if prev != NIL {
                self.entries[prev as usize].next = next;
            } else if level == PENDING {
                self.pending = next;
            } else {
                let (level, slot) = (level as usize, slot_for(deadline, level as usize));
                self.heads[level][slot] = next;
                if next == NIL {
                    self.occupied[level] &= !(1u64 << slot);
                }
            }
        }
    }
}

impl Timers for linked::Wheel {
    type Handle = (u32, u32);
    fn insert(&mut self, id: u32, deadline: u64) -> (u32, u32) {
        linked::Wheel::insert(self, deadline, id)
    }
    fn cancel(&mut self, h: (u32, u32)) -> u32 {
        linked::Wheel::cancel(self, h).unwrap_or(u32::MAX)
    }
    fn reschedule(&mut self, h: (u32, u32), deadline: u64) -> (u32, u32) {
        linked::Wheel::reschedule(self, h, deadline);
        h
    }
    fn poll(&mut self, now: u64, fired: &mut Vec<u32>) {
        linked::Wheel::poll(self, now, &mut |id| fired.push(id));
    }
}

/// A binary heap with lazy deletion: cancel bumps the id's generation; stale
/// entries are skipped when popped and purged between batches.
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
    fn cancel(&mut self, id: u32) -> u32 {
        let g = &mut self.generation[id as usize];
        *g = g.wrapping_add(1);
        self.live -= 1;
        id
    }
    fn reschedule(&mut self, id: u32, deadline: u64) -> u32 {
        Timers::cancel(self, id);
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
    fn cancel(&mut self, h: (u64, u32)) -> u32 {
        self.map.remove(&h).map_or(u32::MAX, |()| h.1)
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

/// N timers (ids `0..n`) with deadlines spread over (0, N] ticks.
fn filled<T: Timers>(mut t: T, n: usize, rng: &mut XorShift) -> (T, Vec<T::Handle>) {
    let keys = (0..n as u32)
        .map(|id| t.insert(id, 1 + rng.below(n as u64)))
        .collect();
    (t, keys)
}

/// Walks a random permutation of the ids in batches of distinct ids, drawing a
/// new permutation for every lap: with a fixed order the same ids would come
/// back together in every batch, and a structure that touches its neighbours
/// (the linked wheel refills a batch's timers next to each other) would find
/// the next victims already in cache.
struct Picker {
    order: Vec<u32>,
    at: usize,
    batch: usize,
    rng: XorShift,
}

impl Picker {
    fn new(n: usize, rng: &mut XorShift) -> Self {
        let mut rng = XorShift(rng.next() | 1);
        Picker {
            order: rng.permutation(n),
            at: 0,
            // At 1k a batch is a quarter of the timers, so the wheel never empties.
            batch: CHUNK.min(n / 4),
            rng,
        }
    }

    fn next_batch(&mut self, k: usize) -> &[u32] {
        let k = k.min(self.batch);
        if self.at + k > self.order.len() {
            self.order = self.rng.permutation(self.order.len());
            self.at = 0;
        }
        self.at += k;
        &self.order[self.at - k..self.at]
    }
}

fn timer_ops<T: Timers>(c: &mut Criterion, name: &str, make: fn() -> T) {
    for &n in &SIZES {
        let mut g = c.benchmark_group(format!("wheel/{n}"));
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut t, mut keys) = filled(make(), n, &mut rng);
        let span = n as u64;
        let mut picker = Picker::new(n, &mut rng);
        let mut deadlines: Vec<u64> = Vec::with_capacity(CHUNK);

        g.bench_function(BenchmarkId::new("insert", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                let mut tmp = Vec::with_capacity(CHUNK);
                while done < iters {
                    let k = (CHUNK as u64).min(iters - done) as usize;
                    deadlines.clear();
                    deadlines.extend((0..k).map(|_| 1 + rng.below(span)));
                    let start = Instant::now();
                    for (j, &d) in deadlines.iter().enumerate() {
                        tmp.push(t.insert((n + j) as u32, d));
                    }
                    total += start.elapsed();
                    for h in tmp.drain(..) {
                        t.cancel(h);
                    }
                    t.maintain();
                    done += k as u64;
                }
                total
            })
        });

        // The keys to cancel or move are looked up before the timed loop, so
        // it touches only the structure.
        let mut batch: Vec<T::Handle> = Vec::with_capacity(CHUNK);
        g.bench_function(BenchmarkId::new("cancel", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let picked = picker.next_batch((iters - done) as usize);
                    batch.clear();
                    batch.extend(picked.iter().map(|&i| keys[i as usize]));
                    let start = Instant::now();
                    for &h in &batch {
                        t.cancel(h);
                    }
                    total += start.elapsed();
                    for &i in picked {
                        keys[i as usize] = t.insert(i, 1 + rng.below(span));
                    }
                    t.maintain();
                    done += picked.len() as u64;
                }
                total
            })
        });

        // The same, but each cancel's key is found only from the previous
        // cancel's result: one operation's latency, not overlapped with the next.
        g.bench_function(BenchmarkId::new("cancel-chain", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let picked = picker.next_batch((iters - done) as usize);
                    batch.clear();
                    batch.extend(picked.iter().map(|&i| keys[i as usize]));
                    let start = Instant::now();
                    let mut j = 0;
                    while j < batch.len() {
                        let id = t.cancel(batch[j]);
                        // `id == picked[j]`: the next index is j + 1, but only
                        // once this cancel has answered.
                        j += 1 + (id ^ picked[j]) as usize;
                    }
                    total += start.elapsed();
                    for &i in picked {
                        keys[i as usize] = t.insert(i, 1 + rng.below(span));
                    }
                    t.maintain();
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
                    let picked = picker.next_batch((iters - done) as usize);
                    batch.clear();
                    batch.extend(picked.iter().map(|&i| keys[i as usize]));
                    deadlines.clear();
                    deadlines.extend(picked.iter().map(|_| 1 + rng.below(span)));
                    let start = Instant::now();
                    for (h, &d) in batch.iter_mut().zip(&deadlines) {
                        *h = t.reschedule(*h, d);
                    }
                    total += start.elapsed();
                    for (&i, &h) in picked.iter().zip(&batch) {
                        keys[i as usize] = h;
                    }
                    t.maintain();
                    done += picked.len() as u64;
                }
                total
            })
        });
        drop((t, keys));

        // Expiry in steady state: time moves one tick per poll.
        let (mut t, mut keys) = filled(make(), n, &mut rng);
        let mut now = 0u64;
        let mut fired = Vec::new();
        g.bench_function(BenchmarkId::new("expire", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut count = 0u64;
                while count < iters {
                    fired.clear();
                    let start = Instant::now();
                    for _ in 0..STEPS {
                        now += 1;
                        t.poll(now, &mut fired);
                    }
                    total += start.elapsed();
                    for &id in &fired {
                        keys[id as usize] = t.insert(id, now + 1 + rng.below(span));
                    }
                    t.maintain();
                    count += fired.len() as u64;
                }
                // per expired timer, scaled to the requested count
                total.mul_f64(iters as f64 / count.max(1) as f64)
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

/// What one memory access costs at each size, over an array of 24-byte
/// elements (the wheel's entry size): independent random reads (throughput,
/// misses overlapping) and a dependent chase (latency).
fn memory(c: &mut Criterion) {
    for &n in &SIZES {
        let mut g = c.benchmark_group(format!("wheel/{n}"));
        let mut rng = XorShift(11);
        // Sattolo's shuffle: one cycle through every element.
        let mut next: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            next.swap(i, rng.below(i as u64) as usize);
        }
        let array: Vec<[u64; 3]> = next.iter().map(|&x| [u64::from(x), 1, 2]).collect();
        let mut picker = Picker::new(n, &mut rng);
        g.bench_function(BenchmarkId::new("mem", "random-read"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                let mut sum = 0u64;
                while done < iters {
                    let picked = picker.next_batch((iters - done) as usize);
                    let start = Instant::now();
                    for &i in picked {
                        sum = sum.wrapping_add(array[i as usize][1]);
                    }
                    total += start.elapsed();
                    done += picked.len() as u64;
                }
                black_box(sum);
                total
            })
        });
        let mut array = array;
        g.bench_function(BenchmarkId::new("mem", "random-write"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let picked = picker.next_batch((iters - done) as usize);
                    let start = Instant::now();
                    for &i in picked {
                        let e = &mut array[i as usize];
                        e[1] = e[1].wrapping_add(e[2]);
                    }
                    total += start.elapsed();
                    done += picked.len() as u64;
                }
                total
            })
        });
        let mut at = 0usize;
        g.bench_function(BenchmarkId::new("mem", "chase"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    at = array[at][0] as usize;
                }
                black_box(at);
                start.elapsed()
            })
        });
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    timer_ops(c, "timer-wheel", TimerWheel::<u32>::new);
    timer_ops(c, "linked-wheel", linked::Wheel::new);
    timer_ops(c, "binary-heap", Heap::default);
    timer_ops(c, "btreemap", Tree::default);
    scan(c);
    memory(c);
}

criterion_group! {
    name = wheel;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20);
    targets = benches
}
criterion_main!(wheel);
