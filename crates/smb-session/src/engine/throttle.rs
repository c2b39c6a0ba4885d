//! The authentication rate limiter: the answer to a failed logon is held
//! for a delay before it goes out, so password guessing over SMB is slow
//! (Windows Server 2025 and Windows 11 24H2 delay every failed NTLM logon by
//! 2 s, `Set-SmbServerConfiguration -InvalidAuthenticationDelayTimeInMs`).
//!
//! The held frame waits on the shard's timer wheel
//! ([`SessionTable::schedule`](crate::table::SessionTable::schedule)): no
//! thread sleeps and other connections are answered at once. When it is due
//! it is queued on its own connection's output and announced with
//! [`EngineEvent::Transmit`](super::EngineEvent::Transmit); a connection that
//! went meanwhile simply never gets it.
//!
//! Memory is bounded: at most [`MAX_HELD_PER_CONNECTION`] held answers per
//! connection (a client that pipelines more failing logons is disconnected)
//! and [`MAX_HELD`] per shard (past it, the failing connection is
//! disconnected too).

use std::time::{Duration, Instant};

use slab::Slab;

use crate::ids::ConnId;

/// Held answers one connection may have waiting.
pub const MAX_HELD_PER_CONNECTION: u8 = 8;
/// Held answers one shard keeps at most.
pub const MAX_HELD: usize = 65_536;
/// Longest delay accepted (Windows accepts 0 to 10,000 ms).
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// One held response frame.
#[derive(Debug)]
struct Held {
    conn: ConnId,
    bytes: Vec<u8>,
}

/// Why a failed logon's answer could not be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldError {
    /// The connection (or the shard) has too many answers waiting.
    TooMany,
}

/// The answers waiting for their delay to pass.
#[derive(Debug, Default)]
pub(crate) struct HeldResponses {
    held: Slab<Held>,
}

impl HeldResponses {
    /// Keep `bytes` for `conn` until `table` reports the timer set here.
    pub(crate) fn hold(
        &mut self,
        conn: ConnId,
        bytes: Vec<u8>,
        waiting_on_conn: &mut u8,
    ) -> Result<u32, HoldError> {
        if *waiting_on_conn >= MAX_HELD_PER_CONNECTION || self.held.len() >= MAX_HELD {
            return Err(HoldError::TooMany);
        }
        *waiting_on_conn += 1;
        let key = self.held.insert(Held { conn, bytes });
        // MAX_HELD keeps keys far below u32::MAX.
        Ok(u32::try_from(key).unwrap_or(u32::MAX))
    }

    /// The held answer behind `token`, now due.
    pub(crate) fn release(&mut self, token: u32) -> Option<(ConnId, Vec<u8>)> {
        let h = self.held.try_remove(token as usize)?;
        Some((h.conn, h.bytes))
    }

    /// Number of answers waiting.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

/// When an answer held now with `delay` is due.
pub(crate) fn due(now: Instant, delay: Duration) -> Instant {
    now + delay.min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_bounded_per_connection_and_released_once() {
        let mut h = HeldResponses::default();
        let conn = ConnId::new(1, 1);
        let mut waiting = 0u8;
        let mut tokens = Vec::new();
        for i in 0..MAX_HELD_PER_CONNECTION {
            tokens.push(
                h.hold(conn, vec![i], &mut waiting)
                    .expect("under the bound"),
            );
        }
        assert_eq!(h.hold(conn, vec![0], &mut waiting), Err(HoldError::TooMany));
        assert_eq!(h.len(), usize::from(MAX_HELD_PER_CONNECTION));
        let (c, b) = h.release(tokens[3]).expect("held");
        assert_eq!((c, b), (conn, vec![3]));
        assert!(h.release(tokens[3]).is_none(), "released once");
    }

    #[test]
    fn holds_are_bounded_per_shard() {
        let mut h = HeldResponses::default();
        let mut waiting = vec![0u8; MAX_HELD / usize::from(MAX_HELD_PER_CONNECTION) + 1];
        let mut held = 0;
        'fill: for (i, w) in waiting.iter_mut().enumerate() {
            for _ in 0..MAX_HELD_PER_CONNECTION {
                match h.hold(ConnId::new(i as u32, 1), Vec::new(), w) {
                    Ok(_) => held += 1,
                    Err(HoldError::TooMany) => break 'fill,
                }
            }
        }
        assert_eq!(held, MAX_HELD);
        assert_eq!(h.len(), MAX_HELD);
    }
}
