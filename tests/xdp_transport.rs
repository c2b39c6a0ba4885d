//! The AF_XDP transport, first light (issue 14): inside a lab of its own
//! (`scripts/xdp-lab`), `smbcore serve --transport xdp --xdp-interface
//! xl-srv` in the server namespace serves `smbclient -L` run in the client
//! namespace, TCP terminated in user space; `ctl sessions` shows the client
//! address and port the client's kernel used; ARP, ICMP and other ports
//! still reach the server's kernel; and when the server stops, its XDP
//! program goes with it.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lab::{unavailable, Lab, LabServer};
use common::{output_text, run_capture, ADMIN, USER};

const PORT: &str = "4450";

/// `smbcore serve --transport xdp` in the lab's server namespace.
fn xdp_server(lab: &Lab) -> LabServer {
    LabServer::start(lab, "xdp", None, &["--threads", "1"])
}

#[test]
fn smbclient_lists_ipc_through_af_xdp_and_user_space_tcp() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: no XDP lab here ({why})");
        return;
    }
    let lab = Lab::up("xdt", 2);
    let server = xdp_server(&lab);
    let log = server.log();
    assert!(log.contains("XDP program attached"), "{log}");
    let link = lab.run("server", &["ip", "link", "show", &lab.server_if]);
    assert!(
        String::from_utf8_lossy(&link.stdout).contains("smbcore_xdp"),
        "the program is on the interface"
    );

    // The milestone: an anonymous share list.
    let out = lab.run(
        "client",
        &[
            "smbclient",
            "-L",
            &format!("//{}", lab.server_addr),
            "-U%",
            "-p",
            PORT,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("IPC$") && text.contains("Remote IPC"),
        "smbclient -L: {text}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );

    // A session held open (smbclient waits on its standard input):
    // `ctl sessions` shows the client's address and the port its kernel
    // chose.
    let mut held = lab
        .command("client", "smbclient")
        .args([
            &format!("//{}/IPC$", lab.server_addr),
            "-U%",
            "-p",
            PORT,
            "--option=client ipc min protocol=SMB2_02",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smbclient");
    let deadline = Instant::now() + Duration::from_secs(15);
    let (sessions, client_port) = loop {
        let ss = lab.run("client", &["ss", "-tnH", "state", "established"]);
        let ss = String::from_utf8_lossy(&ss.stdout).into_owned();
        let port = ss.lines().find_map(|l| {
            let mut cols = l.split_whitespace();
            let local = cols.nth(2)?;
            let peer = cols.next()?;
            (peer == format!("{}:{PORT}", lab.server_addr)).then(|| local.to_owned())
        });
        let sessions = server.ctl(&["sessions"]);
        if let Some(p) = port {
            if sessions.contains(&p) {
                break (sessions, p);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no session with the client's address: {sessions}\nss: {ss}\nlog:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(client_port.starts_with("198.18.1."), "{client_port}");
    assert!(sessions.contains("IPC$"), "{sessions}");
    let json = server.ctl(&["sessions", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&json).expect("sessions --json");
    let (addr, port) = client_port.rsplit_once(':').unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["client"] == addr && s["client_port"].as_u64() == port.parse::<u64>().ok()),
        "{json}"
    );
    let stats = server.ctl(&["stats"]);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("transport") && l.ends_with("xdp")),
        "{stats}"
    );
    drop(held.stdin.take());
    let _ = held.kill();
    let _ = held.wait();

    // Everything but the listening port still reaches the kernel: ICMP (and
    // the ARP before it), and a refused connection to another port.
    let ping = lab.run("client", &["ping", "-c", "1", "-W", "2", &lab.server_addr]);
    assert!(ping.status.success(), "ping through the XDP program");
    let other = lab.run(
        "client",
        &[
            "timeout",
            "5",
            "bash",
            "-c",
            &format!("echo > /dev/tcp/{}/4451", lab.server_addr),
        ],
    );
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("refused"),
        "the kernel answers other ports: {}",
        String::from_utf8_lossy(&other.stderr)
    );

    // The program goes with the server (its BPF link closes).
    drop(server);
    let link = lab.run("server", &["ip", "link", "show", &lab.server_if]);
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("smbcore_xdp"),
        "the XDP program outlived the server"
    );
}

/// Logons with signing required on every dialect, and the srvsvc calls of
/// rpcclient, through the same path: bigger answers (NetShareEnum,
/// NetSessionEnum) and signed traffic over user-space TCP.
#[test]
fn signed_logons_on_every_dialect_and_rpcclient_through_af_xdp() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: no XDP lab here ({why})");
        return;
    }
    let lab = Lab::up("xdr", 1);
    let server = xdp_server(&lab);
    for dialect in ["SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11"] {
        for (u, p) in [ADMIN, USER] {
            let mut cmd = lab.command("client", "smbclient");
            cmd.args(["-L", &format!("//{}", lab.server_addr), "-p", PORT])
                .arg("-U")
                .arg(format!("{u}%{p}"))
                .args(["-m", dialect])
                .arg("--option=client min protocol=SMB2_02")
                .arg(format!("--option=client max protocol={dialect}"))
                .arg("--option=client signing=required");
            let out = run_capture(&mut cmd, Duration::from_secs(30));
            let text = output_text(&out);
            assert!(
                out.status.success() && text.contains("Remote IPC"),
                "{u} on {dialect}: {text}\nserver log:\n{}",
                server.log()
            );
        }
    }
    let mut cmd = lab.command("client", "rpcclient");
    cmd.args([&lab.server_addr, "-p", PORT])
        .arg("-U")
        .arg(format!("{}%{}", ADMIN.0, ADMIN.1))
        .args(["-c", "srvinfo; netshareenumall; netsessenum"]);
    let out = run_capture(&mut cmd, Duration::from_secs(30));
    let text = output_text(&out);
    assert!(out.status.success(), "rpcclient: {text}");
    assert!(text.contains("netname: IPC$"), "netshareenumall: {text}");
    assert!(!text.contains("result was"), "a call failed:\n{text}");
    assert!(text.contains("platform_id     :\t500"), "srvinfo: {text}");
    // rpcclient's own session is the only one.
    assert!(text.contains("Received 1 entries."), "netsessenum: {text}");
    let stats = server.ctl(&["stats"]);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("protocol_errors") && l.ends_with(" 0")),
        "{stats}"
    );
}
