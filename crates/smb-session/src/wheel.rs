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
//! An entry whose deadline is `d` sits in the level of the highest 6-bit group
//! in which `d` and the wheel's current tick differ, in the slot named by that
//! group of `d`. Each level keeps a `u64` occupancy bitmap, so the next busy
//! slot is one `rotate_right` + `trailing_zeros`, and the lowest busy level
//! always holds the earliest deadline: [`TimerWheel::next_deadline`] is
//! O(levels). When a slot at level `L > 0` comes due its entries cascade to
//! lower levels; an entry cascades at most `LEVELS - 1` times, so the cost of
//! polling is proportional to what expires (plus those bounded cascades), never
//! to how many timers are pending.
//!
//! Entries live in a [`slab::Slab`] and are linked into their slot's
//! doubly-linked list by index, which makes insert, cancel and reschedule O(1)
//! without `unsafe`. Keys carry a generation, so a stale key is refused.
//!
//! Guarantees: an entry never fires before its deadline, and fires at the first
//! [`TimerWheel::poll`] whose `now` is at or past its deadline. A deadline
//! already past at insert fires at the next poll.

use slab::Slab;
use std::fmt;
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
const NIL: u32 = u32::MAX;
const PENDING: u8 = u8::MAX;

/// A handle to a pending timer: slab index plus generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerKey {
    index: u32,
    // Non-zero, so `Option<TimerKey>` is 8 bytes.
    generation: NonZeroU32,
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

#[derive(Debug)]
struct Entry<T> {
    deadline: u64,
    prev: u32,
    next: u32,
    generation: NonZeroU32,
    /// Level index, or `PENDING` for the list of entries already due.
    level: u8,
    value: T,
}

/// Mirrors the layout of a `slab` slot, for memory accounting only.
#[allow(dead_code)]
enum SlabSlot<T> {
    Vacant(usize),
    Occupied(T),
}

/// Bytes one timer occupies in the wheel's slab (for memory reports).
pub fn slot_size<T>() -> usize {
    std::mem::size_of::<SlabSlot<Entry<T>>>()
}

#[derive(Clone)]
struct Level {
    occupied: u64,
    head: [u32; SLOTS],
}

impl Level {
    const EMPTY: Level = Level {
        occupied: 0,
        head: [NIL; SLOTS],
    };
}

/// A hierarchical timing wheel; see the module documentation.
pub struct TimerWheel<T> {
    entries: Slab<Entry<T>>,
    levels: [Level; LEVELS],
    /// Entries whose deadline is at or before `elapsed`: they fire on the next poll.
    pending: u32,
    /// The current tick: every entry filed in a level has a deadline after it.
    elapsed: u64,
    generation: u32,
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
            .field("len", &self.entries.len())
            .field("pending", &(self.pending != NIL))
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
            entries: Slab::new(),
            levels: [const { Level::EMPTY }; LEVELS],
            pending: NIL,
            elapsed: tick,
            generation: 0,
        }
    }

    /// An empty wheel with room for `n` timers before it allocates.
    pub fn with_capacity(n: usize) -> Self {
        let mut w = Self::new();
        w.entries.reserve(n);
        w
    }

    /// The number of pending timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tick the wheel has advanced to (the largest `now` polled so far).
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Bytes of heap the wheel holds for its entries (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<SlabSlot<Entry<T>>>()
    }

    /// Files `value` to fire at `deadline` (ticks). A deadline at or before the
    /// current tick fires at the next poll. O(1).
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        self.generation = self.generation.wrapping_add(1).max(1);
        let generation = NonZeroU32::new(self.generation).unwrap_or(NonZeroU32::MIN);
        let index = self.entries.insert(Entry {
            deadline,
            prev: NIL,
            next: NIL,
            generation,
            level: PENDING,
            value,
        });
        // A slab index that does not fit u32 would need ~100 GiB of entries.
        let index = u32::try_from(index).expect("timer wheel holds fewer than 2^32 entries");
        debug_assert_ne!(index, NIL);
        self.link(index);
        TimerKey { index, generation }
    }

    fn entry(&self, key: TimerKey) -> Option<&Entry<T>> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.generation == key.generation)
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
        self.entry(key).map(|e| &e.value)
    }

    /// The value of a pending timer, mutably.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation)
            .map(|e| &mut e.value)
    }

    /// Removes a pending timer and returns its value; `None` for a stale key. O(1).
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.entry(key)?;
        self.unlink(key.index);
        Some(self.entries.remove(key.index as usize).value)
    }

    /// Moves a pending timer to `deadline`; `false` for a stale key. O(1).
    pub fn reschedule(&mut self, key: TimerKey, deadline: u64) -> bool {
        match self.entry(key) {
            None => false,
            Some(e) if e.deadline == deadline => true,
            Some(_) => {
                self.unlink(key.index);
                self.entries[key.index as usize].deadline = deadline;
                self.link(key.index);
                true
            }
        }
    }

    /// The earliest tick at which [`poll`](Self::poll) may have work: never
    /// later than the earliest deadline; exact when that deadline is less than
    /// 64 ticks away, else the start of the slot that must cascade first. A
    /// value at or before [`elapsed`](Self::elapsed) means "poll now". O(levels).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.pending != NIL {
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
            // the current slot is never busy (an entry there would be in a
            // lower level); at the top level it holds only entries due a full
            // turn (or more) later, so it comes last.
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
            if self.pending != NIL {
                let index = self.pending;
                self.unlink(index);
                let e = self.entries.remove(index as usize);
                return Some(Expired {
                    key: TimerKey {
                        index,
                        generation: e.generation,
                    },
                    deadline: e.deadline,
                    value: e.value,
                });
            }
            match self.next_expiration() {
                Some((level, slot, at)) if at <= now => self.process(level, slot, at),
                _ => {
                    if now > self.elapsed {
                        self.elapsed = now;
                    }
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

    /// Advances to `at`, the start of a due slot, and refiles its entries
    /// (into the pending list or a lower level).
    fn process(&mut self, level: usize, slot: usize, at: u64) {
        debug_assert!(at >= self.elapsed, "wheel went back: {at} < {self:?}");
        self.elapsed = at;
        let lv = &mut self.levels[level];
        let mut index = lv.head[slot];
        lv.head[slot] = NIL;
        lv.occupied &= !(1u64 << slot);
        while index != NIL {
            let e = &mut self.entries[index as usize];
            debug_assert!(
                e.deadline >= at,
                "wheel: entry due {} found in slot {slot} of level {level} due {at}",
                e.deadline
            );
            let next = e.next;
            e.prev = NIL;
            e.next = NIL;
            self.link(index);
            index = next;
        }
    }

    /// Links an unlinked entry into the pending list or its slot.
    fn link(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        let head = if deadline <= self.elapsed {
            self.entries[index as usize].level = PENDING;
            &mut self.pending
        } else {
            let level = level_for(self.elapsed, deadline);
            let slot = slot_for(deadline, level);
            self.entries[index as usize].level = level as u8;
            let lv = &mut self.levels[level];
            lv.occupied |= 1u64 << slot;
            &mut lv.head[slot]
        };
        let old = *head;
        *head = index;
        let e = &mut self.entries[index as usize];
        e.prev = NIL;
        e.next = old;
        if old != NIL {
            self.entries[old as usize].prev = index;
        }
    }

    /// Unlinks an entry from whatever list holds it.
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
            let level = level as usize;
            let slot = slot_for(deadline, level);
            debug_assert_eq!(
                self.levels[level].head[slot], index,
                "wheel: bad list head; {self:?}"
            );
            let lv = &mut self.levels[level];
            lv.head[slot] = next;
            if next == NIL {
                lv.occupied &= !(1u64 << slot);
            }
        }
        let e = &mut self.entries[index as usize];
        e.prev = NIL;
        e.next = NIL;
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
            assert!(nd > now || w.pending != NIL);
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The wheel against a sorted map: the same timers fire at the same polls,
        /// never before their deadline.
        #[test]
        fn model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut w = TimerWheel::new();
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
