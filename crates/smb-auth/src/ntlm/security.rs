//! NTLM session security for GSS_GetMIC / GSS_WrapEx with extended session
//! security, MS-NLMP 3.4.4.2 (signature), 3.4.3 (sealing) and 3.4.5.2/3.4.5.3
//! (SIGNKEY / SEALKEY). SPNEGO's mechListMIC is such a signature.

use rc4::{consts::U16, KeyInit, Rc4, StreamCipher};
use subtle::ConstantTimeEq;

use super::crypto::{hmac_md5, md5};
use super::msg::NegotiateFlags;
use crate::error::AuthError;

const C2S_SIGN: &[u8] = b"session key to client-to-server signing key magic constant\0";
const S2C_SIGN: &[u8] = b"session key to server-to-client signing key magic constant\0";
const C2S_SEAL: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const S2C_SEAL: &[u8] = b"session key to server-to-client sealing key magic constant\0";

/// SIGNKEY (MS-NLMP 3.4.5.2) for one direction.
pub fn sign_key(exported: &[u8; 16], client_to_server: bool) -> [u8; 16] {
    md5(&[exported, if client_to_server { C2S_SIGN } else { S2C_SIGN }])
}

/// SEALKEY (MS-NLMP 3.4.5.3) for one direction, extended session security:
/// the exported key is cut to 16, 7 or 5 bytes by the 128 / 56 flags first.
pub fn seal_key(exported: &[u8; 16], flags: u32, client_to_server: bool) -> [u8; 16] {
    let n = if flags & NegotiateFlags::N128 != 0 {
        16
    } else if flags & NegotiateFlags::N56 != 0 {
        7
    } else {
        5
    };
    md5(&[
        &exported[..n],
        if client_to_server { C2S_SEAL } else { S2C_SEAL },
    ])
}

/// One side's NTLM session security state: keys, RC4 handles and sequence
/// numbers for both directions.
pub struct NtlmSecurity {
    send_sign: [u8; 16],
    recv_sign: [u8; 16],
    send_seal: Rc4<U16>,
    recv_seal: Rc4<U16>,
    send_seq: u32,
    recv_seq: u32,
    key_exch: bool,
}

impl core::fmt::Debug for NtlmSecurity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NtlmSecurity")
            .field("send_seq", &self.send_seq)
            .field("recv_seq", &self.recv_seq)
            .finish_non_exhaustive()
    }
}

impl NtlmSecurity {
    /// Sets up session security from the ExportedSessionKey and the
    /// negotiated flags; `initiator` picks the direction of each key.
    /// Only extended session security is supported.
    pub fn new(exported: &[u8; 16], flags: u32, initiator: bool) -> Result<Self, AuthError> {
        if flags & NegotiateFlags::EXTENDED_SESSIONSECURITY == 0 {
            return Err(AuthError::NotSupported(
                "NTLM signing without extended session security",
            ));
        }
        let send_seal = seal_key(exported, flags, initiator);
        let recv_seal = seal_key(exported, flags, !initiator);
        Ok(NtlmSecurity {
            send_sign: sign_key(exported, initiator),
            recv_sign: sign_key(exported, !initiator),
            send_seal: Rc4::new((&send_seal).into()),
            recv_seal: Rc4::new((&recv_seal).into()),
            send_seq: 0,
            recv_seq: 0,
            key_exch: flags & NegotiateFlags::KEY_EXCH != 0,
        })
    }

    fn signature(
        sign: &[u8; 16],
        seal: &mut Rc4<U16>,
        key_exch: bool,
        seq: u32,
        msg: &[u8],
    ) -> [u8; 16] {
        let mac = hmac_md5(sign, &[&seq.to_le_bytes(), msg]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&mac[..8]);
        if key_exch {
            seal.apply_keystream(&mut checksum);
        }
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&1u32.to_le_bytes());
        out[4..12].copy_from_slice(&checksum);
        out[12..].copy_from_slice(&seq.to_le_bytes());
        out
    }

    /// GSS_GetMIC: the 16-byte NTLMSSP_MESSAGE_SIGNATURE over `msg`.
    pub fn sign(&mut self, msg: &[u8]) -> [u8; 16] {
        let s = Self::signature(
            &self.send_sign,
            &mut self.send_seal,
            self.key_exch,
            self.send_seq,
            msg,
        );
        self.send_seq = self.send_seq.wrapping_add(1);
        s
    }

    /// GSS_VerifyMIC: checks a peer signature over `msg` in constant time.
    pub fn verify(&mut self, msg: &[u8], signature: &[u8]) -> bool {
        let s = Self::signature(
            &self.recv_sign,
            &mut self.recv_seal,
            self.key_exch,
            self.recv_seq,
            msg,
        );
        self.recv_seq = self.recv_seq.wrapping_add(1);
        signature.len() == 16 && bool::from(s.ct_eq(signature))
    }

    /// GSS_WrapEx: seals `data` in place and returns its signature.
    pub fn seal(&mut self, data: &mut [u8]) -> [u8; 16] {
        let mac_input = data.to_vec();
        self.send_seal.apply_keystream(data);
        self.sign(&mac_input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // MS-NLMP 4.2.4.4: GSS_WrapEx with NTLMv2 (ExportedSessionKey 0x55 * 16).
    #[test]
    fn ms_nlmp_4_2_4_4_keys_ciphertext_and_signature() {
        let flags = NegotiateFlags::N56
            | NegotiateFlags::N128
            | NegotiateFlags::SIGN
            | NegotiateFlags::SEAL
            | NegotiateFlags::KEY_EXCH
            | NegotiateFlags::EXTENDED_SESSIONSECURITY;
        let key = [0x55u8; 16];
        assert_eq!(
            seal_key(&key, flags, true),
            [
                0x59, 0xf6, 0x00, 0x97, 0x3c, 0xc4, 0x96, 0x0a, 0x25, 0x48, 0x0a, 0x7c, 0x19, 0x6e,
                0x4c, 0x58
            ]
        );
        assert_eq!(
            sign_key(&key, true),
            [
                0x47, 0x88, 0xdc, 0x86, 0x1b, 0x47, 0x82, 0xf3, 0x5d, 0x43, 0xfd, 0x98, 0xfe, 0x1a,
                0x2d, 0x39
            ]
        );
        let mut data = super::super::msg::utf16le("Plaintext");
        let mut client = NtlmSecurity::new(&key, flags, true).unwrap();
        let sig = client.seal(&mut data);
        assert_eq!(
            data,
            [
                0x54, 0xe5, 0x01, 0x65, 0xbf, 0x19, 0x36, 0xdc, 0x99, 0x60, 0x20, 0xc1, 0x81, 0x1b,
                0x0f, 0x06, 0xfb, 0x5f
            ]
        );
        assert_eq!(
            sig,
            [0x01, 0, 0, 0, 0x7f, 0xb3, 0x8e, 0xc5, 0xc5, 0x5d, 0x49, 0x76, 0, 0, 0, 0]
        );
    }

    #[test]
    fn sign_and_verify_between_initiator_and_acceptor() {
        let flags = NegotiateFlags::N128
            | NegotiateFlags::KEY_EXCH
            | NegotiateFlags::EXTENDED_SESSIONSECURITY;
        let mut c = NtlmSecurity::new(&[7; 16], flags, true).unwrap();
        let mut s = NtlmSecurity::new(&[7; 16], flags, false).unwrap();
        let sig = c.sign(b"mechTypes");
        assert!(s.verify(b"mechTypes", &sig));
        let back = s.sign(b"mechTypes");
        assert_ne!(back, sig, "each direction has its own keys");
        let mut bad = back;
        bad[5] ^= 1;
        assert!(!c.verify(b"mechTypes", &bad));
        assert!(NtlmSecurity::new(&[7; 16], NegotiateFlags::N128, true).is_err());
    }
}
