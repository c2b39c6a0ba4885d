//! SMB2/3 message signing, MS-SMB2 3.1.4.1 (algorithms), 3.2.5.3.1 / 3.3.5.5.3
//! (signing key derivation per dialect) and 2.2.3.1.7 (signing algorithm ids).
//!
//! The signature covers the whole message with its 16-byte Signature field
//! (header bytes 48..64) taken as zero. Verification never copies more than
//! the 64-byte header.

use aes::cipher::{BlockEncrypt, KeyInit as _};
use aes::Aes128;
use cmac::Cmac;
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::kdf::smb3_kdf;

/// SMB2 header length.
pub const HEADER_LEN: usize = 64;
/// Byte range of the Signature field in the SMB2 header.
pub const SIGNATURE_RANGE: core::ops::Range<usize> = 48..64;
/// SMB2_FLAGS_SERVER_TO_REDIR.
pub const FLAGS_SERVER_TO_REDIR: u32 = 0x0000_0001;
/// SMB2_FLAGS_SIGNED.
pub const FLAGS_SIGNED: u32 = 0x0000_0008;
/// SMB2 CANCEL command code.
pub const COMMAND_CANCEL: u16 = 0x000C;

/// Dialect 2.0.2.
pub const DIALECT_202: u16 = 0x0202;
/// Dialect 2.1.
pub const DIALECT_210: u16 = 0x0210;
/// Dialect 3.0.
pub const DIALECT_300: u16 = 0x0300;
/// Dialect 3.0.2.
pub const DIALECT_302: u16 = 0x0302;
/// Dialect 3.1.1.
pub const DIALECT_311: u16 = 0x0311;

/// A signing algorithm (MS-SMB2 2.2.3.1.7 SigningAlgorithms ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// HMAC-SHA256, dialects 2.0.2 and 2.1 (id 0).
    HmacSha256,
    /// AES-128-CMAC, dialects 3.x (id 1).
    AesCmac,
    /// AES-128-GMAC, dialect 3.1.1 with SIGNING_CAPABILITIES (id 2).
    AesGmac,
}

impl SigningAlgorithm {
    /// From a SIGNING_CAPABILITIES id.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            0 => Some(Self::HmacSha256),
            1 => Some(Self::AesCmac),
            2 => Some(Self::AesGmac),
            _ => None,
        }
    }

    /// The SIGNING_CAPABILITIES id.
    pub fn id(self) -> u16 {
        match self {
            Self::HmacSha256 => 0,
            Self::AesCmac => 1,
            Self::AesGmac => 2,
        }
    }
}

/// A session's (or channel's) signing key and algorithm.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The algorithm.
    pub algo: SigningAlgorithm,
    /// The 16-byte key.
    pub key: [u8; 16],
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algo", &self.algo)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Derives the signing key for `dialect` (MS-SMB2 3.3.5.5.3):
/// - 2.0.2 / 2.1: the session key itself, HMAC-SHA256 (`algo` ignored);
/// - 3.0 / 3.0.2: KDF(SessionKey, "SMB2AESCMAC\0", "SmbSign\0"), AES-CMAC (`algo` ignored);
/// - 3.1.1: KDF(SessionKey, "SMBSigningKey\0", PreauthIntegrityHashValue) with `algo`.
///   A missing `preauth_hash` is a caller error; the KDF then runs with an
///   empty context (a key no peer will share).
pub fn derive_signing_key(
    dialect: u16,
    session_key: &[u8; 16],
    preauth_hash: Option<&[u8; 64]>,
    algo: SigningAlgorithm,
) -> SigningKey {
    if dialect < DIALECT_300 {
        SigningKey {
            algo: SigningAlgorithm::HmacSha256,
            key: *session_key,
        }
    } else if dialect < DIALECT_311 {
        SigningKey {
            algo: SigningAlgorithm::AesCmac,
            key: smb3_kdf(session_key, b"SMB2AESCMAC\0", b"SmbSign\0"),
        }
    } else {
        let ctx: &[u8] = preauth_hash.map_or(&[], |h| &h[..]);
        SigningKey {
            algo,
            key: smb3_kdf(session_key, b"SMBSigningKey\0", ctx),
        }
    }
}

/// The header with its Signature field zeroed.
fn zeroed_header(msg: &[u8]) -> Option<[u8; HEADER_LEN]> {
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(msg.get(..HEADER_LEN)?);
    h[SIGNATURE_RANGE].fill(0);
    Some(h)
}

/// AES-GMAC nonce (MS-SMB2 3.1.4.1): MessageId (8 bytes LE) then a u32 LE
/// with bit 0 for a server-to-client message and bit 1 for CANCEL.
fn gmac_nonce(header: &[u8; HEADER_LEN]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&header[24..32]);
    let flags = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    let command = u16::from_le_bytes([header[12], header[13]]);
    let mut extra = 0u32;
    if flags & FLAGS_SERVER_TO_REDIR != 0 {
        extra |= 1;
    }
    if command == COMMAND_CANCEL {
        extra |= 2;
    }
    n[8..].copy_from_slice(&extra.to_le_bytes());
    n
}

/// AES-128-GCM tag with empty plaintext and AAD = `parts` concatenated, each
/// part but the last a multiple of 16 bytes long (NIST SP 800-38D, GMAC).
fn gmac(key: &[u8; 16], nonce: &[u8; 12], head: &[u8; HEADER_LEN], rest: &[u8]) -> [u8; 16] {
    let aes = Aes128::new(key.into());
    let mut h = [0u8; 16];
    aes.encrypt_block((&mut h).into());
    let mut ghash = GHash::new(&h.into());
    ghash.update_padded(head);
    ghash.update_padded(rest);
    let aad_bits = ((HEADER_LEN + rest.len()) as u64) * 8;
    let mut lens = [0u8; 16];
    lens[..8].copy_from_slice(&aad_bits.to_be_bytes());
    ghash.update(&[lens.into()]);
    let s = ghash.finalize();
    let mut j0 = [0u8; 16];
    j0[..12].copy_from_slice(nonce);
    j0[15] = 1;
    aes.encrypt_block((&mut j0).into());
    let mut tag = [0u8; 16];
    for i in 0..16 {
        tag[i] = s[i] ^ j0[i];
    }
    tag
}

/// The signature of `msg` (Signature field taken as zero), or `None` when
/// `msg` is shorter than an SMB2 header.
pub fn compute_signature(key: &SigningKey, msg: &[u8]) -> Option<[u8; 16]> {
    let head = zeroed_header(msg)?;
    let rest = &msg[HEADER_LEN..];
    let mut out = [0u8; 16];
    match key.algo {
        SigningAlgorithm::HmacSha256 => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.key).expect("any key length");
            mac.update(&head);
            mac.update(rest);
            out.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        }
        SigningAlgorithm::AesCmac => {
            let mut mac = <Cmac<Aes128> as Mac>::new_from_slice(&key.key).expect("16-byte key");
            mac.update(&head);
            mac.update(rest);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        SigningAlgorithm::AesGmac => {
            out = gmac(&key.key, &gmac_nonce(&head), &head, rest);
        }
    }
    Some(out)
}

/// Signs `msg` in place: computes over the whole message with the Signature
/// field zeroed and writes the signature at 48..64. Flags are the caller's
/// business (set SMB2_FLAGS_SIGNED before signing). Messages shorter than 64
/// bytes are left untouched.
pub fn sign(key: &SigningKey, msg: &mut [u8]) {
    if let Some(sig) = compute_signature(key, msg) {
        msg[SIGNATURE_RANGE].copy_from_slice(&sig);
    }
}

/// Checks the signature of `msg` in constant time.
pub fn verify(key: &SigningKey, msg: &[u8]) -> bool {
    match compute_signature(key, msg) {
        Some(sig) => bool::from(sig.ct_eq(&msg[SIGNATURE_RANGE])),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::tests::{key16, vector};
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::Aes128Gcm;

    fn key_311() -> SigningKey {
        let hash: [u8; 64] = vector("hash_after_setup_req2").try_into().unwrap();
        derive_signing_key(
            DIALECT_311,
            &key16("session_key"),
            Some(&hash),
            SigningAlgorithm::AesCmac,
        )
    }

    #[test]
    fn windows_311_session_setup_response_verifies_with_aes_cmac() {
        let key = key_311();
        assert_eq!(key.key, key16("signing_key_311"));
        let msg = vector("setup_resp2");
        assert!(verify(&key, &msg));
        let mut resigned = msg.clone();
        resigned[SIGNATURE_RANGE].fill(0xff);
        sign(&key, &mut resigned);
        assert_eq!(resigned, msg);
        let mut tampered = msg.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(!verify(&key, &tampered));
    }

    #[test]
    fn dialect_rules_pick_key_and_algorithm() {
        let sk = key16("session_key_30");
        let k2 = derive_signing_key(DIALECT_210, &sk, None, SigningAlgorithm::AesGmac);
        assert_eq!((k2.algo, k2.key), (SigningAlgorithm::HmacSha256, sk));
        let k3 = derive_signing_key(DIALECT_302, &sk, None, SigningAlgorithm::AesGmac);
        assert_eq!(
            (k3.algo, k3.key),
            (SigningAlgorithm::AesCmac, key16("signing_key_30"))
        );
        assert_eq!(
            SigningAlgorithm::from_id(2),
            Some(SigningAlgorithm::AesGmac)
        );
        assert_eq!(SigningAlgorithm::from_id(3), None);
        assert_eq!(SigningAlgorithm::AesCmac.id(), 1);
    }

    #[test]
    fn hmac_sha256_is_first_16_bytes_of_hmac_over_zeroed_message() {
        let key = SigningKey {
            algo: SigningAlgorithm::HmacSha256,
            key: [0x42; 16],
        };
        let mut msg: Vec<u8> = (0..200u8).collect();
        sign(&key, &mut msg);
        let mut zeroed = msg.clone();
        zeroed[SIGNATURE_RANGE].fill(0);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[0x42; 16]).unwrap();
        mac.update(&zeroed);
        assert_eq!(msg[SIGNATURE_RANGE], mac.finalize().into_bytes()[..16]);
        assert!(verify(&key, &msg));
        assert!(!verify(&key, &msg[..63]));
    }

    fn gcm_reference(key: &[u8; 16], nonce: [u8; 12], aad: &[u8]) -> [u8; 16] {
        let c = Aes128Gcm::new(key.into());
        let tag = c
            .encrypt_in_place_detached((&nonce).into(), aad, &mut [])
            .unwrap();
        tag.into()
    }

    #[test]
    fn gmac_matches_aes_gcm_with_empty_plaintext() {
        let key = SigningKey {
            algo: SigningAlgorithm::AesGmac,
            key: [7; 16],
        };
        for len in [64usize, 65, 79, 80, 200, 1000] {
            let mut msg: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            msg[24..32].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
            for (flags, command, extra) in
                [(0u32, 5u16, 0u32), (1, 5, 1), (0, 0x0C, 2), (1, 0x0C, 3)]
            {
                msg[16..20].copy_from_slice(&flags.to_le_bytes());
                msg[12..14].copy_from_slice(&command.to_le_bytes());
                sign(&key, &mut msg);
                let mut zeroed = msg.clone();
                zeroed[SIGNATURE_RANGE].fill(0);
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
                nonce[8..].copy_from_slice(&extra.to_le_bytes());
                assert_eq!(
                    msg[SIGNATURE_RANGE],
                    gcm_reference(&key.key, nonce, &zeroed),
                    "len {len}"
                );
                assert!(verify(&key, &msg));
                msg[70 % len] ^= 0x80;
                assert!(!verify(&key, &msg));
            }
        }
    }
}
