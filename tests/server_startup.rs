//! Start-up of `smbcore serve` as an operator sees it: one server per
//! address (a second instance, or any other program's SO_REUSEPORT listener
//! on the port, makes `serve` refuse to start instead of silently sharing the
//! port), and a start that fails leaves nothing behind. Each test starts the
//! real binary on a free loopback port (with `SMBCORE_TEST_TRANSPORT=xdp`,
//! on the xdp transport in a lab of its own: `common::lab::lab_for`).

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::client::{Client, Login};
use common::lab::{lab_for, server_host, ForeignListener};
use common::{one_line_of_stderr, serve_refused_in, TempDir, TestServer};

const REFUSAL_WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_second_instance_on_the_same_address_refuses_to_start_and_the_first_keeps_every_connection() {
    let srv = TestServer::start(&["--threads", "2"]);
    let dir = TempDir::new("second");
    let admin = dir.join("admin.sock");
    let listen = srv.addr.to_string();
    let out = serve_refused_in(
        srv.lab.as_ref(),
        &[
            "--listen",
            &listen,
            "--threads",
            "2",
            "--admin-socket",
            admin.to_str().unwrap(),
        ],
        REFUSAL_WAIT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        one_line_of_stderr(&out),
        format!("smbcore: address {listen} is already served by another process")
    );
    assert!(
        !admin.exists(),
        "the refused instance left its admin socket"
    );

    // Every connection reaches the first server (each of its shards).
    let mut held = Vec::new();
    for i in 0..32 {
        let mut c = Client::connect(srv.addr).unwrap();
        let sid = c.login(Login::Anonymous, &format!("ONE{i}")).unwrap();
        held.push((c, sid));
    }
    assert_eq!(srv.sessions().len(), 32);
    // On xdp a shard per receive queue at most: the lab's veth has one.
    let shards = if srv.lab.is_some() { 1 } else { 2 };
    assert_eq!(srv.ctl_json(&["stats"])["shards"], shards);
}

#[test]
fn another_programs_reuseport_listener_on_the_port_is_refused() {
    let lab = lab_for(&[]);
    let (_foreign, addr) = ForeignListener::start(lab.as_ref(), true);
    let dir = TempDir::new("foreign");
    let admin = dir.join("admin.sock");
    let out = serve_refused_in(
        lab.as_ref(),
        &[
            "--listen",
            &addr.to_string(),
            "--threads",
            "2",
            "--admin-socket",
            admin.to_str().unwrap(),
        ],
        REFUSAL_WAIT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line = one_line_of_stderr(&out);
    assert!(
        line.starts_with(&format!("smbcore: cannot listen on {addr}:")),
        "{line}"
    );
}

#[test]
fn metrics_port_in_use_fails_the_start_and_leaves_no_listener_or_admin_socket() {
    let lab = lab_for(&[]);
    let (_busy, busy_addr) = ForeignListener::start(lab.as_ref(), false);
    let busy_addr = busy_addr.to_string();
    let port = common::free_port();
    let listen = format!("{}:{port}", server_host(lab.as_ref()));
    let dir = TempDir::new("metrics-busy");
    let admin = dir.join("admin.sock");
    let out = serve_refused_in(
        lab.as_ref(),
        &[
            "--listen",
            &listen,
            "--admin-socket",
            admin.to_str().unwrap(),
            "--metrics",
            &busy_addr,
        ],
        REFUSAL_WAIT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line = one_line_of_stderr(&out);
    assert!(
        line.starts_with(&format!("smbcore: cannot serve metrics on {busy_addr}:")),
        "{line}"
    );
    assert!(
        TcpStream::connect(&listen).is_err(),
        "SMB port still served"
    );
    assert!(!admin.exists(), "the failed start left its admin socket");
}

#[test]
fn an_admin_socket_that_cannot_be_created_fails_the_start_with_one_line_naming_it() {
    let dir = TempDir::new("admin-bad");
    // Its parent is a plain file: no directory can be made there.
    let file = dir.join("not-a-dir");
    common::write_file(&file, "x");
    let admin = file.join("admin.sock");
    let lab = lab_for(&[]);
    let port = common::free_port();
    let listen = format!("{}:{port}", server_host(lab.as_ref()));
    let out = serve_refused_in(
        lab.as_ref(),
        &[
            "--listen",
            &listen,
            "--admin-socket",
            admin.to_str().unwrap(),
        ],
        REFUSAL_WAIT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line = one_line_of_stderr(&out);
    assert!(
        line.starts_with("smbcore: ") && line.contains(file.to_str().unwrap()),
        "{line}"
    );
    assert!(
        TcpStream::connect(&listen).is_err(),
        "SMB port still served"
    );
}

/// An operator removed the admin socket's file under the running server:
/// SIGTERM still stops it cleanly and at once (the admin thread is woken
/// through its listening socket, not through the path that is gone).
#[test]
fn sigterm_stops_the_server_after_its_admin_socket_file_was_removed() {
    let mut srv = common::TestServer::start(&["--threads", "1"]);
    std::fs::remove_file(&srv.admin_socket).expect("remove the admin socket");
    let started = std::time::Instant::now();
    let status = srv.terminate();
    let took = started.elapsed();
    assert!(status.success(), "exit: {status:?} after {took:?}");
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
}
