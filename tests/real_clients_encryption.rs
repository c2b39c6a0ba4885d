//! SMB3 encryption with Samba's `smbclient` (4.17) against `smbcore serve`:
//! `client smb encrypt = required` on SMB3_00 (AES-128-CCM), SMB3_02
//! (AES-128-CCM) and SMB3_11 (a cipher from ENCRYPTION_CAPABILITIES), for
//! `-L` (srvsvc over IPC$) and `//127.0.0.1/IPC$`; and the server's own
//! `encryption = required`, under which every request must come
//! encrypted (so a listing that works proves that smbclient encrypted), and
//! anonymous and SMB 2.x sessions, which cannot encrypt, are refused.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{have, output_text, run_capture, TestServer, USER};

const SMB3: [&str; 3] = ["SMB3_00", "SMB3_02", "SMB3_11"];

/// smbclient against `target` (`-L` listing or a share) with `who`
/// (None: `-N`), a forced dialect and extra options.
fn smbclient(
    server: &TestServer,
    target: &str,
    who: Option<(&str, &str)>,
    dialect: &str,
    options: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new("smbclient");
    if target == "-L" {
        cmd.arg("-L").arg(format!("//{}", server.host()));
    } else {
        cmd.arg(format!("//{}/{target}", server.host()))
            .arg("-c")
            .arg("help");
    }
    cmd.arg("-p").arg(server.port.to_string());
    match who {
        Some((u, p)) => cmd.arg("-U").arg(format!("{u}%{p}")),
        None => cmd.arg("-N"),
    };
    cmd.arg("-m")
        .arg(dialect)
        .arg("--option=client min protocol=SMB2_02")
        .arg(format!("--option=client max protocol={dialect}"));
    for o in options {
        cmd.arg(format!("--option={o}"));
    }
    let out = run_capture(&mut cmd, Duration::from_secs(30));
    (out.status.success(), output_text(&out))
}

fn lists_ipc(text: &str) -> bool {
    text.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("IPC$") && w.next() == Some("IPC")
    })
}

#[test]
fn smbclient_requiring_encryption_lists_and_connects_on_every_smb3_dialect() {
    if !have("smbclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1"]);
    for dialect in SMB3 {
        let (ok, text) = smbclient(
            &server,
            "-L",
            Some(USER),
            dialect,
            &["client smb encrypt=required"],
        );
        assert!(ok && lists_ipc(&text), "{dialect} -L:\n{text}");
        let (ok, text) = smbclient(
            &server,
            "IPC$",
            Some(USER),
            dialect,
            &["client smb encrypt=required"],
        );
        assert!(ok, "{dialect} IPC$:\n{text}");
    }
    // SMB 2.1 cannot encrypt: smbclient refuses by itself.
    let (ok, _) = smbclient(
        &server,
        "-L",
        Some(USER),
        "SMB2_10",
        &["client smb encrypt=required"],
    );
    assert!(!ok);
}

#[test]
fn server_requiring_encryption_serves_encrypting_clients_only() {
    if !have("smbclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1", "--encryption", "required"]);
    for dialect in SMB3 {
        // smbclient's default follows SESSION_FLAG_ENCRYPT_DATA.
        let (ok, text) = smbclient(&server, "-L", Some(USER), dialect, &[]);
        assert!(ok && lists_ipc(&text), "{dialect} -L:\n{text}");
        let (ok, text) = smbclient(&server, "IPC$", Some(USER), dialect, &[]);
        assert!(ok, "{dialect} IPC$:\n{text}");
    }
    // Sessions that cannot encrypt: anonymous (no session key) and 2.1.
    for (who, dialect) in [
        (None, "SMB3_11"),
        (None, "SMB3_00"),
        (Some(USER), "SMB2_10"),
    ] {
        let (ok, text) = smbclient(&server, "-L", who, dialect, &[]);
        assert!(!ok && !lists_ipc(&text), "{who:?} {dialect}:\n{text}");
        assert!(
            text.contains("ACCESS_DENIED") || text.contains("LOGON_FAILURE"),
            "{who:?} {dialect}:\n{text}"
        );
    }
    let (ok, text) = smbclient(
        &server,
        "-L",
        None,
        "SMB3_11",
        &["client smb encrypt=required"],
    );
    assert!(!ok && !lists_ipc(&text), "{text}");
    // The server is still healthy.
    let (ok, text) = smbclient(&server, "-L", Some(USER), "SMB3_11", &[]);
    assert!(ok && lists_ipc(&text), "{text}");
}

#[test]
fn ipc_encryption_required_applies_to_ipc_only_and_changes_live() {
    if !have("smbclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1"]);
    // Off: anonymous (which cannot encrypt) is served on IPC$.
    let (ok, text) = smbclient(&server, "-L", None, "SMB3_11", &[]);
    assert!(ok && lists_ipc(&text), "{text}");
    let out = server.ctl(&["config", "set", "ipc-encryption", "required"]);
    assert!(out.status.success(), "{}", output_text(&out));
    // Required on IPC$: anonymous is turned away at TREE_CONNECT; a user
    // session follows SHAREFLAG_ENCRYPT_DATA and is served (encrypted:
    // unencrypted requests on the tree would be refused).
    let (ok, text) = smbclient(&server, "-L", None, "SMB3_11", &[]);
    assert!(
        !ok && !lists_ipc(&text),
        "anonymous on an encrypted IPC$:\n{text}"
    );
    for dialect in SMB3 {
        let (ok, text) = smbclient(&server, "-L", Some(USER), dialect, &[]);
        assert!(ok && lists_ipc(&text), "{dialect}:\n{text}");
    }
    let out = server.ctl(&["config", "set", "ipc-encryption", "off"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let (ok, text) = smbclient(&server, "-L", None, "SMB3_11", &[]);
    assert!(ok && lists_ipc(&text), "{text}");
}
