//! smbcore: an SMB2/SMB3 session core.
//!
//! This root crate re-exports the workspace crates so that an embedding server
//! can depend on one name. See `README.md` for the layout.
#![forbid(unsafe_code)]

pub use smb_auth as auth;
pub use smb_client as client;
/// Kerberos on MIT krb5 (feature `kerberos`).
#[cfg(feature = "kerberos")]
pub use smb_krb5 as krb5;
#[cfg(feature = "loadgen")]
pub use smb_loadgen as loadgen;
pub use smb_rpc as rpc;
pub use smb_server as server;
pub use smb_session as session;
pub use smb_wire as wire;
