//! SMB3 encryption through the engine: keys derived on the client side
//! (smb-client, and independently from the KDF for 3.0.2), every cipher and
//! dialect, the policy settings, and each bad TRANSFORM getting its defined
//! answer (the connection dropped) while other sessions go on.

use smb_auth::encryption::{self, Cipher, NonceCounter, SessionCipher, TRANSFORM_HEADER_LEN};
use smb_auth::kdf::smb3_kdf_into;
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
