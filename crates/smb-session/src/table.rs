//! One shard's table of connections, sessions and tree connects, with its
//! autodisconnect timers.
//!
//! MS-SMB2 3.3.1.7 (Connection), 3.3.1.8 (Session), 3.3.1.10 (TreeConnect),
//! 3.3.5.5 (session setup: Session.State InProgress -> Valid), 3.3.5.6
//! (LOGOFF), 3.3.5.7 (TREE_CONNECT), 3.3.5.8 (TREE_DISCONNECT); autodisconnect
//! as Windows does it (KB 138365, KB 102967); ARCHITECTURE.md places it in the layers.
//!
//! No I/O, no clock: every call that can change timing takes `now`. Times are
//! kept as `u64` nanoseconds since the `epoch` given at construction; the timer
//! wheel runs in ticks of [`TableConfig::tick`] (1 ms by default). A deadline
//! `d` is filed at tick `ceil(d / tick)` and checked against the exact `now`
//! when it fires, so nothing is ever reaped early, and a reap is late by at
//! most one tick plus the caller's wake-up delay.
//!
//! **Lazy re-arm.** [`SessionTable::touch`] only stores `last_activity`. When a
//! session's timer fires the table compares `now` with `last_activity +
//! autodisconnect`: it either reaps the session or files the timer again at
//! the true deadline. An active session therefore costs one timer operation per
//! timeout period, not one per request; an idle one costs nothing until due.
//!
//! **What is reaped.** An authenticated session idle for at least the
//! autodisconnect value, unless it holds open handles (an open IPC$ pipe is a
//! handle). A session still authenticating ([`SessionState::InProgress`]) is
//! reaped `pre_auth_timeout` after it was created, however active. A
//! connection on which no session ever authenticated produces
//! [`TableEvent::PreAuthExpired`] `pre_auth_timeout` after it was accepted.
//! When the last session of a connection is reaped the table asks the runtime
//! to close the connection ([`TableEvent::CloseConnection`]); a connection
//! whose last session logged off itself is closed once it has been idle for
//! the autodisconnect value.
//!
//! The runtime closes the socket for `PreAuthExpired` and `CloseConnection`
//! and then calls [`SessionTable::remove_connection`].
//!
//! **Why things end.** Every session and connection that goes is counted
//! once under an [`EndReason`]; the reasons the wheel decides (idle
//! sessions, pre-authentication deadlines, idle connections) also record how
//! late they were, each in its own histogram ([`TableStats::reap_lateness`]).
//! A connection the table or an administrator asked to close keeps that
//! reason until the runtime removes it; otherwise the runtime says why
//! (the client closed it, the transport died).
//!
//! **Ticket expiry.** A Kerberos session also ends with its ticket
//! ([`SessionTable::set_kerberos`]): its one wheel timer is filed at the
//! earlier of the idle deadline and the ticket's end. When the ticket end
//! fires the session becomes expired (MS-SMB2 3.3.1.8 Session.State
//! Expired; requests on it then get STATUS_NETWORK_SESSION_EXPIRED, checked
//! against the exact `now` by [`SessionTable::is_expired`]), and the timer is
//! filed again at the idle deadline: an expired session that is not
//! re-authenticated is reaped like an idle one, since refused requests are
//! no activity. Re-authentication sets a new end and revives it.

mod admin;

pub use admin::{
    DisconnectOutcome, Selector, SessionFilter, SessionSnapshot, TableStats, TreeSnapshot,
};

use crate::autodisconnect::AutoDisconnect;
use crate::ids::{ConnId, SessionId, TreeId, MAX_SESSION_INDEX};
use crate::wheel::{TimerKey, TimerWheel};
use hdrhistogram::Histogram;
use slab::Slab;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NIL: u32 = u32::MAX;

/// Most tree connects one session may hold.
pub const MAX_TREES_PER_SESSION: u16 = 1024;
/// Longest share name, in bytes (MS-SRVS `NNLEN` is 80 characters).
pub const MAX_SHARE_NAME: usize = 80 * 4;
/// Longest user or computer name, in bytes.
pub const MAX_NAME: usize = 1024;

/// Settings of one table; see the module documentation. Start from
/// [`TableConfig::default`] and set fields (more may be added).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableConfig {
    /// Idle time after which an authenticated session is reaped.
    pub autodisconnect: AutoDisconnect,
    /// Time a connection or session may take to authenticate.
    pub pre_auth_timeout: Duration,
    /// Timer resolution (a zero tick means 1 ms).
    pub tick: Duration,
    /// Most sessions one connection may hold (clamped to 1..=65535).
    pub max_sessions_per_connection: usize,
    /// How long a connection that has authenticated but holds no session
    /// (every session logged off) may stay; `None`: the autodisconnect value.
    pub connection_idle_timeout: Option<Duration>,
    /// Keep the owner's state of sessions reaped by autodisconnect until
    /// [`SessionTable::take_expired`] (the engine signs its
    /// session-closed notification with it). Off by default.
    pub keep_expired: bool,
}

impl Default for TableConfig {
    /// 15 minutes autodisconnect, 30 s to authenticate, 1 ms tick, 64 sessions
    /// per connection.
    fn default() -> Self {
        TableConfig {
            autodisconnect: AutoDisconnect::DEFAULT,
            pre_auth_timeout: Duration::from_secs(30),
            tick: Duration::from_millis(1),
            max_sessions_per_connection: 64,
            connection_idle_timeout: None,
            keep_expired: false,
        }
    }
}

/// The errors of table operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableError {
    /// No such connection (or a stale [`ConnId`]).
    UnknownConnection,
    /// No such session (or a stale [`SessionId`]): STATUS_USER_SESSION_DELETED.
    UnknownSession,
    /// No such tree connect in that session: STATUS_NETWORK_NAME_DELETED.
    UnknownTree,
    /// The session has not finished authenticating.
    NotAuthenticated,
    /// The connection already holds `max_sessions_per_connection` sessions.
    TooManySessions,
    /// The shard holds as many sessions as a [`SessionId`] can name.
    TableFull,
    /// The session holds [`MAX_TREES_PER_SESSION`] tree connects.
    TooManyTrees,
    /// An empty or over-long share, user or computer name.
    InvalidName,
    /// `close_handle` on a session with no open handle.
    NoOpenHandles,
    /// An administrative operation matched nothing.
    NotFound,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableError::UnknownConnection => "no such connection",
            TableError::UnknownSession => "no such session",
            TableError::UnknownTree => "no such tree connect",
            TableError::NotAuthenticated => "session not authenticated",
            TableError::TooManySessions => "too many sessions on this connection",
            TableError::TableFull => "session table full",
            TableError::TooManyTrees => "too many tree connects in this session",
            TableError::InvalidName => "empty or too long name",
            TableError::NoOpenHandles => "session has no open handle",
            TableError::NotFound => "no matching session",
        })
    }
}

impl std::error::Error for TableError {}

/// Who a session belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserName {
    /// A null session (anonymous logon).
    Anonymous,
    /// A guest logon.
    Guest,
    /// An authenticated user (as the acceptor reports it, e.g. `DOMAIN\user`).
    User(Arc<str>),
}

impl UserName {
    /// Whether this names `name`, ASCII case-insensitively. `Guest` answers to
    /// "guest"; `Anonymous` to nothing.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            UserName::Anonymous => false,
            UserName::Guest => name.eq_ignore_ascii_case("guest"),
            UserName::User(u) => u.eq_ignore_ascii_case(name),
        }
    }
}

impl fmt::Display for UserName {
    /// Anonymous prints as the empty string (as `NetSessionEnum` shows it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserName::Anonymous => Ok(()),
            UserName::Guest => f.write_str("guest"),
            UserName::User(u) => f.write_str(u),
        }
    }
}

/// What session setup learned about the client (MS-SMB2 3.3.5.5.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The user.
    pub user: UserName,
    /// Whether the user is an administrator of this server.
    pub admin: bool,
    /// The NTLMSSP workstation name, if the client sent one (MS-NLMP 2.2.1.3).
    pub computer_name: Option<String>,
    /// The negotiated dialect (e.g. 0x0311).
    pub dialect: u16,
    /// Whether the session signs its messages.
    pub signed: bool,
}

/// MS-SMB2 3.3.1.8 Session.State (Expired is not kept: reaped sessions go).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Session setup has started and not finished.
    InProgress,
    /// Authenticated.
    Valid,
}

/// What [`SessionTable::poll_timeouts`] asks the runtime to know or do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableEvent {
    /// The session was idle past its deadline (or did not authenticate in
    /// time) and has been logged off: its trees are gone.
    SessionExpired {
        /// The session that went.
        session: SessionId,
        /// Its connection.
        conn: ConnId,
        /// How long after its deadline it was reaped.
        lateness: Duration,
    },
    /// No session on this connection authenticated in time: close it.
    PreAuthExpired {
        /// The connection.
        conn: ConnId,
    },
    /// The connection has no session left after a reap (or has idled since
    /// its last logoff): close it.
    CloseConnection {
        /// The connection.
        conn: ConnId,
    },
    /// A timer set with [`SessionTable::schedule`] is due.
    Timer {
        /// The token it was set with.
        token: u32,
    },
    /// A timer set with [`SessionTable::schedule_transport`] is due.
    Transport {
        /// The token it was set with.
        token: u32,
        /// The key [`SessionTable::schedule_transport`] returned.
        key: TimerKey,
    },
}

/// Why a session or a connection ended (counted per reason in
/// [`TableStats`], `ctl stats` and `/metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// Idle past autodisconnect (sessions), or closed because its last
    /// session was (connections).
    TimedOut,
    /// Did not authenticate within the pre-authentication timeout.
    PreAuthTimeout,
    /// A connection held no session for the connection-idle timeout.
    IdleConnection,
    /// An administrator disconnected it (`ctl disconnect`, NetrSessionDel).
    Admin,
    /// The client logged the session off.
    Logoff,
    /// The client closed the connection (FIN).
    ClientClosed,
    /// The transport died: reset, or a peer gone silent (TCP keepalive or
    /// user timeout).
    DeadTransport,
    /// The client broke the protocol.
    ProtocolError,
    /// Refused or ended by a limit (max-connections, per-client limit).
    Limit,
    /// The server shut down.
    Shutdown,
}

impl EndReason {
    /// Every reason, in display order.
    pub const ALL: [EndReason; 10] = [
        EndReason::TimedOut,
        EndReason::PreAuthTimeout,
        EndReason::IdleConnection,
        EndReason::Admin,
        EndReason::Logoff,
        EndReason::ClientClosed,
        EndReason::DeadTransport,
        EndReason::ProtocolError,
        EndReason::Limit,
        EndReason::Shutdown,
    ];
    /// The reasons decided by the timer wheel, which have a lateness
    /// histogram each ([`TableStats::reap_lateness`]), in that order.
    pub const REAPED: [EndReason; 3] = [
        EndReason::TimedOut,
        EndReason::PreAuthTimeout,
        EndReason::IdleConnection,
    ];

    /// The name used in `ctl stats` and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::TimedOut => "timed_out",
            EndReason::PreAuthTimeout => "pre_auth_timeout",
            EndReason::IdleConnection => "idle_connection",
            EndReason::Admin => "admin",
            EndReason::Logoff => "logoff",
            EndReason::ClientClosed => "client_closed",
            EndReason::DeadTransport => "dead_transport",
            EndReason::ProtocolError => "protocol_error",
            EndReason::Limit => "limit",
            EndReason::Shutdown => "shutdown",
        }
    }

    /// Position in [`EndReason::ALL`].
    pub fn index(self) -> usize {
        EndReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

/// A user name stored compactly: the name lives once in the table's interner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UserRef {
    Anonymous,
    Guest,
    User(Sym),
}

/// What a wheel entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Session(u32),
    Conn(u32),
    /// A timer of the table's owner ([`SessionTable::schedule`]).
    Owner(u32),
    /// A transport's timer ([`SessionTable::schedule_transport`]).
    Transport(u32),
}

const F_VALID: u8 = 1;
const F_ADMIN: u8 = 2;
const F_SIGNED: u8 = 4;
const F_KERBEROS: u8 = 8;
const F_EXPIRED: u8 = 16;
/// `Session::expires` when the session has no ticket end.
const NO_EXPIRY: u64 = u64::MAX;

/// A session (MS-SMB2 3.3.1.8) as the table keeps it.
#[derive(Debug)]
pub struct Session<X = ()> {
    id: SessionId,
    last_activity: u64,
    created: u64,
    /// The ticket's end (ns since the epoch), [`NO_EXPIRY`] for none.
    expires: u64,
    timer: Option<TimerKey>,
    user: UserRef,
    conn: ConnId,
    conn_prev: u32,
    conn_next: u32,
    trees: u32,
    next_tree_id: u16,
    open_handles: u32,
    tree_count: u16,
    dialect: u16,
    flags: u8,
    /// The engine's per-session protocol state.
    pub ext: X,
}

impl<X> Session<X> {
    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The connection the session was set up on.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Whether session setup has completed.
    pub fn state(&self) -> SessionState {
        if self.flags & F_VALID != 0 {
            SessionState::Valid
        } else {
            SessionState::InProgress
        }
    }

    /// Whether session setup has completed.
    pub fn is_authenticated(&self) -> bool {
        self.flags & F_VALID != 0
    }

    /// Whether the user is an administrator.
    pub fn is_admin(&self) -> bool {
        self.flags & F_ADMIN != 0
    }

    /// Whether the session signs.
    pub fn is_signed(&self) -> bool {
        self.flags & F_SIGNED != 0
    }

    /// The negotiated dialect (0 until authenticated).
    pub fn dialect(&self) -> u16 {
        self.dialect
    }

    /// Number of open handles (files and pipes).
    pub fn open_handles(&self) -> u32 {
        self.open_handles
    }

    /// Number of tree connects.
    pub fn tree_count(&self) -> u16 {
        self.tree_count
    }

    /// Whether the user is a null session.
    pub fn is_anonymous(&self) -> bool {
        self.user == UserRef::Anonymous
    }

    /// Whether the user is a guest.
    pub fn is_guest(&self) -> bool {
        self.user == UserRef::Guest
    }

    /// Whether the session logged on with Kerberos (else NTLMSSP).
    pub fn is_kerberos(&self) -> bool {
        self.flags & F_KERBEROS != 0
    }

    /// Whether the wheel has marked the session expired (its ticket ended
    /// and it was not re-authenticated).
    pub fn is_marked_expired(&self) -> bool {
        self.flags & F_EXPIRED != 0
    }
}

/// A client connection (MS-SMB2 3.3.1.7) as the table keeps it.
#[derive(Debug)]
pub struct Connection<C = ()> {
    peer: SocketAddr,
    /// When it was accepted (ns), what the pre-authentication deadline
    /// counts from; once a session has authenticated, when it last became
    /// sessionless (the connection-idle deadline counts from it). One field
    /// for both keeps the connection small.
    created: u64,
    timer: Option<TimerKey>,
    computer: Option<Sym>,
    sessions: u32,
    session_count: u16,
    generation: u32,
    authenticated: bool,
    /// Why the table or an administrator asked to close it.
    end_reason: Option<EndReason>,
    /// The engine's per-connection state.
    pub ext: C,
}

impl<C> Connection<C> {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether a session on this connection has ever authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Number of sessions on this connection.
    pub fn session_count(&self) -> u16 {
        self.session_count
    }
}

#[derive(Debug)]
struct Tree {
    session: u32,
    next: u32,
    id: TreeId,
    share: Sym,
    /// Seconds since the epoch when connected.
    created_s: u32,
    is_ipc: bool,
}

/// A borrowed view of one tree connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeRef<'a> {
    /// Its id.
    pub id: TreeId,
    /// The share name.
    pub share: &'a str,
    /// Whether it is IPC$.
    pub is_ipc: bool,
}

/// An interned name: its interner slot plus one (so `Option<Sym>` is 4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sym(std::num::NonZeroU32);

impl Sym {
    fn slot(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// Reference-counted string interning: share, user and computer names live
/// once per table however many sessions use them.
#[derive(Debug, Default)]
struct Interner {
    map: HashMap<Arc<str>, Sym>,
    slots: Slab<(Arc<str>, u32)>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&i) = self.map.get(s) {
            self.slots[i.slot()].1 += 1;
            return i;
        }
        let a: Arc<str> = Arc::from(s);
        let slot = self.slots.insert((a.clone(), 1));
        // Names are bounded in length and each is held by a session, tree or
        // connection, so fewer than 2^32 are ever live.
        let sym = u32::try_from(slot + 1)
            .ok()
            .and_then(std::num::NonZeroU32::new)
            .map(Sym)
            .expect("fewer than 2^32 interned names");
        self.map.insert(a, sym);
        sym
    }

    fn release(&mut self, i: Sym) {
        let e = &mut self.slots[i.slot()];
        e.1 -= 1;
        if e.1 == 0 {
            let (a, _) = self.slots.remove(i.slot());
            self.map.remove(&a);
        }
    }

    fn get(&self, i: Sym) -> &Arc<str> {
        &self.slots[i.slot()].0
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<SlabSlot<(Arc<str>, u32)>>()
            + self.map.capacity() * std::mem::size_of::<(Arc<str>, Sym)>()
            + self
                .slots
                .iter()
                .map(|(_, (a, _))| a.len() + 16)
                .sum::<usize>()
    }
}

/// Counters kept by the table.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    timed_out: u64,
    admin_disconnected: u64,
    pre_auth_timeouts: u64,
    tickets_expired: u64,
    trees: usize,
    sessions_ended: [u64; EndReason::ALL.len()],
    connections_ended: [u64; EndReason::ALL.len()],
    next_open: u32,
}

/// One shard's connections, sessions and tree connects; see the module
/// documentation.
///
/// `X` is the engine's per-session state and `C` its per-connection state,
/// both stored inline.
pub struct SessionTable<X = (), C = ()> {
    shard: u16,
    epoch: Instant,
    tick_ns: u64,
    cfg: TableConfig,
    conns: Slab<Connection<C>>,
    sessions: Slab<Session<X>>,
    trees: Slab<Tree>,
    wheel: TimerWheel<Target>,
    names: Interner,
    generation: u32,
    conn_generation: u32,
    counters: Counters,
    lateness: Histogram<u64>,
    /// Lateness per reason of [`EndReason::REAPED`].
    reap_lateness: [Histogram<u64>; 3],
    /// Sessions reaped since the last [`SessionTable::take_expired`]
    /// (only with [`TableConfig::keep_expired`]).
    expired: Vec<(SessionId, ConnId, X)>,
}

impl<X, C> fmt::Debug for SessionTable<X, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTable")
            .field("shard", &self.shard)
            .field("cfg", &self.cfg)
            .field("connections", &self.conns.len())
            .field("sessions", &self.sessions.len())
            .field("trees", &self.trees.len())
            .field("wheel", &self.wheel)
            .finish()
    }
}

fn check_name(s: &str, max: usize) -> Result<(), TableError> {
    if s.is_empty() || s.len() > max {
        Err(TableError::InvalidName)
    } else {
        Ok(())
    }
}

impl<X, C> SessionTable<X, C> {
    /// An empty table for `shard`; `epoch` is the instant that times are
    /// measured from (any instant at or before the first `now`).
    pub fn new(shard: u16, epoch: Instant, cfg: TableConfig) -> Self {
        let tick_ns = u64::try_from(cfg.tick.as_nanos())
            .unwrap_or(u64::MAX)
            .max(if cfg.tick.is_zero() { 1_000_000 } else { 1 });
        // 1 µs .. 1 day at 3 significant digits: a valid, constant configuration.
        let lateness = Histogram::new_with_bounds(1, 86_400_000_000, 3)
            .expect("constant histogram bounds are valid");
        SessionTable {
            shard,
            epoch,
            tick_ns,
            cfg,
            conns: Slab::new(),
            sessions: Slab::new(),
            trees: Slab::new(),
            wheel: TimerWheel::new(),
            names: Interner::default(),
            generation: 0,
            conn_generation: 0,
            counters: Counters::default(),
            reap_lateness: [reason_histogram(), reason_histogram(), reason_histogram()],
            lateness,
            expired: Vec::new(),
        }
    }

    // ----- getters -----

    /// The shard this table serves.
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// The current settings.
    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    /// Changes the per-connection session limit (existing sessions stay).
    pub fn set_max_sessions_per_connection(&mut self, n: usize) {
        self.cfg.max_sessions_per_connection = n;
    }

    /// The epoch times are measured from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Number of connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of sessions (authenticated or not).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Number of tree connects.
    pub fn tree_count(&self) -> usize {
        self.counters.trees
    }

    /// Number of armed timers (for tests and metrics).
    pub fn timer_count(&self) -> usize {
        self.wheel.len()
    }

    /// Every connection, with its handle.
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, &Connection<C>)> + '_ {
        self.conns
            .iter()
            .map(|(i, c)| (ConnId::new(i as u32, c.generation), c))
    }

    /// A server-wide id for a new open (NetrFileEnum's `fi3_id`): the shard
    /// in the top 8 bits, a per-shard counter below (it wraps after 2^24
    /// opens; an open would have to outlive 16 million others on its shard
    /// to share an id).
    pub fn allocate_open_id(&mut self) -> u32 {
        self.counters.next_open = (self.counters.next_open % 0x00FF_FFFF) + 1;
        (u32::from(self.shard & 0xFF) << 24) | self.counters.next_open
    }

    /// Record why a connection is being closed, unless a reason is already
    /// kept (the first reason wins).
    pub fn mark_ending(&mut self, conn: ConnId, reason: EndReason) {
        if let Some(c) = self.connection_mut(conn) {
            c.end_reason.get_or_insert(reason);
        }
    }

    /// Count a connection the runtime refused before the engine saw it.
    pub fn count_refused(&mut self) {
        self.counters.connections_ended[EndReason::Limit.index()] += 1;
    }

    /// A connection by handle; `None` when stale.
    pub fn connection(&self, conn: ConnId) -> Option<&Connection<C>> {
        self.conns
            .get(conn.index() as usize)
            .filter(|c| c.generation == conn.generation())
    }

    /// A connection by handle, mutably.
    pub fn connection_mut(&mut self, conn: ConnId) -> Option<&mut Connection<C>> {
        self.conns
            .get_mut(conn.index() as usize)
            .filter(|c| c.generation == conn.generation())
    }

    /// The client computer name of a connection: the NTLMSSP workstation if a
    /// session reported one, else `None`.
    pub fn computer_name(&self, conn: ConnId) -> Option<&Arc<str>> {
        let c = self.connection(conn)?;
        c.computer.map(|i| self.names.get(i))
    }

    /// A session by id; `None` for an unknown, stale or foreign-shard id.
    pub fn session(&self, id: SessionId) -> Option<&Session<X>> {
        if id.shard() != self.shard {
            return None;
        }
        self.sessions
            .get(id.index() as usize)
            .filter(|s| s.id == id)
    }

    /// A session by id, mutably.
    pub fn session_mut(&mut self, id: SessionId) -> Option<&mut Session<X>> {
        if id.shard() != self.shard {
            return None;
        }
        self.sessions
            .get_mut(id.index() as usize)
            .filter(|s| s.id == id)
    }

    /// The connection a session belongs to.
    pub fn session_conn(&self, id: SessionId) -> Option<ConnId> {
        let s = self.session(id)?;
        Some(s.conn)
    }

    /// The user of a session.
    pub fn user(&self, id: SessionId) -> Option<UserName> {
        self.session(id).map(|s| self.user_name(s.user))
    }

    fn user_name(&self, u: UserRef) -> UserName {
        match u {
            UserRef::Anonymous => UserName::Anonymous,
            UserRef::Guest => UserName::Guest,
            UserRef::User(i) => UserName::User(self.names.get(i).clone()),
        }
    }

    /// How long a session has been idle at `now`.
    pub fn idle_time(&self, id: SessionId, now: Instant) -> Option<Duration> {
        let s = self.session(id)?;
        Some(Duration::from_nanos(
            self.ns(now).saturating_sub(s.last_activity),
        ))
    }

    /// A tree connect of a session.
    pub fn tree(&self, session: SessionId, tree: TreeId) -> Option<TreeRef<'_>> {
        let s = self.session(session)?;
        let t = self.find_tree(s, tree)?;
        let t = &self.trees[t as usize];
        Some(TreeRef {
            id: t.id,
            share: self.names.get(t.share),
            is_ipc: t.is_ipc,
        })
    }

    /// The tree connects of a session, oldest last.
    pub fn session_trees(&self, session: SessionId) -> impl Iterator<Item = TreeRef<'_>> + '_ {
        let head = self.session(session).map_or(NIL, |s| s.trees);
        self.tree_chain(head).map(|t| TreeRef {
            id: t.id,
            share: self.names.get(t.share),
            is_ipc: t.is_ipc,
        })
    }

    fn tree_chain(&self, head: u32) -> impl Iterator<Item = &Tree> + '_ {
        let mut i = head;
        std::iter::from_fn(move || {
            if i == NIL {
                return None;
            }
            let t = &self.trees[i as usize];
            i = t.next;
            Some(t)
        })
    }

    fn find_tree(&self, s: &Session<X>, tree: TreeId) -> Option<u32> {
        let mut i = s.trees;
        while i != NIL {
            let t = &self.trees[i as usize];
            if t.id == tree {
                return Some(i);
            }
            i = t.next;
        }
        None
    }

    // ----- time -----

    fn ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The tick at which a deadline (ns) is due: rounded up, so never early.
    fn deadline_tick(&self, ns: u64) -> u64 {
        ns.div_ceil(self.tick_ns)
    }

    fn now_tick(&self, now_ns: u64) -> u64 {
        now_ns / self.tick_ns
    }

    /// Set a timer on the shard's wheel for the table's owner (the engine's
    /// held responses, for instance): at the first poll at or after `at`,
    /// [`poll_timeouts`](Self::poll_timeouts) reports
    /// [`TableEvent::Timer`] with `token`. Never early; O(1).
    pub fn schedule(&mut self, at: Instant, token: u32) {
        let tick = self.deadline_tick(self.ns(at));
        let _ = self.wheel.insert(tick, Target::Owner(token));
    }

    /// Set a transport's timer on the shard's wheel (the AF_XDP
    /// transport's TCP retransmission, delayed-ACK, keep-alive and
    /// TIME-WAIT deadlines, beside the sessions'): at the first poll at or
    /// after `at` (never before; late by at most the wheel's tick),
    /// [`poll_timeouts`](Self::poll_timeouts) reports
    /// [`TableEvent::Transport`] with `token` and the key returned here.
    /// O(1), as is [`cancel_transport`](Self::cancel_transport).
    pub fn schedule_transport(&mut self, at: Instant, token: u32) -> TimerKey {
        let tick = self.deadline_tick(self.ns(at));
        self.wheel.insert(tick, Target::Transport(token))
    }

    /// Cancel a timer of [`schedule_transport`](Self::schedule_transport);
    /// `false` when it is gone (fired or cancelled). A key of another kind
    /// of timer is left alone.
    pub fn cancel_transport(&mut self, key: TimerKey) -> bool {
        if !matches!(self.wheel.get(key), Some(Target::Transport(_))) {
            return false;
        }
        self.wheel.cancel(key).is_some()
    }

    /// When the runtime must next call [`poll_timeouts`](Self::poll_timeouts):
    /// never later than the earliest deadline (it may be earlier, when a
    /// far timer must move to a finer wheel level). `None`: nothing armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        let tick = self.wheel.next_deadline()?;
        let ns = tick.saturating_mul(self.tick_ns);
        self.epoch.checked_add(Duration::from_nanos(ns))
    }

    // ----- connections -----

    /// Accepts a connection from `peer`, arming its pre-authentication deadline.
    pub fn add_connection(&mut self, peer: SocketAddr, now: Instant) -> ConnId
    where
        C: Default,
    {
        self.add_connection_with(peer, C::default(), now)
    }

    /// [`add_connection`](Self::add_connection) with the engine's state.
    pub fn add_connection_with(&mut self, peer: SocketAddr, ext: C, now: Instant) -> ConnId {
        let created = self.ns(now);
        self.conn_generation = self.conn_generation.wrapping_add(1);
        let generation = self.conn_generation;
        let index = self.conns.insert(Connection {
            peer,
            created,
            timer: None,
            computer: None,
            sessions: NIL,
            session_count: 0,
            generation,
            authenticated: false,
            end_reason: None,
            ext,
        }) as u32;
        let tick = self.deadline_tick(created.saturating_add(self.pre_auth_ns()));
        self.conns[index as usize].timer = Some(self.wheel.insert(tick, Target::Conn(index)));
        ConnId::new(index, generation)
    }

    fn pre_auth_ns(&self) -> u64 {
        u64::try_from(self.cfg.pre_auth_timeout.as_nanos()).unwrap_or(u64::MAX)
    }

    fn autodisconnect_ns(&self) -> Option<u64> {
        match self.cfg.autodisconnect {
            AutoDisconnect::Never => None,
            AutoDisconnect::AfterMillis(ms) => Some(ms.saturating_mul(1_000_000)),
        }
    }

    /// How long a sessionless, authenticated connection may stay.
    fn connection_idle_ns(&self) -> Option<u64> {
        match self.cfg.connection_idle_timeout {
            Some(d) => Some(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            None => self.autodisconnect_ns(),
        }
    }

    /// Forgets a connection the runtime has closed, with all its sessions and
    /// trees, counted as closed by the client unless the table or an
    /// administrator asked for it. Returns how many sessions went.
    pub fn remove_connection(&mut self, conn: ConnId, now: Instant) -> Result<usize, TableError> {
        self.remove_connection_because(conn, EndReason::ClientClosed, now)
    }

    /// [`remove_connection`](Self::remove_connection) with the runtime's
    /// reason (a reason recorded earlier with [`mark_ending`](Self::mark_ending)
    /// or by the table wins).
    pub fn remove_connection_because(
        &mut self,
        conn: ConnId,
        reason: EndReason,
        _now: Instant,
    ) -> Result<usize, TableError> {
        let reason = self
            .connection(conn)
            .ok_or(TableError::UnknownConnection)?
            .end_reason
            .unwrap_or(reason);
        let mut n = 0;
        while self.conns[conn.index() as usize].sessions != NIL {
            let s = self.conns[conn.index() as usize].sessions;
            self.remove_session(s, reason);
            n += 1;
        }
        self.counters.connections_ended[reason.index()] += 1;
        let c = self.conns.remove(conn.index() as usize);
        if let Some(k) = c.timer {
            self.wheel.cancel(k);
        }
        if let Some(name) = c.computer {
            self.names.release(name);
        }
        Ok(n)
    }

    // ----- sessions -----

    /// Starts a session on `conn` (first SESSION_SETUP, MS-SMB2 3.3.5.5.1): it
    /// must authenticate within `pre_auth_timeout`.
    pub fn create_session(&mut self, conn: ConnId, now: Instant) -> Result<SessionId, TableError>
    where
        X: Default,
    {
        self.create_session_with(conn, X::default(), now)
    }

    /// [`create_session`](Self::create_session) with the engine's state.
    pub fn create_session_with(
        &mut self,
        conn: ConnId,
        ext: X,
        now: Instant,
    ) -> Result<SessionId, TableError> {
        let c = self.connection(conn).ok_or(TableError::UnknownConnection)?;
        let limit = self
            .cfg
            .max_sessions_per_connection
            .clamp(1, usize::from(u16::MAX));
        if usize::from(c.session_count) >= limit {
            return Err(TableError::TooManySessions);
        }
        let index = self.sessions.vacant_key();
        if index >= MAX_SESSION_INDEX as usize {
            return Err(TableError::TableFull);
        }
        let index = index as u32;
        self.generation = SessionId::next_generation(self.generation);
        let id = SessionId::new(self.shard, index, self.generation).ok_or(TableError::TableFull)?;
        let created = self.ns(now);
        let ci = conn.index();
        let head = self.conns[ci as usize].sessions;
        let tick = self.deadline_tick(created.saturating_add(self.pre_auth_ns()));
        let timer = Some(self.wheel.insert(tick, Target::Session(index)));
        let got = self.sessions.insert(Session {
            id,
            last_activity: created,
            created,
            expires: NO_EXPIRY,
            timer,
            user: UserRef::Anonymous,
            conn,
            conn_prev: NIL,
            conn_next: head,
            trees: NIL,
            next_tree_id: 1,
            open_handles: 0,
            tree_count: 0,
            dialect: 0,
            flags: 0,
            ext,
        });
        debug_assert_eq!(got, index as usize);
        if head != NIL {
            self.sessions[head as usize].conn_prev = index;
        }
        let c = &mut self.conns[ci as usize];
        c.sessions = index;
        c.session_count += 1;
        // A session on an idle (post-logoff) connection stops its idle timer.
        if c.authenticated {
            if let Some(k) = c.timer.take() {
                self.wheel.cancel(k);
            }
        }
        Ok(id)
    }

    /// Completes session setup (MS-SMB2 3.3.5.5.3): records who the client is,
    /// stops the connection's pre-authentication deadline and arms
    /// autodisconnect. Also used for re-authentication of a valid session.
    pub fn authenticate_session(
        &mut self,
        id: SessionId,
        info: SessionInfo,
        now: Instant,
    ) -> Result<(), TableError> {
        self.session(id).ok_or(TableError::UnknownSession)?;
        if let UserName::User(u) = &info.user {
            check_name(u, MAX_NAME)?;
        }
        if let Some(c) = &info.computer_name {
            check_name(c.trim_start_matches('\\'), MAX_NAME)?;
        }
        let now_ns = self.ns(now);
        let user = match &info.user {
            UserName::Anonymous => UserRef::Anonymous,
            UserName::Guest => UserRef::Guest,
            UserName::User(u) => UserRef::User(self.names.intern(u)),
        };
        let index = id.index();
        let s = &mut self.sessions[index as usize];
        let old_user = std::mem::replace(&mut s.user, user);
        s.flags =
            F_VALID | if info.admin { F_ADMIN } else { 0 } | if info.signed { F_SIGNED } else { 0 };
        s.dialect = info.dialect;
        s.last_activity = now_ns;
        s.expires = NO_EXPIRY;
        let ci = s.conn.index() as usize;
        if let UserRef::User(i) = old_user {
            self.names.release(i);
        }
        if let Some(name) = &info.computer_name {
            let sym = self.names.intern(name.trim_start_matches('\\'));
            if let Some(old) = self.conns[ci].computer.replace(sym) {
                self.names.release(old);
            }
        }
        let c = &mut self.conns[ci];
        if !c.authenticated {
            c.authenticated = true;
            if let Some(k) = c.timer.take() {
                self.wheel.cancel(k);
            }
        }
        self.arm_session(index);
        Ok(())
    }

    /// Marks a session as logged on with Kerberos and sets (or, after a
    /// re-authentication, renews) its ticket end: `None` for a ticket
    /// without a known end. Clears an expiry and files the session's timer
    /// at the earlier of its idle deadline and the ticket end.
    pub fn set_kerberos(
        &mut self,
        id: SessionId,
        ticket_end: Option<Instant>,
    ) -> Result<(), TableError> {
        self.session(id).ok_or(TableError::UnknownSession)?;
        let end = ticket_end.map_or(NO_EXPIRY, |t| self.ns(t));
        let s = &mut self.sessions[id.index() as usize];
        s.flags = (s.flags | F_KERBEROS) & !F_EXPIRED;
        s.expires = end;
        self.arm_session(id.index());
        Ok(())
    }

    /// When the session's ticket ends (`None`: not Kerberos, or no end).
    pub fn ticket_end(&self, id: SessionId) -> Option<Instant> {
        let s = self.session(id)?;
        (s.expires != NO_EXPIRY).then(|| self.epoch + Duration::from_nanos(s.expires))
    }

    /// Whether the session's ticket has ended at `now` (MS-SMB2 3.3.5.2.9):
    /// exact, whether or not the wheel has fired yet.
    #[inline]
    pub fn is_expired(&self, id: SessionId, now: Instant) -> bool {
        self.session(id)
            .is_some_and(|s| s.expires != NO_EXPIRY && s.expires <= self.ns(now))
    }

    /// Records activity on a session: one store, no timer work (lazy re-arm).
    /// Returns `false` for an unknown id. The engine calls it for each request
    /// carrying the SessionId except ECHO.
    #[inline]
    pub fn touch(&mut self, id: SessionId, now: Instant) -> bool {
        let now_ns = self.ns(now);
        match self.session_mut(id) {
            Some(s) => {
                s.last_activity = now_ns;
                true
            }
            None => false,
        }
    }

    /// Logs a session off at the client's request (MS-SMB2 3.3.5.6): its trees
    /// go. A connection left without sessions is closed once it has idled for
    /// the autodisconnect value.
    pub fn logoff(&mut self, id: SessionId, now: Instant) -> Result<(), TableError> {
        self.session(id).ok_or(TableError::UnknownSession)?;
        let ci = self.remove_session(id.index(), EndReason::Logoff);
        let c = &self.conns[ci as usize];
        if c.session_count == 0 && c.timer.is_none() {
            let now_ns = self.ns(now);
            self.conns[ci as usize].created = now_ns;
            if let Some(t) = self.connection_idle_ns() {
                let tick = self.deadline_tick(now_ns.saturating_add(t));
                self.conns[ci as usize].timer = Some(self.wheel.insert(tick, Target::Conn(ci)));
            }
        }
        Ok(())
    }

    /// Sessions reaped by autodisconnect since the last call, with the
    /// owner's state (only kept with [`TableConfig::keep_expired`]).
    pub fn take_expired(&mut self) -> std::vec::Drain<'_, (SessionId, ConnId, X)> {
        self.expired.drain(..)
    }

    /// Removes a session with its trees, counting it under `reason`;
    /// returns its connection's index.
    fn remove_session(&mut self, index: u32, reason: EndReason) -> u32 {
        self.remove_session_keep(index, reason).0
    }

    /// [`remove_session`](Self::remove_session), also returning the session.
    fn remove_session_keep(&mut self, index: u32, reason: EndReason) -> (u32, Session<X>) {
        self.counters.sessions_ended[reason.index()] += 1;
        let s = self.sessions.remove(index as usize);
        if let Some(k) = s.timer {
            self.wheel.cancel(k);
        }
        if let UserRef::User(i) = s.user {
            self.names.release(i);
        }
        let mut t = s.trees;
        while t != NIL {
            let tree = self.trees.remove(t as usize);
            self.names.release(tree.share);
            self.counters.trees -= 1;
            t = tree.next;
        }
        if s.conn_prev != NIL {
            self.sessions[s.conn_prev as usize].conn_next = s.conn_next;
        } else {
            self.conns[s.conn.index() as usize].sessions = s.conn_next;
        }
        if s.conn_next != NIL {
            self.sessions[s.conn_next as usize].conn_prev = s.conn_prev;
        }
        self.conns[s.conn.index() as usize].session_count -= 1;
        (s.conn.index(), s)
    }

    /// Files, moves or drops a session's timer to match its current deadline:
    /// the pre-authentication deadline, else the earlier of the idle deadline
    /// (none while handles are open) and a ticket end not yet reached.
    fn arm_session(&mut self, index: u32) {
        let s = &self.sessions[index as usize];
        let deadline = if s.flags & F_VALID == 0 {
            Some(s.created.saturating_add(self.pre_auth_ns()))
        } else {
            let idle = if s.open_handles > 0 {
                None
            } else {
                self.autodisconnect_ns()
                    .map(|t| s.last_activity.saturating_add(t))
            };
            let ticket = (s.expires != NO_EXPIRY && s.flags & F_EXPIRED == 0).then_some(s.expires);
            match (idle, ticket) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let timer = s.timer;
        let new = match (timer, deadline) {
            (Some(k), Some(d)) => {
                let moved = self.wheel.reschedule(k, self.deadline_tick(d));
                debug_assert!(moved, "session timer key went stale");
                Some(k)
            }
            (None, Some(d)) => Some(
                self.wheel
                    .insert(self.deadline_tick(d), Target::Session(index)),
            ),
            (Some(k), None) => {
                self.wheel.cancel(k);
                None
            }
            (None, None) => None,
        };
        self.sessions[index as usize].timer = new;
    }

    // ----- trees -----

    /// Connects a session to a share (MS-SMB2 3.3.5.7). IPC$ counts like any
    /// other tree.
    pub fn connect_tree(
        &mut self,
        session: SessionId,
        share: &str,
        is_ipc: bool,
        now: Instant,
    ) -> Result<TreeId, TableError> {
        let s = self.session(session).ok_or(TableError::UnknownSession)?;
        if !s.is_authenticated() {
            return Err(TableError::NotAuthenticated);
        }
        if s.tree_count >= MAX_TREES_PER_SESSION {
            return Err(TableError::TooManyTrees);
        }
        check_name(share, MAX_SHARE_NAME)?;
        // Pick the next id not in use in this session.
        let mut id = TreeId::new(u32::from(s.next_tree_id).max(1)).unwrap_or(TreeId::FIRST);
        while self.find_tree(s, id).is_some() {
            id = id.next();
        }
        let created_s = u32::try_from(self.ns(now) / 1_000_000_000).unwrap_or(u32::MAX);
        let head = s.trees;
        let share = self.names.intern(share);
        let index = session.index();
        let t = self.trees.insert(Tree {
            session: index,
            next: head,
            id,
            share,
            created_s,
            is_ipc,
        }) as u32;
        let s = &mut self.sessions[index as usize];
        s.trees = t;
        s.tree_count += 1;
        // Ids cycle through 1..=65535; `find_tree` above skips those in use.
        s.next_tree_id = u16::try_from(id.next().as_u32()).unwrap_or(1);
        self.counters.trees += 1;
        Ok(id)
    }

    /// Disconnects one tree connect (MS-SMB2 3.3.5.8).
    pub fn disconnect_tree(&mut self, session: SessionId, tree: TreeId) -> Result<(), TableError> {
        let s = self.session(session).ok_or(TableError::UnknownSession)?;
        let mut prev = NIL;
        let mut i = s.trees;
        while i != NIL {
            let t = &self.trees[i as usize];
            if t.id == tree {
                let next = t.next;
                if prev == NIL {
                    self.sessions[session.index() as usize].trees = next;
                } else {
                    self.trees[prev as usize].next = next;
                }
                let t = self.trees.remove(i as usize);
                debug_assert_eq!(t.session, session.index());
                self.names.release(t.share);
                self.sessions[session.index() as usize].tree_count -= 1;
                self.counters.trees -= 1;
                return Ok(());
            }
            prev = i;
            i = t.next;
        }
        Err(TableError::UnknownTree)
    }

    // ----- handles -----

    /// Counts an opened file or pipe; a session with open handles is never
    /// reaped. Returns the new count.
    pub fn open_handle(&mut self, session: SessionId) -> Result<u32, TableError> {
        let s = self
            .session_mut(session)
            .ok_or(TableError::UnknownSession)?;
        s.open_handles = s.open_handles.saturating_add(1);
        Ok(s.open_handles)
    }

    /// Counts a closed handle. When the last one closes the session's idle
    /// deadline (from its last activity) is armed again. Returns the new count.
    pub fn close_handle(&mut self, session: SessionId) -> Result<u32, TableError> {
        let s = self
            .session_mut(session)
            .ok_or(TableError::UnknownSession)?;
        if s.open_handles == 0 {
            return Err(TableError::NoOpenHandles);
        }
        s.open_handles -= 1;
        let n = s.open_handles;
        if n == 0 && s.timer.is_none() {
            self.arm_session(session.index());
        }
        Ok(n)
    }

    // ----- timers -----

    /// Changes autodisconnect for every existing session at once: a shorter
    /// value reaps the already-idle at the next poll, a longer one defers them,
    /// `-1` disarms them.
    pub fn set_autodisconnect(&mut self, value: AutoDisconnect, now: Instant) {
        self.cfg.autodisconnect = value;
        let _ = now;
        let keys: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_authenticated())
            .map(|(i, _)| i as u32)
            .collect();
        for i in keys {
            self.arm_session(i);
        }
        if self.cfg.connection_idle_timeout.is_none() {
            self.rearm_idle_connections();
        }
    }

    /// Changes the connection-idle timeout (`None`: follow autodisconnect)
    /// for every sessionless connection at once.
    pub fn set_connection_idle_timeout(&mut self, value: Option<Duration>, _now: Instant) {
        self.cfg.connection_idle_timeout = value;
        self.rearm_idle_connections();
    }

    /// File the timers of connections idling after their last logoff again,
    /// at their idle start plus the timeout now in force.
    fn rearm_idle_connections(&mut self) {
        let idle: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.authenticated && c.session_count == 0)
            .map(|(i, _)| i as u32)
            .collect();
        let t = self.connection_idle_ns();
        for ci in idle {
            let c = &mut self.conns[ci as usize];
            let old = c.timer.take();
            let start = c.created;
            if let Some(k) = old {
                self.wheel.cancel(k);
            }
            if let Some(t) = t {
                let tick = self.deadline_tick(start.saturating_add(t));
                self.conns[ci as usize].timer = Some(self.wheel.insert(tick, Target::Conn(ci)));
            }
        }
    }

    /// Changes the pre-authentication timeout for every connection and
    /// session still authenticating.
    pub fn set_pre_auth_timeout(&mut self, value: Duration, _now: Instant) {
        self.cfg.pre_auth_timeout = value;
        let pre = self.pre_auth_ns();
        let conns: Vec<(u32, TimerKey, u64)> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.authenticated)
            .filter_map(|(i, c)| c.timer.map(|k| (i as u32, k, c.created)))
            .collect();
        for (_, k, created) in conns {
            let tick = self.deadline_tick(created.saturating_add(pre));
            self.wheel.reschedule(k, tick);
        }
        let sessions: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.is_authenticated())
            .map(|(i, _)| i as u32)
            .collect();
        for i in sessions {
            self.arm_session(i);
        }
    }

    /// Fires every timer due at `now`: reaps idle sessions (lazily re-arming
    /// the ones that were active since), and appends what the runtime must know
    /// or do to `out`.
    pub fn poll_timeouts(&mut self, now: Instant, out: &mut Vec<TableEvent>) {
        let now_ns = self.ns(now);
        let now_tick = self.now_tick(now_ns);
        while let Some(e) = self.wheel.poll_one(now_tick) {
            match e.value {
                Target::Owner(token) => out.push(TableEvent::Timer { token }),
                Target::Transport(token) => out.push(TableEvent::Transport { token, key: e.key }),
                Target::Session(i) => self.session_timer(i, now_ns, out),
                Target::Conn(ci) => {
                    let pre = self.pre_auth_ns();
                    let idle = self.connection_idle_ns();
                    let c = &mut self.conns[ci as usize];
                    debug_assert_eq!(c.timer, Some(e.key));
                    c.timer = None;
                    let conn = ConnId::new(ci, c.generation);
                    if !c.authenticated {
                        let deadline = c.created.saturating_add(pre);
                        c.end_reason.get_or_insert(EndReason::PreAuthTimeout);
                        self.counters.pre_auth_timeouts += 1;
                        self.record_lateness(EndReason::PreAuthTimeout, now_ns, deadline);
                        out.push(TableEvent::PreAuthExpired { conn });
                    } else if c.session_count == 0 {
                        let deadline = c.created.saturating_add(idle.unwrap_or(0));
                        c.end_reason.get_or_insert(EndReason::IdleConnection);
                        self.record_lateness(EndReason::IdleConnection, now_ns, deadline);
                        out.push(TableEvent::CloseConnection { conn });
                    }
                }
            }
        }
    }

    fn session_timer(&mut self, i: u32, now_ns: u64, out: &mut Vec<TableEvent>) {
        let (pre, auto) = (self.pre_auth_ns(), self.autodisconnect_ns());
        let s = &mut self.sessions[i as usize];
        s.timer = None;
        if s.is_authenticated()
            && s.expires != NO_EXPIRY
            && s.flags & F_EXPIRED == 0
            && s.expires <= now_ns
        {
            // The ticket ended: the session is expired from now on, and
            // reaped at its idle deadline unless re-authenticated.
            s.flags |= F_EXPIRED;
            self.counters.tickets_expired += 1;
            self.arm_session(i);
            return;
        }
        let deadline = if !s.is_authenticated() {
            s.created.saturating_add(pre)
        } else if s.open_handles > 0 {
            // Kept while handles are open; close_handle re-arms. A ticket
            // end still to come keeps its timer.
            self.arm_session(i);
            return;
        } else {
            match auto {
                Some(t) => s.last_activity.saturating_add(t),
                None => {
                    self.arm_session(i);
                    return;
                }
            }
        };
        if now_ns < deadline {
            // Active since it was filed: file it again at its true deadline.
            self.arm_session(i);
            return;
        }
        let lateness = now_ns - deadline;
        let (id, pre_auth) = (s.id, !s.is_authenticated());
        let reason = if pre_auth {
            EndReason::PreAuthTimeout
        } else {
            EndReason::TimedOut
        };
        let (ci, gone) = self.remove_session_keep(i, reason);
        if !pre_auth && self.cfg.keep_expired {
            self.expired.push((id, gone.conn, gone.ext));
        }
        if pre_auth {
            self.counters.pre_auth_timeouts += 1;
        } else {
            self.counters.timed_out += 1;
        }
        self.lateness.saturating_record(lateness / 1_000);
        self.record_lateness(reason, now_ns, deadline);
        let c = &mut self.conns[ci as usize];
        if c.session_count == 0 && c.authenticated {
            c.end_reason.get_or_insert(reason);
        }
        let c = &self.conns[ci as usize];
        let conn = ConnId::new(ci, c.generation);
        out.push(TableEvent::SessionExpired {
            session: id,
            conn,
            lateness: Duration::from_nanos(lateness),
        });
        if c.session_count == 0 && c.authenticated {
            out.push(TableEvent::CloseConnection { conn });
        }
    }

    fn record_lateness(&mut self, reason: EndReason, now_ns: u64, deadline: u64) {
        if let Some(i) = EndReason::REAPED.iter().position(|r| *r == reason) {
            self.reap_lateness[i].saturating_record(now_ns.saturating_sub(deadline) / 1_000);
        }
    }

    // ----- memory -----

    /// Bytes of heap held by the table's own structures (slab capacities,
    /// wheel, interned names, lateness histograms), excluding what `X`/`C` own on the heap.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.conns.capacity() * size_of::<SlabSlot<Connection<C>>>()
            + self.sessions.capacity() * size_of::<SlabSlot<Session<X>>>()
            + self.trees.capacity() * size_of::<SlabSlot<Tree>>()
            + self.wheel.heap_bytes()
            + self.names.heap_bytes()
            + std::iter::once(&self.lateness)
                .chain(&self.reap_lateness)
                .map(|h| h.distinct_values() * size_of::<u64>())
                .sum::<usize>()
            + self.expired.capacity() * size_of::<(SessionId, ConnId, X)>()
    }
}

/// A per-reason lateness histogram: 1 µs .. 1 day at 2 significant digits
/// (a tenth of the size of the 3-digit one, per shard).
fn reason_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 86_400_000_000, 2).expect("constant histogram bounds are valid")
}

/// Mirrors the layout of a `slab` slot, for memory accounting only.
#[allow(dead_code)]
enum SlabSlot<T> {
    Vacant(usize),
    Occupied(T),
}

/// Sizes of the per-session and per-connection records, for reports.
pub fn record_sizes() -> [(&'static str, usize); 4] {
    use std::mem::size_of;
    [
        ("session slot", size_of::<SlabSlot<Session<()>>>()),
        ("tree slot", size_of::<SlabSlot<Tree>>()),
        ("connection slot", size_of::<SlabSlot<Connection<()>>>()),
        ("timer slot", crate::wheel::slot_size::<Target>()),
    ]
}

#[cfg(test)]
mod tests;
