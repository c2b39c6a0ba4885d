//! The io_uring shard's wake-up timer: one `IORING_OP_TIMEOUT` that stays
//! armed across waits, instead of a timeout on every `io_uring_enter`.
//!
//! A timed `io_uring_enter` (`IORING_ENTER_EXT_ARG` with a timespec) starts
//! an hrtimer each time the shard sleeps and cancels it when a completion
//! wakes it first, which under load is every wait: the kernel profile of an
//! echo run showed `io_cqring_wait` → `hrtimer_cancel` at about 7 % of the
//! shard's time. A timeout *operation* (io_uring(7), `IORING_OP_TIMEOUT`
//! with a count of 0) is armed once and completes when it expires, so the
//! waits themselves carry no timer.
//!
//! The wheel's next deadline moves, though. [`DeadlineTimer::plan`] keeps
//! the armed expiry no later than the deadline the shard needs:
//!
//! - nothing armed: arm at the deadline;
//! - the deadline moved *earlier* than the armed expiry: move the timer
//!   (`IORING_OP_TIMEOUT_REMOVE` with `IORING_TIMEOUT_UPDATE`);
//! - the deadline moved *later* (a session was active again): leave it.
//!   The timer fires early, the shard finds nothing due, and the next turn
//!   arms the later deadline. That costs one spurious wake-up per moved
//!   deadline at most, never a late one, and under load no timer work at
//!   all on most turns.
//!
//! Lateness guarantee, as with the timed wait: the timer never expires
//! after the wheel's deadline (it is armed at or before it), and reads are
//! dated after the wait returns, so no session is reaped early.

use std::time::{Duration, Instant};

/// What the shard must submit before it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerOp {
    /// The timer is armed early enough: submit nothing.
    Keep,
    /// Arm a new timeout that expires after this long.
    Arm(Duration),
    /// Move the armed timeout to expire after this long.
    Update(Duration),
}

/// The state of the shard's one timeout operation.
#[derive(Debug, Default)]
pub(crate) struct DeadlineTimer {
    /// When the armed timeout expires; `None` when none is armed.
    armed: Option<Instant>,
}

impl DeadlineTimer {
    /// The operation that makes the timer expire no later than `now +
    /// timeout`, and the state after it was submitted.
    pub(crate) fn plan(&mut self, now: Instant, timeout: Duration) -> TimerOp {
        let want = now + timeout;
        match self.armed {
            None => {
                self.armed = Some(want);
                TimerOp::Arm(timeout)
            }
            Some(at) if at > want => {
                self.armed = Some(want);
                TimerOp::Update(timeout)
            }
            Some(_) => TimerOp::Keep,
        }
    }

    /// The timeout operation completed (it expired, or it was cancelled):
    /// nothing is armed any more.
    pub(crate) fn completed(&mut self) {
        self.armed = None;
    }

    /// An update found no timeout to move (it had already completed; its
    /// completion is on its way and will clear the state too).
    pub(crate) fn update_failed(&mut self) {
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn arms_once_and_keeps_it_while_the_deadline_does_not_come_earlier() {
        let t0 = Instant::now();
        let mut t = DeadlineTimer::default();
        assert_eq!(t.plan(t0, 1000 * MS), TimerOp::Arm(1000 * MS));
        // The same absolute deadline seen later, and a later one: no work.
        assert_eq!(t.plan(t0 + 10 * MS, 990 * MS), TimerOp::Keep);
        assert_eq!(t.plan(t0 + 20 * MS, 1000 * MS), TimerOp::Keep);
    }

    #[test]
    fn an_earlier_deadline_moves_the_timer() {
        let t0 = Instant::now();
        let mut t = DeadlineTimer::default();
        assert_eq!(t.plan(t0, 1000 * MS), TimerOp::Arm(1000 * MS));
        assert_eq!(t.plan(t0 + MS, 5 * MS), TimerOp::Update(5 * MS));
        // Now armed at t0 + 6 ms: the old, later deadline does not move it back.
        assert_eq!(t.plan(t0 + 2 * MS, 1000 * MS), TimerOp::Keep);
    }

    #[test]
    fn a_fired_or_lost_timer_is_armed_again() {
        let t0 = Instant::now();
        let mut t = DeadlineTimer::default();
        assert_eq!(t.plan(t0, 10 * MS), TimerOp::Arm(10 * MS));
        t.completed();
        assert_eq!(t.plan(t0 + 10 * MS, 1000 * MS), TimerOp::Arm(1000 * MS));
        assert_eq!(t.plan(t0 + 11 * MS, MS), TimerOp::Update(MS));
        t.update_failed();
        assert_eq!(t.plan(t0 + 12 * MS, MS), TimerOp::Arm(MS));
    }

    #[test]
    fn never_expires_after_the_wanted_deadline() {
        // Whatever sequence of deadlines the wheel asks for, the armed
        // expiry is at or before every deadline asked since it was armed.
        let t0 = Instant::now();
        let mut t = DeadlineTimer::default();
        let mut armed_at = None;
        let mut earliest_wanted: Option<Instant> = None;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..10_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let now = t0 + Duration::from_micros(step * 100);
            let timeout = Duration::from_micros(x % 2_000_000);
            let want = now + timeout;
            match t.plan(now, timeout) {
                TimerOp::Arm(d) | TimerOp::Update(d) => {
                    armed_at = Some(now + d);
                    earliest_wanted = Some(want);
                }
                TimerOp::Keep => {
                    earliest_wanted = Some(earliest_wanted.map_or(want, |e| e.min(want)));
                }
            }
            assert!(armed_at.unwrap() <= earliest_wanted.unwrap());
            // The timer fires when its time has come.
            if armed_at.is_some_and(|a| a <= now) {
                t.completed();
                assert!(matches!(t.plan(now, timeout), TimerOp::Arm(_)));
                armed_at = Some(want);
                earliest_wanted = Some(want);
            }
        }
    }
}
