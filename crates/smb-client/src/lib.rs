//! A sans-IO SMB2/3 client ("initiator") core: it builds requests and reads responses, and
//! never touches a socket or a clock. Callers feed it whole SMB2 messages (NBSS frame
//! payloads) and send the framed bytes it appends to their output buffers; the blocking test
//! client, the in-memory bench client and the load generator's mio loops are thin drivers
//! over it.
//!
//! The pieces, lowest first:
//!
//! - [`request`]: one request as a framed, optionally signed message (MS-SMB2 2.1, 2.2.1.2,
//!   3.2.4.1.1), and [`Requests`], the MessageId allocator of a connection that sends one
//!   request at a time (MS-SMB2 3.2.4.1.3).
//! - [`Credits`]: the client's side of the credit window for pipelined requests
//!   (MS-SMB2 3.2.4.1.5, 3.2.5.1.4).
//! - [`response`]: the header fields a driver matches a response by (MS-SMB2 3.2.5.1).
//! - [`negotiate`]: the NEGOTIATE offer (MS-SMB2 2.2.3, with the 3.1.1 contexts of
//!   2.2.3.1) and what the server chose (2.2.4).
//! - [`setup`]: the two SESSION_SETUP legs (MS-SMB2 2.2.5, 2.2.6) carrying SPNEGO + NTLMSSP
//!   (anonymous or NTLMv2, from smb-auth), the session's preauth integrity hash
//!   (MS-SMB2 3.2.5.3.1) and its signing key (3.2.5.3.1, 3.1.4.2).
//! - [`conn`]: [`ClientConn`], a whole connection's state machine as a redirector runs it to
//!   reach IPC$ (MS-SMB2 3.2.4.2): negotiate, sessions, tree connect, the srvsvc pipe, echo
//!   (one at a time or pipelined under the credit window), logoff.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod conn;
pub mod credits;
pub mod negotiate;
pub mod request;
pub mod response;
pub mod setup;

pub use conn::{ClientConfig, ClientConn, ClientError, Event, SessionOpener, Step, ALL_DIALECTS};
pub use credits::Credits;
pub use negotiate::{Negotiated, Offer};
pub use request::{emit_request, request_message, set_signed, EmptyBody, Requests};
pub use response::ResponseInfo;
pub use setup::{setup_request, Auth, KerberosClient, SessionSetup};
pub use smb_auth::encryption::Cipher;

/// `s` as UTF-16LE bytes (SMB2 path names, MS-SMB2 2.2.9).
pub fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// `\\server\share` as UTF-16LE, the Buffer of a TREE_CONNECT request (MS-SMB2 2.2.9).
pub fn share_path(server: &str, share: &str) -> Vec<u8> {
    utf16(&format!("\\\\{server}\\{share}"))
}
