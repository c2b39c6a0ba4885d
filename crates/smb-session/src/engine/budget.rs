//! Memory a client can make the server hold, bounded per pipe, per
//! connection and per server.
//!
//! What a client can pin without limit of its own making is pipe state:
//! unread DCE/RPC output and half-reassembled requests of the named pipes it
//! opens on IPC$ (a session with an open pipe is never reaped, as on
//! Windows). Each pipe's bytes are charged to a [`MemoryBudget`] shared by
//! every shard of the server, and a connection's pipes together may hold at
//! most [`PER_CONNECTION`]. A pipe call that would go over either bound is
//! refused with STATUS_INSUFFICIENT_RESOURCES before it does anything, and a
//! pipe never queues more output than the room left (a response that does
//! not fit becomes a DCE/RPC fault, see `smb_rpc::pipe::PipeLimits`).
//!
//! Other per-connection memory is bounded elsewhere: output queues by the
//! runtime's backpressure (it stops reading a connection whose peer does not
//! read), frames by the frame limits, held logon answers by `throttle`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Pipe bytes one connection may hold, all its pipes together.
pub const PER_CONNECTION: usize = 16 * 1024 * 1024;
/// Pipe bytes one pipe may hold (unread output plus reassembly).
pub const PER_PIPE: usize = 16 * 1024 * 1024;
/// Open pipes per connection.
pub const PIPES_PER_CONNECTION: usize = 64;

/// The server-wide budget: a limit (a setting, live) and what is charged.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: AtomicUsize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, nothing charged.
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
        })
    }

    /// Change the limit (live; what is held stays, new charges see it).
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// The limit in force.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes charged now, every shard together.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Room left under the limit.
    pub fn room(&self) -> usize {
        self.limit().saturating_sub(self.used())
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget {
            limit: AtomicUsize::new(usize::MAX),
            used: AtomicUsize::new(0),
        }
    }
}

/// Bytes charged to a budget by one holder (a pipe); given back on drop,
/// so a pipe that goes, however it goes, releases what it held.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Charge {
    /// A holder of nothing yet.
    pub(crate) fn new(budget: Arc<MemoryBudget>) -> Charge {
        Charge { budget, bytes: 0 }
    }

    /// What this holder is charged.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Record that the holder now holds `bytes` (callers keep within the
    /// room they were given).
    pub(crate) fn set(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.budget
                .used
                .fetch_add(bytes - self.bytes, Ordering::Relaxed);
        } else {
            self.budget
                .used
                .fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_are_given_back_on_drop() {
        let b = MemoryBudget::new(1000);
        let mut a = Charge::new(b.clone());
        let mut c = Charge::new(b.clone());
        a.set(300);
        c.set(500);
        assert_eq!((b.used(), b.room()), (800, 200));
        a.set(100);
        assert_eq!(b.used(), 600);
        drop(c);
        assert_eq!(b.used(), 100);
        b.set_limit(50);
        assert_eq!(b.room(), 0);
        drop(a);
        assert_eq!(b.used(), 0);
    }
}
