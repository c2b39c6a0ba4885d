//! The NTLMSSP initiator (client side) for the load generator and tests,
//! MS-NLMP 3.1.5.1 (NEGOTIATE) and 3.1.5.1.2 (NTLMv2 AUTHENTICATE with MIC
//! and KEY_EXCH). Randomness (client challenge, session key) and the
//! fallback timestamp come from the caller.

use super::crypto;
use super::msg::{
    av_id, utf16le, write_mic, AuthenticateRepr, AvPairsWriter, ChallengeMessage,
    NegotiateFlags as F, NegotiateRepr, Version, AV_FLAG_MIC_PRESENT,
};
use crate::error::AuthError;

/// Flags the initiator asks for.
const CLIENT_FLAGS: u32 = F::UNICODE
    | F::REQUEST_TARGET
    | F::SIGN
    | F::NTLM
    | F::ALWAYS_SIGN
    | F::EXTENDED_SESSIONSECURITY
    | F::VERSION
    | F::N128
    | F::KEY_EXCH
    | F::N56;

#[derive(Clone)]
struct UserCred {
    name: String,
    domain: String,
    nt_hash: [u8; 16],
}

/// Client side of one NTLMSSP exchange.
#[derive(Clone)]
pub struct NtlmInitiator {
    user: Option<UserCred>,
    workstation: String,
    timestamp: u64,
    negotiate: Vec<u8>,
    flags: u32,
}

impl core::fmt::Debug for NtlmInitiator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NtlmInitiator")
            .field("user", &self.user.as_ref().map(|u| (&u.name, &u.domain)))
            .field("workstation", &self.workstation)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl NtlmInitiator {
    /// An anonymous (null session) initiator.
    pub fn anonymous() -> Self {
        NtlmInitiator {
            user: None,
            workstation: String::new(),
            timestamp: 0,
            negotiate: Vec::new(),
            flags: 0,
        }
    }

    /// An initiator for `name` in `domain` with a clear-text password.
    pub fn user(name: &str, domain: &str, password: &str) -> Self {
        Self::with_nt_hash(name, domain, crypto::nt_hash(password))
    }

    /// An initiator for `name` in `domain` with an NT hash.
    pub fn with_nt_hash(name: &str, domain: &str, nt_hash: [u8; 16]) -> Self {
        NtlmInitiator {
            user: Some(UserCred {
                name: name.to_string(),
                domain: domain.to_string(),
                nt_hash,
            }),
            ..Self::anonymous()
        }
    }

    /// Sets the workstation name sent in AUTHENTICATE.
    pub fn set_workstation(&mut self, name: &str) {
        self.workstation = name.to_string();
    }

    /// Sets the FILETIME used when the CHALLENGE has no MsvAvTimestamp.
    pub fn set_timestamp(&mut self, filetime: u64) {
        self.timestamp = filetime;
    }

    /// Whether this is an anonymous initiator.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none()
    }

    /// The flags of the AUTHENTICATE message (0 before it).
    pub fn negotiated_flags(&self) -> u32 {
        self.flags
    }

    /// The NEGOTIATE_MESSAGE (MS-NLMP 3.1.5.1.1).
    pub fn negotiate(&mut self) -> Vec<u8> {
        let msg = NegotiateRepr {
            flags: CLIENT_FLAGS,
            domain: Vec::new(),
            workstation: Vec::new(),
            version: Some(Version::DEFAULT),
        }
        .emit();
        self.negotiate = msg.clone();
        msg
    }

    /// Answers a CHALLENGE_MESSAGE with an AUTHENTICATE_MESSAGE: NTLMv2 with
    /// MIC and KEY_EXCH for a user (the session key is `exported_session_key`
    /// when KEY_EXCH is negotiated, else the session base key), or the
    /// anonymous form (LM Z(1), no NT response, no session key).
    pub fn authenticate(
        &mut self,
        challenge_msg: &[u8],
        client_challenge: [u8; 8],
        exported_session_key: [u8; 16],
    ) -> Result<(Vec<u8>, Option<[u8; 16]>), AuthError> {
        if self.negotiate.is_empty() {
            return Err(AuthError::UnexpectedMessage("CHALLENGE before NEGOTIATE"));
        }
        let chal = ChallengeMessage::parse(challenge_msg)?;
        if chal.flags() & F::UNICODE == 0 {
            return Err(AuthError::NotSupported("OEM strings"));
        }
        let mut flags = chal.flags() & (CLIENT_FLAGS | F::TARGET_INFO);
        let Some(user) = self.user.clone() else {
            flags = (flags | F::ANONYMOUS) & !F::KEY_EXCH;
            self.flags = flags;
            let msg = AuthenticateRepr {
                lm_response: vec![0],
                nt_response: Vec::new(),
                domain: Vec::new(),
                user: Vec::new(),
                workstation: utf16le(&self.workstation),
                encrypted_session_key: Vec::new(),
                flags,
                version: Some(Version::DEFAULT),
                with_mic: false,
            }
            .emit();
            return Ok((msg, None));
        };

        let info = chal.target_info();
        let server_ts = info.timestamp();
        let mut mic_flags = AV_FLAG_MIC_PRESENT;
        let mut av = AvPairsWriter::new();
        for (id, value) in info.iter() {
            if id == av_id::FLAGS {
                mic_flags |= super::msg::u32_at(value, 0).unwrap_or(0);
            } else {
                av.push(id, value);
            }
        }
        av.push(av_id::FLAGS, &mic_flags.to_le_bytes());
        let temp = crypto::client_blob(
            server_ts.unwrap_or(self.timestamp),
            &client_challenge,
            &av.finish(),
        );
        let key = crypto::ntowfv2(&user.nt_hash, &user.name, &user.domain);
        let server_challenge = chal.server_challenge();
        let proof = crypto::nt_proof_str(&key, &server_challenge, &temp);
        let mut nt_response = proof.to_vec();
        nt_response.extend_from_slice(&temp);
        let lm_response = if server_ts.is_some() {
            vec![0; 24]
        } else {
            crypto::lmv2_response(&key, &server_challenge, &client_challenge).to_vec()
        };
        let base = crypto::session_base_key(&key, &proof);
        let (session_key, encrypted) = if flags & F::KEY_EXCH != 0 {
            (
                exported_session_key,
                crypto::rc4_16(&base, &exported_session_key).to_vec(),
            )
        } else {
            (base, Vec::new())
        };
        self.flags = flags;
        let mut msg = AuthenticateRepr {
            lm_response,
            nt_response,
            domain: utf16le(&user.domain),
            user: utf16le(&user.name),
            workstation: utf16le(&self.workstation),
            encrypted_session_key: encrypted,
            flags,
            version: Some(Version::DEFAULT),
            with_mic: true,
        }
        .emit();
        let mic = crypto::mic(&session_key, &self.negotiate, challenge_msg, &msg);
        write_mic(&mut msg, &mic);
        Ok((msg, Some(session_key)))
    }
}
