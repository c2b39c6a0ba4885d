//! Open files on a disk share in the administrator's listings (issue 13):
//! two impacket clients hold files open on the memfs example's share;
//! `ctl files`, rpcclient `netfileenum 3`, impacket's NetrFileEnum and
//! NetrFileGetInfo list them with their share-relative paths, users,
//! permissions and locks, and the sessions' NumOpens count them.
//! NetrFileClose (impacket) and `ctl close-file` close one in the backend as
//! a CLOSE would: its holder's next READ gets STATUS_FILE_CLOSED while the
//! other client's open goes on. A plain user gets WERR_ACCESS_DENIED.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::memfs::MemfsServer;
use common::{
    client_script, have, have_impacket, output_text, run_capture, smbcore_bin, TempDir, ADMIN,
    IMPACKET_PYTHON, USER,
};

/// NT_STATUS_FILE_CLOSED as impacket prints it.
const FILE_CLOSED: &str = "0xc0000128";

/// The memfs example with an admin socket.
struct Server {
    memfs: MemfsServer,
    socket: PathBuf,
    _dir: TempDir,
}

impl Server {
    fn start(threads: &str) -> Server {
        let dir = TempDir::new("memfs-admin");
        let socket = dir.join("admin.sock");
        let memfs = MemfsServer::start(&[
            "--threads",
            threads,
            "--admin-socket",
            socket.to_str().expect("utf-8 path"),
        ]);
        // The admin socket appears once everything is bound.
        for _ in 0..500 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Server {
            memfs,
            socket,
            _dir: dir,
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(smbcore_bin())
            .arg("ctl")
            .arg("--admin-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run smbcore ctl")
    }

    fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ctl(&a);
        assert!(out.status.success(), "ctl {args:?}: {}", output_text(&out));
        serde_json::from_slice(&out.stdout).expect("ctl printed JSON")
    }

    fn files(&self) -> Vec<serde_json::Value> {
        self.ctl_json(&["files"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// NumOpens of the session `sid` (as `ctl files` names it).
    fn num_opens(&self, sid: &str) -> u64 {
        let s = self.ctl_json(&["sessions"]);
        s.as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == sid))
            .and_then(|r| r["num_opens"].as_u64())
            .unwrap_or_else(|| panic!("session {sid} not listed: {s}"))
    }

    /// NetrConnectionEnum's NumOpens (`ctl trees`) of session `sid`'s tree
    /// connect to `mem`.
    fn tree_opens(&self, sid: &str) -> u64 {
        let t = self.ctl_json(&["trees"]);
        t.as_array()
            .and_then(|a| {
                a.iter()
                    .find(|r| r["session"] == sid && r["share"] == "mem")
            })
            .and_then(|r| r["num_opens"].as_u64())
            .unwrap_or_else(|| panic!("no mem tree of {sid}: {t}"))
    }

    /// `impacket_client.py MODE PORT USER PASS ARGS...`: its stdout lines.
    fn impacket(&self, mode: &str, who: (&str, &str), args: &[&str]) -> Vec<String> {
        let mut cmd = Command::new(IMPACKET_PYTHON);
        cmd.env("SMBCORE_TEST_HOST", self.memfs.host())
            .arg(client_script("impacket_client.py"))
            .arg(mode)
            .arg(self.memfs.port.to_string())
            .arg(who.0)
            .arg(who.1)
            .args(args);
        let out = run_capture(&mut cmd, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "impacket {mode}: {}",
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn rpcclient(&self, who: (&str, &str), command: &str) -> String {
        let mut cmd = Command::new("rpcclient");
        cmd.arg(self.memfs.host())
            .arg("-p")
            .arg(self.memfs.port.to_string())
            .arg("-U")
            .arg(format!("{}%{}", who.0, who.1))
            .arg("-c")
            .arg(command);
        output_text(&run_capture(&mut cmd, Duration::from_secs(30)))
    }
}

/// An impacket client holding one file open (`holdfile` mode), driven
/// over its stdin.
struct Holder {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Holder {
    fn start(server: &Server, who: (&str, &str), path: &str, locks: u32) -> Holder {
        let mut child = Command::new(IMPACKET_PYTHON)
            .env("SMBCORE_TEST_HOST", server.memfs.host())
            .arg(client_script("impacket_client.py"))
            .arg("holdfile")
            .arg(server.memfs.port.to_string())
            .arg(who.0)
            .arg(who.1)
            .arg("mem")
            .arg(path)
            .arg(locks.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start impacket holdfile");
        let stdin = child.stdin.take().expect("stdin");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut h = Holder {
            child,
            stdin,
            lines,
        };
        let first = h.line();
        assert_eq!(first, "READY", "holdfile {path}");
        h
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line from the impacket holder")
    }

    /// READ the held open: "OK" or the NTSTATUS.
    fn read(&mut self) -> String {
        writeln!(self.stdin, "read").expect("write to holder");
        let l = self.line();
        let rest = l.strip_prefix("READ ").unwrap_or_else(|| panic!("{l}"));
        rest.split(' ').next().unwrap_or("").to_string()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn row<'a>(files: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    files
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("{path} not listed: {files:?}"))
}

fn disk_files_listed_and_closed(threads: &str) {
    if !have_impacket() || !have("rpcclient") {
        return;
    }
    let server = Server::start(threads);
    let mut a = Holder::start(&server, USER, "docs\\held.txt", 2);
    let mut b = Holder::start(&server, ADMIN, "other.txt", 0);
    assert_eq!(a.read(), "OK");
    assert_eq!(b.read(), "OK");

    // ctl files: both, with share, share-relative path, user, locks and
    // permissions (GENERIC_ALL on a file the open created: R, W and C).
    let files = server.files();
    assert_eq!(files.len(), 2, "{files:?}");
    let fa = row(&files, "\\docs\\held.txt").clone();
    let fb = row(&files, "\\other.txt").clone();
    assert_eq!(fa["share"], "mem");
    assert_eq!(fa["user"], USER.0);
    assert_eq!(fa["locks"], 2);
    assert_eq!(fa["permissions"], 7);
    assert_eq!(fb["user"], ADMIN.0);
    assert_eq!(fb["locks"], 0);
    let ida = fa["id"].as_u64().expect("id").to_string();
    let idb = fb["id"].as_u64().expect("id").to_string();
    let sida = fa["session"].as_str().expect("session").to_string();
    let sidb = fb["session"].as_str().expect("session").to_string();
    assert_eq!(server.num_opens(&sida), 1);
    assert_eq!(server.num_opens(&sidb), 1);
    assert_eq!(server.tree_opens(&sida), 1);
    // The table shows them too.
    let text = output_text(&server.ctl(&["files"]));
    assert!(
        text.contains("\\docs\\held.txt") && text.contains("RWC"),
        "{text}"
    );

    // rpcclient netfileenum 3 (admin), and a plain user's refusal.
    let text = server.rpcclient(ADMIN, "netfileenum 3");
    assert!(text.contains("\\docs\\held.txt"), "{text}");
    assert!(text.contains("\\other.txt"), "{text}");
    let text = server.rpcclient(USER, "netfileenum 3");
    assert!(text.contains("WERR_ACCESS_DENIED"), "{text}");

    // impacket's NetrFileEnum level 3 and 2.
    let lines = server.impacket("files", ADMIN, &["3"]);
    assert!(lines.contains(&"STATUS 0".to_string()), "{lines:?}");
    assert!(
        lines.contains(&format!("FILE {ida} \\docs\\held.txt {}", USER.0)),
        "{lines:?}"
    );
    let lines = server.impacket("files", ADMIN, &["2"]);
    assert!(lines.contains(&format!("FILE {ida} - -")), "{lines:?}");
    assert!(lines.contains(&format!("FILE {idb} - -")), "{lines:?}");

    // A plain user can neither look nor close.
    let lines = server.impacket("fileclose", USER, &[&ida]);
    assert_eq!(lines, ["GETINFO 5 - -", "CLOSE 5"], "{lines:?}");
    assert_eq!(a.read(), "OK");

    // NetrFileGetInfo + NetrFileClose by the administrator: the holder's
    // next READ is FILE_CLOSED; the other client's open is untouched.
    let lines = server.impacket("fileclose", ADMIN, &[&ida]);
    assert_eq!(
        lines,
        [
            format!("GETINFO 0 \\docs\\held.txt {}", USER.0),
            "CLOSE 0".to_string()
        ],
        "{lines:?}"
    );
    assert_eq!(a.read(), FILE_CLOSED);
    assert_eq!(b.read(), "OK");
    let files = server.files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["path"], "\\other.txt");
    assert_eq!(server.num_opens(&sida), 0);
    assert_eq!(server.num_opens(&sidb), 1);
    assert_eq!(server.tree_opens(&sida), 0);
    // Closed already: NERR_FileIdNotFound.
    let lines = server.impacket("fileclose", ADMIN, &[&ida]);
    assert_eq!(lines[1], "CLOSE 2314", "{lines:?}");

    // ctl close-file: the same for the second open.
    let out = server.ctl(&["close-file", &idb]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(b.read(), FILE_CLOSED);
    assert!(server.files().is_empty());
    assert_eq!(server.num_opens(&sidb), 0);
    assert_eq!(server.ctl(&["close-file", &idb]).status.code(), Some(1));

    // The sessions stay: a new open on the same share works.
    let c = Holder::start(&server, USER, "docs\\again.txt", 0);
    drop(c);
    drop(a);
    drop(b);
}

#[test]
fn open_disk_files_listed_and_closed_one_shard() {
    disk_files_listed_and_closed("1");
}

#[test]
fn open_disk_files_listed_and_closed_two_shards() {
    disk_files_listed_and_closed("2");
}
