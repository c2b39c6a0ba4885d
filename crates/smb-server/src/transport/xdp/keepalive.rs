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
//! One entry per established connection in a map and one in a deadline
//! queue (about 100 bytes together); what a batch of segments costs on the
//! hot path is one map look-up per connection it touched. The
//! queue is corrected lazily: an entry that comes due for a connection
//! heard from since is moved to its new deadline.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// What is watched of one connection.
#[derive(Debug, Clone, Copy)]
struct Watch {
    /// When the peer was last heard from.
    heard: Instant,
    /// Probing (smoltcp's keep-alive on, every `interval`).
    probing: bool,
}

/// The keep-alive watch of one shard, over connections named by `K` (the
/// stack's `FlowId`).
#[derive(Debug)]
pub(super) struct KeepAliveWatch<K> {
    idle: Duration,
    interval: Duration,
    flows: HashMap<K, Watch>,
    /// When each watched connection is next looked at (the `u64` keeps
    /// keys unique).
    queue: BTreeMap<(Instant, u64), K>,
    seq: u64,
}

impl<K: Copy + Eq + Hash> KeepAliveWatch<K> {
    /// Probes after `idle` of silence, then every `interval`.
    pub(super) fn new(idle: Duration, interval: Duration) -> KeepAliveWatch<K> {
        KeepAliveWatch {
            idle,
            interval,
            flows: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
        }
    }

    /// The period smoltcp probes with once probing started.
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    fn file(&mut self, at: Instant, id: K) {
        self.seq = self.seq.wrapping_add(1);
        self.queue.insert((at, self.seq), id);
    }

    /// Watch an established connection, just heard from.
    pub(super) fn watch(&mut self, id: K, now: Instant) {
        let old = self.flows.insert(
            id,
            Watch {
                heard: now,
                probing: false,
            },
        );
        if old.is_none() {
            self.file(now + self.idle, id);
        }
    }

    /// A segment came from the peer. `true` when the connection was being
    /// probed: the caller turns smoltcp's keep-alive off again.
    pub(super) fn heard(&mut self, id: K, now: Instant) -> bool {
        let Some(w) = self.flows.get_mut(&id) else {
            return false;
        };
        w.heard = now;
        if !w.probing {
            return false;
        }
        w.probing = false;
        self.file(now + self.idle, id);
        true
    }

    /// The connection is no longer watched (its entry in the queue goes
    /// when it comes due).
    pub(super) fn forget(&mut self, id: K) {
        self.flows.remove(&id);
    }

    /// When the next connection is to be looked at.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The connections silent for the idle time by `now`, now probing:
    /// the caller turns smoltcp's keep-alive on for each.
    pub(super) fn due(&mut self, now: Instant, out: &mut Vec<K>) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            let Some(w) = self.flows.get_mut(&id) else {
                continue;
            };
            if w.probing {
                continue;
            }
            let at = w.heard + self.idle;
            if at > now {
                self.file(at, id);
            } else {
                w.probing = true;
                out.push(id);
            }
        }
    }

    /// Connections watched.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.flows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_starts_after_idle_and_stops_when_heard() {
        let (a, b) = (1u32, 2u32);
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = KeepAliveWatch::new(10 * s, 2 * s);
        w.watch(a, t0);
        w.watch(b, t0);
        let mut out = Vec::new();
        w.due(t0 + 9 * s, &mut out);
        assert!(out.is_empty());
        // b heard at 5 s: its entry moves to 15 s.
        assert!(!w.heard(b, t0 + 5 * s));
        w.due(t0 + 10 * s, &mut out);
        assert_eq!(out, [a]);
        assert_eq!(w.next_deadline(), Some(t0 + 15 * s));
        out.clear();
        // Probing: not due again, however long it stays silent.
        w.due(t0 + 14 * s, &mut out);
        assert!(out.is_empty());
        // a answers: probing off, next look 10 s later.
        assert!(w.heard(a, t0 + 14 * s));
        w.due(t0 + 15 * s, &mut out);
        assert_eq!(out, [b]);
        assert_eq!(w.next_deadline(), Some(t0 + 24 * s));
        w.forget(a);
        w.forget(b);
        out.clear();
        w.due(t0 + 100 * s, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }
}
