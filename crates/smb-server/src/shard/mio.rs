//! The mio transport: epoll through mio, one system call per read and per
//! write. The portable fallback (it runs where io_uring is refused, e.g.
//! under Docker's default seccomp profile).
//!
//! Every read lands in one shard-wide scratch buffer. Output belongs to its
//! connection: this loop writes `Engine::poll_transmit(conn)` to `conn`'s
//! socket and nothing else (ARCHITECTURE.md, "Output belongs to its
//! connection"). A connection holds bytes of its own only while a frame is
//! half received or frames wait out backpressure, so an idle connection holds
//! no buffer at all.

use smb_session::engine::EndReason;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use smb_session::engine::Engine;
use smb_session::ids::ConnId;

use super::{Fed, ShardCore, ShardHandle, SocketIo, OUTPUT_HIGH_WATER};
use crate::Shared;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Size of the shard-wide read buffer.
const SCRATCH: usize = 64 * 1024;

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

/// A shard on the mio transport.
pub(crate) struct MioShard {
    core: ShardCore,
    poll: Poll,
    listener: TcpListener,
    conns: Slab<ConnIo>,
    by_conn: HashMap<ConnId, usize>,
    scratch: Vec<u8>,
    pin_cpu: Option<usize>,
    to_close: Vec<ConnId>,
}

impl MioShard {
    /// Build a shard around an already bound listener.
    pub(crate) fn new(
        id: u16,
        listener: std::net::TcpListener,
        engine: Engine,
        shared: Arc<Shared>,
        max_frame: usize,
        pin_cpu: Option<usize>,
    ) -> io::Result<(MioShard, ShardHandle)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let (core, handle) = ShardCore::new(id, engine, shared, max_frame, waker);
        let shard = MioShard {
            core,
            poll,
            listener,
            conns: Slab::new(),
            by_conn: HashMap::new(),
            scratch: vec![0; SCRATCH],
            pin_cpu,
            to_close: Vec::new(),
        };
        Ok((shard, handle))
    }

    /// Run until a shutdown command arrives.
    pub(crate) fn run(mut self) {
        self.core.tune_thread(self.pin_cpu);
        let mut events = Events::with_capacity(1024);
        tracing::debug!(shard = self.core.id, transport = "mio", "shard started");
        while !self.core.stopping {
            let timeout = self.core.wait_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!(shard = self.core.id, error = %e, "poll failed");
                break;
            }
            for ev in events.iter() {
                // Each event reads the clock itself: activity must never be
                // dated earlier than the request arrived, or a session could
                // be reaped before its deadline.
                let now = Instant::now();
                match ev.token() {
                    LISTENER => self.accept_all(now),
                    WAKER => super::drain_commands(&mut self, now),
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
                            self.mark(key, EndReason::DeadTransport);
                            self.close(key, Instant::now());
                        } else if ev.is_readable() || ev.is_read_closed() {
                            self.read_ready(key);
                        }
                    }
                }
            }
            self.core.engine.handle_timeout(Instant::now());
            super::drain_engine_events(&mut self);
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
                    self.core.accept_failed(&e);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        let Some(conn) = self.core.admit(peer, now) else {
            return; // dropping the stream closes it
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            tracing::warn!(error = %e, "register failed");
            self.core.closed(conn, now);
            return;
        }
        self.core.count_socket(true);
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
    /// Backpressure is checked after every frame, not only between reads
    /// ([`ShardCore::feed`]): once a connection has more than
    /// [`OUTPUT_HIGH_WATER`] of output its peer has not taken, the rest of
    /// the batch waits in `partial` (`backlog`) and the connection is not
    /// read again until the peer catches up.
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
                        self.mark(key, EndReason::DeadTransport);
                        self.close(key, Instant::now());
                        return;
                    }
                }
            };
            // The bytes arrived no earlier than now.
            let now = Instant::now();
            let conn = io.conn;
            let (fed, scratch_len) = match fresh {
                Some(n) if io.partial.is_empty() => {
                    (self.core.feed(conn, &mut self.scratch[..n], now), Some(n))
                }
                _ => {
                    if let Some(n) = fresh {
                        io.partial.extend_from_slice(&self.scratch[..n]);
                    }
                    let mut data = std::mem::take(&mut io.partial);
                    let fed = self.core.feed(conn, &mut data, now);
                    match self.conns.get_mut(key) {
                        Some(io) => io.partial = data,
                        None => return,
                    }
                    (fed, None)
                }
            };
            let Fed::Used { used, stopped } = fed else {
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
            super::drain_engine_events(self);
        }
    }

    /// Write what the engine has queued for this connection (its own
    /// responses, nothing else) until the socket would block.
    fn flush(&mut self, key: usize) {
        let Some(io) = self.conns.get_mut(key) else {
            return;
        };
        loop {
            let bytes = self.core.engine.poll_transmit(io.conn);
            if bytes.is_empty() {
                break;
            }
            match io.stream.write(bytes) {
                Ok(0) => break,
                Ok(n) => self.core.engine.transmitted(io.conn, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Wait for WRITABLE.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The peer is gone: nothing queued for it can be delivered.
                Err(_) => {
                    self.mark(key, EndReason::DeadTransport);
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
        let queued = self.core.engine.transmit_len(io.conn);
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

    /// Record why `key` is about to close (the first reason wins).
    fn mark(&mut self, key: usize, reason: EndReason) {
        if let Some(io) = self.conns.get(key) {
            self.core.mark(io.conn, reason);
        }
    }

    fn close(&mut self, key: usize, now: Instant) {
        if !self.conns.contains(key) {
            return;
        }
        let mut io = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut io.stream);
        self.core.count_socket(false);
        self.by_conn.remove(&io.conn);
        self.core.closed(io.conn, now);
    }

    fn shutdown(&mut self) {
        let now = Instant::now();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.mark(key, EndReason::Shutdown);
            self.close(key, now);
        }
        tracing::debug!(shard = self.core.id, "shard stopped");
    }
}

impl SocketIo for MioShard {
    fn core(&mut self) -> &mut ShardCore {
        &mut self.core
    }

    fn flush_conn(&mut self, conn: ConnId) {
        if let Some(&key) = self.by_conn.get(&conn) {
            self.flush(key);
        }
    }

    fn close_conn(&mut self, conn: ConnId, last_answers: bool, now: Instant) {
        if let Some(&key) = self.by_conn.get(&conn) {
            if last_answers {
                self.flush(key);
            }
            self.close(key, now);
        }
    }

    fn close_list(&mut self) -> &mut Vec<ConnId> {
        &mut self.to_close
    }
}
