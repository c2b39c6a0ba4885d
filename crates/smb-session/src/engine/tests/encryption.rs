//! SMB3 encryption through the engine: keys derived on the client side
//! (smb-client, and independently from the KDF for 3.0.2), every cipher and
//! dialect, the policy settings, and each bad TRANSFORM getting its defined
//! answer (the connection dropped) while other sessions go on; and the
//! messages the server sends unasked (an oplock break, SmbNotifySessionClosed)
//! sealed for a session that encrypts, opened here with the client's keys.

use smb_auth::encryption::{self, Cipher, NonceCounter, SessionCipher, TRANSFORM_HEADER_LEN};
use smb_auth::kdf::smb3_kdf_into;
use smb_wire::msg::notification::ServerToClientNotification;
use smb_wire::msg::session_setup::SessionSetupResponse;

use super::super::EncryptionPolicy;
use super::*;

/// An encrypting client: the test's [`Client`] plus its keys and nonces.
struct Enc {
    c: Client,
    keys: SessionCipher,
    nonces: NonceCounter,
    session_flags: u16,
}

/// NEGOTIATE offering `d` and `ciphers`, then a user login; the client's
/// keys come from smb-client's derivation.
fn login(s: &mut Server, port: u16, d: u16, ciphers: &[Cipher]) -> Enc {
    let mut c = Client::new(s, port);
    let mut offer = Offer::new(&[d], [9; 16], [3; 32]);
    offer.signing_algorithms = vec![algorithm::AES_GMAC, algorithm::AES_CMAC];
    offer.ciphers = ciphers.iter().map(|c| c.id()).collect();
    let neg_req = c.request(Command::Negotiate, &offer);
    let neg_resp = c.call(s, &neg_req);
    let n = offer.accept(&neg_resp).expect("negotiate");
    assert_eq!(n.cipher, ciphers.first().copied(), "server's first choice");
    c.dialect = d;
    c.negotiated = Some(n);
    let mut preauth = PreauthHash::new();
    preauth.update(&neg_req);
    preauth.update(&neg_resp);
    let (resp, mut setup) = c.setup_legs(s, Some(USER), preauth, false);
    assert_eq!(status(&resp), NtStatus::SUCCESS, "login");
    let flags = SessionSetupResponse::parse(&resp).unwrap().session_flags();
    c.key = setup.finish(&resp, &n).expect("finish");
    let keys = setup.encryption(&n).expect("encryption keys");
    Enc {
        c,
        keys,
        nonces: NonceCounter::default(),
        session_flags: flags,
    }
}

impl Enc {
    fn seal(&mut self, msg: &[u8]) -> Vec<u8> {
        self.seal_as(self.c.session, msg)
    }

    fn seal_as(&mut self, sid: u64, msg: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; TRANSFORM_HEADER_LEN];
        buf.extend_from_slice(msg);
        let n = self.nonces.next_nonce().unwrap();
        encryption::seal(&self.keys.encrypt, &n, sid, &mut buf);
        buf
    }

    /// Send one encrypted message; the answer must be one TRANSFORM for
    /// this session that opens with the client's key.
    fn call(&mut self, s: &mut Server, msg: &[u8]) -> Vec<u8> {
        let t = self.seal(msg);
        let (outcome, frames) = raw(s, self.c.conn, &t);
        assert_eq!(outcome, FrameOutcome::Continue);
        assert_eq!(frames.len(), 1);
        self.open(&frames[0])
    }

    fn open(&self, frame: &[u8]) -> Vec<u8> {
        let th = smb_wire::transform::TransformHeader::parse(frame).expect("a TRANSFORM");
        assert_eq!(th.session_id(), self.c.session);
        let mut f = frame.to_vec();
        let plain = encryption::open(&self.keys.decrypt, &mut f).expect("decrypts");
        let h = Header::new_checked(&plain[..]).unwrap();
        assert!(!h.is_signed(), "an encrypted message is not signed");
        plain.to_vec()
    }
}

/// One payload in, the NBSS payloads out (no SMB2 parsing: they may be
/// TRANSFORMs). Checks that no other connection got output.
fn raw(s: &mut Server, conn: ConnId, payload: &[u8]) -> (FrameOutcome, Vec<Vec<u8>>) {
    let outcome = s.engine.handle_frame(conn, payload, s.now);
    let mut out = Vec::new();
    s.engine.drain_transmit(conn, &mut out);
    for &other in &s.conns {
        if other != conn {
            assert!(s.engine.poll_transmit(other).is_empty());
        }
    }
    let mut frames = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let len = usize::from(rest[1]) << 16 | usize::from(rest[2]) << 8 | usize::from(rest[3]);
        frames.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    if outcome == FrameOutcome::Close {
        assert!(frames.is_empty(), "a dropped frame queued output");
    }
    (outcome, frames)
}

fn tree_connect_req(c: &mut Client, share: &str) -> Vec<u8> {
    let path = share_path("SMBCORE", share);
    c.request(
        Command::TreeConnect,
        &TreeConnectRequestRepr {
            flags: 0,
            path: &path,
        },
    )
}

#[test]
fn every_dialect_and_cipher_encrypts_both_ways() {
    let cases = [
        (dialect::SMB300, Cipher::Aes128Ccm),
        (dialect::SMB302, Cipher::Aes128Ccm),
        (dialect::SMB311, Cipher::Aes128Ccm),
        (dialect::SMB311, Cipher::Aes128Gcm),
        (dialect::SMB311, Cipher::Aes256Ccm),
        (dialect::SMB311, Cipher::Aes256Gcm),
    ];
    for (d, cipher) in cases {
        let mut s = Server::new(config());
        let mut e = login(&mut s, 1000, d, &[cipher]);
        assert_eq!(e.session_flags & 0x0004, 0, "encryption off: not asked for");
        let req = tree_connect_req(&mut e.c, "IPC$");
        let resp = e.call(&mut s, &req);
        assert_eq!(status(&resp), NtStatus::SUCCESS, "{d:#x} {cipher}");
        e.c.tree = ResponseInfo::parse(&resp).unwrap().tree_id;
        // Two answers, two nonces.
        let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
        let t = e.seal(&req);
        let (_, f1) = raw(&mut s, e.c.conn, &t);
        let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
        let t = e.seal(&req);
        let (_, f2) = raw(&mut s, e.c.conn, &t);
        assert_ne!(f1[0][20..36], f2[0][20..36], "nonce reused");
        assert_eq!(status(&e.open(&f2[0])), NtStatus::SUCCESS);
        let row = s
            .engine
            .table
            .session(SessionIdExt::id(e.c.session))
            .unwrap();
        assert_eq!(row.ext.cipher(), Some(cipher));
        assert!(row.ext.is_encrypted());
        // What `ctl sessions` shows.
        let rows = s
            .engine
            .admin_sessions(&crate::engine::AdminFilter::default(), s.now);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].cipher, Some(cipher.name()));
    }
}

/// SessionId from its wire value.
struct SessionIdExt;
impl SessionIdExt {
    fn id(raw: u64) -> crate::ids::SessionId {
        crate::ids::SessionId::from_raw(raw).unwrap()
    }
}

#[test]
fn keys_derived_independently_from_the_kdf_work_for_302() {
    let mut s = Server::new(config());
    let mut e = login(&mut s, 1000, dialect::SMB302, &[Cipher::Aes128Ccm]);
    // The test client's NTLM exported session key is [6; 16] (setup_legs);
    // MS-SMB2 3.2.5.3.1: the client encrypts with "ServerIn ".
    let mut enc = [0u8; 16];
    let mut dec = [0u8; 16];
    smb3_kdf_into(&[6; 16], b"SMB2AESCCM\0", b"ServerIn \0", &mut enc);
    smb3_kdf_into(&[6; 16], b"SMB2AESCCM\0", b"ServerOut\0", &mut dec);
    e.keys = SessionCipher {
        encrypt: encryption::CipherKey::new(Cipher::Aes128Ccm, &enc).unwrap(),
        decrypt: encryption::CipherKey::new(Cipher::Aes128Ccm, &dec).unwrap(),
    };
    let req = tree_connect_req(&mut e.c, "IPC$");
    assert_eq!(status(&e.call(&mut s, &req)), NtStatus::SUCCESS);
}

#[test]
fn a_compound_inside_one_transform_is_answered_in_one_transform() {
    let mut s = Server::new(config());
    let mut e = login(&mut s, 1000, dialect::SMB311, &[Cipher::Aes128Gcm]);
    let mut chain = e.c.request(Command::Echo, &EchoRequestRepr::default());
    while chain.len() % 8 != 0 {
        chain.push(0);
    }
    let len = chain.len() as u32;
    Header::new_unchecked(&mut chain[..HEADER_LEN]).set_next_command(len);
    let second = e.c.request(Command::Echo, &EchoRequestRepr::default());
    chain.extend_from_slice(&second);
    let plain = e.call(&mut s, &chain);
    let msgs: Vec<_> = Compound::new(&plain).map(|m| m.unwrap().to_vec()).collect();
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| status(m) == NtStatus::SUCCESS));
}

#[test]
fn bad_transforms_drop_their_connection_and_nothing_else() {
    type Mangle = fn(&mut Enc, &mut Server) -> Vec<u8>;
    let cases: [(&str, Mangle); 8] = [
        ("wrong tag", |e, _| {
            let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
            let mut t = e.seal(&req);
            t[4] ^= 1;
            t
        }),
        ("altered body", |e, _| {
            let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
            let mut t = e.seal(&req);
            let n = t.len() - 1;
            t[n] ^= 0x80;
            t
        }),
        ("truncated header", |e, _| {
            let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
            e.seal(&req)[..40].to_vec()
        }),
        ("OriginalMessageSize lying", |e, _| {
            let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
            let mut t = e.seal(&req);
            t[36] = t[36].wrapping_add(1);
            t
        }),
        ("unknown session", |e, _| {
            let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
            let sid = e.c.session ^ 0x0100_0000_0000;
            e.seal_as(sid, &req)
        }),
        ("TRANSFORM inside a TRANSFORM", |e, _| {
            let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
            let inner = e.seal(&req);
            e.seal(&inner)
        }),
        ("SessionId differs from the TRANSFORM's", |e, _| {
            let mut req = e.c.request(Command::Echo, &EchoRequestRepr::default());
            Header::new_unchecked(&mut req[..HEADER_LEN]).set_session_id(e.c.session + 1);
            e.seal(&req)
        }),
        ("replayed", |e, s| {
            let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
            let t = e.seal(&req);
            let (o, _) = raw(s, e.c.conn, &t);
            assert_eq!(o, FrameOutcome::Continue);
            t
        }),
    ];
    for (what, mangle) in cases {
        let mut s = Server::new(config());
        let mut other = login(&mut s, 1001, dialect::SMB311, &[Cipher::Aes256Gcm]);
        let mut e = login(&mut s, 1000, dialect::SMB311, &[Cipher::Aes128Gcm]);
        let bad = mangle(&mut e, &mut s);
        let (outcome, frames) = raw(&mut s, e.c.conn, &bad);
        assert_eq!(outcome, FrameOutcome::Close, "{what}");
        assert!(frames.is_empty(), "{what}");
        // The other client's session goes on.
        let req = tree_connect_req(&mut other.c, "IPC$");
        assert_eq!(
            status(&other.call(&mut s, &req)),
            NtStatus::SUCCESS,
            "{what}"
        );
    }
}

#[test]
fn a_transform_before_any_session_drops_the_connection() {
    let mut s = Server::new(config());
    let mut e = login(&mut s, 1000, dialect::SMB311, &[Cipher::Aes128Gcm]);
    let fresh = s.accept(1001);
    let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
    let t = e.seal(&req);
    assert_eq!(raw(&mut s, fresh, &t).0, FrameOutcome::Close);
    // Negotiated, no session: also dropped.
    let mut c = Client::new(&mut s, 1002);
    c.negotiate(&mut s, dialect::SMB311);
    assert_eq!(raw(&mut s, c.conn, &t).0, FrameOutcome::Close);
    let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
    assert_eq!(status(&e.call(&mut s, &req)), NtStatus::SUCCESS);
}

#[test]
fn required_encryption_refuses_what_cannot_encrypt_and_unencrypted_requests() {
    let mut cfg = config();
    cfg.encryption = EncryptionPolicy::Required;
    let mut s = Server::new(cfg);
    let mut e = login(&mut s, 1000, dialect::SMB311, &[Cipher::Aes128Gcm]);
    assert_ne!(e.session_flags & 0x0004, 0, "SESSION_FLAG_ENCRYPT_DATA");
    // Unencrypted (signed) request: ACCESS_DENIED.
    let req = tree_connect_req(&mut e.c, "IPC$");
    let req = e.c.signed(req);
    let (_, frames) = raw(&mut s, e.c.conn, &req);
    let resp = e.open(&frames[0]);
    assert_eq!(status(&resp), NtStatus::ACCESS_DENIED);
    let req = tree_connect_req(&mut e.c, "IPC$");
    assert_eq!(status(&e.call(&mut s, &req)), NtStatus::SUCCESS);
    // Anonymous and a client without a cipher cannot encrypt: refused.
    let mut a = Client::new(&mut s, 1001);
    a.negotiate(&mut s, dialect::SMB311);
    let (resp, _) = a.setup_legs(&mut s, None, PreauthHash::new(), false);
    assert_eq!(status(&resp), NtStatus::ACCESS_DENIED);
    let mut n = Client::new(&mut s, 1002);
    n.negotiate(&mut s, dialect::SMB311);
    let (resp, _) = n.setup_legs(&mut s, Some(USER), PreauthHash::new(), false);
    assert_eq!(status(&resp), NtStatus::ACCESS_DENIED);
    assert_eq!(s.sessions(), 1);
}

#[test]
fn an_encrypted_ipc_share_flags_its_trees_and_refuses_clear_requests() {
    let mut cfg = config();
    cfg.ipc_encryption = EncryptionPolicy::Required;
    let mut s = Server::new(cfg);
    let mut e = login(&mut s, 1000, dialect::SMB302, &[Cipher::Aes128Ccm]);
    // TREE_CONNECT itself may come in clear; the answer says ENCRYPT_DATA.
    let req = tree_connect_req(&mut e.c, "IPC$");
    let resp = e.c.call(&mut s, &req);
    assert_eq!(status(&resp), NtStatus::SUCCESS);
    let t = TreeConnectResponse::parse(&resp).unwrap();
    assert_ne!(t.share_flags() & 0x8000, 0, "SHAREFLAG_ENCRYPT_DATA");
    e.c.tree = ResponseInfo::parse(&resp).unwrap().tree_id;
    let close = CloseRequestRepr {
        flags: 0,
        file_id: FileId {
            persistent: 1,
            volatile: 2,
        },
    };
    let req = e.c.request(Command::Close, &close);
    assert_eq!(status(&e.c.call(&mut s, &req)), NtStatus::ACCESS_DENIED);
    let req = e.c.request(Command::Close, &close);
    assert_eq!(status(&e.call(&mut s, &req)), NtStatus::FILE_CLOSED);
    // A session without a cipher cannot connect at all.
    let mut p = Client::new(&mut s, 1001);
    p.login(&mut s, dialect::SMB311, Some(USER));
    let r = p.tree_connect(&mut s, "IPC$", false);
    assert_eq!(status(&r), NtStatus::ACCESS_DENIED);
}

#[test]
fn a_spent_nonce_counter_ends_the_session() {
    let mut s = Server::new(config());
    let mut e = login(&mut s, 1000, dialect::SMB311, &[Cipher::Aes128Gcm]);
    let sid = SessionIdExt::id(e.c.session);
    s.engine
        .table
        .session_mut(sid)
        .unwrap()
        .ext
        .crypt
        .as_mut()
        .unwrap()
        .nonces = NonceCounter::starting_at(u64::MAX - 1);
    let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
    assert_eq!(status(&e.call(&mut s, &req)), NtStatus::SUCCESS);
    let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
    let t = e.seal(&req);
    assert_eq!(raw(&mut s, e.c.conn, &t).0, FrameOutcome::Close);
    assert_eq!(s.sessions(), 0);
}

#[test]
fn the_server_prefers_its_own_cipher_order() {
    let mut cfg = config();
    cfg.ciphers = vec![Cipher::Aes256Gcm, Cipher::Aes128Ccm];
    let mut s = Server::new(cfg);
    let mut c = Client::new(&mut s, 1000);
    let mut offer = Offer::new(&[dialect::SMB311], [9; 16], [3; 32]);
    offer.ciphers = vec![1, 2, 4];
    let req = c.request(Command::Negotiate, &offer);
    let resp = c.call(&mut s, &req);
    assert_eq!(offer.accept(&resp).unwrap().cipher, Some(Cipher::Aes256Gcm));
    // No common cipher: no ENCRYPTION_CAPABILITIES, no encryption.
    let mut c = Client::new(&mut s, 1001);
    let mut offer = Offer::new(&[dialect::SMB311], [9; 16], [3; 32]);
    offer.ciphers = vec![2];
    let req = c.request(Command::Negotiate, &offer);
    let resp = c.call(&mut s, &req);
    assert_eq!(offer.accept(&resp).unwrap().cipher, None);
}

/// The NBSS payloads queued for `conn` outside any frame (a timer, a backend).
fn queued(s: &mut Server, conn: ConnId) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    s.engine.drain_transmit(conn, &mut out);
    let mut frames = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let len = usize::from(rest[1]) << 16 | usize::from(rest[2]) << 8 | usize::from(rest[3]);
        frames.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    frames
}

fn is_transform(frame: &[u8]) -> bool {
    frame.starts_with(b"\xfdSMB")
}

/// MS-SMB2 3.3.4.1.4: SmbNotifySessionClosed for a reaped session that
/// encrypts (EncryptData, or its client encrypts on its own) goes out in a
/// TRANSFORM under the reaped session's keys; one that does not encrypt is
/// told in the clear. The connection stays up for a second session.
#[test]
fn session_closed_notification_is_sealed_for_a_session_that_encrypts() {
    use crate::autodisconnect::AutoDisconnect;
    // (policy, the client sends an encrypted request, sealed expected)
    for (policy, encrypted_request, sealed) in [
        (EncryptionPolicy::Desired, false, true),
        (EncryptionPolicy::Off, true, true),
        (EncryptionPolicy::Off, false, false),
    ] {
        let what = format!("{policy} encrypted_request={encrypted_request}");
        let mut cfg = config();
        cfg.encryption = policy;
        cfg.autodisconnect = AutoDisconnect::after(Duration::from_secs(10)).unwrap();
        let mut s = Server::new(cfg);
        let mut e = login(&mut s, 1000, dialect::SMB311, &[Cipher::Aes128Gcm]);
        let a = e.c.session;
        let req = tree_connect_req(&mut e.c, "IPC$");
        let resp = if encrypted_request {
            e.call(&mut s, &req)
        } else if policy == EncryptionPolicy::Desired {
            // EncryptData: the answer to a request in the clear is sealed too.
            let (_, f) = raw(&mut s, e.c.conn, &req);
            e.open(&f[0])
        } else {
            e.c.call(&mut s, &req)
        };
        assert_eq!(status(&resp), NtStatus::SUCCESS, "{what}");
        // A second, anonymous session keeps the connection up.
        e.c.session = 0;
        e.c.tree = 0;
        let (resp, _) = e.c.setup_legs(&mut s, None, PreauthHash::new(), false);
        assert_eq!(status(&resp), NtStatus::SUCCESS, "{what}");
        let b = e.c.session;
        s.advance(Duration::from_secs(6));
        let r = e.c.tree_connect(&mut s, "IPC$", false);
        assert_eq!(status(&r), NtStatus::SUCCESS, "{what}");
        // A is idle for 11 s, B for 5 s: A alone is reaped.
        s.advance(Duration::from_secs(5));
        assert!(
            s.engine.table.session(SessionIdExt::id(a)).is_none(),
            "{what}"
        );
        assert!(
            s.engine.table.session(SessionIdExt::id(b)).is_some(),
            "{what}"
        );
        let frames = queued(&mut s, e.c.conn);
        assert_eq!(frames.len(), 1, "{what}: one notification");
        assert_eq!(is_transform(&frames[0]), sealed, "{what}");
        e.c.session = a;
        let msg = if sealed {
            e.open(&frames[0])
        } else {
            frames[0].clone()
        };
        let h = Header::new_checked(&msg[..]).unwrap();
        assert_eq!(h.command(), Command::ServerToClientNotification, "{what}");
        assert_eq!((h.message_id(), h.session_id()), (u64::MAX, a), "{what}");
        assert_eq!(
            ServerToClientNotification::parse(&msg)
                .unwrap()
                .notification_type(),
            0, // SmbNotifySessionClosed
            "{what}"
        );
    }
}

/// MS-SMB2 3.3.4.6 + 3.3.4.1.4: an oplock break for an open of a session
/// that encrypts, or on a share that asks for encryption, goes out in a
/// TRANSFORM under that session's keys, with the session's id; the holder
/// acknowledges it encrypted.
#[test]
fn an_oplock_break_to_an_encrypting_holder_is_sealed() {
    use super::share::{create_req, OplockFs};
    use crate::engine::{ShareBackend, ShareDef, StaticShares};
    use smb_wire::msg::create::CreateResponse;
    use smb_wire::msg::oplock_break::{OplockBreak, OplockBreakRepr};
    use std::sync::Mutex;
    // (share policy, the holder encrypts its requests)
    for (share_policy, holder_encrypts) in [
        (EncryptionPolicy::Off, true),
        (EncryptionPolicy::Desired, false),
    ] {
        let what = format!("share {share_policy}, holder encrypts: {holder_encrypts}");
        let acks = Arc::new(Mutex::new(Vec::new()));
        let a = acks.clone();
        let mut cfg = config();
        cfg.shares = Arc::new(StaticShares(vec![ShareDef::new(
            "data",
            move |_shard: u16| -> Box<dyn ShareBackend> { Box::new(OplockFs::new(a.clone())) },
        )
        .with_encryption(share_policy)]));
        let mut s = Server::new(cfg);
        let mut e = login(&mut s, 1000, dialect::SMB311, &[Cipher::Aes128Gcm]);
        // Plain or sealed as the case says; the answer comes sealed when
        // the request did.
        let send = |e: &mut Enc, s: &mut Server, req: Vec<u8>| {
            if holder_encrypts {
                e.call(s, &req)
            } else {
                e.c.call(s, &req)
            }
        };
        let req = tree_connect_req(&mut e.c, "data");
        let r = send(&mut e, &mut s, req);
        assert_eq!(status(&r), NtStatus::SUCCESS, "{what}");
        e.c.tree = ResponseInfo::parse(&r).unwrap().tree_id;
        let req = create_req(&mut e.c, "cached", 1);
        let r = send(&mut e, &mut s, req);
        let created = CreateResponse::parse(&r).unwrap();
        assert_eq!(created.oplock_level(), 9, "{what}");
        let held = created.file_id();
        let mut other = Client::new(&mut s, 1001);
        other.login(&mut s, dialect::SMB311, Some(USER));
        other.tree_connect(&mut s, "data", false);
        let req = create_req(&mut other, "cached", 1);
        let now = s.now;
        s.engine.handle_frame(other.conn, &req, now);
        assert_eq!(queued(&mut s, other.conn).len(), 1, "{what}");
        let frames = queued(&mut s, e.c.conn);
        assert_eq!(frames.len(), 1, "{what}: one break for the holder");
        assert!(
            is_transform(&frames[0]),
            "{what}: the break went out in the clear"
        );
        let msg = e.open(&frames[0]);
        let h = Header::new_checked(&msg[..]).unwrap();
        assert_eq!(h.command(), Command::OplockBreak, "{what}");
        assert_eq!((h.message_id(), h.session_id()), (u64::MAX, e.c.session));
        let b = OplockBreak::parse(&msg).unwrap();
        assert_eq!((b.file_id(), b.oplock_level()), (held, 0), "{what}");
        let req = e.c.request(
            Command::OplockBreak,
            &OplockBreakRepr {
                oplock_level: 0,
                file_id: held,
            },
        );
        assert_eq!(status(&e.call(&mut s, &req)), NtStatus::SUCCESS, "{what}");
        assert_eq!(*acks.lock().unwrap(), [0], "{what}");
    }
}

/// `handle_frame_in_place` decrypts a TRANSFORM where the runtime's buffer
/// holds it and answers exactly as `handle_frame` does; a bad one drops the
/// connection as before; a frame in the clear is answered unchanged.
#[test]
fn a_transform_decrypted_in_place_is_answered_as_a_copied_one() {
    for cipher in [Cipher::Aes128Ccm, Cipher::Aes128Gcm, Cipher::Aes256Gcm] {
        let mut s = Server::new(config());
        let mut e = login(&mut s, 1000, dialect::SMB311, &[cipher]);
        let req = tree_connect_req(&mut e.c, "IPC$");
        let mut t = e.seal(&req);
        let outcome = s.engine.handle_frame_in_place(e.c.conn, &mut t, s.now);
        assert_eq!(outcome, FrameOutcome::Continue, "{cipher}");
        assert_eq!(
            &t[TRANSFORM_HEADER_LEN..],
            &req[..],
            "{cipher}: the plaintext lies where the ciphertext was"
        );
        let frames = queued(&mut s, e.c.conn);
        assert_eq!(frames.len(), 1, "{cipher}");
        let resp = e.open(&frames[0]);
        assert_eq!(status(&resp), NtStatus::SUCCESS, "{cipher}");
        e.c.tree = ResponseInfo::parse(&resp).unwrap().tree_id;
        // The copying path on the same session goes on from there.
        let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
        assert_eq!(status(&e.call(&mut s, &req)), NtStatus::SUCCESS, "{cipher}");
        // A plain (unsigned) ECHO lent mutably: answered in the clear.
        let mut plain = e.c.request(Command::Echo, &EchoRequestRepr::default());
        let copy = plain.clone();
        let o = s.engine.handle_frame_in_place(e.c.conn, &mut plain, s.now);
        assert_eq!(o, FrameOutcome::Continue);
        assert_eq!(plain, copy, "a frame in the clear is not touched");
        let frames = queued(&mut s, e.c.conn);
        assert_eq!(frames.len(), 1);
        assert!(!is_transform(&frames[0]));
        // A tampered TRANSFORM: the connection is dropped, nothing queued.
        let req = e.c.request(Command::Echo, &EchoRequestRepr::default());
        let mut t = e.seal(&req);
        let n = t.len() - 1;
        t[n] ^= 0x80;
        let o = s.engine.handle_frame_in_place(e.c.conn, &mut t, s.now);
        assert_eq!(o, FrameOutcome::Close, "{cipher}");
        assert!(queued(&mut s, e.c.conn).is_empty(), "{cipher}");
    }
}
