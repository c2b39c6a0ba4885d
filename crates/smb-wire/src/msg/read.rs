//! SMB2 READ request and response (MS-SMB2 2.2.19, 2.2.20).

use super::{buffer, fixed, pad_body, var_offset, EmitBody, FileId};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u16_at, u32_at, u64_at};
use crate::writer::{u16_len, u32_len, LeWrite};

/// View of an SMB2 READ request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest<'a> {
    fixed: &'a [u8; 48],
    channel_info: &'a [u8],
}

impl<'a> ReadRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 49;

    /// Parses the whole message (header + body). The one-byte Buffer is not required.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<48>(msg, Command::Read, 49)?;
        let (channel_info, _) = buffer(
            msg,
            var_offset(48),
            usize::from(u16_at(fixed, 44)),
            usize::from(u16_at(fixed, 46)),
            "READ ReadChannelInfo",
        )?;
        Ok(ReadRequest {
            fixed,
            channel_info,
        })
    }
    /// Padding (requested data offset in the response).
    pub fn padding(&self) -> u8 {
        self.fixed[2]
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.fixed[3]
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
    /// MinimumCount.
    pub fn minimum_count(&self) -> u32 {
        u32_at(self.fixed, 32)
    }
    /// Channel.
    pub fn channel(&self) -> u32 {
        u32_at(self.fixed, 36)
    }
    /// RemainingBytes.
    pub fn remaining_bytes(&self) -> u32 {
        u32_at(self.fixed, 40)
    }
    /// ReadChannelInfo (RDMA descriptors).
    pub fn channel_info(&self) -> &'a [u8] {
        self.channel_info
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> ReadRequestRepr<'a> {
        ReadRequestRepr {
            padding: self.padding(),
            flags: self.flags(),
            length: self.length(),
            offset: self.offset(),
            file_id: self.file_id(),
            minimum_count: self.minimum_count(),
            channel: self.channel(),
            remaining_bytes: self.remaining_bytes(),
            channel_info: self.channel_info,
        }
    }
}

/// Emits an SMB2 READ request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadRequestRepr<'a> {
    /// Padding.
    pub padding: u8,
    /// Flags.
    pub flags: u8,
    /// Length.
    pub length: u32,
    /// Offset.
    pub offset: u64,
    /// FileId.
    pub file_id: FileId,
    /// MinimumCount.
    pub minimum_count: u32,
    /// Channel.
    pub channel: u32,
    /// RemainingBytes.
    pub remaining_bytes: u32,
    /// ReadChannelInfo.
    pub channel_info: &'a [u8],
}

impl EmitBody for ReadRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(49);
        out.put_u8(self.padding);
        out.put_u8(self.flags);
        out.put_u32_le(self.length);
        out.put_u64_le(self.offset);
        self.file_id.emit(out);
        out.put_u32_le(self.minimum_count);
        out.put_u32_le(self.channel);
        out.put_u32_le(self.remaining_bytes);
        let off = if self.channel_info.is_empty() {
            0
        } else {
            HEADER_LEN + 48
        };
        out.put_u16_le(u16_len(off));
        out.put_u16_le(u16_len(self.channel_info.len()));
        out.put_bytes(self.channel_info);
        pad_body(out, msg_start, 49);
    }
}

/// View of an SMB2 READ response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadResponse<'a> {
    fixed: &'a [u8; 16],
    data: &'a [u8],
}

impl<'a> ReadResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 17;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<16>(msg, Command::Read, 17)?;
        let (data, _) = buffer(
            msg,
            var_offset(16),
            usize::from(fixed[2]),
            u32_at(fixed, 4) as usize,
            "READ Data",
        )?;
        Ok(ReadResponse { fixed, data })
    }
    /// DataOffset.
    pub fn data_offset(&self) -> u8 {
        self.fixed[2]
    }
    /// DataRemaining.
    pub fn data_remaining(&self) -> u32 {
        u32_at(self.fixed, 8)
    }
    /// Flags (3.1.1) / Reserved2.
    pub fn flags(&self) -> u32 {
        u32_at(self.fixed, 12)
    }
    /// The data read.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> ReadResponseRepr<'a> {
        ReadResponseRepr {
            data_remaining: self.data_remaining(),
            flags: self.flags(),
            data: self.data,
        }
    }
}

/// Emits an SMB2 READ response; the data follows the fixed part (DataOffset 80).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadResponseRepr<'a> {
    /// DataRemaining.
    pub data_remaining: u32,
    /// Flags.
    pub flags: u32,
    /// Data.
    pub data: &'a [u8],
}

impl EmitBody for ReadResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(17);
        out.put_u8((HEADER_LEN + 16) as u8);
        out.put_u8(0);
        out.put_u32_le(u32_len(self.data.len()));
        out.put_u32_le(self.data_remaining);
        out.put_u32_le(self.flags);
        out.put_bytes(self.data);
        pad_body(out, msg_start, 17);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16, set32};

    #[test]
    fn request_round_trip_and_bad() {
        let r = ReadRequestRepr {
            length: 4280,
            offset: 0,
            file_id: FileId {
                persistent: 3,
                volatile: 4,
            },
            minimum_count: 0,
            ..Default::default()
        };
        let m = message(Command::Read, false, &r);
        assert_eq!(m.len(), 64 + 49);
        assert_eq!(ReadRequest::parse(&m).unwrap().repr(), r);
        // Without the one-byte Buffer it still parses (clients differ).
        assert!(ReadRequest::parse(&m[..64 + 48]).is_ok());
        assert!(ReadRequest::parse(&m[..64 + 47]).is_err());
        let mut b = m.clone();
        set16(&mut b, 44, 112);
        set16(&mut b, 46, 2);
        assert!(matches!(
            ReadRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let ci = ReadRequestRepr {
            channel_info: &[1; 16],
            ..r
        };
        let m = message(Command::Read, false, &ci);
        assert_eq!(ReadRequest::parse(&m).unwrap().repr(), ci);
    }

    #[test]
    fn response_round_trip_and_bad() {
        let r = ReadResponseRepr {
            data_remaining: 0,
            flags: 0,
            data: b"\x05\x00\x02\x03dcerpc-bind-ack",
        };
        let m = message(Command::Read, true, &r);
        assert_eq!(ReadResponse::parse(&m).unwrap().repr(), r);
        let mut b = m.clone();
        set32(&mut b, 4, 1000);
        assert!(matches!(
            ReadResponse::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        b[64 + 2] = 10;
        assert!(matches!(
            ReadResponse::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        assert!(ReadResponse::parse(&raw(Command::Read, &[49, 0])).is_err());
    }
}
