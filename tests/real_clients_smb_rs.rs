//! The `smb` crate (smb-rs 0.12) as a real Rust client against `smbcore
//! serve` on loopback: connect on the test port with a forced dialect, log in
//! as a user (NTLMv2), connect IPC$, enumerate shares over srvsvc (smb-rs
//! binds with the NDR64 transfer syntax only), disconnect.
//!
//! With encryption (the crate's `encrypt` feature): on 3.0.2 (AES-128-CCM)
//! and 3.1.1 the crate encrypts when smbcore asks (`encryption = required`,
//! SESSION_FLAG_ENCRYPT_DATA) or when it is told to (`EncryptionMode::Required`
//! against a server that does not ask), and `ctl sessions --json` shows that
//! the client's requests came encrypted (`client_encrypts`).
//!
//! smb-rs cannot log in anonymously (its NTLM has no anonymous mode), so only
//! user logins are tested here. Every client call runs on its own thread with
//! a deadline, so a hang fails the test instead of stalling it.

mod common;

use std::time::Duration;

use common::{TestServer, ADMIN, USER};
use smb::connection::EncryptionMode;
use smb::{Client, ClientConfig, ConnectionConfig, Dialect};

/// What one smb-rs session saw.
#[derive(Debug)]
struct Seen {
    shares: Vec<String>,
    /// `ctl sessions` rows while the client was connected.
    sessions_while_connected: Vec<serde_json::Value>,
}

/// Run `f` on a thread; fail the test if it takes longer than `limit`, and
/// pass on its panic if it panics.
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = std::thread::spawn(f);
    let deadline = std::time::Instant::now() + limit;
    while !handle.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "smb-rs client did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn client_config(port: u16, dialect: Dialect, encryption: EncryptionMode) -> ClientConfig {
    let mut connection = ConnectionConfig {
        encryption_mode: encryption,
        port: Some(port),
        timeout: Some(Duration::from_secs(10)),
        min_dialect: Some(dialect),
        max_dialect: Some(dialect),
        client_name: Some("SMBRSTEST".into()),
        ..Default::default()
    };
    connection.auth_methods.ntlm = true;
    connection.auth_methods.kerberos = false;
    ClientConfig {
        dfs: false,
        connection,
        ..Default::default()
    }
}

/// Log in, IPC$, list shares (when `list`), look at the server's session
/// list, close.
fn session(server: &TestServer, dialect: Dialect, user: (&str, &str), list: bool) -> Seen {
    try_session(server, dialect, user, list, EncryptionMode::Allowed)
        .unwrap_or_else(|e| panic!("{dialect:?}: {e}"))
}

/// [`session`] with the crate's encryption mode; an error of ipc_connect or
/// list_shares is returned (the rest must work).
fn try_session(
    server: &TestServer,
    dialect: Dialect,
    user: (&str, &str),
    list: bool,
    encryption: EncryptionMode,
) -> Result<Seen, String> {
    let port = server.port;
    let host = server.host();
    let (user, password) = (user.0.to_string(), user.1.to_string());
    let admin_socket = server.admin_socket.clone();
    bounded(Duration::from_secs(60), move || {
        let client = Client::new(client_config(port, dialect, encryption));
        client
            .ipc_connect(&host, &user, password)
            .map_err(|e| format!("ipc_connect as {user}: {e}"))?;
        let shares = if list {
            client
                .list_shares(&host)
                .map_err(|e| format!("list_shares: {e}"))?
        } else {
            Vec::new()
        };
        let shares = shares
            .iter()
            .map(|s| {
                s.netname
                    .as_ref()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            })
            .collect();
        let out = std::process::Command::new(common::smbcore_bin())
            .args(["ctl", "--admin-socket"])
            .arg(&admin_socket)
            .args(["sessions", "--json"])
            .output()
            .expect("run smbcore ctl");
        assert!(out.status.success(), "ctl sessions failed");
        let sessions_while_connected: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("ctl printed JSON");
        client
            .close()
            .unwrap_or_else(|e| panic!("{dialect:?}: close: {e}"));
        Ok(Seen {
            shares,
            sessions_while_connected,
        })
    })
}

fn dialect_text(d: Dialect) -> &'static str {
    match d {
        Dialect::Smb0202 => "2.0.2",
        Dialect::Smb021 => "2.1",
        Dialect::Smb030 => "3.0",
        Dialect::Smb0302 => "3.0.2",
        Dialect::Smb0311 => "3.1.1",
    }
}

fn all_dialects() -> [Dialect; 5] {
    [
        Dialect::Smb0202,
        Dialect::Smb021,
        Dialect::Smb030,
        Dialect::Smb0302,
        Dialect::Smb0311,
    ]
}

#[test]
fn smb_rs_user_login_and_ipc_every_dialect() {
    let server = TestServer::start(&["--threads", "1"]);
    for dialect in all_dialects() {
        let seen = session(&server, dialect, USER, false);
        let mine: Vec<_> = seen
            .sessions_while_connected
            .iter()
            .filter(|s| s["user"] == USER.0)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{dialect:?}: {:?}",
            seen.sessions_while_connected
        );
        assert_eq!(mine[0]["dialect"], dialect_text(dialect), "{mine:?}");
        // smb-rs sends no NTLM workstation name: the address stands in.
        assert_eq!(mine[0]["computer"], server.client_ip().as_str(), "{mine:?}");
        assert_eq!(mine[0]["authenticated"], true, "{mine:?}");
        assert!(
            mine[0]["trees"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "IPC$")),
            "{mine:?}"
        );
        // After close (TREE_DISCONNECT, LOGOFF, disconnect) the session is gone.
        let left = server.wait_sessions(Duration::from_secs(5), |s| s.is_empty());
        assert!(left.is_empty(), "{dialect:?}: sessions left: {left:?}");
    }
}

#[test]
fn smb_rs_admin_login_on_two_shards() {
    // The default server runs one shard per core; login and IPC$ must work
    // whichever shard the connection lands on.
    let server = TestServer::start(&["--threads", "2"]);
    for _ in 0..4 {
        let seen = session(&server, Dialect::Smb0311, ADMIN, false);
        assert!(
            seen.sessions_while_connected
                .iter()
                .any(|s| s["user"] == ADMIN.0 && s["admin"] == true),
            "{:?}",
            seen.sessions_while_connected
        );
    }
    let left = server.wait_sessions(Duration::from_secs(5), |s| s.is_empty());
    assert!(left.is_empty(), "sessions left: {left:?}");
}

/// smb-rs binds srvsvc with NDR64 only and reads it with a `debug_assert!`
/// that every non-null unique pointer carries referent id 0x20000 (what
/// Windows sends); smb-rpc writes exactly that. smb-rs keeps the string's
/// terminating NUL (counted in the NDR actual_count, as on Windows), so the
/// names are compared without it.
#[test]
fn smb_rs_list_shares_every_dialect() {
    let server = TestServer::start(&["--threads", "1"]);
    for dialect in all_dialects() {
        let seen = session(&server, dialect, USER, true);
        assert!(
            seen.shares
                .iter()
                .any(|s| s.trim_end_matches('\0') == "IPC$"),
            "{dialect:?}: shares {:?}",
            seen.shares
        );
    }
}

/// The `ctl sessions` row of `user` while the client was connected (exactly one).
fn row_of<'a>(seen: &'a Seen, user: &str) -> &'a serde_json::Value {
    let mine: Vec<_> = seen
        .sessions_while_connected
        .iter()
        .filter(|s| s["user"] == user)
        .collect();
    assert_eq!(mine.len(), 1, "{:?}", seen.sessions_while_connected);
    mine[0]
}

fn lists_ipc(seen: &Seen) -> bool {
    seen.shares
        .iter()
        .any(|s| s.trim_end_matches('\0') == "IPC$")
}

/// Under `encryption = required` every request after SESSION_SETUP must come
/// encrypted (anything else is ACCESS_DENIED), so a share listing that works
/// is itself proof; `client_encrypts` says the server decrypted the client's
/// TRANSFORMs. The crate encrypts both when it follows the server's
/// SESSION_FLAG_ENCRYPT_DATA (`Allowed`) and when it insists (`Required`).
#[test]
fn smb_rs_encrypts_against_encryption_required_on_302_and_311() {
    let server = TestServer::start(&["--threads", "1", "--encryption", "required"]);
    for (dialect, cipher) in [
        (Dialect::Smb0302, "aes-128-ccm"),
        // smbcore's preference among the crate's offer.
        (Dialect::Smb0311, "aes-128-gcm"),
    ] {
        for mode in [EncryptionMode::Required, EncryptionMode::Allowed] {
            let seen = try_session(&server, dialect, USER, true, mode)
                .unwrap_or_else(|e| panic!("{dialect:?} {mode:?}: {e}"));
            assert!(lists_ipc(&seen), "{dialect:?} {mode:?}: {:?}", seen.shares);
            let row = row_of(&seen, USER.0);
            assert_eq!(row["dialect"], dialect_text(dialect), "{row}");
            assert_eq!(row["cipher"], cipher, "{dialect:?} {mode:?}: {row}");
            assert_eq!(row["client_encrypts"], true, "{dialect:?} {mode:?}: {row}");
            let left = server.wait_sessions(Duration::from_secs(5), |s| s.is_empty());
            assert!(left.is_empty(), "{dialect:?}: sessions left: {left:?}");
        }
    }
    // A client that will not encrypt gets no session: it offers no cipher
    // on 3.1.1, and on 3.0.2 it does not announce CAP_ENCRYPTION.
    for dialect in [Dialect::Smb0302, Dialect::Smb0311] {
        let r = try_session(&server, dialect, USER, true, EncryptionMode::Disabled);
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{dialect:?}: served in the clear"));
        assert!(e.contains("ipc_connect"), "{dialect:?}: {e}");
    }
    let left = server.wait_sessions(Duration::from_secs(5), |s| s.is_empty());
    assert!(left.is_empty(), "sessions left: {left:?}");
}

/// A server that does not ask for encryption still answers a client that
/// encrypts on its own (`EncryptionMode::Required` forces it), sealed with
/// the session's keys; a client that does not encrypt is served in the
/// clear and shows so.
#[test]
fn smb_rs_forcing_encryption_on_a_server_that_does_not_ask() {
    let server = TestServer::start(&["--threads", "1"]);
    for dialect in [Dialect::Smb0302, Dialect::Smb0311] {
        let seen = try_session(&server, dialect, USER, true, EncryptionMode::Required)
            .unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
        assert!(lists_ipc(&seen), "{dialect:?}: {:?}", seen.shares);
        let row = row_of(&seen, USER.0);
        assert_eq!(row["client_encrypts"], true, "{dialect:?}: {row}");
        let seen = try_session(&server, dialect, USER, true, EncryptionMode::Disabled)
            .unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
        assert!(lists_ipc(&seen), "{dialect:?}: {:?}", seen.shares);
        let row = row_of(&seen, USER.0);
        assert_eq!(row["client_encrypts"], false, "{dialect:?}: {row}");
        let left = server.wait_sessions(Duration::from_secs(5), |s| s.is_empty());
        assert!(left.is_empty(), "{dialect:?}: sessions left: {left:?}");
    }
}
