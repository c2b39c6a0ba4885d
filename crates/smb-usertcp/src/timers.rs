//! Where a stack files its connections' TCP timers (retransmission,
//! delayed ACK, keep-alive, TIME-WAIT, the half-open limit): one timer per
//! flow, in a hierarchical timer wheel (O(1) insert and cancel).
//!
//! In the AF_XDP transport the wheel is the shard's own, the one that
//! reaps idle sessions (`smb_session::engine::Engine::schedule_transport`),
//! so one wheel decides how long the shard may sleep. A stack that no
//! runtime gives a wheel (tests, benchmarks, the fuzz target) files in a
//! wheel of its own with microsecond ticks ([`OwnTimers`]).

use smb_session::wheel::{TimerKey, TimerWheel};
use smoltcp::time::Instant;

/// A timer wheel the stack files its flows' deadlines in. A timer must
/// come due no earlier than `at`; the runtime then hands its token and key
/// to [`crate::TcpStack::timer_fired`].
pub trait TimerHost {
    /// File a timer due at `at` carrying `token`; returns its key.
    fn insert(&mut self, at: Instant, token: u32) -> u64;
    /// Cancel the timer of `key` (one that is gone is ignored).
    fn cancel(&mut self, key: u64);
}

/// A wheel of the stack's own, one tick a microsecond (so as exact as the
/// clock passed in).
#[derive(Debug, Default)]
pub(crate) struct OwnTimers {
    wheel: TimerWheel<u32>,
}

fn tick(at: Instant) -> u64 {
    at.total_micros().max(0) as u64
}

impl OwnTimers {
    /// Timers filed.
    pub(crate) fn len(&self) -> usize {
        self.wheel.len()
    }

    /// Never later than the earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wheel
            .next_deadline()
            .map(|t| Instant::from_micros(i64::try_from(t).unwrap_or(i64::MAX)))
    }

    /// The timers due at `now`, as `(token, key)`.
    pub(crate) fn due(&mut self, now: Instant, out: &mut Vec<(u32, u64)>) {
        while let Some(e) = self.wheel.poll_one(tick(now)) {
            out.push((e.value, e.key.to_raw()));
        }
    }
}

impl TimerHost for OwnTimers {
    fn insert(&mut self, at: Instant, token: u32) -> u64 {
        self.wheel.insert(tick(at), token).to_raw()
    }

    fn cancel(&mut self, key: u64) {
        if let Some(k) = TimerKey::from_raw(key) {
            self.wheel.cancel(k);
        }
    }
}
