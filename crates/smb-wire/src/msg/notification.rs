//! SMB2 SERVER_TO_CLIENT_NOTIFICATION (3.1.1, MS-SMB2 2.2.44, 2.2.44.1). Sent by the server
//! only, as an unsolicited "response" with MessageId 0xFFFFFFFFFFFFFFFF.

use super::{fixed, EmitBody};
use crate::error::WireError;
use crate::header::Command;
use crate::reader::u32_at;
use crate::writer::LeWrite;

/// NotificationType SMB2_NOTIFY_SESSION_CLOSED.
pub const NOTIFY_SESSION_CLOSED: u32 = 0;

/// View of an SMB2 SERVER_TO_CLIENT_NOTIFICATION body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerToClientNotification<'a> {
    fixed: &'a [u8; 8],
    notification: &'a [u8],
}

impl<'a> ServerToClientNotification<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 8;

    /// Parses the whole message (header + body). A SESSION_CLOSED notification must carry its
    /// 4-byte body.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<8>(msg, Command::ServerToClientNotification, 8)?;
        let notification = msg.get(super::var_offset(8)..).unwrap_or(&[]);
        if u32_at(fixed, 4) == NOTIFY_SESSION_CLOSED && notification.len() < 4 {
            return Err(WireError::Truncated {
                what: "SMB2_NOTIFY_SESSION_CLOSED",
            });
        }
        Ok(ServerToClientNotification {
            fixed,
            notification,
        })
    }

    /// NotificationType.
    pub fn notification_type(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// The notification structure (raw).
    pub fn notification(&self) -> &'a [u8] {
        self.notification
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> ServerToClientNotificationRepr<'a> {
        ServerToClientNotificationRepr {
            notification_type: self.notification_type(),
            notification: self.notification,
        }
    }
}

/// Emits a SERVER_TO_CLIENT_NOTIFICATION body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerToClientNotificationRepr<'a> {
    /// NotificationType.
    pub notification_type: u32,
    /// Notification (for SESSION_CLOSED: 4 reserved zero bytes).
    pub notification: &'a [u8],
}

impl ServerToClientNotificationRepr<'static> {
    /// SMB2_NOTIFY_SESSION_CLOSED with its 4-byte reserved body.
    pub const SESSION_CLOSED: ServerToClientNotificationRepr<'static> =
        ServerToClientNotificationRepr {
            notification_type: NOTIFY_SESSION_CLOSED,
            notification: &[0; 4],
        };
}

impl EmitBody for ServerToClientNotificationRepr<'_> {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(8);
        out.put_u16_le(0);
        out.put_u32_le(self.notification_type);
        out.put_bytes(self.notification);
    }
}

/// The same view under a request-style name (the message has only one direction).
pub type ServerToClientNotificationResponse<'a> = ServerToClientNotification<'a>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw};

    #[test]
    fn round_trip_and_bad() {
        let r = ServerToClientNotificationRepr::SESSION_CLOSED;
        let m = message(Command::ServerToClientNotification, true, &r);
        assert_eq!(m.len(), 64 + 12);
        assert_eq!(ServerToClientNotification::parse(&m).unwrap().repr(), r);
        assert!(matches!(
            ServerToClientNotification::parse(&m[..64 + 10]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            ServerToClientNotification::parse(&raw(Command::ServerToClientNotification, &[9, 0])),
            Err(WireError::BadStructureSize { got: 9, .. })
        ));
    }
}
