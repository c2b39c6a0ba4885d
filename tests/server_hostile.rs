//! Hostile clients through the real binary: the authentication rate limiter
//! (failed logons answered after `auth-failure-delay`, others at once),
//! re-authentication that tries to change identity, and counters in `ctl
//! stats` and `/metrics`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::client::{Client, Login};
use common::pipes;
use common::{free_port, rss_kib, TestServer, ADMIN, USER};

/// Log in with a wrong password; returns how long the failing (second)
/// leg took to be answered, and checks it was LOGON_FAILURE.
fn failing_logon(addr: std::net::SocketAddr) -> Duration {
    let mut c = Client::connect(addr).expect("connect");
    // `setup` sends leg 1 (answered at once) then leg 2; time leg 2 by
    // timing the whole exchange minus leg 1's round trip, measured apart.
    let t0 = Instant::now();
    let err = c
        .login(Login::User(USER.0, "wrong password"), "GUESSER")
        .expect_err("a wrong password must fail");
    let took = t0.elapsed();
    assert!(
        err.to_string().contains("setup leg 2") && err.to_string().contains("LOGON_FAILURE"),
        "{err}"
    );
    took
}

fn stat(srv: &TestServer, key: &str) -> u64 {
    srv.ctl_json(&["stats"])[key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats has no {key}"))
}

#[test]
fn twenty_wrong_passwords_wait_the_delay_while_a_right_one_does_not() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let srv = TestServer::start(&["--metrics", &metrics]);
    assert_eq!(
        srv.ctl_json(&["config", "show"])
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["key"] == "auth-failure-delay"))
            .map(|r| (r["value"].clone(), r["source"].clone())),
        Some(("2s".into(), "automatic".into())),
        "auth-failure-delay is 2 s by default"
    );
    let addr = srv.addr;
    let guessers: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || failing_logon(addr)))
        .collect();
    // While the twenty wait, a correct login on its own connection answers
    // at once (well inside the delay).
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let mut good = Client::connect(addr).expect("connect");
    good.login(Login::User(ADMIN.0, ADMIN.1), "GOODPC")
        .expect("right password");
    let good_took = t0.elapsed();
    assert!(
        good_took < Duration::from_secs(1),
        "a correct login waited {good_took:?} behind failing ones"
    );
    for g in guessers {
        let took = g.join().expect("guesser thread");
        assert!(
            took >= Duration::from_secs(2),
            "a failed logon was answered after {took:?}, before the 2 s delay"
        );
    }
    assert_eq!(stat(&srv, "logons_failed"), 20);
    assert_eq!(stat(&srv, "logons_delayed"), 20);
    assert_eq!(stat(&srv, "logons_waiting"), 0);
    let mut s = TcpStream::connect(srv.here(&metrics)).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.contains("smbcore_logons_failed_total 20"), "{body}");
    assert!(body.contains("smbcore_logons_delayed_total 20"), "{body}");
}

#[test]
fn the_delay_changes_live_and_zero_disables_it() {
    let srv = TestServer::start(&["--threads", "2"]);
    let out = srv.ctl(&["config", "set", "auth-failure-delay", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = failing_logon(srv.addr);
    assert!(
        took < Duration::from_secs(1),
        "delay 0 still waited {took:?}"
    );
    assert_eq!(stat(&srv, "logons_delayed"), 0);
    assert_eq!(stat(&srv, "logons_failed"), 1);

    let out = srv.ctl(&["config", "set", "auth-failure-delay", "700ms"]);
    assert!(out.status.success());
    let took = failing_logon(srv.addr);
    assert!(
        took >= Duration::from_millis(700),
        "answered after {took:?}"
    );
    assert_eq!(stat(&srv, "logons_delayed"), 1);

    // Windows' range and step: 0 to 10,000 ms in steps of 100.
    for bad in ["11s", "150ms", "-1", "soon"] {
        let out = srv.ctl(&["config", "set", "auth-failure-delay", bad]);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("steps of 100ms"));
    }
}

#[test]
fn reauthentication_cannot_turn_a_null_session_into_an_administrator() {
    let srv = TestServer::start(&["--auth-failure-delay", "0"]);
    let mut c = Client::connect(srv.addr).expect("connect");
    let sid = c.login(Login::Anonymous, "NULLPC").expect("anonymous");
    let err = c
        .setup(sid, Login::User(ADMIN.0, ADMIN.1), "NULLPC")
        .expect_err("identity change refused");
    assert!(err.to_string().contains("ACCESS_DENIED"), "{err}");
    let rows = srv.sessions();
    assert!(
        rows.iter().all(|r| r["admin"] != true),
        "no administrator session appeared: {rows:?}"
    );
    // The refused session is gone (a failed authentication removes it).
    assert!(rows.iter().all(|r| r["computer"] != "NULLPC"), "{rows:?}");
}

// ----- memory a client can pin (pipe buffers) -------------------------------

/// One anonymous connection fills its pipes as far as the server lets it:
/// 64 pipes, requests written and never read. Returns what it holds when
/// every write is refused.
fn fill_one_connection(srv: &TestServer, tag: &str) -> (Client, u64, usize) {
    let mut c = Client::connect(srv.addr).expect("connect");
    let sid = c.login(Login::Anonymous, tag).expect("anonymous");
    let tree = c.tree_connect(sid, "IPC$").expect("io").expect("IPC$");
    let mut fids = Vec::new();
    loop {
        match pipes::open(&mut c, sid, tree) {
            Ok(f) => fids.push(f),
            Err(st) => {
                assert_eq!(st, smb_wire::NtStatus::INSUFFICIENT_RESOURCES);
                break;
            }
        }
        assert!(fids.len() <= 64, "more than 64 pipes on one connection");
    }
    assert_eq!(fids.len(), 64);
    let pdu = pipes::bind(&mut c, sid, tree, fids[0]);
    let mut batch = Vec::new();
    while batch.len() + pdu.len() <= 1_000_000 {
        batch.extend_from_slice(&pdu);
    }
    let mut accepted = 0usize;
    for &fid in &fids {
        for _ in 0..64 {
            match pipes::write(&mut c, sid, tree, fid, &batch) {
                smb_wire::NtStatus::SUCCESS => accepted += 1,
                st => {
                    assert!(
                        st == smb_wire::NtStatus::INSUFFICIENT_RESOURCES
                            || st == smb_wire::NtStatus(0xC000_00B0),
                        "refused with {st}"
                    );
                    break;
                }
            }
        }
    }
    (c, sid, accepted)
}

#[test]
fn an_anonymous_client_cannot_pin_more_than_its_bound_and_the_server_budget_holds() {
    let srv = TestServer::start(&["--threads", "1", "--auth-failure-delay", "0"]);
    let pid = srv.child.id();
    let rss0 = rss_kib(pid);
    let (a, _, writes) = fill_one_connection(&srv, "PINNER1");
    let held_one = stat(&srv, "client_memory_bytes");
    let rss1 = rss_kib(pid);
    eprintln!(
        "worst case, one anonymous connection: {writes} writes of ~1 MB accepted, \
         {held_one} bytes held in pipes, RSS {rss0} -> {rss1} KiB"
    );
    let per_conn = smb_session::engine::budget::PER_CONNECTION as u64;
    assert!(
        held_one > per_conn / 2,
        "the flood did fill the pipes ({held_one})"
    );
    assert!(
        held_one <= per_conn + 2 * 1024 * 1024,
        "one connection holds {held_one} bytes, over its bound"
    );

    // The server-wide budget, changed live, stops a second connection.
    let out = srv.ctl(&["config", "set", "memory-budget", "20MiB"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (b, _, _) = fill_one_connection(&srv, "PINNER2");
    let held_two = stat(&srv, "client_memory_bytes");
    eprintln!("two connections under a 20 MiB budget: {held_two} bytes held");
    assert!(held_two <= 20 * 1024 * 1024 + 2 * 1024 * 1024, "{held_two}");
    assert!(held_two > held_one, "the second connection got the rest");

    // Everything a connection held goes with it.
    drop(a);
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stat(&srv, "client_memory_bytes") != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stat(&srv, "client_memory_bytes"), 0);
}
