//! The churn scenario (`--scenario churn`) against the embedded smbcore server, on kept
//! connections and with a new connection per session: every session is set up and logged
//! off, and the server counted each LOGOFF.

use clap::Parser;
use serde_json::Value;
use smb_loadgen::Args;

fn run(extra: &[&str]) -> smb_loadgen::load_report::LoadReport {
    let mut all = vec![
        "smb-loadgen",
        "--no-progress",
        "--scenario",
        "churn",
        "--connections",
        "4",
        "--sessions",
        "300",
    ];
    all.extend_from_slice(extra);
    let a = Args::try_parse_from(all).unwrap();
    smb_loadgen::load::run(&a).expect("run")
}

fn check(report: &smb_loadgen::load_report::LoadReport, mode: &str) -> Value {
    let r = &report.result;
    assert!(report.ok(), "{}", report.text());
    assert_eq!((r.sent, r.done, r.failed), (300, 300, 0), "{:?}", r.errors);
    // The server logged off as many sessions as the client saw logged off.
    assert_eq!(report.server_logged_off(), Some(300), "{}", report.text());
    let v = report.json();
    assert_eq!(v["mode"], mode);
    assert_eq!(v["sessions_completed"], 300);
    assert_eq!(v["server_sessions_logged_off"], 300);
    assert_eq!(v["server"]["sessions"], 0);
    assert_eq!(v["server"]["protocol_errors"], 0);
    for step in [
        "session_setup_1",
        "session_setup_2",
        "tree_connect",
        "logoff",
    ] {
        assert_eq!(v["step_ms"][step]["count"], 300, "{step}");
    }
    assert!(v["sessions_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["session_ms"]["p99"].is_number());
    v
}

#[test]
fn kept_connections_set_up_and_log_off_every_session() {
    let report = run(&[]);
    let v = check(&report, "kept-connection");
    // Four connections, each negotiated once.
    assert_eq!(report.result.connections, 4);
    assert_eq!(v["setup_ms"]["connect_negotiate"]["count"], 4);
    assert_eq!(v["step_ms"]["connect_negotiate"]["count"], 0);
}

#[test]
fn a_new_connection_each_time_sets_up_and_logs_off_every_session() {
    let report = run(&["--new-connection-each-time"]);
    let v = check(&report, "new-connection");
    assert_eq!(report.result.connections, 300);
    assert_eq!(v["step_ms"]["connect_negotiate"]["count"], 300);
}

#[test]
fn the_open_loop_charges_sessions_from_their_plan() {
    let report = run(&["--rate", "600"]);
    let v = check(&report, "kept-connection");
    assert_eq!(v["loop"], "open");
    assert_eq!(v["begin_lag_ms"]["count"], 300);
    // 300 sessions at 600/s: about half a second.
    let secs = v["seconds"].as_f64().unwrap();
    assert!((0.45..3.0).contains(&secs), "{secs} s");
}
