//! Classifies a frame payload by its 4-byte protocol identifier (MS-SMB2 2.2.1, 2.2.41, 2.2.42;
//! MS-SMB 2.2.3.1 for SMB1).

/// What a frame payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolId {
    /// `0xFE 'S' 'M' 'B'`: an SMB2/3 message (or compound chain).
    Smb2,
    /// `0xFF 'S' 'M' 'B'`: an SMB1 message (multi-protocol NEGOTIATE).
    Smb1,
    /// `0xFD 'S' 'M' 'B'`: an SMB2 TRANSFORM header (encrypted).
    Transform,
    /// `0xFC 'S' 'M' 'B'`: an SMB2 COMPRESSION_TRANSFORM header.
    Compressed,
    /// Anything else (including fewer than four bytes).
    Unknown,
}

/// The SMB2 ProtocolId bytes.
pub const SMB2_MAGIC: [u8; 4] = [0xFE, b'S', b'M', b'B'];
/// The SMB1 ProtocolId bytes.
pub const SMB1_MAGIC: [u8; 4] = [0xFF, b'S', b'M', b'B'];
/// The TRANSFORM header ProtocolId bytes.
pub const TRANSFORM_MAGIC: [u8; 4] = [0xFD, b'S', b'M', b'B'];
/// The COMPRESSION_TRANSFORM header ProtocolId bytes.
pub const COMPRESSED_MAGIC: [u8; 4] = [0xFC, b'S', b'M', b'B'];

/// Classifies `payload` by its first four bytes.
pub fn classify(payload: &[u8]) -> ProtocolId {
    match payload.get(..4) {
        Some(&[0xFE, b'S', b'M', b'B']) => ProtocolId::Smb2,
        Some(&[0xFF, b'S', b'M', b'B']) => ProtocolId::Smb1,
        Some(&[0xFD, b'S', b'M', b'B']) => ProtocolId::Transform,
        Some(&[0xFC, b'S', b'M', b'B']) => ProtocolId::Compressed,
        _ => ProtocolId::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(classify(&[0xFE, b'S', b'M', b'B', 0]), ProtocolId::Smb2);
        assert_eq!(classify(&SMB1_MAGIC), ProtocolId::Smb1);
        assert_eq!(classify(&TRANSFORM_MAGIC), ProtocolId::Transform);
        assert_eq!(classify(&COMPRESSED_MAGIC), ProtocolId::Compressed);
        assert_eq!(classify(&[0xFE, b'S', b'M']), ProtocolId::Unknown);
        assert_eq!(classify(b"GET / HTTP"), ProtocolId::Unknown);
        assert_eq!(classify(&[]), ProtocolId::Unknown);
        assert_eq!(classify(&[0xFE, b's', b'M', b'B']), ProtocolId::Unknown);
    }
}
