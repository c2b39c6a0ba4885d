//! The SMB 3.x key derivation function, MS-SMB2 3.1.4.2: SP800-108 in
//! counter mode with HMAC-SHA256, r = 32, L = 128.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// KDF(Ki, Label, Context) = HMAC-SHA256(Ki, i=1 || Label || 0x00 || Context || L=128)[..16].
///
/// MS-SMB2's labels carry their own trailing NUL (`b"SMB2AESCMAC\0"`);
/// pass them as the spec writes them.
pub fn smb3_kdf(key: &[u8; 16], label: &[u8], context: &[u8]) -> [u8; 16] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&1u32.to_be_bytes());
    mac.update(label);
    mac.update(&[0]);
    mac.update(context);
    mac.update(&128u32.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// The same KDF with any key length and L = 8 * `out.len()` (at most 256
/// bits, one HMAC block): the 256-bit keys of the AES-256 ciphers
/// (MS-SMB2 3.3.5.5.3, with Session.FullSessionKey as the key).
pub fn smb3_kdf_into(key: &[u8], label: &[u8], context: &[u8], out: &mut [u8]) {
    assert!(out.len() <= 32, "one HMAC-SHA256 block");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&1u32.to_be_bytes());
    mac.update(label);
    mac.update(&[0]);
    mac.update(context);
    mac.update(&(out.len() as u32 * 8).to_be_bytes());
    let full = mac.finalize().into_bytes();
    out.copy_from_slice(&full[..out.len()]);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reads `NAME HEX` lines from the MS-SMB2 3.1.1 vector file.
    pub(crate) fn vector(name: &str) -> Vec<u8> {
        let text = include_str!("../tests/vectors/ms-smb2-311-session.txt");
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no vector {name}"));
        let hex = line.split_whitespace().nth(1).expect("hex");
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    pub(crate) fn key16(name: &str) -> [u8; 16] {
        vector(name).try_into().expect("16 bytes")
    }

    #[test]
    fn smb30_signing_key_matches_microsoft_example() {
        let k = smb3_kdf(&key16("session_key_30"), b"SMB2AESCMAC\0", b"SmbSign\0");
        assert_eq!(k, key16("signing_key_30"));
    }

    #[test]
    fn smb311_signing_key_matches_microsoft_example() {
        let ctx = vector("hash_after_setup_req2");
        let k = smb3_kdf(&key16("session_key"), b"SMBSigningKey\0", &ctx);
        assert_eq!(k, key16("signing_key_311"));
    }
}
