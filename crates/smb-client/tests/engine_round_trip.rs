//! The client core against smb-session's engine, in memory: no sockets, a fake clock, every
//! byte the client builds handed to the engine and every byte the engine answers handed back
//! (the quinn-proto `Pair` idea). This checks the client against a real acceptor: NEGOTIATE
//! on every dialect (3.1.1 with its preauth context), anonymous and NTLMv2 SESSION_SETUP,
//! signed TREE_CONNECT, the srvsvc pipe, pipelined ECHOs under the credit window, LOGOFF.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use smb_auth::ntlm::StaticCredentials;
use smb_client::{Auth, ClientConfig, ClientConn, ClientError, Event, ALL_DIALECTS};
use smb_session::engine::{Cipher, EncryptionPolicy, Engine, EngineConfig, FrameOutcome};
use smb_session::ids::ConnId;
use smb_wire::frame::split_frame;
use smb_wire::msg::negotiate::dialect;
use smb_wire::NtStatus;

const USER: (&str, &str) = ("alice", "Al1cePass!");

/// One engine and one of its connections, with a fake clock.
struct Pair {
    engine: Engine,
    conn: ConnId,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        Pair::with(|_| {})
    }

    /// A pair whose engine configuration `f` adjusts.
    fn with(f: impl FnOnce(&mut EngineConfig)) -> Pair {
        let mut users = StaticCredentials::new();
        users.add_password(USER.0, USER.1, false);
        let mut cfg = EngineConfig::new([7; 16]);
        cfg.users = Arc::new(users);
        cfg.auth_failure_delay = Duration::ZERO;
        f(&mut cfg);
        let now = Instant::now();
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut engine = Engine::new(
            0,
            Arc::new(cfg),
            now,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            Box::new(move |buf: &mut [u8]| {
                for b in buf.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *b = seed as u8;
                }
            }),
        );
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let conn = engine.accept(peer, now);
        Pair { engine, conn, now }
    }

    /// Hands every frame in `out` to the engine and every response to the client, until the
    /// client has nothing more to send; returns the client's events in order.
    fn pump(
        &mut self,
        client: &mut ClientConn,
        cfg: &ClientConfig,
        out: &mut Vec<u8>,
    ) -> Vec<Result<Event, ClientError>> {
        let mut events = Vec::new();
        while !out.is_empty() {
            let sent = std::mem::take(out);
            let mut rest = &sent[..];
            let mut answers = Vec::new();
            while let Some((payload, used)) = split_frame(rest, 1 << 20).unwrap() {
                let outcome = self
                    .engine
                    .handle_frame(self.conn, &rest[payload], self.now);
                assert_eq!(outcome, FrameOutcome::Continue, "the engine dropped us");
                self.engine.drain_transmit(self.conn, &mut answers);
                rest = &rest[used..];
            }
            assert!(rest.is_empty(), "whole frames only");
            let mut rest = &answers[..];
            while let Some((payload, used)) = split_frame(rest, 1 << 20).unwrap() {
                events.push(client.handle(&rest[payload], cfg, out));
                rest = &rest[used..];
            }
        }
        events
    }

    /// NEGOTIATE and one session up to IPC$; returns (SessionId, TreeId).
    fn open(&mut self, client: &mut ClientConn, cfg: &ClientConfig) -> (u64, u32) {
        let mut out = Vec::new();
        client.negotiate(cfg, [1; 16], &mut out);
        let ev = self.pump(client, cfg, &mut out);
        assert!(matches!(ev[..], [Ok(Event::Negotiated { .. })]), "{ev:?}");
        client.begin_session(cfg, &mut out);
        let ev = self.pump(client, cfg, &mut out);
        match ev.last() {
            Some(Ok(Event::SessionReady {
                session_id,
                tree_id,
            })) => (*session_id, *tree_id),
            other => panic!("no session: {other:?} in {ev:?}"),
        }
    }
}

fn config(dialects: &[u16], auth: Auth) -> ClientConfig {
    ClientConfig::new("127.0.0.1", dialects.to_vec(), auth)
}

#[test]
fn anonymous_ipc_pipe_echo_and_logoff_on_every_dialect() {
    for &d in ALL_DIALECTS {
        let cfg = config(&[d], Auth::Anonymous);
        let mut p = Pair::new();
        let mut c = ClientConn::new();
        let (sid, tid) = p.open(&mut c, &cfg);
        assert_eq!(c.dialect(), d);
        assert_eq!(c.session(), Some((sid, tid)));
        assert_ne!(sid, 0);
        assert_eq!(p.engine.table().stats().sessions, 1);

        let mut out = Vec::new();
        c.open_pipe(&mut out);
        assert_eq!(p.pump(&mut c, &cfg, &mut out), [Ok(Event::PipeOpen)]);
        c.echo(&mut out);
        assert_eq!(p.pump(&mut c, &cfg, &mut out), [Ok(Event::EchoDone)]);
        c.close_pipe(&mut out);
        assert_eq!(p.pump(&mut c, &cfg, &mut out), [Ok(Event::PipeClosed)]);
        c.logoff(&mut out);
        assert_eq!(p.pump(&mut c, &cfg, &mut out), [Ok(Event::LoggedOff)]);
        assert_eq!(c.session(), None);
        assert_eq!(p.engine.table().stats().sessions, 0, "dialect 0x{d:04X}");
    }
}

#[test]
fn a_user_session_signs_its_tree_connect_on_every_dialect() {
    // The engine refuses a TREE_CONNECT signed with the wrong key (ACCESS_DENIED), so
    // reaching IPC$ proves the key derivation (3.1.1: over the preauth hash) matches.
    for &d in ALL_DIALECTS {
        let cfg = config(&[d], Auth::user(USER.0, USER.1));
        let mut p = Pair::new();
        let mut c = ClientConn::new();
        p.open(&mut c, &cfg);
        // A second session on the same connection.
        let mut out = Vec::new();
        c.begin_session(&cfg, &mut out);
        let ev = p.pump(&mut c, &cfg, &mut out);
        assert!(
            matches!(ev.last(), Some(Ok(Event::SessionReady { .. }))),
            "{ev:?}"
        );
        assert_eq!(p.engine.table().stats().sessions, 2);
    }
}

#[test]
fn a_wrong_password_is_an_authentication_failure() {
    let cfg = config(&[0x0311], Auth::user(USER.0, "wrong"));
    let mut p = Pair::new();
    let mut c = ClientConn::new();
    let mut out = Vec::new();
    c.negotiate(&cfg, [1; 16], &mut out);
    p.pump(&mut c, &cfg, &mut out);
    c.begin_session(&cfg, &mut out);
    let ev = p.pump(&mut c, &cfg, &mut out);
    let Some(Err(e)) = ev.last() else {
        panic!("not refused: {ev:?}")
    };
    assert!(e.is_auth_failure(), "{e}");
    assert!(matches!(
        e,
        ClientError::Status {
            status: NtStatus::LOGON_FAILURE,
            ..
        }
    ));
}

#[test]
fn pipelined_echoes_stay_inside_the_granted_credits() {
    let cfg = config(ALL_DIALECTS, Auth::Anonymous);
    let mut p = Pair::new();
    let mut c = ClientConn::new();
    c.set_credit_request(8);
    p.open(&mut c, &cfg);
    let mut answered = 0;
    for _ in 0..20 {
        let mut out = Vec::new();
        let mut sent = 0;
        while c.echo_pipelined(&mut out).is_some() {
            sent += 1;
        }
        assert!(sent > 0, "the server granted credits");
        assert_eq!(c.credits().available(), 0);
        for ev in p.pump(&mut c, &cfg, &mut out) {
            match ev {
                Ok(Event::EchoAnswered { status, .. }) => {
                    assert_eq!(status, NtStatus::SUCCESS);
                    answered += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(c.echoes_in_flight(), 0);
    }
    assert!(answered >= 20);
}

/// Whether every frame in `answers` is a TRANSFORM message (MS-SMB2 2.2.41).
fn all_encrypted(answers: &[u8]) -> bool {
    let mut rest = answers;
    let mut n = 0;
    while let Some((payload, used)) = split_frame(rest, 1 << 20).unwrap() {
        if !rest[payload].starts_with(&[0xFD, b'S', b'M', b'B']) {
            return false;
        }
        n += 1;
        rest = &rest[used..];
    }
    n > 0
}

#[test]
fn encrypted_sessions_on_3x_with_every_cipher_under_required() {
    // Under `required` the engine answers an unencrypted request after SESSION_SETUP with
    // ACCESS_DENIED, so reaching IPC$, the pipe, ECHO and LOGOFF proves the client seals
    // (MS-SMB2 3.1.4.3) with keys the engine derived independently, and opens the engine's
    // sealed answers (3.2.5.1.1.1).
    let cases = [
        (dialect::SMB300, Cipher::Aes128Ccm),
        (dialect::SMB302, Cipher::Aes128Ccm),
        (dialect::SMB311, Cipher::Aes128Ccm),
        (dialect::SMB311, Cipher::Aes128Gcm),
        (dialect::SMB311, Cipher::Aes256Ccm),
        (dialect::SMB311, Cipher::Aes256Gcm),
    ];
    for (d, cipher) in cases {
        let cfg = config(&[d], Auth::user(USER.0, USER.1)).with_encryption(&[cipher], true);
        let mut p = Pair::with(|c| {
            c.encryption = EncryptionPolicy::Required;
            c.ciphers = Cipher::DEFAULT_ORDER.to_vec();
        });
        let mut c = ClientConn::new();
        p.open(&mut c, &cfg);
        assert_eq!(c.encryption(), Some(cipher), "0x{d:04X} {cipher:?}");

        let mut out = Vec::new();
        c.open_pipe(&mut out);
        assert!(all_encrypted(&out[..]), "the CREATE went out sealed");
        assert_eq!(p.pump(&mut c, &cfg, &mut out), [Ok(Event::PipeOpen)]);
        c.echo(&mut out);
        // The engine's answer is a TRANSFORM too.
        let mut answers = Vec::new();
        let (payload, _) = split_frame(&out, 1 << 20).unwrap().unwrap();
        let outcome = p.engine.handle_frame(p.conn, &out[payload], p.now);
        assert_eq!(outcome, FrameOutcome::Continue);
        p.engine.drain_transmit(p.conn, &mut answers);
        assert!(all_encrypted(&answers), "the ECHO answer came sealed");
        let (payload, _) = split_frame(&answers, 1 << 20).unwrap().unwrap();
        out.clear();
        assert_eq!(
            c.handle(&answers[payload], &cfg, &mut out),
            Ok(Event::EchoDone)
        );
        for _ in 0..3 {
            assert!(c.echo_pipelined(&mut out).is_some());
        }
        let ev = p.pump(&mut c, &cfg, &mut out);
        assert_eq!(ev.len(), 3);
        assert!(ev.iter().all(|e| matches!(e, Ok(Event::EchoAnswered { status, .. }) if *status == NtStatus::SUCCESS)), "{ev:?}");
        c.close_pipe(&mut out);
        assert_eq!(p.pump(&mut c, &cfg, &mut out), [Ok(Event::PipeClosed)]);
        c.logoff(&mut out);
        assert_eq!(p.pump(&mut c, &cfg, &mut out), [Ok(Event::LoggedOff)]);
        assert_eq!(c.encryption(), None);
        assert_eq!(p.engine.table().stats().sessions, 0);
    }
}

#[test]
fn the_client_follows_the_server_asking_for_encryption() {
    // `desired`: the server sets SMB2_SESSION_FLAG_ENCRYPT_DATA; a client offering ciphers
    // encrypts though it was not told to (MS-SMB2 3.2.5.3.1).
    let cfg = config(&[dialect::SMB311], Auth::user(USER.0, USER.1))
        .with_encryption(&Cipher::DEFAULT_ORDER, false);
    let mut p = Pair::with(|c| {
        c.encryption = EncryptionPolicy::Desired;
        c.ciphers = Cipher::DEFAULT_ORDER.to_vec();
    });
    let mut c = ClientConn::new();
    p.open(&mut c, &cfg);
    assert!(c.encryption().is_some());
    let mut out = Vec::new();
    c.echo(&mut out);
    assert!(all_encrypted(&out));
    assert_eq!(p.pump(&mut c, &cfg, &mut out), [Ok(Event::EchoDone)]);
}

#[test]
fn encryption_without_a_cipher_or_for_anonymous_is_a_typed_error() {
    // The server offers no cipher: a client that requires encryption stops after setup.
    let cfg = config(&[dialect::SMB311], Auth::user(USER.0, USER.1))
        .with_encryption(&Cipher::DEFAULT_ORDER, true);
    let mut p = Pair::with(|c| c.ciphers.clear());
    let mut c = ClientConn::new();
    let mut out = Vec::new();
    c.negotiate(&cfg, [1; 16], &mut out);
    p.pump(&mut c, &cfg, &mut out);
    c.begin_session(&cfg, &mut out);
    let ev = p.pump(&mut c, &cfg, &mut out);
    assert_eq!(ev.last(), Some(&Err(ClientError::NoEncryption)), "{ev:?}");

    // An anonymous session has no keys.
    let cfg =
        config(&[dialect::SMB311], Auth::Anonymous).with_encryption(&Cipher::DEFAULT_ORDER, true);
    let mut p = Pair::with(|c| c.ciphers = Cipher::DEFAULT_ORDER.to_vec());
    let mut c = ClientConn::new();
    c.negotiate(&cfg, [1; 16], &mut out);
    p.pump(&mut c, &cfg, &mut out);
    c.begin_session(&cfg, &mut out);
    let ev = p.pump(&mut c, &cfg, &mut out);
    assert_eq!(ev.last(), Some(&Err(ClientError::NoEncryption)), "{ev:?}");
}
