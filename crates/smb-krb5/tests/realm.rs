//! The GSS-API acceptor against a real MIT KDC (scripts/krb5-realm.sh):
//! a good AP-REQ, the session key both sides agree on, and each refusal
//! (replay, wrong key, another service, skew, garbage) with its reason.
//! Skipped with a note when the KDC tools are not installed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use smb_auth::kerberos::{KerberosAcceptor, KerberosFailure};
use smb_krb5::{Cred, GssAcceptor, Initiation};

struct Realm {
    dir: PathBuf,
}

impl Drop for Realm {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/krb5-realm.sh")
}

fn start_realm() -> Option<Realm> {
    let dir = std::env::temp_dir().join(format!("smb-krb5-test-{}", std::process::id()));
    let out = Command::new(script())
        .arg("start")
        .arg(&dir)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "skipping: realm did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(Realm { dir })
}

#[test]
fn acceptor_against_a_real_kdc() {
    let Some(realm) = start_realm() else { return };
    let d = &realm.dir;
    // One test function: the krb5 environment is process-wide.
    std::env::set_var("KRB5_CONFIG", d.join("krb5.conf"));
    std::env::set_var("KRB5CCNAME", format!("FILE:{}", d.join("ccache").display()));
    let alice = Cred::initiator("alice@SMBCORE.TEST", Some("alice-pw")).expect("kinit alice");
    let keytab = d.join("cifs.keytab").display().to_string();
    let acc = GssAcceptor::from_keytab(&keytab, "cifs/localhost").expect("acceptor");
    assert_eq!(acc.service(), "cifs@localhost");
    assert_eq!(acc.keys(), 4);
    assert_eq!(acc.realms(), ["SMBCORE.TEST".to_string()]);

    // A good logon: principal, AP-REP, the same session key on both sides.
    let mut init = Initiation::start(Some(&alice), "cifs@localhost").expect("AP-REQ");
    let ap_req = init.token().to_vec();
    let out = acc.accept(&ap_req).expect("accepted");
    assert_eq!(out.principal, "alice@SMBCORE.TEST");
    assert!(
        !out.output.is_empty(),
        "mutual authentication answers an AP-REP"
    );
    let lifetime = out.lifetime.expect("ticket end");
    assert!(lifetime > Duration::from_secs(9 * 3600), "{lifetime:?}");
    // The ticket's own end, without the clock skew MIT allows on top.
    assert!(lifetime <= Duration::from_secs(10 * 3600), "{lifetime:?}");
    let client_key = init.finish(&out.output).expect("AP-REP verifies");
    assert_eq!(client_key, out.session_key);
    assert!(out.session_key.len() >= 16);

    // The same AP-REQ again is a replay.
    assert_eq!(acc.accept(&ap_req), Err(KerberosFailure::Replay));
    assert_eq!(acc.replay_cache_len(), 1);

    // Truncated and garbled tokens.
    let fresh = Initiation::start(Some(&alice), "cifs@localhost").unwrap();
    let t = fresh.token().to_vec();
    assert_eq!(
        acc.accept(&t[..t.len() / 2]),
        Err(KerberosFailure::Malformed)
    );
    let mut garbled = t.clone();
    let n = garbled.len();
    garbled[n - 20] ^= 0x55;
    let e = acc.accept(&garbled).unwrap_err();
    assert!(
        matches!(e, KerberosFailure::BadTicket | KerberosFailure::Malformed),
        "{e:?}"
    );
    // The untouched token is still good (garbage was not remembered).
    acc.accept(&t).expect("the intact token");

    // A keytab with the right name and another key.
    let wrong = GssAcceptor::from_keytab(
        &d.join("wrong.keytab").display().to_string(),
        "cifs/localhost",
    )
    .unwrap();
    let t = Initiation::start(Some(&alice), "cifs@localhost").unwrap();
    assert_eq!(wrong.accept(t.token()), Err(KerberosFailure::BadTicket));

    // A ticket for another service.
    let t = Initiation::start(Some(&alice), "host@localhost").unwrap();
    assert_eq!(acc.accept(t.token()), Err(KerberosFailure::WrongService));

    // Clock skew: with clockskew = 1 s, an authenticator 3 s old is refused.
    let conf = std::fs::read_to_string(d.join("krb5.conf")).unwrap();
    let tight = d.join("krb5-tight.conf");
    std::fs::write(&tight, conf.replace("clockskew = 300", "clockskew = 1")).unwrap();
    std::env::set_var("KRB5_CONFIG", &tight);
    let t = Initiation::start(Some(&alice), "cifs@localhost").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(acc.accept(t.token()), Err(KerberosFailure::Skew));
    std::env::set_var("KRB5_CONFIG", d.join("krb5.conf"));
}
