//! The replay cache (RFC 4120 3.2.3): every authenticator accepted in the
//! last `2 × clock skew` is remembered, and one seen again is refused.
//!
//! An authenticator is named by a SHA-256 of its ciphertext, as MIT's file2
//! replay cache names it: a replay sends the same bytes. MIT's own cache is
//! a file written on every logon (blocking I/O on a shard thread), so the
//! acceptor turns it off (`rcache = none:`) and keeps this one in memory,
//! shared by every shard behind one lock. An authenticator is acceptable
//! only while its time is within the skew of now, so one accepted at `t`
//! cannot be accepted after `t + 2 × skew`: that is how long an entry lives.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Key of one authenticator: the first 16 bytes of SHA-256(ciphertext).
type Tag = [u8; 16];

/// Remembers authenticators for `window`.
#[derive(Debug)]
pub struct ReplayCache {
    window: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<Tag>,
    /// Insertion order (which is expiry order: one window for all).
    order: VecDeque<(Instant, Tag)>,
}

impl ReplayCache {
    /// A cache that remembers each authenticator for `window`.
    pub fn new(window: Duration) -> Self {
        ReplayCache {
            window,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `ciphertext` as accepted at `now`; `false` if it was already
    /// there (a replay). Entries older than the window go first.
    pub fn insert(&self, ciphertext: &[u8], now: Instant) -> bool {
        let tag = tag(ciphertext);
        let mut g = self.inner.lock();
        while let Some(&(t, old)) = g.order.front() {
            if now.saturating_duration_since(t) < self.window {
                break;
            }
            g.order.pop_front();
            g.seen.remove(&old);
        }
        if !g.seen.insert(tag) {
            return false;
        }
        g.order.push_back((now, tag));
        true
    }

    /// Whether `ciphertext` is remembered (without recording it).
    pub fn contains(&self, ciphertext: &[u8]) -> bool {
        self.inner.lock().seen.contains(&tag(ciphertext))
    }

    /// Number of remembered authenticators.
    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn tag(ciphertext: &[u8]) -> Tag {
    let d = Sha256::digest(ciphertext);
    let mut t = [0u8; 16];
    t.copy_from_slice(&d[..16]);
    t
}

/// The authenticator ciphertext of a GSS-API Kerberos AP-REQ token
/// (RFC 4121 4.1: `[APPLICATION 0] { OID, TOK_ID 01 00, AP-REQ }`; RFC 4120
/// 5.5.1: AP-REQ `[APPLICATION 14] SEQUENCE { ..., [4] authenticator
/// EncryptedData { [0] etype, [1] kvno OPTIONAL, [2] cipher } }`), or `None`
/// for anything that is not one.
pub fn authenticator_cipher(token: &[u8]) -> Option<&[u8]> {
    use smb_auth::der::Reader;
    let outer = Reader::new(token).read().ok()?;
    if outer.tag != 0x60 {
        return None;
    }
    let mut r = Reader::new(outer.content);
    let oid = r.read().ok()?;
    if oid.tag != 0x06 {
        return None;
    }
    let rest = r.rest();
    let ap_req = rest.strip_prefix(&[0x01, 0x00])?;
    let app = Reader::new(ap_req).read().ok()?;
    if app.tag != 0x6e {
        return None;
    }
    let seq = Reader::new(app.content).read().ok()?;
    if seq.tag != 0x30 {
        return None;
    }
    let mut fields = Reader::new(seq.content);
    while !fields.is_empty() {
        let f = fields.read().ok()?;
        if f.tag == 0xa4 {
            let enc = Reader::new(f.content).read().ok()?;
            let mut e = Reader::new(enc.content);
            while !e.is_empty() {
                let g = e.read().ok()?;
                if g.tag == 0xa2 {
                    let octets = Reader::new(g.content).read().ok()?;
                    return (octets.tag == 0x04).then_some(octets.content);
                }
            }
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_principals_of_the_keytab_realms() {
        let realms = vec!["SMBCORE.TEST".to_string()];
        assert!(crate::in_realms("alice@SMBCORE.TEST", &realms));
        assert!(crate::in_realms("alice@smbcore.test", &realms));
        assert!(!crate::in_realms("alice@OTHER.TEST", &realms));
        assert!(!crate::in_realms("alice", &realms));
        assert_eq!(crate::realm_of("a/b@R@S"), Some("S"));
    }

    #[test]
    fn a_second_insert_is_a_replay_until_the_window_passes() {
        let c = ReplayCache::new(Duration::from_secs(600));
        let t0 = Instant::now();
        assert!(c.insert(b"auth-1", t0));
        assert!(!c.insert(b"auth-1", t0 + Duration::from_secs(1)));
        assert!(c.insert(b"auth-2", t0 + Duration::from_secs(2)));
        assert!(c.contains(b"auth-1"));
        // After the window the first entry is forgotten (it could no
        // longer pass the clock-skew check anyway).
        assert!(c.insert(b"auth-3", t0 + Duration::from_secs(601)));
        assert!(!c.contains(b"auth-1"));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn finds_the_authenticator_of_an_ap_req_and_nothing_in_garbage() {
        use smb_auth::der::tlv;
        let enc = tlv(
            0x30,
            &[
                tlv(0xa0, &tlv(0x02, &[18])),
                tlv(0xa2, &tlv(0x04, b"CIPHER")),
            ]
            .concat(),
        );
        let body = tlv(
            0x30,
            &[tlv(0xa0, &tlv(0x02, &[5])), tlv(0xa4, &enc)].concat(),
        );
        let ap_req = tlv(0x6e, &body);
        let mut inner = tlv(0x06, smb_auth::kerberos::OID_KRB5);
        inner.extend_from_slice(&[1, 0]);
        inner.extend_from_slice(&ap_req);
        let token = tlv(0x60, &inner);
        assert_eq!(authenticator_cipher(&token), Some(&b"CIPHER"[..]));
        assert_eq!(authenticator_cipher(&token[..token.len() - 3]), None);
        assert_eq!(authenticator_cipher(b"NTLMSSP\0\x01\0\0\0"), None);
        assert_eq!(authenticator_cipher(&[]), None);
    }
}
