//! The AF_XDP lab (`scripts/xdp-lab`) from a test: two network namespaces
//! joined by a veth pair, made with a name of the test's own so that
//! parallel runs never share one, and removed when the [`Lab`] is dropped
//! (even when the test fails).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{smbcore_bin, TempDir, ADMIN, USER};

/// Path of `scripts/xdp-lab`.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/xdp-lab")
}

/// Why a lab cannot be made here (not root), or `None` when it can. Tests
/// that need one say so and return; CI runs as root. A missing tool is a
/// failure, not a skip, as for the real clients
/// (`scripts/install-test-deps.sh` installs them).
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for tool in ["ip", "ethtool"] {
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(found, "{tool} is missing (scripts/install-test-deps.sh)");
    }
    None
}

/// Names of the network namespaces that exist now.
pub fn namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// A lab that is up; `down` runs on drop.
#[derive(Debug)]
pub struct Lab {
    /// The lab's name (its namespaces are NAME-srv and NAME-cli).
    pub name: String,
    /// The server's address in the lab.
    pub server_addr: String,
    /// The server's veth interface (inside the server namespace).
    pub server_if: String,
    /// The client addresses.
    pub client_addrs: Vec<String>,
}

impl Lab {
    /// Bring a lab up with `clients` client addresses; `tag` makes the name
    /// (with this process's id) unique among parallel tests.
    pub fn up(tag: &str, clients: u32) -> Lab {
        Lab::up_with(tag, clients, None, 1)
    }

    /// As [`Lab::up`], with `queues` receive and transmit queues on each
    /// veth (`xdp-lab up --queues`).
    pub fn up_queues(tag: &str, clients: u32, queues: u32) -> Lab {
        Lab::up_with(tag, clients, None, queues)
    }

    /// As [`Lab::up`], with the impairing forwarder between client and
    /// server (`impair` as for `xdp-lab up --impair`, e.g.
    /// `loss=1,reorder=5`).
    pub fn up_impaired(tag: &str, clients: u32, impair: &str) -> Lab {
        Lab::up_with(tag, clients, Some(impair), 1)
    }

    fn up_with(tag: &str, clients: u32, impair: Option<&str>, queues: u32) -> Lab {
        let name = format!("{tag}{}", std::process::id());
        let mut cmd = Command::new(script());
        cmd.args(["-n", &name, "up", "--clients", &clients.to_string()]);
        cmd.args(["--queues", &queues.to_string()]);
        if let Some(spec) = impair {
            cmd.args(["--impair", spec]);
        }
        let out = cmd.output().expect("run scripts/xdp-lab up");
        assert!(
            out.status.success(),
            "xdp-lab up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("xdp-lab up printed no {key}: {text}"))
                .trim_matches('"')
                .to_owned()
        };
        Lab {
            server_addr: get("SERVER_ADDR"),
            server_if: get("SERVER_IF"),
            client_addrs: get("CLIENT_ADDRS")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            name,
        }
    }

    /// A command that runs `program` inside the server or client namespace.
    pub fn command(&self, side: &str, program: &str) -> Command {
        let mut c = Command::new(script());
        c.args(["-n", &self.name, "exec", side, program]);
        c
    }

    /// Run `args` in `side`'s namespace and wait for it.
    pub fn run(&self, side: &str, args: &[&str]) -> Output {
        self.command(side, args[0])
            .args(&args[1..])
            .output()
            .expect("run a command in the lab")
    }

    /// The impairing forwarder's counters (`xdp-lab impair-stats`), summed
    /// over both directions: `frames`, `dropped`, `held`, `reordered`,
    /// `released_alone`, `errors`.
    pub fn impair_totals(&self) -> std::collections::BTreeMap<String, u64> {
        let out = Command::new(script())
            .args(["-n", &self.name, "impair-stats"])
            .output()
            .expect("xdp-lab impair-stats");
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("impair-stats prints JSON");
        let mut sum = std::collections::BTreeMap::new();
        for dir in v["directions"].as_object().expect("directions").values() {
            for (k, n) in dir.as_object().expect("counters") {
                *sum.entry(k.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
            }
        }
        sum
    }

    /// Remove the lab (idempotent).
    pub fn down(&self) -> Output {
        Command::new(script())
            .args(["-n", &self.name, "down"])
            .output()
            .expect("run scripts/xdp-lab down")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.down();
    }
}

/// The port lab servers listen on (the lab is theirs alone).
pub const LAB_PORT: u16 = 4450;

/// `smbcore serve` in a lab's server namespace on `transport` (`xdp`
/// on the lab's server interface, or `mio`/`io-uring` on the server
/// namespace's kernel TCP, for comparison), with the standard users;
/// killed on drop.
#[derive(Debug)]
pub struct LabServer {
    /// The server process.
    pub child: Child,
    /// Its directory (users, admin socket, log, config).
    pub dir: TempDir,
    /// The lab's name (for `ctl`, which runs in the server namespace).
    pub lab: String,
    /// `ADDR:PORT` it listens on.
    pub target: String,
}

impl LabServer {
    /// Start on `transport` with `config` (the text of a config file, if
    /// any) and `extra` arguments.
    pub fn start(lab: &Lab, transport: &str, config: Option<&str>, extra: &[&str]) -> LabServer {
        let dir = TempDir::new("lab");
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let users = dir.join("users.toml");
        std::fs::write(
            &users,
            format!(
                "[[user]]\nname = \"{}\"\npassword = \"{}\"\nadmin = true\n\n[[user]]\nname = \"{}\"\npassword = \"{}\"\n",
                ADMIN.0, ADMIN.1, USER.0, USER.1
            ),
        )
        .unwrap();
        let target = format!("{}:{LAB_PORT}", lab.server_addr);
        let mut cmd = lab.command("server", smbcore_bin().to_str().unwrap());
        cmd.args(["serve", "--transport", transport]);
        if transport == "xdp" {
            cmd.args(["--xdp-interface", &lab.server_if]);
        }
        cmd.args(["--listen", &target, "--users"])
            .arg(&users)
            .arg("--admin-socket")
            .arg(dir.join("admin.sock"));
        if let Some(text) = config {
            let path = dir.join("smbcore.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        let child = cmd
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start smbcore serve in the lab");
        let mut s = LabServer {
            child,
            dir,
            lab: lab.name.clone(),
            target,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !s.dir.join("admin.sock").exists() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("smbcore exited {status}: {}", s.log());
            }
            assert!(Instant::now() < deadline, "no admin socket: {}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `smbcore ctl ARGS...` (run in the server namespace): its stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(script())
            .args(["-n", &self.lab, "exec", "server"])
            .arg(smbcore_bin())
            .arg("ctl")
            .arg("--admin-socket")
            .arg(self.dir.join("admin.sock"))
            .args(args)
            .output()
            .expect("smbcore ctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctl ARGS... --json`, parsed (`Null` when it printed no JSON).
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ctl(&a)).unwrap_or(serde_json::Value::Null)
    }

    /// The session rows of `ctl sessions --json`.
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        self.ctl_json(&["sessions"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait until `cond(sessions)` holds or `timeout` passes; the rows.
    pub fn wait_sessions(
        &self,
        timeout: Duration,
        cond: impl FnMut(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        super::poll_until(timeout, Duration::from_millis(50), || self.sessions(), cond)
    }
}

impl Drop for LabServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- smbcore log (tail) ----");
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// `tests/clients/impacket_client.py ARGS...` in the lab's client
/// namespace, aimed at the lab's server address.
pub fn impacket(lab: &Lab) -> Command {
    let mut c = lab.command("client", super::IMPACKET_PYTHON);
    c.arg(super::client_script("impacket_client.py"))
        .env("SMBCORE_TEST_HOST", &lab.server_addr);
    c
}

/// An IPC$ session held open by impacket (`impacket_client.py hold`) from
/// the lab's client namespace: logged in as a user from a workstation name,
/// IPC$ connected, sending nothing; it prints `DROPPED` when the server
/// closes the connection. Killed on drop.
#[derive(Debug)]
pub struct LabHolder {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// The workstation name it logged in from.
    pub name: String,
}

impl LabHolder {
    /// Log in and wait for `READY`.
    pub fn start(lab: &Lab, user: (&str, &str), name: &str) -> LabHolder {
        use std::io::{BufRead, BufReader};
        let mut child = impacket(lab)
            .args(["hold", &LAB_PORT.to_string(), user.0, user.1, name, "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start impacket holder");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut h = LabHolder {
            child,
            lines: rx,
            name: name.to_string(),
        };
        assert!(
            h.line_within(Duration::from_secs(60)).as_deref() == Some("READY"),
            "holder {name} did not log in"
        );
        h
    }

    /// The next line it prints within `within` (an `ERROR` line fails the
    /// test).
    pub fn line_within(&mut self, within: Duration) -> Option<String> {
        let l = self.lines.recv_timeout(within).ok()?;
        assert!(!l.starts_with("ERROR"), "holder {}: {l}", self.name);
        Some(l)
    }
}

impl Drop for LabHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `smb-loadgen` (this build's) in the lab's client namespace, aimed at
/// `server`, bound round robin to every client address of the lab.
pub fn loadgen(lab: &Lab, server: &LabServer) -> Command {
    let mut c = lab.command("client", env!("CARGO_BIN_EXE_smb-loadgen"));
    c.args(["--target", &server.target, "--no-progress"]);
    if lab.client_addrs.len() > 1 {
        c.args(["--source-ips", &lab.client_addrs.join(",")]);
    }
    c
}

/// `smbclient -L` anonymously from the lab's client namespace lists the
/// server's shares (the server serves a real client).
pub fn assert_smbclient_lists(lab: &Lab) {
    let mut cmd = lab.command("client", "smbclient");
    cmd.args(["-L", &format!("//{}", lab.server_addr), "-U%", "-p"])
        .arg(LAB_PORT.to_string());
    let out = super::run_capture(&mut cmd, Duration::from_secs(60));
    let text = super::output_text(&out);
    assert!(text.contains("Remote IPC"), "{text}");
}

/// A server namespace of its own joined by a veth pair to the namespace
/// the tests run in (for `SMBCORE_TEST_TRANSPORT=xdp`): the server's end,
/// `xl-srv`, in `NAME-srv`, the other end (named NAME) here, each with an
/// address of a /29 of 198.19.0.0/16 (RFC 2544's range) that no other
/// interface here has, and a second client address on this end. In-process clients and real clients started by a
/// test then reach an xdp server as they reach one on loopback, with no
/// change of namespace; offloads are off on this end for the reason
/// `scripts/xdp-lab` gives. Removed on drop (deleting the namespace
/// deletes the pair).
#[derive(Debug)]
pub struct HostLab {
    /// Its name: the interface here and the namespace's prefix.
    pub name: String,
    /// The server's address.
    pub server_addr: std::net::Ipv4Addr,
    /// The address of this end (the one the server sees clients from).
    pub client_addr: std::net::Ipv4Addr,
    /// A second address of this end, for tests of per-address limits.
    pub client_addr2: std::net::Ipv4Addr,
}

impl HostLab {
    /// A new pair; panics when it cannot be made.
    pub fn up() -> HostLab {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("xh{:x}", (pid << 8) ^ n);
        let name: String = name.chars().take(15).collect();
        let taken = Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        // A /29 per pair: 8,192 of them in 198.19.0.0/16.
        let mut k = (pid.wrapping_mul(977).wrapping_add(n.wrapping_mul(131))) % 8192;
        let (server_addr, client_addr, client_addr2) = loop {
            let base = u32::from(std::net::Ipv4Addr::new(198, 19, 0, 0)) + k * 8;
            let [s, c, c2] = [1, 2, 3].map(|i| std::net::Ipv4Addr::from(base + i));
            if ![s, c, c2].iter().any(|a| taken.contains(&format!(" {a}/"))) {
                break (s, c, c2);
            }
            k = (k + 1) % 8192;
        };
        let lab = HostLab {
            name,
            server_addr,
            client_addr,
            client_addr2,
        };
        let srv_ns = format!("{}-srv", lab.name);
        let sh = |args: &[&str]| {
            let out = Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect("run ip");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(&["ip", "netns", "add", &srv_ns]);
        sh(&[
            "ip", "link", "add", &lab.name, "type", "veth", "peer", "name", "xl-srv", "netns",
            &srv_ns,
        ]);
        sh(&["ip", "-n", &srv_ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            &srv_ns,
            "addr",
            "add",
            &format!("{server_addr}/29"),
            "dev",
            "xl-srv",
        ]);
        for a in [client_addr, client_addr2] {
            sh(&["ip", "addr", "add", &format!("{a}/29"), "dev", &lab.name]);
        }
        sh(&[
            "ethtool", "-K", &lab.name, "tx", "off", "tso", "off", "gso", "off",
        ]);
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &srv_ns, "ethtool", "-K", "xl-srv", "gro", "off",
            ])
            .output();
        sh(&["ip", "-n", &srv_ns, "link", "set", "xl-srv", "up"]);
        sh(&["ip", "link", "set", &lab.name, "up"]);
        lab
    }

    /// Whether an XDP program is attached to the server's end now.
    pub fn xdp_attached(&self) -> bool {
        let out = Command::new("ip")
            .args([
                "-n",
                &format!("{}-srv", self.name),
                "link",
                "show",
                "xl-srv",
            ])
            .output()
            .expect("ip link show");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    }

    /// A command run in the server's namespace.
    pub fn server_command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}-srv", self.name)])
            .arg(program);
        c
    }
}

impl Drop for HostLab {
    fn drop(&mut self) {
        let ns = format!("{}-srv", self.name);
        // What still runs inside (a server that outlived its handle).
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

/// Where a test server ([`super::TestServer`], [`super::memfs::MemfsServer`],
/// one [`super::serve_refused_in`] expects to refuse) runs: on loopback
/// (`None`), or, with `SMBCORE_TEST_TRANSPORT=xdp` and no `--transport` in
/// its `extra` arguments, on the xdp transport in a [`HostLab`] of its own.
pub fn lab_for(extra: &[&str]) -> Option<HostLab> {
    (super::transport_is_xdp() && !extra.contains(&"--transport")).then(HostLab::up)
}

/// The address of a server placed by [`lab_for`] (`127.0.0.1` on loopback).
pub fn server_host(lab: Option<&HostLab>) -> String {
    lab.map_or("127.0.0.1".to_string(), |l| l.server_addr.to_string())
}

/// The arguments a server placed by [`lab_for`] gets besides its own:
/// `--transport T` (from `SMBCORE_TEST_TRANSPORT`, unless `extra` names
/// one), in a lab `--xdp-interface` for its server end, then `extra`, each
/// `127.0.0.1:PORT` in it (something else the server listens on, as
/// `--metrics`) moved to the server's address, since in a lab the server's
/// own loopback is not reachable from here.
pub fn server_args(lab: Option<&HostLab>, extra: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    if !extra.contains(&"--transport") {
        args.extend(super::transport_args());
    }
    if lab.is_some() {
        args.extend(["--xdp-interface".to_string(), "xl-srv".to_string()]);
    }
    let host = server_host(lab);
    args.extend(extra.iter().map(|s| match s.strip_prefix("127.0.0.1:") {
        Some(port) if lab.is_some() => format!("{host}:{port}"),
        _ => s.to_string(),
    }));
    args
}

/// A command that runs `program` where [`lab_for`] placed a server.
pub fn server_command(lab: Option<&HostLab>, program: &std::path::Path) -> Command {
    match lab {
        Some(l) => l.server_command(program),
        None => Command::new(program),
    }
}

/// A listener of another program on the address where [`lab_for`] places a
/// server, on a port the kernel chose; closed on drop.
#[derive(Debug)]
pub enum ForeignListener {
    /// On loopback, in this process.
    Here(socket2::Socket),
    /// In a lab's server namespace: a `python3` that listens until killed.
    InLab(Child),
}

impl ForeignListener {
    /// Listen (with SO_REUSEPORT when `reuseport`): the listener and its
    /// address.
    pub fn start(
        lab: Option<&HostLab>,
        reuseport: bool,
    ) -> (ForeignListener, std::net::SocketAddr) {
        use std::io::{BufRead, BufReader};
        let Some(l) = lab else {
            use socket2::{Domain, Socket, Type};
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_reuse_port(reuseport).unwrap();
            let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
            s.bind(&any.into()).unwrap();
            s.listen(16).unwrap();
            let addr = s.local_addr().unwrap().as_socket().unwrap();
            return (ForeignListener::Here(s), addr);
        };
        let script = format!(
            "import socket, sys\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, {})\n\
             s.bind(('{}', 0))\n\
             s.listen(16)\n\
             print(s.getsockname()[1], flush=True)\n\
             sys.stdin.read()\n",
            u8::from(reuseport),
            l.server_addr
        );
        let mut child = l
            .server_command(std::path::Path::new("python3"))
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 in the lab");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the port");
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("python3 printed no port: {line:?}"));
        (
            ForeignListener::InLab(child),
            std::net::SocketAddr::new(l.server_addr.into(), port),
        )
    }
}

impl Drop for ForeignListener {
    fn drop(&mut self) {
        if let ForeignListener::InLab(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
