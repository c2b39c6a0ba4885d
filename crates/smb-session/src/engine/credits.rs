//! Credits and the MessageId sequence window (MS-SMB2 3.3.1.1, 3.3.5.2.3).
//!
//! The server grants credits; each granted credit adds one MessageId to the
//! connection's `CommandSequenceWindow`. A request with CreditCharge `c`
//! (0 counts as 1) consumes the ids `MessageId ..= MessageId + c - 1`; each must
//! be in the window and unused, else the connection is dropped. CANCEL
//! consumes nothing.
//!
//! The window is `[low, high)` with the ids at or above `low` that were used
//! out of order kept in a small sorted list. A client that uses ids in order
//! (all real ones nearly always do) keeps that list empty, so an idle
//! connection's window costs two integers.

/// Why a request's MessageId range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError {
    /// An id below the window, above it, or already used.
    OutOfWindow,
    /// The charge is larger than the credits the client holds.
    ChargeTooLarge,
}

/// The MessageId window of one connection.
#[derive(Debug, Clone, Default)]
pub struct CreditWindow {
    /// Lowest id not yet known to be used.
    low: u64,
    /// First id not granted.
    high: u64,
    /// Ids in `(low, high)` already used, sorted ascending.
    used_ahead: Vec<u64>,
}

impl CreditWindow {
    /// A fresh connection: the window holds id 0 only (MS-SMB2 3.3.1.1).
    pub fn new() -> Self {
        CreditWindow {
            low: 0,
            high: 1,
            used_ahead: Vec::new(),
        }
    }

    /// Credits the client holds now (granted, not yet used).
    pub fn outstanding(&self) -> u64 {
        self.high - self.low - self.used_ahead.len() as u64
    }

    /// Consume `message_id ..= message_id + charge - 1` (charge 0 counts as 1).
    pub fn consume(&mut self, message_id: u64, charge: u16) -> Result<(), WindowError> {
        let charge = u64::from(charge.max(1));
        // An id below the window is a replay, whatever the charge.
        if message_id < self.low {
            return Err(WindowError::OutOfWindow);
        }
        if charge > self.outstanding() {
            return Err(WindowError::ChargeTooLarge);
        }
        let end = message_id
            .checked_add(charge)
            .ok_or(WindowError::OutOfWindow)?;
        if end > self.high {
            return Err(WindowError::OutOfWindow);
        }
        // None of the ids may be used already.
        let first = self.used_ahead.partition_point(|&u| u < message_id);
        if self.used_ahead.get(first).is_some_and(|&u| u < end) {
            return Err(WindowError::OutOfWindow);
        }
        if message_id == self.low {
            self.low = end;
            // Absorb ids used earlier that are now contiguous.
            let mut n = 0;
            while self.used_ahead.get(n) == Some(&self.low) {
                self.low += 1;
                n += 1;
            }
            self.used_ahead.drain(..n);
            if self.used_ahead.is_empty() && self.used_ahead.capacity() > 0 {
                self.used_ahead = Vec::new();
            }
        } else {
            self.used_ahead.splice(first..first, message_id..end);
        }
        Ok(())
    }

    /// Grant up to `requested` credits, keeping the client's total at most
    /// `cap`; at least one when the client would otherwise hold none.
    /// Returns the number granted (for the response's CreditResponse).
    pub fn grant(&mut self, requested: u16, cap: u16) -> u16 {
        let held = self.outstanding();
        let room = u64::from(cap).saturating_sub(held);
        let mut n = u64::from(requested).min(room);
        if n == 0 && held == 0 {
            n = 1;
        }
        self.high += n;
        n as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_with_message_id_zero_only() {
        let mut w = CreditWindow::new();
        assert_eq!(w.consume(1, 1), Err(WindowError::OutOfWindow));
        assert_eq!(w.consume(0, 1), Ok(()));
        assert_eq!(w.consume(0, 1), Err(WindowError::OutOfWindow), "a replay");
        assert_eq!(
            w.consume(1, 1),
            Err(WindowError::ChargeTooLarge),
            "no credit left"
        );
        assert_eq!(w.grant(10, 8192), 10);
        assert_eq!(w.outstanding(), 10);
    }

    #[test]
    fn replays_and_ids_beyond_the_grant_are_refused() {
        let mut w = CreditWindow::new();
        w.consume(0, 1).unwrap();
        w.grant(4, 8192); // ids 1..=4
        assert_eq!(w.consume(5, 1), Err(WindowError::OutOfWindow));
        w.consume(3, 1).unwrap(); // out of order
        assert_eq!(w.consume(3, 1), Err(WindowError::OutOfWindow));
        assert_eq!(w.consume(2, 2), Err(WindowError::OutOfWindow)); // 2..=3 overlaps 3
        w.consume(1, 2).unwrap(); // 1..=2; 3 absorbed
        assert_eq!(w.outstanding(), 1);
        w.consume(4, 1).unwrap();
        // A replay of an old id, with no credit left to pay for it either.
        assert!(w.consume(0, 1).is_err());
        assert_eq!(w.outstanding(), 0);
    }

    #[test]
    fn multi_credit_charge_needs_that_many_credits() {
        let mut w = CreditWindow::new();
        w.consume(0, 1).unwrap();
        w.grant(3, 8192);
        assert_eq!(w.consume(1, 4), Err(WindowError::ChargeTooLarge));
        w.consume(1, 3).unwrap();
    }

    #[test]
    fn grants_are_capped_and_never_leave_the_client_stranded() {
        let mut w = CreditWindow::new();
        w.consume(0, 1).unwrap();
        assert_eq!(w.grant(60_000, 8192), 8192);
        assert_eq!(w.grant(100, 8192), 0);
        let mut w = CreditWindow::new();
        w.consume(0, 1).unwrap();
        assert_eq!(
            w.grant(0, 8192),
            1,
            "a client must keep at least one credit"
        );
    }

    #[test]
    fn huge_message_ids_do_not_overflow() {
        let mut w = CreditWindow::new();
        assert_eq!(w.consume(u64::MAX, 2), Err(WindowError::ChargeTooLarge));
        assert_eq!(w.consume(u64::MAX, 1), Err(WindowError::OutOfWindow));
    }

    proptest! {
        /// Every id is accepted at most once, only if granted; the window
        /// stays bounded by the cap.
        #[test]
        fn each_granted_id_is_usable_exactly_once(ops in proptest::collection::vec((0u64..64, 1u16..4, 0u16..8), 1..200)) {
            let mut w = CreditWindow::new();
            let mut granted_high = 1u64;
            let mut used = std::collections::BTreeSet::new();
            for (id, charge, req) in ops {
                let ok = w.consume(id, charge).is_ok();
                let ids: Vec<u64> = (id..id + u64::from(charge)).collect();
                let model_ok = ids.iter().all(|i| *i < granted_high && !used.contains(i));
                prop_assert_eq!(ok, model_ok, "id {} charge {}", id, charge);
                if ok {
                    used.extend(ids);
                }
                granted_high += u64::from(w.grant(req, 16));
                prop_assert!(w.outstanding() <= 16);
            }
        }
    }
}
