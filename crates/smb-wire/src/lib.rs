//! smb-wire
#![forbid(unsafe_code)]
