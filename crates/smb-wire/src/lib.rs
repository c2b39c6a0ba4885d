//! smb-wire: zero-copy SMB2/SMB3 wire format (MS-SMB2 section 2).
//!
//! Views borrow the input bytes and are checked once when created; after that no accessor can
//! panic (the style of smoltcp's `wire` module). Encoders append to a caller-supplied
//! `Vec<u8>`, so a reused buffer makes the steady state allocation-free.
//!
//! Layers, outermost first:
//! - [`frame`]: RFC 1002 direct-TCP framing (`0x00` + 24-bit big-endian length).
//! - [`protocol_id`]: what a frame payload holds (SMB2, SMB1, TRANSFORM, compressed).
//! - [`compound`]: the messages of a compound chain (`NextCommand`).
//! - [`header`]: the 64-byte SMB2 header.
//! - [`msg`]: one module per command with request/response views and encoders.
//! - [`smb1`], [`transform`]: SMB1 multi-protocol NEGOTIATE and the TRANSFORM header.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod compound;
pub mod error;
pub mod frame;
pub mod header;
pub mod msg;
pub mod protocol_id;
pub mod reader;
pub mod smb1;
pub mod status;
pub mod transform;
pub mod utf16;
pub mod writer;

pub use error::{Disposition, WireError};
pub use header::{Command, Header, HeaderRepr, HEADER_LEN};
pub use status::NtStatus;
