//! Typed parse errors and what the server should do about each (MS-SMB2 3.3.5.2).

use crate::header::Command;
use crate::status::NtStatus;
use core::fmt;

/// What was wrong with received bytes. Each error maps to a [`Disposition`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// A structure ended before a field named by `what`.
    Truncated {
        /// The structure or field that was cut short.
        what: &'static str,
    },
    /// A message shorter than the 64-byte SMB2 header.
    ShortHeader {
        /// Bytes available.
        len: usize,
    },
    /// The ProtocolId is not `0xFE 'S' 'M' 'B'` (or the expected form for the structure).
    BadProtocolId,
    /// The header's StructureSize is not 64.
    BadHeaderSize {
        /// The value found.
        got: u16,
    },
    /// A command body's StructureSize is not the one MS-SMB2 fixes for it.
    BadStructureSize {
        /// The command whose body was checked.
        command: Command,
        /// The value found.
        got: u16,
    },
    /// An offset/length pair points outside the message or into its fixed part.
    BadOffset {
        /// The buffer described by the pair.
        what: &'static str,
    },
    /// A length or count field is inconsistent with the data.
    BadLength {
        /// The field.
        what: &'static str,
    },
    /// Two variable buffers overlap.
    Overlap {
        /// The buffers.
        what: &'static str,
    },
    /// A structure that must be 8-byte aligned is not.
    Misaligned {
        /// The structure.
        what: &'static str,
    },
    /// A NextCommand value that is misaligned, too small, or runs past the frame.
    BadNextCommand {
        /// The value found.
        next: u32,
    },
    /// An RFC 1002 frame longer than the configured maximum.
    FrameTooLarge {
        /// Announced payload length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// An RFC 1002 frame whose type byte is not 0 (session message).
    BadFrameType {
        /// The type byte.
        got: u8,
    },
    /// A request parser got a message flagged as a response, or the reverse.
    WrongDirection,
}

/// What the server should do after a [`WireError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Answer the message with an error response carrying this status.
    Respond(NtStatus),
    /// The byte stream cannot be trusted any more: close the connection.
    DropConnection,
}

impl WireError {
    /// The server's reaction: broken framing or headers drop the connection (MS-SMB2 3.3.5.2:
    /// "the server MUST disconnect"); a malformed command body is answered with
    /// STATUS_INVALID_PARAMETER (MS-SMB2 3.3.5.2.6 and the per-command sections).
    pub fn disposition(&self) -> Disposition {
        match self {
            WireError::ShortHeader { .. }
            | WireError::BadProtocolId
            | WireError::BadHeaderSize { .. }
            | WireError::BadNextCommand { .. }
            | WireError::FrameTooLarge { .. }
            | WireError::BadFrameType { .. } => Disposition::DropConnection,
            WireError::Truncated { .. }
            | WireError::BadStructureSize { .. }
            | WireError::BadOffset { .. }
            | WireError::BadLength { .. }
            | WireError::Overlap { .. }
            | WireError::Misaligned { .. }
            | WireError::WrongDirection => Disposition::Respond(NtStatus::INVALID_PARAMETER),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { what } => write!(f, "truncated {what}"),
            WireError::ShortHeader { len } => {
                write!(f, "message of {len} bytes is shorter than the SMB2 header")
            }
            WireError::BadProtocolId => f.write_str("bad ProtocolId"),
            WireError::BadHeaderSize { got } => write!(f, "header StructureSize {got}, not 64"),
            WireError::BadStructureSize { command, got } => {
                write!(f, "bad StructureSize {got} for {command:?}")
            }
            WireError::BadOffset { what } => write!(f, "offset/length of {what} out of bounds"),
            WireError::BadLength { what } => write!(f, "inconsistent length of {what}"),
            WireError::Overlap { what } => write!(f, "overlapping buffers: {what}"),
            WireError::Misaligned { what } => write!(f, "{what} not 8-byte aligned"),
            WireError::BadNextCommand { next } => write!(f, "bad NextCommand {next}"),
            WireError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds maximum {max}")
            }
            WireError::BadFrameType { got } => write!(f, "frame type 0x{got:02X} is not 0"),
            WireError::WrongDirection => f.write_str("request/response flag does not match"),
        }
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions() {
        assert_eq!(
            WireError::BadStructureSize {
                command: Command::Echo,
                got: 5
            }
            .disposition(),
            Disposition::Respond(NtStatus::INVALID_PARAMETER)
        );
        assert_eq!(
            WireError::FrameTooLarge { len: 10, max: 5 }.disposition(),
            Disposition::DropConnection
        );
        assert_eq!(
            WireError::BadProtocolId.disposition(),
            Disposition::DropConnection
        );
        assert!(WireError::BadOffset { what: "path" }
            .to_string()
            .contains("path"));
    }
}
