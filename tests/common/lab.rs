//! The AF_XDP lab (`scripts/xdp-lab`) from a test: two network namespaces
//! joined by a veth pair, made with a name of the test's own so that
//! parallel runs never share one, and removed when the [`Lab`] is dropped
//! (even when the test fails).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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
        let name = format!("{tag}{}", std::process::id());
        let out = Command::new(script())
            .args(["-n", &name, "up", "--clients", &clients.to_string()])
            .output()
            .expect("run scripts/xdp-lab up");
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
