//! Random bytes for initiators: NTLM client challenges and exported session
//! keys (MS-NLMP 3.1.5.1.2, 3.4.5.1.2 with NTLMSSP_NEGOTIATE_KEY_EXCH) and
//! preauth integrity salts (MS-SMB2 2.2.3.1.1).
//!
//! One ChaCha20 CSPRNG per thread, seeded with 32 bytes from the operating
//! system on the thread's first draw and reseeded every [`RESEED_AFTER`]
//! bytes, the policy of the server's shard RNG (`smb-server`'s `rng`
//! module). A client opening thousands of sessions a second so makes no
//! `getrandom(2)` call per session (the load generator made three before).
//!
//! No predictable fallback: when the OS cannot seed, the draw fails.
//!
//! The state is per thread, not per process: a process that `fork`s after
//! drawing (without `exec`) must not draw in both parent and child.

use std::cell::RefCell;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::AuthError;

/// Bytes drawn from one seed before the next is taken from the OS.
pub const RESEED_AFTER: u64 = 1 << 20;

struct ThreadRng {
    rng: ChaCha20Rng,
    drawn: u64,
}

thread_local! {
    static RNG: RefCell<Option<ThreadRng>> = const { RefCell::new(None) };
}

fn os_seed() -> Result<[u8; 32], AuthError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|_| AuthError::NotSupported("no OS random source"))?;
    Ok(seed)
}

/// Fills an array from this thread's CSPRNG (seeded from the OS; see the
/// module documentation).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut b = [0u8; N];
    RNG.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fresh = slot.as_ref().map_or(true, |t| t.drawn >= RESEED_AFTER);
        if fresh {
            *slot = Some(ThreadRng {
                rng: ChaCha20Rng::from_seed(os_seed()?),
                drawn: 0,
            });
        }
        let t = slot.as_mut().expect("seeded above");
        t.rng.fill_bytes(&mut b);
        t.drawn += N as u64;
        Ok(b)
    })
}

/// Bytes this thread drew since its last seed (tests).
#[cfg(test)]
pub(crate) fn drawn_since_seed() -> u64 {
    RNG.with(|cell| cell.borrow().as_ref().map_or(0, |t| t.drawn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_between_calls_and_threads() {
        let a = random_bytes::<16>().unwrap();
        let b = random_bytes::<16>().unwrap();
        assert_ne!(a, b);
        let c = std::thread::spawn(|| random_bytes::<16>().unwrap())
            .join()
            .unwrap();
        assert_ne!(a, c);
        assert_ne!(b, c);
    }

    #[test]
    fn reseeds_after_the_budget() {
        // A fresh thread: its first draw seeds.
        std::thread::spawn(|| {
            random_bytes::<8>().unwrap();
            assert_eq!(drawn_since_seed(), 8);
            let mut last = 8;
            // Draw past the budget: the counter starts again from the new seed.
            let mut reseeded = false;
            for _ in 0..(RESEED_AFTER / 4096 + 2) {
                random_bytes::<4096>().unwrap();
                let now = drawn_since_seed();
                if now < last {
                    reseeded = true;
                    assert_eq!(now, 4096);
                }
                last = now;
            }
            assert!(reseeded, "no reseed after {RESEED_AFTER} bytes");
            assert!(drawn_since_seed() <= RESEED_AFTER);
        })
        .join()
        .unwrap();
    }
}
