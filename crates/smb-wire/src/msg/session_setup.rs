//! SMB2 SESSION_SETUP request and response (MS-SMB2 2.2.5, 2.2.6).

use super::{buffer, fixed, pad_body, var_offset, EmitBody};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u16_at, u32_at, u64_at};
use crate::writer::{u16_len, LeWrite};

/// Request Flags (MS-SMB2 2.2.5).
pub const FLAG_BINDING: u8 = 0x01;

/// Response SessionFlags (MS-SMB2 2.2.6).
pub mod session_flags {
    /// SMB2_SESSION_FLAG_IS_GUEST.
    pub const IS_GUEST: u16 = 0x0001;
    /// SMB2_SESSION_FLAG_IS_NULL (anonymous).
    pub const IS_NULL: u16 = 0x0002;
    /// SMB2_SESSION_FLAG_ENCRYPT_DATA.
    pub const ENCRYPT_DATA: u16 = 0x0004;
}

/// View of an SMB2 SESSION_SETUP request (MS-SMB2 2.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSetupRequest<'a> {
    fixed: &'a [u8; 24],
    security_buffer: &'a [u8],
}

impl<'a> SessionSetupRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 25;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<24>(msg, Command::SessionSetup, 25)?;
        let (security_buffer, _) = buffer(
            msg,
            var_offset(24),
            usize::from(u16_at(fixed, 12)),
            usize::from(u16_at(fixed, 14)),
            "SESSION_SETUP SecurityBuffer",
        )?;
        Ok(SessionSetupRequest {
            fixed,
            security_buffer,
        })
    }

    /// Flags (FLAG_BINDING).
    pub fn flags(&self) -> u8 {
        self.fixed[2]
    }
    /// SecurityMode.
    pub fn security_mode(&self) -> u8 {
        self.fixed[3]
    }
    /// Capabilities.
    pub fn capabilities(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// Channel.
    pub fn channel(&self) -> u32 {
        u32_at(self.fixed, 8)
    }
    /// PreviousSessionId.
    pub fn previous_session_id(&self) -> u64 {
        u64_at(self.fixed, 16)
    }
    /// The security buffer (SPNEGO / NTLMSSP token).
    pub fn security_buffer(&self) -> &'a [u8] {
        self.security_buffer
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> SessionSetupRequestRepr<'a> {
        SessionSetupRequestRepr {
            flags: self.flags(),
            security_mode: self.security_mode(),
            capabilities: self.capabilities(),
            channel: self.channel(),
            previous_session_id: self.previous_session_id(),
            security_buffer: self.security_buffer,
        }
    }
}

/// Emits an SMB2 SESSION_SETUP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionSetupRequestRepr<'a> {
    /// Flags.
    pub flags: u8,
    /// SecurityMode.
    pub security_mode: u8,
    /// Capabilities.
    pub capabilities: u32,
    /// Channel.
    pub channel: u32,
    /// PreviousSessionId.
    pub previous_session_id: u64,
    /// SecurityBuffer.
    pub security_buffer: &'a [u8],
}

impl EmitBody for SessionSetupRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(25);
        out.put_u8(self.flags);
        out.put_u8(self.security_mode);
        out.put_u32_le(self.capabilities);
        out.put_u32_le(self.channel);
        out.put_u16_le(u16_len(HEADER_LEN + 24));
        out.put_u16_le(u16_len(self.security_buffer.len()));
        out.put_u64_le(self.previous_session_id);
        out.put_bytes(self.security_buffer);
        pad_body(out, msg_start, 25);
    }
}

/// View of an SMB2 SESSION_SETUP response (MS-SMB2 2.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSetupResponse<'a> {
    fixed: &'a [u8; 8],
    security_buffer: &'a [u8],
}

impl<'a> SessionSetupResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 9;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<8>(msg, Command::SessionSetup, 9)?;
        let (security_buffer, _) = buffer(
            msg,
            var_offset(8),
            usize::from(u16_at(fixed, 4)),
            usize::from(u16_at(fixed, 6)),
            "SESSION_SETUP SecurityBuffer",
        )?;
        Ok(SessionSetupResponse {
            fixed,
            security_buffer,
        })
    }

    /// SessionFlags.
    pub fn session_flags(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// The security buffer.
    pub fn security_buffer(&self) -> &'a [u8] {
        self.security_buffer
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> SessionSetupResponseRepr<'a> {
        SessionSetupResponseRepr {
            session_flags: self.session_flags(),
            security_buffer: self.security_buffer,
        }
    }
}

/// Emits an SMB2 SESSION_SETUP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionSetupResponseRepr<'a> {
    /// SessionFlags.
    pub session_flags: u16,
    /// SecurityBuffer.
    pub security_buffer: &'a [u8],
}

impl EmitBody for SessionSetupResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(9);
        out.put_u16_le(self.session_flags);
        out.put_u16_le(u16_len(HEADER_LEN + 8));
        out.put_u16_le(u16_len(self.security_buffer.len()));
        out.put_bytes(self.security_buffer);
        pad_body(out, msg_start, 9);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16};

    #[test]
    fn request_round_trip() {
        let r = SessionSetupRequestRepr {
            flags: 0,
            security_mode: 1,
            capabilities: 1,
            channel: 0,
            previous_session_id: 42,
            security_buffer: b"NTLMSSP\0\x01\0\0\0",
        };
        let m = message(Command::SessionSetup, false, &r);
        assert_eq!(SessionSetupRequest::parse(&m).unwrap().repr(), r);
        let e = SessionSetupRequestRepr::default();
        let m = message(Command::SessionSetup, false, &e);
        assert_eq!(m.len(), 64 + 25);
        assert_eq!(SessionSetupRequest::parse(&m).unwrap().repr(), e);
    }

    #[test]
    fn request_bad_inputs() {
        let r = SessionSetupRequestRepr {
            security_buffer: b"0123456789",
            ..Default::default()
        };
        let m = message(Command::SessionSetup, false, &r);
        let mut b = m.clone();
        set16(&mut b, 14, 11);
        assert!(matches!(
            SessionSetupRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        set16(&mut b, 12, 64);
        assert!(matches!(
            SessionSetupRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        set16(&mut b, 12, 0xFFFF);
        assert!(matches!(
            SessionSetupRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        assert!(matches!(
            SessionSetupRequest::parse(&m[..64 + 20]),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(
            SessionSetupRequest::parse(&raw(Command::SessionSetup, &[24, 0])).unwrap_err(),
            WireError::BadStructureSize {
                command: Command::SessionSetup,
                got: 24
            }
        );
    }

    #[test]
    fn response_round_trip_and_bad() {
        let r = SessionSetupResponseRepr {
            session_flags: session_flags::IS_NULL,
            security_buffer: b"\xa1\x07token",
        };
        let m = message(Command::SessionSetup, true, &r);
        assert_eq!(SessionSetupResponse::parse(&m).unwrap().repr(), r);
        let mut b = m.clone();
        set16(&mut b, 6, 100);
        assert!(SessionSetupResponse::parse(&b).is_err());
        let e = SessionSetupResponseRepr::default();
        let m = message(Command::SessionSetup, true, &e);
        assert_eq!(m.len(), 64 + 9);
        assert_eq!(SessionSetupResponse::parse(&m).unwrap().repr(), e);
    }
}
