//! Real clients nobody here wrote, through the AF_XDP lab (issue 14):
//! impacket's login and listShares on each SMB2 dialect, the smbtorture
//! tests that pass over kernel TCP (tests/real_clients_smbtorture.rs), and
//! the seed scenario (Q153070: IPC$-only sessions removed by computer name,
//! and by client address, while another client's sessions stay), each run
//! from the lab's client namespace against `smbcore serve --transport xdp`
//! in its server namespace, TCP terminated in user space.

mod common;

use std::time::Duration;

use common::lab::{impacket, unavailable, Lab, LabHolder, LabServer, LAB_PORT};
use common::{have, have_impacket, output_text, run_capture, ADMIN, USER};

fn lab_or_skip() -> bool {
    if let Some(why) = unavailable() {
        eprintln!("skipped: no XDP lab here ({why})");
        return false;
    }
    true
}

fn xdp_server(lab: &Lab) -> LabServer {
    LabServer::start(lab, "xdp", None, &["--threads", "1"])
}

/// `impacket_client.py login PORT USER PASS [DIALECT]` from the client
/// namespace; its output lines (it must succeed).
fn impacket_login(lab: &Lab, who: (&str, &str), dialect: Option<&str>) -> Vec<String> {
    let mut cmd = impacket(lab);
    cmd.args(["login", &LAB_PORT.to_string(), who.0, who.1]);
    if let Some(d) = dialect {
        cmd.arg(d);
    }
    let out = run_capture(&mut cmd, Duration::from_secs(60));
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "impacket {who:?} {dialect:?} failed:\n{text}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_full_run(lines: &[String], dialect: &str, who: &str) {
    for w in [
        format!("DIALECT {dialect}"),
        format!("LOGIN {who}"),
        "SHARE IPC$ 0x80000003".to_string(),
        "LOGOFF ok".to_string(),
    ] {
        assert!(lines.contains(&w), "missing {w:?} in {lines:?}");
    }
}

#[test]
fn impacket_login_and_list_shares_through_af_xdp() {
    if !lab_or_skip() || !have_impacket() {
        return;
    }
    let lab = Lab::up("xdi", 1);
    let server = xdp_server(&lab);
    // impacket's default: an SMB1 multi-protocol NEGOTIATE answered with
    // 0x02FF, then SMB2 up to 3.0.
    assert_full_run(&impacket_login(&lab, ("", ""), None), "0x300", "anonymous");
    assert_full_run(&impacket_login(&lab, USER, None), "0x300", USER.0);
    assert_full_run(&impacket_login(&lab, ADMIN, None), "0x300", ADMIN.0);
    for (d, shown) in [("2.002", "0x202"), ("2.1", "0x210"), ("3.0", "0x300")] {
        assert_full_run(&impacket_login(&lab, USER, Some(d)), shown, USER.0);
    }
    // 3.1.1 anonymously only (impacket 0.10's 3.1.1 signing key is wrong:
    // see tests/real_clients_impacket.rs).
    assert_full_run(
        &impacket_login(&lab, ("", ""), Some("3.1.1")),
        "0x311",
        "anonymous",
    );
    // Each logged off: nothing left, and no connection lost in TCP. (The
    // protocol-error count is not 0: after its LOGOFF impacket seals one
    // more request for the gone session, answered as on kernel TCP.)
    let left = server.wait_sessions(Duration::from_secs(10), |s| s.is_empty());
    assert!(left.is_empty(), "{left:?}");
    let st = server.ctl_json(&["stats"]);
    assert_eq!(st["connections_ended"]["dead_transport"], 0, "{st}");
    assert_eq!(st["sessions_ended"]["logoff"], 7, "{st}");
}

/// The smbtorture tests of tests/real_clients_smbtorture.rs (those that
/// pass on kernel TCP), from the client namespace.
#[test]
fn smbtorture_passing_tests_through_af_xdp() {
    if !lab_or_skip() || !have("smbtorture") {
        return;
    }
    let lab = Lab::up("xds", 1);
    let server = xdp_server(&lab);
    let unc = format!("//{}/IPC$", lab.server_addr);
    let admin = format!("{}%{}", ADMIN.0, ADMIN.1);
    for (test, creds) in [
        ("smb2.session.two_logoff", admin.as_str()),
        ("smb2.credits.session_setup_credits_granted", &admin),
        ("smb2.compound.related5", &admin),
        ("smb2.compound.invalid1", &admin),
        ("smb2.session.ntlmssp_bug14932", &admin),
        ("smb2.session.ntlmssp_bug14932", "%"),
    ] {
        let mut cmd = lab.command("client", "smbtorture");
        cmd.args([&unc, "-p", &LAB_PORT.to_string(), "-U", creds, test]);
        let out = run_capture(&mut cmd, Duration::from_secs(120));
        let text = output_text(&out);
        let name = test.rsplit('.').next().unwrap_or(test);
        assert!(
            text.lines().any(|l| l.trim() == format!("success: {name}")),
            "smbtorture {test} as {creds:?} did not pass:\n{text}\nserver log:\n{}",
            server.log()
        );
        assert!(
            out.status.success(),
            "smbtorture {test} exit status:\n{text}"
        );
    }
}

fn rows_of<'a>(rows: &'a [serde_json::Value], computer: &str) -> Vec<&'a serde_json::Value> {
    rows.iter().filter(|r| r["computer"] == computer).collect()
}

/// Q153070 through the lab: IPC$-only sessions from one client computer
/// (198.18.1.1) are found and dropped by `ctl disconnect --computer`,
/// their connections closed (the client sees it), while another client's
/// (198.18.1.2) stay up; then those go by `--client ADDRESS`.
#[test]
fn seed_scenario_disconnect_by_computer_through_af_xdp() {
    if !lab_or_skip() || !have_impacket() {
        return;
    }
    let lab = Lab::up("xdq", 2);
    let server = xdp_server(&lab);
    let (a, b) = (&lab.client_addrs[0], &lab.client_addrs[1]);
    // The article's computer: two IPC$-only sessions (two connections),
    // from the client namespace's first address.
    let mut wksta = vec![
        LabHolder::start(&lab, USER, "WKSTA51"),
        LabHolder::start(&lab, ("", ""), "WKSTA51"),
    ];
    // Another computer, from the second address: new connections take it
    // as their source (the ones open keep theirs).
    let route = lab.run(
        "client",
        &[
            "ip",
            "route",
            "replace",
            &format!("{}/32", lab.server_addr),
            "dev",
            "xl-cli",
            "src",
            b,
        ],
    );
    assert!(route.status.success(), "{}", output_text(&route));
    let mut other = vec![
        LabHolder::start(&lab, USER, "OTHERPC"),
        LabHolder::start(&lab, ADMIN, "OTHERPC"),
    ];
    let rows = server.wait_sessions(Duration::from_secs(10), |s| s.len() == 4);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in rows_of(&rows, "WKSTA51") {
        assert_eq!(r["client"], a.as_str(), "{r}");
        assert_eq!(r["trees"], serde_json::json!(["IPC$"]), "{r}");
    }
    for r in rows_of(&rows, "OTHERPC") {
        assert_eq!(r["client"], b.as_str(), "{r}");
    }
    let other_ids: Vec<serde_json::Value> = rows_of(&rows, "OTHERPC")
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(other_ids.len(), 2, "{rows:?}");

    let out = server.ctl(&["disconnect", "--computer", "WKSTA51"]);
    assert!(out.contains("disconnected 2 sessions"), "{out}");
    // Both of its clients see their connection closed by the server.
    for h in &mut wksta {
        assert_eq!(
            h.line_within(Duration::from_secs(20)).as_deref(),
            Some("DROPPED"),
            "{}",
            h.name
        );
    }
    let rows = server.wait_sessions(Duration::from_secs(5), |s| s.len() == 2);
    assert!(rows_of(&rows, "WKSTA51").is_empty(), "{rows:?}");
    let ids: Vec<serde_json::Value> = rows.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(
        ids, other_ids,
        "the other computer's sessions are untouched"
    );
    for h in &mut other {
        assert_eq!(
            h.line_within(Duration::from_millis(500)),
            None,
            "{}",
            h.name
        );
    }
    // The other client is still served (a new session from it works).
    let lines = impacket_login(&lab, USER, None);
    assert!(lines.contains(&"LOGOFF ok".to_string()), "{lines:?}");

    // By address: the rest.
    let out = server.ctl(&["disconnect", "--client", b]);
    assert!(out.contains("disconnected 2 sessions"), "{out}");
    for h in &mut other {
        assert_eq!(
            h.line_within(Duration::from_secs(20)).as_deref(),
            Some("DROPPED"),
            "{}",
            h.name
        );
    }
    let rows = server.wait_sessions(Duration::from_secs(5), |s| s.is_empty());
    assert!(rows.is_empty(), "{rows:?}");
    let st = server.ctl_json(&["stats"]);
    assert_eq!(st["sessions_ended"]["admin"], 4, "{st}");
}
