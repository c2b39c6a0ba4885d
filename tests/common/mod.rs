//! Shared harness for integration tests: start the real `smbcore` binary on
//! a free loopback port, talk to it with `smbcore ctl` and with real clients,
//! and stop it when the test ends.
#![allow(dead_code)]

pub mod client;
pub mod lab;
pub mod memfs;
pub mod notify;
pub mod pipes;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the `smbcore` binary built for these tests; `SMBCORE_BIN`
/// overrides it (to run a regression test against an older build and see
/// it fail there).
pub fn smbcore_bin() -> PathBuf {
    std::env::var_os("SMBCORE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_smbcore")))
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "smbcore-test-{tag}-{}-{}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        // Private whatever the umask: the server refuses an admin socket
        // directory that others may write to.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))
            .expect("chmod temp dir");
        TempDir(p)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut b)
    });
    u64::from_le_bytes(b)
}

/// The users every test server knows: an administrator and a plain user.
pub const ADMIN: (&str, &str) = ("admin", "Adm1nPass!");
pub const USER: (&str, &str) = ("alice", "Al1cePass!");
/// A Kerberos principal the users file makes an administrator (the test
/// realm of `scripts/krb5-realm.sh` has it).
pub const KERBEROS_ADMIN: &str = "bob@SMBCORE.TEST";

/// A running `smbcore serve`, killed on drop.
#[derive(Debug)]
pub struct TestServer {
    pub child: Child,
    pub port: u16,
    pub addr: SocketAddr,
    pub admin_socket: PathBuf,
    pub dir: TempDir,
    pub log: PathBuf,
    /// With `SMBCORE_TEST_TRANSPORT=xdp`: the server's namespace and the
    /// veth pair to it (dropped after the server is killed).
    pub lab: Option<lab::HostLab>,
}

impl TestServer {
    /// Start with the standard users and `extra` arguments.
    pub fn start(extra: &[&str]) -> TestServer {
        let dir = TempDir::new("srv");
        let users = dir.join("users.toml");
        std::fs::write(
            &users,
            format!(
                "[[user]]\nname = \"{}\"\npassword = \"{}\"\nadmin = true\n\n[[user]]\nname = \"{}\"\npassword = \"{}\"\n\n[[user]]\nname = \"{}\"\nadmin = true\n",
                ADMIN.0, ADMIN.1, USER.0, USER.1, KERBEROS_ADMIN
            ),
        )
        .expect("write users file");
        let port = free_port();
        let admin_socket = dir.join("admin.sock");
        let log = dir.join("server.log");
        let logf = std::fs::File::create(&log).expect("log file");
        // xdp: a server namespace and a veth pair of the server's own.
        let lab = lab::lab_for(extra);
        let host = lab::server_host(lab.as_ref());
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            format!("{host}:{port}"),
            "--users".into(),
            users.display().to_string(),
            "--admin-socket".into(),
            admin_socket.display().to_string(),
        ];
        args.extend(lab::server_args(lab.as_ref(), extra));
        let mut cmd = lab::server_command(lab.as_ref(), &smbcore_bin());
        let child = cmd
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("SMBCORE_TEST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start smbcore serve");
        let addr: SocketAddr = format!("{host}:{port}").parse().expect("addr");
        let mut s = TestServer {
            child,
            port,
            addr,
            admin_socket,
            dir,
            log,
            lab,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("smbcore exited early ({status}):\n{}", self.log_text());
            }
            if TcpStream::connect(self.addr).is_ok() && self.admin_socket.exists() {
                return;
            }
            if Instant::now() > deadline {
                panic!("smbcore did not come up:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's address for clients (`127.0.0.1` on loopback).
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// The address the server sees this process's clients come from
    /// (`127.0.0.1` on loopback).
    pub fn client_ip(&self) -> String {
        self.lab
            .as_ref()
            .map_or("127.0.0.1".to_string(), |l| l.client_addr.to_string())
    }

    /// Where to reach `addr`, a `127.0.0.1:PORT` the server was told to
    /// listen on besides SMB (`--metrics`): itself on loopback, the
    /// server's veth address with `SMBCORE_TEST_TRANSPORT=xdp`.
    pub fn here(&self, addr: &str) -> String {
        match (&self.lab, addr.strip_prefix("127.0.0.1:")) {
            (Some(l), Some(port)) => format!("{}:{port}", l.server_addr),
            _ => addr.to_string(),
        }
    }

    /// Another address of this host the server sees as a different client
    /// (`127.0.0.2` on loopback).
    pub fn second_client_ip(&self) -> String {
        self.lab
            .as_ref()
            .map_or("127.0.0.2".to_string(), |l| l.client_addr2.to_string())
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `smbcore ctl --admin-socket S ARGS...`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(smbcore_bin())
            .arg("ctl")
            .arg("--admin-socket")
            .arg(&self.admin_socket)
            .args(args)
            .output()
            .expect("run smbcore ctl")
    }

    /// `ctl ... --json` parsed (the command must succeed).
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a: Vec<&str> = args.to_vec();
        a.push("--json");
        let out = self.ctl(&a);
        assert!(
            out.status.success(),
            "ctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("ctl printed JSON")
    }

    /// Current sessions as JSON rows.
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        self.ctl_json(&["sessions"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait until `cond(sessions)` holds or `timeout` passes.
    pub fn wait_sessions(
        &self,
        timeout: Duration,
        cond: impl FnMut(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        poll_until(timeout, Duration::from_millis(25), || self.sessions(), cond)
    }

    /// Send SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- smbcore log ----\n{}", self.log_text());
        }
    }
}

/// Whether an external program is installed (tests that need one skip with
/// a loud message when it is missing, unless `SMBCORE_REQUIRE_CLIENTS=1`,
/// which CI sets, turns the absence into a failure).
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("SMBCORE_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!("{program} is required (SMBCORE_REQUIRE_CLIENTS=1) but not installed");
        }
        eprintln!("SKIPPED: {program} is not installed");
    }
    found
}

/// Run a command with a timeout; returns its output.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "command timed out after {timeout:?}: {cmd:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--transport T` when `SMBCORE_TEST_TRANSPORT` names one: `scripts/test`
/// runs every server test once per transport (io-uring, then mio).
pub fn transport_args() -> Vec<String> {
    match std::env::var("SMBCORE_TEST_TRANSPORT") {
        Ok(t) if !t.is_empty() => vec!["--transport".into(), t],
        _ => Vec::new(),
    }
}

/// Whether `SMBCORE_TEST_TRANSPORT=xdp`: [`TestServer`] then runs each
/// server in a namespace of its own behind a veth pair
/// ([`lab::HostLab`]; root only).
pub fn transport_is_xdp() -> bool {
    std::env::var("SMBCORE_TEST_TRANSPORT").as_deref() == Ok("xdp")
}

/// The uid tests run other users' programs as (`nobody`).
pub const OTHER_UID: u32 = 65534;

/// `smbcore serve ARGS...` on loopback that is expected to refuse to start:
/// its output, once it has exited (a server that starts instead fails the
/// test after `timeout`, and is killed).
pub fn serve_refused(args: &[&str], timeout: Duration) -> Output {
    serve_refused_in(None, args, timeout)
}

/// [`serve_refused`] where `lab` places it ([`lab::lab_for`]: in a lab, on
/// the xdp transport on the lab's server end, whose XDP program, or want of
/// one, the refused start must leave as it found it).
pub fn serve_refused_in(lab: Option<&lab::HostLab>, args: &[&str], timeout: Duration) -> Output {
    let attached = lab.map(lab::HostLab::xdp_attached);
    let out = run_with_timeout(
        lab::server_command(lab, &smbcore_bin())
            .arg("serve")
            .args(lab::server_args(lab, args))
            .env("RUST_LOG", "info"),
        timeout,
    );
    assert_eq!(
        lab.map(lab::HostLab::xdp_attached),
        attached,
        "the refused start changed the XDP program's attachment"
    );
    out
}

/// stderr of a finished command, which must be exactly one line: that line.
pub fn one_line_of_stderr(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        err.lines().count(),
        1,
        "expected one line on stderr, got:\n{err}"
    );
    err.trim_end().to_string()
}

/// Write a file.
pub fn write_file(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).expect("create file");
    f.write_all(text.as_bytes()).expect("write file");
}

/// Like [`run_with_timeout`], but reads stdout and stderr while the command
/// runs, so a client that prints more than a pipe holds (`-d 10` dumps)
/// cannot block; on timeout the command is killed and the test fails.
pub fn run_capture(cmd: &mut Command, timeout: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut so = child.stdout.take().expect("stdout pipe");
    let mut se = child.stderr.take().expect("stderr pipe");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_t.join().unwrap_or_default();
            let stderr = err_t.join().unwrap_or_default();
            panic!(
                "command timed out after {timeout:?}: {cmd:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Debian's python, the one `python3-impacket` is installed for.
pub const IMPACKET_PYTHON: &str = "/usr/bin/python3";

/// Whether impacket can be imported by [`IMPACKET_PYTHON`] (same skip rules
/// as [`have`]).
pub fn have_impacket() -> bool {
    let ok = Command::new(IMPACKET_PYTHON)
        .args(["-c", "import impacket"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("SMBCORE_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!("python3-impacket is required (SMBCORE_REQUIRE_CLIENTS=1) but not importable");
        }
        eprintln!("SKIPPED: python3-impacket is not installed");
    }
    ok
}

/// Path of a helper script in `tests/clients/`.
pub fn client_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
        .join(name)
}

/// stdout and stderr of a finished command, as one string.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Open file descriptors of process `pid` (entries of /proc/PID/fd).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of process `pid` in KiB (VmRSS of /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Calls `read` until `cond` holds on what it returned or `timeout` passed
/// (then the last reading), `every` apart: how tests wait for the server's
/// state (`ctl sessions`) to change.
pub fn poll_until<E>(
    timeout: Duration,
    every: Duration,
    mut read: impl FnMut() -> Vec<E>,
    mut cond: impl FnMut(&[E]) -> bool,
) -> Vec<E> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = read();
        if cond(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(every);
    }
}

/// One `read` from `stream` that waits at most `wait`: `Ok(0)` at EOF,
/// `Err(TimedOut)` (or `WouldBlock`) when nothing came.
///
/// A read on a socket with a receive timeout fails with EINTR whenever the
/// thread is woken for a signal-like reason, even one that delivers no
/// signal (socket(7), signal(7); seen here as two sockets of one test
/// process failing within milliseconds, with no signal generated for it).
/// That is not the peer closing: the read is retried with what is left of
/// the wait, so that no test takes an interruption for a close.
pub fn read_within(
    stream: &mut TcpStream,
    buf: &mut [u8],
    wait: Duration,
) -> std::io::Result<usize> {
    use std::io::Read;
    let deadline = Instant::now() + wait;
    let restore = stream.read_timeout().ok().flatten();
    let got = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                eprintln!("read interrupted (EINTR), retried");
                continue;
            }
            other => break other,
        }
    };
    let _ = stream.set_read_timeout(restore);
    got
}

/// Whether the peer closed `stream` (EOF, or a reset) within `wait`;
/// `false` when data came instead or nothing did.
pub fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 1];
    match read_within(stream, &mut b, wait) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}
