//! Several receive queues (issue 14: one AF_XDP socket per queue, in CI;
//! `scripts/bench-xdp-queues.sh` is the larger run). A lab whose veth has
//! two receive queues: the xdp transport runs one shard per queue whatever
//! `--threads` says (a queue without a socket would hand the port's
//! segments to the kernel, which answers them with RSTs); connections
//! spread over both queues by their 4-tuple, each shard holds and reaps its
//! own, and every session opens and is reaped on time, none early, none
//! never. A real client is served afterwards.

mod common;

use std::time::Duration;

use common::lab::{loadgen, unavailable, Lab, LabServer};
use common::{output_text, run_capture, TempDir};

const SESSIONS: u64 = 400;

#[test]
fn two_receive_queues_get_a_shard_each_and_both_serve_and_reap() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: no XDP lab here ({why})");
        return;
    }
    let lab = Lab::up_queues("xqu", 2, 2);
    // One thread asked for; the interface's two queues win.
    let server = LabServer::start(
        &lab,
        "xdp",
        None,
        &["--threads", "1", "--autodisconnect", "3s"],
    );
    let st = server.ctl_json(&["stats"]);
    assert_eq!(st["shards"], 2, "{st}");
    assert_eq!(st["xdp"].as_array().map(Vec::len), Some(2), "{st}");

    let dir = TempDir::new("queues");
    let json = dir.join("loadgen.json");
    let mut cmd = loadgen(&lab, &server);
    cmd.args([
        "--sessions",
        &SESSIONS.to_string(),
        "--autodisconnect",
        "3s",
        "--probes",
        "0",
        "--baseline",
        "0s",
        "--json",
    ])
    .arg(&json);
    let out = run_capture(&mut cmd, Duration::from_secs(120));
    let text = output_text(&out);
    assert!(out.status.success(), "smb-loadgen failed:\n{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_default()).unwrap_or_default();
    assert_eq!(report["opened"], SESSIONS, "{report}");
    assert_eq!(report["setup_failed"], 0, "{report}");
    assert_eq!(report["reaped"], SESSIONS, "{report}");
    assert_eq!(report["reaped_early"], 0, "{report}");
    assert_eq!(report["never_reaped"], 0, "{report}");

    let left = server.wait_sessions(Duration::from_secs(10), |s| s.is_empty());
    assert!(left.is_empty(), "{left:?}");
    let st = server.ctl_json(&["stats"]);
    assert_eq!(st["sessions_ended"]["timed_out"], SESSIONS, "{st}");
    assert_eq!(st["connections_ended"]["dead_transport"], 0, "{st}");
    // Each shard carried its share: every connection sat idle past the
    // parking delay (1 s) at least once, on the shard of its queue. 400 connections
    // hashed over two queues leave fewer than 100 on one with a chance
    // far below 1e-20.
    let parks: Vec<u64> = st["xdp"]
        .as_array()
        .expect("xdp shards")
        .iter()
        .map(|sh| sh["tcp_parks"].as_u64().unwrap_or(0))
        .collect();
    eprintln!("connections parked per shard: {parks:?}");
    // What is left is TIME-WAIT (the server closed first), without sockets.
    let sum = |k: &str| -> u64 {
        st["xdp"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|sh| sh[k].as_u64().unwrap_or(0))
            .sum()
    };
    eprintln!(
        "flows left {}, in TIME-WAIT {}",
        sum("flows"),
        sum("time_wait")
    );
    assert_eq!(sum("flows"), sum("time_wait"), "{st}");
    assert_eq!(sum("tcp_timed_out") + sum("tcp_reset_by_peer"), 0, "{st}");
    assert!(parks.iter().sum::<u64>() >= SESSIONS, "{st}");
    assert!(parks.iter().all(|&n| n >= 100), "{parks:?}");
    // No queue handed the port's segments to the kernel (it would answer
    // with RSTs, and connections would fail): and a real client is served.
    common::lab::assert_smbclient_lists(&lab);
}
