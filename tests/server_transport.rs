//! The transport seam through the real binary: `--transport` picks mio or
//! io_uring (startup only), `ctl stats` and `/metrics` say which one each
//! shard runs, and a bad value is one clear line.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::client::{Client, Login};
use common::{free_port, serve_refused, TestServer};

#[test]
fn each_transport_serves_and_says_so() {
    for (arg, name) in [("io-uring", "io_uring"), ("mio", "mio")] {
        let metrics = format!("127.0.0.1:{}", free_port());
        let srv = TestServer::start(&["--transport", arg, "--threads", "2", "--metrics", &metrics]);
        let stats = srv.ctl_json(&["stats"]);
        assert_eq!(stats["transport"], name);
        let mut c = Client::connect(srv.addr).expect("connect");
        let sid = c.login(Login::Anonymous, "T").expect("login");
        assert!(c.tree_connect(sid, "IPC$").unwrap().is_ok());
        let mut s = TcpStream::connect(&metrics).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        for shard in 0..2 {
            let line = format!("smbcore_shard_info{{shard=\"{shard}\",transport=\"{name}\"}} 1");
            assert!(body.contains(&line), "{line} missing:\n{body}");
        }
        // The transport is chosen at start only.
        let out = srv.ctl(&["config", "set", "transport", "mio"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("restart"));
    }
}

#[test]
fn a_bad_transport_is_one_clear_line() {
    let out = serve_refused(
        &["--listen", "127.0.0.1:0", "--transport", "dpdk"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auto, io-uring or mio"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
