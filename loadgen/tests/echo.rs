//! The echo scenario against the embedded smbcore server: ECHOs pipelined on a few connections
//! are all answered, and the report carries every documented figure.

use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;
use smb_loadgen::Args;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("smb-loadgen-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn args(v: &[&str]) -> Args {
    let mut all = vec!["smb-loadgen", "--no-progress", "--scenario", "echo"];
    all.extend_from_slice(v);
    Args::try_parse_from(all).unwrap()
}

/// The value at `path` (dotted) of `v`, or a panic naming the missing key.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur
            .get(k)
            .unwrap_or_else(|| panic!("JSON has no key {path} (at {k}): {v:#}"));
    }
    cur
}

#[test]
fn closed_loop_echoes_are_answered_and_reported() {
    let d = tmpdir("echo");
    let (json, hist, plot) = (d.join("e.json"), d.join("e.hlog"), d.join("e.svg"));
    let a = args(&[
        "--connections",
        "4",
        "--queue-depth",
        "4",
        "--duration",
        "1s",
        "--json",
        json.to_str().unwrap(),
        "--hist",
        hist.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let report = smb_loadgen::load::run(&a).expect("run");
    let r = &report.result;
    assert!(report.ok(), "{}", report.text());
    assert_eq!(r.connections_ready, 4);
    assert!(r.done > 100, "only {} ECHOs answered", r.done);
    assert_eq!(r.done, r.sent);
    assert_eq!(r.failed, 0, "{:?}", r.errors);

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(at(&v, "scenario"), "echo");
    assert_eq!(at(&v, "loop"), "closed");
    assert_eq!(at(&v, "correction.method"), "record_correct");
    assert!(at(&v, "correction.expected_interval_ms").as_f64().unwrap() > 0.0);
    assert_eq!(at(&v, "requests_answered").as_u64(), Some(r.done));
    assert_eq!(at(&v, "requests_sent").as_u64(), Some(r.sent));
    assert_eq!(at(&v, "errors").as_u64(), Some(0));
    assert!(at(&v, "requests_per_sec").as_f64().unwrap() > 0.0);
    for h in ["latency_ms", "latency_uncorrected_ms"] {
        for q in ["count", "min", "mean", "p50", "p90", "p99", "p99_9", "max"] {
            assert!(at(&v, &format!("{h}.{q}")).is_number(), "{h}.{q}");
        }
    }
    // The correction only adds samples.
    assert!(
        at(&v, "latency_ms.count").as_u64().unwrap()
            >= at(&v, "latency_uncorrected_ms.count").as_u64().unwrap()
    );
    for k in [
        "command_line",
        "machine.cpus",
        "machine.kernel",
        "target",
        "config.queue_depth",
        "setup_ms.connect_negotiate.p99",
        "setup_ms.tree_connect.count",
        "errors_by_kind",
        "credit_waits",
        "max_credits_held",
        "server.transport",
        "ok",
    ] {
        at(&v, k);
    }
    assert_eq!(at(&v, "setup_ms.total.count").as_u64(), Some(4));
    let log = std::fs::read_to_string(&hist).unwrap();
    assert!(log.contains("Tag=latency"), "{log}");
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn open_loop_sends_exactly_the_requests_planned() {
    let a = args(&["--connections", "4", "--rate", "2000", "--requests", "1000"]);
    let report = smb_loadgen::load::run(&a).expect("run");
    let r = &report.result;
    assert!(report.ok(), "{}", report.text());
    assert_eq!((r.sent, r.done), (1000, 1000));
    let v = report.json();
    assert_eq!(at(&v, "loop"), "open");
    assert_eq!(at(&v, "correction.method"), "planned-send-time");
    // 1000 ECHOs at 2000/s take about half a second.
    let secs = at(&v, "seconds").as_f64().unwrap();
    assert!((0.45..3.0).contains(&secs), "{secs} s");
    // From the plan is never less than from the send.
    assert!(
        at(&v, "latency_ms.p50").as_f64().unwrap()
            >= at(&v, "latency_uncorrected_ms.p50").as_f64().unwrap()
    );
    assert_eq!(at(&v, "send_lag_ms.count").as_u64(), Some(1000));
}

#[test]
fn a_refused_target_is_a_clear_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let a = args(&["--target", &addr, "--connections", "2", "--duration", "1s"]);
    let e = smb_loadgen::load::run(&a).unwrap_err();
    assert!(e.contains("refused"), "{e}");
}
