//! A bound on how many clients of one endpoint (the admin socket, the
//! metrics endpoint) are served at once, each on its own thread, so that a
//! slow client holds up only itself and no crowd of them holds unbounded
//! threads.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Slots for at most `max` clients at once.
#[derive(Debug, Clone)]
pub(crate) struct ClientSlots {
    busy: Arc<AtomicUsize>,
    max: usize,
}

/// One taken slot; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    busy: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClientSlots {
    /// At most `max` clients at once.
    pub(crate) fn new(max: usize) -> Self {
        ClientSlots {
            busy: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// How many clients may be served at once.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Take a slot, or `None` when all are taken.
    pub(crate) fn acquire(&self) -> Option<Slot> {
        self.busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot {
                busy: self.busy.clone(),
            })
    }
}

impl Slot {
    /// Run `serve` (one client's whole exchange) on a thread of its own that
    /// holds this slot until it ends.
    pub(crate) fn spawn(self, name: &str, serve: impl FnOnce() + Send + 'static) -> io::Result<()> {
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _slot = self;
                serve();
            })
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_come_back_when_dropped() {
        let slots = ClientSlots::new(2);
        let a = slots.acquire().unwrap();
        let b = slots.acquire().unwrap();
        assert!(slots.acquire().is_none());
        drop(a);
        let c = slots.acquire().unwrap();
        assert!(slots.acquire().is_none());
        drop((b, c));
        let (tx, rx) = std::sync::mpsc::channel();
        let slot = slots.acquire().unwrap();
        slot.spawn("t", move || tx.send(()).unwrap()).unwrap();
        rx.recv().unwrap();
        // The thread has ended (or is ending): its slot is given back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while slots.busy.load(Ordering::Acquire) != 0 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::yield_now();
        }
    }
}
