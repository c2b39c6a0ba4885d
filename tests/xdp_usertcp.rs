//! The user-space TCP's defences and parking through a real client, in a
//! lab of its own (`scripts/xdp-lab`; issue 14): the memfs example on the
//! xdp transport serves `smbclient` from the client namespace.
//!
//! - Parking: smbclient stays connected while idle past the 1 s after
//!   which the server parks a connection's TCP socket and buffers; each
//!   next command restores it unseen by the client, and 1 MiB files go up
//!   and come back intact. `ctl stats` counts the parks and restores.
//! - Drop counters: SYNs with a bad TCP checksum, sent with a raw socket
//!   from the client namespace, are counted as `tcp_bad_checksum` in
//!   `ctl stats` (per shard, with the AF_XDP socket's XDP_STATISTICS).
//! - A flood of spoofed SYNs fills the half-open table, and a real client
//!   still lists the share meanwhile.

mod common;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::lab::{unavailable, Lab};
use common::memfs::memfs_bin;
use common::{smbcore_bin, TempDir, USER};

const PORT: &str = "4461";

/// memfs on the xdp transport in the lab's server namespace, killed on
/// drop.
struct Server {
    child: Child,
    dir: TempDir,
}

impl Server {
    fn start(lab: &Lab) -> Server {
        let dir = TempDir::new("xdp-usertcp");
        let log = std::fs::File::create(dir.join("memfs.log")).unwrap();
        let child = lab
            .command("server", memfs_bin().to_str().unwrap())
            .args([
                "--listen",
                &format!("{}:{PORT}", lab.server_addr),
                "--transport",
                "xdp",
                "--xdp-interface",
                &lab.server_if,
                "--user",
                &format!("{}:{}", USER.0, USER.1),
            ])
            .arg("--admin-socket")
            .arg(dir.join("admin.sock"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start memfs in the lab");
        let mut s = Server { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.dir.join("admin.sock").exists() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("memfs exited {status}: {}", s.log());
            }
            assert!(Instant::now() < deadline, "no admin socket: {}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("memfs.log")).unwrap_or_default()
    }

    /// Shard 0's entry of `ctl stats --json`'s `xdp` list.
    fn xdp_stats(&self) -> serde_json::Value {
        let out = std::process::Command::new(smbcore_bin())
            .arg("ctl")
            .arg("--admin-socket")
            .arg(self.dir.join("admin.sock"))
            .args(["stats", "--json"])
            .output()
            .expect("smbcore ctl stats");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
        v["xdp"][0].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw IPv4 SYNs to the server from the client namespace (python3's raw
/// socket; the kernel fills the IPv4 header checksum): `count` of them
/// from `src` (a `%d` is replaced by i % 250 + 1, to spoof many
/// sources), the TCP checksum bad when `bad`, else right.
fn raw_syns(lab: &Lab, src: &str, count: u32, bad: bool) {
    let script = format!(
        r#"
import socket, struct
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
dst = "{dst}"
for i in range({count}):
    src = "{src}".replace("%d", str(i % 250 + 1))
    sport = 20000 + i
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    tcp = struct.pack("!HHIIBBHHH", sport, {port}, 1000 + i, 0, 0x50, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, 20)
    c = csum(pseudo + tcp)
    if {bad}: c ^= 0x5a5a
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    s.sendto(ip + tcp, (dst, 0))
"#,
        dst = lab.server_addr,
        port = PORT,
        bad = if bad { "True" } else { "False" },
    );
    let out = lab.run("client", &["python3", "-c", &script]);
    assert!(
        out.status.success(),
        "raw SYNs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn idle_connections_park_and_come_back_and_drops_are_counted() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: no XDP lab here ({why})");
        return;
    }
    let lab = Lab::up("xut", 2);
    let server = Server::start(&lab);
    let files = TempDir::new("xdp-usertcp-files");
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(files.join("big.bin"), &big).unwrap();

    // One smbclient session, idle 2.5 s (past the 1 s park) between
    // commands: each command restores the parked connection.
    let mut client = lab
        .command("client", "smbclient")
        .args([
            &format!("//{}/mem", lab.server_addr),
            "-U",
            &format!("{}%{}", USER.0, USER.1),
            "-p",
            PORT,
        ])
        .current_dir(&files.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smbclient");
    let mut stdin = client.stdin.take().unwrap();
    for cmd in [
        "put big.bin up.bin",
        "get up.bin back1.bin",
        "ls",
        "get up.bin back2.bin",
    ] {
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2500));
    }
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    let out = client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for back in ["back1.bin", "back2.bin"] {
        let got = std::fs::read(files.join(back)).unwrap_or_default();
        assert!(
            got == big,
            "{back}: {} bytes back of {}\n{text}\n{}\nserver log:\n{}",
            got.len(),
            big.len(),
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
    }
    assert!(text.contains("up.bin"), "ls: {text}");
    let st = server.xdp_stats();
    assert!(
        st["tcp_parks"].as_u64().unwrap() >= 3 && st["tcp_restores"].as_u64().unwrap() >= 3,
        "the idle connection parked and came back: {st}"
    );
    assert_eq!(st["tcp_bad_checksum"], 0, "{st}");

    // Bad checksums: counted, not answered, nothing made.
    raw_syns(&lab, &lab.client_addrs[0], 5, true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = server.xdp_stats();
        if st["tcp_bad_checksum"] == 5 {
            assert_eq!(st["flows"], 0, "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "bad checksums not counted: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A SYN flood from spoofed sources (198.19.0.x): half-open
    // connections pile up, bounded, and a real client still gets in.
    raw_syns(&lab, "198.19.0.%d", 2000, false);
    let st = server.xdp_stats();
    assert!(st["half_open"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["tcp_bad_checksum"], 5, "{st}");
    let out = lab.run(
        "client",
        &[
            "smbclient",
            "-L",
            &format!("//{}", lab.server_addr),
            "-U",
            &format!("{}%{}", USER.0, USER.1),
            "-p",
            PORT,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("IPC$"),
        "smbclient -L during a SYN flood: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The keys of the AF_XDP socket's own counters are there.
    for key in [
        "rx_dropped",
        "rx_invalid_descs",
        "tx_invalid_descs",
        "rx_ring_full",
        "rx_fill_ring_empty_descs",
        "tx_ring_empty_descs",
    ] {
        assert!(st[key].is_u64(), "{key} missing: {st}");
    }
}
