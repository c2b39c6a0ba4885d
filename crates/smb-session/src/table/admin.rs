//! Administration of a table: enumerate and disconnect sessions and tree
//! connects, read the counters.
//!
//! These back `smbcore ctl` and the MS-SRVS calls NetrSessionEnum (3.1.4.5),
//! NetrSessionDel (3.1.4.6) and NetrConnectionEnum (3.1.4.1). Every session
//! and every tree connect, IPC$ included, is always listed and always
//! disconnectable by id, user, client computer name and client address:
//! nothing ever becomes "owned by the computer name" and unreachable
//! (the failure Microsoft KB Q153070 describes, IPC$ connections that cannot be disconnected).

use super::{Connection, EndReason, Session, SessionTable, TableError, UserName, NIL};
use crate::ids::{ConnId, SessionId, TreeId};
use hdrhistogram::Histogram;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which sessions a listing shows; every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// User name, ASCII case-insensitive (`guest` matches guest logons).
    pub user: Option<String>,
    /// Client computer name (with or without a leading `\\`), case-insensitive;
    /// the client's address in text form also matches.
    pub computer: Option<String>,
    /// Client IP address (IPv4-mapped IPv6 addresses match their IPv4 form).
    pub client_ip: Option<IpAddr>,
}

/// What an administrative disconnect removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// One session.
    Session(SessionId),
    /// Every session of a user.
    User(String),
    /// Every session and connection from a client computer (name or address text).
    Computer(String),
    /// Every session and connection from a client address.
    ClientIp(IpAddr),
    /// Every session matching all set fields of a filter (e.g. NetrSessionDel
    /// with both a client name and a user name). An empty filter matches
    /// every session.
    Matching(SessionFilter),
}

/// One session as an administrator sees it (NetSessionEnum level 502 and more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// The session id.
    pub id: SessionId,
    /// Its connection.
    pub conn: ConnId,
    /// The client's address.
    pub client: SocketAddr,
    /// The client computer name (NTLMSSP workstation), else its IP address.
    pub computer: String,
    /// The user.
    pub user: UserName,
    /// Whether session setup completed.
    pub authenticated: bool,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// The negotiated dialect.
    pub dialect: u16,
    /// Whether the session signs.
    pub signed: bool,
    /// The signing algorithm (`HMAC-SHA256`, `AES-CMAC`, `AES-GMAC`) when
    /// the session signs; the engine fills it in.
    pub signing_algorithm: Option<&'static str>,
    /// The cipher (`aes-128-gcm`, ...) when the session encrypts; the
    /// engine fills it in.
    pub cipher: Option<&'static str>,
    /// Whether the client has sent this session requests in TRANSFORM
    /// messages that decrypted (MS-SMB2 3.3.5.2.1.1); the engine fills it in.
    pub client_encrypts: bool,
    /// A guest logon.
    pub guest: bool,
    /// A null (anonymous) session.
    pub anonymous: bool,
    /// Share names of its tree connects, IPC$ included.
    pub trees: Vec<Arc<str>>,
    /// Open files and pipes.
    pub open_handles: u32,
    /// Time since the session was created.
    pub connected: Duration,
    /// Time since its last request.
    pub idle: Duration,
    /// Whether it logged on with Kerberos (else NTLMSSP, anonymous or guest).
    pub kerberos: bool,
    /// When its Kerberos ticket ends; the session is expired after it.
    pub ticket_end: Option<Instant>,
}

/// One tree connect as an administrator sees it (NetConnectionEnum level 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeSnapshot {
    /// The owning session.
    pub session: SessionId,
    /// The tree id.
    pub tree: TreeId,
    /// The share name.
    pub share: Arc<str>,
    /// Whether it is IPC$.
    pub is_ipc: bool,
    /// The session's user.
    pub user: UserName,
    /// The client computer name, else its IP address.
    pub computer: String,
    /// The client's address.
    pub client: SocketAddr,
    /// Time since the tree was connected (whole seconds).
    pub connected: Duration,
    /// Open handles: the table counts them per session only, so its own
    /// snapshot carries the session's; the engine's listing
    /// ([`Engine::admin_trees`](crate::engine::Engine::admin_trees)) counts
    /// the ones made through this tree.
    pub open_handles: u32,
    /// The session's dialect.
    pub dialect: u16,
}

/// The result of [`SessionTable::disconnect`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DisconnectOutcome {
    /// How many sessions were logged off.
    pub sessions: usize,
    /// Their ids.
    pub removed: Vec<SessionId>,
    /// Connections left without sessions: the runtime closes them and calls
    /// [`SessionTable::remove_connection`].
    pub connections_to_close: Vec<ConnId>,
}

/// The table's counters (as `SERVER_STATISTICS` / `stats` show them).
#[derive(Clone, Copy, Debug)]
pub struct TableStats<'a> {
    /// Open connections.
    pub connections: usize,
    /// Sessions, authenticated or not.
    pub sessions: usize,
    /// Tree connects.
    pub trees: usize,
    /// Sessions reaped by autodisconnect (`sts0_stimedout`).
    pub timed_out: u64,
    /// Sessions removed by an administrator.
    pub admin_disconnected: u64,
    /// Connections and sessions that did not authenticate in time.
    pub pre_auth_timeouts: u64,
    /// Kerberos sessions whose ticket ended (each counted once, when the
    /// wheel marked it expired).
    pub tickets_expired: u64,
    /// Reap time minus deadline, in microseconds.
    pub lateness: &'a Histogram<u64>,
    /// Sessions ended, per [`EndReason::ALL`] position.
    pub sessions_ended: [u64; EndReason::ALL.len()],
    /// Connections ended, per [`EndReason::ALL`] position.
    pub connections_ended: [u64; EndReason::ALL.len()],
    /// Reap time minus deadline (µs) per reason of [`EndReason::REAPED`].
    pub reap_lateness: &'a [Histogram<u64>; 3],
}

fn strip_unc(name: &str) -> &str {
    name.trim_start_matches('\\')
}

impl<X, C> SessionTable<X, C> {
    fn conn_of(&self, s: &Session<X>) -> &Connection<C> {
        &self.conns[s.conn.index() as usize]
    }

    fn conn_id(&self, index: u32) -> ConnId {
        ConnId::new(index, self.conns[index as usize].generation)
    }

    /// The computer name a listing shows: the NTLMSSP workstation, else the address.
    fn computer_text(&self, c: &Connection<C>) -> String {
        match c.computer {
            Some(i) => self.names.get(i).to_string(),
            None => c.peer.ip().to_canonical().to_string(),
        }
    }

    fn conn_matches_computer(&self, c: &Connection<C>, name: &str) -> bool {
        let name = strip_unc(name);
        if let Ok(ip) = name.parse::<IpAddr>() {
            if c.peer.ip().to_canonical() == ip.to_canonical() {
                return true;
            }
        }
        c.computer
            .is_some_and(|i| self.names.get(i).eq_ignore_ascii_case(name))
    }

    fn conn_matches_ip(c: &Connection<C>, ip: IpAddr) -> bool {
        c.peer.ip().to_canonical() == ip.to_canonical()
    }

    fn session_matches(&self, s: &Session<X>, f: &SessionFilter) -> bool {
        let c = self.conn_of(s);
        f.user
            .as_deref()
            .map_or(true, |u| self.user_name(s.user).matches(u))
            && f.computer
                .as_deref()
                .map_or(true, |n| self.conn_matches_computer(c, n))
            && f.client_ip.map_or(true, |ip| Self::conn_matches_ip(c, ip))
    }

    fn snapshot(&self, s: &Session<X>, now_ns: u64) -> SessionSnapshot {
        let c = self.conn_of(s);
        SessionSnapshot {
            id: s.id,
            conn: s.conn,
            client: c.peer,
            computer: self.computer_text(c),
            user: self.user_name(s.user),
            authenticated: s.is_authenticated(),
            admin: s.is_admin(),
            dialect: s.dialect,
            signed: s.is_signed(),
            signing_algorithm: None,
            cipher: None,
            client_encrypts: false,
            guest: s.is_guest(),
            anonymous: s.is_anonymous(),
            trees: self
                .tree_chain(s.trees)
                .map(|t| self.names.get(t.share).clone())
                .collect(),
            open_handles: s.open_handles,
            connected: Duration::from_nanos(now_ns.saturating_sub(s.created)),
            idle: Duration::from_nanos(now_ns.saturating_sub(s.last_activity)),
            kerberos: s.is_kerberos(),
            ticket_end: (s.expires != super::NO_EXPIRY)
                .then(|| self.epoch + Duration::from_nanos(s.expires)),
        }
    }

    /// One session's snapshot.
    pub fn session_snapshot(&self, id: SessionId, now: Instant) -> Option<SessionSnapshot> {
        let s = self.session(id)?;
        Some(self.snapshot(s, self.ns(now)))
    }

    /// Every session that matches `filter`, with idle times as of `now`.
    pub fn sessions<'a>(
        &'a self,
        filter: &'a SessionFilter,
        now: Instant,
    ) -> impl Iterator<Item = SessionSnapshot> + 'a {
        let now_ns = self.ns(now);
        self.sessions
            .iter()
            .filter(move |(_, s)| self.session_matches(s, filter))
            .map(move |(_, s)| self.snapshot(s, now_ns))
    }

    /// Every tree connect (IPC$ included) of the sessions that match `filter`.
    pub fn trees<'a>(
        &'a self,
        filter: &'a SessionFilter,
        now: Instant,
    ) -> impl Iterator<Item = TreeSnapshot> + 'a {
        let now_s = self.ns(now) / 1_000_000_000;
        self.sessions
            .iter()
            .filter(move |(_, s)| self.session_matches(s, filter))
            .flat_map(move |(_, s)| {
                let c = self.conn_of(s);
                let user = self.user_name(s.user);
                let computer = self.computer_text(c);
                self.tree_chain(s.trees).map(move |t| TreeSnapshot {
                    session: s.id,
                    tree: t.id,
                    share: self.names.get(t.share).clone(),
                    is_ipc: t.is_ipc,
                    user: user.clone(),
                    computer: computer.clone(),
                    client: c.peer,
                    connected: Duration::from_secs(now_s.saturating_sub(u64::from(t.created_s))),
                    open_handles: s.open_handles,
                    dialect: s.dialect,
                })
            })
    }

    /// Logs off every session `selector` names, whatever trees it holds
    /// (a session holding only IPC$ included). For `Computer` and `ClientIp`
    /// the client's connections without sessions are closed too. A match of
    /// nothing is [`TableError::NotFound`].
    pub fn disconnect(
        &mut self,
        selector: &Selector,
        _now: Instant,
    ) -> Result<DisconnectOutcome, TableError> {
        let sessions: Vec<u32> = match selector {
            Selector::Matching(f) => self.matching(f),
            Selector::Session(id) => {
                self.session(*id).ok_or(TableError::NotFound)?;
                vec![id.index()]
            }
            Selector::User(u) => {
                let f = SessionFilter {
                    user: Some(u.clone()),
                    ..SessionFilter::default()
                };
                self.matching(&f)
            }
            Selector::Computer(n) => {
                let f = SessionFilter {
                    computer: Some(n.clone()),
                    ..SessionFilter::default()
                };
                self.matching(&f)
            }
            Selector::ClientIp(ip) => {
                let f = SessionFilter {
                    client_ip: Some(*ip),
                    ..SessionFilter::default()
                };
                self.matching(&f)
            }
        };
        let mut out = DisconnectOutcome::default();
        for i in sessions {
            out.removed.push(self.sessions[i as usize].id);
            let ci = self.remove_session(i, EndReason::Admin);
            out.sessions += 1;
            self.counters.admin_disconnected += 1;
            let conn = self.conn_id(ci);
            if self.conns[ci as usize].session_count == 0
                && !out.connections_to_close.contains(&conn)
            {
                self.conns[ci as usize]
                    .end_reason
                    .get_or_insert(EndReason::Admin);
                out.connections_to_close.push(conn);
            }
        }
        // The client's connections that hold no session at all.
        let extra: Vec<u32> = match selector {
            Selector::Computer(n) => self
                .conns
                .iter()
                .filter(|(_, c)| c.sessions == NIL && self.conn_matches_computer(c, n))
                .map(|(i, _)| i as u32)
                .collect(),
            Selector::ClientIp(ip) => self
                .conns
                .iter()
                .filter(|(_, c)| c.sessions == NIL && Self::conn_matches_ip(c, *ip))
                .map(|(i, _)| i as u32)
                .collect(),
            _ => Vec::new(),
        };
        for ci in extra {
            let conn = self.conn_id(ci);
            self.conns[ci as usize]
                .end_reason
                .get_or_insert(EndReason::Admin);
            if !out.connections_to_close.contains(&conn) {
                out.connections_to_close.push(conn);
            }
        }
        if out.sessions == 0 && out.connections_to_close.is_empty() {
            return Err(TableError::NotFound);
        }
        Ok(out)
    }

    fn matching(&self, f: &SessionFilter) -> Vec<u32> {
        self.sessions
            .iter()
            .filter(|(_, s)| self.session_matches(s, f))
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// The counters and the lateness histogram.
    pub fn stats(&self) -> TableStats<'_> {
        TableStats {
            connections: self.conns.len(),
            sessions: self.sessions.len(),
            trees: self.counters.trees,
            timed_out: self.counters.timed_out,
            admin_disconnected: self.counters.admin_disconnected,
            pre_auth_timeouts: self.counters.pre_auth_timeouts,
            tickets_expired: self.counters.tickets_expired,
            lateness: &self.lateness,
            sessions_ended: self.counters.sessions_ended,
            connections_ended: self.counters.connections_ended,
            reap_lateness: &self.reap_lateness,
        }
    }
}
