//! SESSION_SETUP and LOGOFF (MS-SMB2 3.3.5.5, 3.3.5.6).
//!
//! Authentication is SPNEGO around NTLMSSP or Kerberos (smb-auth; Kerberos
//! through the configured [`KerberosAcceptor`](smb_auth::kerberos::KerberosAcceptor)).
//! A Kerberos session gets its ticket end as a second deadline on the
//! wheel (`SessionTable::set_kerberos`); re-authentication with a new
//! ticket renews it (MS-SMB2 3.3.5.2.9, 3.3.5.5.3). A session is created
//! in the table on the first leg (SessionId 0) and becomes valid when the
//! acceptor finishes; a failure removes it. A SESSION_SETUP on a valid
//! session re-authenticates it. Signing keys follow MS-SMB2 3.3.5.5.3, with
//! the 3.1.1 preauth integrity hash chained over every SESSION_SETUP request
//! and every non-final response.

use smb_auth::ntlm::{AcceptorConfig, Identity};
use smb_auth::preauth::PreauthHash;
use smb_auth::signing::{derive_signing_key, SigningKey};
use smb_auth::spnego::{SpnegoAcceptor, Step};
use smb_wire::header::{Header, HEADER_LEN};
use smb_wire::msg::logoff::LogoffResponseRepr;
use smb_wire::msg::negotiate::{dialect, security_mode};
use smb_wire::msg::session_setup::{
    session_flags, SessionSetupRequest, SessionSetupResponseRepr, FLAG_BINDING,
};
use smb_wire::msg::EmitBody;
use smb_wire::NtStatus;

use super::encryption::{EncryptionPolicy, SessionCrypt};
use super::{Answer, Engine, Req};
use crate::ids::{ConnId, SessionId};
use crate::table::{SessionInfo, UserName};

/// Authentication in progress on a session.
#[derive(Debug)]
pub(crate) struct AuthInProgress {
    acceptor: SpnegoAcceptor,
    /// Session.PreauthIntegrityHashValue (3.1.1).
    preauth: Option<PreauthHash>,
}

/// What the engine keeps per session beside the table's fields.
#[derive(Debug, Default)]
pub struct SessionExt {
    /// Present while SESSION_SETUP legs are exchanged.
    pub(crate) auth: Option<Box<AuthInProgress>>,
    /// Session.SigningKey (none for anonymous and guest sessions).
    pub(crate) signing_key: Option<SigningKey>,
    /// Session.SigningRequired: unsigned requests are refused.
    pub(crate) signing_required: bool,
    /// Whether responses are signed (signing required or requested).
    pub(crate) sign_responses: bool,
    /// Encryption keys and state (3.x user sessions on a connection that
    /// negotiated a cipher).
    pub(crate) crypt: Option<Box<SessionCrypt>>,
}

impl SessionExt {
    /// The cipher this session encrypts with, if it has keys.
    pub fn cipher(&self) -> Option<smb_auth::encryption::Cipher> {
        self.crypt.as_ref().map(|c| c.keys.cipher())
    }

    /// Whether the session encrypts: it asked for encryption
    /// (EncryptData) or its client sends encrypted requests.
    pub fn is_encrypted(&self) -> bool {
        self.crypt.as_ref().is_some_and(|c| c.encrypts())
    }
}

impl Engine {
    fn acceptor_config(&self) -> AcceptorConfig {
        AcceptorConfig {
            netbios_computer: self.cfg.netbios_name.clone(),
            netbios_domain: self.cfg.netbios_domain.clone(),
            dns_computer: self.cfg.dns_name.clone(),
            dns_domain: self.cfg.dns_domain.clone(),
            allow_anonymous: self.cfg.allow_anonymous,
            allow_guest: self.cfg.allow_guest,
        }
    }

    /// SESSION_SETUP (3.3.5.5).
    pub(crate) fn handle_session_setup(
        &mut self,
        req: &Req<'_>,
        hdr: &Header<&[u8]>,
        out: &mut Vec<u8>,
    ) -> Answer {
        let Ok(sreq) = SessionSetupRequest::parse(req.msg) else {
            return Answer::Fail(NtStatus::INVALID_PARAMETER);
        };
        if sreq.flags() & FLAG_BINDING != 0 {
            // Multichannel binding is not offered (no MULTI_CHANNEL capability).
            return Answer::Fail(NtStatus::REQUEST_NOT_ACCEPTED);
        }
        let conn = req.conn;
        let (dialect_in_force, conn_preauth) = match self.table.connection(conn) {
            Some(c) => (c.ext.dialect, c.ext.preauth.as_deref().copied()),
            None => return Answer::Drop,
        };
        let sid = if req.session_id == 0 {
            match self
                .table
                .create_session_with(conn, SessionExt::default(), req.now)
            {
                Ok(id) => id,
                Err(_) => return Answer::Fail(NtStatus::REQUEST_NOT_ACCEPTED),
            }
        } else {
            match SessionId::from_raw(req.session_id)
                .filter(|&id| self.table.session_conn(id) == Some(conn))
                .filter(|id| !self.pending_logoffs.contains(id))
            {
                Some(id) => id,
                None => return Answer::Fail(NtStatus::USER_SESSION_DELETED),
            }
        };
        // Re-authentication of a valid session is a request on that session
        // like any other (MS-SMB2 3.3.5.2.4): on a signing session it must be
        // signed, and correctly, or it is refused before it can change
        // anything.
        if req.session_id != 0
            && self
                .table
                .session(sid)
                .is_some_and(|s| s.is_authenticated())
        {
            if let Err(a) = self.verify_signature(sid, req, hdr) {
                return a;
            }
        }
        // Start (or restart, for re-authentication) the exchange.
        let needs_start = self
            .table
            .session(sid)
            .is_some_and(|s| s.ext.auth.is_none());
        if needs_start {
            let challenge: [u8; 8] = self.random_array();
            let acceptor =
                SpnegoAcceptor::new(self.acceptor_config(), challenge, self.filetime(req.now))
                    .with_kerberos(self.cfg.kerberos.clone());
            let preauth =
                (dialect_in_force == dialect::SMB311).then(|| conn_preauth.unwrap_or_default());
            if let Some(s) = self.table.session_mut(sid) {
                s.ext.auth = Some(Box::new(AuthInProgress { acceptor, preauth }));
            }
        }
        let users = self.cfg.users.clone();
        let Some(s) = self.table.session_mut(sid) else {
            return Answer::Fail(NtStatus::USER_SESSION_DELETED);
        };
        let Some(auth) = s.ext.auth.as_mut() else {
            return Answer::Fail(NtStatus::USER_SESSION_DELETED);
        };
        if let Some(h) = auth.preauth.as_mut() {
            h.update(req.msg);
        }
        let step = auth.acceptor.step(sreq.security_buffer(), &*users);
        // The response carries the session id.
        let start = out.len() - HEADER_LEN;
        Header::new_unchecked(&mut out[start..start + HEADER_LEN]).set_session_id(sid.as_u64());
        match step {
            Ok(Step::Continue(token)) => {
                SessionSetupResponseRepr {
                    session_flags: 0,
                    security_buffer: &token,
                }
                .emit_body(start, out);
                // The session's preauth hash takes this response once its
                // header is final (see `after_response`).
                Answer::Done(NtStatus::MORE_PROCESSING_REQUIRED)
            }
            Ok(Step::Done { output, outcome }) => {
                let preauth = auth.preauth.as_ref().map(|h| h.value());
                let was_valid = s.is_authenticated();
                s.ext.auth = None;
                let ticket_end = outcome.ticket_lifetime.map(|l| req.now + l);
                if was_valid {
                    let a = self.finish_reauth(req, sid, &outcome.identity, &output, start, out);
                    if outcome.kerberos && matches!(a, Answer::Done(_)) {
                        self.counters.kerberos_logons += 1;
                        let _ = self.table.set_kerberos(sid, ticket_end);
                    }
                    return a;
                }
                let (user, admin, flags) = match &outcome.identity {
                    Identity::Anonymous => (UserName::Anonymous, false, session_flags::IS_NULL),
                    Identity::Guest => (UserName::Guest, false, session_flags::IS_GUEST),
                    Identity::User { name, admin, .. } => {
                        // The account as the users file names it: the
                        // domain a client types is not part of it (Windows
                        // and Samba list and match sessions by user name).
                        (UserName::User(name.as_str().into()), *admin, 0)
                    }
                };
                let (signing_algo, cipher) = self
                    .table
                    .connection(conn)
                    .map(|c| (c.ext.signing_algorithm, c.ext.cipher))
                    .unwrap_or((smb_auth::signing::SigningAlgorithm::HmacSha256, None));
                // Encryption keys (3.3.5.5.3): a 3.x user session on a
                // connection with a cipher. Anonymous and guest sessions
                // have no key and cannot encrypt; where encryption is
                // required they are refused, like any session that cannot
                // encrypt (SMB 2.x, no common cipher).
                let crypt = match (&outcome.identity, outcome.session_key, cipher) {
                    (Identity::User { .. }, Some(k), Some(c))
                        if dialect_in_force >= dialect::SMB300 =>
                    {
                        let keys = smb_auth::encryption::SessionCipher::derive(
                            dialect_in_force,
                            &k,
                            preauth.as_ref(),
                            c,
                        );
                        Some(Box::new(SessionCrypt {
                            keys,
                            nonces: Default::default(),
                            encrypt_data: self.cfg.encryption >= EncryptionPolicy::Desired,
                            reject_unencrypted: self.cfg.encryption == EncryptionPolicy::Required,
                            client_encrypts: false,
                        }))
                    }
                    _ => None,
                };
                if crypt.is_none() && self.cfg.encryption == EncryptionPolicy::Required {
                    tracing::debug!(shard = self.shard, session = %sid, "session cannot encrypt and encryption is required");
                    self.close_session_pipes(conn, sid);
                    self.close_session_files(conn, sid, req.now);
                    let _ = self.table.logoff(sid, req.now);
                    return Answer::Fail(NtStatus::ACCESS_DENIED);
                }
                let flags = if crypt.as_ref().is_some_and(|c| c.encrypt_data) {
                    flags | session_flags::ENCRYPT_DATA
                } else {
                    flags
                };
                let key = match (&outcome.identity, outcome.session_key) {
                    (Identity::User { .. }, Some(k)) => Some(derive_signing_key(
                        dialect_in_force,
                        &k,
                        preauth.as_ref(),
                        signing_algo,
                    )),
                    _ => None,
                };
                let client_requires =
                    u16::from(sreq.security_mode()) & security_mode::SIGNING_REQUIRED != 0;
                let required = key.is_some() && (self.cfg.require_signing || client_requires);
                let computer =
                    (!outcome.workstation.is_empty()).then(|| outcome.workstation.clone());
                let info = SessionInfo {
                    user,
                    admin,
                    computer_name: computer,
                    dialect: dialect_in_force,
                    signed: key.is_some() && required,
                };
                if let Some(s) = self.table.session_mut(sid) {
                    s.ext.signing_key = key;
                    s.ext.signing_required = required;
                    s.ext.sign_responses = required;
                    s.ext.crypt = crypt;
                }
                if self.table.authenticate_session(sid, info, req.now).is_err() {
                    let _ = self.table.logoff(sid, req.now);
                    return Answer::Fail(NtStatus::INVALID_PARAMETER);
                }
                if outcome.kerberos {
                    self.counters.kerberos_logons += 1;
                    let _ = self.table.set_kerberos(sid, ticket_end);
                }
                if let Identity::User { domain, .. } = &outcome.identity {
                    self.disk_session_authenticated(conn, sid, domain);
                } else {
                    self.disk_session_authenticated(conn, sid, "");
                }
                self.expire_previous_session(sreq.previous_session_id(), sid, req.now);
                tracing::debug!(shard = self.shard, session = %sid, reauth = was_valid, "session authenticated");
                SessionSetupResponseRepr {
                    session_flags: flags,
                    security_buffer: &output,
                }
                .emit_body(start, out);
                Answer::Done(NtStatus::SUCCESS)
            }
            Err(e) => {
                // MS-SMB2 3.3.5.5.3: a failed authentication removes the
                // session, a re-authenticated one included.
                let was_valid = s.is_authenticated();
                s.ext.auth = None;
                self.counters.logons_failed += 1;
                if let smb_auth::AuthError::Kerberos(f) = &e {
                    self.counters.kerberos_refused[f.index()] += 1;
                }
                // The answer waits out auth-failure-delay (throttle.rs).
                self.hold_frame = true;
                self.close_session_pipes(conn, sid);
                self.close_session_files(conn, sid, req.now);
                let _ = self.table.logoff(sid, req.now);
                tracing::debug!(shard = self.shard, error = %e, reauth = was_valid, "authentication failed");
                Answer::Fail(NtStatus(e.ntstatus()))
            }
        }
    }

    /// The end of a successful re-authentication of a valid session
    /// (MS-SMB2 3.3.5.5.3): the identity may not change (a null session
    /// cannot become a user, a user cannot become someone else or
    /// anonymous), and the keys, signing requirement and flags of the first
    /// authentication stay as they are: re-authentication never downgrades
    /// a signed session. A different identity fails with ACCESS_DENIED and,
    /// like any failed authentication, removes the session.
    fn finish_reauth(
        &mut self,
        req: &Req<'_>,
        sid: SessionId,
        identity: &Identity,
        output: &[u8],
        start: usize,
        out: &mut Vec<u8>,
    ) -> Answer {
        let same = match (self.table.user(sid), identity) {
            (Some(UserName::Anonymous), Identity::Anonymous) => true,
            (Some(UserName::Guest), Identity::Guest) => true,
            (Some(UserName::User(old)), Identity::User { name, .. }) => {
                old.eq_ignore_ascii_case(name.as_str())
            }
            _ => false,
        };
        if !same {
            self.counters.logons_failed += 1;
            self.hold_frame = true;
            self.close_session_pipes(req.conn, sid);
            self.close_session_files(req.conn, sid, req.now);
            let _ = self.table.logoff(sid, req.now);
            tracing::debug!(shard = self.shard, session = %sid, "re-authentication as another identity refused");
            return Answer::Fail(NtStatus::ACCESS_DENIED);
        }
        self.table.touch(sid, req.now);
        let flags = match identity {
            Identity::Anonymous => session_flags::IS_NULL,
            Identity::Guest => session_flags::IS_GUEST,
            Identity::User { .. } => 0,
        };
        tracing::debug!(shard = self.shard, session = %sid, "session re-authenticated");
        SessionSetupResponseRepr {
            session_flags: flags,
            security_buffer: output,
        }
        .emit_body(start, out);
        Answer::Done(NtStatus::SUCCESS)
    }

    /// Feed a finished SESSION_SETUP response into the session's 3.1.1
    /// preauth hash (only MORE_PROCESSING legs count, MS-SMB2 3.3.5.5.3) and
    /// the NEGOTIATE response into the connection's.
    pub(crate) fn after_response(&mut self, conn: ConnId, msg: &[u8]) {
        let hdr = Header::new_unchecked(&msg[..HEADER_LEN]);
        match hdr.command() {
            smb_wire::Command::Negotiate if hdr.status() == NtStatus::SUCCESS => {
                if let Some(c) = self.table.connection_mut(conn) {
                    if let Some(h) = c.ext.preauth.as_mut() {
                        h.update(msg);
                    }
                }
            }
            smb_wire::Command::SessionSetup
                if hdr.status() == NtStatus::MORE_PROCESSING_REQUIRED =>
            {
                let Some(sid) = SessionId::from_raw(hdr.session_id()) else {
                    return;
                };
                if let Some(s) = self.table.session_mut(sid) {
                    if let Some(h) = s.ext.auth.as_mut().and_then(|a| a.preauth.as_mut()) {
                        h.update(msg);
                    }
                }
            }
            _ => {}
        }
    }

    /// PreviousSessionId (MS-SMB2 3.3.5.5.3): a client reconnecting after
    /// losing its connection names its old session; once the new one is
    /// authenticated as the same user, the old one is logged off (its
    /// opens closed) so that its handles stop working at once. Only a
    /// session of this shard is found (smbcore keeps sessions per shard).
    fn expire_previous_session(&mut self, previous: u64, sid: SessionId, now: std::time::Instant) {
        let Some(old) = SessionId::from_raw(previous).filter(|&o| o != sid) else {
            return;
        };
        let (Some(old_conn), Some(UserName::User(old_user)), Some(UserName::User(user))) = (
            self.table.session_conn(old),
            self.table.user(old),
            self.table.user(sid),
        ) else {
            return;
        };
        if !old_user.eq_ignore_ascii_case(&user) {
            return;
        }
        tracing::debug!(shard = self.shard, old = %old, new = %sid, "previous session logged off");
        self.close_session_pipes(old_conn, old);
        self.close_session_files(old_conn, old, now);
        let _ = self.table.logoff(old, now);
    }

    /// LOGOFF (3.3.5.6).
    pub(crate) fn handle_logoff(
        &mut self,
        req: &Req<'_>,
        sid: SessionId,
        out: &mut Vec<u8>,
    ) -> Answer {
        self.close_session_pipes(req.conn, sid);
        self.close_session_files(req.conn, sid, req.now);
        // The response is signed with the session's key, so sign it before
        // the session goes: keep the key in the chain by signing here.
        LogoffResponseRepr::default().emit_body(out.len() - HEADER_LEN, out);
        self.pending_logoffs.push(sid);
        self.counters.logged_off += 1;
        Answer::Done(NtStatus::SUCCESS)
    }
}
