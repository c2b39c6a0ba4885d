//! smb-session: the sans-IO session core of smbcore.
//!
//! No I/O and no clock reads: every input carries `now`.
#![forbid(unsafe_code)]

pub mod autodisconnect;
pub mod engine;
pub mod ids;
pub mod table;
pub mod wheel;
