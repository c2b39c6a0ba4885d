//! Fault tests through the real binary: clients that reset in the middle of
//! each setup step, half-close, never read, trickle bytes, or die with
//! thousands of sessions open. After each fault nothing is left behind (no
//! connection, session or tree in `ctl stats`, no file descriptor beyond
//! the server's baseline in /proc/PID/fd) and a bystander session keeps
//! working.

mod common;

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::client::{negotiate_body, request_frame, Client, Login};
use common::{fd_count, rss_kib, TestServer};
use smb_wire::header::Command as Cmd;
use smb_wire::NtStatus;

fn stats(srv: &TestServer) -> serde_json::Value {
    srv.ctl_json(&["stats"])
}

/// Wait (bounded) until the server holds exactly `conns` connections,
/// `sessions` sessions and the baseline of descriptors plus `conns`.
fn assert_back_to(srv: &TestServer, baseline_fds: usize, conns: u64, sessions: u64, what: &str) {
    let pid = srv.child.id();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = stats(srv);
        let fds = fd_count(pid);
        let ok = s["connections"] == conns
            && s["sockets"] == conns
            && s["sessions"] == sessions
            && s["trees"].as_u64() <= Some(sessions)
            && fds == baseline_fds + conns as usize;
        if ok {
            return;
        }
        if Instant::now() > deadline {
            let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| {
                            let l = std::fs::read_link(e.path()).unwrap_or_default();
                            format!("{}->{}", e.file_name().to_string_lossy(), l.display())
                        })
                        .collect()
                })
                .unwrap_or_default();
            eprintln!("server fds: {links:?}");
            panic!(
                "after {what}: connections {} (want {conns}), sockets {} (want {conns}), \
                 sessions {} (want {sessions}), trees {}, fds {fds} (want {})",
                s["connections"],
                s["sockets"],
                s["sessions"],
                s["trees"],
                baseline_fds + conns as usize
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A bystander with an IPC$ tree, and the server's baseline descriptor
/// count (the bystander's connection excluded).
fn with_bystander(srv: &TestServer) -> (Client, u64, usize) {
    let mut b = Client::connect(srv.addr).expect("bystander");
    let sid = b.login(Login::Anonymous, "BYSTANDER").expect("login");
    b.tree_connect(sid, "IPC$").expect("io").expect("IPC$");
    // The server is fully up (every shard's poller made) and the admin
    // connection of this call is gone once the count stops moving.
    let _ = stats(srv);
    let pid = srv.child.id();
    let mut last = fd_count(pid);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = fd_count(pid);
        if now == last {
            break;
        }
        last = now;
    }
    (b, sid, last - 1)
}

fn assert_bystander_ok(b: &mut Client, sid: u64) {
    assert_eq!(b.echo(sid).expect("echo"), NtStatus::SUCCESS);
    assert_eq!(b.poke(sid).expect("poke"), NtStatus::BAD_NETWORK_NAME);
}

/// Close with a TCP reset (SO_LINGER 0).
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(Shutdown::Both);
}

#[test]
fn resets_in_the_middle_of_every_setup_step_leave_nothing_behind() {
    let srv = TestServer::start(&["--threads", "2", "--auth-failure-delay", "0"]);
    let (mut b, bsid, base) = with_bystander(&srv);
    // Each step: how far the client gets before it resets.
    for step in 0..7 {
        let mut c = Client::connect_raw(srv.addr).expect("connect");
        let neg = request_frame(Cmd::Negotiate, 0, 0, 0, &negotiate_body());
        match step {
            0 => {}
            // Half a NEGOTIATE frame.
            1 => c.send_raw(&neg[..20]).unwrap(),
            // NEGOTIATE sent, response not read.
            2 => c.send_raw(&neg).unwrap(),
            _ => {
                let mut c2 = Client::connect(srv.addr).expect("negotiate");
                match step {
                    // Mid-SESSION_SETUP: leg 1 answered, leg 2 never sent.
                    3 => {
                        let first = request_frame(
                            Cmd::SessionSetup,
                            1,
                            0,
                            0,
                            &smb_wire::msg::session_setup::SessionSetupRequestRepr {
                                security_mode: 1,
                                security_buffer: &smb_auth::SpnegoInitiator::new(
                                    smb_auth::ntlm::NtlmInitiator::anonymous(),
                                )
                                .initial_token(),
                                ..Default::default()
                            },
                        );
                        c2.send_raw(&first).unwrap();
                        let r = c2.read_response().unwrap();
                        assert_eq!(r.status, NtStatus::MORE_PROCESSING_REQUIRED);
                    }
                    // Logged in.
                    4 => {
                        c2.login(Login::Anonymous, "RESETPC").unwrap();
                    }
                    // With an IPC$ tree.
                    5 => {
                        let sid = c2.login(Login::Anonymous, "RESETPC").unwrap();
                        c2.tree_connect(sid, "IPC$").unwrap().unwrap();
                    }
                    // Several sessions, one mid-request.
                    _ => {
                        for _ in 0..3 {
                            let sid = c2.login(Login::Anonymous, "RESETPC").unwrap();
                            c2.tree_connect(sid, "IPC$").unwrap().unwrap();
                        }
                        c2.send_raw(&neg[..10]).unwrap();
                    }
                }
                reset(c2.stream());
                drop(c2);
                reset(c.stream());
                drop(c);
                assert_back_to(&srv, base, 1, 1, &format!("a reset at step {step}"));
                assert_bystander_ok(&mut b, bsid);
                continue;
            }
        }
        reset(c.stream());
        drop(c);
        assert_back_to(&srv, base, 1, 1, &format!("a reset at step {step}"));
        assert_bystander_ok(&mut b, bsid);
    }
}

#[test]
fn a_half_close_after_negotiate_closes_the_connection() {
    let srv = TestServer::start(&["--threads", "1"]);
    let (mut b, bsid, base) = with_bystander(&srv);
    let mut c = Client::connect(srv.addr).expect("negotiate");
    c.stream().shutdown(Shutdown::Write).expect("half-close");
    assert!(
        c.is_closed(Duration::from_secs(5)),
        "the server closes its side"
    );
    assert_back_to(&srv, base, 1, 1, "a half-close after NEGOTIATE");
    // Half-close with a session: the session goes with the connection.
    let mut c = Client::connect(srv.addr).expect("negotiate");
    c.login(Login::Anonymous, "HALFPC").unwrap();
    c.stream().shutdown(Shutdown::Write).expect("half-close");
    assert!(c.is_closed(Duration::from_secs(5)));
    assert_back_to(&srv, base, 1, 1, "a half-close with a session");
    assert_bystander_ok(&mut b, bsid);
}

#[test]
fn a_client_that_never_reads_is_held_to_a_bounded_queue() {
    let srv = TestServer::start(&["--threads", "1"]);
    let pid = srv.child.id();
    let (mut b, bsid, base) = with_bystander(&srv);
    let mut c = Client::connect(srv.addr).expect("connect");
    let sid = c.login(Login::Anonymous, "NOREAD").unwrap();
    let rss0 = rss_kib(pid);
    // ECHOs whose answers are never read, 1,000 per write. The server
    // answers until this connection's unsent output passes its high-water
    // mark (4 MiB, on top of what the kernel's socket buffers took), then
    // stops reading it, so the client's writes end up blocking.
    let mut w = c.stream().try_clone().expect("clone");
    w.set_nonblocking(true).unwrap();
    let mut mid = c.next_message_id();
    let mut pending: Vec<u8> = Vec::new();
    let mut sent = 0usize;
    let mut blocked_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if pending.is_empty() {
            for _ in 0..1000 {
                pending.extend_from_slice(&request_frame(Cmd::Echo, mid, sid, 0, &Four));
                mid += 1;
            }
        }
        match w.write(&pending) {
            Ok(n) => {
                pending.drain(..n);
                sent += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(1) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write failed after {sent} bytes: {e}"),
        }
    }
    assert!(
        blocked_since.is_some(),
        "the server kept reading a peer that never reads ({sent} bytes sent)"
    );
    let s = stats(&srv);
    let queued = s["output_queued_bytes"].as_u64().unwrap();
    let rss1 = rss_kib(pid);
    eprintln!(
        "never-reading client: {sent} bytes of ECHO requests sent before its writes blocked; \
         server queue {queued} bytes; server RSS {rss0} -> {rss1} KiB"
    );
    assert!(
        queued >= 4 * 1024 * 1024,
        "stopped before the mark ({queued})"
    );
    assert!(
        queued <= 4 * 1024 * 1024 + 4096,
        "{queued} bytes queued for a peer that does not read"
    );
    assert!(
        rss1 < rss0 + 16 * 1024,
        "the server grew by {} KiB for one client that does not read",
        rss1.saturating_sub(rss0)
    );
    assert_bystander_ok(&mut b, bsid);
    reset(c.stream());
    drop(w);
    drop(c);
    assert_back_to(&srv, base, 1, 1, "a reader that never reads");
    assert_eq!(stats(&srv)["output_queued_bytes"], 0);
}

struct Four;
impl smb_wire::msg::EmitBody for Four {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&[4, 0, 0, 0]);
    }
}

#[test]
fn a_thousand_trickling_connections_are_closed_at_the_pre_auth_deadline() {
    let srv = TestServer::start(&["--threads", "2", "--pre-auth-timeout", "3s"]);
    let (mut b, bsid, base) = with_bystander(&srv);
    let neg = request_frame(Cmd::Negotiate, 0, 0, 0, &negotiate_body());
    let mut conns: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let s = TcpStream::connect(srv.addr).expect("connect");
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    // One byte per connection per second, until the server closes them.
    let mut open = conns.len();
    let mut i = 0usize;
    while open > 0 && start.elapsed() < Duration::from_secs(12) {
        open = 0;
        for s in &mut conns {
            match s.write(&neg[i % neg.len()..i % neg.len() + 1]) {
                Ok(_) => open += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => open += 1,
                Err(_) => {}
            }
        }
        i += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let took = start.elapsed();
    eprintln!("1,000 trickling connections all closed after {took:?}");
    assert_eq!(
        open, 0,
        "trickling connections outlived the pre-auth deadline"
    );
    assert!(took >= Duration::from_secs(3), "closed before the deadline");
    drop(conns);
    assert_back_to(&srv, base, 1, 1, "1,000 trickling connections");
    assert_bystander_ok(&mut b, bsid);
    assert!(stats(&srv)["pre_auth_timeouts"].as_u64() >= Some(1000));
}

#[test]
fn kill_9_of_a_load_generator_with_10000_sessions_leaves_nothing_behind() {
    let srv = TestServer::start(&["--autodisconnect", "60"]);
    let (mut b, bsid, base) = with_bystander(&srv);
    let mut gen = Command::new(env!("CARGO_BIN_EXE_smb-loadgen"))
        .args([
            "--target",
            &srv.addr.to_string(),
            "--sessions",
            "10000",
            "--autodisconnect",
            "60m",
            "--hold",
            "1s",
            "--probes",
            "0",
            "--baseline",
            "0s",
            "--no-progress",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smb-loadgen");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = stats(&srv)["sessions"].as_u64().unwrap_or(0);
        if peak >= 10_001 {
            break;
        }
        if let Ok(Some(st)) = gen.try_wait() {
            panic!("smb-loadgen exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(peak >= 10_001, "only {peak} sessions opened");
    let fds_full = fd_count(srv.child.id());
    gen.kill().expect("kill -9");
    let _ = gen.wait();
    let t0 = Instant::now();
    assert_back_to(&srv, base, 1, 1, "kill -9 of a load generator");
    eprintln!(
        "kill -9 with {} sessions ({fds_full} server fds): all gone in {:?}",
        peak - 1,
        t0.elapsed()
    );
    assert_bystander_ok(&mut b, bsid);
}
