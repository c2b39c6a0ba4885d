//! The `smbcore` server as an operator sees it: `smbcore ctl` listings and
//! disconnects (the Q153070 seed scenario), live autodisconnect, config
//! layering, stats and metrics, limits, the pre-auth deadline, shutdown and
//! operator errors. Each test starts the real binary on a free loopback port.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::client::{Client, Login};
use common::{TestServer, ADMIN, USER};
use smb_wire::NtStatus;

fn sid_hex(sid: u64) -> String {
    format!("{sid:#018x}")
}

fn find(rows: &[serde_json::Value], sid: u64) -> Option<&serde_json::Value> {
    rows.iter().find(|r| r["id"] == sid_hex(sid))
}

#[test]
fn sessions_listing_shows_every_session_with_its_ipc_tree() {
    let srv = TestServer::start(&["--threads", "2"]);
    let mut a = Client::connect(srv.addr).unwrap();
    let anon = a.login(Login::Anonymous, "ANONPC").unwrap();
    a.tree_connect(anon, "IPC$").unwrap().unwrap();
    let mut u = Client::connect(srv.addr).unwrap();
    let alice = u.login(Login::User(USER.0, USER.1), "ALICEPC").unwrap();
    u.tree_connect(alice, "IPC$").unwrap().unwrap();

    let rows = srv.sessions();
    let ra = find(&rows, anon).expect("anonymous session listed");
    assert_eq!(ra["user"], "");
    assert_eq!(ra["computer"], "ANONPC");
    assert_eq!(ra["client"], srv.client_ip().as_str());
    assert_eq!(ra["dialect"], "2.1");
    assert_eq!(ra["trees"], serde_json::json!(["IPC$"]));
    let ru = find(&rows, alice).expect("user session listed");
    assert!(
        ru["user"].as_str().unwrap().ends_with(USER.0),
        "user {:?}",
        ru["user"]
    );
    assert_eq!(ru["computer"], "ALICEPC");
    assert_eq!(ru["trees"], serde_json::json!(["IPC$"]));
    // Filters.
    let only = srv.ctl_json(&["sessions", "--computer", "alicepc"]);
    assert_eq!(only.as_array().unwrap().len(), 1);
    let none = srv.ctl_json(&["sessions", "--user", "nobody"]);
    assert!(none.as_array().unwrap().is_empty());
    // The table form names the columns an operator expects.
    let out = srv.ctl(&["sessions"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for col in ["SESSION", "CLIENT", "COMPUTER", "USER", "TREES", "IDLE"] {
        assert!(text.contains(col), "{text}");
    }
    assert!(text.contains("ALICEPC") && text.contains("IPC$"), "{text}");
}

/// Q153070: a session whose only remaining tree is IPC$ must be found and
/// removed by computer name, and (separately) by user.
#[test]
fn seed_scenario_ipc_only_session_is_disconnectable_by_computer_and_by_user() {
    let srv = TestServer::start(&[]);
    for by in ["computer", "user"] {
        let mut c = Client::connect(srv.addr).unwrap();
        let sid = c.login(Login::User(USER.0, USER.1), "WKSTA51").unwrap();
        let ipc = c.tree_connect(sid, "IPC$").unwrap().unwrap();
        // A second connect (the "share" of the article), then its disconnect:
        // IPC$ remains, as in the article.
        let other = c.tree_connect(sid, "IPC$").unwrap().unwrap();
        assert_ne!(ipc, other);
        assert_eq!(c.tree_disconnect(sid, other).unwrap(), NtStatus::SUCCESS);
        let rows = srv.sessions();
        assert_eq!(
            find(&rows, sid).unwrap()["trees"],
            serde_json::json!(["IPC$"])
        );

        let arg = if by == "computer" { "WKSTA51" } else { USER.0 };
        let out = srv.ctl(&["disconnect", &format!("--{by}"), arg]);
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("disconnected 1 session"),
            "{out:?}"
        );
        assert!(find(&srv.sessions(), sid).is_none());
        // Its last session gone, the connection is closed.
        assert!(c.is_closed(Duration::from_secs(5)));
    }
}

#[test]
fn disconnect_by_session_id_and_client_ip_and_not_found() {
    let srv = TestServer::start(&[]);
    let mut c1 = Client::connect(srv.addr).unwrap();
    let s1 = c1.login(Login::Anonymous, "PC1").unwrap();
    let s1b = c1.login(Login::Anonymous, "PC1").unwrap();
    let out = srv.ctl(&["disconnect", "--session", &sid_hex(s1)]);
    assert!(out.status.success(), "{out:?}");
    // The other session on that connection is untouched and usable.
    assert_eq!(c1.poke(s1b).unwrap(), NtStatus::BAD_NETWORK_NAME);
    assert_eq!(c1.poke(s1).unwrap(), NtStatus::USER_SESSION_DELETED);
    // By client address: everything from this host (127.0.0.1) goes.
    let mut c2 = Client::connect(srv.addr).unwrap();
    let _s2 = c2.login(Login::Anonymous, "PC2").unwrap();
    let out = srv.ctl(&["disconnect", "--client", &srv.client_ip()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("disconnected 2 sessions"));
    assert!(srv.sessions().is_empty());
    // No match: distinct outcome, non-zero exit.
    let out = srv.ctl(&["disconnect", "--user", "nobody"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no session matched"));
    // A stale id (right shape, gone) is "not found" too.
    let out = srv.ctl(&["disconnect", "--session", &sid_hex(s1)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn live_autodisconnect_change_reaps_idle_sessions_within_a_tick() {
    let srv = TestServer::start(&["--autodisconnect", "60"]);
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut c = Client::connect(srv.addr).unwrap();
        let sid = c.login(Login::Anonymous, &format!("PC{i}")).unwrap();
        c.tree_connect(sid, "IPC$").unwrap().unwrap();
        clients.push(c);
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(srv.sessions().len(), 20);
    // Every session has been idle for > 300 ms: the change reaps them at once.
    let t0 = Instant::now();
    let out = srv.ctl(&["config", "set", "autodisconnect", "300ms"]);
    assert!(out.status.success(), "{out:?}");
    let rows = srv.wait_sessions(Duration::from_secs(5), |r| r.is_empty());
    assert!(rows.is_empty(), "still there: {rows:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    for mut c in clients {
        assert!(c.is_closed(Duration::from_secs(5)));
    }
    let stats = srv.ctl_json(&["stats"]);
    assert_eq!(stats["sessions_timed_out"], 20);
    assert_eq!(stats["lateness_us"]["count"], 20);
}

#[test]
fn longer_autodisconnect_defers_and_echo_does_not_count_but_requests_do() {
    let srv = TestServer::start(&["--autodisconnect", "600ms"]);
    let mut echo = Client::connect(srv.addr).unwrap();
    let se = echo.login(Login::Anonymous, "ECHOER").unwrap();
    let mut busy = Client::connect(srv.addr).unwrap();
    let sb = busy.login(Login::Anonymous, "BUSY").unwrap();
    let start = Instant::now();
    // For 1.5 s: ECHO on one (not activity), real requests on the other.
    while start.elapsed() < Duration::from_millis(1500) {
        if echo.echo(se).is_err() {
            break;
        }
        assert_eq!(busy.poke(sb).unwrap(), NtStatus::BAD_NETWORK_NAME);
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = srv.sessions();
    assert!(
        find(&rows, se).is_none(),
        "ECHO kept the session alive: {rows:?}"
    );
    assert!(
        find(&rows, sb).is_some(),
        "requests did not keep the session: {rows:?}"
    );
    // Longer value: the busy session now idles without being reaped at 600 ms.
    let out = srv.ctl(&["config", "set", "autodisconnect", "5s"]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(1200));
    assert!(find(&srv.sessions(), sb).is_some());
    // -1 = never; then 0 (as soon as idle).
    assert!(srv
        .ctl(&["config", "set", "autodisconnect", "-1"])
        .status
        .success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(find(&srv.sessions(), sb).is_some());
    assert!(srv
        .ctl(&["config", "set", "autodisconnect", "0"])
        .status
        .success());
    let rows = srv.wait_sessions(Duration::from_secs(3), |r| find(r, sb).is_none());
    assert!(find(&rows, sb).is_none());
}

#[test]
fn config_show_set_reset_layers_and_keeps_other_keys_automatic() {
    let dir = common::TempDir::new("cfg");
    let cfg = dir.join("smbcore.toml");
    common::write_file(&cfg, "pre-auth-timeout = \"20s\"\n");
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap(), "--autodisconnect", "5"]);
    let show = srv.ctl_json(&["config", "show"]);
    let get = |v: &serde_json::Value, k: &str| -> serde_json::Value {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("key {k} missing"))
    };
    assert_eq!(get(&show, "autodisconnect")["value"], "5");
    assert_eq!(get(&show, "autodisconnect")["source"], "command-line");
    assert_eq!(get(&show, "pre-auth-timeout")["source"], "config-file");
    assert_eq!(get(&show, "credit-cap")["explicit"], false);
    // Setting one key leaves every other key as it was (Q153070).
    assert!(srv
        .ctl(&["config", "set", "autodisconnect", "2h"])
        .status
        .success());
    let after = srv.ctl_json(&["config", "show"]);
    for row in after.as_array().unwrap() {
        let k = row["key"].as_str().unwrap();
        if k != "autodisconnect" {
            assert_eq!(row, &get(&show, k), "{k} changed");
        }
    }
    assert_eq!(get(&after, "autodisconnect")["source"], "runtime");
    // Reset returns it to automatic (15 minutes), not to the command line.
    let out = srv.ctl(&["config", "reset", "autodisconnect"]);
    assert!(out.status.success(), "{out:?}");
    let reset = srv.ctl_json(&["config", "show"]);
    assert_eq!(get(&reset, "autodisconnect")["value"], "15");
    assert_eq!(get(&reset, "autodisconnect")["explicit"], false);
    // Errors name the accepted forms; nothing changes.
    let out = srv.ctl(&["config", "set", "autodisconnect", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("250ms"),
        "{out:?}"
    );
    let out = srv.ctl(&["config", "set", "threads", "8"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("restart"),
        "{out:?}"
    );
    let out = srv.ctl(&["config", "set", "nonsense", "1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("known keys"),
        "{out:?}"
    );
    // The table form says explicit/automatic.
    let text = String::from_utf8_lossy(&srv.ctl(&["config", "show"]).stdout).to_string();
    assert!(
        text.contains("automatic") && text.contains("explicit"),
        "{text}"
    );
}

#[test]
fn stats_and_prometheus_metrics() {
    let mport = common::free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let srv = TestServer::start(&["--metrics", &maddr, "--autodisconnect", "200ms"]);
    let mut c = Client::connect(srv.addr).unwrap();
    let sid = c.login(Login::Anonymous, "M").unwrap();
    c.tree_connect(sid, "IPC$").unwrap().unwrap();
    assert!(c.is_closed(Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(100));
    let stats = srv.ctl_json(&["stats"]);
    assert_eq!(stats["sessions_timed_out"], 1);
    assert_eq!(stats["sessions"], 0);
    assert!(stats["lateness_us"]["max"].as_u64().unwrap() < 1_000_000);
    let text = String::from_utf8_lossy(&srv.ctl(&["stats"]).stdout).to_string();
    assert!(text.contains("p99"), "{text}");

    let mut s = TcpStream::connect(srv.here(&maddr)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    assert!(
        body.contains("smbcore_sessions_timed_out_total 1\n"),
        "{body}"
    );
    assert!(
        body.contains("smbcore_reap_lateness_seconds{quantile=\"0.99\"}"),
        "{body}"
    );
}

#[test]
fn max_connections_refuses_new_work_and_keeps_existing_sessions() {
    let srv = TestServer::start(&["--max-connections", "3", "--threads", "1"]);
    let mut held = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(srv.addr).unwrap();
        let sid = c.login(Login::Anonymous, &format!("H{i}")).unwrap();
        held.push((c, sid));
    }
    // The fourth is closed at once.
    let refused = Client::connect(srv.addr);
    assert!(refused.is_err(), "a fourth connection was served");
    for (c, sid) in held.iter_mut() {
        assert_eq!(c.poke(*sid).unwrap(), NtStatus::BAD_NETWORK_NAME);
    }
    assert_eq!(srv.ctl_json(&["stats"])["connections_refused"], 1);
    // Raised live: a new connection is accepted.
    assert!(srv
        .ctl(&["config", "set", "max-connections", "10"])
        .status
        .success());
    assert!(Client::connect(srv.addr).is_ok());
}

#[test]
fn pre_auth_deadline_closes_silent_and_trickling_connections_without_slowing_others() {
    let srv = TestServer::start(&["--pre-auth-timeout", "700ms"]);
    // 1,000 silent connections and one that trickles a byte at a time.
    let silent: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(srv.addr).unwrap())
        .collect();
    let mut trickle = TcpStream::connect(srv.addr).unwrap();
    let t0 = Instant::now();
    // A legitimate client is served at once meanwhile.
    let mut c = Client::connect(srv.addr).unwrap();
    let sid = c.login(Login::Anonymous, "LEGIT").unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let _ = trickle.write_all(&[0]);
    std::thread::sleep(Duration::from_millis(200));
    let _ = trickle.write_all(&[0]);
    // After the deadline, all of them are closed.
    std::thread::sleep(Duration::from_millis(1200));
    let mut closed = 0;
    for mut s in silent.into_iter().chain(std::iter::once(trickle)) {
        if common::closed_within(&mut s, Duration::from_secs(2)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 1001);
    assert!(
        srv.ctl_json(&["stats"])["pre_auth_timeouts"]
            .as_u64()
            .unwrap()
            >= 1001
    );
    // The authenticated session is untouched.
    assert_eq!(c.poke(sid).unwrap(), NtStatus::BAD_NETWORK_NAME);
}

#[test]
fn sigterm_shuts_down_cleanly_and_clients_see_the_close() {
    let mut srv = TestServer::start(&[]);
    let mut c = Client::connect(srv.addr).unwrap();
    let _sid = c.login(Login::User(ADMIN.0, ADMIN.1), "ADM").unwrap();
    let t0 = Instant::now();
    let st = srv.terminate();
    assert!(st.success(), "exit status {st:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(c.is_closed(Duration::from_secs(2)));
    assert!(TcpStream::connect(srv.addr).is_err());
}

#[test]
fn operator_errors_are_one_clear_line() {
    let bin = common::smbcore_bin();
    // Port in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = std::process::Command::new(&bin)
        .args(["serve", "--listen", &addr, "--threads", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.lines().count() == 1,
        "{err}"
    );
    // Bad value.
    let out = std::process::Command::new(&bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--autodisconnect",
            "soon",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("250ms"));
    // Unreadable users file.
    let out = std::process::Command::new(&bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "/nonexistent/users.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read users file"));
    // No server behind the admin socket.
    let out = std::process::Command::new(&bin)
        .args([
            "ctl",
            "--admin-socket",
            "/nonexistent/admin.sock",
            "sessions",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no smbcore server answers"));
}

#[test]
fn session_and_frame_limits_refuse_new_work_and_spare_existing_sessions() {
    let srv = TestServer::start(&["--threads", "1"]);
    assert!(srv
        .ctl(&["config", "set", "max-sessions-per-connection", "2"])
        .status
        .success());
    let mut c = Client::connect(srv.addr).unwrap();
    let s1 = c.login(Login::Anonymous, "LIM").unwrap();
    let s2 = c.login(Login::Anonymous, "LIM").unwrap();
    let third = c.login(Login::Anonymous, "LIM");
    assert!(third.is_err(), "a third session was accepted");
    assert_eq!(c.poke(s1).unwrap(), NtStatus::BAD_NETWORK_NAME);
    assert_eq!(c.poke(s2).unwrap(), NtStatus::BAD_NETWORK_NAME);

    // A connection that has not logged in may not send a frame over 64 KiB
    // (here 100 KiB): it is dropped before anything is buffered.
    let mut pre = TcpStream::connect(srv.addr).unwrap();
    pre.write_all(&[0x00, 0x01, 0x90, 0x00, 0xFE, b'S', b'M', b'B'])
        .unwrap();
    assert!(common::closed_within(&mut pre, Duration::from_secs(5)));

    // A frame that claims more than the maximum frame size: that connection
    // is dropped before anything is buffered; the other one goes on.
    let mut bad = TcpStream::connect(srv.addr).unwrap();
    bad.write_all(&[0x00, 0xFF, 0xFF, 0xFF, 0xFE, b'S', b'M', b'B'])
        .unwrap();
    assert!(common::closed_within(&mut bad, Duration::from_secs(5)));
    assert_eq!(c.poke(s1).unwrap(), NtStatus::BAD_NETWORK_NAME);
    assert!(
        srv.ctl_json(&["stats"])["protocol_errors"]
            .as_u64()
            .unwrap()
            >= 1
    );
}
