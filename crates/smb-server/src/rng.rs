//! Randomness of the runtime: one ChaCha20 CSPRNG per shard, seeded from the
//! operating system and reseeded periodically, as TLS stacks do with their
//! DRBGs; the engine's NTLM server challenges (MS-NLMP 3.2.5.1.1), preauth
//! integrity salts (MS-SMB2 2.2.3.1.1) and ids come from it.
//!
//! Two rules:
//! - No predictable fallback. A server that cannot seed from the OS does not
//!   start: [`ShardRng::new`] and [`os_random`] fail, and `smbcore serve`
//!   prints that one line and exits with status 2.
//! - No system call per session. The OS is asked for 32 bytes when a shard
//!   starts and again every [`ReseedPolicy::after_bytes`] bytes or
//!   [`ReseedPolicy::after`], whichever comes first, checked at the next draw
//!   (an idle shard does nothing). A failed reseed keeps the current state,
//!   which is still unpredictable (it came from the OS), logs a warning and
//!   is retried one period later.
//!
//! The OS source is the [`EntropySource`] trait, so tests inject failing and
//! counting sources.

use std::io;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use smb_session::engine::RandomSource;

/// Where seeds come from.
pub trait EntropySource: Send {
    /// Fills `buf` with unpredictable bytes, or fails.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

/// The operating system's random source (`getrandom(2)` on Linux).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

#[cfg(test)]
thread_local! {
    /// Makes [`OsEntropy`] fail on this thread (tests of the start-up path).
    static OS_ENTROPY_FAILS: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

impl EntropySource for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<()> {
        #[cfg(test)]
        if OS_ENTROPY_FAILS.with(|f| f.get()) {
            return Err(io::Error::other("injected failure"));
        }
        getrandom::getrandom(buf).map_err(|e| io::Error::other(format!("getrandom: {e}")))
    }
}

/// `N` bytes from `source`; the error is the one line `smbcore serve` prints
/// before it exits.
pub fn random_from<const N: usize>(source: &mut dyn EntropySource) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    source.fill(&mut b).map_err(|e| {
        io::Error::other(format!(
            "cannot get random bytes from the operating system ({e}); \
             refusing to start without OS randomness"
        ))
    })?;
    Ok(b)
}

/// `N` bytes from the operating system (the server GUID).
pub fn os_random<const N: usize>() -> io::Result<[u8; N]> {
    random_from(&mut OsEntropy)
}

/// When a [`ShardRng`] asks the OS for a fresh seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReseedPolicy {
    /// Reseed once this many bytes were drawn since the last seed.
    pub after_bytes: u64,
    /// Reseed at the first draw this long after the last seed.
    pub after: Duration,
}

impl Default for ReseedPolicy {
    /// 64 KiB (rand's `ThreadRng` threshold) or 5 minutes (OpenSSL reseeds
    /// its per-thread DRBGs every 7).
    fn default() -> Self {
        ReseedPolicy {
            after_bytes: 64 * 1024,
            after: Duration::from_secs(300),
        }
    }
}

/// The CSPRNG of one shard: ChaCha20 keyed from the OS, on the shard's own
/// stream (its index), so two shards never share output even with one seed.
pub struct ShardRng<S: EntropySource = OsEntropy> {
    rng: ChaCha20Rng,
    source: S,
    shard: u16,
    policy: ReseedPolicy,
    drawn: u64,
    seeded_at: Instant,
    reseeds: u64,
    failed_reseeds: u64,
}

impl<S: EntropySource> std::fmt::Debug for ShardRng<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardRng")
            .field("shard", &self.shard)
            .field("policy", &self.policy)
            .field("drawn", &self.drawn)
            .field("reseeds", &self.reseeds)
            .field("failed_reseeds", &self.failed_reseeds)
            .finish_non_exhaustive()
    }
}

impl ShardRng<OsEntropy> {
    /// Shard `shard`'s generator seeded from the OS with the default policy.
    pub fn from_os(shard: u16) -> io::Result<Self> {
        ShardRng::new(shard, OsEntropy, ReseedPolicy::default())
    }
}

impl<S: EntropySource> ShardRng<S> {
    /// Seeds from `source`; fails (and the server refuses to start) when the
    /// source does.
    pub fn new(shard: u16, mut source: S, policy: ReseedPolicy) -> io::Result<Self> {
        let seed: [u8; 32] = random_from(&mut source)?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_stream(u64::from(shard));
        Ok(ShardRng {
            rng,
            source,
            shard,
            policy,
            drawn: 0,
            seeded_at: Instant::now(),
            reseeds: 0,
            failed_reseeds: 0,
        })
    }

    /// Fills `buf`, reseeding first when the policy says so.
    pub fn fill(&mut self, buf: &mut [u8]) {
        if self.drawn >= self.policy.after_bytes || self.seeded_at.elapsed() >= self.policy.after {
            self.reseed();
        }
        self.rng.fill_bytes(buf);
        self.drawn = self.drawn.saturating_add(buf.len() as u64);
    }

    /// Successful reseeds so far.
    pub fn reseeds(&self) -> u64 {
        self.reseeds
    }

    /// Reseeds that failed (the state was kept).
    pub fn failed_reseeds(&self) -> u64 {
        self.failed_reseeds
    }

    /// The new key is the OS seed XOR 32 bytes of the current stream, so a
    /// reseed never makes the state more predictable than it was.
    fn reseed(&mut self) {
        let mut seed = [0u8; 32];
        match self.source.fill(&mut seed) {
            Ok(()) => {
                let mut mix = [0u8; 32];
                self.rng.fill_bytes(&mut mix);
                for (s, m) in seed.iter_mut().zip(mix) {
                    *s ^= m;
                }
                self.rng = ChaCha20Rng::from_seed(seed);
                self.rng.set_stream(u64::from(self.shard));
                self.reseeds += 1;
            }
            Err(e) => {
                self.failed_reseeds += 1;
                tracing::warn!(
                    shard = self.shard,
                    error = %e,
                    "reseeding the random generator from the OS failed; \
                     keeping its current (OS-seeded) state and retrying later"
                );
            }
        }
        self.drawn = 0;
        self.seeded_at = Instant::now();
    }
}

impl<S: EntropySource + 'static> ShardRng<S> {
    /// The engine's random source.
    pub fn into_random_source(mut self) -> RandomSource {
        Box::new(move |buf: &mut [u8]| self.fill(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A source that hands out a fixed byte and counts its calls; fails
    /// from call `fail_from` on.
    #[derive(Clone)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        byte: u8,
        fail_from: usize,
    }

    impl Counting {
        fn new(byte: u8, fail_from: usize) -> Self {
            Counting {
                calls: Arc::default(),
                byte,
                fail_from,
            }
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl EntropySource for Counting {
        fn fill(&mut self, buf: &mut [u8]) -> io::Result<()> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n >= self.fail_from {
                return Err(io::Error::other("no entropy"));
            }
            buf.fill(self.byte);
            Ok(())
        }
    }

    const NEVER: ReseedPolicy = ReseedPolicy {
        after_bytes: u64::MAX,
        after: Duration::MAX,
    };

    fn draw<S: EntropySource>(r: &mut ShardRng<S>) -> [u8; 32] {
        let mut b = [0u8; 32];
        r.fill(&mut b);
        b
    }

    #[test]
    fn shards_draw_distinct_streams_even_from_one_seed() {
        let mut outs: Vec<[u8; 32]> = (0..8u16)
            .map(|i| draw(&mut ShardRng::new(i, Counting::new(7, 1), NEVER).unwrap()))
            .collect();
        outs.sort();
        outs.dedup();
        assert_eq!(outs.len(), 8, "one stream per shard");
        // From the OS, two generators of the same shard differ too.
        let a = draw(&mut ShardRng::from_os(0).unwrap());
        let b = draw(&mut ShardRng::from_os(0).unwrap());
        assert_ne!(a, b);
        // Successive draws differ.
        let mut r = ShardRng::from_os(3).unwrap();
        assert_ne!(draw(&mut r), draw(&mut r));
    }

    #[test]
    fn the_os_is_asked_once_per_seed_not_per_draw() {
        let src = Counting::new(1, usize::MAX);
        let mut r = ShardRng::new(0, src.clone(), ReseedPolicy::default()).unwrap();
        for _ in 0..1000 {
            let mut challenge = [0u8; 8];
            r.fill(&mut challenge);
        }
        assert_eq!(src.calls(), 1);
        assert_eq!(r.reseeds(), 0);
    }

    #[test]
    fn reseeds_after_the_byte_threshold_and_changes_the_stream() {
        let policy = ReseedPolicy {
            after_bytes: 64,
            after: Duration::MAX,
        };
        let src = Counting::new(9, usize::MAX);
        let mut r = ShardRng::new(2, src.clone(), policy).unwrap();
        let mut twin = ShardRng::new(2, Counting::new(9, usize::MAX), NEVER).unwrap();
        // 64 bytes: no reseed yet, same stream as the twin.
        assert_eq!(draw(&mut r), draw(&mut twin));
        assert_eq!(draw(&mut r), draw(&mut twin));
        assert_eq!((src.calls(), r.reseeds()), (1, 0));
        // The next draw reseeds first; even with the same OS bytes the
        // stream changes (the old state is mixed in).
        assert_ne!(draw(&mut r), draw(&mut twin));
        assert_eq!((src.calls(), r.reseeds()), (2, 1));
        draw(&mut r);
        assert_eq!(src.calls(), 2, "the count starts again after a reseed");
    }

    #[test]
    fn reseeds_after_the_time_threshold() {
        let policy = ReseedPolicy {
            after_bytes: u64::MAX,
            after: Duration::ZERO,
        };
        let src = Counting::new(3, usize::MAX);
        let mut r = ShardRng::new(0, src.clone(), policy).unwrap();
        for _ in 0..3 {
            draw(&mut r);
        }
        assert_eq!((src.calls(), r.reseeds()), (4, 3));
    }

    #[test]
    fn a_failed_reseed_keeps_the_state_and_is_retried_a_period_later() {
        let policy = ReseedPolicy {
            after_bytes: 32,
            after: Duration::MAX,
        };
        // Seeding works, every reseed fails.
        let src = Counting::new(5, 1);
        let mut r = ShardRng::new(1, src.clone(), policy).unwrap();
        let mut twin = ShardRng::new(1, Counting::new(5, 1), NEVER).unwrap();
        for _ in 0..4 {
            assert_eq!(
                draw(&mut r),
                draw(&mut twin),
                "the OS-seeded stream goes on"
            );
        }
        // Retried after every 32 bytes, not at every draw.
        assert_eq!((src.calls(), r.failed_reseeds(), r.reseeds()), (4, 3, 0));
    }

    #[test]
    fn failure_at_seeding_refuses_to_build_the_generator() {
        let err = ShardRng::new(0, Counting::new(0, 0), NEVER).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("refusing to start"), "{msg}");
        assert!(msg.contains("no entropy"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn server_refuses_to_start_when_the_os_source_fails() {
        OS_ENTROPY_FAILS.with(|f| f.set(true));
        let r = crate::Server::start(crate::ServeOptions::new("127.0.0.1:0".parse().unwrap()));
        OS_ENTROPY_FAILS.with(|f| f.set(false));
        let err = r.expect_err("no server without OS randomness");
        let msg = err.to_string();
        assert!(
            msg.contains("refusing to start without OS randomness"),
            "{msg}"
        );
        assert!(msg.contains("injected failure"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}
