//! The memfs example (`examples/memfs`) as a test server: built once per
//! test binary with the cargo that runs the tests (an example is not built
//! by `cargo test --tests`, and `CARGO_BIN_EXE_` names binaries only),
//! started on a free loopback port with the test users, on the transport
//! `SMBCORE_TEST_TRANSPORT` names (with `xdp`, in a namespace of its own
//! behind a veth pair, as [`super::TestServer`]: [`super::lab::lab_for`]),
//! and killed on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{free_port, lab, TempDir, ADMIN, USER};

/// The memfs binary: `SMBCORE_MEMFS_BIN`, or the example built now into
/// this test run's target directory and profile.
pub fn memfs_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SMBCORE_MEMFS_BIN") {
            return PathBuf::from(p);
        }
        // This test runs from <target>/<profile>/deps/.
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("<target>/<profile>");
        let target_dir = profile_dir.parent().expect("<target>");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", "memfs", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build --example memfs");
        assert!(status.success(), "cargo build --example memfs failed");
        profile_dir.join("examples").join("memfs")
    })
    .clone()
}

/// A running memfs serving share `mem`, killed on drop.
#[derive(Debug)]
pub struct MemfsServer {
    pub child: Child,
    pub port: u16,
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub log: PathBuf,
    /// With `SMBCORE_TEST_TRANSPORT=xdp`: the server's namespace and the
    /// veth pair to it (dropped after the server is killed).
    pub lab: Option<lab::HostLab>,
}

impl MemfsServer {
    /// Start with the standard users (ADMIN, USER) and `extra` arguments.
    pub fn start(extra: &[&str]) -> MemfsServer {
        let bin = memfs_bin();
        let dir = TempDir::new("memfs");
        let port = free_port();
        let log = dir.join("memfs.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let lab = lab::lab_for(extra);
        let host = lab::server_host(lab.as_ref());
        let mut args: Vec<String> = vec![
            "--listen".into(),
            format!("{host}:{port}"),
            "--user".into(),
            format!("{}:{}:admin", ADMIN.0, ADMIN.1),
            "--user".into(),
            format!("{}:{}", USER.0, USER.1),
        ];
        args.extend(lab::server_args(lab.as_ref(), extra));
        let child = lab::server_command(lab.as_ref(), &bin)
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("SMBCORE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let addr: SocketAddr = format!("{host}:{port}").parse().expect("addr");
        let mut s = MemfsServer {
            child,
            port,
            addr,
            dir,
            log,
            lab,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("memfs exited early ({st}):\n{}", s.log_text());
            }
            if TcpStream::connect(s.addr).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "memfs did not come up:\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// The server's address for clients (`127.0.0.1` on loopback).
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MemfsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- memfs log ----\n{}", self.log_text());
        }
    }
}
