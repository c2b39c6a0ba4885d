//! Parse a header + command view per message (MS-SMB2 2.2), from messages built with this
//! crate's encoders: fixed-size commands, then NEGOTIATE / SESSION_SETUP / TREE_CONNECT.

use criterion::{criterion_group, criterion_main, Criterion};
use smb_wire::header::{Command, HeaderRepr};
use smb_wire::msg::negotiate::{NegotiateContextRepr, NegotiateRequestRepr};
use smb_wire::msg::*;
use std::hint::black_box;

fn build<B: EmitBody>(command: Command, b: &B) -> Vec<u8> {
    let mut out = Vec::new();
    emit_message(
        &HeaderRepr::request(command, 42, 0x0000_1234_0000_0001, 1),
        b,
        &mut out,
    );
    out
}

fn bench(c: &mut Criterion) {
    let id = FileId {
        persistent: 1,
        volatile: 2,
    };
    let ctx = [
        NegotiateContextRepr::PreauthIntegrity {
            hash_algorithms: U16s::Native(&[1]),
            salt: &[0x5A; 32],
        },
        NegotiateContextRepr::Encryption {
            ciphers: U16s::Native(&[2, 1]),
        },
        NegotiateContextRepr::Signing {
            algorithms: U16s::Native(&[2, 1]),
        },
    ];
    let path: Vec<u8> = "\\\\127.0.0.1\\IPC$"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let token = [0x4Eu8; 74]; // the size of an NTLMSSP NEGOTIATE inside SPNEGO
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "echo",
            build(Command::Echo, &echo::EchoRequestRepr::default()),
        ),
        (
            "logoff",
            build(Command::Logoff, &logoff::LogoffRequestRepr::default()),
        ),
        (
            "tree_disconnect",
            build(
                Command::TreeDisconnect,
                &tree_disconnect::TreeDisconnectRequestRepr::default(),
            ),
        ),
        (
            "close",
            build(
                Command::Close,
                &close::CloseRequestRepr {
                    flags: 0,
                    file_id: id,
                },
            ),
        ),
        (
            "cancel",
            build(Command::Cancel, &cancel::CancelRequestRepr::default()),
        ),
        (
            "read",
            build(
                Command::Read,
                &read::ReadRequestRepr {
                    length: 4280,
                    file_id: id,
                    ..Default::default()
                },
            ),
        ),
        (
            "negotiate",
            build(
                Command::Negotiate,
                &NegotiateRequestRepr {
                    security_mode: 1,
                    capabilities: 0x7F,
                    client_guid: [7; 16],
                    client_start_time: 0,
                    dialects: U16s::Native(&[0x0202, 0x0210, 0x0300, 0x0302, 0x0311]),
                    contexts: &ctx,
                },
            ),
        ),
        (
            "session_setup",
            build(
                Command::SessionSetup,
                &session_setup::SessionSetupRequestRepr {
                    security_mode: 1,
                    security_buffer: &token,
                    ..Default::default()
                },
            ),
        ),
        (
            "tree_connect",
            build(
                Command::TreeConnect,
                &tree_connect::TreeConnectRequestRepr {
                    flags: 0,
                    path: &path,
                },
            ),
        ),
    ];
    let mut g = c.benchmark_group("parse_request");
    for (name, m) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let (h, r) = parse_request(black_box(&m[..])).unwrap();
                black_box((h.message_id(), r));
            })
        });
    }
    g.finish();
    // Header + the command's own view, without the Request enum dispatch.
    let mut g = c.benchmark_group("header_and_view");
    macro_rules! direct {
        ($name:literal, $i:expr, $view:ty) => {
            let m = &cases[$i].1;
            g.bench_function($name, |b| {
                b.iter(|| {
                    let m = black_box(&m[..]);
                    let h = smb_wire::Header::new_checked(m).unwrap();
                    let v = <$view>::parse(m).unwrap();
                    black_box((h.message_id(), h.session_id(), v));
                })
            });
        };
    }
    direct!("echo", 0, echo::EchoRequest<'_>);
    direct!("logoff", 1, logoff::LogoffRequest<'_>);
    direct!(
        "tree_disconnect",
        2,
        tree_disconnect::TreeDisconnectRequest<'_>
    );
    direct!("close", 3, close::CloseRequest<'_>);
    direct!("cancel", 4, cancel::CancelRequest<'_>);
    direct!("read", 5, read::ReadRequest<'_>);
    direct!("negotiate", 6, negotiate::NegotiateRequest<'_>);
    direct!("session_setup", 7, session_setup::SessionSetupRequest<'_>);
    direct!("tree_connect", 8, tree_connect::TreeConnectRequest<'_>);
    g.finish();
    // Header alone, for reference.
    let echo = &cases[0].1;
    c.bench_function("header_only", |b| {
        b.iter(|| {
            let h = smb_wire::Header::new_checked(black_box(&echo[..])).unwrap();
            black_box((h.command(), h.message_id(), h.session_id()))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
