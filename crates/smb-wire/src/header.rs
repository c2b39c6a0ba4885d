//! The 64-byte SMB2 packet header, sync and async forms (MS-SMB2 2.2.1).

use crate::error::WireError;
use crate::protocol_id::SMB2_MAGIC;
use crate::status::NtStatus;

/// Length of the SMB2 header; also the value of its StructureSize.
pub const HEADER_LEN: usize = 64;
/// Offset of the 16-byte Signature field.
pub const SIGNATURE_OFFSET: usize = 48;
/// Length of the Signature field.
pub const SIGNATURE_LEN: usize = 16;

/// Header Flags (MS-SMB2 2.2.1.1 / 2.2.1.2).
pub mod flags {
    /// SMB2_FLAGS_SERVER_TO_REDIR: the message is a response.
    pub const SERVER_TO_REDIR: u32 = 0x0000_0001;
    /// SMB2_FLAGS_ASYNC_COMMAND: the header is the async form (AsyncId).
    pub const ASYNC_COMMAND: u32 = 0x0000_0002;
    /// SMB2_FLAGS_RELATED_OPERATIONS: a related operation in a compound chain.
    pub const RELATED_OPERATIONS: u32 = 0x0000_0004;
    /// SMB2_FLAGS_SIGNED.
    pub const SIGNED: u32 = 0x0000_0008;
    /// SMB2_FLAGS_PRIORITY_MASK (3.1.1).
    pub const PRIORITY_MASK: u32 = 0x0000_0070;
    /// SMB2_FLAGS_DFS_OPERATIONS.
    pub const DFS: u32 = 0x1000_0000;
    /// SMB2_FLAGS_REPLAY_OPERATION (3.x).
    pub const REPLAY: u32 = 0x2000_0000;
}

/// SMB2 command codes (MS-SMB2 2.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// SMB2 NEGOTIATE (0x0000).
    Negotiate,
    /// SMB2 SESSION_SETUP (0x0001).
    SessionSetup,
    /// SMB2 LOGOFF (0x0002).
    Logoff,
    /// SMB2 TREE_CONNECT (0x0003).
    TreeConnect,
    /// SMB2 TREE_DISCONNECT (0x0004).
    TreeDisconnect,
    /// SMB2 CREATE (0x0005).
    Create,
    /// SMB2 CLOSE (0x0006).
    Close,
    /// SMB2 FLUSH (0x0007).
    Flush,
    /// SMB2 READ (0x0008).
    Read,
    /// SMB2 WRITE (0x0009).
    Write,
    /// SMB2 LOCK (0x000A).
    Lock,
    /// SMB2 IOCTL (0x000B).
    Ioctl,
    /// SMB2 CANCEL (0x000C).
    Cancel,
    /// SMB2 ECHO (0x000D).
    Echo,
    /// SMB2 QUERY_DIRECTORY (0x000E).
    QueryDirectory,
    /// SMB2 CHANGE_NOTIFY (0x000F).
    ChangeNotify,
    /// SMB2 QUERY_INFO (0x0010).
    QueryInfo,
    /// SMB2 SET_INFO (0x0011).
    SetInfo,
    /// SMB2 OPLOCK_BREAK (0x0012).
    OplockBreak,
    /// SMB2 SERVER_TO_CLIENT_NOTIFICATION (0x0013, 3.1.1).
    ServerToClientNotification,
    /// Any other code.
    Unknown(u16),
}

impl Command {
    /// Decodes a command code.
    pub const fn from_u16(v: u16) -> Command {
        match v {
            0x00 => Command::Negotiate,
            0x01 => Command::SessionSetup,
            0x02 => Command::Logoff,
            0x03 => Command::TreeConnect,
            0x04 => Command::TreeDisconnect,
            0x05 => Command::Create,
            0x06 => Command::Close,
            0x07 => Command::Flush,
            0x08 => Command::Read,
            0x09 => Command::Write,
            0x0A => Command::Lock,
            0x0B => Command::Ioctl,
            0x0C => Command::Cancel,
            0x0D => Command::Echo,
            0x0E => Command::QueryDirectory,
            0x0F => Command::ChangeNotify,
            0x10 => Command::QueryInfo,
            0x11 => Command::SetInfo,
            0x12 => Command::OplockBreak,
            0x13 => Command::ServerToClientNotification,
            v => Command::Unknown(v),
        }
    }

    /// The command code.
    pub const fn to_u16(self) -> u16 {
        match self {
            Command::Negotiate => 0x00,
            Command::SessionSetup => 0x01,
            Command::Logoff => 0x02,
            Command::TreeConnect => 0x03,
            Command::TreeDisconnect => 0x04,
            Command::Create => 0x05,
            Command::Close => 0x06,
            Command::Flush => 0x07,
            Command::Read => 0x08,
            Command::Write => 0x09,
            Command::Lock => 0x0A,
            Command::Ioctl => 0x0B,
            Command::Cancel => 0x0C,
            Command::Echo => 0x0D,
            Command::QueryDirectory => 0x0E,
            Command::ChangeNotify => 0x0F,
            Command::QueryInfo => 0x10,
            Command::SetInfo => 0x11,
            Command::OplockBreak => 0x12,
            Command::ServerToClientNotification => 0x13,
            Command::Unknown(v) => v,
        }
    }

    /// The MS-SMB2 name, e.g. `"SESSION_SETUP"`, or `"UNKNOWN"`.
    pub const fn name(self) -> &'static str {
        match self {
            Command::Negotiate => "NEGOTIATE",
            Command::SessionSetup => "SESSION_SETUP",
            Command::Logoff => "LOGOFF",
            Command::TreeConnect => "TREE_CONNECT",
            Command::TreeDisconnect => "TREE_DISCONNECT",
            Command::Create => "CREATE",
            Command::Close => "CLOSE",
            Command::Flush => "FLUSH",
            Command::Read => "READ",
            Command::Write => "WRITE",
            Command::Lock => "LOCK",
            Command::Ioctl => "IOCTL",
            Command::Cancel => "CANCEL",
            Command::Echo => "ECHO",
            Command::QueryDirectory => "QUERY_DIRECTORY",
            Command::ChangeNotify => "CHANGE_NOTIFY",
            Command::QueryInfo => "QUERY_INFO",
            Command::SetInfo => "SET_INFO",
            Command::OplockBreak => "OPLOCK_BREAK",
            Command::ServerToClientNotification => "SERVER_TO_CLIENT_NOTIFICATION",
            Command::Unknown(_) => "UNKNOWN",
        }
    }
}

impl From<u16> for Command {
    fn from(v: u16) -> Self {
        Command::from_u16(v)
    }
}

impl core::fmt::Display for Command {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Command::Unknown(v) => write!(f, "UNKNOWN(0x{v:04X})"),
            c => f.write_str(c.name()),
        }
    }
}

mod field {
    use core::ops::Range;
    pub const PROTOCOL_ID: Range<usize> = 0..4;
    pub const STRUCTURE_SIZE: Range<usize> = 4..6;
    pub const CREDIT_CHARGE: Range<usize> = 6..8;
    pub const STATUS: Range<usize> = 8..12;
    pub const CHANNEL_SEQUENCE: Range<usize> = 8..10;
    pub const COMMAND: Range<usize> = 12..14;
    pub const CREDIT: Range<usize> = 14..16;
    pub const FLAGS: Range<usize> = 16..20;
    pub const NEXT_COMMAND: Range<usize> = 20..24;
    pub const MESSAGE_ID: Range<usize> = 24..32;
    pub const ASYNC_ID: Range<usize> = 32..40;
    pub const PROCESS_ID: Range<usize> = 32..36;
    pub const TREE_ID: Range<usize> = 36..40;
    pub const SESSION_ID: Range<usize> = 40..48;
    pub const SIGNATURE: Range<usize> = super::SIGNATURE_OFFSET..super::HEADER_LEN;
}

/// A view of an SMB2 header at the start of a buffer (smoltcp style).
///
/// Create it with [`Header::new_checked`]; after that no getter panics. The buffer may hold
/// the whole message: [`Header::body`] returns what follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

macro_rules! get {
    ($buf:expr, $f:expr, $t:ty) => {{
        let mut b = [0u8; core::mem::size_of::<$t>()];
        b.copy_from_slice(&$buf[$f]);
        <$t>::from_le_bytes(b)
    }};
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking it; getters panic if it is shorter than 64 bytes.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer after [`Header::check`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Header<T>, WireError> {
        let h = Header::new_unchecked(buffer);
        h.check()?;
        Ok(h)
    }

    /// Checks length (at least 64 bytes), ProtocolId and StructureSize.
    #[inline]
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::ShortHeader { len: b.len() });
        }
        if b[field::PROTOCOL_ID] != SMB2_MAGIC {
            return Err(WireError::BadProtocolId);
        }
        let ss = self.structure_size();
        if usize::from(ss) != HEADER_LEN {
            return Err(WireError::BadHeaderSize { got: ss });
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The underlying buffer (header and whatever follows).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The bytes after the header.
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// StructureSize (64 in a valid header).
    pub fn structure_size(&self) -> u16 {
        get!(self.buffer.as_ref(), field::STRUCTURE_SIZE, u16)
    }

    /// CreditCharge.
    pub fn credit_charge(&self) -> u16 {
        get!(self.buffer.as_ref(), field::CREDIT_CHARGE, u16)
    }

    /// Status (responses; in 3.x requests these bytes are ChannelSequence + Reserved).
    pub fn status(&self) -> NtStatus {
        NtStatus(get!(self.buffer.as_ref(), field::STATUS, u32))
    }

    /// ChannelSequence (3.x requests).
    pub fn channel_sequence(&self) -> u16 {
        get!(self.buffer.as_ref(), field::CHANNEL_SEQUENCE, u16)
    }

    /// The raw command code.
    pub fn command_code(&self) -> u16 {
        get!(self.buffer.as_ref(), field::COMMAND, u16)
    }

    /// Command.
    pub fn command(&self) -> Command {
        Command::from_u16(self.command_code())
    }

    /// CreditRequest (requests) or CreditResponse (responses).
    pub fn credit(&self) -> u16 {
        get!(self.buffer.as_ref(), field::CREDIT, u16)
    }

    /// Flags.
    pub fn flags(&self) -> u32 {
        get!(self.buffer.as_ref(), field::FLAGS, u32)
    }

    /// `true` for a response (SERVER_TO_REDIR).
    pub fn is_response(&self) -> bool {
        self.flags() & flags::SERVER_TO_REDIR != 0
    }

    /// `true` for the async form.
    pub fn is_async(&self) -> bool {
        self.flags() & flags::ASYNC_COMMAND != 0
    }

    /// `true` for a related compound operation.
    pub fn is_related(&self) -> bool {
        self.flags() & flags::RELATED_OPERATIONS != 0
    }

    /// `true` when signed.
    pub fn is_signed(&self) -> bool {
        self.flags() & flags::SIGNED != 0
    }

    /// NextCommand: offset of the next message in a compound chain, 0 for the last.
    pub fn next_command(&self) -> u32 {
        get!(self.buffer.as_ref(), field::NEXT_COMMAND, u32)
    }

    /// MessageId.
    pub fn message_id(&self) -> u64 {
        get!(self.buffer.as_ref(), field::MESSAGE_ID, u64)
    }

    /// AsyncId, when the async form is used.
    pub fn async_id(&self) -> Option<u64> {
        self.is_async()
            .then(|| get!(self.buffer.as_ref(), field::ASYNC_ID, u64))
    }

    /// Reserved (ProcessId) of the sync form.
    pub fn process_id(&self) -> Option<u32> {
        (!self.is_async()).then(|| get!(self.buffer.as_ref(), field::PROCESS_ID, u32))
    }

    /// TreeId of the sync form (`None` in the async form).
    pub fn tree_id(&self) -> Option<u32> {
        (!self.is_async()).then(|| get!(self.buffer.as_ref(), field::TREE_ID, u32))
    }

    /// SessionId.
    pub fn session_id(&self) -> u64 {
        get!(self.buffer.as_ref(), field::SESSION_ID, u64)
    }

    /// Signature.
    pub fn signature(&self) -> [u8; 16] {
        let mut s = [0u8; 16];
        s.copy_from_slice(&self.buffer.as_ref()[field::SIGNATURE]);
        s
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn put(&mut self, f: core::ops::Range<usize>, v: &[u8]) {
        self.buffer.as_mut()[f].copy_from_slice(v);
    }

    /// Sets CreditCharge.
    pub fn set_credit_charge(&mut self, v: u16) {
        self.put(field::CREDIT_CHARGE, &v.to_le_bytes());
    }
    /// Sets Status.
    pub fn set_status(&mut self, v: NtStatus) {
        self.put(field::STATUS, &v.0.to_le_bytes());
    }
    /// Sets Command.
    pub fn set_command(&mut self, v: Command) {
        self.put(field::COMMAND, &v.to_u16().to_le_bytes());
    }
    /// Sets CreditRequest/CreditResponse.
    pub fn set_credit(&mut self, v: u16) {
        self.put(field::CREDIT, &v.to_le_bytes());
    }
    /// Sets Flags.
    pub fn set_flags(&mut self, v: u32) {
        self.put(field::FLAGS, &v.to_le_bytes());
    }
    /// Sets NextCommand.
    pub fn set_next_command(&mut self, v: u32) {
        self.put(field::NEXT_COMMAND, &v.to_le_bytes());
    }
    /// Sets MessageId.
    pub fn set_message_id(&mut self, v: u64) {
        self.put(field::MESSAGE_ID, &v.to_le_bytes());
    }
    /// Sets AsyncId (and nothing else: set ASYNC_COMMAND in Flags yourself).
    pub fn set_async_id(&mut self, v: u64) {
        self.put(field::ASYNC_ID, &v.to_le_bytes());
    }
    /// Sets TreeId of the sync form.
    pub fn set_tree_id(&mut self, v: u32) {
        self.put(field::TREE_ID, &v.to_le_bytes());
    }
    /// Sets SessionId.
    pub fn set_session_id(&mut self, v: u64) {
        self.put(field::SESSION_ID, &v.to_le_bytes());
    }
    /// Sets Signature.
    pub fn set_signature(&mut self, v: &[u8; 16]) {
        self.put(field::SIGNATURE, v);
    }
    /// The Signature field, mutable (zero it before computing a signature).
    pub fn signature_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::SIGNATURE]
    }
}

/// The sync/async part of the header (bytes 32..40).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderId {
    /// Sync form: Reserved (ProcessId) and TreeId.
    Sync {
        /// Reserved / ProcessId.
        process_id: u32,
        /// TreeId.
        tree_id: u32,
    },
    /// Async form: AsyncId.
    Async {
        /// AsyncId.
        async_id: u64,
    },
}

/// The header's fields as plain values, for emitting and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    /// CreditCharge.
    pub credit_charge: u16,
    /// Status (or ChannelSequence + Reserved in 3.x requests).
    pub status: NtStatus,
    /// Command.
    pub command: Command,
    /// CreditRequest / CreditResponse.
    pub credit: u16,
    /// Flags. On emit the ASYNC_COMMAND bit is forced to match `id`.
    pub flags: u32,
    /// NextCommand.
    pub next_command: u32,
    /// MessageId.
    pub message_id: u64,
    /// Sync (TreeId) or async (AsyncId) form.
    pub id: HeaderId,
    /// SessionId.
    pub session_id: u64,
    /// Signature.
    pub signature: [u8; 16],
}

impl HeaderRepr {
    /// A sync request header with everything else zero.
    pub fn request(command: Command, message_id: u64, session_id: u64, tree_id: u32) -> Self {
        HeaderRepr {
            credit_charge: 1,
            status: NtStatus::SUCCESS,
            command,
            credit: 1,
            flags: 0,
            next_command: 0,
            message_id,
            id: HeaderId::Sync {
                process_id: 0,
                tree_id,
            },
            session_id,
            signature: [0; 16],
        }
    }

    /// Reads a checked header.
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> HeaderRepr {
        let id = match h.async_id() {
            Some(async_id) => HeaderId::Async { async_id },
            None => HeaderId::Sync {
                process_id: h.process_id().unwrap_or(0),
                tree_id: h.tree_id().unwrap_or(0),
            },
        };
        HeaderRepr {
            credit_charge: h.credit_charge(),
            status: h.status(),
            command: h.command(),
            credit: h.credit(),
            flags: h.flags(),
            next_command: h.next_command(),
            message_id: h.message_id(),
            id,
            session_id: h.session_id(),
            signature: h.signature(),
        }
    }

    /// The flags as emitted (ASYNC_COMMAND matching `id`).
    pub fn wire_flags(&self) -> u32 {
        match self.id {
            HeaderId::Sync { .. } => self.flags & !flags::ASYNC_COMMAND,
            HeaderId::Async { .. } => self.flags | flags::ASYNC_COMMAND,
        }
    }

    /// Appends the 64-byte header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut h = [0u8; HEADER_LEN];
        h[field::PROTOCOL_ID].copy_from_slice(&SMB2_MAGIC);
        h[field::STRUCTURE_SIZE].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        h[field::CREDIT_CHARGE].copy_from_slice(&self.credit_charge.to_le_bytes());
        h[field::STATUS].copy_from_slice(&self.status.0.to_le_bytes());
        h[field::COMMAND].copy_from_slice(&self.command.to_u16().to_le_bytes());
        h[field::CREDIT].copy_from_slice(&self.credit.to_le_bytes());
        h[field::FLAGS].copy_from_slice(&self.wire_flags().to_le_bytes());
        h[field::NEXT_COMMAND].copy_from_slice(&self.next_command.to_le_bytes());
        h[field::MESSAGE_ID].copy_from_slice(&self.message_id.to_le_bytes());
        match self.id {
            HeaderId::Sync {
                process_id,
                tree_id,
            } => {
                h[field::PROCESS_ID].copy_from_slice(&process_id.to_le_bytes());
                h[field::TREE_ID].copy_from_slice(&tree_id.to_le_bytes());
            }
            HeaderId::Async { async_id } => {
                h[field::ASYNC_ID].copy_from_slice(&async_id.to_le_bytes());
            }
        }
        h[field::SESSION_ID].copy_from_slice(&self.session_id.to_le_bytes());
        h[field::SIGNATURE].copy_from_slice(&self.signature);
        out.extend_from_slice(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HeaderRepr {
        HeaderRepr {
            credit_charge: 3,
            status: NtStatus::ACCESS_DENIED,
            command: Command::TreeConnect,
            credit: 31,
            flags: flags::SERVER_TO_REDIR | flags::SIGNED,
            next_command: 0,
            message_id: 0x1122_3344_5566_7788,
            id: HeaderId::Sync {
                process_id: 0xFEFF,
                tree_id: 7,
            },
            session_id: 0xAABB_CCDD_0000_0001,
            signature: [5; 16],
        }
    }

    #[test]
    fn emit_parse_sync() {
        let r = sample();
        let mut out = Vec::new();
        r.emit(&mut out);
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(&out[..6], &[0xFE, b'S', b'M', b'B', 64, 0]);
        let h = Header::new_checked(&out[..]).unwrap();
        assert_eq!(h.command(), Command::TreeConnect);
        assert_eq!(h.tree_id(), Some(7));
        assert_eq!(h.async_id(), None);
        assert!(h.is_response() && h.is_signed() && !h.is_async());
        assert_eq!(&out[SIGNATURE_OFFSET..], &[5; 16]);
        assert_eq!(HeaderRepr::parse(&h), r);
    }

    #[test]
    fn emit_parse_async_sets_flag() {
        let mut r = sample();
        r.id = HeaderId::Async { async_id: 99 };
        let mut out = Vec::new();
        r.emit(&mut out);
        let h = Header::new_checked(&out[..]).unwrap();
        assert!(h.is_async());
        assert_eq!(h.async_id(), Some(99));
        assert_eq!(h.tree_id(), None);
        let back = HeaderRepr::parse(&h);
        assert_eq!(back.id, r.id);
        assert_eq!(back.flags, r.flags | flags::ASYNC_COMMAND);
    }

    #[test]
    fn setters() {
        let mut out = Vec::new();
        sample().emit(&mut out);
        let mut h = Header::new_checked(&mut out[..]).unwrap();
        h.set_message_id(5);
        h.set_session_id(6);
        h.set_tree_id(8);
        h.set_status(NtStatus::SUCCESS);
        h.set_command(Command::Echo);
        h.set_credit(2);
        h.signature_mut().fill(0);
        assert_eq!(h.message_id(), 5);
        assert_eq!(h.session_id(), 6);
        assert_eq!(h.tree_id(), Some(8));
        assert_eq!(h.status(), NtStatus::SUCCESS);
        assert_eq!(h.command(), Command::Echo);
        assert_eq!(h.credit(), 2);
        assert_eq!(h.signature(), [0; 16]);
    }

    #[test]
    fn rejects_bad_headers() {
        let mut out = Vec::new();
        sample().emit(&mut out);
        for len in 0..HEADER_LEN {
            assert_eq!(
                Header::new_checked(&out[..len]).unwrap_err(),
                WireError::ShortHeader { len }
            );
        }
        let mut bad = out.clone();
        bad[0] = 0xFF;
        assert_eq!(
            Header::new_checked(&bad[..]).unwrap_err(),
            WireError::BadProtocolId
        );
        let mut bad = out.clone();
        bad[4] = 65;
        assert_eq!(
            Header::new_checked(&bad[..]).unwrap_err(),
            WireError::BadHeaderSize { got: 65 }
        );
    }

    #[test]
    fn command_codes_round_trip() {
        for v in 0..=0x14u16 {
            assert_eq!(Command::from_u16(v).to_u16(), v);
        }
        assert_eq!(Command::from_u16(0x13), Command::ServerToClientNotification);
        assert_eq!(Command::from_u16(0x14), Command::Unknown(0x14));
        assert_eq!(Command::SessionSetup.to_string(), "SESSION_SETUP");
        assert_eq!(Command::Unknown(0x99).to_string(), "UNKNOWN(0x0099)");
    }
}
