//! The per-client-address connection limit (`max-connections-per-client`):
//! one address cannot take every connection the server allows.
//!
//! Counts live connections per IP address across all shards, under one
//! mutex taken once per accept and once per close (never on the request
//! path). The map holds one entry per address with a live connection, so it
//! is bounded by max-connections. The limit is live: lowering it refuses
//! new connections from addresses at or over it and leaves existing ones
//! alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Live connections per client address, and the limit.
#[derive(Debug)]
pub(crate) struct PerClient {
    limit: AtomicU64,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl PerClient {
    /// No connection yet; at most `limit` per address.
    pub(crate) fn new(limit: u64) -> Self {
        PerClient {
            limit: AtomicU64::new(limit),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Change the limit (live).
    pub(crate) fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Count a new connection from `ip`, or refuse it (`false`) when that
    /// address already holds the limit.
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut m = self.counts.lock();
        let n = m.entry(ip.to_canonical()).or_insert(0);
        if u64::from(*n) >= limit {
            if *n == 0 {
                m.remove(&ip.to_canonical());
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` closed.
    pub(crate) fn release(&self, ip: IpAddr) {
        let ip = ip.to_canonical();
        let mut m = self.counts.lock();
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }

    /// Addresses with live connections, and the most any one holds.
    pub(crate) fn summary(&self) -> (usize, u32) {
        let m = self.counts.lock();
        (m.len(), m.values().copied().max().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_address_and_release() {
        let p = PerClient::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert!(p.admit(a) && p.admit(a));
        assert!(!p.admit(a));
        assert!(p.admit(b));
        assert_eq!(p.summary(), (2, 2));
        p.release(a);
        assert!(p.admit(a));
        p.set_limit(1);
        assert!(!p.admit("10.0.0.2".parse().unwrap()));
        p.release(a);
        p.release(a);
        p.release(b);
        assert_eq!(p.summary(), (0, 0));
    }
}
