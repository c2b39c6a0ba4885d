//! SMB3 message protection per message: encrypt + decrypt (seal into a TRANSFORM message,
//! MS-SMB2 3.1.4.3, and open it again, the receiver's side of 3.2.5.1.1.1 / 3.3.5.2.1.1) of
//! an ECHO response and of a 64 KiB READ response with each cipher, beside sign + verify of
//! the same messages (MS-SMB2 3.1.4.1) with each signing algorithm. One iteration is what
//! both ends of one response cost: the server protects it, the client checks it.
//!
//! The keys are expanded once (as a session does); each iteration takes the next nonce of
//! a per-session counter, as the engine does. Throughput is the plaintext message size.
//!
//! `cargo bench --bench encryption -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

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

criterion_group!(benches, encryption);
criterion_main!(benches);
