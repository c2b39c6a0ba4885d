//! The SMB2 TRANSFORM header of encrypted messages (MS-SMB2 2.2.41), recognised and
//! bounds-checked; decryption is not done here.

use crate::error::WireError;
use crate::protocol_id::TRANSFORM_MAGIC;
use crate::reader::{arr16_at, u16_at, u32_at, u64_at};

/// Length of the TRANSFORM header.
pub const TRANSFORM_HEADER_LEN: usize = 52;

/// View of a TRANSFORM header and the encrypted message after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformHeader<'a> {
    fixed: &'a [u8; TRANSFORM_HEADER_LEN],
    encrypted: &'a [u8],
}

impl<'a> TransformHeader<'a> {
    /// Parses a frame payload. OriginalMessageSize must equal the bytes that follow the header
    /// (AES-CCM/GCM do not change the length) and be at least an SMB2 header.
    pub fn parse(payload: &'a [u8]) -> Result<Self, WireError> {
        let fixed: &[u8; TRANSFORM_HEADER_LEN] = payload
            .get(..TRANSFORM_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::Truncated {
                what: "TRANSFORM header",
            })?;
        if fixed[..4] != TRANSFORM_MAGIC {
            return Err(WireError::BadProtocolId);
        }
        let encrypted = &payload[TRANSFORM_HEADER_LEN..];
        let size = u32_at(fixed, 36) as usize;
        if size != encrypted.len() || size < crate::HEADER_LEN {
            return Err(WireError::BadLength {
                what: "OriginalMessageSize",
            });
        }
        Ok(TransformHeader { fixed, encrypted })
    }
    /// Signature (the AEAD tag).
    pub fn signature(&self) -> [u8; 16] {
        arr16_at(self.fixed, 4)
    }
    /// Nonce (11 bytes used for CCM, 12 for GCM).
    pub fn nonce(&self) -> [u8; 16] {
        arr16_at(self.fixed, 20)
    }
    /// OriginalMessageSize.
    pub fn original_message_size(&self) -> u32 {
        u32_at(self.fixed, 36)
    }
    /// Flags (3.1.1) / EncryptionAlgorithm (3.0.x).
    pub fn flags(&self) -> u16 {
        u16_at(self.fixed, 42)
    }
    /// SessionId.
    pub fn session_id(&self) -> u64 {
        u64_at(self.fixed, 44)
    }
    /// The authenticated additional data: the header from Nonce to the end (32 bytes).
    pub fn aad(&self) -> &'a [u8] {
        &self.fixed[20..]
    }
    /// The encrypted message.
    pub fn encrypted(&self) -> &'a [u8] {
        self.encrypted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(size: u32, body: usize) -> Vec<u8> {
        let mut v = TRANSFORM_MAGIC.to_vec();
        v.extend([1u8; 16]);
        v.extend([2u8; 16]);
        v.extend(size.to_le_bytes());
        v.extend(0u16.to_le_bytes());
        v.extend(1u16.to_le_bytes());
        v.extend(77u64.to_le_bytes());
        v.extend(vec![0xCC; body]);
        v
    }

    #[test]
    fn parses_and_checks_size() {
        let p = sample(100, 100);
        let t = TransformHeader::parse(&p).unwrap();
        assert_eq!(t.session_id(), 77);
        assert_eq!(t.flags(), 1);
        assert_eq!(t.encrypted().len(), 100);
        assert_eq!(t.aad().len(), 32);
        assert_eq!(t.signature(), [1; 16]);
        assert!(matches!(
            TransformHeader::parse(&sample(101, 100)),
            Err(WireError::BadLength { .. })
        ));
        assert!(matches!(
            TransformHeader::parse(&sample(10, 10)),
            Err(WireError::BadLength { .. })
        ));
        assert!(matches!(
            TransformHeader::parse(&p[..51]),
            Err(WireError::Truncated { .. })
        ));
        let mut b = p.clone();
        b[0] = 0xFE;
        assert_eq!(TransformHeader::parse(&b), Err(WireError::BadProtocolId));
    }
}
