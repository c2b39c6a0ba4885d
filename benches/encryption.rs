//! SMB3 message protection per message: encrypt + decrypt (seal into a TRANSFORM message,
//! MS-SMB2 3.1.4.3, and open it again, the receiver's side of 3.2.5.1.1.1 / 3.3.5.2.1.1) of
//! an ECHO response and of a 64 KiB READ response with each cipher, beside sign + verify of
//! the same messages (MS-SMB2 3.1.4.1) with each signing algorithm. One iteration is what
//! both ends of one response cost: the server protects it, the client checks it.
//!
//! The keys are expanded once (as a session does); each iteration takes the next nonce of
//! a per-session counter, as the engine does. Throughput is the plaintext message size.
//!
//! Then the engine's side of one encrypted request, in memory (`engine_transform`): an
//! AES-128-GCM session on 3.1.1, an ECHO and a 64 KiB WRITE (to a FileId that is not open,
//! answered FILE_CLOSED once the whole frame is decrypted) each sealed by the client outside
//! the timing, then handed to the engine as the transports hand it (`handle_frame_in_place`:
//! decrypted where it lies) or lent immutably (`handle_frame`: copied into the engine's
//! scratch buffer first), the sealed answer drained as a socket would take it.
//!
//! `cargo bench --bench encryption -- --warm-up-time 1 --measurement-time 3`

#[path = "support/mem_client.rs"]
#[allow(unused_imports)]
mod mem_client;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smb_auth::encryption::{open, seal, Cipher, NonceCounter, SessionCipher, TRANSFORM_HEADER_LEN};
use smb_auth::signing::{derive_signing_key, sign, verify, SigningAlgorithm};
use smb_wire::header::{flags, Command, HeaderRepr};
use smb_wire::msg::echo::EchoResponseRepr;
use smb_wire::msg::emit_message;
use smb_wire::msg::read::ReadResponseRepr;

const SESSION_ID: u64 = 0x0000_1000_0000_0041;

/// The two responses: (name, whole SMB2 message).
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut h = HeaderRepr::request(Command::Echo, 7, SESSION_ID, 0);
    h.flags |= flags::SERVER_TO_REDIR;
    let mut echo = Vec::new();
    emit_message(&h, &EchoResponseRepr::default(), &mut echo);
    let mut h = HeaderRepr::request(Command::Read, 8, SESSION_ID, 1);
    h.flags |= flags::SERVER_TO_REDIR;
    let data: Vec<u8> = (0..65536u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut read = Vec::new();
    emit_message(
        &h,
        &ReadResponseRepr {
            data: &data,
            ..Default::default()
        },
        &mut read,
    );
    vec![("echo", echo), ("read_64k", read)]
}

fn encryption(c: &mut Criterion) {
    let mut g = c.benchmark_group("encrypt_decrypt");
    for (name, msg) in messages() {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        for cipher in [
            Cipher::Aes128Ccm,
            Cipher::Aes128Gcm,
            Cipher::Aes256Ccm,
            Cipher::Aes256Gcm,
        ] {
            let server = SessionCipher::derive(0x0311, &[7; 16], Some(&[9; 64]), cipher);
            let client = server.reversed();
            let mut buf = vec![0u8; TRANSFORM_HEADER_LEN];
            buf.extend_from_slice(&msg);
            let mut nonces = NonceCounter::default();
            g.bench_with_input(BenchmarkId::new(cipher.name(), name), &(), |b, _| {
                b.iter(|| {
                    let nonce = nonces.next_nonce().unwrap();
                    seal(&server.encrypt, &nonce, SESSION_ID, &mut buf);
                    let plain = open(&client.decrypt, black_box(&mut buf)).unwrap();
                    black_box(plain.len())
                })
            });
            assert_eq!(
                buf[TRANSFORM_HEADER_LEN..],
                msg[..],
                "opened to the plaintext"
            );
        }
    }
    g.finish();

    let mut g = c.benchmark_group("sign_verify");
    for (name, msg) in messages() {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        for (dialect, algo, label) in [
            (0x0210, SigningAlgorithm::HmacSha256, "hmac-sha256"),
            (0x0300, SigningAlgorithm::AesCmac, "aes-128-cmac"),
            (0x0311, SigningAlgorithm::AesGmac, "aes-128-gmac"),
        ] {
            let key = derive_signing_key(dialect, &[7; 16], Some(&[9; 64]), algo);
            let mut m = msg.clone();
            m[16..20].copy_from_slice(&(flags::SERVER_TO_REDIR | flags::SIGNED).to_le_bytes());
            g.bench_with_input(BenchmarkId::new(label, name), &(), |b, _| {
                b.iter(|| {
                    sign(&key, &mut m);
                    assert!(verify(&key, black_box(&m)));
                })
            });
        }
    }
    g.finish();
}

/// An engine with one AES-128-GCM session on 3.1.1, logged in as a user, and the client's
/// side of it.
struct Encrypted {
    engine: smb_session::engine::Engine,
    conn: smb_session::ids::ConnId,
    now: Instant,
    requests: smb_client::Requests,
    sid: u64,
    tree: u32,
    keys: SessionCipher,
    nonces: NonceCounter,
    out: Vec<u8>,
}

impl Encrypted {
    fn new(cipher: Cipher) -> Encrypted {
        use smb_auth::ntlm::StaticCredentials;
        use smb_auth::preauth::PreauthHash;
        use smb_client::{setup_request, Auth, Offer, SessionSetup};
        let now = Instant::now();
        let mut engine = mem_client::engine_with(now, |cfg| {
            let mut users = StaticCredentials::new();
            users.add_password("bench", "B3nch!pw", false);
            cfg.users = Arc::new(users);
            cfg.ciphers = vec![cipher];
        });
        let conn = engine.accept("127.0.0.1:50000".parse().unwrap(), now);
        let mut e = Encrypted {
            engine,
            conn,
            now,
            requests: smb_client::Requests::new(32),
            sid: 0,
            tree: 0,
            keys: SessionCipher::derive(0x0311, &[0; 16], Some(&[0; 64]), cipher),
            nonces: NonceCounter::default(),
            out: Vec::new(),
        };
        let mut offer = Offer::new(&[0x0311], [1; 16], [2; 32]);
        offer.ciphers = vec![cipher.id()];
        let req = e.requests.message(Command::Negotiate, 0, 0, &offer, None);
        let resp = e.call(&req);
        let n = offer.accept(&resp).expect("negotiate");
        let mut preauth = PreauthHash::new();
        preauth.update(&req);
        preauth.update(&resp);
        let auth = Auth::User {
            name: "bench".into(),
            domain: "WORKGROUP".into(),
            password: "B3nch!pw".into(),
        };
        let mut setup = SessionSetup::new(&auth, "", preauth);
        let tok = setup.initial_token();
        let req = e
            .requests
            .message(Command::SessionSetup, 0, 0, &setup_request(&tok), None);
        setup.sent(&req);
        let resp = e.call(&req);
        let tok = setup.challenge(&resp, [5; 8], [6; 16]).expect("challenge");
        e.sid = setup.session_id();
        let req = e
            .requests
            .message(Command::SessionSetup, e.sid, 0, &setup_request(&tok), None);
        setup.sent(&req);
        let resp = e.call(&req);
        setup.finish(&resp, &n).expect("logged in");
        e.keys = setup.encryption(&n).expect("keys");
        let path = smb_client::share_path("BENCH", "IPC$");
        let tc = smb_wire::msg::tree_connect::TreeConnectRequestRepr {
            flags: 0,
            path: &path,
        };
        let req = e
            .requests
            .message(Command::TreeConnect, e.sid, 0, &tc, None);
        let resp = e.call(&req);
        e.tree = smb_client::ResponseInfo::parse(&resp)
            .expect("tree")
            .tree_id;
        assert_ne!(e.tree, 0, "IPC$ connected");
        e
    }

    /// One request in the clear; its one answer.
    fn call(&mut self, req: &[u8]) -> Vec<u8> {
        self.engine.handle_frame(self.conn, req, self.now);
        self.out.clear();
        self.engine.drain_transmit(self.conn, &mut self.out);
        self.out[4..].to_vec()
    }

    /// The next request for `command`, sealed as the client sends it.
    fn sealed(&mut self, command: Command, body: &dyn smb_wire::msg::EmitBody) -> Vec<u8> {
        let msg = self
            .requests
            .message(command, self.sid, self.tree, body, None);
        let mut t = vec![0u8; TRANSFORM_HEADER_LEN];
        t.extend_from_slice(&msg);
        let nonce = self.nonces.next_nonce().unwrap();
        seal(&self.keys.encrypt, &nonce, self.sid, &mut t);
        t
    }
}

fn engine_transform(c: &mut Criterion) {
    use smb_session::engine::FrameOutcome;
    use smb_wire::msg::echo::EchoRequestRepr;
    use smb_wire::msg::write::WriteRequestRepr;
    use smb_wire::msg::FileId;
    let data = vec![0x5a; 65536];
    let write = WriteRequestRepr {
        offset: 0,
        file_id: FileId {
            persistent: 1,
            volatile: 2,
        },
        data: &data,
        ..Default::default()
    };
    let echo = EchoRequestRepr::default();
    let mut g = c.benchmark_group("engine_transform");
    for (name, body, size) in [
        ("echo", &echo as &dyn smb_wire::msg::EmitBody, 68u64),
        ("write_64k", &write as &dyn smb_wire::msg::EmitBody, 65_648),
    ] {
        g.throughput(Throughput::Bytes(size));
        for in_place in [false, true] {
            let mut e = Encrypted::new(Cipher::Aes128Gcm);
            let label = if in_place { "in_place" } else { "copied" };
            let command = if name == "echo" {
                Command::Echo
            } else {
                Command::Write
            };
            // Sealing is the client's work: outside the timing (iter_custom).
            g.bench_with_input(BenchmarkId::new(label, name), &(), |b, _| {
                b.iter_custom(|iters| {
                    let mut spent = std::time::Duration::ZERO;
                    for _ in 0..iters {
                        let mut t = e.sealed(command, body);
                        let start = Instant::now();
                        let o = if in_place {
                            e.engine
                                .handle_frame_in_place(e.conn, black_box(&mut t), e.now)
                        } else {
                            e.engine.handle_frame(e.conn, black_box(&t), e.now)
                        };
                        e.out.clear();
                        e.engine.drain_transmit(e.conn, &mut e.out);
                        spent += start.elapsed();
                        assert_eq!(o, FrameOutcome::Continue);
                    }
                    spent
                })
            });
            // The last answer was sealed for the session and opens to the right status.
            let mut last = e.out[4..].to_vec();
            let plain = open(&e.keys.decrypt, &mut last).expect("a sealed answer");
            let status = smb_wire::Header::new_checked(&plain[..]).unwrap().status();
            let want = if name == "echo" {
                smb_wire::NtStatus::SUCCESS
            } else {
                smb_wire::NtStatus::FILE_CLOSED
            };
            assert_eq!(status, want, "{label} {name}");
        }
    }
    g.finish();
}

criterion_group!(benches, encryption, engine_transform);
criterion_main!(benches);
