//! One session's SESSION_SETUP exchange from the client's side (MS-SMB2 2.2.5, 2.2.6,
//! 3.2.4.2.3, 3.2.5.3): SPNEGO wrapping NTLMSSP (anonymous or NTLMv2, smb-auth's
//! initiator) or Kerberos (one leg: AP-REQ, then the AP-REP with STATUS_SUCCESS, through a
//! [`KerberosInitiator`]), the session's preauth integrity hash (MS-SMB2 3.2.5.3.1, 3.1.1 only in
//! effect) and the signing key derived at the end (MS-SMB2 3.2.5.3.1, 3.1.4.2).
//!
//! It does not build requests: the driver wraps [`SessionSetup::initial_token`] and
//! [`SessionSetup::challenge`]'s token in a SESSION_SETUP request its own way (framed,
//! signed for a re-authentication, broken on purpose) and reports each request it sent
//! with [`SessionSetup::sent`], so the preauth hash covers exactly the bytes on the wire.

use core::fmt;
use std::sync::Arc;

use smb_auth::kerberos::{KerberosContext, KerberosInitiator};

use smb_auth::encryption::SessionCipher;
use smb_auth::ntlm::NtlmInitiator;
use smb_auth::preauth::PreauthHash;
use smb_auth::signing::{derive_signing_key, SigningKey};
use smb_auth::SpnegoInitiator;
use smb_wire::header::Header;
use smb_wire::msg::session_setup::{SessionSetupRequestRepr, SessionSetupResponse};
use smb_wire::NtStatus;

use crate::conn::{ClientError, Step};
use crate::negotiate::Negotiated;

/// SMB2_SESSION_FLAG_IS_NULL (MS-SMB2 2.2.6).
const SESSION_FLAG_IS_NULL: u16 = 0x0002;

/// Who a session logs in as.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// NTLMSSP anonymous (null session), as `smbclient -N` and `net use \\srv\IPC$ "" /u:""`.
    Anonymous,
    /// An NTLMv2 user.
    User {
        /// User name.
        name: String,
        /// Domain (may be empty).
        domain: String,
        /// Clear-text password.
        password: String,
    },
    /// Kerberos, with AP-REQs from the initiator (MS-KILE; the session key is the GSS
    /// key's first 16 bytes).
    Kerberos(KerberosClient),
}

/// A shared [`KerberosInitiator`]; two are equal when they are the same one.
#[derive(Clone)]
pub struct KerberosClient(pub Arc<dyn KerberosInitiator>);

impl PartialEq for KerberosClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for KerberosClient {}

impl fmt::Debug for KerberosClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Auth {
    /// An NTLMv2 user with an empty domain.
    pub fn user(name: &str, password: &str) -> Auth {
        Auth::User {
            name: name.into(),
            domain: String::new(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::User { name, domain, .. } => write!(f, "User({domain}\\{name})"),
            Auth::Kerberos(k) => write!(f, "Kerberos({k:?})"),
        }
    }
}

/// A SESSION_SETUP request body carrying `token` (MS-SMB2 2.2.5), with
/// SMB2_NEGOTIATE_SIGNING_ENABLED and no flags, capabilities or previous session.
pub fn setup_request(token: &[u8]) -> SessionSetupRequestRepr<'_> {
    SessionSetupRequestRepr {
        security_mode: 1,
        security_buffer: token,
        ..Default::default()
    }
}

/// The state of one session being set up (or re-authenticated).
#[derive(Debug)]
pub struct SessionSetup {
    mech: Mech,
    preauth: PreauthHash,
    session_id: u64,
    anonymous: bool,
    /// The NTLM session key, kept once a user session finished (for encryption keys).
    session_key: Option<[u8; 16]>,
}

/// The mechanism of one setup.
#[derive(Debug)]
enum Mech {
    Ntlm(Box<SpnegoInitiator>),
    Kerberos(Box<dyn KerberosContext>),
    /// The Kerberos library could not make an AP-REQ: an empty token goes out and the
    /// server refuses it.
    Failed(String),
}

impl SessionSetup {
    /// A setup as `auth`, naming `workstation` in the NTLM messages. `conn_preauth` is the
    /// connection's preauth hash after NEGOTIATE (request and response; MS-SMB2 3.2.5.3.1:
    /// the session's hash starts from it).
    pub fn new(auth: &Auth, workstation: &str, conn_preauth: PreauthHash) -> SessionSetup {
        let mut ntlm = match auth {
            Auth::Anonymous => NtlmInitiator::anonymous(),
            Auth::User {
                name,
                domain,
                password,
            } => NtlmInitiator::user(name, domain, password),
            Auth::Kerberos(k) => {
                return SessionSetup {
                    mech: match k.0.start() {
                        Ok(ctx) => Mech::Kerberos(ctx),
                        Err(e) => Mech::Failed(e),
                    },
                    preauth: conn_preauth,
                    session_id: 0,
                    anonymous: false,
                    session_key: None,
                }
            }
        };
        ntlm.set_workstation(workstation);
        SessionSetup {
            mech: Mech::Ntlm(Box::new(SpnegoInitiator::new(ntlm))),
            preauth: conn_preauth,
            session_id: 0,
            anonymous: *auth == Auth::Anonymous,
            session_key: None,
        }
    }

    /// The SessionId: 0 until the first response names it, or the id of the session being
    /// re-authenticated (see [`SessionSetup::set_session_id`]).
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Re-authenticates an existing session (MS-SMB2 3.2.4.2.3): its id goes in every leg.
    pub fn set_session_id(&mut self, id: u64) {
        self.session_id = id;
    }

    /// The security buffer of the first SESSION_SETUP request: a SPNEGO NegTokenInit carrying
    /// the NTLM NEGOTIATE_MESSAGE.
    pub fn initial_token(&mut self) -> Vec<u8> {
        match &mut self.mech {
            Mech::Ntlm(s) => s.initial_token(),
            Mech::Kerberos(k) => smb_auth::spnego::kerberos_initial_token(k.token()),
            Mech::Failed(_) => Vec::new(),
        }
    }

    /// Whether this is a Kerberos setup (one leg: the first response is the last).
    pub fn is_kerberos(&self) -> bool {
        !matches!(self.mech, Mech::Ntlm(_))
    }

    /// Reports a SESSION_SETUP request sent (the whole message, header included), for the
    /// preauth hash.
    pub fn sent(&mut self, msg: &[u8]) {
        self.preauth.update(msg);
    }

    /// Reads the first response `msg` (STATUS_MORE_PROCESSING_REQUIRED with the NTLM
    /// CHALLENGE), learns the SessionId, and returns the security buffer of the second request
    /// (the AUTHENTICATE_MESSAGE), made with `client_challenge` and `exported_session_key`.
    /// Another status is [`ClientError::Status`].
    pub fn challenge(
        &mut self,
        msg: &[u8],
        client_challenge: [u8; 8],
        exported_session_key: [u8; 16],
    ) -> Result<Vec<u8>, ClientError> {
        let status = Header::new_checked(msg)?.status();
        if status != NtStatus::MORE_PROCESSING_REQUIRED {
            return Err(ClientError::Status {
                step: Step::SessionSetup1,
                status,
            });
        }
        let s = SessionSetupResponse::parse(msg)?;
        if self.session_id == 0 {
            self.session_id = Header::new_checked(msg)?.session_id();
        }
        self.preauth.update(msg);
        let Mech::Ntlm(spnego) = &mut self.mech else {
            return Err(ClientError::Unexpected(
                "a Kerberos setup has no second leg",
            ));
        };
        Ok(spnego.respond(s.security_buffer(), client_challenge, exported_session_key)?)
    }

    /// Reads the final response `msg` (STATUS_SUCCESS with SPNEGO accept-completed) and returns
    /// the session's signing key for the connection's `negotiated` dialect, or `None` for an
    /// anonymous (null) session, which has none. Another status is [`ClientError::Status`].
    pub fn finish(
        &mut self,
        msg: &[u8],
        negotiated: &Negotiated,
    ) -> Result<Option<SigningKey>, ClientError> {
        let status = Header::new_checked(msg)?.status();
        if status != NtStatus::SUCCESS {
            return Err(ClientError::Status {
                step: if self.is_kerberos() {
                    Step::SessionSetup1
                } else {
                    Step::SessionSetup2
                },
                status,
            });
        }
        let s = SessionSetupResponse::parse(msg)?;
        if self.session_id == 0 {
            self.session_id = Header::new_checked(msg)?.session_id();
        }
        let session_key = match &mut self.mech {
            Mech::Ntlm(spnego) => spnego.finish(s.security_buffer())?,
            Mech::Kerberos(k) => {
                let ap_rep = smb_auth::spnego::kerberos_final_token(s.security_buffer())?.ok_or(
                    ClientError::Auth("no AP-REP (mutual authentication)".into()),
                )?;
                let key = k.finish(ap_rep).map_err(ClientError::Auth)?;
                let mut k16 = [0u8; 16];
                let n = key.len().min(16);
                k16[..n].copy_from_slice(&key[..n]);
                Some(k16)
            }
            Mech::Failed(e) => return Err(ClientError::Auth(e.clone())),
        };
        let anonymous = s.session_flags() & SESSION_FLAG_IS_NULL != 0 || self.anonymous;
        if !anonymous {
            self.session_key = session_key;
        }
        Ok(match session_key {
            Some(k) if !anonymous => {
                let ph = self.preauth.value();
                Some(derive_signing_key(
                    negotiated.dialect,
                    &k,
                    Some(&ph),
                    negotiated.signing,
                ))
            }
            _ => None,
        })
    }
}

impl SessionSetup {
    /// The client's encryption keys once [`SessionSetup::finish`] succeeded for a user
    /// session on a connection that negotiated a cipher (MS-SMB2 3.2.5.3.1: the client
    /// encrypts with the server's decryption key); `None` otherwise.
    pub fn encryption(&self, negotiated: &Negotiated) -> Option<SessionCipher> {
        let key = self.session_key?;
        let cipher = negotiated.cipher?;
        let ph = self.preauth.value();
        Some(SessionCipher::derive(negotiated.dialect, &key, Some(&ph), cipher).reversed())
    }
}
