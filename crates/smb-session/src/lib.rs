//! smb-session
#![forbid(unsafe_code)]
