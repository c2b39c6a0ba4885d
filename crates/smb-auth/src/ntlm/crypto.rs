//! NTLMv2 computations, MS-NLMP 3.3.2 (NTOWFv2, NTProofStr, session base
//! key), 3.4.5.1 (KXKEY), 3.1.5.1.2 (MIC) and RC4 key exchange.

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use rc4::{consts::U16, KeyInit, Rc4, StreamCipher};

use super::msg::utf16le;

type HmacMd5 = Hmac<Md5>;

#[cfg(test)]
thread_local! {
    /// HMAC-MD5 computations on this thread and the bytes they covered (key
    /// included): tests compare the work of two code paths with it.
    pub(crate) static HMAC_MD5_WORK: core::cell::Cell<(usize, usize)> =
        const { core::cell::Cell::new((0, 0)) };
}

/// HMAC-MD5 over the concatenation of `parts`.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    #[cfg(test)]
    HMAC_MD5_WORK.with(|w| {
        let (calls, bytes) = w.get();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        w.set((calls + 1, bytes + key.len() + len));
    });
    let mut mac = <HmacMd5 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// MD5 over the concatenation of `parts`.
pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The NT hash, NTOWFv1: MD4(UTF-16LE(password)) (MS-NLMP 3.3.1).
pub fn nt_hash(password: &str) -> [u8; 16] {
    Md4::digest(utf16le(password)).into()
}

/// NTOWFv2 = HMAC_MD5(NT hash, UTF-16LE(Uppercase(user) || domain)) (MS-NLMP 3.3.2).
pub fn ntowfv2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let mut ud = utf16le(&user.to_uppercase());
    ud.extend_from_slice(&utf16le(domain));
    hmac_md5(nt_hash, &[&ud])
}

/// The NTLMv2_CLIENT_CHALLENGE ("temp" in MS-NLMP 3.3.2): RespType 1,
/// HiRespType 1, Z(6), Time, ClientChallenge, Z(4), AV pairs, Z(4).
pub fn client_blob(timestamp: u64, client_challenge: &[u8; 8], av_pairs: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(32 + av_pairs.len());
    t.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    t.extend_from_slice(&timestamp.to_le_bytes());
    t.extend_from_slice(client_challenge);
    t.extend_from_slice(&[0; 4]);
    t.extend_from_slice(av_pairs);
    t.extend_from_slice(&[0; 4]);
    t
}

/// NTProofStr = HMAC_MD5(ResponseKeyNT, ServerChallenge || temp).
pub fn nt_proof_str(response_key: &[u8; 16], server_challenge: &[u8; 8], temp: &[u8]) -> [u8; 16] {
    hmac_md5(response_key, &[server_challenge, temp])
}

/// LMv2 response = HMAC_MD5(ResponseKeyLM, ServerChallenge || ClientChallenge) || ClientChallenge.
pub fn lmv2_response(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> [u8; 24] {
    let mac = hmac_md5(response_key, &[server_challenge, client_challenge]);
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(&mac);
    out[16..].copy_from_slice(client_challenge);
    out
}

/// SessionBaseKey = HMAC_MD5(ResponseKeyNT, NTProofStr); for NTLMv2 it is
/// also the KeyExchangeKey (MS-NLMP 3.4.5.1).
pub fn session_base_key(response_key: &[u8; 16], nt_proof: &[u8; 16]) -> [u8; 16] {
    hmac_md5(response_key, &[nt_proof])
}

/// RC4 with a 16-byte key over 16 bytes: encrypts or decrypts the
/// EncryptedRandomSessionKey (MS-NLMP 3.1.5.1.2 / 3.2.5.1.2).
pub fn rc4_16(key: &[u8; 16], data: &[u8; 16]) -> [u8; 16] {
    let mut out = *data;
    let mut c = Rc4::<U16>::new(key.into());
    c.apply_keystream(&mut out);
    out
}

/// MIC = HMAC_MD5(ExportedSessionKey, NEGOTIATE || CHALLENGE || AUTHENTICATE)
/// where AUTHENTICATE has its MIC field zeroed (the caller passes it so).
pub fn mic(
    exported_session_key: &[u8; 16],
    negotiate: &[u8],
    challenge: &[u8],
    authenticate: &[u8],
) -> [u8; 16] {
    hmac_md5(exported_session_key, &[negotiate, challenge, authenticate])
}

/// MIC over an AUTHENTICATE message whose MIC field is still filled: the
/// field at 72..88 is fed as zeroes without copying the message.
pub fn mic_zeroed(
    exported_session_key: &[u8; 16],
    negotiate: &[u8],
    challenge: &[u8],
    authenticate: &[u8],
) -> Option<[u8; 16]> {
    let head = authenticate.get(..super::msg::MIC_OFFSET)?;
    let tail = authenticate.get(super::msg::AUTHENTICATE_HEADER_WITH_MIC..)?;
    Some(hmac_md5(
        exported_session_key,
        &[negotiate, challenge, head, &[0u8; 16], tail],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // MS-NLMP 4.2.1 common values and 4.2.4 NTLMv2 results.
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];

    fn spec_target_info() -> Vec<u8> {
        let mut w = super::super::msg::AvPairsWriter::new();
        w.push_str(2, "Domain").push_str(1, "Server");
        w.finish()
    }

    #[test]
    fn ms_nlmp_4_2_4_ntowfv2() {
        let k = ntowfv2(&nt_hash("Password"), "User", "Domain");
        assert_eq!(
            k,
            [
                0x0c, 0x86, 0x8a, 0x40, 0x3b, 0xfd, 0x7a, 0x93, 0xa3, 0x00, 0x1e, 0xf2, 0x2e, 0xf0,
                0x2e, 0x3f
            ]
        );
    }

    #[test]
    fn ms_nlmp_4_2_4_responses_and_keys() {
        let k = ntowfv2(&nt_hash("Password"), "User", "Domain");
        assert_eq!(
            lmv2_response(&k, &SERVER_CHALLENGE, &CLIENT_CHALLENGE)[..16],
            [
                0x86, 0xc3, 0x50, 0x97, 0xac, 0x9c, 0xec, 0x10, 0x25, 0x54, 0x76, 0x4a, 0x57, 0xcc,
                0xcc, 0x19
            ]
        );
        let temp = client_blob(0, &CLIENT_CHALLENGE, &spec_target_info());
        let proof = nt_proof_str(&k, &SERVER_CHALLENGE, &temp);
        assert_eq!(
            proof,
            [
                0x68, 0xcd, 0x0a, 0xb8, 0x51, 0xe5, 0x1c, 0x96, 0xaa, 0xbc, 0x92, 0x7b, 0xeb, 0xef,
                0x6a, 0x1c
            ]
        );
        let base = session_base_key(&k, &proof);
        assert_eq!(
            base,
            [
                0x8d, 0xe4, 0x0c, 0xca, 0xdb, 0xc1, 0x4a, 0x82, 0xf1, 0x5c, 0xb0, 0xad, 0x0d, 0xe9,
                0x5c, 0xa3
            ]
        );
        let enc = rc4_16(&base, &[0x55; 16]);
        assert_eq!(
            enc,
            [
                0xc5, 0xda, 0xd2, 0x54, 0x4f, 0xc9, 0x79, 0x90, 0x94, 0xce, 0x1c, 0xe9, 0x0b, 0xc9,
                0xd0, 0x3e
            ]
        );
        assert_eq!(rc4_16(&base, &enc), [0x55; 16]);
    }

    #[test]
    fn mic_zeroed_equals_mic_over_a_zeroed_copy() {
        let mut auth = vec![0x11u8; 120];
        auth[72..88].copy_from_slice(&[0xee; 16]);
        let by_ref = mic_zeroed(&[3; 16], b"neg", b"chal", &auth).unwrap();
        auth[72..88].fill(0);
        assert_eq!(by_ref, mic(&[3; 16], b"neg", b"chal", &auth));
        assert!(mic_zeroed(&[3; 16], b"", b"", &auth[..80]).is_none());
    }
}
