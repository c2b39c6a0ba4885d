//! The admin socket: where it may live, how it is bound, and who is served.
//!
//! - **Its directory** is the server's own: created with mode 0700 when it is
//!   missing, and refused when it is a symbolic link, is not owned by the
//!   server's uid, or may be written by group or others. A directory that
//!   another local user planted (say in a shared temp dir) is never used.
//! - **The socket** is bound in a private (0700) staging directory beside its
//!   final path, given mode 0600, and only then renamed into place, so that it
//!   is never reachable under its final name with the looser mode `bind`
//!   gives it (0777 less the umask). A live socket of another server at that
//!   path is never replaced, nor is anything that is not a socket.
//! - **Each connection** is checked with SO_PEERCRED: only root and the
//!   server's own uid are served; anyone else gets one error line and is
//!   closed.
//! - **Each client** is served on a thread of its own (at most
//!   [`MAX_CLIENTS`] at once; more are told so and closed), must send its
//!   request line (at most [`MAX_REQUEST`] bytes) within [`REQUEST_DEADLINE`],
//!   and gets its reply within [`WRITE_TIMEOUT`]. A silent or slow client holds
//!   up only itself.
//!
//! The requests themselves are in [`crate::admin`].

use std::fs::{self, DirBuilder, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::admin::handle_request;
use crate::client_slots::ClientSlots;
use crate::transport::{effective_uid, peer_uid};
use crate::Shared;

/// Admin clients served at once.
pub const MAX_CLIENTS: usize = 16;
/// Longest admin request line, in bytes (the newline not counted).
pub const MAX_REQUEST: usize = 64 * 1024;
/// Time a client has to send its whole request line.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Time a client has to take its reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound admin socket, not yet served. Dropping it closes the socket and
/// removes its path (unless something else has taken that path since).
#[derive(Debug)]
pub(crate) struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file bound, to remove only that one.
    file_id: (u64, u64),
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        if let Ok(m) = fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.file_id {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl AdminSocket {
    /// Check (or create) the directory of `path` and bind the socket there.
    /// Every error names the path or directory it is about.
    pub(crate) fn bind(path: &Path) -> io::Result<AdminSocket> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        private_dir(dir)?;
        if let Ok(m) = fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "admin socket path {} exists and is not a socket",
                        path.display()
                    ),
                ));
            }
            // A stale socket of a dead server is replaced; a live one is not.
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "admin socket {} is in use by another server",
                        path.display()
                    ),
                ));
            }
        }
        let listener = bind_private(path, dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind admin socket {}: {e}", path.display()),
            )
        })?;
        let m = fs::symlink_metadata(path)?;
        Ok(AdminSocket {
            listener,
            path: path.to_path_buf(),
            file_id: (m.dev(), m.ino()),
        })
    }

    /// The socket's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the listening socket, to stop its thread with
    /// (see [`stop_waker`]): it works when the socket's file was removed
    /// under the server, where connecting by path cannot.
    pub(crate) fn waker(&self) -> io::Result<UnixListener> {
        self.listener.try_clone()
    }

    /// Serve the socket on a thread (each client on a thread of its own),
    /// until `shared.stopping` is set and a connection wakes the thread.
    pub(crate) fn spawn(self, shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("smbcore-admin".into())
            .spawn(move || self.accept_loop(&shared))
    }

    fn accept_loop(&self, shared: &Arc<Shared>) {
        let slots = ClientSlots::new(MAX_CLIENTS);
        let server_uid = effective_uid();
        for stream in self.listener.incoming() {
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            if let Err(e) = check_peer(&stream, server_uid) {
                tracing::warn!(error = %e, "admin connection refused");
                reply(&mut stream, &error_reply(&e));
                continue;
            }
            let Some(slot) = slots.acquire() else {
                let e = format!(
                    "too many admin clients at once (at most {}); try again",
                    slots.max()
                );
                reply(&mut stream, &error_reply(&e));
                continue;
            };
            let shared = shared.clone();
            if let Err(e) = slot.spawn("smbcore-admin-client", move || {
                serve_client(stream, &shared);
            }) {
                tracing::warn!(error = %e, "cannot start an admin client thread");
            }
        }
    }
}

/// Wake the admin thread blocked in accept() on `listener` (a
/// [`AdminSocket::waker`]): shutting the listening socket down makes every
/// accept on it fail at once, and the thread then sees `stopping`.
pub(crate) fn stop_waker(listener: &UnixListener) {
    let _ = socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Both);
}

/// Only root and the server's own uid may administer it.
fn check_peer(stream: &UnixStream, server_uid: u32) -> Result<(), String> {
    let uid = peer_uid(stream).map_err(|e| format!("cannot tell who is asking: {e}"))?;
    if uid == 0 || uid == server_uid {
        Ok(())
    } else {
        Err(format!(
            "uid {uid} is not allowed to administer this server (only root and uid {server_uid} are)"
        ))
    }
}

fn serve_client(mut stream: UnixStream, shared: &Shared) {
    let line = match read_request(&mut stream, Instant::now() + REQUEST_DEADLINE) {
        Ok(Some(line)) => line,
        Ok(None) => return,
        Err(e) => {
            reply(&mut stream, &error_reply(&e));
            return;
        }
    };
    let answer = match serde_json::from_slice::<Value>(&line) {
        Ok(req) if req.get("op").and_then(Value::as_str) == Some("sessions") => {
            // Streamed: the listing is never whole in memory.
            let mut out = io::BufWriter::with_capacity(64 << 10, &mut stream);
            match crate::admin::write_sessions(shared, &req, &mut out) {
                Ok(_) => return,
                Err(e) => error_reply(&e),
            }
        }
        Ok(req) => match handle_request(shared, &req) {
            Ok(data) => json!({ "ok": true, "data": data }),
            Err(e) => error_reply(&e),
        },
        Err(e) => error_reply(&format!("bad request: {e}")),
    };
    reply(&mut stream, &answer);
}

fn error_reply(e: &str) -> Value {
    json!({ "ok": false, "error": e })
}

fn reply(stream: &mut UnixStream, v: &Value) {
    let mut bytes = v.to_string().into_bytes();
    bytes.push(b'\n');
    let _ = stream.write_all(&bytes);
}

/// Read one request line (without its newline) of at most [`MAX_REQUEST`]
/// bytes, complete before `deadline`. `Ok(None)`: the client left without
/// sending anything. `Err`: what to tell the client.
fn read_request(stream: &mut UnixStream, deadline: Instant) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(timed_out());
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) if line.is_empty() => return Ok(None),
            Ok(0) => return Ok(Some(line)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) => return Err(format!("admin socket read: {e}")),
        };
        let got = &chunk[..n];
        let end = got.iter().position(|&b| b == b'\n');
        line.extend_from_slice(&got[..end.unwrap_or(n)]);
        if line.len() > MAX_REQUEST {
            return Err(format!(
                "admin request longer than {MAX_REQUEST} bytes; refused"
            ));
        }
        if end.is_some() {
            return Ok(Some(line));
        }
    }
}

fn timed_out() -> String {
    format!(
        "no complete admin request line within {} s",
        REQUEST_DEADLINE.as_secs()
    )
}

/// Make sure `dir` is a directory of this server's own that nobody else may
/// write to, creating it (mode 0700) when it is missing.
fn private_dir(dir: &Path) -> io::Result<()> {
    let refuse = |why: String| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "admin socket directory {} {why}; refusing it",
                dir.display()
            ),
        )
    };
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot create admin socket directory {}: {e}",
                    dir.display()
                ),
            ))
        }
    }
    let m = fs::symlink_metadata(dir)?;
    let uid = effective_uid();
    if m.file_type().is_symlink() {
        return Err(refuse("is a symbolic link".into()));
    }
    if !m.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    if m.uid() != uid {
        return Err(refuse(format!(
            "is owned by uid {}, not by this server's uid {uid}",
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "is writable by group or others (mode {:o})",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Bind a Unix socket at `path` (in `dir`) that is never reachable there
/// with a mode looser than 0600: bind it inside a fresh 0700 directory, set
/// its mode, then rename it into place.
fn bind_private(path: &Path, dir: &Path) -> io::Result<UnixListener> {
    let tag: [u8; 4] = crate::rng::os_random()?;
    let staging = dir.join(format!(".smbcore-{:08x}", u32::from_le_bytes(tag)));
    DirBuilder::new().mode(0o700).create(&staging)?;
    let staged = staging.join("s");
    let bound = UnixListener::bind(&staged).and_then(|l| {
        fs::set_permissions(&staged, Permissions::from_mode(0o600))?;
        fs::rename(&staged, path)?;
        Ok(l)
    });
    let _ = fs::remove_file(&staged);
    let _ = fs::remove_dir(&staging);
    bound
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let r: [u8; 8] = crate::rng::os_random().expect("OS randomness");
            let p = std::env::temp_dir().join(format!(
                "smb-server-admin-{tag}-{:x}",
                u64::from_le_bytes(r)
            ));
            DirBuilder::new().mode(0o700).create(&p).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_missing_directory_is_made_private_and_the_socket_is_0600() {
        let t = Tmp::new("new");
        let path = t.0.join("a/b/admin.sock");
        let s = AdminSocket::bind(&path).unwrap();
        let d = fs::symlink_metadata(t.0.join("a/b")).unwrap();
        assert_eq!(d.mode() & 0o777, 0o700);
        let m = fs::symlink_metadata(&path).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.mode() & 0o777, 0o600);
        // Nothing is left of the staging directory.
        let names: Vec<_> = fs::read_dir(t.0.join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("admin.sock")]);
        drop(s);
        assert!(!path.exists());
    }

    #[test]
    fn a_live_socket_or_a_file_at_the_path_is_never_replaced_a_stale_one_is() {
        let t = Tmp::new("live");
        let path = t.0.join("admin.sock");
        let live = AdminSocket::bind(&path).unwrap();
        let e = AdminSocket::bind(&path).unwrap_err();
        assert!(e.to_string().contains("in use by another server"), "{e}");
        // A stale socket (its listener gone, the file kept) is replaced.
        let stale = UnixListener::bind(t.0.join("stale.sock")).unwrap();
        drop(stale);
        let again = AdminSocket::bind(&t.0.join("stale.sock")).unwrap();
        drop(again);
        let file = t.0.join("file");
        fs::write(&file, "keep me").unwrap();
        let e = AdminSocket::bind(&file).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
        drop(live);
    }

    #[test]
    fn an_oversized_or_unfinished_request_is_an_error_a_line_is_not() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"{\"op\":\"stats\"}\nrest").unwrap();
        let soon = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            read_request(&mut a, soon).unwrap().unwrap(),
            b"{\"op\":\"stats\"}"
        );

        let (mut a, mut b) = UnixStream::pair().unwrap();
        let big = vec![b' '; MAX_REQUEST + 1];
        let writer = std::thread::spawn(move || {
            let _ = b.write_all(&big);
            b
        });
        let e = read_request(&mut a, soon).unwrap_err();
        assert!(e.contains("longer than 65536 bytes"), "{e}");
        drop(a);
        drop(writer.join().unwrap());

        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"{\"op\":").unwrap();
        let e = read_request(&mut a, Instant::now() + Duration::from_millis(50)).unwrap_err();
        assert!(e.contains("no complete admin request line"), "{e}");
        drop(b);
        let (mut a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert_eq!(read_request(&mut a, soon).unwrap(), None);
    }
}
