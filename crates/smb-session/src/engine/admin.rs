//! Administration through the engine: listings, disconnects (and their dry
//! runs), open files, counters per end reason, and the srvsvc calls that
//! need every shard or the runtime (MS-SRVS 3.1.4.1 NetrConnectionEnum,
//! 3.1.4.5 NetrSessionEnum, 3.1.4.6 NetrSessionDel, 3.1.4.16 NetrFileEnum,
//! 3.1.4.18 NetrServerSetInfo, 3.1.4.19 NetrFileClose).
//!
//! Disconnecting a session closes its pipes too, and reports the connections
//! left without sessions so the runtime can close them.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use hdrhistogram::Histogram;
use smb_auth::signing::SigningAlgorithm;
use smb_rpc::srvsvc::{ServerInfoChange, SrvConnectionInfo, SrvFileInfo, SrvSessionInfo};

use super::Engine;
use crate::ids::{ConnId, SessionId};
use crate::table::{EndReason, Selector, SessionFilter, SessionSnapshot, TreeSnapshot, UserName};

/// Which sessions a listing shows (see [`SessionFilter`]).
pub type AdminFilter = SessionFilter;
/// One session in a listing.
pub type SessionRow = SessionSnapshot;
/// One tree connect in a listing.
pub type TreeRow = TreeSnapshot;

/// What an administrative disconnect removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminSelector {
    /// One session.
    Session(SessionId),
    /// Every session of a user.
    User(String),
    /// Every session from a client computer (name or address text).
    Computer(String),
    /// Every session from a client address.
    ClientIp(IpAddr),
    /// Sessions from a client computer that belong to a user (NetrSessionDel
    /// with both arguments).
    ComputerAndUser(String, String),
}

/// Names one deferred srvsvc call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdminToken(pub u64);

/// What a deferred srvsvc call needs from every shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminOp {
    /// Every session (NetrSessionEnum).
    Sessions,
    /// Every tree connect (NetrConnectionEnum).
    Trees,
    /// Disconnect what these select (NetrSessionDel); an empty list deletes
    /// nothing.
    DeleteMany(Vec<AdminSelector>),
    /// Every open file and pipe (NetrFileEnum, NetrFileGetInfo).
    Files,
    /// Close one open (NetrFileClose); the id names its shard.
    CloseFile(u32),
    /// Change server settings (NetrServerSetInfo), live, as `ctl config
    /// set` does.
    SetServerInfo(ServerInfoChange),
}

/// The gathered answer to an [`AdminOp`].
#[derive(Clone, Debug)]
pub enum AdminOpResult {
    /// Every shard's sessions.
    Sessions(Vec<SessionRow>),
    /// Every shard's trees.
    Trees(Vec<TreeRow>),
    /// Sessions deleted, all shards together.
    Deleted(usize),
    /// Every shard's open files.
    Files(Vec<FileRow>),
    /// The outcome of a change (NetrFileClose, NetrServerSetInfo): a
    /// NET_API_STATUS and, for a bad setting, which field.
    Done {
        /// The method's return value.
        status: u32,
        /// ParmErr.
        parm_err: Option<u32>,
    },
}

/// One open file or pipe as an administrator sees it (`ctl files`,
/// NetrFileEnum level 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRow {
    /// Server-wide id (what NetrFileClose and `ctl close-file` take).
    pub id: u32,
    /// The session that opened it.
    pub session: SessionId,
    /// Its user.
    pub user: UserName,
    /// The client's address.
    pub client: SocketAddr,
    /// The share it was opened on (`IPC$` for a pipe).
    pub share: String,
    /// The path: `\PIPE\srvsvc` for a pipe; for a file on a disk share,
    /// its path relative to the share as the client named it, with a
    /// leading `\` (`\dir\file.txt`).
    pub path: String,
    /// PERM_FILE_* bits granted.
    pub permissions: u32,
    /// Locks held.
    pub locks: u32,
}

/// Engine and table counters of one shard (or merged over shards).
#[derive(Clone, Debug)]
pub struct EngineStats {
    /// Open connections.
    pub connections: u64,
    /// Sessions.
    pub sessions: u64,
    /// Tree connects.
    pub trees: u64,
    /// Sessions reaped by autodisconnect.
    pub timed_out: u64,
    /// Sessions disconnected by an administrator.
    pub admin_disconnected: u64,
    /// Sessions logged off by their clients.
    pub logged_off: u64,
    /// Connections or sessions that did not authenticate in time.
    pub pre_auth_timeouts: u64,
    /// Connections dropped for protocol violations.
    pub protocol_errors: u64,
    /// Failed logons (wrong password, unknown user, malformed or refused
    /// authentication, refused re-authentication).
    pub logons_failed: u64,
    /// Failed logons whose answer was held back by auth-failure-delay.
    pub logons_delayed: u64,
    /// Successful Kerberos logons (re-authentications included).
    pub kerberos_logons: u64,
    /// Refused Kerberos AP-REQs, by reason, in the order of
    /// [`KerberosFailure::ALL`](smb_auth::kerberos::KerberosFailure::ALL)
    /// (each also counts in `logons_failed`).
    pub kerberos_refused: [u64; smb_auth::kerberos::KerberosFailure::COUNT],
    /// Kerberos sessions whose ticket ended (marked expired by the wheel).
    pub tickets_expired: u64,
    /// Requests answered STATUS_NETWORK_SESSION_EXPIRED.
    pub expired_requests: u64,
    /// Answers to failed logons waiting right now.
    pub logons_waiting: u64,
    /// Bytes of output queued for connections whose peers have not taken
    /// them yet, every connection together.
    pub output_queued_bytes: u64,
    /// Reap time minus deadline, microseconds.
    pub lateness_us: Histogram<u64>,
    /// Sessions ended, per [`EndReason::ALL`] position.
    pub sessions_ended: [u64; EndReason::ALL.len()],
    /// Connections ended, per [`EndReason::ALL`] position.
    pub connections_ended: [u64; EndReason::ALL.len()],
    /// Reaping lateness (µs) per reason of [`EndReason::REAPED`].
    pub reap_lateness_us: [Histogram<u64>; 3],
}

impl Default for EngineStats {
    fn default() -> Self {
        EngineStats {
            connections: 0,
            sessions: 0,
            trees: 0,
            timed_out: 0,
            admin_disconnected: 0,
            logged_off: 0,
            pre_auth_timeouts: 0,
            protocol_errors: 0,
            logons_failed: 0,
            logons_delayed: 0,
            kerberos_logons: 0,
            kerberos_refused: [0; smb_auth::kerberos::KerberosFailure::COUNT],
            tickets_expired: 0,
            expired_requests: 0,
            logons_waiting: 0,
            output_queued_bytes: 0,
            lateness_us: new_histogram(),
            sessions_ended: [0; EndReason::ALL.len()],
            connections_ended: [0; EndReason::ALL.len()],
            reap_lateness_us: [reason_histogram(), reason_histogram(), reason_histogram()],
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 day at 3 significant digits (the table's bounds): constant
    // bounds that hdrhistogram accepts, so this cannot fail.
    Histogram::new_with_bounds(1, 86_400_000_000, 3).expect("constant histogram bounds are valid")
}

impl EngineStats {
    /// Add another shard's counters.
    pub fn merge(&mut self, o: &EngineStats) {
        self.connections += o.connections;
        self.sessions += o.sessions;
        self.trees += o.trees;
        self.timed_out += o.timed_out;
        self.admin_disconnected += o.admin_disconnected;
        self.logged_off += o.logged_off;
        self.pre_auth_timeouts += o.pre_auth_timeouts;
        self.protocol_errors += o.protocol_errors;
        self.logons_failed += o.logons_failed;
        self.logons_delayed += o.logons_delayed;
        self.kerberos_logons += o.kerberos_logons;
        for (a, b) in self.kerberos_refused.iter_mut().zip(o.kerberos_refused) {
            *a += b;
        }
        self.tickets_expired += o.tickets_expired;
        self.expired_requests += o.expired_requests;
        self.logons_waiting += o.logons_waiting;
        self.output_queued_bytes += o.output_queued_bytes;
        let _ = self.lateness_us.add(&o.lateness_us);
        for i in 0..EndReason::ALL.len() {
            self.sessions_ended[i] += o.sessions_ended[i];
            self.connections_ended[i] += o.connections_ended[i];
        }
        for (a, b) in self.reap_lateness_us.iter_mut().zip(&o.reap_lateness_us) {
            let _ = a.add(b);
        }
    }

    /// Sessions ended for `reason`.
    pub fn sessions_ended(&self, reason: EndReason) -> u64 {
        self.sessions_ended[reason.index()]
    }

    /// Connections ended for `reason`.
    pub fn connections_ended(&self, reason: EndReason) -> u64 {
        self.connections_ended[reason.index()]
    }
}

fn reason_histogram() -> Histogram<u64> {
    // As the table's per-reason histograms: 1 µs .. 1 day, 2 digits.
    Histogram::new_with_bounds(1, 86_400_000_000, 2).expect("constant histogram bounds are valid")
}

/// A dialect as `SMB 3.1.1` (NetrSessionEnum's `sesi502_cltype_name`).
fn client_type(dialect: u16) -> String {
    let name = match dialect {
        0x0202 => "2.0.2",
        0x0210 => "2.1",
        0x0300 => "3.0",
        0x0302 => "3.0.2",
        0x0311 => "3.1.1",
        _ => return String::new(),
    };
    format!("SMB {name}")
}

/// The name `Get-SmbSession`-style listings show for a signing algorithm.
pub fn signing_algorithm_name(a: SigningAlgorithm) -> &'static str {
    match a {
        SigningAlgorithm::HmacSha256 => "HMAC-SHA256",
        SigningAlgorithm::AesCmac => "AES-CMAC",
        SigningAlgorithm::AesGmac => "AES-GMAC",
    }
}

/// srvsvc views of table rows.
pub(crate) trait ToSrvs {
    type Out;
    fn to_srvs(&self) -> Self::Out;
}

impl ToSrvs for SessionSnapshot {
    type Out = SrvSessionInfo;
    fn to_srvs(&self) -> SrvSessionInfo {
        SrvSessionInfo {
            client: self.computer.clone(),
            user: self.user.to_string(),
            num_opens: self.open_handles,
            time_secs: self.connected.as_secs() as u32,
            idle_secs: self.idle.as_secs() as u32,
            is_guest: self.user == UserName::Guest,
            client_type: client_type(self.dialect),
            transport: String::new(),
        }
    }
}

impl ToSrvs for FileRow {
    type Out = SrvFileInfo;
    fn to_srvs(&self) -> SrvFileInfo {
        SrvFileInfo {
            id: self.id,
            permissions: self.permissions,
            num_locks: self.locks,
            path: self.path.clone(),
            user: self.user.to_string(),
        }
    }
}

impl ToSrvs for TreeSnapshot {
    type Out = SrvConnectionInfo;
    fn to_srvs(&self) -> SrvConnectionInfo {
        SrvConnectionInfo {
            id: self.tree.as_u32(),
            conn_type: if self.is_ipc { 3 } else { 0 },
            num_opens: self.open_handles,
            num_users: 1,
            time_secs: self.connected.as_secs() as u32,
            user: self.user.to_string(),
            netname: if self.is_ipc {
                self.computer.clone()
            } else {
                self.share.to_string()
            },
        }
    }
}

impl Engine {
    /// Sessions of this shard matching `filter`.
    pub fn admin_sessions(&self, filter: &AdminFilter, now: Instant) -> Vec<SessionRow> {
        self.table
            .sessions(filter, now)
            .map(|mut r| {
                self.fill_keys(&mut r);
                r
            })
            .collect()
    }

    /// What only the engine knows of a session's keys: the algorithm it
    /// signs with, the cipher it encrypts with, if any, and whether its
    /// client has sent encrypted requests.
    fn fill_keys(&self, r: &mut SessionRow) {
        let Some(s) = self.table.session(r.id) else {
            return;
        };
        r.signing_algorithm = s
            .ext
            .signing_key
            .as_ref()
            .map(|k| signing_algorithm_name(k.algo));
        r.cipher = s.ext.cipher().map(|c| c.name());
        r.client_encrypts = s.ext.crypt.as_ref().is_some_and(|c| c.client_encrypts);
    }

    /// Open files (on disk shares) and pipes of this shard (`ctl files`,
    /// NetrFileEnum), by id.
    pub fn admin_files(&self) -> Vec<FileRow> {
        self.local_files()
    }

    /// Close the open `id` of this shard: a NET_API_STATUS (0, or
    /// NERR_FileIdNotFound, or ERROR_BUSY while a call waits on it). A file
    /// on a disk share is closed in its backend as a client's CLOSE would.
    pub fn admin_close_file(&mut self, id: u32, now: Instant) -> u32 {
        self.close_open(id, now)
    }

    /// What [`Engine::admin_disconnect`] would remove, removing nothing
    /// (`ctl disconnect --dry-run`).
    pub fn admin_disconnect_preview(&self, sel: &AdminSelector, now: Instant) -> Vec<SessionRow> {
        let f = match sel {
            AdminSelector::Session(id) => {
                return self
                    .table
                    .session_snapshot(*id, now)
                    .map(|mut r| {
                        self.fill_keys(&mut r);
                        r
                    })
                    .into_iter()
                    .collect();
            }
            AdminSelector::ComputerAndUser(c, u) => SessionFilter {
                user: Some(u.clone()),
                computer: Some(c.clone()),
                client_ip: None,
            },
            AdminSelector::User(u) => SessionFilter {
                user: Some(u.clone()),
                ..Default::default()
            },
            AdminSelector::Computer(c) => SessionFilter {
                computer: Some(c.clone()),
                ..Default::default()
            },
            AdminSelector::ClientIp(ip) => SessionFilter {
                client_ip: Some(*ip),
                ..Default::default()
            },
        };
        self.admin_sessions(&f, now)
    }

    /// The socket of `conn` is gone for `reason` (the client closed it, the
    /// transport died, a limit): as [`Engine::connection_closed`], counted
    /// under that reason unless the engine or an administrator asked for
    /// the close first.
    pub fn connection_closed_because(&mut self, conn: ConnId, reason: EndReason, now: Instant) {
        self.table.mark_ending(conn, reason);
        self.connection_closed(conn, now);
    }

    /// Tell the clients of sessions autodisconnect just reaped, whose
    /// connections stay up, that their sessions are gone.
    pub(crate) fn notify_reaped(&mut self) {
        let gone: Vec<(SessionId, ConnId, super::SessionExt)> = self.table.take_expired().collect();
        for (sid, conn, mut ext) in gone {
            let stays = self
                .table
                .connection(conn)
                .is_some_and(|c| c.session_count() > 0);
            if stays {
                self.queue_session_closed(conn, sid, &mut ext);
            }
        }
    }

    /// Queue SMB2_SERVER_TO_CLIENT_NOTIFICATION with SmbNotifySessionClosed
    /// (MS-SMB2 2.2.44, 2.2.44.2) for `sid` on `conn`, when the connection
    /// runs 3.1.1 and its client takes notifications (3.3.5.4): MessageId
    /// 0xFFFFFFFFFFFFFFFF, the closed session's id, signed as the
    /// session's responses were, or, when the session encrypted
    /// (EncryptData, or its client sent encrypted requests), sealed in a
    /// TRANSFORM with the session's keys and next nonce (3.3.4.1.4; the
    /// session has left the table, its keys are in `ext`). A session whose
    /// nonces are spent gets no notification.
    fn queue_session_closed(&mut self, conn: ConnId, sid: SessionId, ext: &mut super::SessionExt) {
        use smb_wire::header::{flags, Command, Header, HeaderId, HeaderRepr, HEADER_LEN};
        use smb_wire::msg::negotiate::capabilities;
        use smb_wire::msg::notification::ServerToClientNotificationRepr;
        use smb_wire::msg::EmitBody;
        let Some(c) = self.table.connection(conn) else {
            return;
        };
        if c.ext.dialect() != 0x0311 || c.ext.server_capabilities & capabilities::NOTIFICATIONS == 0
        {
            return;
        }
        let mut crypt = ext.crypt.as_mut().filter(|c| c.encrypts());
        let key = ext
            .signing_key
            .as_ref()
            .filter(|_| crypt.is_none() && (ext.signing_required || ext.sign_responses))
            .cloned();
        let mut queued = false;
        self.with_output(conn, |_, out| {
            let frame_start = out.len();
            let mark = smb_wire::frame::FrameMark::begin(out);
            let start = out.len();
            HeaderRepr {
                credit_charge: 0,
                status: smb_wire::NtStatus::SUCCESS,
                command: Command::ServerToClientNotification,
                credit: 0,
                flags: flags::SERVER_TO_REDIR,
                next_command: 0,
                message_id: u64::MAX,
                id: HeaderId::Sync {
                    process_id: 0,
                    tree_id: 0,
                },
                session_id: sid.as_u64(),
                signature: [0; 16],
            }
            .emit(out);
            ServerToClientNotificationRepr::SESSION_CLOSED.emit_body(start, out);
            if let Some(k) = key {
                let mut h = Header::new_unchecked(&mut out[start..start + HEADER_LEN]);
                let f = h.flags();
                h.set_flags(f | flags::SIGNED);
                smb_auth::signing::sign(&k, &mut out[start..]);
            }
            if let Some(c) = crypt.as_mut() {
                if c.seal(sid, out, start).is_err() {
                    out.truncate(frame_start);
                    return;
                }
            }
            super::finish_frame(mark, out, frame_start);
            queued = true;
        });
        if queued {
            tracing::debug!(shard = self.shard, session = %sid, ?conn, "session-closed notification queued");
        }
    }

    /// Record why `conn` is about to close (the first reason recorded wins,
    /// so an engine or administrator close keeps its own).
    pub fn mark_ending(&mut self, conn: ConnId, reason: EndReason) {
        self.table.mark_ending(conn, reason);
    }

    /// Count a connection the runtime refused (a limit) before accepting it.
    pub fn count_refused(&mut self) {
        self.table.count_refused();
    }

    /// Tree connects of this shard, each with the opens (pipes, files) made
    /// through it (NetrConnectionEnum's `coni1_num_opens`).
    pub fn admin_trees(&self, now: Instant) -> Vec<TreeRow> {
        let all = SessionFilter::default();
        self.table
            .trees(&all, now)
            .map(|mut t| {
                t.open_handles = self.tree_opens(t.session, t.tree.as_u32());
                t
            })
            .collect()
    }

    /// Disconnect the selected sessions of this shard; returns how many went
    /// and which connections are left without sessions (to be closed).
    pub fn admin_disconnect(&mut self, sel: &AdminSelector, now: Instant) -> (usize, Vec<ConnId>) {
        let ids: Vec<SessionId> = match sel {
            AdminSelector::Session(id) => vec![*id],
            AdminSelector::ComputerAndUser(c, u) => {
                let f = SessionFilter {
                    user: Some(u.clone()),
                    computer: Some(c.clone()),
                    client_ip: None,
                };
                self.table.sessions(&f, now).map(|s| s.id).collect()
            }
            other => {
                let f = match other {
                    AdminSelector::User(u) => SessionFilter {
                        user: Some(u.clone()),
                        ..Default::default()
                    },
                    AdminSelector::Computer(c) => SessionFilter {
                        computer: Some(c.clone()),
                        ..Default::default()
                    },
                    AdminSelector::ClientIp(ip) => SessionFilter {
                        client_ip: Some(*ip),
                        ..Default::default()
                    },
                    _ => SessionFilter::default(),
                };
                self.table.sessions(&f, now).map(|s| s.id).collect()
            }
        };
        let mut count = 0;
        let mut closed = Vec::new();
        for id in ids {
            let Some(conn) = self.table.session_conn(id) else {
                continue;
            };
            // The connection stays when it holds other sessions: tell its
            // client this one is gone.
            if self
                .table
                .connection(conn)
                .is_some_and(|c| c.session_count() > 1)
            {
                if let Some(mut ext) = self
                    .table
                    .session_mut(id)
                    .map(|s| std::mem::take(&mut s.ext))
                {
                    self.queue_session_closed(conn, id, &mut ext);
                }
            }
            self.close_session_pipes(conn, id);
            self.close_session_files(conn, id, now);
            if let Ok(o) = self.table.disconnect(&Selector::Session(id), now) {
                count += o.sessions;
                for c in o.connections_to_close {
                    if !closed.contains(&c) {
                        closed.push(c);
                    }
                }
            }
        }
        // A computer or address selector also ends that client's
        // connections that hold no session.
        let extra = match sel {
            AdminSelector::Computer(c) => Some(Selector::Computer(c.clone())),
            AdminSelector::ClientIp(ip) => Some(Selector::ClientIp(*ip)),
            _ => None,
        };
        if let Some(s) = extra {
            if let Ok(o) = self.table.disconnect(&s, now) {
                for c in o.connections_to_close {
                    if !closed.contains(&c) {
                        closed.push(c);
                    }
                }
            }
        }
        (count, closed)
    }

    /// This shard's counters.
    pub fn stats(&self) -> EngineStats {
        let t = self.table.stats();
        let lateness_us = t.lateness.clone();
        EngineStats {
            connections: t.connections as u64,
            sessions: t.sessions as u64,
            trees: t.trees as u64,
            timed_out: t.timed_out,
            admin_disconnected: t.admin_disconnected,
            logged_off: self.counters.logged_off,
            pre_auth_timeouts: t.pre_auth_timeouts,
            protocol_errors: self.counters.protocol_errors,
            logons_failed: self.counters.logons_failed,
            logons_delayed: self.counters.logons_delayed,
            kerberos_logons: self.counters.kerberos_logons,
            kerberos_refused: self.counters.kerberos_refused,
            tickets_expired: t.tickets_expired,
            expired_requests: self.counters.expired_requests,
            logons_waiting: self.held.len() as u64,
            output_queued_bytes: self.queued as u64,
            lateness_us,
            sessions_ended: t.sessions_ended,
            connections_ended: t.connections_ended,
            reap_lateness_us: t.reap_lateness.clone(),
        }
    }
}
