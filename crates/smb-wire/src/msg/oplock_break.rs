//! SMB2 OPLOCK_BREAK (MS-SMB2 2.2.23 to 2.2.25): break notifications, acknowledgments and
//! responses, for oplocks and for leases, told apart by StructureSize.
//!
//! | message | direction | StructureSize | view |
//! |---|---|---|---|
//! | Oplock Break Notification (2.2.23.1) | server to client | 24 | [`OplockBreak`] |
//! | Lease Break Notification (2.2.23.2) | server to client | 44 | [`LeaseBreakNotification`] |
//! | Oplock Break Acknowledgment (2.2.24.1) | client to server | 24 | [`OplockBreak`] |
//! | Lease Break Acknowledgment (2.2.24.2) | client to server | 36 | [`LeaseBreak`] |
//! | Oplock Break Response (2.2.25.1) | server to client | 24 | [`OplockBreak`] |
//! | Lease Break Response (2.2.25.2) | server to client | 36 | [`LeaseBreak`] |
//!
//! The oplock notification and the oplock response have the same body; the header tells
//! them apart (a notification has MessageId 0xFFFFFFFFFFFFFFFF, MS-SMB2 3.3.4.6).

use super::{fixed, EmitBody, FileId};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{arr16_at, u16_at, u32_at, u64_at};
use crate::writer::LeWrite;

/// OplockLevel values (MS-SMB2 2.2.14, 2.2.23.1).
pub mod oplock_level {
    /// SMB2_OPLOCK_LEVEL_NONE.
    pub const NONE: u8 = 0x00;
    /// SMB2_OPLOCK_LEVEL_II.
    pub const II: u8 = 0x01;
    /// SMB2_OPLOCK_LEVEL_EXCLUSIVE.
    pub const EXCLUSIVE: u8 = 0x08;
    /// SMB2_OPLOCK_LEVEL_BATCH.
    pub const BATCH: u8 = 0x09;
    /// SMB2_OPLOCK_LEVEL_LEASE (in CREATE only).
    pub const LEASE: u8 = 0xFF;
}

/// Lease state bits (MS-SMB2 2.2.13.2.8).
pub mod lease_state {
    /// SMB2_LEASE_NONE.
    pub const NONE: u32 = 0x00;
    /// SMB2_LEASE_READ_CACHING.
    pub const READ_CACHING: u32 = 0x01;
    /// SMB2_LEASE_HANDLE_CACHING.
    pub const HANDLE_CACHING: u32 = 0x02;
    /// SMB2_LEASE_WRITE_CACHING.
    pub const WRITE_CACHING: u32 = 0x04;
}

/// SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED (Lease Break Notification Flags).
pub const NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED: u32 = 0x01;

/// StructureSize of the oplock forms.
pub const OPLOCK_STRUCTURE_SIZE: u16 = 24;
/// StructureSize of the Lease Break Notification.
pub const LEASE_NOTIFICATION_STRUCTURE_SIZE: u16 = 44;
/// StructureSize of the Lease Break Acknowledgment and Response.
pub const LEASE_STRUCTURE_SIZE: u16 = 36;

/// View of the 24-byte oplock form: the Oplock Break Notification, Acknowledgment and
/// Response (MS-SMB2 2.2.23.1, 2.2.24.1, 2.2.25.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OplockBreak<'a> {
    fixed: &'a [u8; 24],
}

impl<'a> OplockBreak<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = OPLOCK_STRUCTURE_SIZE;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(OplockBreak {
            fixed: fixed::<24>(msg, Command::OplockBreak, 24)?,
        })
    }
    /// OplockLevel ([`oplock_level`]): the level the client is broken to, or acknowledges.
    pub fn oplock_level(&self) -> u8 {
        self.fixed[2]
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 8)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> OplockBreakRepr {
        OplockBreakRepr {
            oplock_level: self.oplock_level(),
            file_id: self.file_id(),
        }
    }
}

/// Emits the 24-byte oplock form (notification, acknowledgment or response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OplockBreakRepr {
    /// OplockLevel.
    pub oplock_level: u8,
    /// FileId.
    pub file_id: FileId,
}

impl EmitBody for OplockBreakRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(24);
        out.put_u8(self.oplock_level);
        out.put_u8(0);
        out.put_u32_le(0);
        self.file_id.emit(out);
    }
}

/// View of a Lease Break Notification (MS-SMB2 2.2.23.2), sent by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseBreakNotification<'a> {
    fixed: &'a [u8; 44],
}

impl<'a> LeaseBreakNotification<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = LEASE_NOTIFICATION_STRUCTURE_SIZE;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(LeaseBreakNotification {
            fixed: fixed::<44>(msg, Command::OplockBreak, 44)?,
        })
    }
    /// NewEpoch (SMB 3.x leases V2; 0 otherwise).
    pub fn new_epoch(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// Flags ([`NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED`]).
    pub fn flags(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// LeaseKey.
    pub fn lease_key(&self) -> [u8; 16] {
        arr16_at(self.fixed, 8)
    }
    /// CurrentLeaseState ([`lease_state`]).
    pub fn current_lease_state(&self) -> u32 {
        u32_at(self.fixed, 24)
    }
    /// NewLeaseState ([`lease_state`]).
    pub fn new_lease_state(&self) -> u32 {
        u32_at(self.fixed, 28)
    }
    /// BreakReason (reserved, 0).
    pub fn break_reason(&self) -> u32 {
        u32_at(self.fixed, 32)
    }
    /// AccessMaskHint (reserved, 0).
    pub fn access_mask_hint(&self) -> u32 {
        u32_at(self.fixed, 36)
    }
    /// ShareMaskHint (reserved, 0).
    pub fn share_mask_hint(&self) -> u32 {
        u32_at(self.fixed, 40)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> LeaseBreakNotificationRepr {
        LeaseBreakNotificationRepr {
            new_epoch: self.new_epoch(),
            flags: self.flags(),
            lease_key: self.lease_key(),
            current_lease_state: self.current_lease_state(),
            new_lease_state: self.new_lease_state(),
            break_reason: self.break_reason(),
            access_mask_hint: self.access_mask_hint(),
            share_mask_hint: self.share_mask_hint(),
        }
    }
}

/// Emits a Lease Break Notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseBreakNotificationRepr {
    /// NewEpoch.
    pub new_epoch: u16,
    /// Flags.
    pub flags: u32,
    /// LeaseKey.
    pub lease_key: [u8; 16],
    /// CurrentLeaseState.
    pub current_lease_state: u32,
    /// NewLeaseState.
    pub new_lease_state: u32,
    /// BreakReason (0 when sending).
    pub break_reason: u32,
    /// AccessMaskHint (0 when sending).
    pub access_mask_hint: u32,
    /// ShareMaskHint (0 when sending).
    pub share_mask_hint: u32,
}

impl EmitBody for LeaseBreakNotificationRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(44);
        out.put_u16_le(self.new_epoch);
        out.put_u32_le(self.flags);
        out.put_bytes(&self.lease_key);
        out.put_u32_le(self.current_lease_state);
        out.put_u32_le(self.new_lease_state);
        out.put_u32_le(self.break_reason);
        out.put_u32_le(self.access_mask_hint);
        out.put_u32_le(self.share_mask_hint);
    }
}

/// View of the 36-byte lease form: the Lease Break Acknowledgment (client) and Lease Break
/// Response (server) (MS-SMB2 2.2.24.2, 2.2.25.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseBreak<'a> {
    fixed: &'a [u8; 36],
}

impl<'a> LeaseBreak<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = LEASE_STRUCTURE_SIZE;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(LeaseBreak {
            fixed: fixed::<36>(msg, Command::OplockBreak, 36)?,
        })
    }
    /// Flags (reserved, 0).
    pub fn flags(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// LeaseKey.
    pub fn lease_key(&self) -> [u8; 16] {
        arr16_at(self.fixed, 8)
    }
    /// LeaseState ([`lease_state`]): what the client keeps / the server granted.
    pub fn lease_state(&self) -> u32 {
        u32_at(self.fixed, 24)
    }
    /// LeaseDuration (reserved, 0).
    pub fn lease_duration(&self) -> u64 {
        u64_at(self.fixed, 28)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> LeaseBreakRepr {
        LeaseBreakRepr {
            flags: self.flags(),
            lease_key: self.lease_key(),
            lease_state: self.lease_state(),
            lease_duration: self.lease_duration(),
        }
    }
}

/// Emits the 36-byte lease form (acknowledgment or response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseBreakRepr {
    /// Flags (0 when sending).
    pub flags: u32,
    /// LeaseKey.
    pub lease_key: [u8; 16],
    /// LeaseState.
    pub lease_state: u32,
    /// LeaseDuration (0 when sending).
    pub lease_duration: u64,
}

impl EmitBody for LeaseBreakRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(36);
        out.put_u16_le(0);
        out.put_u32_le(self.flags);
        out.put_bytes(&self.lease_key);
        out.put_u32_le(self.lease_state);
        out.put_u64_le(self.lease_duration);
    }
}

/// The StructureSize of the body, or Truncated.
fn structure_size(msg: &[u8]) -> Result<u16, WireError> {
    match msg.get(HEADER_LEN..HEADER_LEN + 2) {
        Some(b) => Ok(u16::from_le_bytes([b[0], b[1]])),
        None if msg.len() < HEADER_LEN => Err(WireError::ShortHeader { len: msg.len() }),
        None => Err(WireError::Truncated {
            what: Command::OplockBreak.name(),
        }),
    }
}

/// An OPLOCK_BREAK request: an oplock or a lease break acknowledgment (MS-SMB2 2.2.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OplockBreakRequest<'a> {
    /// Oplock Break Acknowledgment (StructureSize 24).
    Oplock(OplockBreak<'a>),
    /// Lease Break Acknowledgment (StructureSize 36).
    Lease(LeaseBreak<'a>),
}

impl<'a> OplockBreakRequest<'a> {
    /// Parses the whole message, choosing the form by StructureSize; any other size is
    /// BadStructureSize (answered STATUS_INVALID_PARAMETER, MS-SMB2 3.3.5.22).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        match structure_size(msg)? {
            OPLOCK_STRUCTURE_SIZE => OplockBreak::parse(msg).map(OplockBreakRequest::Oplock),
            LEASE_STRUCTURE_SIZE => LeaseBreak::parse(msg).map(OplockBreakRequest::Lease),
            got => Err(WireError::BadStructureSize {
                command: Command::OplockBreak,
                got,
            }),
        }
    }
}

/// An OPLOCK_BREAK message from the server: a break notification or the response to an
/// acknowledgment (MS-SMB2 2.2.23, 2.2.25).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OplockBreakResponse<'a> {
    /// Oplock Break Notification or Response (StructureSize 24; the MessageId tells which).
    Oplock(OplockBreak<'a>),
    /// Lease Break Notification (StructureSize 44).
    LeaseNotification(LeaseBreakNotification<'a>),
    /// Lease Break Response (StructureSize 36).
    Lease(LeaseBreak<'a>),
}

impl<'a> OplockBreakResponse<'a> {
    /// Parses the whole message, choosing the form by StructureSize.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        match structure_size(msg)? {
            OPLOCK_STRUCTURE_SIZE => OplockBreak::parse(msg).map(OplockBreakResponse::Oplock),
            LEASE_NOTIFICATION_STRUCTURE_SIZE => {
                LeaseBreakNotification::parse(msg).map(OplockBreakResponse::LeaseNotification)
            }
            LEASE_STRUCTURE_SIZE => LeaseBreak::parse(msg).map(OplockBreakResponse::Lease),
            got => Err(WireError::BadStructureSize {
                command: Command::OplockBreak,
                got,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16};

    const KEY: [u8; 16] = [0x11; 16];

    #[test]
    fn oplock_form() {
        let r = OplockBreakRepr {
            oplock_level: oplock_level::II,
            file_id: FileId {
                persistent: 5,
                volatile: 6,
            },
        };
        let m = message(Command::OplockBreak, false, &r);
        assert_eq!(m.len(), 64 + 24);
        assert_eq!(OplockBreak::parse(&m).unwrap().repr(), r);
        match OplockBreakRequest::parse(&m).unwrap() {
            OplockBreakRequest::Oplock(v) => assert_eq!(v.repr(), r),
            other => panic!("{other:?}"),
        }
        match OplockBreakResponse::parse(&m).unwrap() {
            OplockBreakResponse::Oplock(v) => assert_eq!(v.repr(), r),
            other => panic!("{other:?}"),
        }
        for n in 0..m.len() {
            assert!(OplockBreakRequest::parse(&m[..n]).is_err(), "{n}");
            assert!(OplockBreakResponse::parse(&m[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn lease_forms() {
        let n = LeaseBreakNotificationRepr {
            new_epoch: 2,
            flags: NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED,
            lease_key: KEY,
            current_lease_state: lease_state::READ_CACHING | lease_state::WRITE_CACHING,
            new_lease_state: lease_state::READ_CACHING,
            ..Default::default()
        };
        let m = message(Command::OplockBreak, true, &n);
        assert_eq!(m.len(), 64 + 44);
        match OplockBreakResponse::parse(&m).unwrap() {
            OplockBreakResponse::LeaseNotification(v) => assert_eq!(v.repr(), n),
            other => panic!("{other:?}"),
        }
        // A client never sends the 44-byte form.
        assert!(matches!(
            OplockBreakRequest::parse(&m),
            Err(WireError::BadStructureSize { got: 44, .. })
        ));
        for len in 0..m.len() {
            assert!(OplockBreakResponse::parse(&m[..len]).is_err(), "{len}");
        }
        let a = LeaseBreakRepr {
            lease_key: KEY,
            lease_state: lease_state::READ_CACHING,
            ..Default::default()
        };
        let m = message(Command::OplockBreak, false, &a);
        assert_eq!(m.len(), 64 + 36);
        match OplockBreakRequest::parse(&m).unwrap() {
            OplockBreakRequest::Lease(v) => assert_eq!(v.repr(), a),
            other => panic!("{other:?}"),
        }
        match OplockBreakResponse::parse(&m).unwrap() {
            OplockBreakResponse::Lease(v) => assert_eq!(v.repr(), a),
            other => panic!("{other:?}"),
        }
        for len in 0..m.len() {
            assert!(OplockBreakRequest::parse(&m[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn other_sizes_rejected() {
        let m = message(Command::OplockBreak, false, &LeaseBreakRepr::default());
        for ss in [0u16, 4, 23, 25, 35, 37, 43, 45, u16::MAX] {
            let mut b = m.clone();
            b.resize(64 + 64, 0);
            set16(&mut b, 0, ss);
            let e = WireError::BadStructureSize {
                command: Command::OplockBreak,
                got: ss,
            };
            assert_eq!(OplockBreakRequest::parse(&b), Err(e));
            assert_eq!(OplockBreakResponse::parse(&b), Err(e));
        }
        assert!(matches!(
            OplockBreakRequest::parse(&raw(Command::OplockBreak, &[24])),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            OplockBreakResponse::parse(&[0u8; 10][..]),
            Err(WireError::ShortHeader { len: 10 })
        ));
    }
}
