//! A hierarchical timing wheel for session deadlines.
//!
//! Time is measured in abstract *ticks* (the session table uses 1 ms by
//! default). The wheel has [`LEVELS`] levels of 64 slots; level `L` slots are
//! `64^L` ticks wide:
//!
//! ```text
//! level  slot width        level range
//!   0    1 tick            64 ticks          (64 ms at 1 ms/tick)
//!   1    64                4 096             (~4 s)
//!   2    4 096             262 144           (~4.4 min)
//!   3    262 144           16 777 216        (~4.7 h)
//!   4    16 777 216        1 073 741 824     (~12.4 days)
//!   5    1 073 741 824     68 719 476 736    (~795 days)
//! ```
//!
//! The maximum autodisconnect (65535 minutes = 3 932 100 000 ms) fits in level
//! 5. Deadlines further away than [`MAX_SPAN`] are parked in the top level and
//! filed again when their slot comes round, so any `u64` deadline is accepted.
//!
//! # Layout: entries and filing references
//!
//! A timer is an *entry* in a slab (`Vec` plus a free list of indices):
//! its true deadline, the generation its [`TimerKey`] carries, a *stamp*, and
//! its value (24 bytes for the session table's values). A slot does not link
//! entries; it holds a `Vec` of 16-byte *references* `(deadline, index,
//! stamp)`. A reference is valid while its entry is occupied and carries the
//! same stamp; every pending timer has exactly one valid reference. Stamps
//! only keep stale references from being filed again; correctness does not
//! rest on them (should the `u32` counter wrap onto a stale reference): an
//! entry fires only while occupied and once its own deadline has come, and
//! firing frees it, so it fires once.
//!
//! A reference whose deadline is `d` sits in the level of the highest 6-bit
//! group in which `d` and the wheel's current tick differ, in the slot named by
//! that group of `d`. Each level keeps a `u64` occupancy bitmap, so the next
//! busy slot is one `rotate_right` + `trailing_zeros`, and the lowest busy
//! level always holds the earliest reference: [`TimerWheel::next_deadline`] is
//! O(levels). When a slot at level `L > 0` comes due its references cascade to
//! lower levels by their own deadline, reading the slot's `Vec` in order; a
//! reference cascades at most `LEVELS - 1` times.
//!
//! # Why references, and lazy cancel / reschedule
//!
//! With a million timers the slab is far larger than the caches, so each
//! random entry touched is a memory miss; an intrusive doubly-linked list pays
//! three (the entry and both neighbours) per cancel and one per entry per
//! cascade. Here:
//!
//! - `insert` writes one entry and appends one reference to a slot's tail;
//! - `cancel` touches only the entry: it takes the value and frees the index;
//!   the reference goes stale and is dropped when met;
//! - `reschedule` to a later deadline only stores the deadline in the entry
//!   (like the session table's lazy re-arm): when the old reference comes due
//!   the entry is filed again at its true deadline. To an earlier deadline it
//!   gives the entry a new stamp and files a new reference (the old one goes
//!   stale);
//! - a reference is checked against its entry when its level-1 slot fires
//!   (it is then due within 64 ticks): one branch-free loop of independent
//!   reads over the slot, so the misses overlap, and the entries are in cache
//!   when they fire. Cascades above level 1 touch no entry.
//!
//! Stale references are bounded: when they outnumber the live timers (plus
//! [`COMPACT_SLACK`]) every slot is compacted, an O(references) pass paid for
//! by the cancels that made them, so after every insert, cancel, reschedule
//! and completed poll there are at most `2 * len() + COMPACT_SLACK + 1`
//! references. The pass is a pause proportional to the references
//! (milliseconds at a million timers); it comes only after more cancels (or
//! earlier reschedules) than live timers within one timeout window. A wheel whose last timer goes drops every reference
//! at once. A slot of level 0 or 1 (due again within 4 s) keeps its buffer
//! after firing, up to 1024 references; a slot of a higher level (due again
//! only after minutes) hands its buffer to a small pool that the next
//! higher-level slot to be filed draws from, so memory follows the slots
//! occupied at once rather than every slot ever used; one larger spare
//! buffer is recycled. Steady state does not allocate.
//!
//! Guarantees: an entry never fires before its deadline, and fires at the first
//! [`TimerWheel::poll`] whose `now` is at or past its deadline. A deadline
//! already past at insert fires at the next poll. [`TimerWheel::next_deadline`]
//! is never later than the earliest deadline but may be earlier (a stale or a
//! lazily moved reference): the caller then polls, and nothing fires.

use std::fmt;
use std::mem;
use std::num::NonZeroU32;

/// Number of levels.
pub const LEVELS: usize = 6;
const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
/// Ticks covered by the whole wheel: deadlines closer than this are filed
/// directly in their final slot.
pub const MAX_SPAN: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);
// The largest autodisconnect (65535 minutes at 1 ms ticks) fits the wheel.
const _: () = assert!(crate::autodisconnect::MAX_MINUTES * 60_000 < MAX_SPAN);
/// Stale references tolerated beyond one per live timer before the wheel
/// compacts its slots.
pub const COMPACT_SLACK: usize = 1024;
/// A slot keeps its buffer after firing only up to this many references
/// (16 KiB); larger buffers go to the one spare, so idle slots hold little.
const KEEP_CAPACITY: usize = 1024;
/// Levels whose slots keep their buffer after firing (level 1's slots come
/// round every 4.1 s at 1 ms ticks); higher ones return it to the pool.
const KEEP_LEVELS: usize = 2;
/// Buffers the pool of higher-level slots keeps.
const POOL_BUFFERS: usize = 16;

/// A handle to a pending timer: slab index plus generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerKey {
    index: u32,
    // Non-zero, so `Option<TimerKey>` is 8 bytes.
    generation: NonZeroU32,
}

impl TimerKey {
    /// The key as one `u64`, for an owner that keeps keys of several
    /// kinds (the AF_XDP transport's TCP timers, `smb-usertcp`).
    pub fn to_raw(self) -> u64 {
        (u64::from(self.generation.get()) << 32) | u64::from(self.index)
    }

    /// A key from [`TimerKey::to_raw`]; `None` for a value no key has. A
    /// key of a timer that is gone names nothing: `cancel` ignores it.
    pub fn from_raw(raw: u64) -> Option<TimerKey> {
        Some(TimerKey {
            index: raw as u32,
            generation: NonZeroU32::new((raw >> 32) as u32)?,
        })
    }
}

/// An entry handed out by [`TimerWheel::poll_one`].
#[derive(Debug, PartialEq, Eq)]
pub struct Expired<T> {
    /// The key the timer had (now stale).
    pub key: TimerKey,
    /// The deadline it was filed for.
    pub deadline: u64,
    /// Its value.
    pub value: T,
}

/// A timer. Vacant when `value` is `None` (its index is then on the free list).
/// `repr(C)` keeps what `cancel` reads (generation, value) in the first 16
/// bytes, so fewer 24-byte entries straddle two cache lines.
#[derive(Debug)]
#[repr(C)]
struct Entry<T> {
    generation: NonZeroU32,
    /// Matches the stamp of the entry's one valid reference.
    stamp: u32,
    value: Option<T>,
    /// The true deadline (a reference may be filed earlier: lazy reschedule).
    deadline: u64,
}

/// A filing of entry `index` in a slot (or the pending list).
#[derive(Clone, Copy, Debug)]
struct Ref {
    deadline: u64,
    index: u32,
    stamp: u32,
}

/// Marks each stale reference in `refs` with stamp 0 (never a real stamp) and,
/// with `follow`, sets each valid one's deadline to its entry's (which a lazy
/// reschedule may have moved later). Branch-free, so the reads overlap.
fn mark_stale<T>(entries: &[Entry<T>], refs: &mut [Ref], follow: bool) {
    for r in refs.iter_mut() {
        let e = &entries[r.index as usize];
        let valid = e.stamp == r.stamp && e.value.is_some();
        r.stamp = if valid { r.stamp } else { 0 };
        r.deadline = if follow && valid {
            e.deadline
        } else {
            r.deadline
        };
    }
}

/// Bytes one timer occupies in the wheel: its entry, its reference and its
/// free-list word (for memory reports; vector slack and stale references come
/// on top, see [`TimerWheel::heap_bytes`]).
pub fn slot_size<T>() -> usize {
    mem::size_of::<Entry<T>>() + mem::size_of::<Ref>() + mem::size_of::<u32>()
}

#[derive(Debug)]
struct Level {
    occupied: u64,
    slots: [Vec<Ref>; SLOTS],
}

impl Default for Level {
    fn default() -> Self {
        Level {
            occupied: 0,
            slots: std::array::from_fn(|_| Vec::new()),
        }
    }
}

/// A hierarchical timing wheel; see the module documentation.
pub struct TimerWheel<T> {
    entries: Vec<Entry<T>>,
    /// Vacant entry indices (LIFO, so a freed entry, still in cache, is reused first).
    free: Vec<u32>,
    levels: Box<[Level; LEVELS]>,
    /// References whose deadline is at or before `elapsed`: checked on the next poll.
    pending: Vec<Ref>,
    /// A cleared buffer kept for the next slot that outgrows its own.
    spare: Vec<Ref>,
    /// Cleared buffers of fired higher-level slots, for the next one filed.
    pool: Vec<Vec<Ref>>,
    /// The current tick: every reference filed in a level is due after it.
    elapsed: u64,
    /// Occupied entries.
    live: usize,
    /// References whose entry was freed or given a new stamp.
    stale: usize,
    /// Source of generations and stamps.
    counter: u32,
    /// [`COMPACT_SLACK`]; tests lower it to exercise compaction.
    slack: usize,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let occupied: Vec<String> = self
            .levels
            .iter()
            .map(|l| format!("{:016x}", l.occupied))
            .collect();
        f.debug_struct("TimerWheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.live)
            .field("stale", &self.stale)
            .field("pending", &self.pending.len())
            .field("occupied", &occupied)
            .finish()
    }
}

/// The slot of `deadline` at `level`.
fn slot_for(deadline: u64, level: usize) -> usize {
    ((deadline >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1)
}

/// The level an entry due at `deadline` belongs in when the wheel is at `elapsed`.
fn level_for(elapsed: u64, deadline: u64) -> usize {
    let mut masked = (elapsed ^ deadline) | (SLOTS as u64 - 1);
    if masked >= MAX_SPAN {
        masked = MAX_SPAN - 1;
    }
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

/// Ticks covered by one slot at `level`.
fn slot_width(level: usize) -> u64 {
    1 << (level as u32 * SLOT_BITS)
}

impl<T> TimerWheel<T> {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        Self::starting_at(0)
    }

    /// An empty wheel whose current tick is `tick`.
    pub fn starting_at(tick: u64) -> Self {
        TimerWheel {
            entries: Vec::new(),
            free: Vec::new(),
            levels: Box::default(),
            pending: Vec::new(),
            spare: Vec::new(),
            pool: Vec::new(),
            elapsed: tick,
            live: 0,
            stale: 0,
            counter: 0,
            slack: COMPACT_SLACK,
        }
    }

    /// An empty wheel with room for `n` timers before its slab allocates.
    pub fn with_capacity(n: usize) -> Self {
        let mut w = Self::new();
        w.entries.reserve(n);
        w
    }

    /// The number of pending timers.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The tick the wheel has advanced to (the largest `now` polled so far).
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Bytes of heap the wheel holds (capacities, not lengths): entries, free
    /// list, and every slot's reference buffer. O(slots).
    pub fn heap_bytes(&self) -> usize {
        let refs: usize = self
            .levels
            .iter()
            .flat_map(|l| l.slots.iter())
            .chain([&self.pending, &self.spare])
            .chain(self.pool.iter())
            .map(Vec::capacity)
            .sum();
        self.entries.capacity() * mem::size_of::<Entry<T>>()
            + self.free.capacity() * mem::size_of::<u32>()
            + self.pool.capacity() * mem::size_of::<Vec<Ref>>()
            + refs * mem::size_of::<Ref>()
    }

    fn next_stamp(&mut self) -> NonZeroU32 {
        self.counter = self.counter.wrapping_add(1);
        NonZeroU32::new(self.counter).unwrap_or_else(|| {
            self.counter = 1;
            NonZeroU32::MIN
        })
    }

    /// Files `value` to fire at `deadline` (ticks). A deadline at or before the
    /// current tick fires at the next poll. O(1) amortized.
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let generation = self.next_stamp();
        let entry = Entry {
            generation,
            stamp: generation.get(),
            value: Some(value),
            deadline,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index as usize] = entry;
                index
            }
            None => {
                // A slab index that does not fit u32 would need ~100 GiB of entries.
                let index = u32::try_from(self.entries.len())
                    .expect("timer wheel holds fewer than 2^32 entries");
                self.entries.push(entry);
                index
            }
        };
        self.live += 1;
        self.file(Ref {
            deadline,
            index,
            stamp: generation.get(),
        });
        TimerKey { index, generation }
    }

    fn entry(&self, key: TimerKey) -> Option<&Entry<T>> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.generation == key.generation && e.value.is_some())
    }

    fn entry_mut(&mut self, key: TimerKey) -> Option<&mut Entry<T>> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation && e.value.is_some())
    }

    /// Whether `key` names a pending timer.
    pub fn contains(&self, key: TimerKey) -> bool {
        self.entry(key).is_some()
    }

    /// The deadline of a pending timer.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.entry(key).map(|e| e.deadline)
    }

    /// The value of a pending timer.
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        self.entry(key).and_then(|e| e.value.as_ref())
    }

    /// The value of a pending timer, mutably.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.entry_mut(key).and_then(|e| e.value.as_mut())
    }

    /// Removes a pending timer and returns its value; `None` for a stale key.
    /// O(1) amortized: touches only the timer's entry (its reference goes stale).
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let value = self.entry_mut(key)?.value.take()?;
        self.free.push(key.index);
        self.live -= 1;
        self.stale += 1;
        self.bound_stale();
        Some(value)
    }

    /// Moves a pending timer to `deadline`; `false` for a stale key. O(1)
    /// amortized. A later deadline is only stored (the timer is filed again
    /// when its current filing comes due); an earlier one files it anew.
    pub fn reschedule(&mut self, key: TimerKey, deadline: u64) -> bool {
        match self.entry_mut(key) {
            None => return false,
            Some(e) if deadline >= e.deadline => {
                e.deadline = deadline;
                return true;
            }
            Some(_) => {}
        }
        let stamp = self.next_stamp().get();
        let e = &mut self.entries[key.index as usize];
        e.deadline = deadline;
        e.stamp = stamp;
        self.stale += 1;
        self.file(Ref {
            deadline,
            index: key.index,
            stamp,
        });
        self.bound_stale();
        true
    }

    /// Keeps stale references bounded (see the module documentation).
    fn bound_stale(&mut self) {
        if self.live == 0 {
            self.clear_refs();
        } else if self.stale > self.live + self.slack {
            self.compact();
        }
    }

    /// Drops every reference (all are stale when no timer is live).
    fn clear_refs(&mut self) {
        debug_assert_eq!(self.live, 0);
        for lv in self.levels.iter_mut() {
            while lv.occupied != 0 {
                let slot = lv.occupied.trailing_zeros() as usize;
                lv.occupied &= lv.occupied - 1;
                lv.slots[slot].clear();
            }
        }
        self.pending.clear();
        self.stale = 0;
    }

    /// Drops every stale reference. O(references).
    fn compact(&mut self) {
        let entries = &self.entries;
        for lv in self.levels.iter_mut() {
            let mut busy = lv.occupied;
            while busy != 0 {
                let slot = busy.trailing_zeros() as usize;
                busy &= busy - 1;
                let refs = &mut lv.slots[slot];
                mark_stale(entries, refs, false);
                refs.retain(|r| r.stamp != 0);
                if refs.is_empty() {
                    lv.occupied &= !(1u64 << slot);
                }
            }
        }
        mark_stale(entries, &mut self.pending, false);
        self.pending.retain(|r| r.stamp != 0);
        self.stale = 0;
    }

    /// The earliest tick at which [`poll`](Self::poll) may have work: never
    /// later than the earliest deadline; often exact, but earlier when the
    /// first filing is stale or was moved later, or is a slot that must cascade
    /// first. A value at or before [`elapsed`](Self::elapsed) means "poll now".
    /// `None` when no timer is pending. O(levels).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.live == 0 {
            return None;
        }
        if !self.pending.is_empty() {
            return Some(self.elapsed);
        }
        self.next_expiration().map(|(_, _, at)| at)
    }

    /// The first busy slot: (level, slot, tick at which it is due).
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        for (level, lv) in self.levels.iter().enumerate() {
            if lv.occupied == 0 {
                continue;
            }
            let width = slot_width(level);
            // Search from the slot after the current one: below the top level
            // the current slot is never busy (a reference there would be in a
            // lower level); at the top level it holds only references due a
            // full turn (or more) later, so it comes last.
            let from = (slot_for(self.elapsed, level) + 1) % SLOTS;
            let zeros = lv.occupied.rotate_right(from as u32).trailing_zeros() as usize;
            let slot = (from + zeros) % SLOTS;
            let range = width << SLOT_BITS;
            let start = self.elapsed & !(range - 1);
            let mut at = start + slot as u64 * width;
            if at <= self.elapsed {
                // Only the top level wraps round: the slot is in its next turn.
                debug_assert_eq!(
                    level,
                    LEVELS - 1,
                    "wheel: slot {slot} at level {level} is not after elapsed {}; {self:?}",
                    self.elapsed
                );
                at = at.saturating_add(range);
            }
            return Some((level, slot, at));
        }
        None
    }

    /// Hands over the next timer due at or before `now`, if any, advancing the
    /// wheel. Between calls the caller may insert, cancel or reschedule.
    pub fn poll_one(&mut self, now: u64) -> Option<Expired<T>> {
        loop {
            while let Some(r) = self.pending.pop() {
                let due = self.elapsed.max(now);
                let e = &mut self.entries[r.index as usize];
                if e.stamp != r.stamp || e.value.is_none() {
                    self.stale = self.stale.saturating_sub(1);
                    continue;
                }
                if e.deadline > due {
                    // Moved later since it was filed: file it at its deadline.
                    let deadline = e.deadline;
                    self.file(Ref { deadline, ..r });
                    continue;
                }
                let Some(value) = e.value.take() else {
                    continue;
                };
                let (key, deadline) = (
                    TimerKey {
                        index: r.index,
                        generation: e.generation,
                    },
                    e.deadline,
                );
                self.free.push(r.index);
                self.live -= 1;
                return Some(Expired {
                    key,
                    deadline,
                    value,
                });
            }
            match self.next_expiration() {
                Some((level, slot, at)) if at <= now => self.process(level, slot, at),
                _ => {
                    if now > self.elapsed {
                        self.elapsed = now;
                    }
                    // Firing lowered the live count: keep the bound.
                    self.bound_stale();
                    return None;
                }
            }
        }
    }

    /// Hands every timer due at or before `now` to `fire`, in deadline order
    /// up to ties; returns how many fired.
    pub fn poll(&mut self, now: u64, fire: &mut impl FnMut(TimerKey, T)) -> usize {
        let mut n = 0;
        while let Some(e) = self.poll_one(now) {
            fire(e.key, e.value);
            n += 1;
        }
        n
    }

    /// Advances to `at`, the start of a due slot, and refiles its references
    /// (into the pending list or a lower level). The references of a level-1
    /// slot, all due within 64 ticks, are first checked against their entries
    /// in one branch-free pass (independent reads, so the misses overlap).
    fn process(&mut self, level: usize, slot: usize, at: u64) {
        debug_assert!(at >= self.elapsed, "wheel went back: {at} < {self:?}");
        self.elapsed = at;
        let lv = &mut self.levels[level];
        let mut refs = mem::take(&mut lv.slots[slot]);
        lv.occupied &= !(1u64 << slot);
        if level == 1 {
            mark_stale(&self.entries, &mut refs, true);
        }
        for &r in &refs {
            debug_assert!(
                r.deadline >= at,
                "wheel: reference due {} found in slot {slot} of level {level} due {at}",
                r.deadline
            );
            if r.stamp == 0 {
                self.stale = self.stale.saturating_sub(1);
            } else {
                self.file(r);
            }
        }
        refs.clear();
        let home = &mut self.levels[level].slots[slot];
        if refs.capacity() <= KEEP_CAPACITY && home.capacity() == 0 {
            if level < KEEP_LEVELS {
                *home = refs;
            } else if self.pool.len() < POOL_BUFFERS {
                self.pool.push(refs);
            }
        } else if refs.capacity() > self.spare.capacity() {
            self.spare = refs;
        }
    }

    /// Files a reference in the pending list or its slot.
    #[inline]
    fn file(&mut self, r: Ref) {
        if r.deadline <= self.elapsed {
            self.pending.push(r);
            return;
        }
        let level = level_for(self.elapsed, r.deadline);
        let slot = slot_for(r.deadline, level);
        let lv = &mut self.levels[level];
        lv.occupied |= 1u64 << slot;
        let refs = &mut lv.slots[slot];
        if refs.capacity() == 0 {
            if let Some(b) = self.pool.pop() {
                *refs = b;
            }
        }
        if refs.len() == refs.capacity() && self.spare.capacity() > 2 * refs.len() {
            // Grow into the spare buffer rather than allocate.
            let mut spare = mem::take(&mut self.spare);
            spare.extend_from_slice(refs);
            mem::swap(refs, &mut spare);
            spare.clear();
            if spare.capacity() > KEEP_CAPACITY {
                self.spare = spare;
            }
        }
        refs.push(r);
    }

    /// References held (valid and stale), for tests.
    #[cfg(test)]
    fn ref_count(&self) -> usize {
        self.levels
            .iter()
            .flat_map(|l| l.slots.iter())
            .map(Vec::len)
            .sum::<usize>()
            + self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    fn drain(w: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
        let mut v = Vec::new();
        w.poll(now, &mut |_, x| v.push(x));
        v.sort_unstable();
        v
    }

    #[test]
    fn level_table_matches_doc() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, 65_535 * 60_000), 5);
        assert_eq!(level_for(0, u64::MAX), LEVELS - 1);
        assert_eq!(level_for(63, 64), 1);
    }

    #[test]
    fn fires_exactly_at_deadline() {
        let mut w = TimerWheel::new();
        for d in [1u64, 5, 63, 64, 65, 4095, 4096, 100_000, 3_932_100_000] {
            w.insert(d, d as u32);
        }
        let mut fired = Vec::new();
        let mut now = 0;
        while !w.is_empty() {
            let nd = w.next_deadline().unwrap();
            assert!(nd > now || !w.pending.is_empty());
            now = nd;
            w.poll(now, &mut |k, v| {
                assert!(!fired.contains(&k));
                fired.push(k);
                assert_eq!(u64::from(v), now, "fired at {now}, due {v}");
            });
        }
        assert_eq!(fired.len(), 9);
    }

    #[test]
    fn past_deadline_fires_at_next_poll() {
        let mut w = TimerWheel::starting_at(1000);
        w.insert(10, 1);
        w.insert(1000, 2);
        assert_eq!(w.next_deadline(), Some(1000));
        assert_eq!(drain(&mut w, 1000), vec![1, 2]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn cancel_and_reschedule_with_stale_keys() {
        let mut w = TimerWheel::new();
        let a = w.insert(100, 1);
        let b = w.insert(200, 2);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None);
        assert!(!w.reschedule(a, 5));
        let c = w.insert(300, 3); // likely reuses a's slot
        assert_eq!(w.get(a), None);
        assert!(w.reschedule(b, 50));
        assert_eq!(w.deadline(b), Some(50));
        assert_eq!(drain(&mut w, 60), vec![2]);
        assert_eq!(drain(&mut w, 299), Vec::<u32>::new());
        assert_eq!(drain(&mut w, 300), vec![3]);
        assert!(!w.contains(c));
    }

    #[test]
    fn far_deadline_beyond_span_is_not_early() {
        let mut w = TimerWheel::new();
        let far = MAX_SPAN * 3 + 17;
        w.insert(far, 9);
        let mut now = 0;
        let mut steps = 0;
        loop {
            let nd = w.next_deadline().unwrap();
            now = now.max(nd);
            let got = drain(&mut w, now);
            steps += 1;
            if !got.is_empty() {
                assert_eq!(now, far);
                break;
            }
            assert!(steps < 64, "too many wakeups; {w:?}");
        }
    }

    #[test]
    fn cost_is_what_expires() {
        // One timer due soon among many far ones: polling it touches no far entry.
        let mut w = TimerWheel::new();
        for i in 0..10_000u32 {
            w.insert(1_000_000 + u64::from(i), i);
        }
        w.insert(10, 99_999);
        assert_eq!(w.next_deadline(), Some(10));
        assert_eq!(drain(&mut w, 10), vec![99_999]);
        assert_eq!(w.len(), 10_000);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Cancel(usize),
        Reschedule(usize, u64),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let delay = prop_oneof![0u64..70, 0u64..5000, 0u64..300_000, 0u64..(MAX_SPAN * 2)];
        prop_oneof![
            4 => delay.clone().prop_map(Op::Insert),
            1 => any::<usize>().prop_map(Op::Cancel),
            2 => (any::<usize>(), delay).prop_map(|(i, d)| Op::Reschedule(i, d)),
            3 => prop_oneof![0u64..3, 0u64..100, 0u64..10_000, 0u64..(MAX_SPAN / 8)]
                .prop_map(Op::Advance),
        ]
    }

    #[test]
    fn reschedule_later_is_lazy_and_never_early() {
        let mut w = TimerWheel::new();
        let k = w.insert(100, 1u32);
        assert!(w.reschedule(k, 5_000));
        assert_eq!(w.ref_count(), 1, "a later deadline files nothing new");
        assert_eq!(w.deadline(k), Some(5_000));
        // The old filing comes due: nothing fires, the timer is filed again.
        assert!(w.next_deadline().unwrap() <= 100);
        assert_eq!(drain(&mut w, 100), Vec::<u32>::new());
        assert_eq!(drain(&mut w, 4_999), Vec::<u32>::new());
        assert!(w.contains(k));
        assert_eq!(drain(&mut w, 5_000), vec![1]);
        // Earlier again: a new filing; the old one goes stale and is dropped.
        let k = w.insert(90_000, 2);
        assert!(w.reschedule(k, 6_000));
        assert_eq!((w.ref_count(), w.stale), (2, 1));
        assert_eq!(drain(&mut w, 6_000), vec![2]);
        assert_eq!(w.next_deadline(), None);
        assert_eq!(w.ref_count(), 0, "an empty wheel holds no references");
    }

    #[test]
    fn stale_references_stay_bounded() {
        let mut w = TimerWheel::new();
        let mut keys: Vec<TimerKey> = (0..2_000u32)
            .map(|i| w.insert(10_000 + u64::from(i), i))
            .collect();
        // Cancel and refile every timer many times without time moving: only
        // compaction can drop the stale references.
        for round in 0..20u64 {
            for (i, k) in keys.iter_mut().enumerate() {
                assert_eq!(w.cancel(*k), Some(i as u32));
                *k = w.insert(20_000 - round - i as u64, i as u32);
                assert!(w.reschedule(*k, 5_000 + i as u64));
                assert!(w.ref_count() <= 2 * w.len() + COMPACT_SLACK + 2, "{w:?}");
            }
        }
        assert_eq!(w.len(), 2_000);
        let bytes = w.heap_bytes();
        assert!(
            bytes < 2_000 * 64 + COMPACT_SLACK * 64 + 64 * 1024,
            "{bytes}"
        );
        let mut fired = 0;
        let mut now = 0;
        while let Some(nd) = w.next_deadline() {
            now = now.max(nd);
            w.poll(now, &mut |_, i| {
                assert_eq!(now, 5_000 + u64::from(i));
                fired += 1;
            });
        }
        assert_eq!(fired, 2_000);
    }

    #[test]
    fn cancel_of_a_due_timer_before_poll() {
        let mut w = TimerWheel::new();
        let a = w.insert(5, 1u32);
        let b = w.insert(5, 2);
        assert_eq!(drain(&mut w, 4), Vec::<u32>::new());
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(
            w.poll_one(5).map(|e| (e.key, e.deadline, e.value)),
            Some((b, 5, 2))
        );
        assert_eq!(w.poll_one(5), None);
        // The freed slot is reused with a new generation.
        let c = w.insert(7, 3);
        assert_ne!(c, a);
        assert_ne!(c, b);
        assert_eq!(w.cancel(b), None);
        assert_eq!(w.get(c), Some(&3));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The wheel against a sorted map: the same timers fire at the same polls,
        /// never before their deadline.
        #[test]
        fn model(ops in proptest::collection::vec(op(), 1..200), slack in 0usize..6) {
            let mut w = TimerWheel::new();
            // a small slack makes compaction run during the sequence
            w.slack = slack;
            // reference: (deadline, id) -> ()
            let mut model: BTreeMap<(u64, u32), ()> = BTreeMap::new();
            let mut keys: HashMap<u32, (TimerKey, u64)> = HashMap::new();
            let mut live: Vec<u32> = Vec::new();
            let mut now = 0u64;
            let mut next_id = 0u32;
            for op in ops {
                match op {
                    Op::Insert(d) => {
                        // deadlines may lie in the past (d small, now large)
                        let deadline = now.saturating_sub(3) + d;
                        let k = w.insert(deadline, next_id);
                        model.insert((deadline, next_id), ());
                        keys.insert(next_id, (k, deadline));
                        live.push(next_id);
                        next_id += 1;
                    }
                    Op::Cancel(i) if !live.is_empty() => {
                        let id = live.swap_remove(i % live.len());
                        let (k, d) = keys.remove(&id).unwrap();
                        prop_assert_eq!(w.cancel(k), Some(id));
                        prop_assert!(model.remove(&(d, id)).is_some());
                    }
                    Op::Reschedule(i, d) if !live.is_empty() => {
                        let id = live[i % live.len()];
                        let (k, old) = keys[&id];
                        let deadline = now + d;
                        prop_assert!(w.reschedule(k, deadline));
                        model.remove(&(old, id));
                        model.insert((deadline, id), ());
                        keys.insert(id, (k, deadline));
                    }
                    Op::Advance(dt) => {
                        now += dt;
                        // next_deadline is never after the earliest deadline
                        if let Some(&(d, _)) = model.keys().next() {
                            let nd = w.next_deadline().unwrap();
                            prop_assert!(nd <= d.max(w.elapsed()), "next {} > earliest {}", nd, d);
                        } else {
                            prop_assert_eq!(w.next_deadline(), None);
                        }
                        let mut fired = Vec::new();
                        w.poll(now, &mut |k, id| fired.push((k, id)));
                        let mut expect: Vec<u32> = Vec::new();
                        while let Some((&(d, id), _)) = model.iter().next() {
                            if d > now { break; }
                            model.remove(&(d, id));
                            expect.push(id);
                        }
                        let mut got: Vec<u32> = fired.iter().map(|&(_, id)| id).collect();
                        got.sort_unstable();
                        expect.sort_unstable();
                        prop_assert_eq!(&got, &expect);
                        for (k, id) in fired {
                            let (k2, _) = keys.remove(&id).unwrap();
                            prop_assert_eq!(k, k2);
                            live.retain(|&x| x != id);
                        }
                    }
                    _ => {}
                }
                prop_assert_eq!(w.len(), model.len());
                prop_assert!(w.ref_count() <= 2 * w.len() + slack + 1);
            }
        }

        /// Stepping one tick at a time, every timer fires in [deadline, deadline + 1 tick].
        #[test]
        fn fires_within_one_tick(deadlines in proptest::collection::vec(0u64..20_000, 1..64)) {
            let mut w = TimerWheel::new();
            for (i, &d) in deadlines.iter().enumerate() {
                w.insert(d, i as u32);
            }
            let mut now = 0;
            let mut seen = 0;
            while !w.is_empty() {
                w.poll(now, &mut |_, i| {
                    let d = deadlines[i as usize];
                    assert!(now >= d && now <= d + 1, "due {d} fired {now}");
                    seen += 1;
                });
                now += 1;
            }
            prop_assert_eq!(seen, deadlines.len());
        }
    }
}
