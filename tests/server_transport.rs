//! The transport seam through the real binary: `--transport` picks mio or
//! io_uring (startup only), `ctl stats` and `/metrics` say which one each
//! shard runs, and a bad value is one clear line.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::client::{request_frame, Client, Login};
use common::{free_port, serve_refused, TestServer};
use smb_wire::header::{Command, Header};
use smb_wire::msg::EmitBody;
use smb_wire::NtStatus;

/// An ECHO request body (MS-SMB2 2.2.28).
struct Echo;
impl EmitBody for Echo {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&[4, 0, 0, 0]);
    }
}

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
    assert!(err.contains("auto, io-uring, mio or xdp"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// The xdp transport needs an interface, and the interface's own address
/// (the XDP program matches it): each mistake is one line and exit 2,
/// with nothing attached anywhere.
#[test]
fn the_xdp_transport_without_an_interface_or_address_is_one_clear_line() {
    for (args, says) in [
        (
            &["--listen", "127.0.0.1:0", "--transport", "xdp"][..],
            "--xdp-interface",
        ),
        (
            &[
                "--listen",
                "0.0.0.0:0",
                "--transport",
                "xdp",
                "--xdp-interface",
                "lo",
            ][..],
            "IPv4 address in --listen",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--transport",
                "xdp",
                "--xdp-interface",
                "no/such",
            ][..],
            "xdp-interface",
        ),
    ] {
        let out = serve_refused(args, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// A burst of requests larger than one receive buffer (16 KiB on io_uring,
/// where a receive may then span several buffers, or start in the middle
/// of one another connection used) is answered in full and in order, and a
/// second connection's small requests in between get their own answers.
#[test]
fn a_burst_larger_than_a_receive_buffer_is_answered_in_order() {
    for transport in ["io-uring", "mio"] {
        let srv = TestServer::start(&["--transport", transport, "--threads", "1"]);
        let mut a = Client::connect(srv.addr).expect("connect a");
        let mut b = Client::connect(srv.addr).expect("connect b");
        let sa = a.login(Login::Anonymous, "A").expect("login a");
        let sb = b.login(Login::Anonymous, "B").expect("login b");
        // Each answer grants credits: gather enough for the burst.
        for _ in 0..8 {
            assert_eq!(a.echo(sa).unwrap(), NtStatus::SUCCESS);
        }
        let mut first = a.next_message_id();
        for round in 0..3 {
            let n = 300u64;
            let mut burst = Vec::new();
            for i in 0..n {
                burst.extend(request_frame(Command::Echo, first + i, sa, 0, &Echo));
            }
            assert!(burst.len() > 16 * 1024, "{} bytes", burst.len());
            // Send it in uneven pieces, with b's requests in between.
            for (k, piece) in burst.chunks(7_001).enumerate() {
                a.send_raw(piece).unwrap();
                if k % 2 == 0 {
                    assert_eq!(b.echo(sb).unwrap(), NtStatus::SUCCESS, "{transport}");
                }
            }
            for i in 0..n {
                let r = a.read_response().expect("answer");
                let h = Header::new_checked(&r.msg[..]).unwrap();
                assert_eq!(h.command(), Command::Echo, "{transport}");
                assert_eq!(h.message_id(), first + i, "{transport} round {round}");
                assert_eq!(r.status, NtStatus::SUCCESS);
            }
            first += n;
            assert!(
                b.is_silent(std::time::Duration::from_millis(50)),
                "{transport}"
            );
        }
    }
}
