//! smb-auth: authentication and message integrity for SMB2/SMB3.
//!
//! - [`ntlm`]: NTLMSSP (MS-NLMP) messages, acceptor, initiator, credentials.
//! - [`spnego`]: SPNEGO (RFC 4178, MS-SPNG) tokens and the
//!   [`SpnegoAcceptor`] / [`SpnegoInitiator`] that wrap NTLMSSP.
//! - [`kerberos`]: the [`KerberosAcceptor`](kerberos::KerberosAcceptor)
//!   seam for Kerberos logons (the library behind it is `smb-krb5`).
//! - [`kdf`], [`signing`], [`preauth`]: SMB2/3 key derivation, signing and the
//!   3.1.1 preauth integrity hash (MS-SMB2 3.1.4).
//! - [`encryption`]: SMB3 encryption (AES-128/256-CCM/GCM), its keys and the
//!   TRANSFORM header's AEAD (MS-SMB2 3.1.4.3).
//!
//! Protocol logic reads no clock and draws no random numbers: callers pass
//! challenges, timestamps and keys in ([`random_bytes`] is a convenience).
#![forbid(unsafe_code)]

pub mod der;
pub mod encryption;
pub mod error;
pub mod kdf;
pub mod kerberos;
pub mod ntlm;
pub mod preauth;
pub mod random;
pub mod signing;
pub mod spnego;

pub use error::AuthError;
pub use ntlm::{
    AcceptorConfig, AuthOutcome, Credential, CredentialStore, Identity, StaticCredentials,
};
pub use random::random_bytes;
pub use spnego::{SpnegoAcceptor, SpnegoInitiator, Step};

#[cfg(test)]
mod tests;
