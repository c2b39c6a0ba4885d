//! One shard: a thread with its own mio `Poll`, SO_REUSEPORT listener,
//! connections and protocol engine (sessions, trees, timer wheel).
//!
//! Nothing on the request path locks or crosses threads. Administration
//! arrives over a crossbeam channel and wakes the poll through a `Waker`.
//! The poll timeout is the engine's next deadline, capped at one second, so
//! an idle shard sleeps until the next session is due.
//!
//! Every read lands in one shard-wide scratch buffer. Output belongs to its
//! connection: the engine queues each connection's responses on that
//! connection alone (buffers drawn from a per-shard pool) and this loop
//! writes `Engine::poll_transmit(conn)` to `conn`'s socket and nothing else
//! (ARCHITECTURE.md, "Output belongs to its connection"). A connection holds
//! bytes of its own only while a frame is half received or while the peer is
//! slow to read what we sent, so an idle connection holds no buffer at all.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use smb_session::engine::{Engine, EngineEvent, FrameOutcome};
use smb_session::ids::ConnId;
use smb_wire::frame::split_frame;

use crate::admin::{AdminResult, ShardCmd};
use crate::Shared;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Size of the shard-wide read buffer.
const SCRATCH: usize = 64 * 1024;
/// Pending output at which a connection stops being read (backpressure).
const OUTPUT_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Longest single sleep; keeps the kernel's timer slack under a millisecond.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// What the runtime holds per socket, next to the engine's connection state.
#[derive(Debug)]
struct ConnIo {
    stream: TcpStream,
    conn: ConnId,
    /// Bytes of a frame not yet complete. Empty (no allocation) when idle.
    partial: Vec<u8>,
    /// Reading paused because the engine holds more than the high-water
    /// mark of output the peer has not taken.
    paused: bool,
    /// `partial` may hold complete frames left unanswered when the
    /// high-water mark was reached in the middle of a batch.
    backlog: bool,
    writable_registered: bool,
}

/// The handle other threads use to reach a shard.
#[derive(Debug, Clone)]
pub struct ShardHandle {
    pub(crate) tx: Sender<ShardCmd>,
    pub(crate) waker: Arc<Waker>,
}

impl ShardHandle {
    /// Send a command and wake the shard.
    pub(crate) fn send(&self, cmd: ShardCmd) -> bool {
        self.tx.send(cmd).is_ok() && self.waker.wake().is_ok()
    }
}

/// The shard's thread state.
pub(crate) struct Shard {
    id: u16,
    poll: Poll,
    listener: TcpListener,
    engine: Engine,
    conns: Slab<ConnIo>,
    by_conn: HashMap<ConnId, usize>,
    rx: Receiver<ShardCmd>,
    scratch: Vec<u8>,
    shared: Arc<Shared>,
    max_frame: usize,
    pin_cpu: Option<usize>,
    stopping: bool,
}

impl Shard {
    /// Build a shard around an already bound listener.
    pub(crate) fn new(
        id: u16,
        listener: std::net::TcpListener,
        engine: Engine,
        shared: Arc<Shared>,
        max_frame: usize,
        pin_cpu: Option<usize>,
    ) -> io::Result<(Shard, ShardHandle)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let shard = Shard {
            id,
            poll,
            listener,
            engine,
            conns: Slab::new(),
            by_conn: HashMap::new(),
            rx,
            scratch: vec![0; SCRATCH],
            shared,
            max_frame,
            pin_cpu,
            stopping: false,
        };
        Ok((shard, ShardHandle { tx, waker }))
    }

    /// Run until a shutdown command arrives.
    pub(crate) fn run(mut self) {
        // Reaps are wake-ups: do not let the kernel add 50 µs of slack.
        if let Err(e) = crate::transport::tighten_timer_slack() {
            tracing::debug!(error = %e, "PR_SET_TIMERSLACK failed");
        }
        if let Some(cpu) = self.pin_cpu {
            if let Err(e) = crate::transport::pin_current_thread(cpu) {
                tracing::warn!(shard = self.id, cpu, error = %e, "cannot pin shard thread");
            }
        }
        let mut events = Events::with_capacity(1024);
        tracing::debug!(shard = self.id, "shard started");
        while !self.stopping {
            let now = Instant::now();
            let timeout = match self.engine.next_deadline() {
                Some(d) => d.saturating_duration_since(now).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!(shard = self.id, error = %e, "poll failed");
                break;
            }
            for ev in events.iter() {
                // Each event reads the clock itself: activity must never be
                // dated earlier than the request arrived, or a session could
                // be reaped before its deadline.
                let now = Instant::now();
                match ev.token() {
                    LISTENER => self.accept_all(now),
                    WAKER => self.drain_commands(now),
                    Token(key) => {
                        if ev.is_writable() {
                            self.flush(key);
                        }
                        if ev.is_error() || ev.is_write_closed() {
                            // The peer is gone (reset, or shut both ways):
                            // answer what it left unless it stopped reading
                            // (a paused connection is not read), then close.
                            // Without this a paused connection whose peer
                            // reset would linger until its session is reaped.
                            self.read_ready(key);
                            self.close(key, Instant::now());
                        } else if ev.is_readable() || ev.is_read_closed() {
                            self.read_ready(key);
                        }
                    }
                }
            }
            self.engine.handle_timeout(Instant::now());
            self.drain_engine_events();
        }
        self.shutdown();
    }

    fn accept_all(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: stop accepting for this round; the
                    // listener stays registered and existing sessions go on.
                    tracing::warn!(shard = self.id, error = %e, "accept failed");
                    self.shared
                        .stats
                        .accept_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        let limit = self.shared.max_connections.load(Ordering::Relaxed);
        let open = self.shared.open_connections.fetch_add(1, Ordering::AcqRel);
        if open >= limit {
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            self.shared
                .stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, limit, "connection refused: max-connections reached");
            return; // dropping the stream closes it
        }
        let _ = stream.set_nodelay(true);
        let conn = self.engine.accept(peer, now);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            tracing::warn!(error = %e, "register failed");
            self.engine.connection_closed(conn, now);
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        entry.insert(ConnIo {
            stream,
            conn,
            partial: Vec::new(),
            paused: false,
            backlog: false,
            writable_registered: false,
        });
        self.by_conn.insert(conn, key);
    }

    /// Read everything the socket has, answering each complete frame.
    ///
    /// Backpressure is checked after every frame, not only between reads:
    /// once a connection has more than [`OUTPUT_HIGH_WATER`] of output its
    /// peer has not taken, the rest of the batch waits in `partial`
    /// (`backlog`) and the connection is not read again until the peer
    /// catches up. So what one connection can make the server queue is the
    /// high-water mark plus one frame's answers, however many requests one
    /// read brought.
    fn read_ready(&mut self, key: usize) {
        loop {
            let Some(io) = self.conns.get_mut(key) else {
                return;
            };
            if io.paused {
                return;
            }
            let fresh = if io.backlog {
                // Frames held back by backpressure come first.
                io.backlog = false;
                None
            } else {
                match io.stream.read(&mut self.scratch) {
                    Ok(0) => {
                        self.close(key, Instant::now());
                        return;
                    }
                    Ok(n) => Some(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.close(key, Instant::now());
                        return;
                    }
                }
            };
            // The bytes arrived no earlier than now.
            let now = Instant::now();
            let keep = match fresh {
                Some(n) if io.partial.is_empty() => {
                    let data = std::mem::take(&mut self.scratch);
                    let r = self.process(key, &data[..n], now);
                    self.scratch = data;
                    r.map(|(used, stopped)| (used, stopped, Some(n)))
                }
                _ => {
                    if let Some(n) = fresh {
                        io.partial.extend_from_slice(&self.scratch[..n]);
                    }
                    let data = std::mem::take(&mut io.partial);
                    let r = self.process(key, &data, now);
                    match self.conns.get_mut(key) {
                        Some(io) => io.partial = data,
                        None => return,
                    }
                    r.map(|(used, stopped)| (used, stopped, None))
                }
            };
            let Some((used, stopped, scratch_len)) = keep else {
                self.close(key, now);
                return;
            };
            let Some(io) = self.conns.get_mut(key) else {
                return;
            };
            match scratch_len {
                None => {
                    io.partial.drain(..used);
                    if io.partial.is_empty() {
                        io.partial = Vec::new();
                    }
                }
                Some(n) if used < n => io.partial = self.scratch[used..n].to_vec(),
                Some(_) => {}
            }
            io.backlog = stopped;
            self.flush(key);
            if self.conns.get(key).is_none() {
                return;
            }
            self.drain_engine_events();
        }
    }

    /// Answer complete frames in `data` until the connection's unsent
    /// output passes the high-water mark; returns the bytes used and
    /// whether it stopped early for backpressure, or `None` when the
    /// connection must be dropped.
    fn process(&mut self, key: usize, data: &[u8], now: Instant) -> Option<(usize, bool)> {
        let conn = self.conns.get(key)?.conn;
        let mut used = 0;
        loop {
            if self.engine.transmit_len(conn) > OUTPUT_HIGH_WATER {
                return Some((used, true));
            }
            let limit = self.engine.frame_limit(conn, self.max_frame);
            match split_frame(&data[used..], limit) {
                Ok(Some((payload, consumed))) => {
                    let frame = &data[used + payload.start..used + payload.end];
                    used += consumed;
                    match self.engine.handle_frame(conn, frame, now) {
                        FrameOutcome::Continue => {}
                        FrameOutcome::Close => return None,
                    }
                }
                Ok(None) => return Some((used, false)),
                Err(e) => {
                    tracing::debug!(shard = self.id, error = %e, "bad framing, dropping connection");
                    self.shared
                        .stats
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
    }

    /// Write what the engine has queued for this connection (its own
    /// responses, nothing else) until the socket would block.
    fn flush(&mut self, key: usize) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        loop {
            let bytes = self.engine.poll_transmit(io.conn);
            if bytes.is_empty() {
                break;
            }
            match io.stream.write(bytes) {
                Ok(0) => break,
                Ok(n) => self.engine.transmitted(io.conn, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Wait for WRITABLE.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The peer is gone: nothing queued for it can be delivered.
                Err(_) => {
                    self.close(key, Instant::now());
                    return;
                }
            }
        }
        let was_paused = io.paused;
        self.update_interest(key);
        if was_paused && self.conns.get(key).is_some_and(|io| !io.paused) {
            // Edge-triggered: data may have arrived while we were paused.
            self.read_ready(key);
        }
    }

    fn update_interest(&mut self, key: usize) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        let queued = self.engine.transmit_len(io.conn);
        let want_write = queued > 0;
        let paused = queued > OUTPUT_HIGH_WATER;
        if want_write == io.writable_registered && paused == io.paused {
            return;
        }
        io.writable_registered = want_write;
        io.paused = paused;
        let interest = match (paused, want_write) {
            (true, _) => Interest::WRITABLE,
            (false, true) => Interest::READABLE | Interest::WRITABLE,
            (false, false) => Interest::READABLE,
        };
        let _ = self
            .poll
            .registry()
            .reregister(&mut io.stream, Token(key), interest);
    }

    fn drain_engine_events(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                EngineEvent::Transmit(conn) => {
                    if let Some(&key) = self.by_conn.get(&conn) {
                        self.flush(key);
                    }
                }
                EngineEvent::CloseConnection(conn) => {
                    if let Some(&key) = self.by_conn.get(&conn) {
                        // Let the last answer (if any) go out first.
                        self.flush(key);
                        self.close(key, Instant::now());
                    }
                }
                EngineEvent::Admin { conn, token, op } => {
                    crate::admin::spawn_srvsvc_admin(self.shared.clone(), self.id, conn, token, op);
                }
            }
        }
    }

    fn close(&mut self, key: usize, now: Instant) {
        if !self.conns.contains(key) {
            return;
        }
        let mut io = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut io.stream);
        self.by_conn.remove(&io.conn);
        self.engine.connection_closed(io.conn, now);
        self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
    }

    fn drain_commands(&mut self, now: Instant) {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                ShardCmd::Shutdown => self.stopping = true,
                ShardCmd::Query { query, reply } => {
                    let result = crate::admin::answer(&mut self.engine, query, now);
                    if let AdminResult::Disconnected { ref closed, .. } = result {
                        for conn in closed.clone() {
                            if let Some(&key) = self.by_conn.get(&conn) {
                                self.close(key, now);
                            }
                        }
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
        self.drain_engine_events();
    }

    fn shutdown(&mut self) {
        let now = Instant::now();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key, now);
        }
        tracing::debug!(shard = self.id, "shard stopped");
    }
}
