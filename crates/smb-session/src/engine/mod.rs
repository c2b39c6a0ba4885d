//! The sans-IO connection engine: SMB2 request bytes in, response bytes out.
//!
//! One [`Engine`] serves one shard: its connections, sessions, trees and open
//! pipes, with the shard's [`SessionTable`] and timer wheel underneath. It does
//! no I/O and reads no clock (like quinn-proto's `Connection`); the runtime
//! feeds it:
//!
//! 1. [`Engine::accept`] when a TCP connection arrives,
//! 2. [`Engine::handle_frame`] for each NBSS frame payload (responses are
//!    queued, framed, on that connection's own output queue),
//! 3. [`Engine::handle_timeout`] whenever [`Engine::next_deadline`] passes,
//! 4. [`Engine::connection_closed`] when the socket goes away,
//!
//! and then drains [`Engine::poll_event`] for work only the runtime can do
//! (closing a socket, writing output produced outside a frame, cluster-wide
//! srvsvc queries).
//!
//! Output belongs to its connection (`transmit`): the runtime asks each
//! connection for its bytes with [`Engine::poll_transmit`] and reports what
//! its socket took with [`Engine::transmitted`]. No buffer is shared between
//! connections, so bytes one connection caused can only ever reach that
//! connection.
//!
//! # Example
//!
//! One connection, one NEGOTIATE, driven in memory (a runtime does the
//! same with bytes from a socket):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Instant, SystemTime};
//! use smb_session::engine::{Engine, EngineConfig, FrameOutcome};
//! use smb_wire::header::{Command, Header, HeaderRepr};
//! use smb_wire::msg::negotiate::NegotiateRequestRepr;
//! use smb_wire::msg::{emit_message, U16s};
//! use smb_wire::NtStatus;
//!
//! let now = Instant::now();
//! let cfg = Arc::new(EngineConfig::new([1; 16]));
//! let mut engine = Engine::new(0, cfg, now, SystemTime::now(), Box::new(|b| b.fill(7)));
//! let conn = engine.accept("127.0.0.1:50000".parse().unwrap(), now);
//!
//! // An NBSS frame payload: the SMB2 header and the NEGOTIATE body.
//! let mut msg = Vec::new();
//! let negotiate = NegotiateRequestRepr {
//!     security_mode: 1,
//!     capabilities: 0,
//!     client_guid: [2; 16],
//!     client_start_time: 0,
//!     dialects: U16s::Native(&[0x0202, 0x0210]),
//!     contexts: &[],
//! };
//! emit_message(&HeaderRepr::request(Command::Negotiate, 0, 0, 0), &negotiate, &mut msg);
//! assert_eq!(engine.handle_frame(conn, &msg, now), FrameOutcome::Continue);
//!
//! // The answer waits on this connection's own queue, framed.
//! let out = engine.poll_transmit(conn).to_vec();
//! let response = Header::new_checked(&out[4..]).unwrap();
//! assert_eq!(response.command(), Command::Negotiate);
//! assert_eq!(response.status(), NtStatus::SUCCESS);
//! engine.transmitted(conn, out.len());
//! assert_eq!(engine.transmit_len(conn), 0);
//! ```
//!
//! Message processing follows MS-SMB2 3.3.5: framing and protocol id
//! (3.3.5.2), the compound chain (3.3.5.2.7), credits and the MessageId
//! window (3.3.5.2.3), signature verification (3.3.5.2.4), session lookup
//! (3.3.5.2.9), tree lookup (3.3.5.2.11), then the command.

mod admin;
pub mod backend;
pub mod budget;
mod conn;
pub mod credits;
mod encryption;
mod ipc;
mod negotiate;
mod setup;
#[cfg(test)]
mod tests;
pub mod throttle;
mod transmit;
mod tree;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use smb_auth::ntlm::CredentialStore;
use smb_wire::frame::FrameMark;
use smb_wire::header::{flags, Command, Header, HeaderId, HeaderRepr, HEADER_LEN};
use smb_wire::msg::error::ErrorResponseRepr;
use smb_wire::msg::EmitBody;
use smb_wire::protocol_id::{classify, ProtocolId};
use smb_wire::{compound::Compound, NtStatus};

use crate::autodisconnect::AutoDisconnect;
use crate::ids::{ConnId, SessionId};
use crate::table::{SessionTable, TableConfig, TableEvent};

pub use crate::table::EndReason;
pub use admin::{
    signing_algorithm_name, AdminFilter, AdminOp, AdminOpResult, AdminSelector, AdminToken,
    EngineStats, FileRow, SessionRow, TreeRow,
};
pub use backend::{
    Completion, Created, Ctx, FileAttrs, OpId, OpenRef, OplockBreakNotice, Output, Reply,
    SessionCtx, ShareBackend, ShareBackendFactory, ShareDef, ShareParams, Slot,
};
pub use conn::ConnState;
pub use encryption::EncryptionPolicy;
pub use setup::SessionExt;
pub use smb_auth::encryption::Cipher;

/// Shares registered by the embedding application, each with its
/// [`ShareBackend`] (the bundled server registers none: it serves IPC$
/// only).
pub trait ShareRegistry: Send + Sync + fmt::Debug {
    /// Every registered share.
    fn shares(&self) -> Vec<ShareDef>;
}

/// The empty registry.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoShares;

impl ShareRegistry for NoShares {
    fn shares(&self) -> Vec<ShareDef> {
        Vec::new()
    }
}

/// A fixed list of shares.
#[derive(Debug, Default, Clone)]
pub struct StaticShares(pub Vec<ShareDef>);

impl ShareRegistry for StaticShares {
    fn shares(&self) -> Vec<ShareDef> {
        self.0.clone()
    }
}

/// The empty credential store: only anonymous (and guest) logins.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoUsers;

impl CredentialStore for NoUsers {
    fn lookup(&self, _user: &str, _domain: &str) -> Option<smb_auth::ntlm::Credential> {
        None
    }
}

/// Everything the engine is configured with; swapped whole at run time
/// ([`Engine::reconfigure`]). Start from [`EngineConfig::new`] and set
/// fields (more may be added in later versions).
#[derive(Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// ServerGuid (MS-SMB2 2.2.4).
    pub server_guid: [u8; 16],
    /// NetBIOS computer name (upper case, at most 15 characters).
    pub netbios_name: String,
    /// NetBIOS domain (workgroup) name.
    pub netbios_domain: String,
    /// DNS computer name.
    pub dns_name: String,
    /// DNS domain name.
    pub dns_domain: String,
    /// Server comment (srvsvc).
    pub server_comment: String,
    /// Lowest dialect accepted.
    pub min_dialect: u16,
    /// Highest dialect accepted.
    pub max_dialect: u16,
    /// Whether every session must sign (RequireMessageSigning).
    pub require_signing: bool,
    /// Whether null sessions are accepted.
    pub allow_anonymous: bool,
    /// Whether unknown users become guests.
    pub allow_guest: bool,
    /// Credits one connection may hold (Samba's default is 8192).
    pub credit_cap: u16,
    /// Sessions one connection may hold.
    pub max_sessions_per_connection: usize,
    /// Idle time before a session is reaped.
    pub autodisconnect: AutoDisconnect,
    /// Time a connection has to authenticate.
    pub pre_auth_timeout: Duration,
    /// How long a connection whose sessions all logged off may stay
    /// (`None`: the autodisconnect value).
    pub connection_idle_timeout: Option<Duration>,
    /// The transport's name, as NetrSessionEnum level 502 shows it.
    pub transport: &'static str,
    /// How long the answer to a failed logon is held back (0: not at all;
    /// at most [`throttle::MAX_DELAY`]). Windows' default is 2 s.
    pub auth_failure_delay: Duration,
    /// MaxTransactSize / MaxReadSize / MaxWriteSize advertised (2.1+).
    pub max_io: u32,
    /// Whether srvsvc session calls must gather from other shards (the
    /// runtime sets this when it runs more than one shard).
    pub clustered: bool,
    /// The server-wide budget for memory clients can make the server hold
    /// (pipe buffers); share one between every shard's engine. The default
    /// has no server-wide limit (per-pipe and per-connection bounds still
    /// hold, see [`budget`]).
    pub memory: Arc<budget::MemoryBudget>,
    /// Known users.
    pub users: Arc<dyn CredentialStore + Send + Sync>,
    /// The Kerberos acceptor (the server's keytab); `None`: NTLMSSP only.
    /// With one, the NEGOTIATE hint offers MS-KRB5 and KRB5 before NTLMSSP.
    pub kerberos: Option<Arc<dyn smb_auth::kerberos::KerberosAcceptor>>,
    /// Registered shares.
    pub shares: Arc<dyn ShareRegistry>,
    /// Operations one connection may have waiting for a share backend
    /// (interim response sent, final one not yet); past it a call that
    /// would wait fails with STATUS_INSUFFICIENT_RESOURCES
    /// ([`backend`]).
    pub max_pending_per_connection: usize,
    /// Opens one connection may hold on disk shares (STATUS_INSUFFICIENT_RESOURCES
    /// past it).
    pub max_opens_per_connection: usize,
    /// Whether sessions encrypt (Session.EncryptData and
    /// RejectUnencryptedAccess for every session, MS-SMB2 3.3.5.5.3).
    pub encryption: EncryptionPolicy,
    /// The encryption policy of IPC$ (the stricter of it and
    /// [`EngineConfig::encryption`] applies).
    pub ipc_encryption: EncryptionPolicy,
    /// The ciphers offered, in the server's order of preference (3.1.1
    /// ENCRYPTION_CAPABILITIES; 3.0 and 3.0.2 use AES-128-CCM when it is
    /// listed). Empty: encryption is not negotiated at all.
    pub ciphers: Vec<Cipher>,
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("netbios_name", &self.netbios_name)
            .field("min_dialect", &format_args!("{:#06x}", self.min_dialect))
            .field("max_dialect", &format_args!("{:#06x}", self.max_dialect))
            .field("require_signing", &self.require_signing)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("allow_guest", &self.allow_guest)
            .field("credit_cap", &self.credit_cap)
            .field("autodisconnect", &self.autodisconnect)
            .field("pre_auth_timeout", &self.pre_auth_timeout)
            .field("auth_failure_delay", &self.auth_failure_delay)
            .field("encryption", &self.encryption)
            .field("ipc_encryption", &self.ipc_encryption)
            .field("ciphers", &self.ciphers)
            .field("kerberos", &self.kerberos.is_some())
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// Defaults: every dialect, anonymous allowed, no users, no shares,
    /// autodisconnect 15 minutes, pre-auth timeout 30 s.
    pub fn new(server_guid: [u8; 16]) -> Self {
        EngineConfig {
            server_guid,
            netbios_name: "SMBCORE".into(),
            netbios_domain: "WORKGROUP".into(),
            dns_name: "smbcore".into(),
            dns_domain: String::new(),
            server_comment: "smbcore".into(),
            min_dialect: 0x0202,
            max_dialect: 0x0311,
            require_signing: false,
            allow_anonymous: true,
            allow_guest: false,
            credit_cap: 8192,
            max_sessions_per_connection: 1024,
            autodisconnect: AutoDisconnect::default(),
            pre_auth_timeout: Duration::from_secs(30),
            connection_idle_timeout: None,
            transport: "tcp",
            auth_failure_delay: Duration::from_secs(2),
            max_io: 1024 * 1024,
            clustered: false,
            memory: Arc::new(budget::MemoryBudget::default()),
            users: Arc::new(NoUsers),
            kerberos: None,
            shares: Arc::new(NoShares),
            max_pending_per_connection: 512,
            max_opens_per_connection: 16_384,
            encryption: EncryptionPolicy::Off,
            ipc_encryption: EncryptionPolicy::Off,
            ciphers: Cipher::DEFAULT_ORDER.to_vec(),
        }
    }

    fn table_config(&self) -> TableConfig {
        TableConfig {
            autodisconnect: self.autodisconnect,
            pre_auth_timeout: self.pre_auth_timeout,
            tick: Duration::from_millis(1),
            max_sessions_per_connection: self.max_sessions_per_connection,
            connection_idle_timeout: self.connection_idle_timeout,
            keep_expired: true,
        }
    }
}

/// What the runtime must do after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOutcome {
    /// Keep the connection.
    Continue,
    /// Drop the connection now (protocol violation; MS-SMB2 says disconnect).
    Close,
}

/// Work for the runtime.
#[derive(Debug)]
pub enum EngineEvent {
    /// Close this connection (idle reap of its last session, pre-auth
    /// timeout, or a protocol violation discovered outside a frame).
    CloseConnection(ConnId),
    /// Output was queued for this connection outside
    /// [`Engine::handle_frame`] (a deferred answer completed, a held
    /// response released): write [`Engine::poll_transmit`] to its socket.
    Transmit(ConnId),
    /// A srvsvc call needs every shard's sessions: gather, then call
    /// [`Engine::complete_admin`].
    Admin {
        /// Connection waiting for the answer.
        conn: ConnId,
        /// Which call.
        token: AdminToken,
        /// What to gather or do.
        op: AdminOp,
    },
}

/// Counters kept by the engine itself (the table keeps the session ones).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub protocol_errors: u64,
    pub logons_failed: u64,
    pub logons_delayed: u64,
    pub logged_off: u64,
    pub kerberos_logons: u64,
    /// Refused AP-REQs by reason ([`smb_auth::kerberos::KerberosFailure::ALL`]).
    pub kerberos_refused: [u64; smb_auth::kerberos::KerberosFailure::COUNT],
    /// Requests answered STATUS_NETWORK_SESSION_EXPIRED.
    pub expired_requests: u64,
}

/// Whether a LOCK request only releases ranges (every element has
/// SMB2_LOCKFLAG_UNLOCK): what an expired session may still send.
fn only_unlocks(msg: &[u8]) -> bool {
    use smb_wire::msg::lock::{flags, LockRequest};
    LockRequest::parse(msg).is_ok_and(|l| {
        !l.locks().is_empty() && l.locks().iter().all(|e| e.flags & flags::UNLOCK != 0)
    })
}

/// Largest frame accepted before a session on the connection has
/// authenticated (a NEGOTIATE or SESSION_SETUP with a large Kerberos-sized
/// token fits easily).
pub const PRE_AUTH_MAX_FRAME: usize = 64 * 1024;

/// Source of random bytes (server challenges, salts, file ids).
pub type RandomSource = Box<dyn FnMut(&mut [u8]) + Send>;

/// The engine of one shard.
pub struct Engine {
    shard: u16,
    cfg: Arc<EngineConfig>,
    table: SessionTable<SessionExt, ConnState>,
    epoch: Instant,
    wall_at_epoch: SystemTime,
    random: RandomSource,
    events: VecDeque<EngineEvent>,
    table_events: Vec<TableEvent>,
    /// Transport timers that came due ([`Engine::take_transport_timers`]).
    transport_fired: Vec<(u32, u64)>,
    counters: Counters,
    next_admin_token: u64,
    spnego_hint: Arc<[u8]>,
    /// Sessions a LOGOFF of this frame ended: they go once the frame's
    /// responses are signed; later requests of the same chain that name
    /// them get USER_SESSION_DELETED. Emptied at the end of every frame,
    /// whatever its outcome.
    pending_logoffs: Vec<SessionId>,
    /// Free output buffers, shared by this shard's connections one at a
    /// time (a buffer belongs to one connection while it holds bytes).
    pool: transmit::BufferPool,
    /// Answers to failed logons waiting out the delay.
    held: throttle::HeldResponses,
    /// Bytes in every connection's output queue together.
    queued: usize,
    /// Set while a frame is answered when a logon in it failed: the whole
    /// frame's answer is held back.
    hold_frame: bool,
    /// This shard's instances of the registered share backends.
    shares: Vec<backend::ShareSlot>,
    /// The last operation number given ([`OpId`], AsyncId).
    next_op_id: u64,
    /// Completions to queue once the frame being answered is done (a
    /// CANCEL the backend honoured at once).
    completions: Vec<(OpId, Completion)>,
    /// Scratch space a TRANSFORM frame is decrypted in (reused).
    decrypt_buf: Vec<u8>,
    /// Set while the plaintext of a TRANSFORM from this session is
    /// answered.
    frame_encrypted: Option<SessionId>,
    /// The administrative ids of this shard's live opens (pipes and disk
    /// files): a new open never takes one still in use, even after the
    /// 24-bit counter wrapped ([`Engine::new_open_id`]).
    live_open_ids: std::collections::HashSet<u32>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("shard", &self.shard)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// The request being answered, as the handlers see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Req<'a> {
    pub conn: ConnId,
    pub now: Instant,
    /// The whole message (header + body).
    pub msg: &'a [u8],
    pub command: Command,
    pub message_id: u64,
    pub session_id: u64,
    pub tree_id: u32,
    pub flags: u32,
}

/// A handler's answer: a status plus a body already written to `out`, or an
/// error status (the caller writes the error body).
pub(crate) enum Answer {
    /// Body written; header status as given.
    Done(NtStatus),
    /// No body written; answer with an ERROR response of this status.
    Fail(NtStatus),
    /// No response at all (CANCEL).
    Silent,
    /// The response comes later ([`Engine::complete_admin`]).
    Deferred,
    /// A share backend answers later: send the interim response with this
    /// AsyncId (MS-SMB2 3.3.4.2).
    Pending(u64),
    /// Drop the connection.
    Drop,
}

/// Per-message context collected while a compound chain is answered.
pub(crate) struct ChainState {
    prev_session: u64,
    prev_tree: u32,
    prev_file: Option<smb_wire::msg::FileId>,
    /// The error of the chain's last CREATE, if it failed.
    create_error: Option<NtStatus>,
}

impl Engine {
    /// A new engine for shard `shard`. `epoch` and `wall_at_epoch` anchor
    /// wall-clock times (FILETIME fields) to the `Instant`s passed in later.
    pub fn new(
        shard: u16,
        cfg: Arc<EngineConfig>,
        epoch: Instant,
        wall_at_epoch: SystemTime,
        random: RandomSource,
    ) -> Self {
        let table = SessionTable::new(shard, epoch, cfg.table_config());
        let spnego_hint = smb_auth::spnego::neg_token_init_hint_for(cfg.kerberos.is_some()).into();
        let mut engine = Engine {
            shard,
            cfg,
            table,
            epoch,
            wall_at_epoch,
            random,
            events: VecDeque::new(),
            table_events: Vec::new(),
            transport_fired: Vec::new(),
            counters: Counters::default(),
            next_admin_token: 1,
            spnego_hint,
            pending_logoffs: Vec::new(),
            pool: transmit::BufferPool::default(),
            held: throttle::HeldResponses::default(),
            queued: 0,
            hold_frame: false,
            shares: Vec::new(),
            next_op_id: 0,
            completions: Vec::new(),
            decrypt_buf: Vec::new(),
            frame_encrypted: None,
            live_open_ids: std::collections::HashSet::new(),
        };
        engine.install_shares();
        engine
    }

    // ----- getters -------------------------------------------------------

    /// The configuration in force.
    pub fn config(&self) -> &Arc<EngineConfig> {
        &self.cfg
    }

    /// The session table (read-only; for inspection and tests).
    pub fn table(&self) -> &SessionTable<SessionExt, ConnState> {
        &self.table
    }

    /// The largest NBSS frame to accept from `conn` right now: small until a
    /// session on it has authenticated (NEGOTIATE and SESSION_SETUP fit in
    /// [`PRE_AUTH_MAX_FRAME`]), so that connections which never log in
    /// cannot make the runtime buffer large frames; `authenticated_max`
    /// after that.
    pub fn frame_limit(&self, conn: ConnId, authenticated_max: usize) -> usize {
        match self.table.connection(conn) {
            Some(c) if c.is_authenticated() => authenticated_max,
            _ => PRE_AUTH_MAX_FRAME.min(authenticated_max),
        }
    }

    /// When [`Engine::handle_timeout`] must next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.table.next_deadline()
    }

    /// FILETIME (100 ns since 1601) for `now`.
    pub(crate) fn filetime(&self, now: Instant) -> u64 {
        const UNIX_TO_1601_SECS: u64 = 11_644_473_600;
        let wall = self.wall_at_epoch + now.saturating_duration_since(self.epoch);
        let d = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        (d.as_secs() + UNIX_TO_1601_SECS) * 10_000_000 + u64::from(d.subsec_nanos() / 100)
    }

    pub(crate) fn random_array<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        (self.random)(&mut b);
        b
    }

    // ----- inputs --------------------------------------------------------

    /// A new TCP connection from `peer`; its pre-authentication deadline
    /// starts now.
    pub fn accept(&mut self, peer: SocketAddr, now: Instant) -> ConnId {
        self.table.add_connection_with(peer, ConnState::new(), now)
    }

    /// The socket of `conn` is gone: log its sessions off, drop its unsent
    /// output and forget it.
    pub fn connection_closed(&mut self, conn: ConnId, now: Instant) {
        self.close_conn_files(conn, now);
        self.release_conn_pipe_ids(conn);
        if let Some(c) = self.table.connection_mut(conn) {
            self.queued -= c.ext.tx.len();
            c.ext.tx.release(&mut self.pool);
        }
        let _ = self.table.remove_connection(conn, now);
    }

    /// Apply a new configuration (live): autodisconnect and the pre-auth
    /// timeout re-deadline existing sessions at once.
    pub fn reconfigure(&mut self, cfg: Arc<EngineConfig>, now: Instant) {
        if cfg.autodisconnect != self.cfg.autodisconnect {
            self.table.set_autodisconnect(cfg.autodisconnect, now);
        }
        if cfg.pre_auth_timeout != self.cfg.pre_auth_timeout {
            self.table.set_pre_auth_timeout(cfg.pre_auth_timeout, now);
        }
        if cfg.connection_idle_timeout != self.cfg.connection_idle_timeout {
            self.table
                .set_connection_idle_timeout(cfg.connection_idle_timeout, now);
        }
        self.table
            .set_max_sessions_per_connection(cfg.max_sessions_per_connection);
        if cfg.kerberos.is_some() != self.cfg.kerberos.is_some() {
            self.spnego_hint =
                smb_auth::spnego::neg_token_init_hint_for(cfg.kerberos.is_some()).into();
        }
        self.cfg = cfg;
        self.install_shares();
    }

    /// Reap what is due: idle sessions, connections that did not
    /// authenticate in time; release held answers whose delay has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut events = std::mem::take(&mut self.table_events);
        events.clear();
        self.table.poll_timeouts(now, &mut events);
        for ev in events.drain(..) {
            match ev {
                TableEvent::SessionExpired { session, conn, .. } => {
                    tracing::debug!(shard = self.shard, %session, "session reaped by autodisconnect");
                    self.close_session_files(conn, session, now);
                }
                TableEvent::PreAuthExpired { conn } => {
                    tracing::debug!(
                        shard = self.shard,
                        ?conn,
                        "pre-authentication deadline passed"
                    );
                    self.events.push_back(EngineEvent::CloseConnection(conn));
                }
                TableEvent::CloseConnection { conn } => {
                    self.events.push_back(EngineEvent::CloseConnection(conn));
                }
                TableEvent::Timer { token } => self.release_held(token),
                TableEvent::Transport { token, key } => {
                    self.transport_fired.push((token, key.to_raw()));
                }
            }
        }
        self.table_events = events;
        if !self.shares.is_empty() {
            self.poll_backends(now);
        }
        self.notify_reaped();
    }

    /// File a transport's timer on the shard's wheel, beside the sessions'
    /// deadlines (the AF_XDP transport's TCP timers): it comes due at the
    /// first [`Engine::handle_timeout`] at or after `at`, never before, late
    /// by at most the wheel's tick, and is then handed out by
    /// [`Engine::take_transport_timers`] with `token` and the key returned
    /// here. O(1).
    pub fn schedule_transport(&mut self, at: Instant, token: u32) -> u64 {
        self.table.schedule_transport(at, token).to_raw()
    }

    /// Cancel a timer of [`Engine::schedule_transport`] (O(1)); a key
    /// that is gone, or not a transport timer's, is ignored.
    pub fn cancel_transport(&mut self, key: u64) {
        if let Some(k) = crate::wheel::TimerKey::from_raw(key) {
            self.table.cancel_transport(k);
        }
    }

    /// Move the transport timers that came due to `out`, as `(token,
    /// key)`.
    pub fn take_transport_timers(&mut self, out: &mut Vec<(u32, u64)>) {
        out.append(&mut self.transport_fired);
    }

    /// Next piece of work for the runtime.
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    /// Answer one NBSS frame payload from `conn`. Responses are queued,
    /// framed, on `conn`'s own output ([`Engine::poll_transmit`]). On
    /// [`FrameOutcome::Close`] nothing of this frame was queued and the
    /// runtime must drop the connection.
    pub fn handle_frame(&mut self, conn: ConnId, payload: &[u8], now: Instant) -> FrameOutcome {
        self.frame(conn, now, |e, out| match classify(payload) {
            ProtocolId::Smb2 => e.handle_smb2(conn, payload, now, out),
            ProtocolId::Smb1 => e.handle_smb1_negotiate(conn, payload, now, out),
            ProtocolId::Transform => e.handle_transform(conn, payload, now, out),
            // Compression is not negotiated: a compressed frame is a
            // protocol violation (3.3.5.2.1).
            _ => FrameOutcome::Close,
        })
    }

    /// [`Engine::handle_frame`] for a payload the runtime lends mutably and
    /// does not read again: a TRANSFORM (MS-SMB2 3.3.5.2.1.1) is decrypted
    /// where it lies, without the copy into the engine's scratch buffer
    /// that `handle_frame` makes; the payload's bytes are garbage
    /// afterwards. Every other frame is answered as `handle_frame` does.
    pub fn handle_frame_in_place(
        &mut self,
        conn: ConnId,
        payload: &mut [u8],
        now: Instant,
    ) -> FrameOutcome {
        if classify(payload) != ProtocolId::Transform {
            return self.handle_frame(conn, payload, now);
        }
        self.frame(conn, now, |e, out| {
            e.handle_transform_in_place(conn, payload, now, out)
        })
    }

    /// What every frame shares around `answer`: `conn`'s output taken and
    /// given back, a dropped frame's output removed, LOGOFFs carried out,
    /// backends polled.
    fn frame(
        &mut self,
        conn: ConnId,
        now: Instant,
        answer: impl FnOnce(&mut Self, &mut Vec<u8>) -> FrameOutcome,
    ) -> FrameOutcome {
        let Some(c) = self.table.connection_mut(conn) else {
            return FrameOutcome::Close;
        };
        let before = c.ext.tx.len();
        let mut out = c.ext.tx.take(&mut self.pool);
        let frame_start = out.len();
        self.hold_frame = false;
        let outcome = answer(self, &mut out);
        if outcome == FrameOutcome::Close {
            self.counters.protocol_errors += 1;
            self.table.mark_ending(conn, EndReason::ProtocolError);
            out.truncate(frame_start);
        }
        // Every LOGOFF of the frame takes effect, after its response was
        // signed (or the frame dropped).
        for i in 0..self.pending_logoffs.len() {
            let _ = self.table.logoff(self.pending_logoffs[i], now);
        }
        self.pending_logoffs.clear();
        self.put_output(conn, out, before);
        if !self.shares.is_empty() || !self.completions.is_empty() {
            self.poll_backends(now);
        }
        outcome
    }

    /// Give `conn`'s output buffer back after appending to it (or to the
    /// pool when the connection went meanwhile).
    fn put_output(&mut self, conn: ConnId, out: Vec<u8>, before: usize) {
        match self.table.connection_mut(conn) {
            Some(c) => {
                c.ext.tx.put(out, &mut self.pool);
                self.queued = self.queued + c.ext.tx.len() - before;
            }
            None => {
                self.queued -= before;
                self.pool.give(out);
            }
        }
    }

    /// Append to `conn`'s output outside a frame and tell the runtime.
    pub(crate) fn with_output(&mut self, conn: ConnId, f: impl FnOnce(&mut Self, &mut Vec<u8>)) {
        let Some(c) = self.table.connection_mut(conn) else {
            return;
        };
        let queued_before = c.ext.tx.len();
        let mut out = c.ext.tx.take(&mut self.pool);
        let before = out.len();
        f(self, &mut out);
        let added = out.len() > before;
        self.put_output(conn, out, queued_before);
        if added {
            self.events.push_back(EngineEvent::Transmit(conn));
        }
    }

    // ----- outputs -------------------------------------------------------

    /// The bytes queued for `conn` that its socket has not taken yet (empty
    /// when there are none). Only `conn`'s own responses are ever here.
    pub fn poll_transmit(&self, conn: ConnId) -> &[u8] {
        match self.table.connection(conn) {
            Some(c) => c.ext.tx.pending(),
            None => &[],
        }
    }

    /// How many bytes wait for `conn`'s socket (for backpressure).
    pub fn transmit_len(&self, conn: ConnId) -> usize {
        self.table.connection(conn).map_or(0, |c| c.ext.tx.len())
    }

    /// `conn`'s socket took the first `n` bytes of [`Engine::poll_transmit`].
    pub fn transmitted(&mut self, conn: ConnId, n: usize) {
        if let Some(c) = self.table.connection_mut(conn) {
            let before = c.ext.tx.len();
            c.ext.tx.advance(n, &mut self.pool);
            self.queued -= before - c.ext.tx.len();
        }
    }

    /// Take everything queued for `conn` as an owned buffer, for a
    /// transport whose writes complete later and must own their bytes
    /// (io_uring). The bytes count as transmitted; hand the buffer back
    /// with [`Engine::recycle`] once the write completed.
    pub fn take_transmit(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        let c = self.table.connection_mut(conn)?;
        if c.ext.tx.len() == 0 {
            return None;
        }
        let buf = c.ext.tx.take_all();
        self.queued -= buf.len();
        Some(buf)
    }

    /// Give back a buffer taken with [`Engine::take_transmit`] (pooled
    /// for the next output of any connection of this engine).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.pool.give(buf);
    }

    /// Bytes queued for every connection of this engine together.
    pub fn transmit_queued(&self) -> usize {
        self.queued
    }

    /// Move everything queued for `conn` to the end of `into` (in-memory
    /// transports and tests; a socket runtime uses
    /// [`Engine::poll_transmit`] and [`Engine::transmitted`]).
    pub fn drain_transmit(&mut self, conn: ConnId, into: &mut Vec<u8>) {
        if let Some(c) = self.table.connection_mut(conn) {
            let n = c.ext.tx.len();
            into.extend_from_slice(c.ext.tx.pending());
            c.ext.tx.advance(n, &mut self.pool);
            self.queued -= n;
        }
    }

    fn handle_smb2(
        &mut self,
        conn: ConnId,
        payload: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> FrameOutcome {
        let frame_start = out.len();
        let mark = FrameMark::begin(out);
        // Start of each response message in `out` and whether to sign it.
        let mut written: smallvec_like::Ranges = smallvec_like::Ranges::default();
        let mut chain = ChainState {
            prev_session: 0,
            prev_tree: 0,
            prev_file: None,
            create_error: None,
        };
        for (index, item) in Compound::new(payload).enumerate() {
            let msg = match item {
                Ok(m) => m,
                Err(_) => {
                    out.truncate(frame_start);
                    return FrameOutcome::Close;
                }
            };
            let Ok(hdr) = Header::new_checked(msg) else {
                out.truncate(frame_start);
                return FrameOutcome::Close;
            };
            if hdr.is_response() || hdr.is_async() && hdr.command() != Command::Cancel {
                out.truncate(frame_start);
                return FrameOutcome::Close;
            }
            let related = index > 0 && hdr.is_related();
            // Inside a TRANSFORM every message names the TRANSFORM's session
            // (a related one inherits it).
            if let Some(sid) = self.frame_encrypted {
                if !related && hdr.session_id() != sid.as_u64() {
                    tracing::debug!(
                        shard = self.shard,
                        ?conn,
                        "SessionId differs from the TRANSFORM's"
                    );
                    out.truncate(frame_start);
                    return FrameOutcome::Close;
                }
            }
            let mut req = Req {
                conn,
                now,
                msg,
                command: hdr.command(),
                message_id: hdr.message_id(),
                session_id: hdr.session_id(),
                tree_id: hdr.tree_id().unwrap_or(0),
                flags: hdr.flags(),
            };
            tracing::trace!(
                shard = self.shard,
                command = ?req.command,
                message_id = req.message_id,
                session_id = format_args!("{:#x}", req.session_id),
                tree_id = req.tree_id,
                related,
                "request"
            );
            if related {
                // MS-SMB2 3.3.5.2.7.2: related requests inherit the ids.
                req.session_id = chain.prev_session;
                req.tree_id = chain.prev_tree;
            } else {
                // Only a related request may name the previous open with
                // the all-ones FileId; in any other it names no open
                // (STATUS_FILE_CLOSED, smbtorture compound.unrelated1).
                chain.prev_file = None;
            }
            // Credits (3.3.5.2.3). CANCEL carries no credit.
            if req.command != Command::Cancel {
                let Some(c) = self.table.connection_mut(conn) else {
                    return FrameOutcome::Close;
                };
                if c.ext
                    .credits
                    .consume(req.message_id, hdr.credit_charge())
                    .is_err()
                {
                    out.truncate(frame_start);
                    return FrameOutcome::Close;
                }
            }
            let pad_from = out.len();
            if index > 0 {
                pad8(out, written.last_start());
            }
            let start = out.len();
            let resp_hdr = HeaderRepr {
                credit_charge: hdr.credit_charge(),
                status: NtStatus::SUCCESS,
                command: req.command,
                credit: 0,
                flags: flags::SERVER_TO_REDIR | (req.flags & flags::RELATED_OPERATIONS),
                next_command: 0,
                message_id: req.message_id,
                id: HeaderId::Sync {
                    process_id: hdr.process_id().unwrap_or(0),
                    tree_id: req.tree_id,
                },
                session_id: req.session_id,
                signature: [0; 16],
            };
            resp_hdr.emit(out);
            let answer = if index == 0 && hdr.is_related() {
                // MS-SMB2 3.3.5.2.7.2: the first request of a chain cannot
                // be related to anything (smbtorture compound.invalid1).
                Answer::Fail(NtStatus::INVALID_PARAMETER)
            } else if let Some(e) = chain
                .create_error
                .filter(|_| related && names_open(req.command))
            {
                // 3.3.5.2.7.2: a related request that needs a FileId fails
                // as the CREATE before it did (as Windows and Samba do: a
                // failed READ or WRITE does not fail the next request,
                // smbtorture compound.related6; a bogus command is still
                // INVALID_PARAMETER, compound.invalid4).
                Answer::Fail(e)
            } else if related
                && names_open(req.command)
                && SessionId::from_raw(req.session_id)
                    .map_or(true, |id| self.table.session_conn(id) != Some(conn))
            {
                // 3.3.5.2.7.2: a related request inherits the previous
                // request's SessionId; when that names no session of this
                // connection (the previous one failed its session lookup),
                // Windows and Samba answer INVALID_PARAMETER, not
                // USER_SESSION_DELETED (smbtorture compound.invalid2).
                Answer::Fail(NtStatus::INVALID_PARAMETER)
            } else {
                self.dispatch(&req, &hdr, &mut chain, out)
            };
            let mut interim = false;
            let status = match answer {
                Answer::Done(s) => s,
                Answer::Pending(async_id) => {
                    // MS-SMB2 3.3.4.2: the interim response, an ERROR body
                    // with STATUS_PENDING in the async header form; not
                    // signed.
                    out.truncate(start + HEADER_LEN);
                    ErrorResponseRepr::default().emit_body(start, out);
                    let mut h = Header::new_unchecked(&mut out[start..start + HEADER_LEN]);
                    let f = h.flags();
                    h.set_flags(f | flags::ASYNC_COMMAND);
                    h.set_async_id(async_id);
                    interim = true;
                    NtStatus::PENDING
                }
                Answer::Fail(s) => {
                    out.truncate(start + HEADER_LEN);
                    ErrorResponseRepr::default().emit_body(start, out);
                    s
                }
                Answer::Silent | Answer::Deferred => {
                    out.truncate(pad_from);
                    continue;
                }
                Answer::Drop => {
                    out.truncate(frame_start);
                    return FrameOutcome::Close;
                }
            };
            if req.command == Command::Create || index == 0 && hdr.is_related() {
                // A chain that starts related is invalid as a whole: the
                // requests related to its first fail the same way
                // (smbtorture compound.related9).
                chain.create_error = status.is_error().then_some(status);
            }
            chain.prev_session = req.session_id;
            chain.prev_tree = req.tree_id;
            let granted = match self.table.connection_mut(conn) {
                Some(c) => c.ext.credits.grant(hdr.credit(), self.cfg.credit_cap),
                None => 0,
            };
            let mut h = Header::new_unchecked(&mut out[start..start + HEADER_LEN]);
            h.set_status(status);
            h.set_credit(granted);
            // SESSION_SETUP may have set a new session id; keep it.
            chain.prev_session =
                Header::new_unchecked(&out[start..start + HEADER_LEN]).session_id();
            if matches!(req.command, Command::Negotiate | Command::SessionSetup) {
                let end = out.len();
                self.after_response(conn, &out[start..end]);
            }
            written.push(smallvec_like::Written {
                start,
                request_signed: hdr.is_signed(),
                interim,
            });
        }
        if written.is_empty() {
            out.truncate(frame_start);
            return FrameOutcome::Continue;
        }
        // Link the chain (NextCommand), then sign each message, or seal the
        // whole chain as one TRANSFORM.
        let seal = self.frame_seal_session(&out[written.get(0).start..]);
        let n = written.len();
        for i in 0..n {
            let w = written.get(i);
            let start = w.start;
            let end = if i + 1 < n {
                written.get(i + 1).start
            } else {
                out.len()
            };
            if i + 1 < n {
                let mut h = Header::new_unchecked(&mut out[start..start + HEADER_LEN]);
                h.set_next_command((end - start) as u32);
            }
            if !w.interim && seal.is_none() {
                self.sign_response(conn, &mut out[start..end], w.request_signed);
            }
        }
        if !self.seal_or_end(seal, out, frame_start, mark.payload_start(), now) {
            return FrameOutcome::Close;
        }
        if !finish_frame(mark, out, frame_start) {
            // The chain's responses do not fit one NBSS frame: no defined
            // way to answer, so drop the connection rather than send a
            // frame with a wrong length.
            return FrameOutcome::Close;
        }
        if std::mem::take(&mut self.hold_frame) && !self.cfg.auth_failure_delay.is_zero() {
            return self.hold_answer(conn, out, frame_start, now);
        }
        FrameOutcome::Continue
    }

    /// Sign a response when its session signs (MS-SMB2 3.3.4.1.1): when
    /// the session requires signing, when the request was signed, and the
    /// final SESSION_SETUP response of a session with a key.
    pub(crate) fn sign_response(&mut self, conn: ConnId, msg: &mut [u8], request_signed: bool) {
        let hdr = Header::new_unchecked(&msg[..HEADER_LEN]);
        let sid = hdr.session_id();
        let status = hdr.status();
        let command = hdr.command();
        let Some(id) = SessionId::from_raw(sid) else {
            return;
        };
        let Some(s) = self.table.session(id) else {
            return;
        };
        if self.table.session_conn(id) != Some(conn) {
            return;
        }
        let Some(key) = s.ext.signing_key.as_ref() else {
            return;
        };
        // Only sign what the client can verify: not the interim
        // MORE_PROCESSING legs of a session setup.
        if command == Command::SessionSetup && status == NtStatus::MORE_PROCESSING_REQUIRED {
            return;
        }
        if !(s.ext.sign_responses || request_signed || command == Command::SessionSetup) {
            return;
        }
        let mut h = Header::new_unchecked(&mut msg[..HEADER_LEN]);
        let f = h.flags();
        h.set_flags(f | flags::SIGNED);
        smb_auth::signing::sign(key, msg);
    }

    fn dispatch(
        &mut self,
        req: &Req<'_>,
        hdr: &Header<&[u8]>,
        chain: &mut ChainState,
        out: &mut Vec<u8>,
    ) -> Answer {
        let negotiated = self
            .table
            .connection(req.conn)
            .is_some_and(|c| c.ext.is_negotiated());
        match req.command {
            Command::Negotiate => return self.handle_negotiate(req, out),
            _ if !negotiated => return Answer::Drop,
            Command::SessionSetup => return self.handle_session_setup(req, hdr, out),
            Command::Echo => {
                // ECHO keeps the connection alive; it is not session activity.
                smb_wire::msg::echo::EchoResponseRepr::default()
                    .emit_body(out.len() - HEADER_LEN, out);
                return Answer::Done(NtStatus::SUCCESS);
            }
            Command::Cancel => {
                self.handle_cancel(req, hdr);
                return Answer::Silent;
            }
            // Not a request a client may send (Samba answers the same).
            Command::Unknown(_) | Command::ServerToClientNotification => {
                return Answer::Fail(NtStatus::INVALID_PARAMETER)
            }
            _ => {}
        }
        // Everything else needs a valid, authenticated session on this connection.
        let sid = match self.check_session(req, hdr) {
            Ok(sid) => sid,
            Err(a) => return a,
        };
        if matches!(
            req.command,
            Command::Create
                | Command::Close
                | Command::Read
                | Command::Write
                | Command::Flush
                | Command::Lock
                | Command::Ioctl
                | Command::QueryDirectory
                | Command::ChangeNotify
                | Command::QueryInfo
                | Command::SetInfo
                | Command::OplockBreak
        ) && self.is_disk_tree(req.conn, sid, req.tree_id)
            && !is_engine_fsctl(req)
        {
            return self.handle_file(req, hdr, sid, chain, out);
        }
        match req.command {
            Command::Logoff => self.handle_logoff(req, sid, out),
            Command::TreeConnect => self.handle_tree_connect(req, sid, out),
            Command::TreeDisconnect => self.handle_tree_disconnect(req, sid, out),
            Command::Create
            | Command::Close
            | Command::Read
            | Command::Write
            | Command::Ioctl
            | Command::QueryInfo => {
                if crate::ids::TreeId::new(req.tree_id)
                    .and_then(|t| self.table.tree(sid, t))
                    .is_none()
                {
                    return Answer::Fail(NtStatus::NETWORK_NAME_DELETED);
                }
                self.handle_ipc(req, sid, chain, out)
            }
            _ => Answer::Fail(NtStatus::NOT_SUPPORTED),
        }
    }

    /// Session lookup, signature check and activity (3.3.5.2.4, 3.3.5.2.9).
    fn check_session(&mut self, req: &Req<'_>, hdr: &Header<&[u8]>) -> Result<SessionId, Answer> {
        let sid = SessionId::from_raw(req.session_id)
            .filter(|&id| self.table.session_conn(id) == Some(req.conn))
            .filter(|id| !self.pending_logoffs.contains(id))
            .ok_or(Answer::Fail(NtStatus::USER_SESSION_DELETED))?;
        let Some(s) = self.table.session(sid) else {
            return Err(Answer::Fail(NtStatus::USER_SESSION_DELETED));
        };
        if !s.is_authenticated() {
            tracing::debug!(shard = self.shard, session = %sid, command = ?req.command, "request on a session not yet authenticated");
            return Err(Answer::Fail(NtStatus::ACCESS_DENIED));
        }
        // RejectUnencryptedAccess (3.3.5.2.9, 3.3.5.2.11).
        if self.frame_encrypted.is_none() {
            if s.ext.crypt.as_ref().is_some_and(|c| c.reject_unencrypted) {
                tracing::debug!(shard = self.shard, session = %sid, command = ?req.command, "unencrypted request on an encrypting session");
                return Err(Answer::Fail(NtStatus::ACCESS_DENIED));
            }
            if self.tree_requires_encryption(sid, req.tree_id) {
                tracing::debug!(shard = self.shard, session = %sid, command = ?req.command, "unencrypted request on an encrypted share");
                return Err(Answer::Fail(NtStatus::ACCESS_DENIED));
            }
        }
        self.verify_signature(sid, req, hdr)?;
        // MS-SMB2 3.3.5.2.9: once its ticket has ended a session answers
        // only LOGOFF, CLOSE and LOCK requests that only unlock (so the
        // client can let go of what it holds), and SESSION_SETUP, which
        // re-authenticates it (handled before this); a refused request is
        // no activity.
        let still_served = match req.command {
            Command::Logoff | Command::Close => true,
            Command::Lock => only_unlocks(req.msg),
            _ => false,
        };
        if !still_served && self.table.is_expired(sid, req.now) {
            self.counters.expired_requests += 1;
            return Err(Answer::Fail(NtStatus::NETWORK_SESSION_EXPIRED));
        }
        self.table.touch(sid, req.now);
        Ok(sid)
    }

    /// MS-SMB2 3.3.5.2.4: a signed request on a session with a key must
    /// verify; an unsigned one is refused when the session requires
    /// signing. Either failure is ACCESS_DENIED and changes nothing.
    pub(crate) fn verify_signature(
        &self,
        sid: SessionId,
        req: &Req<'_>,
        hdr: &Header<&[u8]>,
    ) -> Result<(), Answer> {
        let Some(s) = self.table.session(sid) else {
            return Err(Answer::Fail(NtStatus::USER_SESSION_DELETED));
        };
        // An encrypted request is not signed: the AEAD tag covered it
        // (3.3.5.2.4).
        if self.frame_encrypted == Some(sid) {
            return Ok(());
        }
        if let Some(key) = s.ext.signing_key.as_ref() {
            if hdr.is_signed() {
                if !smb_auth::signing::verify(key, req.msg) {
                    tracing::debug!(shard = self.shard, session = %sid, command = ?req.command, "bad signature");
                    return Err(Answer::Fail(NtStatus::ACCESS_DENIED));
                }
            } else if s.ext.signing_required {
                tracing::debug!(shard = self.shard, session = %sid, command = ?req.command, "unsigned request on a signing session");
                return Err(Answer::Fail(NtStatus::ACCESS_DENIED));
            }
        }
        Ok(())
    }

    /// Hold back the frame just answered (a logon in it failed): it goes
    /// out when the delay has passed ([`throttle`]).
    fn hold_answer(
        &mut self,
        conn: ConnId,
        out: &mut Vec<u8>,
        frame_start: usize,
        now: Instant,
    ) -> FrameOutcome {
        let bytes = out[frame_start..].to_vec();
        out.truncate(frame_start);
        let Some(c) = self.table.connection_mut(conn) else {
            return FrameOutcome::Close;
        };
        match self.held.hold(conn, bytes, &mut c.ext.held_answers) {
            Ok(token) => {
                let at = throttle::due(now, self.cfg.auth_failure_delay);
                self.table.schedule(at, token);
                self.counters.logons_delayed += 1;
                FrameOutcome::Continue
            }
            Err(throttle::HoldError::TooMany) => {
                tracing::debug!(
                    shard = self.shard,
                    ?conn,
                    "too many failed logons waiting; dropping the connection"
                );
                FrameOutcome::Close
            }
        }
    }

    /// A held answer is due: queue it on its connection, if still there.
    fn release_held(&mut self, token: u32) {
        let Some((conn, bytes)) = self.held.release(token) else {
            return;
        };
        if let Some(c) = self.table.connection_mut(conn) {
            c.ext.held_answers = c.ext.held_answers.saturating_sub(1);
            self.with_output(conn, |_, out| out.extend_from_slice(&bytes));
        }
    }

    // ----- administration -------------------------------------------------

    /// A server-wide id for a new open (NetrFileEnum's `fi3_id`, what
    /// NetrFileClose and `ctl close-file` take): the table's next, passed
    /// over while an open of this shard still holds it. Only a shard with
    /// about 2^24 opens at once could run out; it then gets a duplicate
    /// rather than wait (logged).
    pub(crate) fn new_open_id(&mut self) -> u32 {
        for _ in 0..64 {
            let id = self.table.allocate_open_id();
            if self.live_open_ids.insert(id) {
                return id;
            }
        }
        tracing::warn!(
            shard = self.shard,
            "open ids exhausted: an administrative id is shared"
        );
        self.table.allocate_open_id()
    }

    /// The open holding `id` went.
    pub(crate) fn release_open_id(&mut self, id: u32) {
        self.live_open_ids.remove(&id);
    }

    pub(crate) fn admin_token(&mut self) -> AdminToken {
        let t = AdminToken(self.next_admin_token);
        self.next_admin_token += 1;
        t
    }
}

/// Whether `req` is an IOCTL the engine answers on any tree
/// (FSCTL_VALIDATE_NEGOTIATE_INFO, the DFS referral requests).
fn is_engine_fsctl(req: &Req<'_>) -> bool {
    use smb_wire::msg::ioctl::{
        IoctlRequest, FSCTL_DFS_GET_REFERRALS, FSCTL_DFS_GET_REFERRALS_EX,
        FSCTL_VALIDATE_NEGOTIATE_INFO,
    };
    req.command == Command::Ioctl
        && IoctlRequest::parse(req.msg).is_ok_and(|io| {
            matches!(
                io.ctl_code(),
                FSCTL_VALIDATE_NEGOTIATE_INFO
                    | FSCTL_DFS_GET_REFERRALS
                    | FSCTL_DFS_GET_REFERRALS_EX
            )
        })
}

/// Write the NBSS length of the frame begun at `frame_start`; when the
/// payload is too large for a frame (over 16 MiB, RFC 1002 4.3.1) remove
/// the whole frame from `out` and return false: a frame must never go out
/// with a wrong length.
/// Whether `command` names an open by its FileId (MS-SMB2 3.3.5.2.7.2).
fn names_open(command: Command) -> bool {
    matches!(
        command,
        Command::Close
            | Command::Flush
            | Command::Read
            | Command::Write
            | Command::Lock
            | Command::Ioctl
            | Command::QueryDirectory
            | Command::ChangeNotify
            | Command::QueryInfo
            | Command::SetInfo
            | Command::OplockBreak
    )
}

pub(crate) fn finish_frame(mark: FrameMark, out: &mut Vec<u8>, frame_start: usize) -> bool {
    match mark.finish(out) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "response too large for one frame; dropped");
            out.truncate(frame_start);
            false
        }
    }
}

/// Pad `out` with zeros so the next message starts 8-byte aligned relative to
/// the previous message's start (MS-SMB2 3.3.4.1.3).
fn pad8(out: &mut Vec<u8>, prev_start: usize) {
    while (out.len() - prev_start) % 8 != 0 {
        out.push(0);
    }
}

/// A tiny inline list of response messages, to avoid an allocation per frame.
mod smallvec_like {
    /// One response message in the output buffer.
    #[derive(Default, Clone, Copy)]
    pub struct Written {
        /// Offset of its header in `out`.
        pub start: usize,
        /// Whether its request was signed (MS-SMB2 3.3.4.1.1: the response
        /// to a signed request is signed).
        pub request_signed: bool,
        /// An interim response (MS-SMB2 3.3.4.2: not signed).
        pub interim: bool,
    }

    /// Up to 8 messages inline, more spill into a Vec.
    #[derive(Default)]
    pub struct Ranges {
        inline: [Written; 8],
        len: usize,
        spill: Vec<Written>,
    }

    impl Ranges {
        pub fn push(&mut self, v: Written) {
            if self.len < 8 {
                self.inline[self.len] = v;
            } else {
                self.spill.push(v);
            }
            self.len += 1;
        }

        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        pub fn len(&self) -> usize {
            self.len
        }

        pub fn last_start(&self) -> usize {
            if self.len == 0 {
                0
            } else {
                self.get(self.len - 1).start
            }
        }

        pub fn get(&self, i: usize) -> Written {
            if i < 8 {
                self.inline[i]
            } else {
                self.spill.get(i - 8).copied().unwrap_or_default()
            }
        }
    }
}
