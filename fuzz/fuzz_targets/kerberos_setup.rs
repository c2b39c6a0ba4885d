//! The Kerberos path of SESSION_SETUP: arbitrary security buffers through
//! the SPNEGO acceptor with a Kerberos acceptor configured, as the engine
//! runs it (first leg, then, when it asks for one, a second).
//!
//! The acceptor is smb-krb5's real one (MIT krb5 parsing the AP-REQ) when
//! `SMBCORE_FUZZ_KEYTAB` names a keytab (e.g. `DIR/cifs.keytab` of
//! `scripts/krb5-realm.sh start DIR`, with `KRB5_CONFIG=DIR/krb5.conf`);
//! without it a stand-in that runs smb-krb5's own AP-REQ parser (the replay
//! cache's authenticator lookup) and accepts nothing. Checks that nothing
//! panics, that a refusal maps to an NTSTATUS, and that a one-leg success
//! is a Kerberos one.
//!
//! ```text
//! cargo +nightly fuzz run kerberos_setup -s none -- -max_len=4096
//! ```
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use smb_auth::kerberos::{KerberosAcceptor, KerberosFailure, KerberosOutcome};
use smb_auth::ntlm::{AcceptorConfig, StaticCredentials};
use smb_auth::spnego::{SpnegoAcceptor, Step};

#[derive(Debug)]
struct ParseOnly;

impl KerberosAcceptor for ParseOnly {
    fn accept(&self, token: &[u8]) -> Result<KerberosOutcome, KerberosFailure> {
        smb_krb5::replay::authenticator_cipher(token).ok_or(KerberosFailure::Malformed)?;
        Err(KerberosFailure::BadTicket)
    }
}

fn acceptor() -> Arc<dyn KerberosAcceptor> {
    static A: OnceLock<Arc<dyn KerberosAcceptor>> = OnceLock::new();
    A.get_or_init(|| match std::env::var("SMBCORE_FUZZ_KEYTAB") {
        Ok(kt) => Arc::new(
            smb_krb5::GssAcceptor::from_keytab(&kt, "cifs/localhost").expect("keytab"),
        ),
        Err(_) => Arc::new(ParseOnly),
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (first, second) = data.split_at(split);
    let users = StaticCredentials::new();
    let mut a = SpnegoAcceptor::new(AcceptorConfig::default(), [1; 8], 0)
        .with_kerberos(Some(acceptor()));
    match a.step(first, &users) {
        Ok(Step::Continue(_)) => {
            if let Err(e) = a.step(second, &users) {
                let _ = e.ntstatus();
            }
        }
        Ok(Step::Done { outcome, .. }) => {
            // Only the real acceptor can succeed, and only with a ticket.
            assert!(outcome.kerberos, "a one-leg success is Kerberos");
        }
        Err(e) => {
            let _ = e.ntstatus();
        }
    }
});
