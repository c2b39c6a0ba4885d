//! Start-up of `smbcore serve` as an operator sees it: one server per
//! address (a second instance, or any other program's SO_REUSEPORT listener
//! on the port, makes `serve` refuse to start instead of silently sharing the
//! port), and a start that fails leaves nothing behind. Each test starts the
//! real binary on a free loopback port.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::client::{Client, Login};
use common::{one_line_of_stderr, serve_refused, TempDir, TestServer};

const REFUSAL_WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_second_instance_on_the_same_address_refuses_to_start_and_the_first_keeps_every_connection() {
    let srv = TestServer::start(&["--threads", "2"]);
    let dir = TempDir::new("second");
    let admin = dir.join("admin.sock");
    let listen = srv.addr.to_string();
    let out = serve_refused(
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

    // Every connection reaches the first server (both of its shards).
    let mut held = Vec::new();
    for i in 0..32 {
        let mut c = Client::connect(srv.addr).unwrap();
        let sid = c.login(Login::Anonymous, &format!("ONE{i}")).unwrap();
        held.push((c, sid));
    }
    assert_eq!(srv.sessions().len(), 32);
    assert_eq!(srv.ctl_json(&["stats"])["shards"], 2);
}

#[test]
fn another_programs_reuseport_listener_on_the_port_is_refused() {
    use socket2::{Domain, Socket, Type};
    let foreign = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    foreign.set_reuse_port(true).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    foreign.bind(&any.into()).unwrap();
    foreign.listen(16).unwrap();
    let addr = foreign.local_addr().unwrap().as_socket().unwrap();
    let dir = TempDir::new("foreign");
    let admin = dir.join("admin.sock");
    let out = serve_refused(
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
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let dir = TempDir::new("metrics-busy");
    let admin = dir.join("admin.sock");
    let out = serve_refused(
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
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let out = serve_refused(
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
