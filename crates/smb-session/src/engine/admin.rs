//! Administration through the engine: listings, disconnects, counters, and
//! the srvsvc calls that need every shard (MS-SRVS 3.1.4.1, 3.1.4.5, 3.1.4.6).
//!
//! Disconnecting a session closes its pipes too, and reports the connections
//! left without sessions so the runtime can close them.

use std::net::IpAddr;
use std::time::Instant;

use hdrhistogram::Histogram;
use smb_rpc::srvsvc::{SrvConnectionInfo, SrvSessionInfo};

use super::Engine;
use crate::ids::{ConnId, SessionId};
use crate::table::{Selector, SessionFilter, SessionSnapshot, TreeSnapshot, UserName};

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
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour at 3 significant digits: constant bounds that
    // hdrhistogram accepts, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
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
            client_type: String::new(),
            transport: String::new(),
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
        self.table.sessions(filter, now).collect()
    }

    /// Tree connects of this shard.
    pub fn admin_trees(&self, now: Instant) -> Vec<TreeRow> {
        let all = SessionFilter::default();
        self.table.trees(&all, now).collect()
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
        }
    }
}
