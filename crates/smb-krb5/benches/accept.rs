//! The cost of accepting one logon, side by side in one run: a Kerberos
//! AP-REQ through `GssAcceptor::accept` (MIT krb5: ticket and authenticator
//! decryption, replay cache, AP-REP, session key) against a whole NTLMv2
//! exchange on the acceptor's side (CHALLENGE made, AUTHENTICATE checked:
//! both SPNEGO legs). Each Kerberos iteration gets a fresh AP-REQ, made
//! outside the timing (a replayed one would be refused early). Needs the KDC
//! tools (scripts/krb5-realm.sh); without them only NTLMv2 runs.
//!
//! `cargo bench -p smb-krb5 --bench accept -- --warm-up-time 1 --measurement-time 5`

use std::path::PathBuf;
use std::process::Command;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use smb_auth::kerberos::KerberosAcceptor;
use smb_auth::ntlm::{AcceptorConfig, NtlmInitiator, StaticCredentials};
use smb_auth::spnego::{SpnegoAcceptor, SpnegoInitiator, Step};
use smb_krb5::{Cred, GssAcceptor, Initiation};

fn ntlm(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let mut store = StaticCredentials::new();
    store.add_password("alice", "alice-pw", false);
    let cfg = AcceptorConfig {
        netbios_computer: "SMBCORE".into(),
        netbios_domain: "WORKGROUP".into(),
        ..Default::default()
    };
    g.bench_function("ntlmv2_accept", |b| {
        b.iter_batched(
            || {
                // The client's two tokens, made outside the timing.
                let mut client =
                    SpnegoInitiator::new(NtlmInitiator::user("alice", "WORKGROUP", "alice-pw"));
                let first = client.initial_token();
                // Fixed challenge and time: the acceptor makes the same
                // CHALLENGE again inside the timing.
                let server = SpnegoAcceptor::new(cfg.clone(), [7; 8], 0x01d9_0000_1234_5678);
                let Ok(Step::Continue(chal)) = server.clone().step(&first, &store) else {
                    panic!("challenge");
                };
                let second = client.respond(&chal, [0xaa; 8], [0x5c; 16]).unwrap();
                (server, first, second)
            },
            |(mut server, first, second)| {
                server.step(&first, &store).unwrap();
                black_box(matches!(
                    server.step(&second, &store),
                    Ok(Step::Done { .. })
                ))
            },
            BatchSize::SmallInput,
        )
    });
}

fn accept(c: &mut Criterion) {
    let mut g = c.benchmark_group("logon_accept");
    ntlm(&mut g);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/krb5-realm.sh");
    let dir = std::env::temp_dir().join(format!("smb-krb5-bench-{}", std::process::id()));
    let ok = Command::new(&script)
        .arg("start")
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        std::env::set_var("KRB5_CONFIG", dir.join("krb5.conf"));
        let cred = Cred::initiator("alice@SMBCORE.TEST", Some("alice-pw")).expect("kinit");
        let acc = GssAcceptor::from_keytab(
            &dir.join("cifs.keytab").display().to_string(),
            "cifs/localhost",
        )
        .expect("acceptor");
        g.bench_function("kerberos_accept", |b| {
            b.iter_batched(
                || {
                    Initiation::start(Some(&cred), "cifs@localhost")
                        .unwrap()
                        .token()
                        .to_vec()
                },
                |t| black_box(acc.accept(&t).is_ok()),
                BatchSize::SmallInput,
            )
        });
        let _ = Command::new(&script).arg("stop").arg(&dir).status();
    } else {
        eprintln!("no KDC tools: Kerberos not measured");
    }
    g.finish();
}

criterion_group!(benches, accept);
criterion_main!(benches);
