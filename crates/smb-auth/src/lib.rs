//! smb-auth
#![forbid(unsafe_code)]
