//! Samba's `rpcclient` (4.17) over srvsvc on IPC$ against `smbcore serve`:
//! srvinfo, netshareenumall, netsessenum, netconnenum as an administrator;
//! the session calls refused to anonymous and plain users; and the seed
//! scenario (`../shared/seed/Q153070.txt`): a plain user's session that
//! keeps only IPC$ open is listed and removed with `netsessdel`, by client
//! computer name or by address and user, with one shard and with the
//! default shard count (where srvsvc session calls gather from every shard
//! through the runtime).
//!
//! The session holder is impacket (`tests/clients/impacket_client.py hold`),
//! which logs in with a chosen workstation name, connects IPC$ and then waits
//! silently until the server drops it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    client_script, have, have_impacket, output_text, run_capture, TestServer, ADMIN,
    IMPACKET_PYTHON, USER,
};

/// `rpcclient 127.0.0.1 -p PORT` as `who` (None: anonymous) running `cmds`;
/// `debug` adds `-d 10` (NDR dumps of every call). rpcclient's command
/// parser treats `\` as an escape, so a `\\name` argument is written with
/// four backslashes.
fn rpcclient(
    server: &TestServer,
    who: Option<(&str, &str)>,
    cmds: &str,
    debug: bool,
) -> (bool, String) {
    let mut cmd = Command::new("rpcclient");
    cmd.arg(server.host())
        .arg("-p")
        .arg(server.port.to_string());
    match who {
        Some((u, p)) => cmd.arg("-U").arg(format!("{u}%{p}")),
        None => cmd.arg("-N").arg("-U").arg(""),
    };
    if debug {
        cmd.arg("-d").arg("10");
    }
    cmd.arg("-c").arg(cmds);
    let out = run_capture(&mut cmd, Duration::from_secs(30));
    (out.status.success(), output_text(&out))
}

/// A session held open by impacket: logged in as `user` from workstation
/// `name`, IPC$ connected, nothing else.
struct Holder {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Holder {
    fn start(server: &TestServer, user: (&str, &str), name: &str) -> Holder {
        let mut child = Command::new(IMPACKET_PYTHON)
            .env("SMBCORE_TEST_HOST", server.host())
            .arg(client_script("impacket_client.py"))
            .args(["hold", &server.port.to_string(), user.0, user.1, name, "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start impacket holder");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut h = Holder {
            child,
            lines: rx,
            name: name.to_string(),
        };
        h.expect_line("READY", Duration::from_secs(20));
        h
    }

    fn expect_line(&mut self, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == want => return,
                Ok(l) => assert!(!l.starts_with("ERROR"), "holder {}: {l}", self.name),
                Err(_) => panic!("holder {} never printed {want}", self.name),
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn session_of<'a>(rows: &'a [serde_json::Value], computer: &str) -> Option<&'a serde_json::Value> {
    rows.iter().find(|r| r["computer"] == computer)
}

#[test]
fn rpcclient_admin_srvinfo_shares_sessions_connections() {
    if !have("rpcclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1"]);
    let (ok, text) = rpcclient(
        &server,
        Some(ADMIN),
        "srvinfo; netshareenumall; netsessenum; netconnenum",
        false,
    );
    assert!(ok, "{text}");
    assert!(!text.contains("result was"), "a call failed:\n{text}");
    assert!(
        text.contains("SMBCORE"),
        "srvinfo names the server:\n{text}"
    );
    assert!(text.contains("platform_id     :\t500"), "{text}");
    assert!(text.contains("netname: IPC$"), "{text}");
    // rpcclient's own session is the only one.
    assert!(text.contains("Received 1 entries."), "{text}");
}

#[test]
fn session_calls_are_refused_to_anonymous_and_plain_users() {
    if !have("rpcclient") {
        return;
    }
    let server = TestServer::start(&["--threads", "1"]);
    for who in [None, Some(USER)] {
        let (_, text) = rpcclient(&server, who, "netsessenum", false);
        assert!(
            text.contains("result was WERR_ACCESS_DENIED"),
            "netsessenum as {who:?}:\n{text}"
        );
        let (_, text) = rpcclient(
            &server,
            who,
            &format!("netsessdel \\\\\\\\{}", server.client_ip()),
            false,
        );
        assert!(
            text.contains("result was WERR_ACCESS_DENIED"),
            "netsessdel as {who:?}:\n{text}"
        );
        // What anybody may ask still works.
        let (ok, text) = rpcclient(&server, who, "srvinfo; netshareenumall 1", false);
        assert!(ok && text.contains("netname: IPC$"), "{who:?}:\n{text}");
    }
    let (ok, text) = rpcclient(&server, Some(ADMIN), "netsessenum", false);
    assert!(ok && !text.contains("result was"), "{text}");
}

/// The seed scenario on `threads` shards (None: the default).
fn seed_scenario(threads: Option<&str>) {
    if !have("rpcclient") || !have_impacket() {
        return;
    }
    let args: Vec<&str> = match threads {
        Some(t) => vec!["--threads", t],
        None => vec![],
    };
    let server = TestServer::start(&args);
    let mut a = Holder::start(&server, USER, "SEEDPC1");
    let mut b = Holder::start(&server, USER, "SEEDPC2");
    let mut c = Holder::start(&server, USER, "SEEDPC3");

    // Each is a plain user's session whose only tree is IPC$.
    let rows = server.sessions();
    for h in [&a, &b, &c] {
        let row =
            session_of(&rows, &h.name).unwrap_or_else(|| panic!("{} listed: {rows:?}", h.name));
        assert_eq!(row["user"], USER.0);
        assert_eq!(row["admin"], false);
        assert_eq!(row["trees"], serde_json::json!(["IPC$"]), "{row}");
    }

    // The administrator sees them over srvsvc, wherever they live.
    let (ok, text) = rpcclient(
        &server,
        Some(ADMIN),
        "netsessenum; netconnenum 1 IPC$; netconnenum 1 \\\\\\\\SEEDPC2",
        true,
    );
    assert!(ok, "{text}");
    for h in [&a, &b, &c] {
        assert!(
            text.contains(&format!("client                   : '{}'", h.name)),
            "netsessenum shows {}:\n{text}",
            h.name
        );
    }
    assert!(
        text.contains("user                     : 'alice'"),
        "{text}"
    );
    // netconnenum by share names each tree by its client, by client names
    // each tree by its share (Samba's IDL calls the netname field "share").
    assert!(
        text.contains("share                    : 'SEEDPC3'"),
        "{text}"
    );
    assert!(text.contains("share                    : 'IPC$'"), "{text}");
    assert!(!text.contains("result was"), "{text}");

    // By client computer name.
    let (ok, text) = rpcclient(&server, Some(ADMIN), "netsessdel \\\\\\\\SEEDPC2", false);
    assert!(ok && !text.contains("result was"), "{text}");
    b.expect_line("DROPPED", Duration::from_secs(10));
    let rows = server.wait_sessions(Duration::from_secs(5), |r| {
        session_of(r, "SEEDPC2").is_none()
    });
    assert!(session_of(&rows, "SEEDPC2").is_none(), "{rows:?}");
    assert!(session_of(&rows, "SEEDPC1").is_some() && session_of(&rows, "SEEDPC3").is_some());

    // By client address and user: both remaining alice sessions go, the
    // administrator's own (rpcclient) session from the same address stays
    // until rpcclient exits normally.
    let (ok, text) = rpcclient(
        &server,
        Some(ADMIN),
        &format!(
            "netsessdel \\\\\\\\{} alice; netsessenum",
            server.client_ip()
        ),
        false,
    );
    assert!(ok && !text.contains("result was"), "{text}");
    assert!(
        text.contains("Received 1 entries."),
        "only rpcclient's own session:\n{text}"
    );
    a.expect_line("DROPPED", Duration::from_secs(10));
    c.expect_line("DROPPED", Duration::from_secs(10));
    let rows = server.wait_sessions(Duration::from_secs(5), |r| r.is_empty());
    assert!(rows.is_empty(), "{rows:?}");
}

#[test]
fn seed_scenario_netsessdel_removes_an_ipc_only_session_one_shard() {
    seed_scenario(Some("1"));
}

#[test]
fn seed_scenario_netsessdel_removes_an_ipc_only_session_default_shards() {
    seed_scenario(None);
}
