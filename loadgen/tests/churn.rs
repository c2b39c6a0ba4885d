//! The churn scenario against the embedded smbcore server: every fate plays out, nothing fails,
//! and the server returns to zero connections, sessions, trees and client memory.

use clap::Parser;
use serde_json::Value;
use smb_loadgen::churn::{self, Fate};
use smb_loadgen::cli::{Args, Scenario};

#[test]
fn every_fate_plays_out_and_the_server_drains() {
    let json = std::env::temp_dir().join(format!("smb-loadgen-churn-{}.json", std::process::id()));
    let a = Args::try_parse_from([
        "smb-loadgen",
        "churn",
        "--rate",
        "120",
        "--duration",
        "2s",
        "--autodisconnect",
        "500ms",
        "--hold",
        "3s",
        "--progress-every",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    let Some(Scenario::Churn(c)) = &a.scenario else {
        panic!("not churn")
    };
    let report = churn::run(c).expect("run");
    let r = &report.result;
    assert!(r.ok(), "{}", report.text());
    assert_eq!(r.failed, 0, "{:?}", r.first_error);
    assert_eq!(r.reaped_early, 0, "worst early {} us", r.worst_early_us);
    assert_eq!(r.not_reaped, 0);

    // Every fate was dealt and completed, and the session counts add up.
    let (mut started, mut opened, mut awaiting, mut hangups) = (0, 0, 0, 0);
    for f in Fate::ALL {
        let n = r.fates[f as usize];
        assert!(n.started > 0, "{} never dealt", f.name());
        assert_eq!(n.completed, n.started, "{}: {n:?}", f.name());
        started += n.started * f.sessions();
        opened += n.started * f.sessions_opened();
        if f.awaits_reap() {
            awaiting += n.started;
        } else {
            hangups += n.started;
        }
    }
    assert_eq!(r.sessions_started, started);
    assert_eq!(r.sessions_opened, opened);
    assert_eq!(r.reaped, awaiting);
    assert_eq!(r.hangups_fin + r.hangups_rst, hangups);
    assert!(r.hangups_fin > 0 && r.hangups_rst > 0);
    // About 240 sessions in 2 s (the schedule is open loop).
    assert!(
        (200..=260).contains(&r.sessions_started),
        "{}",
        r.sessions_started
    );

    // The server is back to zero, and its own counters saw the fates.
    assert_eq!(report.server_drained(), Some(true), "{}", report.text());
    let s = report.server_after.as_ref().unwrap();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("no {k} in {s}"));
    let logoffs = r.fates[Fate::Logoff as usize].started + r.fates[Fate::Reopen as usize].started;
    assert_eq!(n("sessions_logged_off"), logoffs);
    // Idle, re-opened (second session) and pipe sessions time out.
    let timed_out = [Fate::Idle, Fate::Reopen, Fate::Pipe, Fate::PipeUnread]
        .iter()
        .map(|f| r.fates[*f as usize].started)
        .sum::<u64>();
    assert_eq!(n("sessions_timed_out"), timed_out);
    assert_eq!(n("protocol_errors"), 0);

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["server_drained"], true);
    assert_eq!(v["fates"]["pipe-unread"]["failed"], 0);
    assert_eq!(v["sessions_started"].as_u64(), Some(r.sessions_started));
    assert!(v["setup_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(v["lateness_ms"]["count"].as_u64().unwrap() == r.reaped);
    assert_eq!(v["config"]["mix"], churn::DEFAULT_MIX);
    let _ = std::fs::remove_file(&json);
}

#[test]
fn a_refused_target_is_fatal() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let a = Args::try_parse_from([
        "smb-loadgen",
        "churn",
        "--target",
        &addr,
        "--duration",
        "1s",
        "--progress-every",
        "0s",
    ])
    .unwrap();
    let Some(Scenario::Churn(c)) = &a.scenario else {
        panic!("not churn")
    };
    let e = churn::run(c).unwrap_err();
    assert!(e.contains("refused"), "{e}");
}
