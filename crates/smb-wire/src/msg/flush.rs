//! SMB2 FLUSH request and response (MS-SMB2 2.2.17, 2.2.18).

use super::{fixed, EmitBody, FileId};
use crate::error::WireError;
use crate::header::Command;
use crate::reader::{u16_at, u32_at};
use crate::writer::LeWrite;

/// View of an SMB2 FLUSH request (MS-SMB2 2.2.17): StructureSize 24, two reserved fields and
/// the FileId of the open to flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushRequest<'a> {
    fixed: &'a [u8; 24],
}

impl<'a> FlushRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 24;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(FlushRequest {
            fixed: fixed::<24>(msg, Command::Flush, 24)?,
        })
    }
    /// Reserved1 (ignored by receivers).
    pub fn reserved1(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// Reserved2 (ignored by receivers).
    pub fn reserved2(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 8)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> FlushRequestRepr {
        FlushRequestRepr {
            file_id: self.file_id(),
        }
    }
}

/// Emits an SMB2 FLUSH request (reserved fields zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushRequestRepr {
    /// FileId.
    pub file_id: FileId,
}

impl EmitBody for FlushRequestRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(24);
        out.put_u16_le(0);
        out.put_u32_le(0);
        self.file_id.emit(out);
    }
}

crate::msg::simple4!(
    FlushResponse,
    FlushResponseRepr,
    Command::Flush,
    "SMB2 FLUSH response (MS-SMB2 2.2.18)"
);

#[cfg(test)]
mod response {
    use super::*;
    crate::msg::simple4_tests!(FlushResponse, FlushResponseRepr, Command::Flush);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16};

    #[test]
    fn request_round_trip_and_bad() {
        let r = FlushRequestRepr {
            file_id: FileId {
                persistent: 1,
                volatile: 2,
            },
        };
        let m = message(Command::Flush, false, &r);
        assert_eq!(m.len(), 64 + 24);
        let v = FlushRequest::parse(&m).unwrap();
        assert_eq!(v.repr(), r);
        assert_eq!((v.reserved1(), v.reserved2()), (0, 0));
        for n in 0..m.len() {
            assert!(FlushRequest::parse(&m[..n]).is_err(), "{n}");
        }
        let mut b = m.clone();
        set16(&mut b, 0, 25);
        assert_eq!(
            FlushRequest::parse(&b),
            Err(WireError::BadStructureSize {
                command: Command::Flush,
                got: 25
            })
        );
        assert!(matches!(
            FlushRequest::parse(&raw(Command::Flush, &[24, 0, 0])),
            Err(WireError::Truncated { .. })
        ));
    }
}
