//! smbtorture's Kerberos session-expiry tests (`smb2.session.expire1n`,
//! `expire1s`, `expire1e`, `expire2s`, `expire2e`, `expire_disconnect`;
//! the `e` ones encrypted with keys from the Kerberos session key) against
//! the memfs example
//! with a throwaway MIT realm (`scripts/krb5-realm.sh`) whose user `short`
//! gets 20-second tickets: requests after the ticket's end get
//! STATUS_NETWORK_SESSION_EXPIRED (LOGOFF, CLOSE and unlocking LOCKs still
//! served), a re-authentication with a new ticket revives the session
//! (MS-SMB2 3.3.5.2.9).
//!
//! smbtorture has no `-I`: it connects to a name, and Samba's clients refuse
//! Kerberos to `localhost` or an address. The test uses this machine's own
//! host name (memfs's automatic `kerberos-service` is `cifs/<host name>`,
//! its `keytab` setting `$KRB5_KTNAME`) and skips, saying so, when that name
//! does not resolve to a loopback address. On the xdp transport
//! (`SMBCORE_TEST_TRANSPORT=xdp`, the server in a lab of its own) smbtorture
//! runs in a mount namespace of its own whose `/etc/hosts` gives that name
//! the server's lab address.

mod common;

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::memfs::MemfsServer;
use common::{have, output_text, run_capture, TempDir};

const TESTS: [&str; 6] = [
    "smb2.session.expire1n",
    "smb2.session.expire1s",
    "smb2.session.expire1e",
    "smb2.session.expire2s",
    "smb2.session.expire2e",
    "smb2.session.expire_disconnect",
];

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/krb5-realm.sh")
}

struct Realm(PathBuf);

impl Drop for Realm {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.0).status();
    }
}

#[test]
fn smbtorture_session_expiry_with_kerberos() {
    if !have("smbtorture") {
        return;
    }
    if !std::path::Path::new("/usr/sbin/krb5kdc").exists() && !have("krb5kdc") {
        return;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let loopback = (host.as_str(), 445)
        .to_socket_addrs()
        .map(|mut a| a.any(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    if host.is_empty() || host == "localhost" || !loopback {
        eprintln!(
            "SKIPPED: this machine's host name ({host:?}) does not resolve to a loopback address"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("smbcore-expire-realm-{}", std::process::id()));
    let out = run_capture(
        Command::new(script()).arg("start").arg(&dir),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "realm: {}", output_text(&out));
    let realm = Realm(dir);
    // One test function: memfs and smbtorture inherit this environment.
    std::env::set_var("KRB5_CONFIG", realm.0.join("krb5.conf"));
    std::env::set_var(
        "KRB5_KTNAME",
        format!("FILE:{}", realm.0.join("host.keytab").display()),
    );
    let mut failed = Vec::new();
    for t in TESTS {
        let server = MemfsServer::start(&[]);
        let hosts = TempDir::new("krb-hosts");
        let mut smbtorture = match &server.lab {
            None => Command::new("smbtorture"),
            Some(lab) => {
                let file = hosts.join("hosts");
                std::fs::write(
                    &file,
                    format!("127.0.0.1 localhost\n{} {host}\n", lab.server_addr),
                )
                .expect("write hosts");
                let mut c = Command::new("unshare");
                c.args([
                    "-m",
                    "sh",
                    "-c",
                    "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
                ])
                .arg(file)
                .arg("smbtorture");
                c
            }
        };
        let out = run_capture(
            smbtorture
                .arg(format!("//{host}/mem"))
                .arg("-p")
                .arg(server.port.to_string())
                .arg("--use-kerberos=required")
                .arg("-U")
                .arg("short@SMBCORE.TEST%short-pw")
                .arg(t),
            Duration::from_secs(180),
        );
        let text = output_text(&out);
        let name = t.rsplit('.').next().unwrap_or(t);
        if !text.lines().any(|l| l.trim() == format!("success: {name}")) {
            eprintln!(
                "==== {t} failed:\n{text}\n---- memfs log ----\n{}",
                server.log_text()
            );
            failed.push(t);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}
