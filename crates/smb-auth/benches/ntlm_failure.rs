//! The cost of a failed NTLMv2 AUTHENTICATE (MS-NLMP 3.2.5.1.2) for a user
//! name that does not exist and for a known user with a wrong password,
//! side by side in one run: the two must cost the same, or the response
//! time tells which user names exist. A successful logon is measured for
//! reference.
//!
//! `cargo bench -p smb-auth --bench ntlm_failure -- --warm-up-time 1 --measurement-time 5`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use smb_auth::ntlm::{AcceptorConfig, NtlmAcceptor, NtlmInitiator, StaticCredentials};

const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
const TIMESTAMP: u64 = 0x01d9_0000_1234_5678;

/// An acceptor waiting for AUTHENTICATE and the AUTHENTICATE `client` sends.
fn exchange(mut client: NtlmInitiator) -> (NtlmAcceptor, Vec<u8>) {
    let cfg = AcceptorConfig {
        netbios_computer: "SMBCORE".into(),
        netbios_domain: "WORKGROUP".into(),
        ..Default::default()
    };
    let mut server = NtlmAcceptor::new(&cfg, SERVER_CHALLENGE, TIMESTAMP);
    let chal = server.challenge(&client.negotiate()).unwrap();
    let (auth, _) = client.authenticate(&chal, [0xaa; 8], [0x5c; 16]).unwrap();
    (server, auth)
}

fn failed_logons(c: &mut Criterion) {
    let mut store = StaticCredentials::new();
    store.add_password("bob", "hunter2", false);
    // Same name length, so both messages are the same size.
    let cases = [
        (
            "unknown_user",
            NtlmInitiator::user("eve", "WORKGROUP", "hunter3"),
        ),
        (
            "wrong_password",
            NtlmInitiator::user("bob", "WORKGROUP", "hunter3"),
        ),
        (
            "success",
            NtlmInitiator::user("bob", "WORKGROUP", "hunter2"),
        ),
    ];
    let mut g = c.benchmark_group("ntlm_authenticate");
    for (name, client) in cases {
        let (server, auth) = exchange(client);
        let expect_ok = name == "success";
        assert_eq!(
            server.clone().authenticate(&auth, &store).is_ok(),
            expect_ok
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut s = server.clone();
                black_box(s.authenticate(black_box(&auth), &store).is_ok())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, failed_logons);
criterion_main!(benches);
