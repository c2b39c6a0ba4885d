//! The NTLMSSP acceptor (server side), MS-NLMP 3.2.5.1 (CHALLENGE) and
//! 3.3.2 / 3.2.5.1.2 (verifying an NTLMv2 AUTHENTICATE, session key, MIC).
//!
//! No clock and no RNG: the server challenge and the MsvAvTimestamp are
//! passed in.

use subtle::ConstantTimeEq;

use super::crypto;
use super::msg::{
    av_id, decode_string, utf16le, AuthenticateMessage, AvPairsWriter, ChallengeRepr,
    NegotiateFlags as F, NegotiateMessage, Ntlmv2Response, Version, AV_FLAG_MIC_PRESENT,
};
use super::users::CredentialStore;
use crate::error::AuthError;

/// Names and policy of the accepting server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptorConfig {
    /// NetBIOS computer name (MsvAvNbComputerName, the CHALLENGE TargetName).
    pub netbios_computer: String,
    /// NetBIOS domain or workgroup name (MsvAvNbDomainName).
    pub netbios_domain: String,
    /// DNS computer name (MsvAvDnsComputerName; left out when empty).
    pub dns_computer: String,
    /// DNS domain name (MsvAvDnsDomainName; left out when empty).
    pub dns_domain: String,
    /// Accept null sessions (MS-NLMP 3.2.5.1.2 anonymous).
    pub allow_anonymous: bool,
    /// Log unknown users on as guest instead of failing.
    pub allow_guest: bool,
}

/// Who logged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A null session.
    Anonymous,
    /// An unknown user mapped to guest.
    Guest,
    /// A verified user.
    User {
        /// The user name as the client sent it.
        name: String,
        /// The domain the client sent.
        domain: String,
        /// Whether the credential store marks the user as administrator.
        admin: bool,
    },
}

/// Result of a successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOutcome {
    /// Who logged on.
    pub identity: Identity,
    /// The client's workstation name.
    pub workstation: String,
    /// The domain the client sent.
    pub domain: String,
    /// The ExportedSessionKey (the SMB2 session key); `None` for anonymous and guest.
    pub session_key: Option<[u8; 16]>,
    /// The negotiated flags (AUTHENTICATE flags limited to those offered).
    pub negotiated_flags: u32,
    /// For a Kerberos logon: how long the ticket stays valid from the
    /// logon (`None` for NTLMSSP, or a ticket without a known end).
    pub ticket_lifetime: Option<std::time::Duration>,
    /// Whether the logon used Kerberos (else NTLMSSP).
    pub kerberos: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Initial,
    ChallengeSent,
    Done,
}

/// Flags this acceptor honours when the client asks for them.
const OPTIONAL_FLAGS: u32 = F::SIGN
    | F::SEAL
    | F::ALWAYS_SIGN
    | F::EXTENDED_SESSIONSECURITY
    | F::N128
    | F::KEY_EXCH
    | F::N56
    | F::REQUEST_TARGET;

/// Server side of one NTLMSSP exchange.
#[derive(Debug, Clone)]
pub struct NtlmAcceptor {
    cfg: AcceptorConfig,
    server_challenge: [u8; 8],
    timestamp: u64,
    state: State,
    negotiate: Vec<u8>,
    challenge: Vec<u8>,
    challenge_flags: u32,
}

impl NtlmAcceptor {
    /// A new acceptor; `server_challenge` must be fresh random bytes and
    /// `timestamp` the current FILETIME (100 ns since 1601).
    pub fn new(cfg: &AcceptorConfig, server_challenge: [u8; 8], timestamp: u64) -> Self {
        NtlmAcceptor {
            cfg: cfg.clone(),
            server_challenge,
            timestamp,
            state: State::Initial,
            negotiate: Vec::new(),
            challenge: Vec::new(),
            challenge_flags: 0,
        }
    }

    /// The flags sent in the CHALLENGE (0 before it).
    pub fn challenge_flags(&self) -> u32 {
        self.challenge_flags
    }

    /// Handles the NEGOTIATE_MESSAGE and returns the CHALLENGE_MESSAGE with
    /// target info (MS-NLMP 3.2.5.1.1).
    pub fn challenge(&mut self, negotiate_msg: &[u8]) -> Result<Vec<u8>, AuthError> {
        if self.state != State::Initial {
            return Err(AuthError::UnexpectedMessage("NEGOTIATE after CHALLENGE"));
        }
        let neg = NegotiateMessage::parse(negotiate_msg)?;
        let c = neg.flags();
        let mut flags = F::UNICODE | F::NTLM | F::TARGET_INFO | F::VERSION | (c & OPTIONAL_FLAGS);
        if c & F::REQUEST_TARGET != 0 {
            flags |= F::TARGET_TYPE_SERVER;
        }
        let mut info = AvPairsWriter::new();
        info.push_str(av_id::NB_DOMAIN_NAME, &self.cfg.netbios_domain)
            .push_str(av_id::NB_COMPUTER_NAME, &self.cfg.netbios_computer);
        if !self.cfg.dns_domain.is_empty() {
            info.push_str(av_id::DNS_DOMAIN_NAME, &self.cfg.dns_domain);
        }
        if !self.cfg.dns_computer.is_empty() {
            info.push_str(av_id::DNS_COMPUTER_NAME, &self.cfg.dns_computer);
        }
        info.push(av_id::TIMESTAMP, &self.timestamp.to_le_bytes());
        let out = ChallengeRepr {
            flags,
            target_name: utf16le(&self.cfg.netbios_computer),
            server_challenge: self.server_challenge,
            target_info: info.finish(),
            version: Some(Version::DEFAULT),
        }
        .emit();
        self.negotiate = negotiate_msg.to_vec();
        self.challenge = out.clone();
        self.challenge_flags = flags;
        self.state = State::ChallengeSent;
        Ok(out)
    }

    /// Verifies the AUTHENTICATE_MESSAGE (MS-NLMP 3.2.5.1.2) against `store`.
    ///
    /// Anonymous logons (empty user, LM empty or Z(1), NT empty) succeed only
    /// with `allow_anonymous`; unknown users become guest with `allow_guest`;
    /// everything else must carry a valid NTLMv2 response and, when the client
    /// says so in MsvAvFlags, a valid MIC.
    ///
    /// Order of the checks:
    /// 1. An NtChallengeResponse longer than NTLMv1's 24 bytes must be a
    ///    well-formed NTLMv2_RESPONSE (MS-NLMP 2.2.2.8, 2.2.2.7, AV pairs
    ///    2.2.2.1) for every user name, the empty one included, before the
    ///    user is looked up: a malformed one is [`AuthError::Malformed`]
    ///    (STATUS_INVALID_PARAMETER), as Samba answers it (Samba bug 14932,
    ///    smbtorture smb2.session.ntlmssp_bug14932, with or without a user).
    /// 2. A user name that is not in `store` costs the same work as a known
    ///    user with a wrong password: NTOWFv2 and NTProofStr (MS-NLMP 3.3.2)
    ///    are computed against a dummy key and compared in constant time, so
    ///    the time of the failure does not tell which names exist.
    pub fn authenticate(
        &mut self,
        auth_msg: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<AuthOutcome, AuthError> {
        if self.state != State::ChallengeSent {
            return Err(AuthError::UnexpectedMessage(
                "AUTHENTICATE without CHALLENGE",
            ));
        }
        self.state = State::Done;
        let auth = AuthenticateMessage::parse(auth_msg)?;
        let flags = (auth.flags() & self.challenge_flags) | (auth.flags() & F::ANONYMOUS);
        let user = decode_string(auth.user_name(), flags)?;
        let domain = decode_string(auth.domain_name(), flags)?;
        let workstation = decode_string(auth.workstation(), flags)?;
        let outcome = |identity, session_key| AuthOutcome {
            identity,
            workstation: workstation.clone(),
            domain: domain.clone(),
            session_key,
            negotiated_flags: flags,
            ticket_lifetime: None,
            kerberos: false,
        };

        let lm = auth.lm_response();
        let nt = auth.nt_response();
        if user.is_empty() && nt.is_empty() && (lm.is_empty() || lm == [0]) {
            return if self.cfg.allow_anonymous {
                Ok(outcome(Identity::Anonymous, None))
            } else {
                Err(AuthError::LogonFailure)
            };
        }
        // 1. Structure first, whoever the user is. Up to 24 bytes is NTLMv1
        // (or LM only), which is not supported and can never verify.
        let v2 = if nt.len() > 24 {
            Some(Ntlmv2Response::parse(nt)?)
        } else {
            None
        };
        if user.is_empty() {
            return Err(AuthError::LogonFailure);
        }
        // 2. The same work for known and unknown users.
        let cred = store.lookup(&user, &domain);
        let nt_hash = cred.map_or(UNKNOWN_USER_NT_HASH, |c| c.nt_hash);
        let verified = v2.and_then(|r| {
            self.verify_ntlmv2(&nt_hash, &user, &domain, &r)
                .map(|base| (base, r.av_pairs()))
        });
        let Some(cred) = cred else {
            return if self.cfg.allow_guest {
                Ok(outcome(Identity::Guest, None))
            } else {
                Err(AuthError::LogonFailure)
            };
        };
        let (base, av) = verified.ok_or(AuthError::LogonFailure)?;

        let exported = if flags & F::KEY_EXCH != 0 {
            let enc: &[u8; 16] = auth
                .encrypted_session_key()
                .try_into()
                .map_err(|_| AuthError::Malformed("EncryptedRandomSessionKey length"))?;
            crypto::rc4_16(&base, enc)
        } else {
            base
        };

        if av.flags().unwrap_or(0) & AV_FLAG_MIC_PRESENT != 0 {
            let mic = auth.mic().ok_or(AuthError::MicMismatch)?;
            let expect = crypto::mic_zeroed(&exported, &self.negotiate, &self.challenge, auth_msg)
                .ok_or(AuthError::MicMismatch)?;
            if !bool::from(expect.ct_eq(mic)) {
                return Err(AuthError::MicMismatch);
            }
        }

        Ok(outcome(
            Identity::User {
                name: user.clone(),
                domain: domain.clone(),
                admin: cred.admin,
            },
            Some(exported),
        ))
    }

    /// Checks NTProofStr (MS-NLMP 3.3.2) with the NTOWFv2 of `nt_hash` for
    /// the domain as sent, upper-cased, and empty (clients differ), comparing
    /// in constant time; every form is tried unless one matches, so a wrong
    /// password always costs the same. Returns the SessionBaseKey.
    fn verify_ntlmv2(
        &self,
        nt_hash: &[u8; 16],
        user: &str,
        domain: &str,
        response: &Ntlmv2Response<'_>,
    ) -> Option<[u8; 16]> {
        let temp = response.client_challenge();
        let upper = domain.to_uppercase();
        for dom in [domain, upper.as_str(), ""] {
            let key = crypto::ntowfv2(nt_hash, user, dom);
            let expect = crypto::nt_proof_str(&key, &self.server_challenge, temp);
            if bool::from(expect.ct_eq(response.nt_proof_str())) {
                return Some(crypto::session_base_key(&key, &expect));
            }
        }
        None
    }
}

/// The NT hash an unknown user is checked against, so that the failure costs
/// what a wrong password costs. Never a logon: a user not in the store fails
/// (or is guest) whatever the proof says.
pub(crate) const UNKNOWN_USER_NT_HASH: [u8; 16] = [0x5a; 16];
