//! SMB2 IOCTL request and response (MS-SMB2 2.2.31, 2.2.32) and the VALIDATE_NEGOTIATE_INFO
//! structures (2.2.31.4, 2.2.32.6).

use super::{buffer, fixed, no_overlap, pad_body, var_offset, EmitBody, FileId, U16s};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u32_at, Reader};
use crate::writer::{u16_len, u32_len, LeWrite};

/// FSCTL_DFS_GET_REFERRALS.
pub const FSCTL_DFS_GET_REFERRALS: u32 = 0x0006_0194;
/// FSCTL_DFS_GET_REFERRALS_EX.
pub const FSCTL_DFS_GET_REFERRALS_EX: u32 = 0x0006_01B0;
/// FSCTL_PIPE_PEEK.
pub const FSCTL_PIPE_PEEK: u32 = 0x0011_400C;
/// FSCTL_PIPE_WAIT.
pub const FSCTL_PIPE_WAIT: u32 = 0x0011_0018;
/// FSCTL_PIPE_TRANSCEIVE.
pub const FSCTL_PIPE_TRANSCEIVE: u32 = 0x0011_C017;
/// FSCTL_SRV_COPYCHUNK.
pub const FSCTL_SRV_COPYCHUNK: u32 = 0x0014_40F2;
/// FSCTL_SRV_COPYCHUNK_WRITE.
pub const FSCTL_SRV_COPYCHUNK_WRITE: u32 = 0x0014_80F2;
/// FSCTL_SRV_ENUMERATE_SNAPSHOTS.
pub const FSCTL_SRV_ENUMERATE_SNAPSHOTS: u32 = 0x0014_4064;
/// FSCTL_SRV_REQUEST_RESUME_KEY.
pub const FSCTL_SRV_REQUEST_RESUME_KEY: u32 = 0x0014_0078;
/// FSCTL_SRV_READ_HASH.
pub const FSCTL_SRV_READ_HASH: u32 = 0x0014_41BB;
/// FSCTL_LMR_REQUEST_RESILIENCY.
pub const FSCTL_LMR_REQUEST_RESILIENCY: u32 = 0x0014_01D4;
/// FSCTL_QUERY_NETWORK_INTERFACE_INFO.
pub const FSCTL_QUERY_NETWORK_INTERFACE_INFO: u32 = 0x0014_01FC;
/// FSCTL_SET_REPARSE_POINT.
pub const FSCTL_SET_REPARSE_POINT: u32 = 0x0009_00A4;
/// FSCTL_VALIDATE_NEGOTIATE_INFO.
pub const FSCTL_VALIDATE_NEGOTIATE_INFO: u32 = 0x0014_0204;

/// SMB2_0_IOCTL_IS_FSCTL.
pub const FLAG_IS_FSCTL: u32 = 0x0000_0001;

/// StructureSize of the IOCTL response.
pub const RESPONSE_STRUCTURE_SIZE: u16 = 49;

/// The Input buffer (InputOffset/InputCount at 24/28 of the fixed part) and
/// the Output buffer (offset/count at `output_at`/`output_at + 4`) of an IOCTL
/// request or response, checked to lie in the message and not to overlap.
fn in_out_buffers<'a, const N: usize>(
    msg: &'a [u8],
    fixed: &[u8; N],
    min: usize,
    output_at: usize,
) -> Result<(&'a [u8], &'a [u8]), WireError> {
    let (input, ir) = buffer(
        msg,
        min,
        u32_at(fixed, 24) as usize,
        u32_at(fixed, 28) as usize,
        "IOCTL Input",
    )?;
    let (output, or) = buffer(
        msg,
        min,
        u32_at(fixed, output_at) as usize,
        u32_at(fixed, output_at + 4) as usize,
        "IOCTL Output",
    )?;
    no_overlap(&ir, &or, "IOCTL Input and Output")?;
    Ok((input, output))
}

/// View of an SMB2 IOCTL request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoctlRequest<'a> {
    fixed: &'a [u8; 56],
    input: &'a [u8],
    output: &'a [u8],
}

impl<'a> IoctlRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 57;

    /// Parses the whole message (header + body); input and output buffers must not overlap.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<56>(msg, Command::Ioctl, 57)?;
        let (input, output) = in_out_buffers(msg, fixed, var_offset(56), 36)?;
        Ok(IoctlRequest {
            fixed,
            input,
            output,
        })
    }
    /// CtlCode.
    pub fn ctl_code(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 8)
    }
    /// MaxInputResponse.
    pub fn max_input_response(&self) -> u32 {
        u32_at(self.fixed, 32)
    }
    /// MaxOutputResponse.
    pub fn max_output_response(&self) -> u32 {
        u32_at(self.fixed, 44)
    }
    /// Flags.
    pub fn flags(&self) -> u32 {
        u32_at(self.fixed, 48)
    }
    /// `true` for an FSCTL (SMB2_0_IOCTL_IS_FSCTL).
    pub fn is_fsctl(&self) -> bool {
        self.flags() & FLAG_IS_FSCTL != 0
    }
    /// The input buffer.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }
    /// The output buffer (normally empty in requests).
    pub fn output(&self) -> &'a [u8] {
        self.output
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> IoctlRequestRepr<'a> {
        IoctlRequestRepr {
            ctl_code: self.ctl_code(),
            file_id: self.file_id(),
            max_input_response: self.max_input_response(),
            max_output_response: self.max_output_response(),
            flags: self.flags(),
            input: self.input,
            output: self.output,
        }
    }
}

/// Emits an SMB2 IOCTL request (input at offset 120, output after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoctlRequestRepr<'a> {
    /// CtlCode.
    pub ctl_code: u32,
    /// FileId.
    pub file_id: FileId,
    /// MaxInputResponse.
    pub max_input_response: u32,
    /// MaxOutputResponse.
    pub max_output_response: u32,
    /// Flags.
    pub flags: u32,
    /// Input.
    pub input: &'a [u8],
    /// Output.
    pub output: &'a [u8],
}

impl EmitBody for IoctlRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        let in_off = HEADER_LEN + 56;
        out.put_u16_le(57);
        out.put_u16_le(0);
        out.put_u32_le(self.ctl_code);
        self.file_id.emit(out);
        out.put_u32_le(u32_len(in_off));
        out.put_u32_le(u32_len(self.input.len()));
        out.put_u32_le(self.max_input_response);
        out.put_u32_le(u32_len(in_off + self.input.len()));
        out.put_u32_le(u32_len(self.output.len()));
        out.put_u32_le(self.max_output_response);
        out.put_u32_le(self.flags);
        out.put_u32_le(0);
        out.put_bytes(self.input);
        out.put_bytes(self.output);
        pad_body(out, msg_start, 57);
    }
}

/// View of an SMB2 IOCTL response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoctlResponse<'a> {
    fixed: &'a [u8; 48],
    input: &'a [u8],
    output: &'a [u8],
}

impl<'a> IoctlResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = RESPONSE_STRUCTURE_SIZE;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<48>(msg, Command::Ioctl, 49)?;
        let (input, output) = in_out_buffers(msg, fixed, var_offset(48), 32)?;
        Ok(IoctlResponse {
            fixed,
            input,
            output,
        })
    }
    /// CtlCode.
    pub fn ctl_code(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 8)
    }
    /// Flags.
    pub fn flags(&self) -> u32 {
        u32_at(self.fixed, 40)
    }
    /// The input buffer (normally empty in responses).
    pub fn input(&self) -> &'a [u8] {
        self.input
    }
    /// The output buffer.
    pub fn output(&self) -> &'a [u8] {
        self.output
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> IoctlResponseRepr<'a> {
        IoctlResponseRepr {
            ctl_code: self.ctl_code(),
            file_id: self.file_id(),
            flags: self.flags(),
            input: self.input,
            output: self.output,
        }
    }
}

/// Emits an SMB2 IOCTL response (input at offset 112, output after it, 8-aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoctlResponseRepr<'a> {
    /// CtlCode.
    pub ctl_code: u32,
    /// FileId.
    pub file_id: FileId,
    /// Flags.
    pub flags: u32,
    /// Input.
    pub input: &'a [u8],
    /// Output.
    pub output: &'a [u8],
}

impl EmitBody for IoctlResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        let body = out.len();
        let in_off = HEADER_LEN + 48;
        out.put_u16_le(49);
        out.put_u16_le(0);
        out.put_u32_le(self.ctl_code);
        self.file_id.emit(out);
        out.put_u32_le(u32_len(in_off));
        out.put_u32_le(u32_len(self.input.len()));
        out.put_u32_le(0);
        out.put_u32_le(u32_len(self.output.len()));
        out.put_u32_le(self.flags);
        out.put_u32_le(0);
        out.put_bytes(self.input);
        out.pad_to(msg_start, 8);
        out.patch_u32_le(body + 32, u32_len(out.len() - msg_start));
        out.put_bytes(self.output);
        pad_body(out, msg_start, 49);
    }
}

/// VALIDATE_NEGOTIATE_INFO request (MS-SMB2 2.2.31.4), the IOCTL input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidateNegotiateInfoRequest<'a> {
    /// Capabilities.
    pub capabilities: u32,
    /// Guid (the client GUID).
    pub guid: [u8; 16],
    /// SecurityMode.
    pub security_mode: u16,
    /// Dialects.
    pub dialects: U16s<'a>,
}

impl<'a> ValidateNegotiateInfoRequest<'a> {
    /// Parses the IOCTL input buffer.
    #[inline]
    pub fn parse(input: &'a [u8]) -> Result<Self, WireError> {
        let what = "VALIDATE_NEGOTIATE_INFO";
        let mut r = Reader::new(input);
        let capabilities = r.take_u32_le().ok_or(WireError::Truncated { what })?;
        let guid = *r.take_array::<16>().ok_or(WireError::Truncated { what })?;
        let security_mode = r.take_u16_le().ok_or(WireError::Truncated { what })?;
        let n = r.take_u16_le().ok_or(WireError::Truncated { what })?;
        let d = r.take(usize::from(n) * 2).ok_or(WireError::BadLength {
            what: "DialectCount",
        })?;
        Ok(ValidateNegotiateInfoRequest {
            capabilities,
            guid,
            security_mode,
            dialects: U16s::Le(d),
        })
    }

    /// Appends the structure.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32_le(self.capabilities);
        out.put_bytes(&self.guid);
        out.put_u16_le(self.security_mode);
        out.put_u16_le(u16_len(self.dialects.len()));
        self.dialects.emit(out);
    }
}

/// VALIDATE_NEGOTIATE_INFO response (MS-SMB2 2.2.32.6), the IOCTL output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValidateNegotiateInfoResponse {
    /// Capabilities.
    pub capabilities: u32,
    /// Guid (the server GUID).
    pub guid: [u8; 16],
    /// SecurityMode.
    pub security_mode: u16,
    /// Dialect.
    pub dialect: u16,
}

impl ValidateNegotiateInfoResponse {
    /// Encoded length.
    pub const LEN: usize = 24;

    /// Parses the IOCTL output buffer.
    #[inline]
    pub fn parse(output: &[u8]) -> Result<Self, WireError> {
        let what = "VALIDATE_NEGOTIATE_INFO response";
        let a: &[u8; 24] = output
            .get(..24)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::Truncated { what })?;
        Ok(ValidateNegotiateInfoResponse {
            capabilities: u32_at(a, 0),
            guid: crate::reader::arr16_at(a, 4),
            security_mode: crate::reader::u16_at(a, 20),
            dialect: crate::reader::u16_at(a, 22),
        })
    }

    /// Appends the structure.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32_le(self.capabilities);
        out.put_bytes(&self.guid);
        out.put_u16_le(self.security_mode);
        out.put_u16_le(self.dialect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set32};

    #[test]
    fn request_round_trip_and_bad() {
        let r = IoctlRequestRepr {
            ctl_code: FSCTL_PIPE_TRANSCEIVE,
            file_id: FileId {
                persistent: 1,
                volatile: 2,
            },
            max_output_response: 4280,
            flags: FLAG_IS_FSCTL,
            input: b"\x05\x00\x00\x03request-pdu",
            ..Default::default()
        };
        let m = message(Command::Ioctl, false, &r);
        let v = IoctlRequest::parse(&m).unwrap();
        assert!(v.is_fsctl());
        assert_eq!(v.repr(), r);
        let mut b = m.clone();
        set32(&mut b, 28, 0xFFFF_FFFF);
        assert!(matches!(
            IoctlRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        set32(&mut b, 24, 0xFFFF_FFF0);
        assert!(matches!(
            IoctlRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        set32(&mut b, 36, 122);
        set32(&mut b, 40, 4);
        assert!(matches!(
            IoctlRequest::parse(&b),
            Err(WireError::Overlap { .. })
        ));
        assert!(IoctlRequest::parse(&raw(Command::Ioctl, &[49, 0])).is_err());
    }

    #[test]
    fn response_round_trip() {
        let r = IoctlResponseRepr {
            ctl_code: FSCTL_VALIDATE_NEGOTIATE_INFO,
            file_id: FileId::RELATED,
            flags: 0,
            input: &[],
            output: &[7; 24],
        };
        let m = message(Command::Ioctl, true, &r);
        assert_eq!(IoctlResponse::parse(&m).unwrap().repr(), r);
        let mut b = m.clone();
        set32(&mut b, 36, 25);
        assert!(IoctlResponse::parse(&b).is_err());
    }

    #[test]
    fn validate_negotiate_info() {
        let q = ValidateNegotiateInfoRequest {
            capabilities: 0x7F,
            guid: [1; 16],
            security_mode: 1,
            dialects: U16s::Native(&[0x0202, 0x0300, 0x0302]),
        };
        let mut out = Vec::new();
        q.emit(&mut out);
        assert_eq!(out.len(), 24 + 6);
        assert_eq!(ValidateNegotiateInfoRequest::parse(&out).unwrap(), q);
        assert!(ValidateNegotiateInfoRequest::parse(&out[..out.len() - 1]).is_err());
        assert!(ValidateNegotiateInfoRequest::parse(&out[..10]).is_err());
        let s = ValidateNegotiateInfoResponse {
            capabilities: 0,
            guid: [2; 16],
            security_mode: 1,
            dialect: 0x0302,
        };
        let mut out = Vec::new();
        s.emit(&mut out);
        assert_eq!(out.len(), ValidateNegotiateInfoResponse::LEN);
        assert_eq!(ValidateNegotiateInfoResponse::parse(&out).unwrap(), s);
        assert!(ValidateNegotiateInfoResponse::parse(&out[..23]).is_err());
    }
}
