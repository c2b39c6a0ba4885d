//! In-memory tests of the engine: a client built from smb-wire encoders and
//! smb-auth's SPNEGO/NTLMSSP initiator talks to an [`Engine`] with a fake
//! clock (the `Pair` idea of quinn-proto's tests), first the happy paths
//! (MS-SMB2 3.3.5.4 negotiate, 3.3.5.5 session setup with the 3.1.1 preauth
//! hash and signing, 3.3.5.7 tree connect), then bad input: truncated
//! frames, lying lengths, wrong offsets, unknown commands, credit and
//! MessageId abuse (3.3.5.2.3), bad signatures (3.3.5.2.4), another
//! connection's session id (3.3.5.2.9) — and after each, a check that the
//! other connection's session is untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use smb_auth::ntlm::{NtlmInitiator, StaticCredentials};
use smb_auth::preauth::PreauthHash;
use smb_auth::signing::{self, derive_signing_key, SigningAlgorithm, SigningKey};
use smb_auth::spnego::SpnegoInitiator;
use smb_wire::compound::Compound;
use smb_wire::header::{flags, Command, Header, HeaderRepr, HEADER_LEN};
use smb_wire::msg::close::CloseRequestRepr;
use smb_wire::msg::echo::EchoRequestRepr;
use smb_wire::msg::ioctl::IoctlRequestRepr;
use smb_wire::msg::logoff::LogoffRequestRepr;
use smb_wire::msg::negotiate::{
    algorithm, dialect, NegotiateContextRepr, NegotiateRequestRepr, NegotiateResponse,
};
use smb_wire::msg::session_setup::{SessionSetupRequestRepr, SessionSetupResponse};
use smb_wire::msg::tree_connect::{TreeConnectRequestRepr, TreeConnectResponse};
use smb_wire::msg::{EmitBody, FileId, U16s};
use smb_wire::NtStatus;

use smb_client::{
    set_signed, setup_request, share_path, Auth, Negotiated, Offer, Requests, ResponseInfo,
    SessionSetup,
};

use super::{Engine, EngineConfig, FrameOutcome};

mod encryption;
mod share;
use crate::ids::ConnId;

mod kerberos;

const ADMIN: (&str, &str) = ("admin", "Adm1nPass!");
const USER: (&str, &str) = ("alice", "Al1cePass!");

fn config() -> EngineConfig {
    let mut users = StaticCredentials::new();
    users.add_password(ADMIN.0, ADMIN.1, true);
    users.add_password(USER.0, USER.1, false);
    let mut cfg = EngineConfig::new([7; 16]);
    cfg.users = Arc::new(users);
    cfg
}

/// A deterministic random source (xorshift).
fn rng(seed: u64) -> super::RandomSource {
    let mut s = seed | 1;
    Box::new(move |buf: &mut [u8]| {
        for b in buf {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *b = s as u8;
        }
    })
}

/// The engine under test with a fake clock. It remembers every connection
/// it accepted and, after each frame, checks that output went to the
/// connection that caused it and to no other (nothing is ever cleared
/// between frames: each connection's queue is drained the way a socket
/// drains it).
struct Server {
    engine: Engine,
    now: Instant,
    conns: Vec<ConnId>,
}

impl Server {
    fn new(cfg: EngineConfig) -> Server {
        let now = Instant::now();
        Server {
            engine: Engine::new(0, Arc::new(cfg), now, SystemTime::now(), rng(42)),
            now,
            conns: Vec::new(),
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.engine.handle_timeout(self.now);
    }

    fn accept(&mut self, port: u16) -> ConnId {
        let peer: SocketAddr = ([127, 0, 0, 1], port).into();
        let c = self.engine.accept(peer, self.now);
        self.conns.push(c);
        c
    }

    /// One NBSS payload in; every response message out (compounds split).
    /// Panics if any other connection was given output, or if a response
    /// answers a MessageId this payload did not carry.
    fn frame(&mut self, conn: ConnId, payload: &[u8]) -> (FrameOutcome, Vec<Vec<u8>>) {
        let outcome = self.engine.handle_frame(conn, payload, self.now);
        let mut out = Vec::new();
        self.engine.drain_transmit(conn, &mut out);
        for &other in &self.conns {
            if other != conn {
                assert!(
                    self.engine.poll_transmit(other).is_empty(),
                    "a frame on {conn:?} queued output for {other:?}"
                );
            }
        }
        let msgs = split_frames(&out);
        let asked = request_message_ids(payload);
        for m in &msgs {
            let id = Header::new_checked(&m[..]).expect("header").message_id();
            assert!(
                asked.contains(&id),
                "response to MessageId {id} on {conn:?}, which asked only {asked:?}"
            );
        }
        if outcome == FrameOutcome::Close {
            assert!(msgs.is_empty(), "a dropped frame queued output");
        }
        (outcome, msgs)
    }

    fn sessions(&self) -> usize {
        self.engine.table().stats().sessions
    }
}

/// The MessageIds a request payload carries (an SMB1 NEGOTIATE is answered
/// with MessageId 0).
fn request_message_ids(payload: &[u8]) -> Vec<u64> {
    if payload.starts_with(b"\xffSMB") {
        return vec![0];
    }
    Compound::new(payload)
        .map_while(Result::ok)
        .filter_map(|m| Header::new_checked(m).ok().map(|h| h.message_id()))
        .collect()
}

/// NBSS frames -> SMB2 messages.
fn split_frames(mut out: &[u8]) -> Vec<Vec<u8>> {
    let mut msgs = Vec::new();
    while !out.is_empty() {
        assert!(out.len() >= 4, "truncated NBSS header in output");
        assert_eq!(out[0], 0, "NBSS session message");
        let len = usize::from(out[1]) << 16 | usize::from(out[2]) << 8 | usize::from(out[3]);
        let payload = &out[4..4 + len];
        for m in Compound::new(payload) {
            msgs.push(m.expect("engine wrote a well-formed compound").to_vec());
        }
        out = &out[4 + len..];
    }
    msgs
}

fn status(msg: &[u8]) -> NtStatus {
    Header::new_checked(msg).expect("response header").status()
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// One client connection driven by hand: the requests and the SESSION_SETUP legs come
/// from the `smb-client` core; what is sent when, and in what shape, stays up to each test.
struct Client {
    conn: ConnId,
    requests: Requests,
    session: u64,
    tree: u32,
    key: Option<SigningKey>,
    dialect: u16,
    negotiated: Option<Negotiated>,
}

impl Client {
    fn new(server: &mut Server, port: u16) -> Client {
        Client {
            conn: server.accept(port),
            requests: Requests::new(32),
            session: 0,
            tree: 0,
            key: None,
            dialect: 0,
            negotiated: None,
        }
    }

    /// A request with the next MessageId, asking for 32 credits.
    fn request(&mut self, command: Command, body: &dyn EmitBody) -> Vec<u8> {
        self.requests
            .message(command, self.session, self.tree, body, None)
    }

    fn signed(&self, mut msg: Vec<u8>) -> Vec<u8> {
        let key = self.key.as_ref().expect("a signing key");
        set_signed(key, &mut msg);
        msg
    }

    /// Send one message; expect exactly one response (waiting out the
    /// auth-failure delay when the answer is a held logon failure).
    fn call(&mut self, server: &mut Server, msg: &[u8]) -> Vec<u8> {
        let (outcome, mut resp) = server.frame(self.conn, msg);
        if resp.is_empty() && outcome == FrameOutcome::Continue {
            let delay = server.engine.config().auth_failure_delay;
            server.advance(delay + Duration::from_millis(1));
            resp = released(server, self.conn);
        }
        assert_eq!(outcome, FrameOutcome::Continue, "connection dropped");
        assert_eq!(resp.len(), 1, "one response");
        resp.remove(0)
    }

    /// NEGOTIATE offering `d` only (3.1.1: SHA-512 preauth, GMAC then CMAC signing);
    /// returns the request and the response.
    fn negotiate(&mut self, server: &mut Server, d: u16) -> (Vec<u8>, Vec<u8>) {
        let mut offer = Offer::new(&[d], [9; 16], [3; 32]);
        offer.signing_algorithms = vec![algorithm::AES_GMAC, algorithm::AES_CMAC];
        let req = self.request(Command::Negotiate, &offer);
        let resp = self.call(server, &req);
        assert_eq!(status(&resp), NtStatus::SUCCESS);
        let n = offer.accept(&resp).expect("negotiate response");
        assert_eq!(n.dialect, d);
        self.dialect = d;
        self.negotiated = Some(n);
        (req, resp)
    }

    /// Both SESSION_SETUP legs as `who` (None: anonymous), each signed when `sign`;
    /// returns the status of the last leg answered (MORE_PROCESSING_REQUIRED legs are
    /// followed through) and the setup, for its key.
    fn setup_legs(
        &mut self,
        server: &mut Server,
        who: Option<(&str, &str)>,
        conn_preauth: PreauthHash,
        sign: bool,
    ) -> (Vec<u8>, SessionSetup) {
        let auth = who.map_or(Auth::Anonymous, |(u, p)| Auth::User {
            name: u.into(),
            domain: "WORKGROUP".into(),
            password: p.into(),
        });
        let mut setup = SessionSetup::new(&auth, "", conn_preauth);
        setup.set_session_id(self.session);
        let tok = setup.initial_token();
        let mut req = self.request(Command::SessionSetup, &setup_request(&tok));
        if sign {
            req = self.signed(req);
        }
        setup.sent(&req);
        let resp = self.call(server, &req);
        if status(&resp) != NtStatus::MORE_PROCESSING_REQUIRED {
            return (resp, setup);
        }
        let tok = setup
            .challenge(&resp, [5; 8], [6; 16])
            .expect("authenticate");
        // A new session takes the id the server gave (no NEGOTIATE again).
        self.session = setup.session_id();
        let mut req = self.request(Command::SessionSetup, &setup_request(&tok));
        if sign {
            req = self.signed(req);
        }
        setup.sent(&req);
        (self.call(server, &req), setup)
    }

    /// NEGOTIATE + two SESSION_SETUP legs; returns the final response.
    fn login(&mut self, server: &mut Server, d: u16, who: Option<(&str, &str)>) -> Vec<u8> {
        let (neg_req, neg_resp) = self.negotiate(server, d);
        // MS-SMB2 3.3.5.5.3 / 3.2.5.3.1: the session's hash starts from the
        // connection's, which covers the NEGOTIATE request and response.
        let mut preauth = PreauthHash::new();
        preauth.update(&neg_req);
        preauth.update(&neg_resp);
        let (resp, mut setup) = self.setup_legs(server, who, preauth, false);
        assert_eq!(status(&resp), NtStatus::SUCCESS, "login");
        let n = self.negotiated.expect("negotiated");
        self.key = setup.finish(&resp, &n).expect("SPNEGO accept-completed");
        resp
    }

    /// Re-authenticate the current session as `who` (None: anonymous),
    /// signing each leg when `sign`; returns the status of the last leg
    /// answered (MORE_PROCESSING_REQUIRED legs are followed through).
    fn reauth(&mut self, server: &mut Server, who: Option<(&str, &str)>, sign: bool) -> NtStatus {
        status(&self.setup_legs(server, who, PreauthHash::new(), sign).0)
    }

    fn tree_connect(&mut self, server: &mut Server, share: &str, sign: bool) -> Vec<u8> {
        let path = share_path("SMBCORE", share);
        let mut req = self.request(
            Command::TreeConnect,
            &TreeConnectRequestRepr {
                flags: 0,
                path: &path,
            },
        );
        if sign {
            req = self.signed(req);
        }
        let resp = self.call(server, &req);
        if status(&resp) == NtStatus::SUCCESS {
            TreeConnectResponse::parse(&resp).expect("tree connect response");
            self.tree = ResponseInfo::parse(&resp).expect("header").tree_id;
        }
        resp
    }

    fn echo(&mut self, server: &mut Server) -> NtStatus {
        let req = self.request(Command::Echo, &EchoRequestRepr::default());
        status(&self.call(server, &req))
    }
}

fn is_signed_by(key: &SigningKey, msg: &[u8]) -> bool {
    Header::new_checked(msg).unwrap().is_signed() && signing::verify(key, msg)
}

/// An established session that every bad-input test checks afterwards.
fn bystander(server: &mut Server) -> Client {
    let mut a = Client::new(server, 40000);
    a.login(server, dialect::SMB311, Some(USER));
    let r = a.tree_connect(server, "IPC$", true);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    a
}

/// The bystander still works: ECHO, a signed TREE_CONNECT answered signed.
fn assert_unharmed(server: &mut Server, a: &mut Client) {
    assert_eq!(a.echo(server), NtStatus::SUCCESS);
    let r = a.tree_connect(server, "IPC$", true);
    assert_eq!(
        status(&r),
        NtStatus::SUCCESS,
        "bystander's session survived"
    );
    assert!(is_signed_by(a.key.as_ref().unwrap(), &r));
}

// ----- happy paths -------------------------------------------------------

#[test]
fn anonymous_login_and_ipc_on_every_dialect() {
    for d in [
        dialect::SMB202,
        dialect::SMB210,
        dialect::SMB300,
        dialect::SMB302,
        dialect::SMB311,
    ] {
        let mut s = Server::new(config());
        let mut c = Client::new(&mut s, 1000);
        c.login(&mut s, d, None);
        assert!(c.key.is_none(), "anonymous sessions have no key");
        let r = c.tree_connect(&mut s, "IPC$", false);
        assert_eq!(status(&r), NtStatus::SUCCESS, "dialect {d:#x}");
        assert_eq!(TreeConnectResponse::parse(&r).unwrap().share_type(), 2);
        let r = c.tree_connect(&mut s, "NOPE", false);
        assert_eq!(status(&r), NtStatus::BAD_NETWORK_NAME);
    }
}

#[test]
fn user_login_signs_the_final_session_setup_on_every_dialect() {
    for d in [
        dialect::SMB202,
        dialect::SMB210,
        dialect::SMB300,
        dialect::SMB302,
        dialect::SMB311,
    ] {
        let mut s = Server::new(config());
        let mut c = Client::new(&mut s, 1000);
        let fin = c.login(&mut s, d, Some(USER));
        let key = c.key.clone().expect("user sessions have a key");
        assert!(
            is_signed_by(&key, &fin),
            "final SESSION_SETUP response of {d:#x} signed with the key the client derived"
        );
        // A signed request gets a signed response (MS-SMB2 3.3.4.1.1) even
        // though neither side requires signing.
        let r = c.tree_connect(&mut s, "IPC$", true);
        assert_eq!(status(&r), NtStatus::SUCCESS);
        assert!(
            is_signed_by(&key, &r),
            "{d:#x}: response to a signed request"
        );
        // An unsigned request on a session that does not require signing
        // is accepted and answered unsigned.
        let r = c.tree_connect(&mut s, "IPC$", false);
        assert_eq!(status(&r), NtStatus::SUCCESS);
        assert!(!Header::new_checked(&r[..]).unwrap().is_signed());
    }
}

/// The 3.1.1 negotiate contexts of the response to a NEGOTIATE offering
/// `signing` algorithms (none: no SIGNING_CAPABILITIES) and AES-128-GCM.
fn answered_contexts(signing: &[u16]) -> Vec<String> {
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    let salt = [3u8; 32];
    let sha = [algorithm::SHA512];
    let gcm = [algorithm::AES128_GCM];
    let mut ctxs = vec![
        NegotiateContextRepr::PreauthIntegrity {
            hash_algorithms: U16s::Native(&sha),
            salt: &salt,
        },
        NegotiateContextRepr::Encryption {
            ciphers: U16s::Native(&gcm),
        },
    ];
    if !signing.is_empty() {
        ctxs.push(NegotiateContextRepr::Signing {
            algorithms: U16s::Native(signing),
        });
    }
    let dialects = [dialect::SMB311];
    let req = c.request(
        Command::Negotiate,
        &NegotiateRequestRepr {
            security_mode: 1,
            capabilities: 0,
            client_guid: [1; 16],
            client_start_time: 0,
            dialects: U16s::Native(&dialects),
            contexts: &ctxs,
        },
    );
    let resp = c.call(&mut s, &req);
    let n = NegotiateResponse::parse(&resp).unwrap();
    n.contexts()
        .map(|ctx| match ctx.decode().expect("well-formed context") {
            NegotiateContextRepr::PreauthIntegrity {
                hash_algorithms,
                salt,
            } => format!(
                "preauth {:?} salt {}",
                hash_algorithms.iter().collect::<Vec<_>>(),
                salt.len()
            ),
            NegotiateContextRepr::Signing { algorithms } => {
                format!("signing {:?}", algorithms.iter().collect::<Vec<_>>())
            }
            NegotiateContextRepr::Encryption { ciphers } => {
                format!("encryption {:?}", ciphers.iter().collect::<Vec<_>>())
            }
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn negotiate_answers_the_contexts_it_supports_and_the_cipher() {
    assert_eq!(
        answered_contexts(&[algorithm::AES_CMAC, algorithm::AES_GMAC]),
        ["preauth [1] salt 32", "signing [2]", "encryption [2]"],
        "GMAC preferred; AES-128-GCM, the only cipher offered"
    );
    assert_eq!(
        answered_contexts(&[algorithm::HMAC_SHA256, algorithm::AES_CMAC]),
        ["preauth [1] salt 32", "signing [1]", "encryption [2]"]
    );
    assert_eq!(
        answered_contexts(&[]),
        ["preauth [1] salt 32", "encryption [2]"]
    );
}

#[test]
fn required_signing_refuses_unsigned_requests() {
    let mut cfg = config();
    cfg.require_signing = true;
    let mut s = Server::new(cfg);
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB300, Some(ADMIN));
    let r = c.tree_connect(&mut s, "IPC$", false);
    assert_eq!(status(&r), NtStatus::ACCESS_DENIED);
    let r = c.tree_connect(&mut s, "IPC$", true);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    assert!(is_signed_by(c.key.as_ref().unwrap(), &r));
}

#[test]
fn logoff_response_is_signed_and_the_session_goes() {
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB311, Some(USER));
    assert_eq!(s.sessions(), 1);
    let req = c.request(Command::Logoff, &LogoffRequestRepr::default());
    let req = c.signed(req);
    let r = c.call(&mut s, &req);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    assert!(is_signed_by(c.key.as_ref().unwrap(), &r));
    assert_eq!(s.sessions(), 0);
    let req = c.request(Command::Logoff, &LogoffRequestRepr::default());
    assert_eq!(
        status(&c.call(&mut s, &req)),
        NtStatus::USER_SESSION_DELETED
    );
}

// ----- re-authentication (MS-SMB2 3.3.5.2.4, 3.3.5.5.3) --------------------

fn signing_config() -> EngineConfig {
    let mut cfg = config();
    cfg.require_signing = true;
    cfg
}

#[test]
fn an_unsigned_reauth_of_a_signing_session_is_refused_and_changes_nothing() {
    let mut s = Server::new(signing_config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB311, Some(USER));
    let sid = c.session;
    // Unsigned, as the same user and as anonymous: refused before any
    // authentication happens.
    assert_eq!(c.reauth(&mut s, Some(USER), false), NtStatus::ACCESS_DENIED);
    assert_eq!(c.reauth(&mut s, None, false), NtStatus::ACCESS_DENIED);
    assert_eq!(c.session, sid);
    assert_eq!(s.sessions(), 1, "the session survives a forged reauth");
    // Still the same user, still signing, still refusing unsigned requests.
    let r = c.tree_connect(&mut s, "IPC$", true);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    assert!(is_signed_by(c.key.as_ref().unwrap(), &r));
    let r = c.tree_connect(&mut s, "IPC$", false);
    assert_eq!(status(&r), NtStatus::ACCESS_DENIED);
    let rows = s.engine.admin_sessions(&Default::default(), s.now);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].user.matches(USER.0));
}

#[test]
fn a_wrongly_signed_reauth_is_refused() {
    let mut s = Server::new(signing_config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB300, Some(USER));
    let good = c.key.take();
    c.key = Some(derive_signing_key(
        dialect::SMB300,
        &[9u8; 16],
        None,
        SigningAlgorithm::AesCmac,
    ));
    assert_eq!(c.reauth(&mut s, Some(USER), true), NtStatus::ACCESS_DENIED);
    c.key = good;
    assert_eq!(s.sessions(), 1);
    assert_unharmed(&mut s, &mut c);
}

#[test]
fn a_signed_reauth_as_the_same_user_keeps_key_and_signing() {
    for d in [dialect::SMB210, dialect::SMB300, dialect::SMB311] {
        let mut s = Server::new(signing_config());
        let mut c = Client::new(&mut s, 1000);
        c.login(&mut s, d, Some(USER));
        assert_eq!(c.reauth(&mut s, Some(USER), true), NtStatus::SUCCESS);
        // The key of the first authentication still signs and verifies.
        let r = c.tree_connect(&mut s, "IPC$", true);
        assert_eq!(status(&r), NtStatus::SUCCESS, "dialect {d:#x}");
        assert!(is_signed_by(c.key.as_ref().unwrap(), &r));
        let r = c.tree_connect(&mut s, "IPC$", false);
        assert_eq!(
            status(&r),
            NtStatus::ACCESS_DENIED,
            "still requires signing"
        );
    }
}

#[test]
fn reauth_cannot_change_the_identity() {
    // A null session cannot become an administrator.
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB311, None);
    assert_eq!(
        c.reauth(&mut s, Some(ADMIN), false),
        NtStatus::ACCESS_DENIED
    );
    assert_eq!(s.sessions(), 0, "a refused reauth removes the session");
    let rows = s.engine.admin_sessions(&Default::default(), s.now);
    assert!(rows.iter().all(|r| !r.admin));

    // A signed user session cannot be downgraded to anonymous (which would
    // drop its key and signing), nor become another user.
    for who in [None, Some(ADMIN)] {
        let mut s = Server::new(signing_config());
        let mut c = Client::new(&mut s, 1000);
        c.login(&mut s, dialect::SMB300, Some(USER));
        assert_eq!(c.reauth(&mut s, who, true), NtStatus::ACCESS_DENIED);
        assert_eq!(s.sessions(), 0);
        let r = c.tree_connect(&mut s, "IPC$", false);
        assert_eq!(status(&r), NtStatus::USER_SESSION_DELETED);
    }
}

#[test]
fn a_failed_reauth_removes_the_session() {
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB210, Some(USER));
    assert_eq!(
        c.reauth(&mut s, Some((USER.0, "wrong")), true),
        NtStatus::LOGON_FAILURE
    );
    assert_eq!(s.sessions(), 0);
}

#[test]
fn every_logoff_of_a_compound_takes_effect() {
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB210, None);
    let first = c.session;
    c.session = 0;
    assert_eq!(c.reauth(&mut s, None, false), NtStatus::SUCCESS);
    let second = c.session;
    assert_eq!(s.sessions(), 2);
    // Two sessions logged off in one compound: both go.
    c.session = first;
    let a = c.request(Command::Logoff, &LogoffRequestRepr::default());
    c.session = second;
    let b = c.request(Command::Logoff, &LogoffRequestRepr::default());
    let (outcome, msgs) = s.frame(c.conn, &chain(vec![a, b], &[false, false]));
    assert_eq!(outcome, FrameOutcome::Continue);
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| status(m) == NtStatus::SUCCESS));
    assert_eq!(s.sessions(), 0, "both LOGOFFs took effect");

    // The same session twice: the second is answered as a deleted session.
    c.session = 0;
    assert_eq!(c.reauth(&mut s, None, false), NtStatus::SUCCESS);
    let a = c.request(Command::Logoff, &LogoffRequestRepr::default());
    let b = c.request(Command::Logoff, &LogoffRequestRepr::default());
    let (_, msgs) = s.frame(c.conn, &chain(vec![a, b], &[false, false]));
    assert_eq!(status(&msgs[0]), NtStatus::SUCCESS);
    assert_eq!(status(&msgs[1]), NtStatus::USER_SESSION_DELETED);
    assert_eq!(s.sessions(), 0);
}

#[test]
fn a_logoff_in_a_dropped_frame_does_not_leak_into_the_next_frame() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB210, None);
    // LOGOFF followed by a message whose NextCommand runs off the end: the
    // frame is dropped whole.
    let l = c.request(Command::Logoff, &LogoffRequestRepr::default());
    let mut frame = chain(vec![l, vec![0xFE, b'S', b'M', b'B']], &[false, false]);
    frame.truncate(frame.len() - 2);
    let (outcome, _) = s.frame(c.conn, &frame);
    assert_eq!(outcome, FrameOutcome::Close);
    s.engine.connection_closed(c.conn, s.now);
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn a_response_too_large_for_one_frame_is_never_sent_with_a_wrong_length() {
    let mut out = vec![1, 2, 3];
    let mark = smb_wire::frame::FrameMark::begin(&mut out);
    out.resize(out.len() + (16 << 20) + 1, 0);
    assert!(!super::finish_frame(mark, &mut out, 3));
    assert_eq!(out, vec![1, 2, 3], "the oversized frame is removed whole");
    let mark = smb_wire::frame::FrameMark::begin(&mut out);
    out.extend_from_slice(&[9; 10]);
    assert!(super::finish_frame(mark, &mut out, 3));
    assert_eq!(&out[3..7], &[0, 0, 0, 10]);
}

// ----- the authentication rate limiter (throttle.rs) ------------------------

fn delay_config(delay: Duration) -> EngineConfig {
    let mut cfg = config();
    cfg.auth_failure_delay = delay;
    cfg
}

/// Output queued for `conn` since the last frame (held answers released by
/// the wheel), with the Transmit events drained.
fn released(s: &mut Server, conn: ConnId) -> Vec<Vec<u8>> {
    let mut announced = false;
    while let Some(ev) = s.engine.poll_event() {
        if let super::EngineEvent::Transmit(c) = ev {
            assert_eq!(c, conn, "a release announced for another connection");
            announced = true;
        }
    }
    let mut out = Vec::new();
    s.engine.drain_transmit(conn, &mut out);
    assert_eq!(announced, !out.is_empty(), "released output is announced");
    split_frames(&out)
}

#[test]
fn a_failed_logon_is_answered_after_the_delay_and_others_are_not_held() {
    let delay = Duration::from_secs(2);
    let mut s = Server::new(delay_config(delay));
    let mut bad = Client::new(&mut s, 1000);
    bad.negotiate(&mut s, dialect::SMB311);
    // Leg 1 is answered at once; the failing leg 2 is held.
    let ntlm = NtlmInitiator::user(USER.0, "WORKGROUP", "wrong");
    let mut spnego = SpnegoInitiator::new(ntlm);
    let tok = spnego.initial_token();
    let req = bad.request(
        Command::SessionSetup,
        &SessionSetupRequestRepr {
            security_buffer: &tok,
            ..Default::default()
        },
    );
    let r = bad.call(&mut s, &req);
    bad.session = Header::new_checked(&r[..]).unwrap().session_id();
    let chal = SessionSetupResponse::parse(&r)
        .unwrap()
        .security_buffer()
        .to_vec();
    let tok = spnego.respond(&chal, [5; 8], [6; 16]).unwrap();
    let req = bad.request(
        Command::SessionSetup,
        &SessionSetupRequestRepr {
            security_buffer: &tok,
            ..Default::default()
        },
    );
    let (outcome, now) = s.frame(bad.conn, &req);
    assert_eq!(outcome, FrameOutcome::Continue);
    assert!(now.is_empty(), "the failure is not answered at once");

    // Meanwhile another connection logs in without waiting.
    let mut good = Client::new(&mut s, 2000);
    good.login(&mut s, dialect::SMB311, Some(ADMIN));

    s.advance(delay - Duration::from_millis(2));
    assert!(released(&mut s, bad.conn).is_empty(), "never early");
    s.advance(Duration::from_millis(3));
    let msgs = released(&mut s, bad.conn);
    assert_eq!(msgs.len(), 1);
    assert_eq!(status(&msgs[0]), NtStatus::LOGON_FAILURE);
    let st = s.engine.stats();
    assert_eq!(
        (st.logons_failed, st.logons_delayed, st.logons_waiting),
        (1, 1, 0)
    );
}

#[test]
fn with_no_delay_a_failed_logon_is_answered_at_once() {
    let mut s = Server::new(delay_config(Duration::ZERO));
    let mut c = Client::new(&mut s, 1000);
    c.negotiate(&mut s, dialect::SMB210);
    c.session = 0;
    assert_eq!(
        c.reauth(&mut s, Some((USER.0, "wrong")), false),
        NtStatus::LOGON_FAILURE
    );
    let st = s.engine.stats();
    assert_eq!((st.logons_failed, st.logons_delayed), (1, 0));
}

#[test]
fn a_client_that_pipelines_failing_logons_is_disconnected_not_buffered() {
    let mut s = Server::new(delay_config(Duration::from_secs(2)));
    let mut a = bystander(&mut s);
    let mut c = Client::new(&mut s, 1000);
    c.negotiate(&mut s, dialect::SMB210);
    // A malformed NTLMSSP token fails at once: send many, never waiting.
    let mut closed = false;
    for _ in 0..(usize::from(super::throttle::MAX_HELD_PER_CONNECTION) + 1) {
        c.session = 0;
        let req = c.request(
            Command::SessionSetup,
            &SessionSetupRequestRepr {
                security_buffer: &[0x60, 0x03, 0x06, 0x01, 0x00],
                ..Default::default()
            },
        );
        let (outcome, msgs) = s.frame(c.conn, &req);
        assert!(msgs.is_empty(), "held, not answered");
        if outcome == FrameOutcome::Close {
            closed = true;
            break;
        }
    }
    assert!(closed, "the connection is dropped past the bound");
    s.engine.connection_closed(c.conn, s.now);
    assert!(s.engine.stats().logons_waiting <= u64::from(super::throttle::MAX_HELD_PER_CONNECTION));
    // The held answers of the dropped connection go nowhere when due.
    s.advance(Duration::from_secs(3));
    assert!(released(&mut s, a.conn).is_empty());
    assert_eq!(s.engine.stats().logons_waiting, 0);
    assert_unharmed(&mut s, &mut a);
}

// ----- bad input -----------------------------------------------------------

#[test]
fn truncated_frames_drop_the_connection_only() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    for junk in [
        &b""[..],
        &b"\xfeSMB"[..],
        &b"\xfeSMB\x40\x00\x00\x00"[..],
        &[0xfe, b'S', b'M', b'B', 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        &b"\xffSMB\x72"[..],
        &b"\xfdSMB"[..],
        &b"\x00\x01\x02"[..],
    ] {
        let mut b = Client::new(&mut s, 2000);
        let (outcome, resp) = s.frame(b.conn, junk);
        assert_eq!(outcome, FrameOutcome::Close, "{junk:02x?}");
        assert!(resp.is_empty());
        s.engine.connection_closed(b.conn, s.now);
        b.conn = ConnId::new(u32::MAX, 1);
    }
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn truncated_bodies_get_invalid_parameter() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    let mut b = Client::new(&mut s, 2000);
    // A NEGOTIATE header with a 3-byte body.
    let mut req = Vec::new();
    HeaderRepr::request(Command::Negotiate, 0, 0, 0).emit(&mut req);
    req.extend_from_slice(&[36, 0, 1]);
    let r = b.call(&mut s, &req);
    assert_eq!(status(&r), NtStatus::INVALID_PARAMETER);
    b.requests.set_next_message_id(1);
    b.negotiate(&mut s, dialect::SMB210);
    // SESSION_SETUP cut in the middle of its fixed part.
    let mut req = b.request(
        Command::SessionSetup,
        &SessionSetupRequestRepr {
            security_buffer: b"x",
            ..Default::default()
        },
    );
    req.truncate(HEADER_LEN + 10);
    let r = b.call(&mut s, &req);
    assert_eq!(status(&r), NtStatus::INVALID_PARAMETER);
    assert_eq!(s.sessions(), 1, "no session was created for it");
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn lying_lengths_and_wrong_offsets_are_refused() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    let mut b = Client::new(&mut s, 2000);
    b.negotiate(&mut s, dialect::SMB210);
    let tok = SpnegoInitiator::new(NtlmInitiator::anonymous()).initial_token();
    let setup = |b: &mut Client| {
        b.request(
            Command::SessionSetup,
            &SessionSetupRequestRepr {
                security_buffer: &tok,
                ..Default::default()
            },
        )
    };
    // SecurityBufferLength larger than the message.
    let mut req = setup(&mut b);
    req[HEADER_LEN + 14..HEADER_LEN + 16].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert_eq!(status(&b.call(&mut s, &req)), NtStatus::INVALID_PARAMETER);
    // SecurityBufferOffset pointing into the header.
    let mut req = setup(&mut b);
    req[HEADER_LEN + 12..HEADER_LEN + 14].copy_from_slice(&8u16.to_le_bytes());
    assert_eq!(status(&b.call(&mut s, &req)), NtStatus::INVALID_PARAMETER);
    // A wrong StructureSize.
    let mut req = setup(&mut b);
    req[HEADER_LEN] = 24;
    assert_eq!(status(&b.call(&mut s, &req)), NtStatus::INVALID_PARAMETER);
    assert_eq!(s.sessions(), 1);
    // A NextCommand that points past the frame: the chain cannot be cut,
    // the connection goes.
    let mut req = setup(&mut b);
    req[20..24].copy_from_slice(&4096u32.to_le_bytes());
    let (outcome, resp) = s.frame(b.conn, &req);
    assert_eq!(outcome, FrameOutcome::Close);
    assert!(resp.is_empty());
    s.engine.connection_closed(b.conn, s.now);
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn unknown_commands_get_invalid_parameter_and_unimplemented_ones_not_supported() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    let req = a.request(Command::Unknown(0x0042), &EchoRequestRepr::default());
    assert_eq!(status(&a.call(&mut s, &req)), NtStatus::INVALID_PARAMETER);
    let req = a.request(Command::Lock, &EchoRequestRepr::default());
    let req = a.signed(req);
    assert_eq!(status(&a.call(&mut s, &req)), NtStatus::NOT_SUPPORTED);
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn requests_before_negotiate_or_a_second_negotiate_drop_the_connection() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    let mut b = Client::new(&mut s, 2000);
    let req = b.request(Command::Echo, &EchoRequestRepr::default());
    assert_eq!(s.frame(b.conn, &req).0, FrameOutcome::Close);
    s.engine.connection_closed(b.conn, s.now);
    let mut c = Client::new(&mut s, 2001);
    c.negotiate(&mut s, dialect::SMB311);
    let dialects = [dialect::SMB210];
    let req = c.request(
        Command::Negotiate,
        &NegotiateRequestRepr {
            security_mode: 1,
            capabilities: 0,
            client_guid: [1; 16],
            client_start_time: 0,
            dialects: U16s::Native(&dialects),
            contexts: &[],
        },
    );
    assert_eq!(s.frame(c.conn, &req).0, FrameOutcome::Close);
    s.engine.connection_closed(c.conn, s.now);
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn message_ids_outside_the_window_or_over_the_credits_drop_the_connection() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    let abuses: [fn(&mut Client) -> Vec<u8>; 4] = [
        // Far beyond the granted window.
        |b: &mut Client| {
            b.requests.set_next_message_id(10_000);
            b.request(Command::Echo, &EchoRequestRepr::default())
        },
        // A replayed MessageId.
        |b: &mut Client| {
            b.requests.set_next_message_id(0);
            b.request(Command::Echo, &EchoRequestRepr::default())
        },
        // A CreditCharge larger than the credits held.
        |b: &mut Client| {
            let mut r = b.request(Command::Echo, &EchoRequestRepr::default());
            r[6..8].copy_from_slice(&500u16.to_le_bytes());
            r
        },
        // MessageId + CreditCharge overflowing u64.
        |b: &mut Client| {
            b.requests.set_next_message_id(u64::MAX);
            let mut r = b.request(Command::Echo, &EchoRequestRepr::default());
            r[6..8].copy_from_slice(&2u16.to_le_bytes());
            r
        },
    ];
    for (i, abuse) in abuses.iter().enumerate() {
        let mut b = Client::new(&mut s, 2000 + i as u16);
        b.negotiate(&mut s, dialect::SMB311);
        assert_eq!(b.echo(&mut s), NtStatus::SUCCESS);
        let req = abuse(&mut b);
        let (outcome, resp) = s.frame(b.conn, &req);
        assert_eq!(outcome, FrameOutcome::Close, "abuse {i}");
        assert!(resp.is_empty(), "abuse {i}: nothing answered");
        s.engine.connection_closed(b.conn, s.now);
    }
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn credits_granted_are_capped_per_connection() {
    let mut cfg = config();
    cfg.credit_cap = 16;
    let mut s = Server::new(cfg);
    let mut b = Client::new(&mut s, 2000);
    let (_, neg) = b.negotiate(&mut s, dialect::SMB210);
    // Id 0 came with the connection; NEGOTIATE used it and was granted more.
    let mut held = u64::from(Header::new_checked(&neg[..]).unwrap().credit());
    let mut granted_total: u64 = 1 + held;
    assert!(held <= 16);
    for _ in 0..10 {
        let mut req = b.request(Command::Echo, &EchoRequestRepr::default());
        req[12..14].copy_from_slice(&1000u16.to_le_bytes());
        let r = b.call(&mut s, &req);
        let g = u64::from(Header::new_checked(&r[..]).unwrap().credit());
        granted_total += g;
        held = held + g - 1;
        assert!(held <= 16, "client holds {held} credits, cap 16");
    }
    // Every id below the granted total is usable, the next one is not.
    b.requests.set_next_message_id(granted_total);
    let req = b.request(Command::Echo, &EchoRequestRepr::default());
    assert_eq!(s.frame(b.conn, &req).0, FrameOutcome::Close);
}

#[test]
fn a_bad_signature_is_access_denied_and_the_session_survives() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    let mut b = Client::new(&mut s, 2000);
    b.login(&mut s, dialect::SMB300, Some(ADMIN));
    let path = utf16("\\\\SMBCORE\\IPC$");
    let req = b.request(
        Command::TreeConnect,
        &TreeConnectRequestRepr {
            flags: 0,
            path: &path,
        },
    );
    let mut req = b.signed(req);
    req[48] ^= 0x55; // corrupt the signature
    let r = b.call(&mut s, &req);
    assert_eq!(status(&r), NtStatus::ACCESS_DENIED);
    // Signed with a different key: also refused.
    let good_key = b.key.clone();
    b.key = Some(derive_signing_key(
        dialect::SMB300,
        &[1; 16],
        None,
        SigningAlgorithm::AesCmac,
    ));
    let req = b.request(
        Command::TreeConnect,
        &TreeConnectRequestRepr {
            flags: 0,
            path: &path,
        },
    );
    let req = b.signed(req);
    assert_eq!(status(&b.call(&mut s, &req)), NtStatus::ACCESS_DENIED);
    b.key = good_key;
    let r = b.tree_connect(&mut s, "IPC$", true);
    assert_eq!(status(&r), NtStatus::SUCCESS);
    assert_unharmed(&mut s, &mut a);
}

#[test]
fn another_connections_session_id_is_user_session_deleted() {
    let mut s = Server::new(config());
    let mut a = bystander(&mut s);
    s.advance(Duration::from_secs(5));
    let mut b = Client::new(&mut s, 2000);
    b.negotiate(&mut s, dialect::SMB311);
    b.session = a.session;
    b.tree = a.tree;
    for command in [
        Command::TreeConnect,
        Command::Logoff,
        Command::TreeDisconnect,
        Command::Create,
    ] {
        let path = utf16("\\\\SMBCORE\\IPC$");
        let req = b.request(
            command,
            &TreeConnectRequestRepr {
                flags: 0,
                path: &path,
            },
        );
        let r = b.call(&mut s, &req);
        assert_eq!(status(&r), NtStatus::USER_SESSION_DELETED, "{command:?}");
    }
    // A SESSION_SETUP naming A's session from B is refused too (no binding).
    let tok = SpnegoInitiator::new(NtlmInitiator::anonymous()).initial_token();
    let req = b.request(
        Command::SessionSetup,
        &SessionSetupRequestRepr {
            security_buffer: &tok,
            ..Default::default()
        },
    );
    assert_eq!(
        status(&b.call(&mut s, &req)),
        NtStatus::USER_SESSION_DELETED
    );
    // A's session was not touched by B's requests: still idle since login.
    let rows = s.engine.admin_sessions(&Default::default(), s.now);
    let row = rows
        .iter()
        .find(|r| r.id.as_u64() == a.session)
        .expect("A's session is still there");
    assert!(row.idle >= Duration::from_secs(5), "idle {:?}", row.idle);
    assert_unharmed(&mut s, &mut a);
}

/// Link messages into one compound frame (8-byte aligned, NextCommand set);
/// `related[i]` sets SMB2_FLAGS_RELATED_OPERATIONS on message `i`.
fn chain(msgs: Vec<Vec<u8>>, related: &[bool]) -> Vec<u8> {
    let n = msgs.len();
    let mut frame = Vec::new();
    for (i, mut m) in msgs.into_iter().enumerate() {
        if related.get(i).copied().unwrap_or(false) {
            let mut h = Header::new_unchecked(&mut m[..HEADER_LEN]);
            let f = h.flags();
            h.set_flags(f | flags::RELATED_OPERATIONS);
        }
        if i + 1 < n {
            while m.len() % 8 != 0 {
                m.push(0);
            }
            let len = m.len() as u32;
            m[20..24].copy_from_slice(&len.to_le_bytes());
        }
        frame.extend_from_slice(&m);
    }
    frame
}

#[test]
fn compound_chains_are_answered_as_compounds() {
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB210, None);
    // ECHO + related TREE_CONNECT + unrelated ECHO in one frame.
    let path = utf16("\\\\SMBCORE\\IPC$");
    let frame = chain(
        vec![
            c.request(Command::Echo, &EchoRequestRepr::default()),
            c.request(
                Command::TreeConnect,
                &TreeConnectRequestRepr {
                    flags: 0,
                    path: &path,
                },
            ),
            c.request(Command::Echo, &EchoRequestRepr::default()),
        ],
        &[false, true, false],
    );
    let (outcome, resp) = s.frame(c.conn, &frame);
    assert_eq!(outcome, FrameOutcome::Continue);
    assert_eq!(resp.len(), 3);
    assert!(resp.iter().all(|m| status(m) == NtStatus::SUCCESS));
    let h = Header::new_checked(&resp[1][..]).unwrap();
    assert_eq!(h.command(), Command::TreeConnect);
    assert!(h.flags() & flags::RELATED_OPERATIONS != 0);
    assert_eq!(
        h.session_id(),
        c.session,
        "related request inherited the session"
    );
}

#[test]
fn a_chain_that_starts_related_is_invalid_parameter_throughout() {
    // smbtorture smb2.compound.invalid1.
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB210, None);
    c.tree_connect(&mut s, "IPC$", false);
    let frame = chain(
        vec![
            c.request(Command::Echo, &EchoRequestRepr::default()),
            c.request(
                Command::Close,
                &CloseRequestRepr {
                    flags: 0,
                    file_id: FileId::RELATED,
                },
            ),
        ],
        &[true, true],
    );
    let (outcome, resp) = s.frame(c.conn, &frame);
    assert_eq!(outcome, FrameOutcome::Continue);
    let st: Vec<NtStatus> = resp.iter().map(|m| status(m)).collect();
    assert_eq!(
        st,
        [NtStatus::INVALID_PARAMETER, NtStatus::INVALID_PARAMETER]
    );
}

#[test]
fn an_fsctl_on_an_unknown_handle_is_file_closed_and_so_is_its_related_close() {
    // smbtorture smb2.compound.related5.
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    c.login(&mut s, dialect::SMB300, None);
    c.tree_connect(&mut s, "IPC$", false);
    const FSCTL_CREATE_OR_GET_OBJECT_ID: u32 = 0x0009_00c0;
    let frame = chain(
        vec![
            c.request(
                Command::Ioctl,
                &IoctlRequestRepr {
                    ctl_code: FSCTL_CREATE_OR_GET_OBJECT_ID,
                    file_id: FileId::RELATED,
                    max_input_response: 0,
                    max_output_response: 64,
                    flags: 1,
                    input: &[],
                    output: &[],
                },
            ),
            c.request(
                Command::Close,
                &CloseRequestRepr {
                    flags: 0,
                    file_id: FileId::RELATED,
                },
            ),
        ],
        &[false, true],
    );
    let (_, resp) = s.frame(c.conn, &frame);
    let st: Vec<NtStatus> = resp.iter().map(|m| status(m)).collect();
    assert_eq!(st, [NtStatus::FILE_CLOSED, NtStatus::FILE_CLOSED]);
}

#[test]
fn the_smb1_upgrade_answers_wildcard_then_negotiates() {
    let mut s = Server::new(config());
    let mut c = Client::new(&mut s, 1000);
    // SMB_COM_NEGOTIATE offering NT LM 0.12, SMB 2.002 and SMB 2.???.
    let dialects: &[u8] = b"\x02NT LM 0.12\x00\x02SMB 2.002\x00\x02SMB 2.???\x00";
    let mut smb1 = vec![0xff, b'S', b'M', b'B', 0x72];
    smb1.extend_from_slice(&[0; 4]); // status
    smb1.push(0x18); // flags
    smb1.extend_from_slice(&0xc853u16.to_le_bytes()); // flags2
    smb1.extend_from_slice(&[0; 20]); // pid high .. mid
    smb1.push(0); // word count
    smb1.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
    smb1.extend_from_slice(dialects);
    let (outcome, resp) = s.frame(c.conn, &smb1);
    assert_eq!(outcome, FrameOutcome::Continue);
    let n = NegotiateResponse::parse(&resp[0]).unwrap();
    assert_eq!(n.dialect_revision(), 0x02ff);
    c.requests.set_next_message_id(1);
    c.negotiate(&mut s, dialect::SMB300);
}

#[test]
fn a_client_that_does_not_authenticate_in_time_is_closed() {
    let mut cfg = config();
    cfg.pre_auth_timeout = Duration::from_secs(2);
    let mut s = Server::new(cfg);
    let mut a = bystander(&mut s);
    let mut b = Client::new(&mut s, 2000);
    b.negotiate(&mut s, dialect::SMB311);
    s.advance(Duration::from_secs(3));
    let mut closed = Vec::new();
    while let Some(ev) = s.engine.poll_event() {
        if let super::EngineEvent::CloseConnection(c) = ev {
            closed.push(c);
        }
    }
    assert_eq!(closed, vec![b.conn]);
    s.engine.connection_closed(b.conn, s.now);
    assert_unharmed(&mut s, &mut a);
}

/// A valid request of some kind on the attacker's connection, for mutation.
fn sample_requests() -> Vec<Vec<u8>> {
    let mut requests = Requests::new(32);
    requests.set_next_message_id(1);
    let mut c = Client {
        conn: ConnId::new(0, 1),
        requests,
        session: 0x0100_0000,
        tree: 1,
        key: None,
        dialect: 0,
        negotiated: None,
    };
    let path = utf16("\\\\SMBCORE\\IPC$");
    let tok = SpnegoInitiator::new(NtlmInitiator::anonymous()).initial_token();
    vec![
        c.request(Command::Echo, &EchoRequestRepr::default()),
        c.request(
            Command::TreeConnect,
            &TreeConnectRequestRepr {
                flags: 0,
                path: &path,
            },
        ),
        c.request(
            Command::SessionSetup,
            &SessionSetupRequestRepr {
                security_buffer: &tok,
                ..Default::default()
            },
        ),
        c.request(Command::Logoff, &LogoffRequestRepr::default()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary frames (random bytes and mutated valid requests) on one
    /// connection: the engine never panics, answers or drops, and the
    /// bystander's session keeps working.
    #[test]
    fn arbitrary_frames_never_harm_another_connection(
        frames in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                (0usize..4, proptest::collection::vec((0usize..160, any::<u8>()), 1..6))
                    .prop_map(|(which, edits)| {
                        let mut m = sample_requests().swap_remove(which);
                        for (at, v) in edits {
                            if let Some(b) = m.get_mut(at) {
                                *b = v;
                            }
                        }
                        m
                    }),
            ],
            1..12,
        ),
        dialect_pick in 0usize..3,
    ) {
        let mut s = Server::new(config());
        let mut a = bystander(&mut s);
        let mut b = Client::new(&mut s, 3000);
        let d = [dialect::SMB210, dialect::SMB300, dialect::SMB311][dialect_pick];
        b.negotiate(&mut s, d);
        for f in frames {
            let (outcome, msgs) = s.frame(b.conn, &f);
            for m in &msgs {
                let h = Header::new_checked(&m[..]).expect("a response header");
                prop_assert!(h.is_response());
            }
            if outcome == FrameOutcome::Close {
                prop_assert!(msgs.is_empty());
                s.engine.connection_closed(b.conn, s.now);
                break;
            }
        }
        while s.engine.poll_event().is_some() {}
        assert_unharmed(&mut s, &mut a);
        let rows = s.engine.admin_sessions(&Default::default(), s.now);
        prop_assert!(rows.iter().any(|r| r.id.as_u64() == a.session));
    }
}
