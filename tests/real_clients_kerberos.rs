//! Kerberos logons from real clients against `smbcore serve --keytab`, with
//! a throwaway MIT realm (`scripts/krb5-realm.sh`): `smbclient -L` and
//! `//host/IPC$` with `--use-kerberos=required` on SMB2_10, SMB3_00 and
//! SMB3_11 with signing required; `rpcclient` srvinfo and netsessenum as an
//! administrator principal (and netsessenum refused to a plain one);
//! impacket's `kerberosLogin` from the ccache; a ticket for another service
//! refused; `ctl sessions` showing the method and the ticket's end; the
//! counters.
//!
//! Samba's clients refuse Kerberos to `localhost` or an address, so they
//! name the server `smbserver.smbcore.test` and connect with `-I` and the
//! server's address (`127.0.0.1`, or its lab address on xdp).
//! One test function: the krb5 environment (KRB5_CONFIG, ccaches) is the
//! process's.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{have, have_impacket, output_text, run_capture, TestServer, IMPACKET_PYTHON};

const HOST: &str = "smbserver.smbcore.test";

struct Realm {
    dir: PathBuf,
}

impl Drop for Realm {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/krb5-realm.sh")
}

impl Realm {
    fn start() -> Option<Realm> {
        // root's PATH may lack /usr/sbin, where the KDC lives.
        if !std::path::Path::new("/usr/sbin/krb5kdc").exists() && !have("krb5kdc") {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("smbcore-realm-{}", std::process::id()));
        let out = run_capture(
            Command::new(script()).arg("start").arg(&dir),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "realm: {}", output_text(&out));
        Some(Realm { dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A ccache for `user` (password `user-pw`), made with kinit.
    fn kinit(&self, user: &str) -> String {
        let cc = format!("FILE:{}", self.path(&format!("{user}.cc")));
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("echo {user}-pw | kinit {user} >/dev/null"))
            .env("KRB5CCNAME", &cc);
        let out = run_capture(&mut cmd, Duration::from_secs(30));
        assert!(out.status.success(), "kinit {user}: {}", output_text(&out));
        cc
    }
}

fn smbclient(server: &TestServer, cc: &str, dialect: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("smbclient");
    cmd.args(args)
        .arg("-I")
        .arg(server.host())
        .arg("-p")
        .arg(server.port.to_string())
        .arg("-m")
        .arg(dialect)
        .arg("--use-kerberos=required")
        .arg(format!("--use-krb5-ccache={cc}"))
        .env("KRB5CCNAME", cc);
    let out = run_capture(&mut cmd, Duration::from_secs(30));
    (out.status.success(), output_text(&out))
}

fn rpcclient(server: &TestServer, cc: &str, cmds: &str) -> (bool, String) {
    let mut cmd = Command::new("rpcclient");
    cmd.arg("-I")
        .arg(server.host())
        .arg("-p")
        .arg(server.port.to_string())
        .arg(HOST)
        .arg("--use-kerberos=required")
        .arg(format!("--use-krb5-ccache={cc}"))
        .arg("-c")
        .arg(cmds)
        .env("KRB5CCNAME", cc);
    let out = run_capture(&mut cmd, Duration::from_secs(30));
    (out.status.success(), output_text(&out))
}

#[test]
fn kerberos_logons_from_real_clients() {
    if !have("smbclient") || !have("kinit") {
        return;
    }
    let Some(realm) = Realm::start() else { return };
    std::env::set_var("KRB5_CONFIG", realm.path("krb5.conf"));
    let keytab = realm.path("cifs.keytab");
    let service = format!("cifs/{HOST}");
    let server = TestServer::start(&[
        "--keytab",
        &keytab,
        "--kerberos-service",
        &service,
        "--require-signing",
    ]);
    let alice = realm.kinit("alice");
    let bob = realm.kinit("bob");
    let unc_host = format!("//{HOST}");
    let unc_ipc = format!("//{HOST}/IPC$");

    for d in ["SMB2_10", "SMB3_00", "SMB3_11"] {
        let (ok, out) = smbclient(&server, &alice, d, &["-L", &unc_host]);
        assert!(ok && out.contains("IPC$"), "smbclient -L {d}:\n{out}");
        let (ok, out) = smbclient(&server, &alice, d, &[&unc_ipc, "-c", "quit"]);
        assert!(ok, "smbclient IPC$ {d}:\n{out}");
    }
    let stats = server.ctl_json(&["stats"]);
    assert!(stats["kerberos_logons"].as_u64().unwrap() >= 6, "{stats}");

    // rpcclient as the administrator principal: srvinfo and netsessenum.
    let (ok, out) = rpcclient(&server, &bob, "srvinfo;netsessenum");
    assert!(ok, "rpcclient as bob:\n{out}");
    assert!(out.contains("platform_id"), "{out}");
    assert!(
        out.contains("Received 1 entries"),
        "netsessenum lists the caller's session:\n{out}"
    );
    // A plain principal is refused the session calls.
    let (_, out) = rpcclient(&server, &alice, "netsessenum");
    assert!(out.contains("ACCESS_DENIED"), "{out}");

    // impacket with -k from the ccache (it uses the cifs ticket cached above).
    if have_impacket() {
        let script = format!(
            "from impacket.smbconnection import SMBConnection\n\
             c = SMBConnection('{HOST}', '{addr}', sess_port={port})\n\
             c.kerberosLogin('alice', '', domain='SMBCORE.TEST', useCache=True)\n\
             c.connectTree('IPC$')\n\
             print('shares', [s['shi1_netname'][:-1] for s in c.listShares()])\n",
            addr = server.host(),
            port = server.port
        );
        let out = run_capture(
            Command::new(IMPACKET_PYTHON)
                .arg("-c")
                .arg(&script)
                .env("KRB5CCNAME", alice.trim_start_matches("FILE:")),
            Duration::from_secs(30),
        );
        let text = output_text(&out);
        assert!(
            out.status.success() && text.contains("IPC$"),
            "impacket -k:\n{text}"
        );
    }

    // A session held open shows its method and ticket in ctl sessions.
    let mut hold = Command::new("smbclient");
    hold.arg(&unc_ipc)
        .args(["-I", &server.host(), "-p", &server.port.to_string()])
        .arg("--use-kerberos=required")
        .arg(format!("--use-krb5-ccache={alice}"))
        .env("KRB5CCNAME", &alice)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = hold.spawn().expect("smbclient");
    let rows = server.wait_sessions(Duration::from_secs(20), |s| {
        s.iter().any(|r| r["user"] == "alice@SMBCORE.TEST")
    });
    let row = rows
        .iter()
        .find(|r| r["user"] == "alice@SMBCORE.TEST")
        .unwrap_or_else(|| panic!("alice's session: {rows:?}"));
    assert_eq!(row["auth"], "kerberos", "{row}");
    let left = row["ticket_left_ms"].as_i64().expect("ticket end");
    assert!(left > 9 * 3600 * 1000, "{row}");
    let text = output_text(&server.ctl(&["sessions"]));
    assert!(text.contains("kerberos") && text.contains("AUTH"), "{text}");
    let _ = child.kill();
    let _ = child.wait();

    // A session expires with its ticket (MS-SMB2 3.3.5.2.9): impacket with an
    // 8-second ticket gets STATUS_NETWORK_SESSION_EXPIRED once it ended.
    if have_impacket() {
        let cc = format!("FILE:{}", realm.path("short8.cc"));
        let out = run_capture(
            Command::new("sh")
                .arg("-c")
                .arg("echo alice-pw | kinit -l 8s alice >/dev/null")
                .env("KRB5CCNAME", &cc),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{}", output_text(&out));
        // smbclient puts the cifs ticket in the ccache (impacket talks to no KDC here).
        let (ok, out) = smbclient(&server, &cc, "SMB3_11", &["-L", &unc_host]);
        assert!(ok, "{out}");
        let script = format!(
            "import time\n\
             from impacket.smbconnection import SMBConnection\n\
             c = SMBConnection('{HOST}', '{addr}', sess_port={port})\n\
             c.kerberosLogin('alice', '', domain='SMBCORE.TEST', useCache=True)\n\
             c.connectTree('IPC$')\n\
             time.sleep(9)\n\
             try:\n\
             \x20   c.listShares()\n\
             \x20   print('still served')\n\
             except Exception as e:\n\
             \x20   print('refused', e)\n",
            addr = server.host(),
            port = server.port
        );
        let out = run_capture(
            Command::new(IMPACKET_PYTHON)
                .arg("-c")
                .arg(&script)
                .env("KRB5CCNAME", cc.trim_start_matches("FILE:")),
            Duration::from_secs(40),
        );
        let text = output_text(&out);
        assert!(
            text.contains("refused") && text.contains("STATUS_NETWORK_SESSION_EXPIRED"),
            "after the ticket's end:\n{text}"
        );
        let stats = server.ctl_json(&["stats"]);
        assert!(
            stats["kerberos_tickets_expired"].as_u64().unwrap() >= 1,
            "{stats}"
        );
        assert!(
            stats["session_expired_requests"].as_u64().unwrap() >= 1,
            "{stats}"
        );
    }

    // A server that is another service refuses the ticket.
    let other = TestServer::start(&["--keytab", &keytab, "--kerberos-service", "cifs/localhost"]);
    let (ok, out) = smbclient(&other, &alice, "SMB3_11", &["-L", &unc_host]);
    assert!(!ok, "a ticket for another service was accepted:\n{out}");
    let stats = other.ctl_json(&["stats"]);
    assert_eq!(stats["kerberos_refused_wrong_service"], 1, "{stats}");
}
