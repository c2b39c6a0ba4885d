//! The generator against the embedded smbcore server: a few hundred sessions with a
//! sub-second autodisconnect, through the library API (`smb_loadgen::run`).

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
    let mut all = vec!["smb-loadgen", "--no-progress"];
    all.extend_from_slice(v);
    Args::try_parse_from(all).unwrap()
}

fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur
            .get(k)
            .unwrap_or_else(|| panic!("JSON has no key {path} (at {k}): {v:#}"));
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
}

#[test]
fn every_session_opens_and_is_reaped_on_time() {
    let d = tmpdir("main");
    let (json, hist, plot) = (d.join("r.json"), d.join("r.hlog"), d.join("r.svg"));
    let a = args(&[
        "--sessions",
        "300",
        "--autodisconnect",
        "500ms",
        "--hold",
        "2s",
        "--probes",
        "1",
        "--probe-rate",
        "50",
        "--baseline",
        "200ms",
        "--json",
        json.to_str().unwrap(),
        "--hist",
        hist.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let report = smb_loadgen::run(&a).expect("run");
    let r = &report.result;
    assert_eq!(r.opened, 300, "first error: {:?}", r.first_error);
    assert_eq!(r.setup_failed, 0);
    assert_eq!(r.reaped, 300);
    assert_eq!(r.reaped_early, 0, "worst early {} us", r.worst_early_us);
    assert_eq!(r.never_reaped, 0);
    assert_eq!(r.lateness_us.len(), 300);
    assert!(report.ok());
    // The server's own count agrees.
    let server = report.server.as_ref().expect("embedded server stats");
    assert_eq!(server["sessions_timed_out"].as_u64(), Some(300));

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(num(&v, "opened"), 300.0);
    assert_eq!(num(&v, "reaped"), 300.0);
    assert_eq!(num(&v, "reaped_early"), 0.0);
    assert_eq!(num(&v, "never_reaped"), 0.0);
    assert_eq!(num(&v, "lateness_ms.count"), 300.0);
    assert!(num(&v, "setup_per_sec") > 0.0);
    assert!(num(&v, "lateness_ms.p99") <= num(&v, "lateness_ms.max"));
    assert!(num(&v, "lateness_ms.p50") <= num(&v, "lateness_ms.p99"));
    // Lateness cannot be below minus the error bound (the RTT of the last request).
    assert!(num(&v, "lateness_ms.min") >= -num(&v, "error_bound_ms.max") - 0.01);
    for k in [
        "lateness_upper_ms.p99",
        "setup_ms.total.p99",
        "setup_ms.connect_negotiate.p50",
        "setup_ms.tree_connect.max",
        "error_bound_ms.p50",
        "probe_ms.baseline.count",
        "probe_ms.idle.count",
        "config.autodisconnect_ms",
        "machine.cpus",
    ] {
        num(&v, k);
    }
    assert_eq!(v["lateness_unit"], "session");
    assert_eq!(v["ok"], true);
    assert!(v["command_line"].is_array());
    assert!(v["clock"].as_str().unwrap().contains("CLOCK_MONOTONIC"));
    assert!(num(&v, "probe_ms.baseline.count") > 0.0);

    let log = std::fs::read_to_string(&hist).unwrap();
    assert!(log.contains("Tag=lateness_upper,"), "{log}");
    assert!(log.contains("Tag=setup_total,"));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn several_sessions_per_connection_are_reported_per_connection() {
    let a = args(&[
        "--sessions",
        "200",
        "--sessions-per-connection",
        "10",
        "--autodisconnect",
        "500ms",
        "--hold",
        "2s",
        "--probes",
        "0",
        "--rate",
        "400",
    ]);
    let report = smb_loadgen::run(&a).expect("run");
    let r = &report.result;
    assert_eq!(r.connections, 20);
    assert_eq!(r.opened, 200, "first error: {:?}", r.first_error);
    assert_eq!(r.reaped, 200);
    assert_eq!(r.reaped_early, 0, "worst early {} us", r.worst_early_us);
    assert_eq!(r.never_reaped, 0);
    // One lateness sample per connection, at its last session's deadline.
    assert_eq!(r.lateness_us.len(), 20);
    assert_eq!(report.json()["lateness_unit"], "connection");
}

#[test]
fn user_logins_sign_on_every_dialect() {
    for d in ["2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"] {
        let a = args(&[
            "--sessions",
            "4",
            "--autodisconnect",
            "300ms",
            "--hold",
            "2s",
            "--probes",
            "0",
            "--user",
            "alice",
            "--password",
            "Secret1",
            "--dialect",
            d,
        ]);
        let report = smb_loadgen::run(&a).unwrap_or_else(|e| panic!("dialect {d}: {e}"));
        assert_eq!(
            report.result.opened, 4,
            "dialect {d}: {:?}",
            report.result.first_error
        );
        assert_eq!(report.result.reaped, 4, "dialect {d}");
        assert_eq!(
            report.result.dialect,
            smb_server::config::parse_dialect(d).unwrap()
        );
    }
}

#[test]
fn wrong_password_is_an_auth_failure_with_the_ntstatus() {
    let mut o = smb_server::ServeOptions::new("127.0.0.1:0".parse().unwrap());
    let mut users = smb_server::users::UserFile::default();
    users.add("bob", "right", false);
    o.users = std::sync::Arc::new(users);
    let server = smb_server::Server::start(o).unwrap();
    let target = server.local_addr().to_string();
    let a = args(&[
        "--target",
        &target,
        "--sessions",
        "3",
        "--probes",
        "0",
        "--user",
        "bob",
        "--password",
        "wrong",
    ]);
    let e = smb_loadgen::run(&a).unwrap_err();
    assert!(e.contains("authentication"), "{e}");
    assert!(e.contains("NTSTATUS 0x"), "{e}");
    server.shutdown();
}

#[test]
fn a_refused_connection_is_a_clear_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let a = args(&["--target", &addr, "--sessions", "5", "--probes", "0"]);
    let e = smb_loadgen::run(&a).unwrap_err();
    assert!(e.contains("refused"), "{e}");
}

/// Probes busy with ECHOs to the last moment close as a client should: the answer outstanding
/// is read, then FIN, then the server's EOF. Dropping the sockets instead would reset the
/// connections whose answer was on its way, and the server would count dead transports.
#[test]
fn busy_probes_close_cleanly_at_the_end() {
    let a = args(&[
        "--sessions",
        "20",
        "--autodisconnect",
        "300ms",
        "--hold",
        "1s",
        "--probes",
        "4",
        "--probe-rate",
        "1000",
        "--baseline",
        "200ms",
    ]);
    let report = smb_loadgen::run(&a).expect("run");
    assert!(report.ok(), "first error: {:?}", report.result.first_error);
    let server = report.server.as_ref().expect("embedded server stats");
    let ended = &server["connections_ended"];
    assert_eq!(ended["dead_transport"], 0, "{server:#}");
    assert_eq!(ended["client_closed"], 4, "{server:#}");
    assert_eq!(ended["timed_out"], 20, "{server:#}");
}
