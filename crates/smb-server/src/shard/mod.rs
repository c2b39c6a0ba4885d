//! Shards: one thread each, with its own listener, connections and protocol
//! engine (sessions, trees, timer wheel). Nothing on the request path locks
//! or crosses threads.
//!
//! The transport seam (ARCHITECTURE.md, "Transports"): what every shard
//! does whatever moves its bytes lives here in [`ShardCore`] (admission,
//! cutting frames and feeding the engine with per-frame backpressure, admin
//! commands, engine events); a transport owns only the sockets:
//!
//! - [`mio`]: epoll through mio, one system call per read and per write
//!   (the portable fallback);
//! - [`crate::transport::uring`]: one io_uring per shard, completions in
//!   batches.
//!
//! Other threads reach a shard through its [`ShardHandle`]: a crossbeam
//! channel plus a [`ShardWaker`] that interrupts the shard's wait.

pub(crate) mod mio;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use smb_session::engine::{EndReason, Engine, EngineEvent, FrameOutcome};
use smb_session::ids::ConnId;
use smb_wire::frame::split_frame;

use crate::admin::{AdminResult, ShardCmd};
use crate::Shared;

/// Unsent output at which a connection stops being read (backpressure).
pub(crate) const OUTPUT_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Longest single sleep; keeps the kernel's timer slack under a millisecond.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Interrupts a shard's wait (mio's `Waker`, or an eventfd the io_uring
/// transport reads).
pub(crate) trait ShardWaker: Send + Sync + std::fmt::Debug {
    /// Wake the shard.
    fn wake(&self) -> io::Result<()>;
}

impl ShardWaker for ::mio::Waker {
    fn wake(&self) -> io::Result<()> {
        ::mio::Waker::wake(self)
    }
}

/// The handle other threads use to reach a shard.
#[derive(Debug, Clone)]
pub struct ShardHandle {
    pub(crate) tx: Sender<ShardCmd>,
    pub(crate) waker: Arc<dyn ShardWaker>,
}

impl ShardHandle {
    /// Send a command and wake the shard.
    pub(crate) fn send(&self, cmd: ShardCmd) -> bool {
        self.tx.send(cmd).is_ok() && self.waker.wake().is_ok()
    }
}

/// What a transport must do with a connection after engine work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoEvent {
    /// Write what the engine queued for it.
    Flush(ConnId),
    /// Write what is queued, then close it.
    Close(ConnId),
}

/// The transport-independent part of a shard.
pub(crate) struct ShardCore {
    pub(crate) id: u16,
    pub(crate) engine: Engine,
    pub(crate) shared: Arc<Shared>,
    rx: Receiver<ShardCmd>,
    pub(crate) max_frame: usize,
    pub(crate) stopping: bool,
}

/// The result of feeding bytes to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fed {
    /// `used` bytes were consumed (whole frames); `stopped` when the
    /// connection's unsent output passed the high-water mark and the rest
    /// must wait until the peer reads.
    Used { used: usize, stopped: bool },
    /// Drop the connection (bad framing or a protocol violation).
    Close,
}

impl ShardCore {
    /// A core and the handle that reaches it.
    pub(crate) fn new(
        id: u16,
        engine: Engine,
        shared: Arc<Shared>,
        max_frame: usize,
        waker: Arc<dyn ShardWaker>,
    ) -> (ShardCore, ShardHandle) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let core = ShardCore {
            id,
            engine,
            shared,
            rx,
            max_frame,
            stopping: false,
        };
        (core, ShardHandle { tx, waker })
    }

    /// How long the transport may wait: until the engine's next deadline,
    /// at most [`MAX_SLEEP`].
    pub(crate) fn wait_timeout(&self, now: Instant) -> Duration {
        match self.engine.next_deadline() {
            Some(d) => d.saturating_duration_since(now).min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
    }

    /// A new connection from `peer`: counted against max-connections and
    /// given to the engine, or `None` when refused (the caller closes it).
    /// Also counted against max-connections-per-client for the peer's
    /// address, so one address cannot take every connection.
    pub(crate) fn admit(&mut self, peer: SocketAddr, now: Instant) -> Option<ConnId> {
        let limit = self.shared.max_connections.load(Ordering::Relaxed);
        let open = self.shared.open_connections.fetch_add(1, Ordering::AcqRel);
        if open >= limit {
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            self.shared
                .stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            self.engine.count_refused();
            tracing::debug!(%peer, limit, "connection refused: max-connections reached");
            return None;
        }
        if !self.shared.per_client.admit(peer.ip()) {
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            self.shared
                .stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            self.shared
                .stats
                .refused_per_client
                .fetch_add(1, Ordering::Relaxed);
            self.engine.count_refused();
            tracing::debug!(%peer, "connection refused: max-connections-per-client reached");
            return None;
        }
        Some(self.engine.accept(peer, now))
    }

    /// Record why `conn` is about to close (the first reason wins).
    pub(crate) fn mark(&mut self, conn: ConnId, reason: EndReason) {
        self.engine.mark_ending(conn, reason);
    }

    /// The transport opened (`true`) or finished closing (`false`) a socket.
    pub(crate) fn count_socket(&self, open: bool) {
        if open {
            self.shared.stats.sockets.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.stats.sockets.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The transport's socket for `conn` is gone.
    pub(crate) fn closed(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.engine.table().connection(conn) {
            self.shared.per_client.release(c.peer().ip());
        }
        self.engine.connection_closed(conn, now);
        self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Count an accept() failure.
    pub(crate) fn accept_failed(&self, e: &io::Error) {
        let n = self
            .shared
            .stats
            .accept_errors
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        // A persistent failure (a full file table) is logged at 1, 2, 4, ...
        if n.is_power_of_two() {
            tracing::warn!(shard = self.id, error = %e, failures = n, "accept failed");
        }
    }

    /// Answer complete frames in `data` from `conn` until its unsent output
    /// passes [`OUTPUT_HIGH_WATER`] (checked after every frame, so one read
    /// of many small requests cannot become unbounded output).
    pub(crate) fn feed(&mut self, conn: ConnId, data: &mut [u8], now: Instant) -> Fed {
        let mut used = 0;
        loop {
            if self.engine.transmit_len(conn) > OUTPUT_HIGH_WATER {
                return Fed::Used {
                    used,
                    stopped: true,
                };
            }
            let limit = self.engine.frame_limit(conn, self.max_frame);
            match split_frame(&data[used..], limit) {
                Ok(Some((payload, consumed))) => {
                    // A consumed frame is never read again: the engine may
                    // decrypt a TRANSFORM where it lies.
                    let frame = &mut data[used + payload.start..used + payload.end];
                    used += consumed;
                    if self.engine.handle_frame_in_place(conn, frame, now) == FrameOutcome::Close {
                        return Fed::Close;
                    }
                }
                Ok(None) => {
                    return Fed::Used {
                        used,
                        stopped: false,
                    }
                }
                Err(e) => {
                    tracing::debug!(shard = self.id, error = %e, "bad framing, dropping connection");
                    self.engine.mark_ending(conn, EndReason::ProtocolError);
                    self.shared
                        .stats
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return Fed::Close;
                }
            }
        }
    }

    /// The next thing the transport must do for a connection, after the
    /// engine's own work (cluster-wide srvsvc calls are started here).
    pub(crate) fn next_io_event(&mut self) -> Option<IoEvent> {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                EngineEvent::Transmit(conn) => return Some(IoEvent::Flush(conn)),
                EngineEvent::CloseConnection(conn) => return Some(IoEvent::Close(conn)),
                EngineEvent::Admin { conn, token, op } => {
                    crate::admin::spawn_srvsvc_admin(self.shared.clone(), self.id, conn, token, op);
                }
            }
        }
        None
    }

    /// Carry out the commands other threads sent. Connections an
    /// administrator disconnected are pushed to `close` (the engine has
    /// already forgotten their sessions); the transport closes them.
    pub(crate) fn drain_commands(&mut self, now: Instant, close: &mut Vec<ConnId>) {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                ShardCmd::Shutdown => self.stopping = true,
                ShardCmd::Query { query, reply } => {
                    let result = crate::admin::answer(&mut self.engine, query, now);
                    if let AdminResult::Disconnected { ref closed, .. } = result {
                        close.extend_from_slice(closed);
                    }
                    let _ = reply.send(result);
                }
                ShardCmd::Apply(cfg) => self.engine.reconfigure(cfg, now),
                ShardCmd::AdminDone {
                    conn,
                    token,
                    result,
                } => {
                    // The answer is queued on `conn` alone and announced
                    // with EngineEvent::Transmit.
                    self.engine.complete_admin(conn, token, result, now);
                }
            }
        }
    }

    /// Per-thread set-up both transports share: 1 ns timer slack (reaps are
    /// wake-ups) and the optional CPU pin.
    pub(crate) fn tune_thread(&self, pin_cpu: Option<usize>) {
        if let Err(e) = crate::transport::tighten_timer_slack() {
            tracing::debug!(error = %e, "PR_SET_TIMERSLACK failed");
        }
        if let Some(cpu) = pin_cpu {
            if let Err(e) = crate::transport::pin_current_thread(cpu) {
                tracing::warn!(shard = self.id, cpu, error = %e, "cannot pin shard thread");
            }
        }
    }
}

/// What a transport offers [`drain_engine_events`] and [`drain_commands`]:
/// the two socket operations engine work can ask for.
pub(crate) trait SocketIo {
    /// The shard's transport-independent state.
    fn core(&mut self) -> &mut ShardCore;
    /// Write what the engine queued for `conn`.
    fn flush_conn(&mut self, conn: ConnId);
    /// Close `conn`; with `last_answers`, what is queued goes out first.
    fn close_conn(&mut self, conn: ConnId, last_answers: bool, now: Instant);
    /// A reusable list for the connections admin commands close.
    fn close_list(&mut self) -> &mut Vec<ConnId>;
}

/// Carry out what the engine asked of the sockets.
pub(crate) fn drain_engine_events(t: &mut impl SocketIo) {
    while let Some(ev) = t.core().next_io_event() {
        match ev {
            IoEvent::Flush(conn) => t.flush_conn(conn),
            // Let the last answer (if any) go out first.
            IoEvent::Close(conn) => t.close_conn(conn, true, Instant::now()),
        }
    }
}

/// Carry out the commands other threads sent, close what an administrator
/// disconnected, then what the engine asked.
pub(crate) fn drain_commands(t: &mut impl SocketIo, now: Instant) {
    let mut close = std::mem::take(t.close_list());
    t.core().drain_commands(now, &mut close);
    for conn in close.drain(..) {
        t.close_conn(conn, false, now);
    }
    *t.close_list() = close;
    drain_engine_events(t);
}
