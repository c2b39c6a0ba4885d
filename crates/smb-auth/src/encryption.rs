//! SMB3 message encryption, MS-SMB2 3.1.4.3 (encrypting a message), 3.3.5.2.1.1
//! (decrypting one), 2.2.41 (the TRANSFORM_HEADER), 2.2.3.1.2 (cipher ids) and the
//! key derivation of 3.3.5.5.3 / 3.2.5.3.1.
//!
//! The AEAD modes are RustCrypto's (`aes-gcm`, `ccm`); nothing here hand-rolls
//! AES. A [`CipherKey`] holds the expanded key schedule, built once per
//! session, so a message costs only the AEAD pass. Both directions work in
//! place: [`seal`] encrypts the message that follows a reserved 52-byte
//! TRANSFORM header and fills that header in; [`open`] decrypts the message
//! after a TRANSFORM header in the buffer it lies in.
//!
//! The authenticated data (AAD) is the TRANSFORM header from Nonce to the
//! end (32 bytes: Nonce, OriginalMessageSize, Reserved, Flags, SessionId);
//! the tag is the header's Signature. CCM uses the first 11 bytes of Nonce,
//! GCM the first 12; the rest are zero.

use aes::{Aes128, Aes256};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use ccm::consts::{U11, U16};
use ccm::Ccm;

use crate::kdf::smb3_kdf_into;
use crate::signing::{DIALECT_300, DIALECT_311};

/// Length of the TRANSFORM header (MS-SMB2 2.2.41).
pub const TRANSFORM_HEADER_LEN: usize = 52;
/// The TRANSFORM header's ProtocolId.
pub const TRANSFORM_MAGIC: [u8; 4] = [0xFD, b'S', b'M', b'B'];
/// Flags (3.1.1) / EncryptionAlgorithm (3.0, 3.0.2): the only defined value,
/// 0x0001 (Encrypted / SMB2_ENCRYPTION_AES128_CCM).
pub const TRANSFORM_FLAG_ENCRYPTED: u16 = 0x0001;

type Aes128Ccm = Ccm<Aes128, U16, U11>;
type Aes256Ccm = Ccm<Aes256, U16, U11>;

/// An SMB3 cipher (MS-SMB2 2.2.3.1.2 cipher ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-128-CCM (id 1): the only cipher of dialects 3.0 and 3.0.2.
    Aes128Ccm,
    /// AES-128-GCM (id 2).
    Aes128Gcm,
    /// AES-256-CCM (id 3).
    Aes256Ccm,
    /// AES-256-GCM (id 4).
    Aes256Gcm,
}

impl Cipher {
    /// Every cipher, in the default server preference: GCM before CCM, and
    /// 128 before 256 within each mode.
    pub const DEFAULT_ORDER: [Cipher; 4] = [
        Cipher::Aes128Gcm,
        Cipher::Aes256Gcm,
        Cipher::Aes128Ccm,
        Cipher::Aes256Ccm,
    ];

    /// From an ENCRYPTION_CAPABILITIES id.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            1 => Some(Self::Aes128Ccm),
            2 => Some(Self::Aes128Gcm),
            3 => Some(Self::Aes256Ccm),
            4 => Some(Self::Aes256Gcm),
            _ => None,
        }
    }

    /// The ENCRYPTION_CAPABILITIES id.
    pub fn id(self) -> u16 {
        match self {
            Self::Aes128Ccm => 1,
            Self::Aes128Gcm => 2,
            Self::Aes256Ccm => 3,
            Self::Aes256Gcm => 4,
        }
    }

    /// Key length in bytes (16 or 32).
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Ccm | Self::Aes128Gcm => 16,
            Self::Aes256Ccm | Self::Aes256Gcm => 32,
        }
    }

    /// Bytes of the Nonce field the cipher uses (11 for CCM, 12 for GCM).
    pub fn nonce_len(self) -> usize {
        match self {
            Self::Aes128Ccm | Self::Aes256Ccm => 11,
            Self::Aes128Gcm | Self::Aes256Gcm => 12,
        }
    }

    /// The name administrators write (`aes-128-gcm`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Ccm => "aes-128-ccm",
            Self::Aes128Gcm => "aes-128-gcm",
            Self::Aes256Ccm => "aes-256-ccm",
            Self::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// From [`Cipher::name`] (case-insensitive).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::DEFAULT_ORDER
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One direction's key, expanded for its cipher.
#[derive(Clone)]
pub struct CipherKey(Engine);

#[derive(Clone)]
enum Engine {
    C128(Box<Aes128Ccm>),
    G128(Box<Aes128Gcm>),
    C256(Box<Aes256Ccm>),
    G256(Box<Aes256Gcm>),
}

impl std::fmt::Debug for CipherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CipherKey").field(&self.cipher()).finish()
    }
}

/// Decryption failed: the tag does not match (wrong key, altered bytes) or
/// the message is not a well-formed TRANSFORM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptError;

impl std::fmt::Display for DecryptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SMB3 decryption failed")
    }
}

impl std::error::Error for DecryptError {}

impl CipherKey {
    /// Expands `key` (16 bytes for the 128-bit ciphers, 32 for the 256-bit
    /// ones; a longer key is cut, a shorter one is refused with `None`).
    pub fn new(cipher: Cipher, key: &[u8]) -> Option<Self> {
        let key = key.get(..cipher.key_len())?;
        let e = match cipher {
            Cipher::Aes128Ccm => Engine::C128(Box::new(Aes128Ccm::new_from_slice(key).ok()?)),
            Cipher::Aes128Gcm => Engine::G128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            Cipher::Aes256Ccm => Engine::C256(Box::new(Aes256Ccm::new_from_slice(key).ok()?)),
            Cipher::Aes256Gcm => Engine::G256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
        };
        Some(CipherKey(e))
    }

    /// The cipher.
    pub fn cipher(&self) -> Cipher {
        match self.0 {
            Engine::C128(_) => Cipher::Aes128Ccm,
            Engine::G128(_) => Cipher::Aes128Gcm,
            Engine::C256(_) => Cipher::Aes256Ccm,
            Engine::G256(_) => Cipher::Aes256Gcm,
        }
    }

    fn encrypt(&self, nonce: &[u8; 16], aad: &[u8], buf: &mut [u8]) -> Option<[u8; 16]> {
        let tag = match &self.0 {
            Engine::C128(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(&nonce[..11]), aad, buf)
            }
            Engine::G128(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(&nonce[..12]), aad, buf)
            }
            Engine::C256(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(&nonce[..11]), aad, buf)
            }
            Engine::G256(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(&nonce[..12]), aad, buf)
            }
        }
        .ok()?;
        Some(tag.into())
    }

    fn decrypt(
        &self,
        nonce: &[u8; 16],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), DecryptError> {
        let tag = GenericArray::from_slice(tag);
        match &self.0 {
            Engine::C128(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(&nonce[..11]), aad, buf, tag)
            }
            Engine::G128(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(&nonce[..12]), aad, buf, tag)
            }
            Engine::C256(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(&nonce[..11]), aad, buf, tag)
            }
            Engine::G256(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(&nonce[..12]), aad, buf, tag)
            }
        }
        .map_err(|_| DecryptError)
    }
}

/// A session's two keys: the server encrypts with `encrypt` (the client's
/// decryption key) and decrypts with `decrypt`.
#[derive(Debug, Clone)]
pub struct SessionCipher {
    /// Session.EncryptionKey (server to client).
    pub encrypt: CipherKey,
    /// Session.DecryptionKey (client to server).
    pub decrypt: CipherKey,
}

/// The raw keys of one session, per MS-SMB2 3.3.5.5.3 (server side: the
/// encryption key is the "ServerOut" / "SMBS2CCipherKey" one) for
/// `dialect` 3.0, 3.0.2 or 3.1.1. `session_key` is Session.SessionKey
/// (16 bytes) or, for the AES-256 ciphers, Session.FullSessionKey; 3.1.1
/// takes the session's preauth integrity hash as context. Returns
/// (encryption key, decryption key), each [`Cipher::key_len`] bytes long.
pub fn derive_keys(
    dialect: u16,
    session_key: &[u8],
    preauth_hash: Option<&[u8; 64]>,
    cipher: Cipher,
) -> ([u8; 32], [u8; 32]) {
    let n = cipher.key_len();
    let mut enc = [0u8; 32];
    let mut dec = [0u8; 32];
    if dialect >= DIALECT_311 {
        let ctx: &[u8] = preauth_hash.map_or(&[], |h| &h[..]);
        smb3_kdf_into(session_key, b"SMBS2CCipherKey\0", ctx, &mut enc[..n]);
        smb3_kdf_into(session_key, b"SMBC2SCipherKey\0", ctx, &mut dec[..n]);
    } else {
        debug_assert!(dialect >= DIALECT_300);
        smb3_kdf_into(session_key, b"SMB2AESCCM\0", b"ServerOut\0", &mut enc[..n]);
        smb3_kdf_into(session_key, b"SMB2AESCCM\0", b"ServerIn \0", &mut dec[..n]);
    }
    (enc, dec)
}

impl SessionCipher {
    /// Derives and expands the server's keys ([`derive_keys`]).
    pub fn derive(
        dialect: u16,
        session_key: &[u8],
        preauth_hash: Option<&[u8; 64]>,
        cipher: Cipher,
    ) -> Self {
        let (e, d) = derive_keys(dialect, session_key, preauth_hash, cipher);
        let n = cipher.key_len();
        SessionCipher {
            encrypt: CipherKey::new(cipher, &e[..n]).expect("key of the cipher's length"),
            decrypt: CipherKey::new(cipher, &d[..n]).expect("key of the cipher's length"),
        }
    }

    /// The same keys seen from the client (encrypt with the server's
    /// decryption key): for clients and tests.
    pub fn reversed(&self) -> Self {
        SessionCipher {
            encrypt: self.decrypt.clone(),
            decrypt: self.encrypt.clone(),
        }
    }

    /// The cipher.
    pub fn cipher(&self) -> Cipher {
        self.encrypt.cipher()
    }
}

/// Encrypts in place the message that follows the first
/// [`TRANSFORM_HEADER_LEN`] bytes of `buf` (reserved by the caller) and
/// writes the TRANSFORM header there: ProtocolId, Signature (the tag),
/// `nonce` as given (the cipher uses its first 11 or 12 bytes; the field is
/// authenticated whole, so the rest should be zero as 2.2.41 asks, which
/// [`NonceCounter`] does), OriginalMessageSize, Flags = Encrypted,
/// `session_id`. The caller guarantees that no nonce is used twice with one
/// key.
pub fn seal(key: &CipherKey, nonce: &[u8; 16], session_id: u64, buf: &mut [u8]) {
    let (hdr, msg) = buf.split_at_mut(TRANSFORM_HEADER_LEN);
    let n = *nonce;
    hdr[..4].copy_from_slice(&TRANSFORM_MAGIC);
    hdr[20..36].copy_from_slice(&n);
    let size = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    hdr[36..40].copy_from_slice(&size.to_le_bytes());
    hdr[40..42].fill(0);
    hdr[42..44].copy_from_slice(&TRANSFORM_FLAG_ENCRYPTED.to_le_bytes());
    hdr[44..52].copy_from_slice(&session_id.to_le_bytes());
    let tag = key
        .encrypt(&n, &hdr[20..52], msg)
        .expect("AES-CCM/GCM take any SMB-sized message");
    hdr[4..20].copy_from_slice(&tag);
}

/// Decrypts in place the message after the TRANSFORM header at the start
/// of `buf` and returns it. The header must be whole, OriginalMessageSize
/// must equal the bytes after it, Flags must say Encrypted, and the tag
/// must verify; otherwise nothing usable is returned (the bytes after the
/// header may have been altered).
pub fn open<'a>(key: &CipherKey, buf: &'a mut [u8]) -> Result<&'a mut [u8], DecryptError> {
    if buf.len() < TRANSFORM_HEADER_LEN || buf[..4] != TRANSFORM_MAGIC {
        return Err(DecryptError);
    }
    let (hdr, msg) = buf.split_at_mut(TRANSFORM_HEADER_LEN);
    let size = u32::from_le_bytes([hdr[36], hdr[37], hdr[38], hdr[39]]) as usize;
    let flags = u16::from_le_bytes([hdr[42], hdr[43]]);
    if size != msg.len() || flags != TRANSFORM_FLAG_ENCRYPTED {
        return Err(DecryptError);
    }
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&hdr[20..36]);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&hdr[4..20]);
    key.decrypt(&nonce, &hdr[20..52], msg, &tag)?;
    Ok(msg)
}

/// A per-session nonce source for the server's direction: a 64-bit counter
/// in the first 8 bytes of the nonce, so no value repeats under one key.
/// It ends (returns `None`) before it would wrap; the session must then
/// end (MS-SMB2 3.1.4.3: a nonce is never reused with a key).
#[derive(Debug, Clone, Default)]
pub struct NonceCounter {
    next: u64,
}

impl NonceCounter {
    /// A counter starting at `start` (tests; sessions start at 0).
    pub fn starting_at(start: u64) -> Self {
        NonceCounter { next: start }
    }

    /// The next nonce, or `None` when the counter is spent.
    pub fn next_nonce(&mut self) -> Option<[u8; 16]> {
        if self.next == u64::MAX {
            return None;
        }
        let mut n = [0u8; 16];
        n[..8].copy_from_slice(&self.next.to_le_bytes());
        self.next += 1;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        let text = include_str!("../tests/vectors/ms-smb2-encryption.txt");
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

    /// The client's keys are the server's, reversed.
    fn client_keys(
        dialect: u16,
        key: &[u8],
        preauth: Option<&[u8; 64]>,
        c: Cipher,
    ) -> SessionCipher {
        SessionCipher::derive(dialect, key, preauth, c).reversed()
    }

    fn check_example(prefix: &str, dialect: u16, cipher: Cipher) {
        let key = vector(&format!("{prefix}_session_key"));
        let preauth: Option<[u8; 64]> =
            (dialect == DIALECT_311).then(|| vector("s311_preauth").try_into().unwrap());
        let (enc, dec) = derive_keys(dialect, &key, preauth.as_ref(), cipher);
        // The example is written from the client: its encryption key is our
        // decryption key.
        assert_eq!(dec[..16], vector(&format!("{prefix}_client_enc_key"))[..]);
        assert_eq!(enc[..16], vector(&format!("{prefix}_client_dec_key"))[..]);

        // Encrypting the request with the example's nonce gives the
        // example's bytes.
        let client = client_keys(dialect, &key, preauth.as_ref(), cipher);
        let want = vector(&format!("{prefix}_request_transform"));
        let plain = vector(&format!("{prefix}_request"));
        let mut buf = vec![0u8; TRANSFORM_HEADER_LEN];
        buf.extend_from_slice(&plain);
        let nonce: [u8; 16] = want[20..36].try_into().unwrap();
        let sid = u64::from_le_bytes(want[44..52].try_into().unwrap());
        seal(&client.encrypt, &nonce, sid, &mut buf);
        assert_eq!(buf, want);

        // The server decrypts that request in place...
        let server = SessionCipher::derive(dialect, &key, preauth.as_ref(), cipher);
        let mut got = want.clone();
        assert_eq!(open(&server.decrypt, &mut got).unwrap(), &plain[..]);

        // ... and the client decrypts the example's response.
        let mut resp = vector(&format!("{prefix}_response_transform"));
        assert_eq!(
            open(&client.decrypt, &mut resp).unwrap(),
            &vector(&format!("{prefix}_response"))[..]
        );
    }

    #[test]
    fn smb30_aes128_ccm_matches_microsoft_example() {
        check_example("s30", DIALECT_300, Cipher::Aes128Ccm);
    }

    #[test]
    fn smb311_aes128_gcm_matches_microsoft_example() {
        check_example("s311", DIALECT_311, Cipher::Aes128Gcm);
    }

    #[test]
    fn every_cipher_round_trips_and_rejects_tampering() {
        let preauth = [7u8; 64];
        for c in Cipher::DEFAULT_ORDER {
            let server = SessionCipher::derive(DIALECT_311, &[9; 16], Some(&preauth), c);
            let client = server.reversed();
            assert_eq!(server.cipher(), c);
            let msg =
                b"\xfeSMB some message bytes that are long enough to be a header......".to_vec();
            let mut buf = vec![0u8; TRANSFORM_HEADER_LEN];
            buf.extend_from_slice(&msg);
            let mut nonces = NonceCounter::default();
            seal(&server.encrypt, &nonces.next_nonce().unwrap(), 42, &mut buf);
            assert_ne!(&buf[TRANSFORM_HEADER_LEN..], &msg[..]);
            let mut ok = buf.clone();
            assert_eq!(open(&client.decrypt, &mut ok).unwrap(), &msg[..]);
            // The server's own decryption key does not open it.
            assert!(open(&server.decrypt, &mut buf.clone()).is_err());
            // Any flipped bit of the AAD, tag or body is refused.
            for i in [4, 20, 36, 44, 51, 60, buf.len() - 1] {
                let mut bad = buf.clone();
                bad[i] ^= 1;
                assert!(open(&client.decrypt, &mut bad).is_err(), "{c} byte {i}");
            }
            // Truncated.
            assert!(open(&client.decrypt, &mut buf.clone()[..40]).is_err());
            let mut short = buf.clone();
            short.pop();
            assert!(open(&client.decrypt, &mut short).is_err());
        }
    }

    #[test]
    fn aes256_keys_use_the_full_length() {
        let (e, d) = derive_keys(DIALECT_311, &[1; 16], Some(&[2; 64]), Cipher::Aes256Gcm);
        let (e128, d128) = derive_keys(DIALECT_311, &[1; 16], Some(&[2; 64]), Cipher::Aes128Gcm);
        // L = 256 changes the whole output, not just its length.
        assert_ne!(e[..16], e128[..16]);
        assert_ne!(d[..16], d128[..16]);
        assert_ne!(e[16..], [0; 16]);
    }

    #[test]
    fn nonce_counter_ends_before_wrapping() {
        let mut n = NonceCounter::starting_at(u64::MAX - 2);
        assert!(n.next_nonce().is_some());
        assert!(n.next_nonce().is_some());
        assert_eq!(n.next_nonce(), None);
        assert_eq!(n.next_nonce(), None);
    }

    #[test]
    fn cipher_names_and_ids() {
        for c in Cipher::DEFAULT_ORDER {
            assert_eq!(Cipher::from_id(c.id()), Some(c));
            assert_eq!(Cipher::from_name(&c.name().to_uppercase()), Some(c));
        }
        assert_eq!(Cipher::from_id(0), None);
        assert_eq!(Cipher::from_id(5), None);
    }
}
