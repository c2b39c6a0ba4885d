//! What a driver reads from a response header to match it to its request and follow the
//! session and tree ids the server assigned (MS-SMB2 2.2.1.2, 3.2.5.1).

use smb_wire::header::{Command, Header};
use smb_wire::{NtStatus, WireError};

/// The header fields of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInfo {
    /// Status (MS-SMB2 2.2.1.2).
    pub status: NtStatus,
    /// Command.
    pub command: Command,
    /// MessageId: the request it answers (MS-SMB2 3.2.5.1.2).
    pub message_id: u64,
    /// SessionId (a new session's id comes back in the first SESSION_SETUP response,
    /// MS-SMB2 3.2.5.3).
    pub session_id: u64,
    /// TreeId of a sync response (0 for an async one); a TREE_CONNECT response carries the
    /// new tree's id here (MS-SMB2 3.2.5.5).
    pub tree_id: u32,
    /// CreditResponse (MS-SMB2 3.2.5.1.4).
    pub credit: u16,
    /// Whether the server signed it.
    pub signed: bool,
}

impl ResponseInfo {
    /// Reads the header of the message `msg` (header + body, no frame header).
    pub fn parse(msg: &[u8]) -> Result<ResponseInfo, WireError> {
        let h = Header::new_checked(msg)?;
        Ok(ResponseInfo {
            status: h.status(),
            command: h.command(),
            message_id: h.message_id(),
            session_id: h.session_id(),
            tree_id: h.tree_id().unwrap_or(0),
            credit: h.credit(),
            signed: h.is_signed(),
        })
    }
}
