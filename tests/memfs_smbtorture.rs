//! Samba's `smbtorture` (4.17) against the memfs example: every test named
//! in `tests/smbtorture-memfs.pass` (one per line, `#` comments) must pass.
//! The tests of the session, credits and compound suites that cannot pass,
//! with the reason, are listed in README.md ("Embedding").

mod common;

use std::process::Command;
use std::time::Duration;

use common::memfs::MemfsServer;
use common::{have, output_text, run_capture, USER};

/// The known-pass list.
fn known_pass() -> Vec<String> {
    include_str!("smbtorture-memfs.pass")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Run `test` against a fresh memfs; `Err` with smbtorture's output when it
/// does not pass.
fn torture(test: &str) -> Result<(), String> {
    torture_with(test, &[])
}

/// [`torture`] with extra smbtorture arguments.
fn torture_with(test: &str, extra: &[&str]) -> Result<(), String> {
    let server = MemfsServer::start(&[]);
    let mut cmd = Command::new("smbtorture");
    cmd.arg(format!("//{}/mem", server.host()))
        .arg("-p")
        .arg(server.port.to_string())
        .arg("-U")
        .arg(format!("{}%{}", USER.0, USER.1))
        .args(extra)
        .arg(test);
    let out = run_capture(&mut cmd, Duration::from_secs(120));
    let text = output_text(&out);
    let name = test.rsplit('.').next().unwrap_or(test);
    let passed = text.lines().any(|l| l.trim() == format!("success: {name}"));
    if passed && out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{text}\n---- memfs log ----\n{}",
            server.log_text()
        ))
    }
}

#[test]
fn smbtorture_known_pass_list_passes() {
    if !have("smbtorture") {
        return;
    }
    let list = known_pass();
    assert!(list.len() >= 20, "the known-pass list is there");
    let mut failed = Vec::new();
    for t in &list {
        if let Err(text) = torture(t) {
            eprintln!("==== {t} failed:\n{text}");
            failed.push(t.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "smbtorture tests on the known-pass list failed: {failed:?}"
    );
}

/// Oplock breaks to a client that encrypts (`client smb encrypt = required`;
/// memfs grants oplocks on one shard) go out in a TRANSFORM (MS-SMB2
/// 3.3.4.1.4, 3.3.4.6), and smbtorture opens and acknowledges them: batch25
/// (a break acknowledged to none) and levelii501 (two breaks, the answer held
/// 500 ms). A break sealed with the wrong keys, nonce or SessionId would not
/// decrypt and the client would drop the connection. (Samba's client would
/// also take a break in the clear; that the break is sealed is checked in
/// the engine's tests, `an_oplock_break_to_an_encrypting_holder_is_sealed`.)
#[test]
fn smbtorture_encrypting_client_gets_and_acknowledges_oplock_breaks() {
    if !have("smbtorture") {
        return;
    }
    let mut failed = Vec::new();
    for t in ["smb2.oplock.batch25", "smb2.oplock.levelii501"] {
        if let Err(text) = torture_with(t, &["--option=client smb encrypt=required"]) {
            eprintln!("==== {t} failed:\n{text}");
            failed.push(t);
        }
    }
    assert!(
        failed.is_empty(),
        "encrypted oplock tests failed: {failed:?}"
    );
}
