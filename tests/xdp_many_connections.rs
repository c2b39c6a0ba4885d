//! Many connections over AF_XDP without descriptors (issue 14), the
//! bounded CI version of `scripts/bench-xdp-scale.sh`: in a lab of its own,
//! smb-loadgen opens 2,000 one-session TCP connections from the client
//! namespace to `smbcore serve --transport xdp` and leaves them idle; the
//! server holds them all at once with fewer than 100 open descriptors (the
//! kernel path needs one per connection), and autodisconnect reaps every
//! session on time: none early, none never.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::lab::{unavailable, Lab};
use common::{smbcore_bin, TempDir};

const PORT: &str = "4450";
const CONNECTIONS: u64 = 2_000;
const FD_LIMIT: usize = 100;

/// A child process killed on drop (a failed assertion must not leave it).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The smbcore process inside the lab's server namespace (`ip netns exec`
/// replaces itself with it, so it is the child; checked by name).
fn smbcore_pid(child: &Child) -> u32 {
    let pid = child.id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "smbcore", "the lab's exec runs smbcore itself");
    pid
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `ctl stats --json` (connections, sessions), or `None` while it fails.
fn stats(lab: &Lab, admin: &Path) -> Option<(u64, u64)> {
    let out = lab
        .command("server", smbcore_bin().to_str().unwrap())
        .arg("ctl")
        .arg("--admin-socket")
        .arg(admin)
        .args(["stats", "--json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v["connections"].as_u64()?, v["sessions"].as_u64()?))
}

#[test]
fn two_thousand_connections_hold_no_descriptor_each_and_are_all_reaped() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: no XDP lab here ({why})");
        return;
    }
    let lab = Lab::up("xmc", 2);
    let dir = TempDir::new("xdp-many");
    let admin: PathBuf = dir.join("admin.sock");
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let server = Killed(
        lab.command("server", smbcore_bin().to_str().unwrap())
            .args([
                "serve",
                "--transport",
                "xdp",
                "--xdp-interface",
                &lab.server_if,
                "--listen",
                &format!("{}:{PORT}", lab.server_addr),
                "--threads",
                "1",
                "--autodisconnect",
                "4s",
            ])
            .arg("--admin-socket")
            .arg(&admin)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start smbcore serve in the lab"),
    );
    let server_log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !admin.exists() {
        assert!(
            Instant::now() < deadline,
            "no admin socket: {}",
            server_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = smbcore_pid(&server.0);

    let json = dir.join("loadgen.json");
    let sources = format!(
        "{}-{}",
        lab.client_addrs[0],
        lab.client_addrs[lab.client_addrs.len() - 1]
    );
    let mut loadgen = Killed(
        lab.command("client", env!("CARGO_BIN_EXE_smb-loadgen"))
            .args([
                "--target",
                &format!("{}:{PORT}", lab.server_addr),
                "--sessions",
                &CONNECTIONS.to_string(),
                "--source-ips",
                &sources,
                "--autodisconnect",
                "4s",
                "--hold",
                "3s",
                "--probes",
                "0",
                "--baseline",
                "0s",
                "--no-progress",
            ])
            .arg("--json")
            .arg(&json)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smb-loadgen in the lab"),
    );

    // While the load runs: the most connections and sessions the server
    // held at once, and the most descriptors it had open.
    let (mut peak_conns, mut peak_sessions, mut max_fds) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        max_fds = max_fds.max(open_fds(pid));
        if let Some((c, s)) = stats(&lab, &admin) {
            peak_conns = peak_conns.max(c);
            peak_sessions = peak_sessions.max(s);
        }
        if let Some(st) = loadgen.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "smb-loadgen ran past 120 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        peak_conns,
        CONNECTIONS,
        "every connection held at once; server log: {}",
        server_log()
    );
    assert_eq!(peak_sessions, CONNECTIONS, "one session each, all at once");
    assert!(
        max_fds < FD_LIMIT,
        "{CONNECTIONS} connections over xdp held {max_fds} descriptors"
    );

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("loadgen's JSON")).unwrap();
    assert_eq!(report["opened"], CONNECTIONS, "{report}");
    assert_eq!(report["reaped"], CONNECTIONS, "{report}");
    assert_eq!(report["reaped_early"], 0, "{report}");
    assert_eq!(report["never_reaped"], 0, "{report}");
    assert!(status.success(), "smb-loadgen: {status}; {report}");
    // Reaped means gone from the server too.
    assert_eq!(stats(&lab, &admin), Some((0, 0)));
}
