//! SMB2 QUERY_INFO request and response (MS-SMB2 2.2.37, 2.2.38).

use super::{buffer, fixed, pad_body, var_offset, EmitBody, FileId};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u16_at, u32_at};
use crate::writer::{u16_len, u32_len, LeWrite};

/// InfoType values (MS-SMB2 2.2.37).
pub mod info_type {
    /// SMB2_0_INFO_FILE.
    pub const FILE: u8 = 0x01;
    /// SMB2_0_INFO_FILESYSTEM.
    pub const FILESYSTEM: u8 = 0x02;
    /// SMB2_0_INFO_SECURITY.
    pub const SECURITY: u8 = 0x03;
    /// SMB2_0_INFO_QUOTA.
    pub const QUOTA: u8 = 0x04;
}

/// View of an SMB2 QUERY_INFO request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryInfoRequest<'a> {
    fixed: &'a [u8; 40],
    input: &'a [u8],
}

impl<'a> QueryInfoRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 41;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<40>(msg, Command::QueryInfo, 41)?;
        let (input, _) = buffer(
            msg,
            var_offset(40),
            usize::from(u16_at(fixed, 8)),
            u32_at(fixed, 12) as usize,
            "QUERY_INFO Input",
        )?;
        Ok(QueryInfoRequest { fixed, input })
    }
    /// InfoType.
    pub fn info_type(&self) -> u8 {
        self.fixed[2]
    }
    /// FileInfoClass.
    pub fn file_info_class(&self) -> u8 {
        self.fixed[3]
    }
    /// OutputBufferLength.
    pub fn output_buffer_length(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// AdditionalInformation.
    pub fn additional_information(&self) -> u32 {
        u32_at(self.fixed, 16)
    }
    /// Flags.
    pub fn flags(&self) -> u32 {
        u32_at(self.fixed, 20)
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 24)
    }
    /// The input buffer.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> QueryInfoRequestRepr<'a> {
        QueryInfoRequestRepr {
            info_type: self.info_type(),
            file_info_class: self.file_info_class(),
            output_buffer_length: self.output_buffer_length(),
            additional_information: self.additional_information(),
            flags: self.flags(),
            file_id: self.file_id(),
            input: self.input,
        }
    }
}

/// Emits an SMB2 QUERY_INFO request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryInfoRequestRepr<'a> {
    /// InfoType.
    pub info_type: u8,
    /// FileInfoClass.
    pub file_info_class: u8,
    /// OutputBufferLength.
    pub output_buffer_length: u32,
    /// AdditionalInformation.
    pub additional_information: u32,
    /// Flags.
    pub flags: u32,
    /// FileId.
    pub file_id: FileId,
    /// Input buffer.
    pub input: &'a [u8],
}

impl EmitBody for QueryInfoRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(41);
        out.put_u8(self.info_type);
        out.put_u8(self.file_info_class);
        out.put_u32_le(self.output_buffer_length);
        out.put_u16_le(u16_len(HEADER_LEN + 40));
        out.put_u16_le(0);
        out.put_u32_le(u32_len(self.input.len()));
        out.put_u32_le(self.additional_information);
        out.put_u32_le(self.flags);
        self.file_id.emit(out);
        out.put_bytes(self.input);
        pad_body(out, msg_start, 41);
    }
}

/// View of an SMB2 QUERY_INFO response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryInfoResponse<'a> {
    fixed: &'a [u8; 8],
    output: &'a [u8],
}

impl<'a> QueryInfoResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 9;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, output) =
            super::parse_output_response(msg, Command::QueryInfo, "QUERY_INFO Output")?;
        Ok(QueryInfoResponse { fixed, output })
    }
    /// OutputBufferOffset.
    pub fn output_buffer_offset(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// The output buffer.
    pub fn output(&self) -> &'a [u8] {
        self.output
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> QueryInfoResponseRepr<'a> {
        QueryInfoResponseRepr {
            output: self.output,
        }
    }
}

/// Emits an SMB2 QUERY_INFO response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryInfoResponseRepr<'a> {
    /// Output buffer.
    pub output: &'a [u8],
}

impl EmitBody for QueryInfoResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        super::emit_output_response(self.output, msg_start, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16, set32};

    #[test]
    fn round_trips_and_bad() {
        let r = QueryInfoRequestRepr {
            info_type: info_type::FILE,
            file_info_class: 5,
            output_buffer_length: 24,
            file_id: FileId {
                persistent: 9,
                volatile: 10,
            },
            input: &[1, 2, 3],
            ..Default::default()
        };
        let m = message(Command::QueryInfo, false, &r);
        assert_eq!(QueryInfoRequest::parse(&m).unwrap().repr(), r);
        let mut b = m.clone();
        set32(&mut b, 12, 4);
        assert!(matches!(
            QueryInfoRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        set16(&mut b, 8, 64);
        assert!(matches!(
            QueryInfoRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let r = QueryInfoResponseRepr { output: &[5; 24] };
        let m = message(Command::QueryInfo, true, &r);
        assert_eq!(QueryInfoResponse::parse(&m).unwrap().repr(), r);
        let mut b = m.clone();
        set32(&mut b, 4, 25);
        assert!(QueryInfoResponse::parse(&b).is_err());
        assert!(QueryInfoResponse::parse(&raw(Command::QueryInfo, &[41, 0])).is_err());
    }
}
