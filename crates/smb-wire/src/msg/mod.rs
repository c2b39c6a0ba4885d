//! SMB2 command bodies (MS-SMB2 2.2.3 to 2.2.44): one module per command, each with a
//! zero-copy request view, a response view, and `Repr` structs that emit them.
//!
//! # Conventions
//! - Every `parse(msg)` takes the **whole message**: the 64-byte header followed by the body,
//!   as yielded by [`crate::compound::Compound`]. Buffer offsets in SMB2 bodies count from the
//!   start of the header (MS-SMB2 2.2), so the parser needs it. The header itself is not
//!   re-validated by the body parsers (use [`parse_request`] / [`parse_response`] for both).
//! - StructureSize is checked first, then the fixed part's length, then every offset/length
//!   pair: a non-empty buffer must lie inside the message, after the fixed part, and not
//!   overlap another buffer. An empty buffer's offset is ignored.
//! - Views copy nothing; getters read fixed offsets of an already-checked array and cannot
//!   panic.
//! - Encoders: `XRepr::emit_body(msg_start, out)` appends the body to `out`, where `msg_start`
//!   is the index in `out` at which this message's header starts (offsets are written relative
//!   to it). [`emit_message`] writes a header and a body together.

use crate::error::WireError;
use crate::header::{flags, Command, Header, HeaderRepr, HEADER_LEN};
use crate::status::NtStatus;
use core::ops::Range;

pub mod cancel;
pub mod change_notify;
pub mod close;
pub mod create;
pub mod dir_info;
pub mod echo;
pub mod error;
pub mod flush;
pub mod ioctl;
pub mod lock;
pub mod logoff;
pub mod negotiate;
pub mod notification;
pub mod oplock_break;
pub mod query_directory;
pub mod query_info;
pub mod read;
pub mod session_setup;
pub mod set_info;
pub mod tree_connect;
pub mod tree_disconnect;
pub mod write;

/// Something that can append an SMB2 body after a header.
pub trait EmitBody {
    /// Appends the body to `out`; `msg_start` is the index in `out` of this message's header.
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>);
}

/// Appends `hdr` then `body` to `out`; returns the range the message occupies in `out`.
pub fn emit_message<B: EmitBody + ?Sized>(
    hdr: &HeaderRepr,
    body: &B,
    out: &mut Vec<u8>,
) -> Range<usize> {
    let start = out.len();
    hdr.emit(out);
    body.emit_body(start, out);
    start..out.len()
}

/// A list of little-endian `u16` values, either as wire bytes (from a parse) or as native
/// values (to emit). Equality compares the values.
#[derive(Debug, Clone, Copy)]
pub enum U16s<'a> {
    /// Raw little-endian bytes (an odd trailing byte is ignored).
    Le(&'a [u8]),
    /// Native values.
    Native(&'a [u16]),
}

impl<'a> U16s<'a> {
    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        let (le, native): (&'a [u8], &'a [u16]) = match *self {
            U16s::Le(b) => (b, &[]),
            U16s::Native(n) => (&[], n),
        };
        crate::utf16::units(le).chain(native.iter().copied())
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            U16s::Le(b) => b.len() / 2,
            U16s::Native(n) => n.len(),
        }
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` when `v` is one of the values.
    pub fn contains(&self, v: u16) -> bool {
        self.iter().any(|x| x == v)
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        match self {
            U16s::Le(b) => out.extend_from_slice(&b[..b.len() & !1]),
            U16s::Native(n) => n
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
    }
}

impl PartialEq for U16s<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}
impl Eq for U16s<'_> {}

/// A persistent + volatile file handle (MS-SMB2 2.2.14.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileId {
    /// Persistent part.
    pub persistent: u64,
    /// Volatile part.
    pub volatile: u64,
}

impl FileId {
    /// The all-ones id used by related compound operations.
    pub const RELATED: FileId = FileId {
        persistent: u64::MAX,
        volatile: u64::MAX,
    };

    pub(crate) fn at<const N: usize>(a: &[u8; N], off: usize) -> FileId {
        FileId {
            persistent: crate::reader::u64_at(a, off),
            volatile: crate::reader::u64_at(a, off + 8),
        }
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.persistent.to_le_bytes());
        out.extend_from_slice(&self.volatile.to_le_bytes());
    }
}

/// Checks StructureSize and returns the fixed part of the body (`N` bytes after the header).
#[inline]
pub(crate) fn fixed<const N: usize>(
    msg: &[u8],
    command: Command,
    structure_size: u16,
) -> Result<&[u8; N], WireError> {
    let body = msg
        .get(HEADER_LEN..)
        .ok_or(WireError::ShortHeader { len: msg.len() })?;
    let got = match body.get(..2) {
        Some(b) => u16::from_le_bytes([b[0], b[1]]),
        None => {
            return Err(WireError::Truncated {
                what: command.name(),
            })
        }
    };
    if got != structure_size {
        return Err(WireError::BadStructureSize { command, got });
    }
    body.get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated {
            what: command.name(),
        })
}

/// Validates an offset/length pair (offset from the header start) and returns the bytes and
/// their range. Empty buffers are always valid. A non-empty buffer must start at or after
/// `min_start` (the end of the fixed part) and end inside `msg`.
#[inline]
pub(crate) fn buffer<'a>(
    msg: &'a [u8],
    min_start: usize,
    offset: usize,
    len: usize,
    what: &'static str,
) -> Result<(&'a [u8], Range<usize>), WireError> {
    if len == 0 {
        return Ok((&[], 0..0));
    }
    if offset < min_start {
        return Err(WireError::BadOffset { what });
    }
    let end = offset
        .checked_add(len)
        .ok_or(WireError::BadOffset { what })?;
    let b = msg.get(offset..end).ok_or(WireError::BadOffset { what })?;
    Ok((b, offset..end))
}

/// Validates the start of a list that runs to the end of the message (negotiate and tree
/// connect contexts): it must lie at or after `min_start` and inside `msg`.
#[inline]
pub(crate) fn tail<'a>(
    msg: &'a [u8],
    min_start: usize,
    offset: usize,
    what: &'static str,
) -> Result<&'a [u8], WireError> {
    if offset < min_start {
        return Err(WireError::BadOffset { what });
    }
    msg.get(offset..).ok_or(WireError::BadOffset { what })
}

/// Fails when two non-empty ranges overlap.
#[inline]
pub(crate) fn no_overlap(
    a: &Range<usize>,
    b: &Range<usize>,
    what: &'static str,
) -> Result<(), WireError> {
    if !a.is_empty() && !b.is_empty() && a.start < b.end && b.start < a.end {
        return Err(WireError::Overlap { what });
    }
    Ok(())
}

/// Little-endian `u16` at a constant offset of a fixed part.
#[inline(always)]
pub(crate) fn reader_u16<const N: usize>(a: &[u8; N], off: usize) -> u16 {
    crate::reader::u16_at(a, off)
}

/// Body offset of the variable part for a fixed part of `fixed_len` bytes.
pub(crate) const fn var_offset(fixed_len: usize) -> usize {
    HEADER_LEN + fixed_len
}

/// Pads a body with zeros up to `structure_size` bytes (odd StructureSize counts one byte of
/// the variable buffer; MS-SMB2 2.2 says a buffer that would be empty carries one zero byte).
/// The body shared by the QUERY_INFO, QUERY_DIRECTORY and CHANGE_NOTIFY
/// responses (MS-SMB2 2.2.38, 2.2.34, 2.2.36): StructureSize 9,
/// OutputBufferOffset, OutputBufferLength, then the buffer. Returns the
/// fixed part and the checked buffer.
pub(crate) fn parse_output_response<'a>(
    msg: &'a [u8],
    command: Command,
    what: &'static str,
) -> Result<(&'a [u8; 8], &'a [u8]), WireError> {
    use crate::reader::{u16_at, u32_at};
    let fixed = fixed::<8>(msg, command, 9)?;
    let (output, _) = buffer(
        msg,
        var_offset(8),
        usize::from(u16_at(fixed, 2)),
        u32_at(fixed, 4) as usize,
        what,
    )?;
    Ok((fixed, output))
}

/// Emit the body of [`parse_output_response`]'s layout with `output` right
/// after the fixed part (offset 72).
pub(crate) fn emit_output_response(output: &[u8], msg_start: usize, out: &mut Vec<u8>) {
    use crate::writer::{u16_len, u32_len, LeWrite};
    out.put_u16_le(9);
    out.put_u16_le(u16_len(HEADER_LEN + 8));
    out.put_u32_le(u32_len(output.len()));
    out.put_bytes(output);
    pad_body(out, msg_start, 9);
}

pub(crate) fn pad_body(out: &mut Vec<u8>, msg_start: usize, structure_size: usize) {
    let want = msg_start + HEADER_LEN + structure_size;
    if out.len() < want {
        out.resize(want, 0);
    }
}

/// Offset of the current end of `out`, relative to `msg_start` (saturating in `u32`).
pub(crate) fn rel(out: &[u8], msg_start: usize) -> usize {
    out.len() - msg_start
}

/// A request, dispatched on its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Request<'a> {
    Negotiate(negotiate::NegotiateRequest<'a>),
    SessionSetup(session_setup::SessionSetupRequest<'a>),
    Logoff(logoff::LogoffRequest<'a>),
    TreeConnect(tree_connect::TreeConnectRequest<'a>),
    TreeDisconnect(tree_disconnect::TreeDisconnectRequest<'a>),
    Create(create::CreateRequest<'a>),
    Close(close::CloseRequest<'a>),
    Flush(flush::FlushRequest<'a>),
    Read(read::ReadRequest<'a>),
    Write(write::WriteRequest<'a>),
    Lock(lock::LockRequest<'a>),
    Ioctl(ioctl::IoctlRequest<'a>),
    Cancel(cancel::CancelRequest<'a>),
    Echo(echo::EchoRequest<'a>),
    QueryDirectory(query_directory::QueryDirectoryRequest<'a>),
    ChangeNotify(change_notify::ChangeNotifyRequest<'a>),
    QueryInfo(query_info::QueryInfoRequest<'a>),
    SetInfo(set_info::SetInfoRequest<'a>),
    /// An oplock or lease break acknowledgment.
    OplockBreak(oplock_break::OplockBreakRequest<'a>),
    /// A command that has no request form (SERVER_TO_CLIENT_NOTIFICATION) or an unknown one:
    /// answer NOT_SUPPORTED.
    Other(Command),
}

/// Checks the header of one message (as yielded by [`crate::compound::Compound`]), requires it
/// to be a request, and parses the body for its command.
#[inline]
pub fn parse_request(msg: &[u8]) -> Result<(Header<&[u8]>, Request<'_>), WireError> {
    let h = Header::new_checked(msg)?;
    if h.flags() & flags::SERVER_TO_REDIR != 0 {
        return Err(WireError::WrongDirection);
    }
    let r = match h.command() {
        Command::Negotiate => Request::Negotiate(negotiate::NegotiateRequest::parse(msg)?),
        Command::SessionSetup => {
            Request::SessionSetup(session_setup::SessionSetupRequest::parse(msg)?)
        }
        Command::Logoff => Request::Logoff(logoff::LogoffRequest::parse(msg)?),
        Command::TreeConnect => Request::TreeConnect(tree_connect::TreeConnectRequest::parse(msg)?),
        Command::TreeDisconnect => {
            Request::TreeDisconnect(tree_disconnect::TreeDisconnectRequest::parse(msg)?)
        }
        Command::Create => Request::Create(create::CreateRequest::parse(msg)?),
        Command::Close => Request::Close(close::CloseRequest::parse(msg)?),
        Command::Flush => Request::Flush(flush::FlushRequest::parse(msg)?),
        Command::Read => Request::Read(read::ReadRequest::parse(msg)?),
        Command::Write => Request::Write(write::WriteRequest::parse(msg)?),
        Command::Lock => Request::Lock(lock::LockRequest::parse(msg)?),
        Command::Ioctl => Request::Ioctl(ioctl::IoctlRequest::parse(msg)?),
        Command::Cancel => Request::Cancel(cancel::CancelRequest::parse(msg)?),
        Command::Echo => Request::Echo(echo::EchoRequest::parse(msg)?),
        Command::QueryDirectory => {
            Request::QueryDirectory(query_directory::QueryDirectoryRequest::parse(msg)?)
        }
        Command::ChangeNotify => {
            Request::ChangeNotify(change_notify::ChangeNotifyRequest::parse(msg)?)
        }
        Command::QueryInfo => Request::QueryInfo(query_info::QueryInfoRequest::parse(msg)?),
        Command::SetInfo => Request::SetInfo(set_info::SetInfoRequest::parse(msg)?),
        Command::OplockBreak => Request::OplockBreak(oplock_break::OplockBreakRequest::parse(msg)?),
        other => Request::Other(other),
    };
    Ok((h, r))
}

/// A response, dispatched on its command (or the error response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Response<'a> {
    Negotiate(negotiate::NegotiateResponse<'a>),
    SessionSetup(session_setup::SessionSetupResponse<'a>),
    Logoff(logoff::LogoffResponse<'a>),
    TreeConnect(tree_connect::TreeConnectResponse<'a>),
    TreeDisconnect(tree_disconnect::TreeDisconnectResponse<'a>),
    Create(create::CreateResponse<'a>),
    Close(close::CloseResponse<'a>),
    Flush(flush::FlushResponse<'a>),
    Read(read::ReadResponse<'a>),
    Write(write::WriteResponse<'a>),
    Lock(lock::LockResponse<'a>),
    Ioctl(ioctl::IoctlResponse<'a>),
    Echo(echo::EchoResponse<'a>),
    QueryDirectory(query_directory::QueryDirectoryResponse<'a>),
    ChangeNotify(change_notify::ChangeNotifyResponse<'a>),
    QueryInfo(query_info::QueryInfoResponse<'a>),
    SetInfo(set_info::SetInfoResponse<'a>),
    /// A break notification or the response to an acknowledgment.
    OplockBreak(oplock_break::OplockBreakResponse<'a>),
    Notification(notification::ServerToClientNotification<'a>),
    /// The error response (MS-SMB2 2.2.2), including interim STATUS_PENDING responses.
    Error(error::ErrorResponse<'a>),
    /// A command this crate does not parse.
    Other(Command),
}

/// `true` when a non-success `status` still comes with the command's normal body
/// (MS-SMB2 3.3.4.4: SESSION_SETUP with MORE_PROCESSING_REQUIRED, READ / IOCTL / QUERY_INFO
/// with BUFFER_OVERFLOW, IOCTL with its own failure bodies).
fn normal_body_despite(command: Command, status: NtStatus, structure_size: Option<u16>) -> bool {
    match (command, status) {
        (_, NtStatus::SUCCESS) => true,
        (Command::SessionSetup, NtStatus::MORE_PROCESSING_REQUIRED) => true,
        (Command::Read | Command::Ioctl | Command::QueryInfo, NtStatus::BUFFER_OVERFLOW) => {
            structure_size != Some(error::STRUCTURE_SIZE) || command == Command::QueryInfo
        }
        (Command::Ioctl, _) => structure_size == Some(ioctl::RESPONSE_STRUCTURE_SIZE),
        _ => false,
    }
}

/// Checks the header of one message, requires it to be a response, and parses the body: the
/// error response when the status says so, otherwise the command's response.
#[inline]
pub fn parse_response(msg: &[u8]) -> Result<(Header<&[u8]>, Response<'_>), WireError> {
    let h = Header::new_checked(msg)?;
    if h.flags() & flags::SERVER_TO_REDIR == 0 {
        return Err(WireError::WrongDirection);
    }
    let ss = msg
        .get(HEADER_LEN..HEADER_LEN + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]));
    let command = h.command();
    if command == Command::ServerToClientNotification {
        let n = notification::ServerToClientNotification::parse(msg)?;
        return Ok((h, Response::Notification(n)));
    }
    if !normal_body_despite(command, h.status(), ss) {
        return Ok((h, Response::Error(error::ErrorResponse::parse(msg)?)));
    }
    let r = match command {
        Command::Negotiate => Response::Negotiate(negotiate::NegotiateResponse::parse(msg)?),
        Command::SessionSetup => {
            Response::SessionSetup(session_setup::SessionSetupResponse::parse(msg)?)
        }
        Command::Logoff => Response::Logoff(logoff::LogoffResponse::parse(msg)?),
        Command::TreeConnect => {
            Response::TreeConnect(tree_connect::TreeConnectResponse::parse(msg)?)
        }
        Command::TreeDisconnect => {
            Response::TreeDisconnect(tree_disconnect::TreeDisconnectResponse::parse(msg)?)
        }
        Command::Create => Response::Create(create::CreateResponse::parse(msg)?),
        Command::Close => Response::Close(close::CloseResponse::parse(msg)?),
        Command::Flush => Response::Flush(flush::FlushResponse::parse(msg)?),
        Command::Read => Response::Read(read::ReadResponse::parse(msg)?),
        Command::Write => Response::Write(write::WriteResponse::parse(msg)?),
        Command::Lock => Response::Lock(lock::LockResponse::parse(msg)?),
        Command::Ioctl => Response::Ioctl(ioctl::IoctlResponse::parse(msg)?),
        Command::Echo => Response::Echo(echo::EchoResponse::parse(msg)?),
        Command::QueryDirectory => {
            Response::QueryDirectory(query_directory::QueryDirectoryResponse::parse(msg)?)
        }
        Command::ChangeNotify => {
            Response::ChangeNotify(change_notify::ChangeNotifyResponse::parse(msg)?)
        }
        Command::QueryInfo => Response::QueryInfo(query_info::QueryInfoResponse::parse(msg)?),
        Command::SetInfo => Response::SetInfo(set_info::SetInfoResponse::parse(msg)?),
        Command::OplockBreak => {
            Response::OplockBreak(oplock_break::OplockBreakResponse::parse(msg)?)
        }
        other => Response::Other(other),
    };
    Ok((h, r))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// A header for `command` followed by the body emitted by `b`.
    pub fn message<B: EmitBody + ?Sized>(command: Command, response: bool, b: &B) -> Vec<u8> {
        let mut h = HeaderRepr::request(command, 7, 0x55, 3);
        if response {
            h.flags |= flags::SERVER_TO_REDIR;
        }
        let mut out = vec![0xEE; 3]; // garbage before: offsets must be relative to msg_start
        let r = emit_message(&h, b, &mut out);
        out[r].to_vec()
    }

    /// A message with a raw body.
    pub fn raw(command: Command, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        HeaderRepr::request(command, 1, 0, 0).emit(&mut out);
        out.extend_from_slice(body);
        out
    }

    /// Patches a little-endian u16 in the body.
    pub fn set16(m: &mut [u8], body_off: usize, v: u16) {
        m[HEADER_LEN + body_off..HEADER_LEN + body_off + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// Patches a little-endian u32 in the body.
    pub fn set32(m: &mut [u8], body_off: usize, v: u32) {
        m[HEADER_LEN + body_off..HEADER_LEN + body_off + 4].copy_from_slice(&v.to_le_bytes());
    }
}

/// Defines a 4-byte body (StructureSize 4, Reserved) view and its Repr.
macro_rules! simple4 {
    ($view:ident, $repr:ident, $cmd:expr, $doc:literal) => {
        #[doc = concat!("View of the ", $doc, " body (StructureSize 4, Reserved).")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $view<'a> {
            fixed: &'a [u8; 4],
        }

        impl<'a> $view<'a> {
            /// StructureSize fixed by MS-SMB2.
            pub const STRUCTURE_SIZE: u16 = 4;

            /// Parses the whole message (header + body); see [`crate::msg`].
            #[inline]
            pub fn parse(msg: &'a [u8]) -> Result<Self, $crate::error::WireError> {
                Ok($view {
                    fixed: $crate::msg::fixed::<4>(msg, $cmd, 4)?,
                })
            }

            /// The Reserved field (ignored by receivers).
            pub fn reserved(&self) -> u16 {
                $crate::reader::u16_at(self.fixed, 2)
            }

            /// The fields as a Repr.
            pub fn repr(&self) -> $repr {
                $repr {
                    reserved: self.reserved(),
                }
            }
        }

        #[doc = concat!("Emits the ", $doc, " body.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $repr {
            /// Reserved (0 when sending).
            pub reserved: u16,
        }

        impl $crate::msg::EmitBody for $repr {
            fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
                out.extend_from_slice(&4u16.to_le_bytes());
                out.extend_from_slice(&self.reserved.to_le_bytes());
            }
        }
    };
}
pub(crate) use simple4;

#[cfg(test)]
macro_rules! simple4_tests {
    ($view:ident, $repr:ident, $cmd:expr) => {
        #[cfg(test)]
        mod tests {
            use super::*;
            use crate::error::WireError;
            use crate::msg::testutil::{message, raw};

            #[test]
            fn round_trip() {
                let m = message($cmd, false, &$repr { reserved: 0 });
                assert_eq!(m.len(), 68);
                let v = $view::parse(&m).unwrap();
                assert_eq!(v.repr(), $repr { reserved: 0 });
            }

            #[test]
            fn bad_input() {
                assert_eq!(
                    $view::parse(&raw($cmd, &[5, 0, 0, 0])).unwrap_err(),
                    WireError::BadStructureSize {
                        command: $cmd,
                        got: 5
                    }
                );
                assert!(matches!(
                    $view::parse(&raw($cmd, &[4])).unwrap_err(),
                    WireError::Truncated { .. }
                ));
                assert!(matches!(
                    $view::parse(&raw($cmd, &[4, 0, 0])).unwrap_err(),
                    WireError::Truncated { .. }
                ));
                assert!(matches!(
                    $view::parse(&[0u8; 10]).unwrap_err(),
                    WireError::ShortHeader { len: 10 }
                ));
            }
        }
    };
}
#[cfg(test)]
pub(crate) use simple4_tests;

#[cfg(test)]
mod tests {
    use super::testutil::message;
    use super::*;
    use crate::header::HeaderRepr;

    #[test]
    fn dispatches_requests() {
        let m = message(Command::Echo, false, &echo::EchoRequestRepr::default());
        let (h, r) = parse_request(&m).unwrap();
        assert_eq!(h.command(), Command::Echo);
        assert!(matches!(r, Request::Echo(_)));
        assert_eq!(parse_response(&m).unwrap_err(), WireError::WrongDirection);
        let mut m = message(Command::Flush, false, &echo::EchoRequestRepr::default());
        assert_eq!(
            parse_request(&m).unwrap_err(),
            WireError::BadStructureSize {
                command: Command::Flush,
                got: 4
            }
        );
        m[12] = 0x13; // SERVER_TO_CLIENT_NOTIFICATION has no request form
        assert_eq!(
            parse_request(&m).unwrap().1,
            Request::Other(Command::ServerToClientNotification)
        );
        m[12] = 0x77;
        assert_eq!(
            parse_request(&m).unwrap().1,
            Request::Other(Command::Unknown(0x77))
        );
        m[0] = 0;
        assert_eq!(parse_request(&m).unwrap_err(), WireError::BadProtocolId);
    }

    fn resp(command: Command, status: NtStatus, body: &dyn EmitBody) -> Vec<u8> {
        let mut h = HeaderRepr::request(command, 1, 2, 3);
        h.flags |= flags::SERVER_TO_REDIR;
        h.status = status;
        let mut out = Vec::new();
        emit_message(&h, body, &mut out);
        out
    }

    #[test]
    fn dispatches_responses_and_errors() {
        let e = error::ErrorResponseRepr::EMPTY;
        let m = resp(Command::TreeConnect, NtStatus::BAD_NETWORK_NAME, &e);
        assert!(matches!(parse_response(&m).unwrap().1, Response::Error(_)));
        let m = resp(Command::Create, NtStatus::PENDING, &e);
        assert!(matches!(parse_response(&m).unwrap().1, Response::Error(_)));
        let ss = session_setup::SessionSetupResponseRepr {
            session_flags: 0,
            security_buffer: b"challenge",
        };
        let m = resp(
            Command::SessionSetup,
            NtStatus::MORE_PROCESSING_REQUIRED,
            &ss,
        );
        match parse_response(&m).unwrap().1 {
            Response::SessionSetup(v) => assert_eq!(v.security_buffer(), b"challenge"),
            other => panic!("{other:?}"),
        }
        let m = resp(Command::SessionSetup, NtStatus::LOGON_FAILURE, &e);
        assert!(matches!(parse_response(&m).unwrap().1, Response::Error(_)));
        let rd = read::ReadResponseRepr {
            data: b"partial",
            ..Default::default()
        };
        let m = resp(Command::Read, NtStatus::BUFFER_OVERFLOW, &rd);
        assert!(matches!(parse_response(&m).unwrap().1, Response::Read(_)));
        let m = resp(Command::Read, NtStatus::END_OF_FILE, &e);
        assert!(matches!(parse_response(&m).unwrap().1, Response::Error(_)));
        let n = notification::ServerToClientNotificationRepr::SESSION_CLOSED;
        let m = resp(Command::ServerToClientNotification, NtStatus::SUCCESS, &n);
        assert!(matches!(
            parse_response(&m).unwrap().1,
            Response::Notification(_)
        ));
        let m = resp(
            Command::Lock,
            NtStatus::SUCCESS,
            &lock::LockResponseRepr::default(),
        );
        assert!(matches!(parse_response(&m).unwrap().1, Response::Lock(_)));
        let m = resp(Command::QueryDirectory, NtStatus::NO_MORE_FILES, &e);
        assert!(matches!(parse_response(&m).unwrap().1, Response::Error(_)));
        let m = resp(Command::Unknown(0x99), NtStatus::SUCCESS, &e);
        assert_eq!(
            parse_response(&m).unwrap().1,
            Response::Other(Command::Unknown(0x99))
        );
    }
}
