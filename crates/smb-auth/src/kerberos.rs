//! Kerberos (RFC 4120, RFC 4121, MS-KILE) as a SPNEGO mechanism for SMB2
//! SESSION_SETUP: the seam between the sans-IO acceptor and a Kerberos
//! library.
//!
//! smb-auth holds no Kerberos cryptography. A [`KerberosAcceptor`] checks
//! one AP-REQ (the GSS-API InitialContextToken of RFC 4121 4.1) and returns
//! the AP-REP, the client principal, the session key and the ticket's
//! remaining lifetime. The `smb-krb5` crate implements it on MIT krb5
//! through GSS-API; tests plug in a fake.
//!
//! The SMB session key is the GSS session key (MS-KILE 3.1.1.2: the
//! acceptor subkey, else the authenticator subkey, else the ticket session
//! key), cut or zero-padded to 16 bytes (MS-SMB2 3.3.5.5.3).

use core::fmt;
use std::time::Duration;

/// DER contents of OID 1.2.840.113554.1.2.2 (Kerberos V5, RFC 4121).
pub const OID_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// DER contents of OID 1.2.840.48018.1.2.2 (MS-KRB5, the OID Windows sends
/// first, MS-SPNG 3.3.5.1).
pub const OID_MS_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// Whether `oid` (DER contents) names Kerberos, either spelling.
pub fn is_kerberos_oid(oid: &[u8]) -> bool {
    oid == OID_KRB5 || oid == OID_MS_KRB5
}

/// What a successful AP-REQ check gives.
#[derive(Clone, PartialEq, Eq)]
pub struct KerberosOutcome {
    /// The GSS-API token to send back: the AP-REP (mutual authentication),
    /// possibly empty.
    pub output: Vec<u8>,
    /// The client principal, `user@REALM`.
    pub principal: String,
    /// The GSS session key (any length; the SMB key is its first 16 bytes).
    pub session_key: Vec<u8>,
    /// How long the ticket stays valid from now (`None`: no end known).
    pub lifetime: Option<Duration>,
}

impl fmt::Debug for KerberosOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KerberosOutcome")
            .field("output_len", &self.output.len())
            .field("principal", &self.principal)
            .field("session_key", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl KerberosOutcome {
    /// The SMB2 session key: the first 16 bytes of the GSS key, right-padded
    /// with zeros when shorter (MS-SMB2 3.3.5.5.3).
    pub fn smb_session_key(&self) -> [u8; 16] {
        let mut k = [0u8; 16];
        let n = self.session_key.len().min(16);
        k[..n].copy_from_slice(&self.session_key[..n]);
        k
    }
}

/// Why an AP-REQ was refused. Each has its own NTSTATUS and counter.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KerberosFailure {
    /// Not an AP-REQ: truncated, garbled, or another mechanism's token.
    Malformed,
    /// The authenticator was seen before (replay cache, RFC 4120 3.2.3).
    Replay,
    /// The authenticator's time is outside the allowed clock skew (or the
    /// ticket is not yet valid): KRB_AP_ERR_SKEW / KRB_AP_ERR_TKT_NYV.
    Skew,
    /// The ticket is for another service principal, or for a key this
    /// server's keytab does not have.
    WrongService,
    /// The ticket or authenticator does not decrypt with the keytab's key
    /// (wrong key, modified ticket).
    BadTicket,
    /// The ticket has expired.
    Expired,
    /// The client principal is not of a realm this server's keytab has
    /// keys for (a cross-realm ticket): refused.
    ForeignRealm,
    /// Any other failure of the Kerberos library.
    Other,
}

/// NTSTATUS `STATUS_TIME_DIFFERENCE_AT_DC` (SEC_E_TIME_SKEW).
pub const STATUS_TIME_DIFFERENCE_AT_DC: u32 = 0xC000_0133;
/// NTSTATUS `STATUS_LOGON_FAILURE`.
const STATUS_LOGON_FAILURE: u32 = 0xC000_006D;
/// NTSTATUS `STATUS_INVALID_PARAMETER`.
const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;
/// NTSTATUS `STATUS_ACCESS_DENIED`.
const STATUS_ACCESS_DENIED: u32 = 0xC000_0022;
/// NTSTATUS `STATUS_WRONG_CREDENTIAL_HANDLE` (SEC_E_WRONG_PRINCIPAL).
pub const STATUS_WRONG_CREDENTIAL_HANDLE: u32 = 0xC000_02F2;

impl KerberosFailure {
    /// Every failure, in counter order.
    pub const ALL: [KerberosFailure; KerberosFailure::COUNT] = [
        KerberosFailure::Malformed,
        KerberosFailure::Replay,
        KerberosFailure::Skew,
        KerberosFailure::WrongService,
        KerberosFailure::BadTicket,
        KerberosFailure::Expired,
        KerberosFailure::ForeignRealm,
        KerberosFailure::Other,
    ];

    /// How many reasons there are (the length of per-reason counters).
    pub const COUNT: usize = 8;

    /// The NTSTATUS SESSION_SETUP answers with (the SEC_E_ codes Windows'
    /// Kerberos package returns, mapped to NTSTATUS as MS-ERREF 2.3 pairs
    /// them; a garbled token is a bad parameter as for NTLMSSP).
    pub fn ntstatus(self) -> u32 {
        match self {
            KerberosFailure::Malformed => STATUS_INVALID_PARAMETER,
            KerberosFailure::Replay => STATUS_ACCESS_DENIED,
            KerberosFailure::Skew => STATUS_TIME_DIFFERENCE_AT_DC,
            KerberosFailure::WrongService => STATUS_WRONG_CREDENTIAL_HANDLE,
            KerberosFailure::BadTicket
            | KerberosFailure::Expired
            | KerberosFailure::ForeignRealm
            | KerberosFailure::Other => STATUS_LOGON_FAILURE,
        }
    }

    /// A short name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            KerberosFailure::Malformed => "malformed",
            KerberosFailure::Replay => "replay",
            KerberosFailure::Skew => "skew",
            KerberosFailure::WrongService => "wrong-service",
            KerberosFailure::BadTicket => "bad-ticket",
            KerberosFailure::Expired => "expired",
            KerberosFailure::ForeignRealm => "foreign-realm",
            KerberosFailure::Other => "other",
        }
    }

    /// Index into [`KerberosFailure::ALL`].
    pub fn index(self) -> usize {
        KerberosFailure::ALL
            .iter()
            .position(|f| *f == self)
            .unwrap_or(KerberosFailure::ALL.len() - 1)
    }
}

impl fmt::Display for KerberosFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The client side: makes AP-REQs for one service (the load generator's
/// `--kerberos`, tests). `smb-krb5` implements it on GSS-API.
pub trait KerberosInitiator: fmt::Debug + Send + Sync {
    /// Starts one security context (a new authenticator): its AP-REQ is
    /// [`KerberosContext::token`].
    fn start(&self) -> Result<Box<dyn KerberosContext>, String>;
}

/// One client security context in progress.
pub trait KerberosContext: fmt::Debug + Send {
    /// The AP-REQ (GSS-API InitialContextToken) to send.
    fn token(&self) -> &[u8];
    /// Checks the server's AP-REP and returns the GSS session key.
    fn finish(&mut self, ap_rep: &[u8]) -> Result<Vec<u8>, String>;
}

/// Checks Kerberos AP-REQs for one service (the server's `cifs/<name>`
/// principal). Called on a shard thread for every Kerberos logon, so an
/// implementation must not block: keys are loaded once, up front (the
/// GSS-API implementation copies the keytab into memory), and the replay
/// cache lives in memory.
///
/// ```
/// use smb_auth::kerberos::{KerberosAcceptor, KerberosFailure, KerberosOutcome};
///
/// /// Accepts the token `b"ok"` as alice; everything else is garbage.
/// #[derive(Debug)]
/// struct Fake;
///
/// impl KerberosAcceptor for Fake {
///     fn accept(&self, token: &[u8]) -> Result<KerberosOutcome, KerberosFailure> {
///         if token != b"ok" {
///             return Err(KerberosFailure::Malformed);
///         }
///         Ok(KerberosOutcome {
///             output: b"ap-rep".to_vec(),
///             principal: "alice@SMBCORE.TEST".into(),
///             session_key: vec![7; 32],
///             lifetime: None,
///         })
///     }
/// }
///
/// assert_eq!(Fake.accept(b"ok").unwrap().smb_session_key(), [7; 16]);
/// ```
pub trait KerberosAcceptor: fmt::Debug + Send + Sync {
    /// Checks one AP-REQ (the mechToken of the SPNEGO exchange, a GSS-API
    /// InitialContextToken) and returns what the logon needs.
    fn accept(&self, token: &[u8]) -> Result<KerberosOutcome, KerberosFailure>;
}
