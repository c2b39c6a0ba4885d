//! Kerberos through the engine with a fake acceptor and initiator (the GSS-API
//! implementation has its own tests against a real KDC in smb-krb5): SPNEGO
//! routing (MS-KRB5/KRB5 first in the hint, one leg, AP-REP back), the session
//! key signing as with NTLM, each refusal with its status and counter while
//! another session goes on, and the ticket end as a deadline on the wheel
//! (MS-SMB2 3.3.5.2.9: NETWORK_SESSION_EXPIRED, revived by re-authentication,
//! reaped like an idle session when not).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smb_auth::kerberos::{
    KerberosAcceptor, KerberosContext, KerberosFailure, KerberosInitiator, KerberosOutcome,
    OID_MS_KRB5,
};
use smb_auth::ntlm::{Credential, CredentialStore};
use smb_auth::preauth::PreauthHash;
use smb_client::{Auth, KerberosClient};
use smb_wire::header::Command;
use smb_wire::msg::negotiate::{dialect, NegotiateResponse};
use smb_wire::NtStatus;

use super::{
    assert_unharmed, bystander, config, setup_request, status, Client, EngineConfig, Server,
    SessionSetup,
};
use crate::autodisconnect::AutoDisconnect;
use crate::ids::SessionId;

/// Tokens are `KRB|principal|lifetime-secs|nonce` (or a failure's name); the
/// session key is derived from the principal and nonce.
#[derive(Debug, Default)]
struct FakeKdc {
    seen: Mutex<HashSet<Vec<u8>>>,
}

fn key_of(principal: &str, nonce: &str) -> Vec<u8> {
    let mut k: Vec<u8> = format!("{principal}/{nonce}").into_bytes();
    k.resize(32, 0x5a);
    k
}

impl KerberosAcceptor for FakeKdc {
    fn accept(&self, token: &[u8]) -> Result<KerberosOutcome, KerberosFailure> {
        let text = std::str::from_utf8(token).map_err(|_| KerberosFailure::Malformed)?;
        match text {
            "skew" => return Err(KerberosFailure::Skew),
            "wrong-service" => return Err(KerberosFailure::WrongService),
            "wrong-key" => return Err(KerberosFailure::BadTicket),
            _ => {}
        }
        let mut parts = text.split('|');
        let (Some("KRB"), Some(principal), Some(life), Some(nonce)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KerberosFailure::Malformed);
        };
        if !self.seen.lock().unwrap().insert(token.to_vec()) {
            return Err(KerberosFailure::Replay);
        }
        Ok(KerberosOutcome {
            output: b"AP-REP".to_vec(),
            principal: principal.into(),
            session_key: key_of(principal, nonce),
            lifetime: Some(Duration::from_secs(life.parse().unwrap())),
        })
    }
}

/// A client with tickets of `life` seconds for `principal`.
#[derive(Debug)]
struct FakeTickets {
    principal: String,
    life: u64,
    nonce: AtomicU64,
}

#[derive(Debug)]
struct FakeContext {
    token: Vec<u8>,
    key: Vec<u8>,
}

impl KerberosInitiator for FakeTickets {
    fn start(&self) -> Result<Box<dyn KerberosContext>, String> {
        let n = self.nonce.fetch_add(1, Ordering::Relaxed).to_string();
        Ok(Box::new(FakeContext {
            token: format!("KRB|{}|{}|{n}", self.principal, self.life).into_bytes(),
            key: key_of(&self.principal, &n),
        }))
    }
}

impl KerberosContext for FakeContext {
    fn token(&self) -> &[u8] {
        &self.token
    }
    fn finish(&mut self, ap_rep: &[u8]) -> Result<Vec<u8>, String> {
        assert_eq!(ap_rep, b"AP-REP");
        Ok(self.key.clone())
    }
}

fn tickets(principal: &str, life: u64) -> Auth {
    Auth::Kerberos(KerberosClient(Arc::new(FakeTickets {
        principal: principal.into(),
        life,
        nonce: AtomicU64::new(1),
    })))
}

/// Bob's principal is an administrator; the NTLM users of `config()` stay.
#[derive(Debug)]
struct Users(StaticUsers);
type StaticUsers = smb_auth::ntlm::StaticCredentials;

impl CredentialStore for Users {
    fn lookup(&self, user: &str, domain: &str) -> Option<Credential> {
        self.0.lookup(user, domain)
    }
    fn principal_is_admin(&self, principal: &str) -> bool {
        principal.eq_ignore_ascii_case("bob@SMBCORE.TEST")
    }
}

fn kerberos_config() -> EngineConfig {
    let mut cfg = config();
    let mut users = StaticUsers::new();
    users.add_password(super::USER.0, super::USER.1, false);
    cfg.users = Arc::new(Users(users));
    cfg.kerberos = Some(Arc::new(FakeKdc::default()));
    cfg.autodisconnect = AutoDisconnect::AfterMillis(60_000);
    cfg
}

impl Client {
    /// NEGOTIATE, then a one-leg Kerberos SESSION_SETUP with `auth` (or `token`
    /// put in the SPNEGO NegTokenInit as is); returns the response.
    fn kerberos_login(&mut self, server: &mut Server, auth: &Auth) -> Vec<u8> {
        let (neg_req, neg_resp) = self.negotiate(server, dialect::SMB311);
        let mut preauth = PreauthHash::new();
        preauth.update(&neg_req);
        preauth.update(&neg_resp);
        let mut setup = SessionSetup::new(auth, "", preauth);
        let tok = setup.initial_token();
        let req = self.request(Command::SessionSetup, &setup_request(&tok));
        setup.sent(&req);
        let resp = self.call(server, &req);
        if status(&resp) == NtStatus::SUCCESS {
            let n = self.negotiated.expect("negotiated");
            self.key = setup.finish(&resp, &n).expect("AP-REP");
            self.session = setup.session_id();
        }
        resp
    }

    /// A Kerberos re-authentication of the current session, signed.
    fn kerberos_reauth(&mut self, server: &mut Server, auth: &Auth) -> NtStatus {
        let mut setup = SessionSetup::new(auth, "", PreauthHash::new());
        setup.set_session_id(self.session);
        let tok = setup.initial_token();
        let req = self.request(Command::SessionSetup, &setup_request(&tok));
        let req = self.signed(req);
        status(&self.call(server, &req))
    }

    fn raw_setup(&mut self, server: &mut Server, mech_token: &[u8]) -> NtStatus {
        self.negotiate(server, dialect::SMB311);
        let tok = smb_auth::spnego::kerberos_initial_token(mech_token);
        let req = self.request(Command::SessionSetup, &setup_request(&tok));
        status(&self.call(server, &req))
    }
}

fn session_id(c: &Client) -> SessionId {
    SessionId::from_raw(c.session).expect("a session id")
}

#[test]
fn the_negotiate_hint_offers_kerberos_before_ntlmssp() {
    let mut s = Server::new(kerberos_config());
    let mut c = Client::new(&mut s, 41000);
    let (_, resp) = c.negotiate(&mut s, dialect::SMB311);
    let n = NegotiateResponse::parse(&resp).unwrap();
    let smb_auth::spnego::NegotiationToken::Init(init) =
        smb_auth::spnego::parse_token(n.security_buffer()).unwrap()
    else {
        panic!("hint is a NegTokenInit");
    };
    let mechs: Vec<&[u8]> = init.mech_types().collect();
    assert_eq!(mechs[0], OID_MS_KRB5);
    assert_eq!(mechs[1], smb_auth::kerberos::OID_KRB5);
    assert_eq!(mechs[2], smb_auth::spnego::OID_NTLMSSP);
    // Without a keytab: NTLMSSP only.
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 41001);
    let (_, resp) = c.negotiate(&mut s, dialect::SMB311);
    let n = NegotiateResponse::parse(&resp).unwrap();
    let smb_auth::spnego::NegotiationToken::Init(init) =
        smb_auth::spnego::parse_token(n.security_buffer()).unwrap()
    else {
        panic!()
    };
    assert_eq!(init.mech_types().count(), 1);
}

#[test]
fn a_kerberos_logon_is_one_leg_and_signs_with_the_ticket_key() {
    let mut s = Server::new(kerberos_config());
    let mut c = Client::new(&mut s, 41002);
    let resp = c.kerberos_login(&mut s, &tickets("alice@SMBCORE.TEST", 36_000));
    assert_eq!(status(&resp), NtStatus::SUCCESS);
    assert!(
        c.key.is_some(),
        "a signing key from the Kerberos session key"
    );
    let r = c.tree_connect(&mut s, "IPC$", true);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    assert!(super::is_signed_by(c.key.as_ref().unwrap(), &r));
    let sid = session_id(&c);
    let snap = s
        .engine
        .table()
        .session_snapshot(sid, s.now)
        .expect("session");
    assert_eq!(snap.user.to_string(), "alice@SMBCORE.TEST");
    assert!(snap.kerberos);
    assert!(!snap.admin);
    let end = snap.ticket_end.expect("ticket end");
    assert_eq!(end - s.now, Duration::from_secs(36_000));
    assert_eq!(s.engine.stats().kerberos_logons, 1);
    // An administrator principal from the users file.
    let mut b = Client::new(&mut s, 41003);
    b.kerberos_login(&mut s, &tickets("bob@SMBCORE.TEST", 36_000));
    assert!(s.engine.table().session(session_id(&b)).unwrap().is_admin());
    // NTLM still works beside it.
    let mut n = Client::new(&mut s, 41004);
    n.login(&mut s, dialect::SMB311, Some(super::USER));
}

#[test]
fn refused_ap_reqs_get_their_status_and_counter_and_others_go_on() {
    let mut s = Server::new(kerberos_config());
    let mut a = bystander(&mut s);
    let cases: [(&[u8], NtStatus, Option<KerberosFailure>); 6] = [
        (b"skew", NtStatus(0xC000_0133), Some(KerberosFailure::Skew)),
        (
            b"wrong-service",
            NtStatus(0xC000_02F2),
            Some(KerberosFailure::WrongService),
        ),
        (
            b"wrong-key",
            NtStatus::LOGON_FAILURE,
            Some(KerberosFailure::BadTicket),
        ),
        (
            b"KRB|trunc",
            NtStatus::INVALID_PARAMETER,
            Some(KerberosFailure::Malformed),
        ),
        (
            b"\xff\x00garbage",
            NtStatus::INVALID_PARAMETER,
            Some(KerberosFailure::Malformed),
        ),
        // A SPNEGO token naming Kerberos but carrying NTLMSSP.
        (
            b"NTLMSSP\0\x01\0\0\0\x07\x82\x08\xa2",
            NtStatus::INVALID_PARAMETER,
            Some(KerberosFailure::Malformed),
        ),
    ];
    for (i, (tok, want, reason)) in cases.iter().enumerate() {
        let mut c = Client::new(&mut s, 41100 + i as u16);
        assert_eq!(c.raw_setup(&mut s, tok), *want, "{tok:?}");
        let st = s.engine.stats();
        if let Some(r) = reason {
            assert!(st.kerberos_refused[r.index()] >= 1, "{r:?} counted");
        }
        assert_unharmed(&mut s, &mut a);
    }
    // A replayed AP-REQ.
    let tok = b"KRB|carol@SMBCORE.TEST|3600|77";
    let mut c = Client::new(&mut s, 41200);
    assert_eq!(c.raw_setup(&mut s, tok), NtStatus::SUCCESS);
    let mut d = Client::new(&mut s, 41201);
    assert_eq!(d.raw_setup(&mut s, tok), NtStatus::ACCESS_DENIED);
    assert_eq!(
        s.engine.stats().kerberos_refused[KerberosFailure::Replay.index()],
        1
    );
    assert_eq!(s.engine.stats().kerberos_refused.iter().sum::<u64>(), 7);
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn a_session_expires_with_its_ticket_and_a_new_ticket_revives_it() {
    let mut s = Server::new(kerberos_config());
    let mut c = Client::new(&mut s, 41300);
    let auth = tickets("alice@SMBCORE.TEST", 10);
    assert_eq!(status(&c.kerberos_login(&mut s, &auth)), NtStatus::SUCCESS);
    let sid = session_id(&c);
    s.advance(Duration::from_secs(9));
    assert_eq!(
        status(&c.tree_connect(&mut s, "IPC$", true)),
        NtStatus::SUCCESS
    );
    // The wheel marks it expired at the ticket's end, not before.
    assert_eq!(s.engine.stats().tickets_expired, 0);
    s.advance(Duration::from_millis(1_002));
    assert_eq!(s.engine.stats().tickets_expired, 1);
    assert!(s.engine.table().session(sid).unwrap().is_marked_expired());
    let r = c.tree_connect(&mut s, "IPC$", true);
    assert_eq!(status(&r), NtStatus::NETWORK_SESSION_EXPIRED);
    assert_eq!(s.engine.stats().expired_requests, 1);
    // Re-authentication with a new ticket revives the same session.
    assert_eq!(c.kerberos_reauth(&mut s, &auth), NtStatus::SUCCESS);
    assert_eq!(session_id(&c), sid);
    assert!(!s.engine.table().session(sid).unwrap().is_marked_expired());
    assert_eq!(
        status(&c.tree_connect(&mut s, "IPC$", true)),
        NtStatus::SUCCESS
    );
    // Left expired, it is reaped like an idle session: refused requests are
    // no activity, so 60 s after its last real one.
    s.advance(Duration::from_secs(11));
    assert_eq!(
        status(&c.tree_connect(&mut s, "IPC$", true)),
        NtStatus::NETWORK_SESSION_EXPIRED
    );
    assert_eq!(s.engine.stats().tickets_expired, 2);
    s.advance(Duration::from_secs(48));
    assert!(
        s.engine.table().session(sid).is_some(),
        "not before its idle deadline"
    );
    s.advance(Duration::from_secs(2));
    assert!(s.engine.table().session(sid).is_none(), "reaped");
    assert_eq!(s.engine.stats().timed_out, 1);
}

#[test]
fn re_authentication_as_another_principal_is_refused() {
    let mut s = Server::new(kerberos_config());
    let mut c = Client::new(&mut s, 41400);
    assert_eq!(
        status(&c.kerberos_login(&mut s, &tickets("alice@SMBCORE.TEST", 600))),
        NtStatus::SUCCESS
    );
    assert_eq!(
        c.kerberos_reauth(&mut s, &tickets("bob@SMBCORE.TEST", 600)),
        NtStatus::ACCESS_DENIED
    );
    assert_eq!(s.sessions(), 0);
}
