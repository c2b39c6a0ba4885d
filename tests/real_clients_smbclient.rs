//! Samba's `smbclient -L` (4.17) against `smbcore serve` on loopback:
//! anonymous, administrator and plain user, each dialect forced (SMB2_02,
//! SMB2_10, SMB3_00, SMB3_02, SMB3_11), and with `client signing =
//! required` (HMAC-SHA256 for 2.x, AES-CMAC for 3.0/3.0.2 with
//! FSCTL_VALIDATE_NEGOTIATE_INFO, AES-GMAC with the preauth hash for 3.1.1:
//! smbclient checks every signature itself and fails the listing if one is
//! wrong or missing).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{have, output_text, run_capture, TestServer, ADMIN, USER};

const DIALECTS: [&str; 5] = ["SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11"];

/// `smbclient -L //127.0.0.1 -p PORT` with `who` (None: `-N`), a forced
/// dialect and a signing setting; returns (success, output).
fn list(
    server: &TestServer,
    who: Option<(&str, &str)>,
    dialect: &str,
    signing: &str,
) -> (bool, String) {
    let mut cmd = Command::new("smbclient");
    cmd.arg("-L")
        .arg(format!("//{}", server.host()))
        .arg("-p")
        .arg(server.port.to_string());
    match who {
        Some((u, p)) => cmd.arg("-U").arg(format!("{u}%{p}")),
        None => cmd.arg("-N"),
    };
    cmd.arg("-m")
        .arg(dialect)
        .arg("--option=client min protocol=SMB2_02")
        .arg(format!("--option=client max protocol={dialect}"))
        .arg(format!("--option=client signing={signing}"));
    let out = run_capture(&mut cmd, Duration::from_secs(30));
    (out.status.success(), output_text(&out))
}

/// Whether the listing shows `IPC$` of type IPC.
fn lists_ipc(text: &str) -> bool {
    text.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("IPC$") && w.next() == Some("IPC")
    })
}

#[test]
fn smbclient_lists_ipc_anonymous_admin_and_user_on_every_dialect() {
    if !have("smbclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1"]);
    for dialect in DIALECTS {
        for who in [None, Some(ADMIN), Some(USER)] {
            let (ok, text) = list(&server, who, dialect, "default");
            assert!(
                ok && lists_ipc(&text),
                "{dialect} as {who:?}: smbclient -L failed:\n{text}"
            );
        }
    }
    // smbclient does not log off: its sessions go with its connections.
    let left = server.wait_sessions(Duration::from_secs(5), |s| s.is_empty());
    assert!(left.is_empty(), "sessions left: {left:?}");
}

#[test]
fn smbclient_lists_ipc_with_required_signing_on_every_dialect() {
    if !have("smbclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1"]);
    for dialect in DIALECTS {
        for who in [ADMIN, USER] {
            let (ok, text) = list(&server, Some(who), dialect, "required");
            assert!(
                ok && lists_ipc(&text),
                "{dialect} as {} with client signing=required:\n{text}",
                who.0
            );
        }
    }
}

#[test]
fn smbclient_lists_ipc_when_the_server_requires_signing() {
    if !have("smbclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1", "--require-signing"]);
    for dialect in ["SMB2_10", "SMB3_02", "SMB3_11"] {
        let (ok, text) = list(&server, Some(USER), dialect, "default");
        assert!(ok && lists_ipc(&text), "{dialect}:\n{text}");
    }
}

#[test]
fn anonymous_with_required_signing_is_refused_cleanly() {
    // A null session has no key to sign with: smbclient must give up at
    // once (no hang), and the server must stay healthy.
    if !have("smbclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1"]);
    let (ok, text) = list(&server, None, "SMB3_11", "required");
    assert!(!ok && !lists_ipc(&text), "unexpected success:\n{text}");
    let (ok, text) = list(&server, Some(USER), "SMB3_11", "required");
    assert!(ok && lists_ipc(&text), "{text}");
}

#[test]
fn smbclient_on_the_default_shard_count() {
    // The default runs one shard per core; connections spread over them.
    if !have("smbclient") {
        return;
    }
    let server = TestServer::start(&[]);
    for i in 0..6 {
        let who = [None, Some(ADMIN), Some(USER)][i % 3];
        let (ok, text) = list(&server, who, "SMB3_11", "default");
        assert!(ok && lists_ipc(&text), "run {i} as {who:?}:\n{text}");
    }
}
