//! SMB2 CLOSE request and response (MS-SMB2 2.2.15, 2.2.16).

use super::{fixed, EmitBody, FileId};
use crate::error::WireError;
use crate::header::Command;
use crate::reader::{u16_at, u32_at, u64_at};
use crate::writer::LeWrite;

/// SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB.
pub const FLAG_POSTQUERY_ATTRIB: u16 = 0x0001;

/// View of an SMB2 CLOSE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseRequest<'a> {
    fixed: &'a [u8; 24],
}

impl<'a> CloseRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 24;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(CloseRequest {
            fixed: fixed::<24>(msg, Command::Close, 24)?,
        })
    }
    /// Flags.
    pub fn flags(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 8)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> CloseRequestRepr {
        CloseRequestRepr {
            flags: self.flags(),
            file_id: self.file_id(),
        }
    }
}

/// Emits an SMB2 CLOSE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CloseRequestRepr {
    /// Flags.
    pub flags: u16,
    /// FileId.
    pub file_id: FileId,
}

impl EmitBody for CloseRequestRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(24);
        out.put_u16_le(self.flags);
        out.put_u32_le(0);
        self.file_id.emit(out);
    }
}

/// View of an SMB2 CLOSE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseResponse<'a> {
    fixed: &'a [u8; 60],
}

impl<'a> CloseResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 60;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(CloseResponse {
            fixed: fixed::<60>(msg, Command::Close, 60)?,
        })
    }
    /// Flags.
    pub fn flags(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// CreationTime, LastAccessTime, LastWriteTime, ChangeTime.
    pub fn times(&self) -> [u64; 4] {
        [
            u64_at(self.fixed, 8),
            u64_at(self.fixed, 16),
            u64_at(self.fixed, 24),
            u64_at(self.fixed, 32),
        ]
    }
    /// AllocationSize.
    pub fn allocation_size(&self) -> u64 {
        u64_at(self.fixed, 40)
    }
    /// EndofFile.
    pub fn end_of_file(&self) -> u64 {
        u64_at(self.fixed, 48)
    }
    /// FileAttributes.
    pub fn file_attributes(&self) -> u32 {
        u32_at(self.fixed, 56)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> CloseResponseRepr {
        CloseResponseRepr {
            flags: self.flags(),
            times: self.times(),
            allocation_size: self.allocation_size(),
            end_of_file: self.end_of_file(),
            file_attributes: self.file_attributes(),
        }
    }
}

/// Emits an SMB2 CLOSE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CloseResponseRepr {
    /// Flags.
    pub flags: u16,
    /// CreationTime, LastAccessTime, LastWriteTime, ChangeTime.
    pub times: [u64; 4],
    /// AllocationSize.
    pub allocation_size: u64,
    /// EndofFile.
    pub end_of_file: u64,
    /// FileAttributes.
    pub file_attributes: u32,
}

impl EmitBody for CloseResponseRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(60);
        out.put_u16_le(self.flags);
        out.put_u32_le(0);
        for t in self.times {
            out.put_u64_le(t);
        }
        out.put_u64_le(self.allocation_size);
        out.put_u64_le(self.end_of_file);
        out.put_u32_le(self.file_attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw};

    #[test]
    fn round_trips_and_bad() {
        let r = CloseRequestRepr {
            flags: FLAG_POSTQUERY_ATTRIB,
            file_id: FileId {
                persistent: 1,
                volatile: u64::MAX,
            },
        };
        let m = message(Command::Close, false, &r);
        assert_eq!(m.len(), 64 + 24);
        assert_eq!(CloseRequest::parse(&m).unwrap().repr(), r);
        assert!(matches!(
            CloseRequest::parse(&m[..m.len() - 1]),
            Err(WireError::Truncated { .. })
        ));
        let r = CloseResponseRepr {
            flags: 1,
            times: [9, 8, 7, 6],
            allocation_size: 4096,
            end_of_file: 10,
            file_attributes: 0x20,
        };
        let m = message(Command::Close, true, &r);
        assert_eq!(CloseResponse::parse(&m).unwrap().repr(), r);
        assert!(matches!(
            CloseResponse::parse(&raw(Command::Close, &[24, 0])),
            Err(WireError::BadStructureSize { got: 24, .. })
        ));
    }
}
