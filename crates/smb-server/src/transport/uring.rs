//! The io_uring transport: one ring per shard, no other runtime.
//!
//! - The ring is `SINGLE_ISSUER | DEFER_TASKRUN` (completions run only when
//!   the shard waits, on the shard's thread).
//! - Accepts land in direct descriptors (a sparse file table per shard);
//!   [`ACCEPTS`] single-shot accepts stay armed, each with its own address
//!   buffer, so the peer address comes with the connection (multishot
//!   accept cannot return it).
//! - Receives are multishot into a provided buffer ring per shard
//!   (`buf_ring`); a buffer goes back to the ring as soon as its bytes were
//!   fed to the engine (leftovers of a half frame are copied to the
//!   connection's `partial`).
//! - Sends own their bytes: the connection's whole queue is taken from the
//!   engine ([`Engine::take_transmit`](smb_session::engine::Engine::take_transmit))
//!   so several answers go out in one send; the buffer returns to the
//!   engine's pool when the send completes.
//! - Close is a cancel of everything on the descriptor hard-linked to the
//!   close of the descriptor.
//! - Waiting is one `io_uring_enter`; the wheel's next deadline is a
//!   timeout operation that stays armed across waits (`deadline`), so
//!   waits carry no timer of their own; each completion batch is dated
//!   after the wait returned, so a read is never dated before it arrived.
//! - Admin commands wake the shard through an eventfd read on the ring.
//!
//! Every `unsafe` block below carries its `SAFETY:` argument; they are all
//! about buffer lifetimes: memory the kernel writes or reads must stay put
//! and unaliased until the operation that uses it completes.

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;
use smb_session::engine::Engine;
use smb_session::ids::ConnId;

use super::buf_ring::{BufRing, Piece};
use super::deadline::{DeadlineTimer, TimerOp};
use super::eventfd::EventFd;
use crate::shard::{Fed, ShardCore, ShardHandle, ShardWaker, SocketIo, OUTPUT_HIGH_WATER};
use crate::Shared;

/// Accepts kept armed per shard.
pub const ACCEPTS: usize = 16;
/// Buffers in the provided buffer ring (a power of two).
const RECV_BUFFERS: u16 = 256;
/// Size of one receive buffer.
const RECV_BUFFER_SIZE: usize = 16 * 1024;
/// Buffer group id of the receive ring.
const BGID: u16 = 0;
/// Submission queue entries.
const SQ_ENTRIES: u32 = 1024;

// user_data: kind in the top byte, then a 24-bit generation, then a 32-bit
// key (connection slab key or accept slot).
const K_ACCEPT: u64 = 1;
const K_RECV: u64 = 2;
const K_SEND: u64 = 3;
const K_CLOSE: u64 = 4;
const K_CANCEL: u64 = 5;
const K_WAKE: u64 = 6;
const K_CLOSE_REFUSED: u64 = 7;
const K_TIMER: u64 = 8;
const K_TIMER_UPDATE: u64 = 9;

fn token(kind: u64, gen: u32, key: usize) -> u64 {
    kind << 56 | (u64::from(gen) & 0xFF_FFFF) << 32 | (key as u64 & 0xFFFF_FFFF)
}

fn untoken(t: u64) -> (u64, u32, usize) {
    (
        t >> 56,
        ((t >> 32) & 0xFF_FFFF) as u32,
        (t & 0xFFFF_FFFF) as usize,
    )
}

/// Options of the io_uring transport (more may be added).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct UringOptions {
    /// Run a kernel submission-queue poller (SQPOLL) with this idle time in
    /// milliseconds (off by default: on 2 cores the poller takes a core).
    pub sqpoll_idle_ms: Option<u32>,
    /// Slots of the shard's direct-descriptor table (its connection limit;
    /// checked against the open-file limit by the kernel).
    pub files: u32,
    /// Batch completions: each wait first waits up to this many
    /// microseconds for [`BATCH`] completions before it returns with fewer
    /// (IORING_ENTER_EXT_ARG min_wait, Linux 6.12+). Fewer system calls per
    /// request under load, at most this much added latency. `None`: return
    /// at the first completion.
    pub min_wait_us: Option<u32>,
}

/// Longest a default wait waits for its own operations' completions
/// before the first completion of any kind ends it ([`WaitPolicy`]).
const OWN_WAIT_US: u32 = 200;

/// Most network completions a batching wait asks for.
pub const BATCH: usize = 32;

/// How many completions the next wait asks the kernel for.
///
/// By default a wait returns at the first completion *from the network*,
/// as a plain event loop does. Sends and closes usually complete while the
/// wait submits them, and their completions alone would end the wait at
/// once, costing a second `io_uring_enter` per request (measured: 1.5 per
/// smbtorture ECHO). So a wait that submits such operations asks for them
/// plus one; in case one of them does not complete at once (a send to a
/// full socket buffer), the kernel's minimum wait ([`OWN_WAIT_US`], Linux
/// 6.12+) bounds the wait: after it, the first completion ends it. On
/// older kernels, or when nothing of ours was submitted, a wait asks for
/// one completion.
///
/// With batching (`io-uring-min-wait`, Linux 6.12+), a wait asks for more,
/// so that fewer turns (and system calls) serve the same requests. Sends
/// and closes usually complete while they are submitted, and their
/// completions would satisfy the wait at once: the policy counts those
/// operations and asks for them *plus* as many network completions as the
/// last turn brought (at most [`BATCH`]), so under load a turn gathers the
/// requests of all active connections. The minimum wait (the setting)
/// bounds the latency this adds: once it has passed, the wait returns with
/// whatever arrived. The kernel's minimum-wait timer costs CPU on every
/// wait, which is why batching is off by default (README, "io_uring against
/// mio and the peers").
#[derive(Debug, Clone, Copy)]
struct WaitPolicy {
    /// The kernel has the minimum wait (IORING_FEAT_MIN_TIMEOUT).
    min_timeout: bool,
    /// Batching window in microseconds, when batching.
    batch_us: Option<u32>,
    /// Operations submitted since the last wait that complete without the
    /// network (sends, closes, cancels).
    own: usize,
    /// Network completions (receives with data, accepts, wake-ups) in the
    /// last turn.
    last_network: usize,
}

impl WaitPolicy {
    fn new(min_timeout: bool, batch_us: Option<u32>) -> WaitPolicy {
        WaitPolicy {
            min_timeout,
            batch_us: batch_us.filter(|_| min_timeout),
            own: 0,
            last_network: 1,
        }
    }

    /// Whether waits batch (`io-uring-min-wait` on a kernel that has it).
    fn batching(&self) -> bool {
        self.batch_us.is_some()
    }

    /// An operation that completes without the network was queued.
    fn own_op(&mut self) {
        self.own += 1;
    }

    /// Completions to wait for, and the minimum wait, for the next turn.
    fn next_wait(&self) -> (usize, Option<u32>) {
        match self.batch_us {
            Some(us) => (self.own + self.last_network.clamp(1, BATCH), Some(us)),
            None if self.min_timeout && self.own > 0 => (self.own + 1, Some(OWN_WAIT_US)),
            None => (1, None),
        }
    }

    /// The queued operations were submitted (by the wait).
    fn submitted(&mut self) {
        self.own = 0;
    }

    /// A turn ended with `network` network completions.
    fn turn_done(&mut self, network: usize) {
        self.last_network = network;
    }
}

/// Whether this kernel and process allow the io_uring transport: a ring
/// with the flags the transport uses, a sparse file table, a provided
/// buffer ring and the opcodes it submits. The error says why not.
pub fn probe() -> io::Result<()> {
    let ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(8)?;
    let mut p = io_uring::Probe::new();
    ring.submitter().register_probe(&mut p)?;
    for (code, name) in [
        (opcode::Accept::CODE, "accept"),
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::Send::CODE, "send"),
        (opcode::Close::CODE, "close"),
        (opcode::AsyncCancel2::CODE, "async cancel"),
        (opcode::Read::CODE, "read"),
    ] {
        if !p.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring lacks the {name} operation"),
            ));
        }
    }
    ring.submitter().register_files_sparse(1)?;
    let mut bufs = BufRing::new(2, 64)?;
    bufs.register(&ring, BGID)?;
    Ok(())
}

/// One armed accept: where the kernel writes the peer's address.
struct AcceptSlot {
    addr: MaybeUninit<libc::sockaddr_storage>,
    len: libc::socklen_t,
}

/// Per connection.
struct UConn {
    conn: ConnId,
    /// The direct descriptor.
    slot: u32,
    gen: u32,
    /// Bytes of a frame not yet complete (or frames held back by
    /// backpressure, with `backlog`).
    partial: Vec<u8>,
    backlog: bool,
    /// A multishot receive is armed (until its last completion).
    recv_armed: bool,
    /// A cancel of the receive (backpressure) is in flight.
    cancelling: bool,
    /// The send in flight owns these bytes; `sent` of them went out.
    sending: Option<Vec<u8>>,
    sent: usize,
    /// The engine forgot this connection; the descriptor closes once no
    /// send is in flight.
    closing: bool,
    close_issued: bool,
    /// Operations submitted that name this entry and have not completed
    /// their last time (the entry is removed at zero once closed).
    inflight: u32,
}

/// The ring and everything the kernel may touch while it runs. Field order
/// is drop order: the ring goes first, then the memory it used.
struct Ring {
    ring: IoUring,
    bufs: BufRing,
    accepts: Box<[AcceptSlot; ACCEPTS]>,
    wake_buf: Box<[u8; 8]>,
    /// The timespec of the last timeout operation submitted (the kernel
    /// copies it when it takes the submission).
    timer_ts: Box<types::Timespec>,
}

/// A shard on the io_uring transport.
pub(crate) struct UringShard {
    core: ShardCore,
    listener: std::net::TcpListener,
    eventfd: Arc<EventFd>,
    pin_cpu: Option<usize>,
    options: UringOptions,
}

impl UringShard {
    /// Build a shard around an already bound listener; the ring itself is
    /// made on the shard's thread (a SINGLE_ISSUER ring belongs to it).
    pub(crate) fn new(
        id: u16,
        listener: std::net::TcpListener,
        engine: Engine,
        shared: Arc<Shared>,
        max_frame: usize,
        pin_cpu: Option<usize>,
        options: UringOptions,
    ) -> io::Result<(UringShard, ShardHandle)> {
        let eventfd = Arc::new(EventFd::new(false)?);
        let waker: Arc<dyn ShardWaker> = eventfd.clone();
        let (core, handle) = ShardCore::new(id, engine, shared, max_frame, waker);
        Ok((
            UringShard {
                core,
                listener,
                eventfd,
                pin_cpu,
                options,
            },
            handle,
        ))
    }

    /// Run until a shutdown command arrives.
    pub(crate) fn run(self) {
        let id = self.core.id;
        match Driver::new(self) {
            Ok(d) => d.run(),
            Err(e) => {
                tracing::error!(shard = id, error = %e, "cannot start the io_uring transport")
            }
        }
    }
}

/// The running loop of a [`UringShard`].
struct Driver {
    r: Ring,
    core: ShardCore,
    listener: std::net::TcpListener,
    eventfd: Arc<EventFd>,
    conns: Slab<UConn>,
    by_conn: std::collections::HashMap<ConnId, usize>,
    next_gen: u32,
    to_close: Vec<ConnId>,
    /// Connections whose receive must be re-armed (after ENOBUFS).
    rearm: Vec<usize>,
    /// Accept slots to re-arm after a failed accept, at the next turn.
    accept_retry: Vec<usize>,
    /// What the next wait asks for.
    wait: WaitPolicy,
    /// The wake-up timer: the wheel's next deadline as one timeout operation.
    timer: DeadlineTimer,
    /// Receives may cover several buffers (IORING_RECVSEND_BUNDLE).
    bundles: bool,
    /// Scratch list of the pieces of one receive completion.
    pieces: Vec<Piece>,
}

impl Driver {
    fn new(s: UringShard) -> io::Result<Driver> {
        s.core.tune_thread(s.pin_cpu);
        let mut b = IoUring::builder();
        b.setup_single_issuer().setup_cqsize(SQ_ENTRIES * 4);
        match s.options.sqpoll_idle_ms {
            Some(idle) => {
                b.setup_sqpoll(idle);
            }
            None => {
                b.setup_defer_taskrun();
            }
        }
        let ring = b.build(SQ_ENTRIES)?;
        ring.submitter().register_files_sparse(s.options.files)?;
        let min_timeout = ring.params().is_feature_min_timeout();
        if s.options.min_wait_us.is_some() && !min_timeout {
            tracing::info!(
                shard = s.core.id,
                "io_uring: this kernel has no minimum wait (Linux 6.12+); completions are not batched"
            );
        }
        let mut bufs = BufRing::new(RECV_BUFFERS, RECV_BUFFER_SIZE)?;
        bufs.register(&ring, BGID)?;
        let bundles = ring.params().is_feature_recvsend_bundle();
        tracing::debug!(
            shard = s.core.id,
            incremental = bufs.incremental(),
            bundles,
            "io_uring receive buffers"
        );
        let accepts: Box<[AcceptSlot; ACCEPTS]> = Box::new(std::array::from_fn(|_| AcceptSlot {
            addr: MaybeUninit::zeroed(),
            len: 0,
        }));
        let mut d = Driver {
            r: Ring {
                ring,
                bufs,
                accepts,
                wake_buf: Box::new([0; 8]),
                timer_ts: Box::new(types::Timespec::new()),
            },
            core: s.core,
            listener: s.listener,
            eventfd: s.eventfd,
            conns: Slab::new(),
            by_conn: std::collections::HashMap::new(),
            next_gen: 1,
            to_close: Vec::new(),
            rearm: Vec::new(),
            accept_retry: Vec::new(),
            wait: WaitPolicy::new(min_timeout, s.options.min_wait_us),
            timer: DeadlineTimer::default(),
            bundles,
            pieces: Vec::new(),
        };
        for i in 0..ACCEPTS {
            d.arm_accept(i);
        }
        d.arm_wake();
        Ok(d)
    }

    /// Queue a submission, submitting first when the queue is full.
    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every entry built in this module points only at
            // memory that outlives its operation: accept address buffers
            // and the wake buffer live in `Ring` (dropped after the ring),
            // send buffers in their connection's `sending` until the send
            // completes, receive buffers in the registered BufRing; the
            // timer's timespec lives in `Ring` and is read by the kernel
            // when it takes the submission (rewritten only by
            // `plan_timer`, once per turn, just before it is submitted).
            let pushed = unsafe { self.r.ring.submission().push(&e) }.is_ok();
            if pushed {
                return;
            }
            if let Err(e) = self.r.ring.submit() {
                tracing::warn!(shard = self.core.id, error = %e, "io_uring submit failed");
            }
        }
    }

    fn arm_accept(&mut self, i: usize) {
        let a = &mut self.r.accepts[i];
        a.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let e = opcode::Accept::new(
            types::Fd(self.listener.as_raw_fd()),
            a.addr.as_mut_ptr().cast(),
            &mut a.len,
        )
        .file_index(Some(types::DestinationSlot::auto_target()))
        .build()
        .user_data(token(K_ACCEPT, 0, i));
        self.push(e);
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(
            types::Fd(self.eventfd.as_raw_fd()),
            self.r.wake_buf.as_mut_ptr(),
            8,
        )
        .build()
        .user_data(token(K_WAKE, 0, 0));
        self.push(e);
    }

    fn arm_recv(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.recv_armed || c.closing {
            return;
        }
        c.recv_armed = true;
        c.inflight += 1;
        let e = if self.bundles {
            opcode::RecvMultiBundle::new(types::Fixed(c.slot), BGID).build()
        } else {
            opcode::RecvMulti::new(types::Fixed(c.slot), BGID).build()
        }
        .user_data(token(K_RECV, c.gen, key));
        self.push(e);
    }

    fn run(mut self) {
        tracing::debug!(
            shard = self.core.id,
            transport = "io_uring",
            "shard started"
        );
        while !self.core.stopping {
            let mut timeout = self.core.wait_timeout(Instant::now());
            if !self.accept_retry.is_empty() {
                for i in std::mem::take(&mut self.accept_retry) {
                    self.arm_accept(i);
                }
                timeout = timeout.min(std::time::Duration::from_millis(10));
            }
            let (want, min_wait) = self.wait.next_wait();
            self.plan_timer(timeout);
            // When batching, the deadline also bounds the wait itself, as
            // it did before the timer operation existed (the kernel arms
            // one timer for both), so batching behaves as measured.
            let ts = types::Timespec::from(timeout);
            let entered = match min_wait {
                Some(us) if self.wait.batching() => {
                    let args = types::SubmitArgs::new().timespec(&ts).min_wait_usec(us);
                    self.r.ring.submitter().submit_with_args(want, &args)
                }
                Some(us) => {
                    let args = types::SubmitArgs::new().min_wait_usec(us);
                    self.r.ring.submitter().submit_with_args(want, &args)
                }
                None => self.r.ring.submitter().submit_and_wait(want),
            };
            self.wait.submitted();
            match entered {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => {
                    tracing::warn!(shard = self.core.id, error = %e, "io_uring wait failed");
                    break;
                }
            }
            // Every completion of this batch arrived no later than now.
            let now = Instant::now();
            let mut network = 0;
            while let Some(cqe) = self.next_cqe() {
                network +=
                    usize::from(self.complete(cqe.user_data(), cqe.result(), cqe.flags(), now));
            }
            self.wait.turn_done(network);
            for key in std::mem::take(&mut self.rearm) {
                self.arm_recv(key);
            }
            self.core.engine.handle_timeout(Instant::now());
            crate::shard::drain_engine_events(&mut self);
        }
        self.shutdown();
    }

    fn next_cqe(&mut self) -> Option<cqueue::Entry> {
        self.r.ring.completion().next()
    }

    /// Handle one completion; whether it came from the network (a
    /// receive, an accept or a wake-up) rather than from an operation of
    /// our own.
    fn complete(&mut self, user_data: u64, res: i32, flags: u32, now: Instant) -> bool {
        let (kind, gen, key) = untoken(user_data);
        match kind {
            K_ACCEPT => self.accepted(key, res, now),
            K_RECV => self.received(key, gen, res, flags, now),
            K_SEND => self.sent(key, gen, res, now),
            K_CLOSE | K_CANCEL => {
                if let Some(c) = self.conns.get_mut(key).filter(|c| c.gen == gen) {
                    c.inflight -= 1;
                    if kind == K_CANCEL {
                        c.cancelling = false;
                    }
                }
                self.op_done(key, gen);
            }
            K_CLOSE_REFUSED => {}
            K_TIMER => self.timer.completed(),
            K_TIMER_UPDATE if res < 0 => self.timer.update_failed(),
            K_WAKE => {
                if res < 0 && res != -libc::EINTR && res != -libc::EAGAIN {
                    tracing::warn!(shard = self.core.id, error = res, "eventfd read failed");
                }
                crate::shard::drain_commands(self, now);
                self.arm_wake();
            }
            _ => {}
        }
        matches!(kind, K_ACCEPT | K_RECV | K_WAKE | K_TIMER)
    }

    /// Make the wake-up timer expire no later than `timeout` from now
    /// (`deadline`): arm it, move it earlier, or leave it.
    fn plan_timer(&mut self, timeout: std::time::Duration) {
        let e = match self.timer.plan(Instant::now(), timeout) {
            TimerOp::Keep => return,
            TimerOp::Arm(d) => {
                *self.r.timer_ts = types::Timespec::from(d);
                opcode::Timeout::new(&*self.r.timer_ts)
                    .build()
                    .user_data(token(K_TIMER, 0, 0))
            }
            TimerOp::Update(d) => {
                *self.r.timer_ts = types::Timespec::from(d);
                self.wait.own_op();
                opcode::TimeoutUpdate::new(token(K_TIMER, 0, 0), &*self.r.timer_ts)
                    .build()
                    .user_data(token(K_TIMER_UPDATE, 0, 0))
            }
        };
        self.push(e);
    }

    fn accepted(&mut self, i: usize, res: i32, now: Instant) {
        if res < 0 && self.core.stopping {
            return;
        }
        if res < 0 {
            // EMFILE (a full file table) and friends: try this slot again
            // after a pause rather than spin; existing sessions go on.
            self.core.accept_failed(&io::Error::from_raw_os_error(-res));
            self.accept_retry.push(i);
            return;
        }
        let slot = res as u32;
        let peer = sockaddr_to_std(&self.r.accepts[i]);
        self.arm_accept(i);
        let admitted = peer
            .filter(|_| !self.core.stopping)
            .and_then(|p| self.core.admit(p, now));
        let Some(conn) = admitted else {
            self.wait.own_op();
            let e = opcode::Close::new(types::Fixed(slot))
                .build()
                .user_data(token(K_CLOSE_REFUSED, 0, 0));
            self.push(e);
            return;
        };
        let gen = self.next_gen;
        self.next_gen = (self.next_gen + 1) & 0xFF_FFFF;
        self.core.count_socket(true);
        let key = self.conns.insert(UConn {
            conn,
            slot,
            gen,
            partial: Vec::new(),
            backlog: false,
            recv_armed: false,
            cancelling: false,
            sending: None,
            sent: 0,
            closing: false,
            close_issued: false,
            inflight: 0,
        });
        self.by_conn.insert(conn, key);
        self.arm_recv(key);
    }

    fn live(&self, key: usize, gen: u32) -> bool {
        self.conns.get(key).is_some_and(|c| c.gen == gen)
    }

    fn received(&mut self, key: usize, gen: u32, res: i32, flags: u32, now: Instant) {
        let more = cqueue::more(flags);
        // Which bytes of which buffers this completion covers; the buffers
        // the kernel is done with go back after their bytes were used.
        let mut pieces = std::mem::take(&mut self.pieces);
        pieces.clear();
        let mut mismatch = false;
        if let (Some(bid), true) = (cqueue::buffer_select(flags), res > 0) {
            mismatch = self
                .r
                .bufs
                .pieces(bid, res as u32, cqueue::buffer_more(flags), &mut pieces)
                .is_err();
        }
        if mismatch {
            tracing::error!(
                shard = self.core.id,
                res,
                flags,
                "io_uring receive does not fit the buffer ring; closing the connection"
            );
        }
        if !self.live(key, gen) {
            self.r.bufs.give_back(&pieces);
            self.pieces = pieces;
            return;
        }
        if !more {
            let c = &mut self.conns[key];
            c.recv_armed = false;
            c.inflight -= 1;
        }
        if res > 0 {
            if pieces.is_empty() {
                self.close(key, now);
            }
            for p in &pieces {
                self.feed_piece(key, p, now);
            }
            self.r.bufs.give_back(&pieces);
        } else if res == 0 {
            // EOF.
            self.close(key, now);
            self.pieces = pieces;
            self.op_done(key, gen);
            return;
        } else if res != -libc::ENOBUFS && res != -libc::ECANCELED {
            // A reset, or a peer gone silent (keepalive, user timeout).
            let conn = self.conns[key].conn;
            self.core
                .mark(conn, smb_session::engine::EndReason::DeadTransport);
            self.close(key, now);
        }
        self.pieces = pieces;
        // A receive that ended (the buffer ring ran dry, or it was
        // cancelled) is re-armed after this batch, unless backpressure holds
        // the connection (then `resume` re-arms it).
        if !more
            && self
                .conns
                .get(key)
                .is_some_and(|c| !c.closing && !c.backlog)
        {
            self.rearm.push(key);
        }
        self.op_done(key, gen);
    }

    /// Feed the received bytes of `piece` (after what waits in
    /// `partial`) to the engine, then write the answers.
    fn feed_piece(&mut self, key: usize, piece: &Piece, now: Instant) {
        let c = &mut self.conns[key];
        if c.closing {
            return;
        }
        let conn = c.conn;
        let data = self.r.bufs.data_mut(piece);
        let len = data.len();
        let fed = if c.partial.is_empty() && !c.backlog {
            let fed = self.core.feed(conn, data, now);
            if let Fed::Used { used, stopped } = fed {
                if used < len {
                    c.partial = data[used..].to_vec();
                }
                c.backlog = stopped;
            }
            fed
        } else {
            // Frames held back by backpressure or a half frame come first.
            c.partial.extend_from_slice(data);
            if c.backlog && self.core.engine.transmit_len(conn) > OUTPUT_HIGH_WATER {
                Fed::Used {
                    used: 0,
                    stopped: true,
                }
            } else {
                let mut buf = std::mem::take(&mut c.partial);
                let fed = self.core.feed(conn, &mut buf, now);
                let c = &mut self.conns[key];
                c.partial = buf;
                if let Fed::Used { used, stopped } = fed {
                    c.partial.drain(..used);
                    if c.partial.is_empty() {
                        c.partial = Vec::new();
                    }
                    c.backlog = stopped;
                }
                fed
            }
        };
        if fed == Fed::Close {
            self.close(key, now);
            return;
        }
        self.flush(key);
        if self
            .conns
            .get(key)
            .is_some_and(|c| c.backlog && c.recv_armed && !c.cancelling)
        {
            // Stop receiving until the peer reads (backpressure); data in
            // flight still lands in `partial` (a few buffers at most).
            self.cancel_recv(key);
        }
    }

    fn cancel_recv(&mut self, key: usize) {
        self.wait.own_op();
        let c = &mut self.conns[key];
        c.inflight += 1;
        c.cancelling = true;
        let e =
            opcode::AsyncCancel2::new(types::CancelBuilder::user_data(token(K_RECV, c.gen, key)))
                .build()
                .user_data(token(K_CANCEL, c.gen, key));
        self.push(e);
    }

    /// Start a send of everything the engine queued for `key`, unless one
    /// is in flight (it continues when that completes).
    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.sending.is_some() || c.close_issued {
            return;
        }
        let Some(buf) = self.core.engine.take_transmit(c.conn) else {
            if c.closing {
                self.issue_close(key);
            }
            return;
        };
        c.sending = Some(buf);
        c.sent = 0;
        self.submit_send(key);
    }

    fn submit_send(&mut self, key: usize) {
        let c = &mut self.conns[key];
        let Some(buf) = c.sending.as_ref() else {
            return;
        };
        let rest = &buf[c.sent..];
        c.inflight += 1;
        self.wait.own_op();
        let e = opcode::Send::new(types::Fixed(c.slot), rest.as_ptr(), rest.len() as u32)
            .build()
            .user_data(token(K_SEND, c.gen, key));
        self.push(e);
    }

    fn sent(&mut self, key: usize, gen: u32, res: i32, now: Instant) {
        if !self.live(key, gen) {
            return;
        }
        self.conns[key].inflight -= 1;
        if res < 0 {
            // The peer is gone: nothing queued for it can be delivered.
            let conn = self.conns[key].conn;
            self.core
                .mark(conn, smb_session::engine::EndReason::DeadTransport);
            if let Some(buf) = self.conns[key].sending.take() {
                self.core.engine.recycle(buf);
            }
            self.close(key, now);
            self.issue_close(key);
            self.op_done(key, gen);
            return;
        }
        let c = &mut self.conns[key];
        c.sent += res as usize;
        let len = c.sending.as_ref().map_or(0, Vec::len);
        if c.sent < len {
            self.submit_send(key);
            return;
        }
        if let Some(buf) = c.sending.take() {
            self.core.engine.recycle(buf);
        }
        let was_backlogged = c.backlog;
        let closing = c.closing;
        // More may have been queued meanwhile.
        self.flush(key);
        if closing {
            self.op_done(key, gen);
            return;
        }
        if was_backlogged
            && self
                .conns
                .get(key)
                .is_some_and(|c| self.core.engine.transmit_len(c.conn) <= OUTPUT_HIGH_WATER)
        {
            // The peer caught up: answer the frames held back, then read on.
            self.resume(key, now);
        }
    }

    /// Answer frames held back by backpressure and re-arm the receive.
    fn resume(&mut self, key: usize, now: Instant) {
        let c = &mut self.conns[key];
        let conn = c.conn;
        let mut buf = std::mem::take(&mut c.partial);
        let fed = self.core.feed(conn, &mut buf, now);
        let c = &mut self.conns[key];
        c.partial = buf;
        match fed {
            Fed::Close => {
                self.close(key, now);
                return;
            }
            Fed::Used { used, stopped } => {
                c.partial.drain(..used);
                if c.partial.is_empty() {
                    c.partial = Vec::new();
                }
                c.backlog = stopped;
            }
        }
        self.flush(key);
        if self.conns.get(key).is_some_and(|c| !c.backlog) {
            self.arm_recv(key);
        }
    }

    /// Drop the connection: forget it in the engine now (with whatever it
    /// still had queued); its descriptor closes once no send is in flight.
    fn close(&mut self, key: usize, now: Instant) {
        self.close_after(key, false, now);
    }

    /// Like [`Driver::close`]; with `last_answers`, what the engine still
    /// queued for it goes out first (an engine-initiated close, such as the
    /// reap of its last session), as on the mio transport.
    fn close_after(&mut self, key: usize, last_answers: bool, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        let conn = c.conn;
        if last_answers && c.sending.is_none() {
            if let Some(buf) = self.core.engine.take_transmit(conn) {
                c.sending = Some(buf);
                c.sent = 0;
                self.submit_send(key);
            }
        }
        self.by_conn.remove(&conn);
        self.core.closed(conn, now);
        if self.conns[key].sending.is_none() {
            self.issue_close(key);
        }
    }

    /// Cancel the connection's receive (the only operation that can still
    /// be pending when no send is in flight), then close the descriptor,
    /// hard-linked so the close runs whatever the cancel found. The cancel
    /// names the receive by its user_data, a hash lookup in the kernel; a
    /// cancel by descriptor would scan every pending request of the ring,
    /// which is quadratic when thousands of connections close at once.
    ///
    /// Even so the lookup walks one bucket of the ring's cancel table (at
    /// most 256 buckets for all armed receives): `io_poll_find` is about 5 %
    /// of the server's CPU while 10,000 sessions are opened and reaped. A
    /// `shutdown` of the socket, which would end the receive with no lookup,
    /// was measured and is worse: the kernel runs IORING_OP_SHUTDOWN on an
    /// io-wq worker thread (it forces it async), a thread switch per close;
    /// server system CPU went from 54–55 to 70–76 µs per session and
    /// voluntary context switches from 1.1–1.2 to 1.5–1.75 (three runs each,
    /// alternating, of 10,000 sessions).
    fn issue_close(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if c.close_issued {
            return;
        }
        c.close_issued = true;
        let close = opcode::Close::new(types::Fixed(c.slot))
            .build()
            .user_data(token(K_CLOSE, c.gen, key));
        self.wait.own_op();
        if c.recv_armed {
            self.wait.own_op();
            c.inflight += 2;
            let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(token(
                K_RECV, c.gen, key,
            )))
            .build()
            .flags(squeue::Flags::IO_HARDLINK)
            .user_data(token(K_CANCEL, c.gen, key));
            self.push(cancel);
        } else {
            c.inflight += 1;
        }
        self.push(close);
    }

    /// One operation naming `key` finished for good; a closed connection's
    /// entry goes when its last one does.
    fn op_done(&mut self, key: usize, gen: u32) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.gen != gen {
            return;
        }
        if c.close_issued && c.inflight == 0 {
            // The close completed: the direct descriptor is gone.
            self.conns.remove(key);
            self.core.count_socket(false);
        }
    }

    fn shutdown(&mut self) {
        // Stop listening now: the armed accepts hold the listening socket
        // until the ring's (asynchronous) teardown, so closing our
        // descriptor alone would leave the port accepting for a while.
        // shutdown(SHUT_RD) on a listening socket stops it at once and fails
        // the pending accepts.
        let _ = socket2::SockRef::from(&self.listener).shutdown(std::net::Shutdown::Read);
        let now = Instant::now();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = self.conns[key].conn;
            self.core
                .mark(conn, smb_session::engine::EndReason::Shutdown);
            self.close(key, now);
        }
        // Let the closes (and last answers) go out, briefly.
        let deadline = Instant::now() + std::time::Duration::from_millis(500);
        while !self.conns.is_empty() && Instant::now() < deadline {
            let ts = types::Timespec::from(std::time::Duration::from_millis(20));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.r.ring.submitter().submit_with_args(1, &args);
            while let Some(cqe) = self.next_cqe() {
                self.complete(cqe.user_data(), cqe.result(), cqe.flags(), now);
            }
        }
        tracing::debug!(shard = self.core.id, "shard stopped");
    }
}

impl SocketIo for Driver {
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
            self.close_after(key, last_answers, now);
        }
    }

    fn close_list(&mut self) -> &mut Vec<ConnId> {
        &mut self.to_close
    }
}

/// The peer address an accept wrote.
fn sockaddr_to_std(a: &AcceptSlot) -> Option<SocketAddr> {
    // SAFETY: the kernel wrote `len` bytes of a sockaddr into the storage,
    // which is zero-initialised and large enough for any address family;
    // reading it as sockaddr_storage is reading initialised memory.
    let st = unsafe { a.addr.assume_init_ref() };
    match i32::from(st.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which fits in
            // (and is less aligned than) sockaddr_storage.
            let sin =
                unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for (k, g, key) in [
            (K_RECV, 0xFF_FFFF, 0xFFFF_FFFF),
            (K_SEND, 1, 0),
            (K_WAKE, 77, 12345),
        ] {
            assert_eq!(untoken(token(k, g, key)), (k, g, key));
        }
    }

    #[test]
    fn without_a_minimum_wait_a_turn_waits_for_one_completion() {
        let mut w = WaitPolicy::new(false, Some(50));
        w.own_op();
        w.own_op();
        w.turn_done(20);
        assert_eq!(w.next_wait(), (1, None));
    }

    #[test]
    fn without_batching_a_turn_waits_for_its_own_operations_and_one_more() {
        let mut w = WaitPolicy::new(true, None);
        assert_eq!(w.next_wait(), (1, None));
        w.own_op();
        w.own_op();
        w.turn_done(9);
        assert_eq!(w.next_wait(), (3, Some(OWN_WAIT_US)));
        w.submitted();
        assert_eq!(w.next_wait(), (1, None));
    }

    #[test]
    fn a_batching_wait_counts_our_own_operations_and_follows_the_load() {
        let mut w = WaitPolicy::new(true, Some(50));
        // Light load: one network completion wanted, nothing to add.
        assert_eq!(w.next_wait(), (1, Some(50)));
        // Three answers sent: their completions come on top.
        for _ in 0..3 {
            w.own_op();
        }
        assert_eq!(w.next_wait(), (4, Some(50)));
        // The wait submitted them; the turn brought 7 requests.
        w.submitted();
        w.turn_done(7);
        assert_eq!(w.next_wait(), (7, Some(50)));
        // More than a batch is capped; a turn woken by a timer asks for one.
        w.turn_done(1000);
        assert_eq!(w.next_wait(), (BATCH, Some(50)));
        w.turn_done(0);
        assert_eq!(w.next_wait(), (1, Some(50)));
    }
}
