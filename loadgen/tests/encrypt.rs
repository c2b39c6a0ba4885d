//! `--encrypt` against the embedded smbcore server, which then runs with `encryption =
//! required`: a request in the clear after SESSION_SETUP would get ACCESS_DENIED and a
//! response in the clear fails the client, so a clean run proves every request was sealed
//! (MS-SMB2 3.1.4.3) and every response opened (3.2.5.1.1.1). Idle, echo and churn, with
//! the default cipher list and with each `--cipher`.

use clap::Parser;
use smb_loadgen::Args;

const USER: [&str; 4] = ["--user", "alice", "--password", "Secret1"];

fn args(scenario: &str, v: &[&str]) -> Args {
    let mut all = vec!["smb-loadgen", "--no-progress", "--scenario", scenario];
    all.extend_from_slice(&USER);
    all.push("--encrypt");
    all.extend_from_slice(v);
    Args::try_parse_from(all).unwrap()
}

#[test]
fn encrypted_echoes_with_every_cipher() {
    for cipher in [
        None,
        Some("aes-128-ccm"),
        Some("aes-128-gcm"),
        Some("aes-256-ccm"),
        Some("aes-256-gcm"),
    ] {
        let mut v = vec![
            "--connections",
            "2",
            "--queue-depth",
            "4",
            "--requests",
            "200",
        ];
        if let Some(c) = cipher {
            v.extend(["--cipher", c]);
        }
        let report = smb_loadgen::load::run(&args("echo", &v)).expect("run");
        let r = &report.result;
        assert!(report.ok(), "{cipher:?}: {}", report.text());
        assert_eq!(r.connections_ready, 2, "{cipher:?}: {:?}", r.errors);
        assert_eq!(r.done, 200, "{cipher:?}");
        assert_eq!(r.failed, 0, "{cipher:?}: {:?}", r.errors);
    }
}

#[test]
fn encrypted_session_churn_on_30_302_and_311() {
    for d in ["3.0", "3.0.2", "3.1.1"] {
        let v = ["--connections", "2", "--sessions", "20", "--dialect", d];
        let report = smb_loadgen::load::run(&args("churn", &v)).expect("run");
        let r = &report.result;
        assert!(report.ok(), "{d}: {}", report.text());
        assert_eq!(r.done, 20, "{d}: {:?}", r.errors);
        assert_eq!(r.failed, 0, "{d}: {:?}", r.errors);
    }
}

#[test]
fn encrypted_idle_sessions_are_reaped() {
    let a = args(
        "idle",
        &[
            "--sessions",
            "4",
            "--autodisconnect",
            "300ms",
            "--hold",
            "2s",
            "--probes",
            "1",
            "--probe-rate",
            "50",
            "--baseline",
            "200ms",
        ],
    );
    let report = smb_loadgen::run(&a).expect("run");
    assert_eq!(report.result.opened, 4, "{:?}", report.result.first_error);
    assert_eq!(report.result.reaped, 4);
}

#[test]
fn encrypt_needs_a_user_and_a_3x_dialect() {
    let e = Args::try_parse_from(["smb-loadgen", "--scenario", "echo", "--encrypt"]);
    assert!(e.is_err(), "--encrypt without --user");
    let e = Args::try_parse_from(["smb-loadgen", "--cipher", "aes-128-gcm"]);
    assert!(e.is_err(), "--cipher without --encrypt");
    let mut a = vec!["smb-loadgen", "--encrypt", "--cipher", "aes-512-gcm"];
    a.extend_from_slice(&USER);
    assert!(Args::try_parse_from(a).is_err(), "unknown cipher");
    let a = args("echo", &["--dialect", "2.1", "--requests", "10"]);
    let e = smb_loadgen::load::run(&a).unwrap_err();
    assert!(e.contains("3.x dialect"), "{e}");
}

/// Two sessions per connection on 3.1.1: the first one reaped is announced with
/// SmbNotifySessionClosed while its connection stays up for the second, and the server seals
/// that notification with the first session's keys (MS-SMB2 3.3.4.1.4); the client opens it
/// with the keys it kept for that session and counts it as the session's end.
#[test]
fn encrypted_sessions_sharing_a_connection_are_told_of_their_reaping_sealed() {
    let a = args(
        "idle",
        &[
            "--dialect",
            "3.1.1",
            "--sessions",
            "8",
            "--sessions-per-connection",
            "2",
            // 50 ms between sessions: a connection's two are due 50 ms apart, so the first
            // is reaped while the connection stays.
            "--rate",
            "20",
            "--autodisconnect",
            "300ms",
            "--hold",
            "2s",
            "--probes",
            "0",
            "--baseline",
            "0s",
        ],
    );
    let report = smb_loadgen::run(&a).expect("run");
    let r = &report.result;
    assert_eq!(r.opened, 8, "{:?}", r.first_error);
    assert_eq!(r.reaped, 8, "{}", report.text());
    assert_eq!(r.never_reaped, 0, "{}", report.text());
    assert!(
        r.ends_notification >= 1,
        "no notification seen: {}",
        report.text()
    );
}
