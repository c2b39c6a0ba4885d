//! Administration: the admin requests, and fan-out of admin work to shards.
//!
//! The admin socket ([`crate::admin_socket`]) is a Unix stream socket
//! (mode 0600, served to root and the server's own uid only). Each
//! connection carries one JSON request line and gets one JSON reply line:
//! `{"ok": true, "data": ...}` or `{"ok": false, "error": "..."}`. Requests: `sessions` (filters `user`, `computer`,
//! `client`, `idle_over_ms`; `sort`: `id`, `idle`, `connected`, `user`,
//! `client`, `computer`), `trees`, `disconnect` (one of `session`, `user`,
//! `computer`, `client`; `dry_run` lists what would go and changes nothing),
//! `files`, `close-file` (`id`), `config-show`, `config-set` (`key`,
//! `value`), `config-reset` (`key`), `stats`.
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
use smb_rpc::srvsvc::{parmnum, werr, ServerInfoChange};
use smb_session::engine::{
    AdminFilter, AdminOp, AdminOpResult, AdminSelector, AdminToken, EndReason, Engine,
    EngineConfig, EngineStats, FileRow, SessionRow, TreeRow,
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
    /// Open files and pipes.
    Files,
    /// Close one open.
    CloseFile(u32),
    /// What a disconnect would remove (a dry run).
    Preview(AdminSelector),
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
    /// Open files.
    Files(Vec<FileRow>),
    /// A NET_API_STATUS.
    Status(u32),
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
        AdminQuery::Files => AdminResult::Files(engine.admin_files()),
        AdminQuery::CloseFile(id) => AdminResult::Status(engine.admin_close_file(id, now)),
        AdminQuery::Preview(sel) => {
            AdminResult::Sessions(engine.admin_disconnect_preview(&sel, now))
        }
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

/// Open files and pipes of every shard.
pub fn all_files(shared: &Shared) -> Vec<FileRow> {
    let mut rows: Vec<FileRow> = ask_all(shared, &AdminQuery::Files)
        .into_iter()
        .flat_map(|r| match r {
            AdminResult::Files(v) => v,
            _ => Vec::new(),
        })
        .collect();
    rows.sort_by_key(|f| f.id);
    rows
}

/// Close the open `id` (its top 8 bits name its shard): a NET_API_STATUS.
pub fn close_file(shared: &Shared, id: u32) -> u32 {
    let Some(s) = shared.shards().get((id >> 24) as usize) else {
        return werr::FILE_ID_NOT_FOUND;
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    if !s.send(ShardCmd::Query {
        query: AdminQuery::CloseFile(id),
        reply: tx,
    }) {
        return werr::FILE_ID_NOT_FOUND;
    }
    match rx.recv_timeout(SHARD_REPLY_TIMEOUT) {
        Ok(AdminResult::Status(st)) => st,
        _ => werr::FILE_ID_NOT_FOUND,
    }
}

/// What a disconnect of `sel` would remove, on every shard (a dry run).
pub fn preview_disconnect(shared: &Shared, sel: &AdminSelector) -> Vec<SessionRow> {
    let mut rows: Vec<SessionRow> = ask_all(shared, &AdminQuery::Preview(sel.clone()))
        .into_iter()
        .flat_map(|r| match r {
            AdminResult::Sessions(v) => v,
            _ => Vec::new(),
        })
        .collect();
    rows.sort_by_key(|r| r.id);
    rows
}

/// NetrServerSetInfo (MS-SRVS 3.1.4.18), applied exactly as `ctl config
/// set`: the autodisconnect key becomes explicit and every shard takes it
/// live; the comment too when it changed. Nothing else is touched.
pub fn set_server_info(shared: &Shared, change: &ServerInfoChange) -> (u32, Option<u32>) {
    if let Some(m) = change.autodisconnect_minutes {
        // sv_disc: minutes, -1 = never (the forms `NET CONFIG SERVER
        // /AUTODISCONNECT` takes); anything else is bad.
        if !(-1..=65535).contains(&m) {
            return (werr::INVALID_PARAMETER, Some(parmnum::DISC));
        }
        if let Err(e) = change_config(shared, "autodisconnect", Some(&m.to_string())) {
            tracing::info!(error = %e, "NetrServerSetInfo: autodisconnect refused");
            return (werr::INVALID_PARAMETER, Some(parmnum::DISC));
        }
        tracing::info!(
            minutes = m,
            "autodisconnect set over srvsvc (NetrServerSetInfo)"
        );
    }
    if let Some(c) = &change.comment {
        let current = shared.settings.lock().get("server-comment").0;
        if *c != current {
            if let Err(e) = change_config(shared, "server-comment", Some(c)) {
                tracing::info!(error = %e, "NetrServerSetInfo: comment refused");
                return (werr::INVALID_PARAMETER, Some(parmnum::COMMENT));
            }
        }
    }
    (werr::SUCCESS, None)
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
    shared.per_client.set_limit(eff.max_connections_per_client);
    let mut cfg = shared.engine_config.lock();
    let guid = cfg.server_guid;
    let mut new = crate::engine_config(&eff, &shared.users, &shared.shares, guid, &cfg.memory);
    new.transport = shared.transport;
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
                AdminOp::Files => AdminOpResult::Files(all_files(&shared)),
                AdminOp::CloseFile(id) => AdminOpResult::Done {
                    status: close_file(&shared, id),
                    parm_err: None,
                },
                AdminOp::SetServerInfo(change) => {
                    let (status, parm_err) = set_server_info(&shared, &change);
                    AdminOpResult::Done { status, parm_err }
                }
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

/// One session with every field `Get-SmbSession` shows (SessionId,
/// ClientComputerName, ClientUserName, Dialect, NumOpens, SecondsExists,
/// SecondsIdle) and the ones smbcore adds.
fn session_json(r: &SessionRow, transport: &str) -> Value {
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
        "client": r.client.ip().to_canonical().to_string(),
        "client_port": r.client.port(),
        "computer": r.computer,
        "user": r.user.to_string(),
        "authenticated": r.authenticated,
        "admin": r.admin,
        "anonymous": r.anonymous,
        "guest": r.guest,
        "dialect": crate::config::dialect_name(r.dialect),
        "signed": r.signed,
        "signing_algorithm": r.signing_algorithm,
        "cipher": r.cipher,
        "client_encrypts": r.client_encrypts,
        "transport": transport,
        "trees": r.trees.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "open_handles": r.open_handles,
        "num_opens": r.open_handles,
        "connected_ms": r.connected.as_millis() as u64,
        "idle_ms": r.idle.as_millis() as u64,
        "seconds_exists": r.connected.as_secs(),
        "seconds_idle": r.idle.as_secs(),
    })
}

fn tree_json(r: &TreeRow, transport: &str) -> Value {
    json!({
        "session": format!("{:#018x}", r.session.as_u64()),
        "tree": r.tree.as_u32(),
        "share": r.share.to_string(),
        "user": r.user.to_string(),
        "computer": r.computer,
        "client": r.client.to_string(),
        "client_port": r.client.port(),
        "dialect": crate::config::dialect_name(r.dialect),
        "num_opens": r.open_handles,
        "transport": transport,
        "connected_ms": r.connected.as_millis() as u64,
    })
}

fn file_json(f: &FileRow) -> Value {
    json!({
        "id": f.id,
        "session": format!("{:#018x}", f.session.as_u64()),
        "user": f.user.to_string(),
        "client": f.client.ip().to_canonical().to_string(),
        "client_port": f.client.port(),
        "share": f.share,
        "path": f.path,
        "permissions": f.permissions,
        "locks": f.locks,
    })
}

fn histogram_json(h: &hdrhistogram::Histogram<u64>) -> Value {
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    json!({
        "count": h.len(),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "p99_9": q(0.999),
        "max": h.max(),
    })
}

/// Sort and filter a session listing as `ctl sessions --sort/--idle-over` asks.
fn sort_sessions(rows: &mut Vec<SessionRow>, req: &Value) -> Result<(), String> {
    if let Some(ms) = req.get("idle_over_ms").and_then(Value::as_u64) {
        rows.retain(|r| r.idle.as_millis() as u64 >= ms);
    }
    match req.get("sort").and_then(Value::as_str).unwrap_or("id") {
        "id" => rows.sort_by_key(|r| r.id),
        // Most idle first, longest connected first: what an operator looks for.
        "idle" => rows.sort_by_key(|r| std::cmp::Reverse(r.idle)),
        "connected" => rows.sort_by_key(|r| std::cmp::Reverse(r.connected)),
        "user" => rows.sort_by_key(|r| r.user.to_string().to_ascii_lowercase()),
        "computer" => rows.sort_by_key(|r| r.computer.to_ascii_lowercase()),
        "client" => rows.sort_by_key(|r| r.client),
        other => {
            return Err(format!(
                "unknown sort key '{other}'; known: id, idle, connected, user, computer, client"
            ))
        }
    }
    Ok(())
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
    let per_reason = |v: &[u64]| {
        let mut m = serde_json::Map::new();
        for r in EndReason::ALL {
            m.insert(r.name().into(), json!(v[r.index()]));
        }
        Value::Object(m)
    };
    let mut conns_ended = s.connections_ended;
    // Refusals happen before an engine sees the connection; the shards
    // count them, the runtime counter is the authority.
    conns_ended[EndReason::Limit.index()] = shared
        .stats
        .refused_connections
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut lateness_by_reason = serde_json::Map::new();
    for (r, h) in EndReason::REAPED.iter().zip(&s.reap_lateness_us) {
        lateness_by_reason.insert(r.name().into(), histogram_json(h));
    }
    let (clients, busiest) = shared.per_client.summary();
    let xdp: Vec<Value> = shared
        .xdp_counters
        .lock()
        .iter()
        .map(|(shard, c)| xdp_json(*shard, c))
        .collect();
    let rt = &shared.stats;
    let ld = std::sync::atomic::Ordering::Relaxed;
    let mut v = json!({
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
        "connections_refused_per_client": rt.refused_per_client.load(ld),
        "client_addresses": clients,
        "connections_busiest_client": busiest,
        "max_connections_per_client": shared.settings.lock().effective().map(|e| e.max_connections_per_client).unwrap_or(0),
        "sessions_ended": per_reason(&s.sessions_ended),
        "connections_ended": per_reason(&conns_ended),
        "lateness_us_by_reason": Value::Object(lateness_by_reason),
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
    });
    // Per xdp shard (empty on the other transports).
    v["xdp"] = Value::Array(xdp);
    v
}

/// One xdp shard's drop counters: the AF_XDP socket's (`XDP_STATISTICS`)
/// and its TCP stack's.
pub(crate) fn xdp_json(shard: u16, c: &crate::transport::xdp::XdpCounters) -> Value {
    let (x, t) = (&c.xsk, &c.tcp);
    json!({
        "shard": shard,
        "flows": c.flows,
        "half_open": c.half_open,
        "parked": c.parked,
        "time_wait": c.time_wait,
        "tcp_parks": t.parks,
        "tcp_restores": t.restores,
        "tcp_reset_by_peer": t.reset_by_peer,
        "tcp_timed_out": t.timed_out,
        "tcp_time_wait_reopened": t.time_wait_reopened,
        "rx_dropped": x.rx_dropped,
        "rx_invalid_descs": x.rx_invalid_descs,
        "tx_invalid_descs": x.tx_invalid_descs,
        "rx_ring_full": x.rx_ring_full,
        "rx_fill_ring_empty_descs": x.rx_fill_ring_empty_descs,
        "tx_ring_empty_descs": x.tx_ring_empty_descs,
        "tx_dropped_no_frame": x.tx_dropped_here,
        "tcp_malformed": t.malformed,
        "tcp_bad_checksum": t.bad_checksum,
        "tcp_not_ours": t.not_ours,
        "tcp_out_of_window": t.out_of_window,
        "tcp_challenge_acks": t.challenge_acks,
        "tcp_flows_full": t.flows_full,
        "tcp_half_open_evicted": t.half_open_evicted,
        "tcp_half_open_expired": t.half_open_expired,
        "tcp_no_flow": t.no_flow,
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

/// The sessions an admin `sessions` request selects (by user, computer,
/// client address, idle time), in its order.
fn session_rows(shared: &Shared, req: &Value) -> Result<Vec<SessionRow>, String> {
    let filter = AdminFilter {
        user: opt_str(req, "user"),
        computer: opt_str(req, "computer"),
        client_ip: opt_str(req, "client").map(|c| parse_ip(&c)).transpose()?,
    };
    let mut rows = all_sessions(shared, &filter);
    sort_sessions(&mut rows, req)?;
    Ok(rows)
}

/// The answer to a `sessions` request, written to `out` a row at a time
/// as [`handle_request`] would give it (`{"ok":true,"data":[...]}`), so
/// that a listing of 200,000 sessions never exists whole as JSON values
/// or text in the server (the socket's own buffer and one row do). `Err`
/// (nothing written): the request was bad.
pub fn write_sessions(
    shared: &Shared,
    req: &Value,
    out: &mut impl std::io::Write,
) -> Result<std::io::Result<()>, String> {
    let rows = session_rows(shared, req)?;
    let mut write = || -> std::io::Result<()> {
        out.write_all(b"{\"ok\":true,\"data\":[")?;
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, &session_json(r, shared.transport))?;
        }
        out.write_all(b"]}\n")?;
        out.flush()
    };
    Ok(write())
}

/// Handle one admin request (the JSON body of a socket line).
pub fn handle_request(shared: &Shared, req: &Value) -> Result<Value, String> {
    let op = req.get("op").and_then(|o| o.as_str()).unwrap_or("");
    match op {
        "sessions" => Ok(Value::Array(
            session_rows(shared, req)?
                .iter()
                .map(|r| session_json(r, shared.transport))
                .collect(),
        )),
        "trees" => Ok(Value::Array(
            all_trees(shared)
                .iter()
                .map(|t| tree_json(t, shared.transport))
                .collect(),
        )),
        "files" => Ok(Value::Array(all_files(shared).iter().map(file_json).collect())),
        "close-file" => {
            let id = req
                .get("id")
                .and_then(|v| {
                    v.as_u64().or_else(|| {
                        v.as_str().and_then(|s| {
                            let t = s.trim();
                            match t.strip_prefix("0x") {
                                Some(h) => u64::from_str_radix(h, 16).ok(),
                                None => t.parse().ok(),
                            }
                        })
                    })
                })
                .and_then(|v| u32::try_from(v).ok())
                .ok_or("close-file needs id (decimal or 0x hex)")?;
            let st = close_file(shared, id);
            tracing::info!(id, status = st, "admin close-file");
            Ok(json!({ "id": id, "closed": st == werr::SUCCESS, "status": st }))
        }
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
            if req.get("dry_run").and_then(Value::as_bool) == Some(true) {
                // Close-SmbSession -WhatIf: what would go, nothing changes.
                let rows = preview_disconnect(shared, &sel);
                return Ok(json!({
                    "dry_run": true,
                    "sessions": rows.len(),
                    "would_disconnect": rows
                        .iter()
                        .map(|r| session_json(r, shared.transport))
                        .collect::<Vec<_>>(),
                }));
            }
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
            "unknown admin request '{other}'; known: sessions, trees, disconnect, files, close-file, config-show, config-set, config-reset, stats"
        )),
    }
}
