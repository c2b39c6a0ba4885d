//! Administration: the admin requests, and fan-out of admin work to shards.
//!
//! The admin socket ([`crate::admin_socket`]) is a Unix stream socket
//! (mode 0600, served to root and the server's own uid only). Each
//! connection carries one JSON request line and gets one JSON reply line:
//! `{"ok": true, "data": ...}` or `{"ok": false, "error": "..."}`. Requests: `sessions` (filters `user`, `computer`,
//! `client`), `trees`, `disconnect` (one of `session`, `user`, `computer`,
//! `client`), `config-show`, `config-set` (`key`, `value`), `config-reset`
//! (`key`), `stats`.
//!
//! Shards are reached over their crossbeam channel plus mio `Waker`; the
//! asking thread waits for every shard's answer. Shards never wait on each
//! other: srvsvc calls that need every shard's sessions (NetrSessionEnum,
//! NetrSessionDel, NetrConnectionEnum) are handed to a short-lived helper
//! thread that asks all shards and sends the result back to the origin shard.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde_json::{json, Value};
use smb_session::engine::{
    AdminFilter, AdminOp, AdminOpResult, AdminSelector, AdminToken, Engine, EngineConfig,
    EngineStats, SessionRow, TreeRow,
};
use smb_session::ids::{ConnId, SessionId};

use crate::config::Source;
use crate::Shared;

/// How long the admin side waits for a shard to answer.
const SHARD_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A question for one shard.
#[derive(Debug, Clone)]
pub enum AdminQuery {
    /// Sessions matching the filter.
    Sessions(AdminFilter),
    /// Every tree connect.
    Trees,
    /// Disconnect matching sessions.
    Disconnect(AdminSelector),
    /// Counters and histogram.
    Stats,
}

/// A shard's answer.
#[derive(Debug)]
pub enum AdminResult {
    /// Sessions.
    Sessions(Vec<SessionRow>),
    /// Trees.
    Trees(Vec<TreeRow>),
    /// How many sessions went; connections that must be closed.
    Disconnected {
        /// Sessions logged off.
        count: usize,
        /// Connections left without sessions, to close.
        closed: Vec<ConnId>,
    },
    /// Counters.
    Stats(Box<EngineStats>),
}

/// Commands a shard accepts from other threads.
#[derive(Debug)]
pub enum ShardCmd {
    /// Stop: log sessions off, close connections, exit.
    Shutdown,
    /// Answer an admin question.
    Query {
        /// The question.
        query: AdminQuery,
        /// Where the answer goes.
        reply: Sender<AdminResult>,
    },
    /// New settings for the engine (applied live).
    Apply(Arc<EngineConfig>),
    /// A srvsvc admin call's cluster-wide result is ready.
    AdminDone {
        /// Connection that asked.
        conn: ConnId,
        /// Which deferred call.
        token: AdminToken,
        /// The result.
        result: AdminOpResult,
    },
}

/// Answer an admin question from this shard's engine.
pub(crate) fn answer(engine: &mut Engine, query: AdminQuery, now: Instant) -> AdminResult {
    match query {
        AdminQuery::Sessions(filter) => AdminResult::Sessions(engine.admin_sessions(&filter, now)),
        AdminQuery::Trees => AdminResult::Trees(engine.admin_trees(now)),
        AdminQuery::Disconnect(sel) => {
            let (count, closed) = engine.admin_disconnect(&sel, now);
            AdminResult::Disconnected { count, closed }
        }
        AdminQuery::Stats => AdminResult::Stats(Box::new(engine.stats())),
    }
}

/// Ask every shard the same question and collect the answers.
pub fn ask_all(shared: &Shared, query: &AdminQuery) -> Vec<AdminResult> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut asked = 0;
    for s in shared.shards() {
        if s.send(ShardCmd::Query {
            query: query.clone(),
            reply: tx.clone(),
        }) {
            asked += 1;
        }
    }
    drop(tx);
    let deadline = Instant::now() + SHARD_REPLY_TIMEOUT;
    let mut out = Vec::with_capacity(asked);
    while out.len() < asked {
        match rx.recv_deadline(deadline) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    out
}

/// Sessions of every shard.
pub fn all_sessions(shared: &Shared, filter: &AdminFilter) -> Vec<SessionRow> {
    let mut rows: Vec<SessionRow> = ask_all(shared, &AdminQuery::Sessions(filter.clone()))
        .into_iter()
        .flat_map(|r| match r {
            AdminResult::Sessions(v) => v,
            _ => Vec::new(),
        })
        .collect();
    rows.sort_by_key(|r| r.id);
    rows
}

/// Trees of every shard.
pub fn all_trees(shared: &Shared) -> Vec<TreeRow> {
    ask_all(shared, &AdminQuery::Trees)
        .into_iter()
        .flat_map(|r| match r {
            AdminResult::Trees(v) => v,
            _ => Vec::new(),
        })
        .collect()
}

/// Disconnect on every shard; returns how many sessions went.
pub fn disconnect_all(shared: &Shared, sel: &AdminSelector) -> usize {
    // A session id names its shard: ask only that one.
    if let AdminSelector::Session(id) = sel {
        let Some(s) = shared.shards().get(id.shard() as usize) else {
            return 0;
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        if !s.send(ShardCmd::Query {
            query: AdminQuery::Disconnect(sel.clone()),
            reply: tx,
        }) {
            return 0;
        }
        return match rx.recv_timeout(SHARD_REPLY_TIMEOUT) {
            Ok(AdminResult::Disconnected { count, .. }) => count,
            _ => 0,
        };
    }
    ask_all(shared, &AdminQuery::Disconnect(sel.clone()))
        .into_iter()
        .map(|r| match r {
            AdminResult::Disconnected { count, .. } => count,
            _ => 0,
        })
        .sum()
}

/// Engine counters of every shard, merged.
pub fn all_stats(shared: &Shared) -> EngineStats {
    let mut total: Option<EngineStats> = None;
    for r in ask_all(shared, &AdminQuery::Stats) {
        if let AdminResult::Stats(s) = r {
            match &mut total {
                None => total = Some(*s),
                Some(t) => t.merge(&s),
            }
        }
    }
    total.unwrap_or_default()
}

/// Apply one `config set` / `config reset` and push it to every shard.
pub fn change_config(shared: &Shared, key: &str, value: Option<&str>) -> Result<String, String> {
    let mut settings = shared.settings.lock();
    let mut trial = settings.clone();
    match value {
        Some(v) => trial
            .set(Source::Runtime, key, v)
            .map_err(|e| e.to_string())?,
        None => trial.reset(key).map_err(|e| e.to_string())?,
    }
    let eff = trial.effective().map_err(|e| e.to_string())?;
    // A keytab that does not load leaves the settings as they were. Setting
    // it (even to the same file) reads it again: that is the reload.
    let reload = matches!(key, "keytab" | "kerberos-service");
    let kerberos = shared.kerberos.acceptor(&eff, reload)?;
    *settings = trial;
    let (now_value, _) = settings.get(key);
    drop(settings);
    shared
        .max_connections
        .store(eff.max_connections, std::sync::atomic::Ordering::Relaxed);
    let mut cfg = shared.engine_config.lock();
    let guid = cfg.server_guid;
    let mut new = crate::engine_config(&eff, &shared.users, &shared.shares, guid, &cfg.memory);
    new.kerberos = kerberos;
    let new = Arc::new(new);
    *cfg = new.clone();
    drop(cfg);
    for s in shared.shards() {
        s.send(ShardCmd::Apply(new.clone()));
    }
    tracing::info!(key, value = %now_value, "configuration changed");
    Ok(now_value)
}

/// Run a deferred srvsvc admin call against every shard on a helper thread,
/// then hand the result back to the origin shard.
pub(crate) fn spawn_srvsvc_admin(
    shared: Arc<Shared>,
    origin: u16,
    conn: ConnId,
    token: AdminToken,
    op: AdminOp,
) {
    let spawned = std::thread::Builder::new()
        .name("smbcore-srvsvc-admin".into())
        .spawn(move || {
            let result = match op {
                AdminOp::Sessions => {
                    AdminOpResult::Sessions(all_sessions(&shared, &AdminFilter::default()))
                }
                AdminOp::DeleteMany(sels) => {
                    AdminOpResult::Deleted(sels.iter().map(|s| disconnect_all(&shared, s)).sum())
                }
                AdminOp::Trees => AdminOpResult::Trees(all_trees(&shared)),
            };
            if let Some(s) = shared.shards().get(origin as usize) {
                s.send(ShardCmd::AdminDone {
                    conn,
                    token,
                    result,
                });
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start srvsvc admin helper");
    }
}

/// How a session logged on, for listings.
fn auth_method(r: &SessionRow) -> &'static str {
    match &r.user {
        _ if r.kerberos => "kerberos",
        smb_session::table::UserName::Anonymous => "anonymous",
        smb_session::table::UserName::Guest => "guest",
        smb_session::table::UserName::User(_) => "ntlm",
    }
}

fn session_json(r: &SessionRow) -> Value {
    let now = std::time::Instant::now();
    let wall = std::time::SystemTime::now();
    // The ticket end as wall-clock time (seconds since 1970) and what is
    // left of it (negative once expired).
    let (ticket_end_unix, ticket_left_ms) = match r.ticket_end {
        Some(end) => {
            let left_ms = if end >= now {
                end.duration_since(now).as_millis() as i64
            } else {
                -(now.duration_since(end).as_millis() as i64)
            };
            let at = wall
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64 + left_ms)
                .unwrap_or(0);
            (Value::from(at / 1000), Value::from(left_ms))
        }
        None => (Value::Null, Value::Null),
    };
    json!({
        "auth": auth_method(r),
        "ticket_end_unix": ticket_end_unix,
        "ticket_left_ms": ticket_left_ms,
        "id": format!("{:#018x}", r.id.as_u64()),
        "shard": r.id.shard(),
        "client": r.client.ip().to_string(),
        "computer": r.computer,
        "user": r.user.to_string(),
        "authenticated": r.authenticated,
        "admin": r.admin,
        "dialect": crate::config::dialect_name(r.dialect),
        "signed": r.signed,
        "trees": r.trees.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "open_handles": r.open_handles,
        "connected_ms": r.connected.as_millis() as u64,
        "idle_ms": r.idle.as_millis() as u64,
    })
}

fn tree_json(r: &TreeRow) -> Value {
    json!({
        "session": format!("{:#018x}", r.session.as_u64()),
        "tree": r.tree.as_u32(),
        "share": r.share.to_string(),
        "user": r.user.to_string(),
        "computer": r.computer,
        "client": r.client.to_string(),
        "connected_ms": r.connected.as_millis() as u64,
    })
}

/// Stats as JSON (also used by the metrics endpoint).
pub fn stats_json(shared: &Shared) -> Value {
    let s = all_stats(shared);
    let h = &s.lateness_us;
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    let rt = &shared.stats;
    let ld = std::sync::atomic::Ordering::Relaxed;
    json!({
        "uptime_ms": shared.started.elapsed().as_millis() as u64,
        "shards": shared.shards().len(),
        "transport": shared.transport,
        "connections": s.connections,
        "sessions": s.sessions,
        "trees": s.trees,
        "sessions_timed_out": s.timed_out,
        "sessions_disconnected_by_admin": s.admin_disconnected,
        "sessions_logged_off": s.logged_off,
        "pre_auth_timeouts": s.pre_auth_timeouts,
        "protocol_errors": s.protocol_errors + rt.protocol_errors.load(ld),
        "logons_failed": s.logons_failed,
        "logons_delayed": s.logons_delayed,
        "kerberos_logons": s.kerberos_logons,
        "kerberos_refused": smb_auth::kerberos::KerberosFailure::ALL
            .iter()
            .map(|f| (f.name().to_string(), Value::from(s.kerberos_refused[f.index()])))
            .collect::<serde_json::Map<String, Value>>(),
        "kerberos_refused_replay": s.kerberos_refused[smb_auth::kerberos::KerberosFailure::Replay.index()],
        "kerberos_refused_skew": s.kerberos_refused[smb_auth::kerberos::KerberosFailure::Skew.index()],
        "kerberos_refused_wrong_service": s.kerberos_refused[smb_auth::kerberos::KerberosFailure::WrongService.index()],
        "kerberos_tickets_expired": s.tickets_expired,
        "session_expired_requests": s.expired_requests,
        "logons_waiting": s.logons_waiting,
        "client_memory_bytes": shared.engine_config.lock().memory.used(),
        "output_queued_bytes": s.output_queued_bytes,
        "memory_budget_bytes": shared.engine_config.lock().memory.limit(),
        "connections_refused": rt.refused_connections.load(ld),
        "accept_errors": rt.accept_errors.load(ld),
        "sockets": rt.sockets.load(ld),
        "lateness_us": {
            "count": h.len(),
            "p50": q(0.5),
            "p90": q(0.9),
            "p99": q(0.99),
            "p99_9": q(0.999),
            "max": h.max(),
        },
    })
}

fn parse_session_id(s: &str) -> Result<SessionId, String> {
    let t = s.trim();
    let raw = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        t.parse::<u64>()
    }
    .map_err(|_| format!("bad session id '{s}': give 0x-prefixed hex or decimal"))?;
    SessionId::from_raw(raw).ok_or_else(|| format!("session id {s} names no possible session"))
}

fn opt_str(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(|s| s.to_string())
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("bad client address '{s}'"))
}

/// Handle one admin request (the JSON body of a socket line).
pub fn handle_request(shared: &Shared, req: &Value) -> Result<Value, String> {
    let op = req.get("op").and_then(|o| o.as_str()).unwrap_or("");
    match op {
        "sessions" => {
            let filter = AdminFilter {
                user: opt_str(req, "user"),
                computer: opt_str(req, "computer"),
                client_ip: opt_str(req, "client").map(|c| parse_ip(&c)).transpose()?,
            };
            let rows = all_sessions(shared, &filter);
            Ok(Value::Array(rows.iter().map(session_json).collect()))
        }
        "trees" => Ok(Value::Array(all_trees(shared).iter().map(tree_json).collect())),
        "disconnect" => {
            let sel = if let Some(s) = opt_str(req, "session") {
                AdminSelector::Session(parse_session_id(&s)?)
            } else if let Some(u) = opt_str(req, "user") {
                AdminSelector::User(u)
            } else if let Some(c) = opt_str(req, "computer") {
                AdminSelector::Computer(c)
            } else if let Some(a) = opt_str(req, "client") {
                AdminSelector::ClientIp(parse_ip(&a)?)
            } else {
                return Err("disconnect needs one of session, user, computer, client".into());
            };
            let n = disconnect_all(shared, &sel);
            tracing::info!(selector = ?sel, sessions = n, "admin disconnect");
            Ok(json!({ "sessions": n }))
        }
        "config-show" => {
            let rows = shared.settings.lock().show();
            serde_json::to_value(rows).map_err(|e| e.to_string())
        }
        "config-set" => {
            let key = opt_str(req, "key").ok_or("config-set needs key")?;
            let value = opt_str(req, "value").ok_or("config-set needs value")?;
            let v = change_config(shared, &key, Some(&value))?;
            Ok(json!({ "key": key, "value": v }))
        }
        "config-reset" => {
            let key = opt_str(req, "key").ok_or("config-reset needs key")?;
            let v = change_config(shared, &key, None)?;
            Ok(json!({ "key": key, "value": v }))
        }
        "stats" => Ok(stats_json(shared)),
        other => Err(format!(
            "unknown admin request '{other}'; known: sessions, trees, disconnect, config-show, config-set, config-reset, stats"
        )),
    }
}
