//! SMB2 WRITE request and response (MS-SMB2 2.2.21, 2.2.22).

use super::{buffer, fixed, no_overlap, pad_body, var_offset, EmitBody, FileId};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u16_at, u32_at, u64_at};
use crate::writer::{u16_len, u32_len, LeWrite};

/// View of an SMB2 WRITE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteRequest<'a> {
    fixed: &'a [u8; 48],
    data: &'a [u8],
    channel_info: &'a [u8],
}

impl<'a> WriteRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 49;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<48>(msg, Command::Write, 49)?;
        let min = var_offset(48);
        let (data, dr) = buffer(
            msg,
            min,
            usize::from(u16_at(fixed, 2)),
            u32_at(fixed, 4) as usize,
            "WRITE Data",
        )?;
        let (channel_info, cr) = buffer(
            msg,
            min,
            usize::from(u16_at(fixed, 40)),
            usize::from(u16_at(fixed, 42)),
            "WRITE WriteChannelInfo",
        )?;
        no_overlap(&dr, &cr, "WRITE Data and WriteChannelInfo")?;
        Ok(WriteRequest {
            fixed,
            data,
            channel_info,
        })
    }
    /// DataOffset.
    pub fn data_offset(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// Length.
    pub fn length(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// Offset.
    pub fn offset(&self) -> u64 {
        u64_at(self.fixed, 8)
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 16)
    }
    /// Channel.
    pub fn channel(&self) -> u32 {
        u32_at(self.fixed, 32)
    }
    /// RemainingBytes.
    pub fn remaining_bytes(&self) -> u32 {
        u32_at(self.fixed, 36)
    }
    /// Flags.
    pub fn flags(&self) -> u32 {
        u32_at(self.fixed, 44)
    }
    /// The data to write.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// WriteChannelInfo.
    pub fn channel_info(&self) -> &'a [u8] {
        self.channel_info
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> WriteRequestRepr<'a> {
        WriteRequestRepr {
            offset: self.offset(),
            file_id: self.file_id(),
            channel: self.channel(),
            remaining_bytes: self.remaining_bytes(),
            flags: self.flags(),
            data: self.data,
            channel_info: self.channel_info,
        }
    }
}

/// Emits an SMB2 WRITE request (data at offset 112, then channel info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteRequestRepr<'a> {
    /// Offset.
    pub offset: u64,
    /// FileId.
    pub file_id: FileId,
    /// Channel.
    pub channel: u32,
    /// RemainingBytes.
    pub remaining_bytes: u32,
    /// Flags.
    pub flags: u32,
    /// Data.
    pub data: &'a [u8],
    /// WriteChannelInfo.
    pub channel_info: &'a [u8],
}

impl EmitBody for WriteRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        let data_off = HEADER_LEN + 48;
        out.put_u16_le(49);
        out.put_u16_le(u16_len(data_off));
        out.put_u32_le(u32_len(self.data.len()));
        out.put_u64_le(self.offset);
        self.file_id.emit(out);
        out.put_u32_le(self.channel);
        out.put_u32_le(self.remaining_bytes);
        let ci_off = if self.channel_info.is_empty() {
            0
        } else {
            data_off + self.data.len()
        };
        out.put_u16_le(u16_len(ci_off));
        out.put_u16_le(u16_len(self.channel_info.len()));
        out.put_u32_le(self.flags);
        out.put_bytes(self.data);
        out.put_bytes(self.channel_info);
        pad_body(out, msg_start, 49);
    }
}

/// View of an SMB2 WRITE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteResponse<'a> {
    fixed: &'a [u8; 16],
}

impl<'a> WriteResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 17;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(WriteResponse {
            fixed: fixed::<16>(msg, Command::Write, 17)?,
        })
    }
    /// Count (bytes written).
    pub fn count(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// Remaining.
    pub fn remaining(&self) -> u32 {
        u32_at(self.fixed, 8)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> WriteResponseRepr {
        WriteResponseRepr {
            count: self.count(),
            remaining: self.remaining(),
        }
    }
}

/// Emits an SMB2 WRITE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteResponseRepr {
    /// Count.
    pub count: u32,
    /// Remaining.
    pub remaining: u32,
}

impl EmitBody for WriteResponseRepr {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(17);
        out.put_u16_le(0);
        out.put_u32_le(self.count);
        out.put_u32_le(self.remaining);
        out.put_u16_le(0);
        out.put_u16_le(0);
        pad_body(out, msg_start, 17);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, set16, set32};

    #[test]
    fn round_trips_and_bad() {
        let r = WriteRequestRepr {
            offset: 0,
            file_id: FileId {
                persistent: 1,
                volatile: 2,
            },
            data: b"\x05\x00\x0b\x03bind",
            ..Default::default()
        };
        let m = message(Command::Write, false, &r);
        assert_eq!(WriteRequest::parse(&m).unwrap().repr(), r);
        let mut b = m.clone();
        set32(&mut b, 4, 100);
        assert!(matches!(
            WriteRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        set16(&mut b, 2, 64);
        assert!(matches!(
            WriteRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        // Channel info overlapping the data.
        let mut b = m.clone();
        set16(&mut b, 40, 112);
        set16(&mut b, 42, 2);
        assert!(matches!(
            WriteRequest::parse(&b),
            Err(WireError::Overlap { .. })
        ));
        let r = WriteResponseRepr {
            count: 8,
            remaining: 0,
        };
        let m = message(Command::Write, true, &r);
        assert_eq!(m.len(), 64 + 17);
        assert_eq!(WriteResponse::parse(&m).unwrap().repr(), r);
    }
}
