//! TCP keep-alive on the xdp transport with the schedule the settings
//! promise (`tcp-keepalive` idle time, then `tcp-keepalive-count` probes
//! `tcp-keepalive-interval` apart; RFC 9293 section 3.8.4, RFC 1122
//! section 4.2.3.6), as the kernel's TCP keeps it on the other transports.
//!
//! smoltcp has a single keep-alive period: it probes after that much
//! silence and then again every period. Given the idle time, a connection
//! gets its first probe after `idle` and its next only after `2 x idle`,
//! past the give-up time (`idle + interval x count`, smoltcp's timeout) for
//! any setting where `interval x count <= idle` (the defaults, 2 min then
//! 6 x 10 s, among them): one lost probe then drops a live client. So the
//! sockets run without smoltcp's keep-alive, and this watch starts it, with
//! the *interval* as its period, once a connection has been silent for the
//! idle time; smoltcp sends the first probe at once (enabling keep-alive on
//! an idle socket arms it) and the next ones `interval` apart, and its
//! timeout still ends the connection when nothing answers. The first
//! segment heard from the peer turns it off again (smoltcp has by then
//! filed one more probe `interval` after that segment; it goes, once, and
//! is answered).
//!
//! The idle deadlines are timers on the shard's own wheel (the one that
//! reaps sessions and runs TCP's timers, [`Wheel`]), one per watched
//! connection: O(1) to file and to cancel. They are corrected lazily: one
//! that comes due for a connection heard from since is filed again at its
//! new deadline, so what a batch of segments costs on the hot path is one
//! map look-up per connection it touched. About 100 bytes per connection
//! (two map entries and the wheel's).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The token the watch's timers carry on the shard's wheel (the TCP
/// stack's carry a flow index, which never reaches it).
pub(super) const KEEPALIVE_TOKEN: u32 = u32::MAX;

/// Where the watch files its deadlines: the shard's timer wheel
/// (`Engine::schedule_transport`). A timer comes due no earlier than its
/// instant and is handed back to [`KeepAliveWatch::fired`] by its key.
pub(super) trait Wheel {
    /// File a timer due at `at`; its key.
    fn insert(&mut self, at: Instant) -> u64;
    /// Cancel the timer of `key` (one that is gone is ignored).
    fn cancel(&mut self, key: u64);
}

/// What is watched of one connection.
#[derive(Debug, Clone, Copy)]
struct Watch {
    /// When the peer was last heard from.
    heard: Instant,
    /// Probing (smoltcp's keep-alive on, every `interval`).
    probing: bool,
    /// The idle deadline's timer on the wheel (none while probing).
    timer: Option<u64>,
}

/// The keep-alive watch of one shard, over connections named by `K` (the
/// stack's `FlowId`).
#[derive(Debug)]
pub(super) struct KeepAliveWatch<K> {
    idle: Duration,
    interval: Duration,
    flows: HashMap<K, Watch>,
    /// Whose each filed timer is.
    filed: HashMap<u64, K>,
}

impl<K: Copy + Eq + Hash> KeepAliveWatch<K> {
    /// Probes after `idle` of silence, then every `interval`.
    pub(super) fn new(idle: Duration, interval: Duration) -> KeepAliveWatch<K> {
        KeepAliveWatch {
            idle,
            interval,
            flows: HashMap::new(),
            filed: HashMap::new(),
        }
    }

    /// The period smoltcp probes with once probing started.
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    fn file(&mut self, wheel: &mut impl Wheel, at: Instant, id: K) -> u64 {
        let key = wheel.insert(at);
        self.filed.insert(key, id);
        key
    }

    /// Watch an established connection, just heard from.
    pub(super) fn watch(&mut self, id: K, now: Instant, wheel: &mut impl Wheel) {
        if self.flows.contains_key(&id) {
            return;
        }
        let key = self.file(wheel, now + self.idle, id);
        self.flows.insert(
            id,
            Watch {
                heard: now,
                probing: false,
                timer: Some(key),
            },
        );
    }

    /// A segment came from the peer. `true` when the connection was being
    /// probed: the caller turns smoltcp's keep-alive off again.
    pub(super) fn heard(&mut self, id: K, now: Instant, wheel: &mut impl Wheel) -> bool {
        let Some(w) = self.flows.get_mut(&id) else {
            return false;
        };
        w.heard = now;
        if !w.probing {
            // Its timer stays; when it comes due it is filed again.
            return false;
        }
        w.probing = false;
        let key = self.file(wheel, now + self.idle, id);
        if let Some(w) = self.flows.get_mut(&id) {
            w.timer = Some(key);
        }
        true
    }

    /// The connection is no longer watched; its timer is cancelled.
    pub(super) fn forget(&mut self, id: K, wheel: &mut impl Wheel) {
        if let Some(key) = self.flows.remove(&id).and_then(|w| w.timer) {
            self.filed.remove(&key);
            wheel.cancel(key);
        }
    }

    /// The timer `key` came due at `now`: its connection, if silent for
    /// the idle time, is now probing and goes to `out` (the caller turns
    /// smoltcp's keep-alive on for it); one heard from since is filed
    /// again at its new deadline.
    pub(super) fn fired(
        &mut self,
        key: u64,
        now: Instant,
        wheel: &mut impl Wheel,
        out: &mut Vec<K>,
    ) {
        let Some(id) = self.filed.remove(&key) else {
            return;
        };
        let Some(w) = self.flows.get_mut(&id) else {
            return;
        };
        if w.timer != Some(key) {
            return;
        }
        w.timer = None;
        let at = w.heard + self.idle;
        if at > now {
            let key = self.file(wheel, at, id);
            if let Some(w) = self.flows.get_mut(&id) {
                w.timer = Some(key);
            }
        } else {
            w.probing = true;
            out.push(id);
        }
    }

    /// Connections watched and timers filed.
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.flows.len(), self.filed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A wheel for the test: timers by deadline, handed out in order.
    #[derive(Default)]
    struct FakeWheel {
        next: u64,
        timers: BTreeMap<(Instant, u64), ()>,
    }

    impl Wheel for FakeWheel {
        fn insert(&mut self, at: Instant) -> u64 {
            self.next += 1;
            self.timers.insert((at, self.next), ());
            self.next
        }
        fn cancel(&mut self, key: u64) {
            self.timers.retain(|(_, k), _| *k != key);
        }
    }

    impl FakeWheel {
        /// Fires what is due by `now` into `watch`.
        fn run(&mut self, now: Instant, watch: &mut KeepAliveWatch<u32>, out: &mut Vec<u32>) {
            while let Some((&(at, key), _)) = self.timers.iter().next() {
                if at > now {
                    break;
                }
                self.timers.remove(&(at, key));
                watch.fired(key, now, self, out);
            }
        }
        fn next_deadline(&self) -> Option<Instant> {
            self.timers.keys().next().map(|(at, _)| *at)
        }
    }

    #[test]
    fn probing_starts_after_idle_and_stops_when_heard() {
        let (a, b) = (1u32, 2u32);
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut wheel = FakeWheel::default();
        let mut w = KeepAliveWatch::new(10 * s, 2 * s);
        w.watch(a, t0, &mut wheel);
        w.watch(b, t0, &mut wheel);
        let mut out = Vec::new();
        wheel.run(t0 + 9 * s, &mut w, &mut out);
        assert!(out.is_empty());
        // b heard at 5 s: when its timer comes due at 10 s it is filed
        // again for 15 s.
        assert!(!w.heard(b, t0 + 5 * s, &mut wheel));
        wheel.run(t0 + 10 * s, &mut w, &mut out);
        assert_eq!(out, [a]);
        assert_eq!(wheel.next_deadline(), Some(t0 + 15 * s));
        out.clear();
        // Probing: no timer, however long it stays silent.
        wheel.run(t0 + 14 * s, &mut w, &mut out);
        assert!(out.is_empty());
        // a answers: probing off, next look 10 s later.
        assert!(w.heard(a, t0 + 14 * s, &mut wheel));
        wheel.run(t0 + 15 * s, &mut w, &mut out);
        assert_eq!(out, [b]);
        assert_eq!(wheel.next_deadline(), Some(t0 + 24 * s));
        // Forgetting cancels the timers: nothing is left anywhere.
        w.forget(a, &mut wheel);
        w.forget(b, &mut wheel);
        out.clear();
        wheel.run(t0 + 100 * s, &mut w, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.len(), (0, 0));
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn a_timer_never_fires_a_probe_early() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut wheel = FakeWheel::default();
        let mut w = KeepAliveWatch::new(1000 * ms, 100 * ms);
        w.watch(7u32, t0, &mut wheel);
        let mut out = Vec::new();
        // Heard every 600 ms: never silent for the idle time.
        for i in 1..10u32 {
            assert!(!w.heard(7, t0 + i * 600 * ms, &mut wheel));
            wheel.run(t0 + i * 600 * ms + 599 * ms, &mut w, &mut out);
            assert!(out.is_empty(), "probed at round {i}");
        }
        // Then silent: probing starts exactly at last heard + idle.
        let last = t0 + 9 * 600 * ms;
        wheel.run(last + 999 * ms, &mut w, &mut out);
        assert!(out.is_empty());
        wheel.run(last + 1000 * ms, &mut w, &mut out);
        assert_eq!(out, [7]);
        assert_eq!(w.len(), (1, 0));
    }
}
