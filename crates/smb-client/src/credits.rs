//! The client's side of the credit / MessageId window (MS-SMB2 3.2.4.1.5, 3.2.5.1.4).

/// The client's side of the credit / MessageId window of one connection.
///
/// A fresh connection may use MessageId 0 only (one credit). Each request takes the next
/// `max(CreditCharge, 1)` ids; each response grants CreditResponse more. The ids at or above
/// `next` and below `granted_end` are the credits the client holds; a request that would go
/// past `granted_end` must wait for a response (MS-SMB2 3.2.4.1.5, 3.2.5.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credits {
    next: u64,
    granted_end: u64,
}

impl Default for Credits {
    fn default() -> Self {
        Self::new()
    }
}

impl Credits {
    /// The window of a connection that has sent nothing: MessageId 0 only.
    pub fn new() -> Self {
        Credits {
            next: 0,
            granted_end: 1,
        }
    }

    /// Credits held now (ids granted and not used).
    pub fn available(&self) -> u64 {
        self.granted_end.saturating_sub(self.next)
    }

    /// The MessageId the next request gets.
    pub fn next_message_id(&self) -> u64 {
        self.next
    }

    /// Takes the ids for a request charging `charge` credits (0 counts as 1) and returns the
    /// first, or `None` when the server has not granted that many.
    pub fn take(&mut self, charge: u16) -> Option<u64> {
        let n = u64::from(charge.max(1));
        if n > self.available() {
            return None;
        }
        let mid = self.next;
        self.next += n;
        Some(mid)
    }

    /// Takes the ids for a request whether or not they were granted (the one-at-a-time setup
    /// path, where a server that grants nothing would leave the client stranded anyway: it
    /// then refuses the request, which the caller sees as an error).
    pub fn take_anyway(&mut self, charge: u16) -> u64 {
        let mid = self.next;
        self.next += u64::from(charge.max(1));
        self.granted_end = self.granted_end.max(self.next);
        mid
    }

    /// Adds a response's CreditResponse.
    pub fn grant(&mut self, n: u16) {
        self.granted_end += u64::from(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_follow_the_window() {
        let mut c = Credits::new();
        assert_eq!(c.available(), 1, "a fresh connection holds MessageId 0");
        assert_eq!(c.take(0), Some(0), "charge 0 counts as 1");
        assert_eq!(c.take(1), None);
        c.grant(3);
        assert_eq!(c.available(), 3);
        assert_eq!(c.take(2), Some(1), "a charge of 2 takes ids 1 and 2");
        assert_eq!(c.take(2), None, "one credit left");
        assert_eq!(c.take(1), Some(3));
        assert_eq!((c.available(), c.next_message_id()), (0, 4));
        // The one-at-a-time path goes on even without a grant.
        assert_eq!(c.take_anyway(1), 4);
        assert_eq!(c.available(), 0);
        c.grant(1);
        assert_eq!(c.take(1), Some(5));
    }
}
