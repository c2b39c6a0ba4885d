//! `smbcore ctl`: the administrator's client for the admin socket.
//!
//! One JSON request per connection, one JSON reply (see [`crate::admin`]).
//! Listings print a table, or the server's JSON with `--json`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

/// `smbcore ctl` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum CtlCommand {
    /// List sessions (IPC$ ones included).
    Sessions {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Only sessions of this user.
        #[arg(long)]
        user: Option<String>,
        /// Only sessions from this client computer name.
        #[arg(long)]
        computer: Option<String>,
        /// Only sessions from this client address.
        #[arg(long)]
        client: Option<String>,
        /// Only sessions idle at least this long (250ms, 30s, 10m, 2h).
        #[arg(long, value_name = "DURATION")]
        idle_over: Option<String>,
        /// Order: id (default), idle (most idle first), connected (oldest
        /// first), user, computer, client.
        #[arg(long, default_value = "id")]
        sort: String,
    },
    /// List tree connects.
    Trees {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disconnect every session that matches (exits 1 when none did).
    Disconnect {
        /// Session id (hex 0x... or decimal).
        #[arg(long, group = "sel")]
        session: Option<String>,
        /// User name.
        #[arg(long, group = "sel")]
        user: Option<String>,
        /// Client computer name.
        #[arg(long, group = "sel")]
        computer: Option<String>,
        /// Client address.
        #[arg(long, group = "sel")]
        client: Option<String>,
        /// List what would be disconnected and change nothing (exits as the
        /// real command would: 0 when something matches, 1 when nothing does).
        #[arg(long)]
        dry_run: bool,
    },
    /// List open files (on disk shares) and pipes (NetrFileEnum's view):
    /// share, share-relative path, user, permissions (R, W, C) and locks.
    Files {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Close one open file or pipe by its id (as `ctl files` shows it); a
    /// file is closed in its share's backend as a client's CLOSE would.
    CloseFile {
        /// The id (decimal or 0x hex).
        id: String,
    },
    /// Show, set or reset configuration keys.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Counters and the reaping-lateness histogram.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `smbcore ctl config ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum ConfigAction {
    /// Every key, its value, and whether it is explicit or automatic.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set one key, live.
    Set {
        /// Key name.
        key: String,
        /// New value.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Return a key to its automatic value.
    Reset {
        /// Key name.
        key: String,
    },
}

/// Send one request to the admin socket and return the reply's `data`.
pub fn request(path: &Path, req: &Value) -> Result<Value, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        format!(
            "no smbcore server answers on admin socket {} ({e}); is `smbcore serve` running, and with this --admin-socket?",
            path.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    // A server that refuses this client (another uid, too many clients)
    // answers and closes without reading: its answer beats the write error.
    let written = stream.write_all(&line);
    let mut reply = String::new();
    let read = BufReader::new(&stream).read_line(&mut reply);
    match (written, read) {
        (_, Ok(n)) if n > 0 => {}
        (Err(e), _) => return Err(format!("admin socket write: {e}")),
        (Ok(()), Err(e)) => return Err(format!("admin socket read: {e}")),
        (Ok(()), Ok(_)) => {
            return Err("the server closed the admin socket without answering".into())
        }
    }
    let v: Value =
        serde_json::from_str(&reply).map_err(|e| format!("bad reply from server: {e}"))?;
    if v["ok"] == Value::Bool(true) {
        Ok(v["data"].clone())
    } else {
        Err(v["error"].as_str().unwrap_or("unknown error").to_string())
    }
}

/// Run one ctl command; prints results and returns the exit code.
pub fn run(path: &Path, cmd: CtlCommand) -> ExitCode {
    match run_inner(path, cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("smbcore ctl: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(path: &Path, cmd: CtlCommand) -> Result<ExitCode, String> {
    match cmd {
        CtlCommand::Sessions {
            json,
            user,
            computer,
            client,
            idle_over,
            sort,
        } => {
            let idle_over_ms = idle_over
                .map(|d| {
                    crate::config::parse_duration(&d)
                        .map(|d| d.as_millis() as u64)
                        .map_err(|e| e.to_string())
                })
                .transpose()?;
            let data = request(
                path,
                &json!({"op": "sessions", "user": user, "computer": computer, "client": client,
                        "idle_over_ms": idle_over_ms, "sort": sort}),
            )?;
            show(&data, json, format_sessions);
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Trees { json } => {
            let data = request(path, &json!({"op": "trees"}))?;
            show(&data, json, format_trees);
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Disconnect {
            session,
            user,
            computer,
            client,
            dry_run,
        } => {
            let mut req =
                match (session, user, computer, client) {
                    (Some(s), None, None, None) => json!({"op": "disconnect", "session": s}),
                    (None, Some(u), None, None) => json!({"op": "disconnect", "user": u}),
                    (None, None, Some(c), None) => json!({"op": "disconnect", "computer": c}),
                    (None, None, None, Some(a)) => json!({"op": "disconnect", "client": a}),
                    _ => return Err(
                        "disconnect needs exactly one of --session, --user, --computer, --client"
                            .into(),
                    ),
                };
            if dry_run {
                req["dry_run"] = json!(true);
                let data = request(path, &req)?;
                let rows = &data["would_disconnect"];
                let n = rows.as_array().map_or(0, Vec::len);
                if n == 0 {
                    println!("dry run: no session matches; nothing would be disconnected");
                    return Ok(ExitCode::from(1));
                }
                print!("{}", format_sessions(rows));
                println!(
                    "dry run: would disconnect {n} session{}; nothing changed",
                    if n == 1 { "" } else { "s" }
                );
                return Ok(ExitCode::SUCCESS);
            }
            let data = request(path, &req)?;
            let n = data["sessions"].as_u64().unwrap_or(0);
            if n == 0 {
                println!("no session matched; nothing disconnected");
                Ok(ExitCode::from(1))
            } else {
                println!("disconnected {n} session{}", if n == 1 { "" } else { "s" });
                Ok(ExitCode::SUCCESS)
            }
        }
        CtlCommand::Config { action } => match action {
            ConfigAction::Show { json } => {
                let data = request(path, &json!({"op": "config-show"}))?;
                show(&data, json, format_config);
                Ok(ExitCode::SUCCESS)
            }
            ConfigAction::Set { key, value } => {
                request(
                    path,
                    &json!({"op": "config-set", "key": key, "value": value}),
                )?;
                println!("{key} set to {value}");
                Ok(ExitCode::SUCCESS)
            }
            ConfigAction::Reset { key } => {
                let data = request(path, &json!({"op": "config-reset", "key": key}))?;
                println!(
                    "{key} reset to automatic ({})",
                    data["value"].as_str().unwrap_or("")
                );
                Ok(ExitCode::SUCCESS)
            }
        },
        CtlCommand::Files { json } => {
            let data = request(path, &json!({"op": "files"}))?;
            show(&data, json, format_files);
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::CloseFile { id } => {
            let data = request(path, &json!({"op": "close-file", "id": id}))?;
            if data["closed"] == Value::Bool(true) {
                println!("closed open {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                let why = match data["status"].as_u64() {
                    Some(170) => "busy: a call is waiting on it; try again",
                    _ => "no such open",
                };
                println!("open {id} not closed: {why}");
                Ok(ExitCode::from(1))
            }
        }
        CtlCommand::Stats { json } => {
            let data = request(path, &json!({"op": "stats"}))?;
            show(&data, json, format_stats);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Print a listing: the server's JSON with `--json`, else a table.
fn show(data: &Value, json: bool, table: fn(&Value) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(data).unwrap_or_default());
    } else {
        print!("{}", table(data));
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for r in rows {
        line(r, &mut out);
    }
    out
}

/// What is left of a Kerberos ticket: `9h59m`, `42s`, `expired`, or `-`.
fn ticket(v: &Value) -> String {
    match v.as_i64() {
        None => "-".into(),
        Some(ms) if ms <= 0 => "expired".into(),
        Some(ms) => {
            let s = ms / 1000;
            if s >= 3600 {
                format!("{}h{:02}m", s / 3600, s % 3600 / 60)
            } else if s >= 60 {
                format!("{}m{:02}s", s / 60, s % 60)
            } else {
                format!("{s}s")
            }
        }
    }
}

fn secs(v: &Value) -> String {
    let ms = v.as_u64().unwrap_or(0);
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// Render `sessions` data as a table.
pub fn format_sessions(data: &Value) -> String {
    let rows = data
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let trees: Vec<String> = r["trees"]
                        .as_array()
                        .map(|t| t.iter().map(s).collect())
                        .unwrap_or_default();
                    let kind = if r["anonymous"] == Value::Bool(true) {
                        "anonymous"
                    } else if r["guest"] == Value::Bool(true) {
                        "guest"
                    } else {
                        "user"
                    };
                    vec![
                        s(&r["id"]),
                        format!("{}:{}", s(&r["client"]), s(&r["client_port"])),
                        s(&r["computer"]),
                        s(&r["user"]),
                        kind.into(),
                        s(&r["auth"]),
                        ticket(&r["ticket_left_ms"]),
                        s(&r["dialect"]),
                        match r["signing_algorithm"].as_str() {
                            Some(a) => a.to_string(),
                            None if r["signed"] == Value::Bool(true) => "yes".into(),
                            None => "no".into(),
                        },
                        r["cipher"].as_str().unwrap_or("-").to_string(),
                        trees.join(","),
                        s(&r["open_handles"]),
                        secs(&r["connected_ms"]),
                        secs(&r["idle_ms"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "SESSION",
            "CLIENT",
            "COMPUTER",
            "USER",
            "KIND",
            "AUTH",
            "TICKET",
            "DIALECT",
            "SIGNING",
            "CIPHER",
            "TREES",
            "OPENS",
            "CONNECTED",
            "IDLE",
        ],
        rows,
    )
}

/// Render `files` data as a table.
pub fn format_files(data: &Value) -> String {
    let rows = data
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        s(&r["id"]),
                        s(&r["share"]),
                        s(&r["path"]),
                        s(&r["user"]),
                        s(&r["client"]),
                        s(&r["session"]),
                        permissions(r["permissions"].as_u64().unwrap_or(0)),
                        s(&r["locks"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "ID", "SHARE", "PATH", "USER", "CLIENT", "SESSION", "PERMS", "LOCKS",
        ],
        rows,
    )
}

/// PERM_FILE_READ, _WRITE and _CREATE (MS-SRVS 2.2.4.8) as `RWC`, `-` for
/// each one missing.
fn permissions(p: u64) -> String {
    [(1, 'R'), (2, 'W'), (4, 'C')]
        .iter()
        .map(|&(bit, c)| if p & bit != 0 { c } else { '-' })
        .collect()
}

/// Render `trees` data as a table.
pub fn format_trees(data: &Value) -> String {
    let rows = data
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        s(&r["session"]),
                        s(&r["tree"]),
                        s(&r["share"]),
                        s(&r["user"]),
                        s(&r["computer"]),
                        s(&r["client"]),
                        s(&r["dialect"]),
                        s(&r["num_opens"]),
                        secs(&r["connected_ms"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "SESSION",
            "TREE",
            "SHARE",
            "USER",
            "COMPUTER",
            "CLIENT",
            "DIALECT",
            "OPENS",
            "CONNECTED",
        ],
        rows,
    )
}

/// Render `config-show` data as a table.
pub fn format_config(data: &Value) -> String {
    let rows = data
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        s(&r["key"]),
                        s(&r["value"]),
                        if r["explicit"] == Value::Bool(true) {
                            "explicit"
                        } else {
                            "automatic"
                        }
                        .into(),
                        s(&r["source"]),
                        s(&r["automatic_value"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["KEY", "VALUE", "KIND", "SOURCE", "AUTOMATIC"], rows)
}

/// Render `stats` data.
pub fn format_stats(data: &Value) -> String {
    let mut out = String::new();
    if let Some(obj) = data.as_object() {
        for (k, v) in obj {
            if k.starts_with("lateness_us") || v.is_object() || v.is_array() {
                continue;
            }
            out.push_str(&format!("{k:<32} {}\n", s(v)));
        }
        for key in ["sessions_ended", "connections_ended"] {
            if let Some(m) = data[key].as_object() {
                out.push_str(&format!("{key} by reason:\n"));
                for (reason, v) in m {
                    out.push_str(&format!("  {reason:<18} {}\n", s(v)));
                }
            }
        }
        if let Some(m) = data["lateness_us_by_reason"].as_object() {
            out.push_str("reaping lateness by reason (microseconds: count p50 p99 max):\n");
            for (reason, l) in m {
                out.push_str(&format!(
                    "  {reason:<18} {} {} {} {}\n",
                    s(&l["count"]),
                    s(&l["p50"]),
                    s(&l["p99"]),
                    s(&l["max"])
                ));
            }
        }
        // Per xdp shard: the AF_XDP socket's and the TCP stack's drops.
        for sh in data["xdp"].as_array().into_iter().flatten() {
            out.push_str(&format!("xdp shard {}:\n", s(&sh["shard"])));
            for (k, v) in sh.as_object().into_iter().flatten() {
                if k != "shard" {
                    out.push_str(&format!("  {k:<30} {}\n", s(v)));
                }
            }
        }
        if let Some(l) = data["lateness_us"].as_object() {
            out.push_str("reaping lateness (microseconds):\n");
            for key in ["count", "p50", "p90", "p99", "p99_9", "max"] {
                out.push_str(&format!("  {key:<8} {}\n", s(&l[key])));
            }
        }
    }
    out
}
