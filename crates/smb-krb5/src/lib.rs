//! smb-krb5: Kerberos logons for smbcore on MIT krb5, through GSS-API.
//!
//! - [`GssAcceptor`]: the [`KerberosAcceptor`] the server plugs into the
//!   engine. It checks AP-REQs for `cifs/<name>` against a keytab that was
//!   copied into a `MEMORY:` keytab once, at start or reload
//!   ([`GssAcceptor::from_keytab`]): a logon on a shard thread reads no file.
//!   MIT's replay cache (a file written per logon) is off; the
//!   [`replay::ReplayCache`] in memory refuses replayed authenticators.
//!   The clock skew allowed is krb5.conf's `clockskew` (default 300 s),
//!   read when the acceptor is made.
//! - [`Initiation`]: the client side (smb-loadgen `--kerberos`, tests).
//!
//! No Kerberos cryptography is written here: MIT krb5 does it all. The
//! `unsafe` calls into the library are all in `gss.rs`.

pub mod gss;
pub mod replay;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use gss::{Cred, GssError, Initiation, MemoryKeytab};
use smb_auth::kerberos::{KerberosAcceptor, KerberosFailure, KerberosOutcome};

/// krb5 error codes (krb5.h) the acceptor tells apart.
mod code {
    pub const AP_ERR_BAD_INTEGRITY: i32 = -1765328353;
    pub const AP_ERR_TKT_EXPIRED: i32 = -1765328352;
    pub const AP_ERR_TKT_NYV: i32 = -1765328351;
    pub const AP_ERR_REPEAT: i32 = -1765328350;
    pub const AP_ERR_NOT_US: i32 = -1765328349;
    pub const AP_ERR_SKEW: i32 = -1765328347;
    pub const AP_ERR_BADVERSION: i32 = -1765328345;
    pub const AP_ERR_MSG_TYPE: i32 = -1765328344;
    pub const AP_ERR_MODIFIED: i32 = -1765328343;
    pub const AP_ERR_BADKEYVER: i32 = -1765328340;
    pub const AP_ERR_NOKEY: i32 = -1765328339;
    pub const AP_WRONG_PRINC: i32 = -1765328240;
    pub const KT_NOTFOUND: i32 = -1765328203;
    pub const KT_KVNONOTFOUND: i32 = -1765328154;
    /// The ASN.1 error table (asn1_err.h) spans these codes.
    pub const ASN1_FIRST: i32 = 1859794432;
    pub const ASN1_LAST: i32 = 1859794432 + 255;
}

/// Sorts a GSS-API failure into the reasons SMB answers differently.
pub fn classify(e: &GssError) -> KerberosFailure {
    match e.krb5_code() {
        code::AP_ERR_REPEAT => KerberosFailure::Replay,
        code::AP_ERR_SKEW | code::AP_ERR_TKT_NYV => KerberosFailure::Skew,
        code::AP_ERR_TKT_EXPIRED => KerberosFailure::Expired,
        code::AP_WRONG_PRINC | code::AP_ERR_NOT_US | code::KT_NOTFOUND => {
            KerberosFailure::WrongService
        }
        code::AP_ERR_BAD_INTEGRITY
        | code::AP_ERR_MODIFIED
        | code::AP_ERR_BADKEYVER
        | code::AP_ERR_NOKEY
        | code::KT_KVNONOTFOUND => KerberosFailure::BadTicket,
        code::AP_ERR_MSG_TYPE | code::AP_ERR_BADVERSION => KerberosFailure::Malformed,
        c if (code::ASN1_FIRST..=code::ASN1_LAST).contains(&c) => KerberosFailure::Malformed,
        _ if e.is_defective_token() => KerberosFailure::Malformed,
        _ => KerberosFailure::Other,
    }
}

/// The realm of `user@REALM` (`None` without one).
pub fn realm_of(principal: &str) -> Option<&str> {
    principal
        .rsplit_once('@')
        .map(|(_, r)| r)
        .filter(|r| !r.is_empty())
}

/// Whether `principal` is of one of `realms` (ASCII case-insensitive).
pub fn in_realms(principal: &str, realms: &[String]) -> bool {
    realm_of(principal).is_some_and(|r| realms.iter().any(|x| x.eq_ignore_ascii_case(r)))
}

/// Checks AP-REQs for one service against an in-memory copy of a keytab.
#[derive(Debug)]
pub struct GssAcceptor {
    cred: Cred,
    // Dropped after `cred` (field order): the credential names it.
    keytab: MemoryKeytab,
    service: String,
    replay: replay::ReplayCache,
    /// krb5.conf's clockskew: MIT adds it to the context lifetime it reports.
    skew_secs: u32,
}

static NEXT_KEYTAB: AtomicU64 = AtomicU64::new(1);

impl GssAcceptor {
    /// Loads `keytab` (a path or `FILE:path`) into memory and makes an
    /// acceptor for host-based service `service` (`cifs@host`; a
    /// `cifs/host` spelling is accepted too). The replay cache remembers an
    /// authenticator for twice the clock skew krb5.conf allows.
    pub fn from_keytab(keytab: &str, service: &str) -> Result<Self, String> {
        let service = match service.split_once('/') {
            Some((svc, host)) => format!("{svc}@{}", host.split('@').next().unwrap_or(host)),
            None => service.to_string(),
        };
        let n = NEXT_KEYTAB.fetch_add(1, Ordering::Relaxed);
        let mem = MemoryKeytab::load(keytab, &format!("smbcore-{}-{n}", std::process::id()))?;
        let cred = Cred::acceptor(&service, mem.name())
            .map_err(|e| format!("acceptor credentials for {service} from {keytab}: {e}"))?;
        let skew_secs = gss::clock_skew_secs();
        Ok(GssAcceptor {
            cred,
            keytab: mem,
            service,
            replay: replay::ReplayCache::new(Duration::from_secs(u64::from(skew_secs) * 2)),
            skew_secs,
        })
    }

    /// The host-based service name accepted (`cifs@host`).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Keys loaded from the keytab.
    pub fn keys(&self) -> usize {
        self.keytab.entries()
    }

    /// The realms whose principals may log on (those of the keytab's keys).
    pub fn realms(&self) -> &[String] {
        self.keytab.realms()
    }

    /// Authenticators remembered by the replay cache.
    pub fn replay_cache_len(&self) -> usize {
        self.replay.len()
    }
}

impl KerberosAcceptor for GssAcceptor {
    fn accept(&self, token: &[u8]) -> Result<KerberosOutcome, KerberosFailure> {
        let cipher = replay::authenticator_cipher(token).ok_or(KerberosFailure::Malformed)?;
        if self.replay.contains(cipher) {
            return Err(KerberosFailure::Replay);
        }
        let a = gss::accept(&self.cred, token).map_err(|e| {
            let reason = classify(&e);
            tracing::debug!(service = %self.service, %reason, error = %e, "AP-REQ refused");
            reason
        })?;
        // Only principals of the keytab's realms: a cross-realm ticket is
        // refused (no trust is configured here).
        if !in_realms(&a.principal, self.keytab.realms()) {
            tracing::debug!(principal = %a.principal, "principal of a foreign realm refused");
            return Err(KerberosFailure::ForeignRealm);
        }
        // Recorded only once it verified, so garbage cannot fill the cache;
        // of two copies racing on two shards, the second finds the first.
        if !self.replay.insert(cipher, Instant::now()) {
            return Err(KerberosFailure::Replay);
        }
        Ok(KerberosOutcome {
            output: a.output,
            principal: a.principal,
            session_key: a.key,
            // MIT reports endtime + clockskew - now: the ticket's own end is
            // the skew earlier.
            lifetime: (a.lifetime_secs != u32::MAX).then(|| {
                Duration::from_secs(u64::from(a.lifetime_secs.saturating_sub(self.skew_secs)))
            }),
        })
    }
}

/// Makes AP-REQs for `cifs@host` with MIT krb5 (smb-loadgen `--kerberos`).
#[derive(Debug)]
pub struct GssInitiator {
    cred: Option<Cred>,
    target: String,
}

impl GssInitiator {
    /// For target `service` (`cifs/host` or `cifs@host`): with
    /// `Some((principal, password))` a ticket is obtained from the KDC and
    /// kept in memory; with `None` the default ccache (`KRB5CCNAME`) is used.
    pub fn new(service: &str, login: Option<(&str, &str)>) -> Result<Self, String> {
        let target = match service.split_once('/') {
            Some((svc, host)) => format!("{svc}@{host}"),
            None => service.to_string(),
        };
        let cred = match login {
            Some((p, pw)) => {
                Some(Cred::initiator(p, Some(pw)).map_err(|e| format!("kinit {p}: {e}"))?)
            }
            None => None,
        };
        let me = GssInitiator { cred, target };
        // Fail now, with the library's reason, rather than on every session.
        Initiation::start(me.cred.as_ref(), &me.target)
            .map_err(|e| format!("no Kerberos ticket for {}: {e}", me.target))?;
        Ok(me)
    }
}

impl smb_auth::kerberos::KerberosInitiator for GssInitiator {
    fn start(&self) -> Result<Box<dyn smb_auth::kerberos::KerberosContext>, String> {
        Initiation::start(self.cred.as_ref(), &self.target)
            .map(|i| Box::new(i) as Box<dyn smb_auth::kerberos::KerberosContext>)
            .map_err(|e| e.to_string())
    }
}

impl smb_auth::kerberos::KerberosContext for Initiation {
    fn token(&self) -> &[u8] {
        Initiation::token(self)
    }

    fn finish(&mut self, ap_rep: &[u8]) -> Result<Vec<u8>, String> {
        Initiation::finish(self, ap_rep).map_err(|e| e.to_string())
    }
}
