//! SMB2 ERROR response (MS-SMB2 2.2.2), also used for interim STATUS_PENDING responses.

use super::{fixed, pad_body, EmitBody};
use crate::error::WireError;
use crate::header::Command;
use crate::reader::u32_at;
use crate::writer::{u32_len, LeWrite};

/// StructureSize of the error response.
pub const STRUCTURE_SIZE: u16 = 9;

/// View of an SMB2 ERROR response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorResponse<'a> {
    fixed: &'a [u8; 8],
    error_data: &'a [u8],
}

impl<'a> ErrorResponse<'a> {
    /// Parses the whole message (header + body); ByteCount must fit in the message. The
    /// header's Command is not checked (any command can fail).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let command = crate::header::Header::new_unchecked(msg);
        let command = if msg.len() >= crate::HEADER_LEN {
            command.command()
        } else {
            Command::Unknown(0xFFFF)
        };
        let fixed = fixed::<8>(msg, command, STRUCTURE_SIZE)?;
        let n = u32_at(fixed, 4) as usize;
        let start = super::var_offset(8);
        let error_data = msg
            .get(start..)
            .and_then(|r| r.get(..n))
            .ok_or(WireError::BadLength { what: "ByteCount" })?;
        Ok(ErrorResponse { fixed, error_data })
    }

    /// ErrorContextCount (3.1.1).
    pub fn error_context_count(&self) -> u8 {
        self.fixed[2]
    }
    /// ByteCount.
    pub fn byte_count(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// ErrorData (ByteCount bytes).
    pub fn error_data(&self) -> &'a [u8] {
        self.error_data
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> ErrorResponseRepr<'a> {
        ErrorResponseRepr {
            error_context_count: self.error_context_count(),
            error_data: self.error_data,
        }
    }
}

/// Emits an SMB2 ERROR response body. With no ErrorData one zero byte is sent, as Windows does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorResponseRepr<'a> {
    /// ErrorContextCount.
    pub error_context_count: u8,
    /// ErrorData.
    pub error_data: &'a [u8],
}

impl ErrorResponseRepr<'static> {
    /// The common empty error body.
    pub const EMPTY: ErrorResponseRepr<'static> = ErrorResponseRepr {
        error_context_count: 0,
        error_data: &[],
    };
}

impl EmitBody for ErrorResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(STRUCTURE_SIZE);
        out.put_u8(self.error_context_count);
        out.put_u8(0);
        out.put_u32_le(u32_len(self.error_data.len()));
        out.put_bytes(self.error_data);
        pad_body(out, msg_start, 9);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set32};

    #[test]
    fn round_trip() {
        let m = message(Command::Create, true, &ErrorResponseRepr::EMPTY);
        assert_eq!(m.len(), 64 + 9);
        let v = ErrorResponse::parse(&m).unwrap();
        assert_eq!(v.repr(), ErrorResponseRepr::EMPTY);
        let r = ErrorResponseRepr {
            error_context_count: 1,
            error_data: &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        };
        let m = message(Command::Read, true, &r);
        assert_eq!(ErrorResponse::parse(&m).unwrap().repr(), r);
    }

    #[test]
    fn bad_inputs() {
        let mut m = message(Command::Create, true, &ErrorResponseRepr::EMPTY);
        set32(&mut m, 4, 2);
        assert_eq!(
            ErrorResponse::parse(&m).unwrap_err(),
            WireError::BadLength { what: "ByteCount" }
        );
        set32(&mut m, 4, u32::MAX);
        assert!(ErrorResponse::parse(&m).is_err());
        assert!(matches!(
            ErrorResponse::parse(&raw(Command::Echo, &[9, 0, 0])),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(
            ErrorResponse::parse(&raw(Command::Echo, &[4, 0, 0, 0])).unwrap_err(),
            WireError::BadStructureSize {
                command: Command::Echo,
                got: 4
            }
        );
    }
}
