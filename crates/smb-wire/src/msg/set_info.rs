//! SMB2 SET_INFO request and response (MS-SMB2 2.2.39, 2.2.40).
//!
//! InfoType and FileInfoClass take the same values as in QUERY_INFO
//! ([`super::query_info::info_type`]); the buffer is passed on raw for the share to decode
//! (MS-FSCC 2.4 for file information, 2.5 for file system information).

use super::{buffer, fixed, pad_body, var_offset, EmitBody, FileId};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u16_at, u32_at};
use crate::writer::{u16_len, u32_len, LeWrite};

/// View of an SMB2 SET_INFO request (MS-SMB2 2.2.39). The buffer must lie after the 32-byte
/// fixed part and inside the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetInfoRequest<'a> {
    fixed: &'a [u8; 32],
    buffer: &'a [u8],
}

impl<'a> SetInfoRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 33;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<32>(msg, Command::SetInfo, 33)?;
        let (buffer, _) = buffer(
            msg,
            var_offset(32),
            usize::from(u16_at(fixed, 8)),
            u32_at(fixed, 4) as usize,
            "SET_INFO Buffer",
        )?;
        Ok(SetInfoRequest { fixed, buffer })
    }
    /// InfoType.
    pub fn info_type(&self) -> u8 {
        self.fixed[2]
    }
    /// FileInfoClass.
    pub fn file_info_class(&self) -> u8 {
        self.fixed[3]
    }
    /// BufferLength.
    pub fn buffer_length(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// BufferOffset (from the start of the header).
    pub fn buffer_offset(&self) -> u16 {
        u16_at(self.fixed, 8)
    }
    /// AdditionalInformation (security information flags for SMB2_0_INFO_SECURITY).
    pub fn additional_information(&self) -> u32 {
        u32_at(self.fixed, 12)
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 16)
    }
    /// The information to set.
    pub fn buffer(&self) -> &'a [u8] {
        self.buffer
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> SetInfoRequestRepr<'a> {
        SetInfoRequestRepr {
            info_type: self.info_type(),
            file_info_class: self.file_info_class(),
            additional_information: self.additional_information(),
            file_id: self.file_id(),
            buffer: self.buffer,
        }
    }
}

/// Emits an SMB2 SET_INFO request; the buffer follows the fixed part (BufferOffset 96).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetInfoRequestRepr<'a> {
    /// InfoType.
    pub info_type: u8,
    /// FileInfoClass.
    pub file_info_class: u8,
    /// AdditionalInformation.
    pub additional_information: u32,
    /// FileId.
    pub file_id: FileId,
    /// Buffer.
    pub buffer: &'a [u8],
}

impl EmitBody for SetInfoRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(33);
        out.put_u8(self.info_type);
        out.put_u8(self.file_info_class);
        out.put_u32_le(u32_len(self.buffer.len()));
        out.put_u16_le(u16_len(HEADER_LEN + 32));
        out.put_u16_le(0);
        out.put_u32_le(self.additional_information);
        self.file_id.emit(out);
        out.put_bytes(self.buffer);
        pad_body(out, msg_start, 33);
    }
}

/// View of an SMB2 SET_INFO response (MS-SMB2 2.2.40): StructureSize 2 and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetInfoResponse<'a> {
    fixed: &'a [u8; 2],
}

impl<'a> SetInfoResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 2;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(SetInfoResponse {
            fixed: fixed::<2>(msg, Command::SetInfo, 2)?,
        })
    }
    /// StructureSize (always 2 once parsed).
    pub fn structure_size(&self) -> u16 {
        u16_at(self.fixed, 0)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> SetInfoResponseRepr {
        SetInfoResponseRepr
    }
}

/// Emits an SMB2 SET_INFO response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetInfoResponseRepr;

impl EmitBody for SetInfoResponseRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::query_info::info_type;
    use crate::msg::testutil::{message, raw, set16, set32};

    fn sample() -> SetInfoRequestRepr<'static> {
        SetInfoRequestRepr {
            info_type: info_type::FILE,
            file_info_class: 13, // FileDispositionInformation
            additional_information: 0,
            file_id: FileId {
                persistent: 4,
                volatile: 5,
            },
            buffer: &[1],
        }
    }

    #[test]
    fn request_round_trip() {
        let r = sample();
        let m = message(Command::SetInfo, false, &r);
        assert_eq!(m.len(), 64 + 33);
        let v = SetInfoRequest::parse(&m).unwrap();
        assert_eq!(v.repr(), r);
        assert_eq!((v.buffer_offset(), v.buffer_length()), (96, 1));
        let r = SetInfoRequestRepr {
            buffer: &[9; 40],
            additional_information: 7,
            ..sample()
        };
        let m = message(Command::SetInfo, false, &r);
        assert_eq!(SetInfoRequest::parse(&m).unwrap().repr(), r);
        // An empty buffer parses (its offset is then ignored); the share decides.
        let r = SetInfoRequestRepr {
            buffer: &[],
            ..sample()
        };
        let mut m = message(Command::SetInfo, false, &r);
        set16(&mut m, 8, 0xFFFF);
        assert_eq!(SetInfoRequest::parse(&m).unwrap().buffer(), &[] as &[u8]);
    }

    #[test]
    fn request_bad() {
        let m = message(
            Command::SetInfo,
            false,
            &SetInfoRequestRepr {
                buffer: &[3; 8],
                ..sample()
            },
        );
        for n in 0..m.len() {
            assert!(SetInfoRequest::parse(&m[..n]).is_err(), "{n}");
        }
        let bad_offset = |off: u16, len: u32| {
            let mut b = m.clone();
            set16(&mut b, 8, off);
            set32(&mut b, 4, len);
            SetInfoRequest::parse(&b).map(|v| v.buffer().len())
        };
        let e = Err(WireError::BadOffset {
            what: "SET_INFO Buffer",
        });
        assert_eq!(bad_offset(95, 8), e); // into the fixed part
        assert_eq!(bad_offset(0, 8), e);
        assert_eq!(bad_offset(97, 8), e); // runs one byte past the end
        assert_eq!(bad_offset(96, 9), e);
        assert_eq!(bad_offset(96, u32::MAX), e);
        assert_eq!(bad_offset(u16::MAX, 1), e);
        assert!(bad_offset(96, 8).is_ok());
        assert!(matches!(
            SetInfoRequest::parse(&raw(Command::SetInfo, &[41, 0])),
            Err(WireError::BadStructureSize { got: 41, .. })
        ));
    }

    #[test]
    fn response() {
        let m = message(Command::SetInfo, true, &SetInfoResponseRepr);
        assert_eq!(m.len(), 66);
        assert_eq!(SetInfoResponse::parse(&m).unwrap().structure_size(), 2);
        assert!(matches!(
            SetInfoResponse::parse(&m[..65]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            SetInfoResponse::parse(&raw(Command::SetInfo, &[4, 0, 0, 0])),
            Err(WireError::BadStructureSize { got: 4, .. })
        ));
    }
}
