//! Opening the sessions (one mio event loop) and watching them end (an observer thread that
//! does nothing else), then turning the timestamps into lateness figures.
//!
//! # What is measured, and from when
//! - Session `i` has a planned start: `t0 + i / rate` under `--rate` (open loop), else the
//!   moment its connection starts it. The first step of a session is timed from its planned
//!   start, each later step from the previous response (when the request went out), and the
//!   whole setup (`total`) from the planned start, so a generator or server that falls behind
//!   shows up in the figures (coordinated omission corrected).
//! - A session's deadline is `last response + autodisconnect`, the last response being its
//!   TREE_CONNECT response (the last request carrying its SessionId). The server saw that
//!   request between its send and its response, so the true deadline lies in
//!   `[send + timeout, response + timeout]`: the RTT of the last request is this sample's error
//!   bound. An end before `send + timeout` is certainly early.
//! - The end is when the observer's `epoll_wait` returns EOF/RST for the connection (or a
//!   SERVER_TO_CLIENT_NOTIFICATION naming the session).
//! - With K sessions per connection the sessions of one connection have different deadlines,
//!   but the server closes the connection with the last one; the earlier reaps cannot be seen
//!   without sending a request that would itself reset the idle timer. So with K > 1 lateness is
//!   one sample per connection (its last session's deadline), while early and never-reaped
//!   counts are still per session.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use smb_wire::frame::split_frame;

use crate::net::{self, ReadOutcome, Readiness};
use crate::progress::Progress;
use crate::proto::{ClientConfig, ClientConn, ClientError, Event, SessionOpener, Step};
use crate::stats::{self, Hists, RunResult};

/// Largest frame the client accepts.
const MAX_FRAME: usize = 1 << 20;
/// Most bytes buffered per connection.
const MAX_BUFFER: usize = 2 << 20;

/// Probe phases (shared with the probe thread).
pub mod phase {
    /// Before the baseline.
    pub const WARMUP: u8 = 0;
    /// Probes only, no idle sessions.
    pub const BASELINE: u8 = 1;
    /// Sessions being opened.
    pub const OPENING: u8 = 2;
    /// All sessions open and idle, none due yet.
    pub const IDLE: u8 = 3;
    /// Deadlines passing.
    pub const REAPING: u8 = 4;
    /// Stop.
    pub const STOP: u8 = 5;
}

/// What to open and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server.
    pub target: SocketAddr,
    /// Sessions to open.
    pub sessions: u64,
    /// Sessions per connection.
    pub per_conn: u32,
    /// Sessions per second, or as fast as possible.
    pub rate: Option<f64>,
    /// Connections in setup at once when unpaced.
    pub concurrency: usize,
    /// Source addresses (round robin), or the kernel's choice.
    pub source_ips: Vec<Ipv4Addr>,
    /// Protocol settings.
    pub client: ClientConfig,
    /// The server's idle timeout.
    pub autodisconnect: Duration,
    /// Grace past each deadline.
    pub hold: Duration,
}

impl Plan {
    /// Connections needed.
    pub fn connections(&self) -> u64 {
        self.sessions.div_ceil(u64::from(self.per_conn.max(1)))
    }
}

/// A run that cannot go on.
#[derive(Debug, Clone, PartialEq)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessState {
    Pending,
    Ready,
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Sess {
    state: SessState,
    intended: Instant,
    last_send: Instant,
    last_recv: Instant,
    session_id: u64,
    /// End announced by a notification (K > 1 can see per-session ends this way).
    notified: Option<Instant>,
}

#[derive(Debug)]
struct Conn {
    stream: Option<TcpStream>,
    proto: ClientConn,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    first: u64,
    count: u32,
    /// Index (within the connection) of the session being set up or next.
    cur: u32,
    connected: bool,
    /// Planned send time of the outstanding step.
    step_start: Instant,
    /// When the outstanding request was written.
    sent_at: Instant,
    done: bool,
    handed_over: bool,
    end: Option<(Instant, EndKind)>,
}

/// How the observer saw a connection end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    /// Orderly close (FIN).
    Eof,
    /// Reset.
    Rst,
}

enum ObsMsg {
    /// A connection, what was read of it past its last response, and the keys of its
    /// encrypting sessions (a notification to one of them comes sealed).
    Watch(usize, TcpStream, Vec<u8>, SessionOpener),
    /// The main thread could not add the socket to the observer's epoll: the observer
    /// adds it itself.
    Register(usize),
}

enum ObsEvent {
    End(usize, Instant, EndKind),
    Notified(usize, u64, Instant),
}

/// The observer thread: timestamps the end of idle connections.
///
/// A connection is handed over without waking the observer: the main thread queues it on
/// the channel, then adds its socket to the observer's epoll through a clone of that
/// poll's registry. The socket cannot raise an event there before it is queued, and the
/// observer drains the queue each time it wakes before it looks at the events, so it never
/// sees a connection it does not know. The observer never deregisters: closing the socket
/// removes it from both epoll sets (the main thread's as well, which it stays in).
struct Observer {
    tx: Sender<ObsMsg>,
    registry: Registry,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    events: Receiver<ObsEvent>,
    thread: Option<JoinHandle<()>>,
}

const WAKER: Token = Token(usize::MAX);

impl Observer {
    fn start() -> io::Result<Observer> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let registry = poll.registry().try_clone()?;
        let (tx, rx) = crossbeam_channel::unbounded::<ObsMsg>();
        let (etx, erx) = crossbeam_channel::unbounded::<ObsEvent>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-observer".into())
            .spawn(move || observe(poll, rx, etx, stop2))?;
        Ok(Observer {
            tx,
            registry,
            waker,
            stop,
            events: erx,
            thread: Some(thread),
        })
    }

    /// Hands `stream` over (see [`Observer`]). Bytes already read are in `leftover`.
    fn watch(&self, conn: usize, stream: TcpStream, leftover: Vec<u8>, keys: SessionOpener) {
        let fd = stream.as_raw_fd();
        let _ = self.tx.send(ObsMsg::Watch(conn, stream, leftover, keys));
        if self
            .registry
            .register(&mut SourceFd(&fd), Token(conn), Interest::READABLE)
            .is_err()
        {
            // The observer must still see it end: wake it to check by reading.
            let _ = self.tx.send(ObsMsg::Register(conn));
            let _ = self.waker.wake();
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn observe(mut poll: Poll, rx: Receiver<ObsMsg>, tx: Sender<ObsEvent>, stop: Arc<AtomicBool>) {
    let mut events = Events::with_capacity(1024);
    let mut watched: HashMap<usize, (TcpStream, Vec<u8>, SessionOpener)> = HashMap::new();
    loop {
        if poll.poll(&mut events, None).is_err() {
            continue;
        }
        let now = Instant::now();
        // Connections handed over before their events: first the queue.
        while let Ok(msg) = rx.try_recv() {
            match msg {
                ObsMsg::Watch(id, stream, leftover, keys) => {
                    watched.insert(id, (stream, leftover, keys));
                }
                ObsMsg::Register(id) => {
                    let registered = watched.get_mut(&id).is_some_and(|(s, _, _)| {
                        poll.registry()
                            .register(&mut SourceFd(&s.as_raw_fd()), Token(id), Interest::READABLE)
                            .is_ok()
                    });
                    if !registered {
                        // Never watched: dropping it closes it.
                        watched.remove(&id);
                    }
                }
            }
        }
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            let id = ev.token().0;
            let Some((stream, buf, keys)) = watched.get_mut(&id) else {
                continue;
            };
            let end = match net::read_available(stream, buf, MAX_BUFFER, Readiness::of(ev)) {
                Ok(ReadOutcome::Open) => None,
                Ok(ReadOutcome::Eof) => Some(EndKind::Eof),
                Err(_) => Some(EndKind::Rst),
            };
            // Session-level ends announced by the server (sealed for a session that
            // encrypts, MS-SMB2 3.3.4.1.4).
            let mut used = 0;
            while let Ok(Some((range, n))) = split_frame(&buf[used..], MAX_FRAME) {
                let msg = &buf[used..][range];
                let plain = if msg.starts_with(b"\xfdSMB") {
                    keys.open(msg)
                } else {
                    Some(msg)
                };
                if let Some(Ok((h, smb_wire::msg::Response::Notification(_)))) =
                    plain.map(smb_wire::msg::parse_response)
                {
                    let _ = tx.send(ObsEvent::Notified(id, h.session_id(), now));
                }
                used += n;
            }
            buf.drain(..used);
            if let Some(kind) = end {
                let _ = tx.send(ObsEvent::End(id, now, kind));
                // Dropping the stream closes it, which takes it out of every epoll set.
                watched.remove(&id);
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// A run in progress: sessions, connections, the observer.
#[derive(Debug)]
pub struct Run {
    plan: Plan,
    sess: Vec<Sess>,
    conns: Vec<Conn>,
    hists: Hists,
    opened: u64,
    failed: u64,
    first_error: Option<String>,
    dialect: u16,
    open_start: Option<(Instant, SystemTime)>,
    open_end: Option<(Instant, SystemTime)>,
    observer: ObserverBox,
    t0: Instant,
}

struct ObserverBox(Observer);
impl std::fmt::Debug for ObserverBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Run {
    /// Prepares a run and starts its observer thread.
    pub fn new(plan: Plan) -> Result<Run, Fatal> {
        let now = Instant::now();
        let n = plan.sessions as usize;
        let sess = vec![
            Sess {
                state: SessState::Pending,
                intended: now,
                last_send: now,
                last_recv: now,
                session_id: 0,
                notified: None,
            };
            n
        ];
        let observer =
            Observer::start().map_err(|e| Fatal(format!("cannot start the observer: {e}")))?;
        Ok(Run {
            plan,
            sess,
            conns: Vec::new(),
            hists: Hists::default(),
            opened: 0,
            failed: 0,
            first_error: None,
            dialect: 0,
            open_start: None,
            open_end: None,
            observer: ObserverBox(observer),
            t0: now,
        })
    }

    /// Sessions opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// The earliest deadline of any opened session.
    pub fn first_deadline(&self) -> Option<Instant> {
        self.sess
            .iter()
            .filter(|s| s.state == SessState::Ready)
            .map(|s| s.last_recv + self.plan.autodisconnect)
            .min()
    }

    fn fail(&mut self, poll: &Poll, c: usize, why: String) {
        let conn = &mut self.conns[c];
        if let Some(mut s) = conn.stream.take() {
            let _ = poll.registry().deregister(&mut s);
        }
        conn.done = true;
        let (first, count) = (conn.first, conn.count);
        for s in &mut self.sess[first as usize..(first + u64::from(count)) as usize] {
            if s.state == SessState::Ready {
                self.opened -= 1;
            }
            if s.state != SessState::Failed {
                s.state = SessState::Failed;
                self.failed += 1;
            }
        }
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
    }

    fn open_conn(&mut self, poll: &Poll, c: usize, intended: Instant) -> Result<(), Fatal> {
        let per = u64::from(self.plan.per_conn.max(1));
        let first = c as u64 * per;
        let count = (self.plan.sessions - first).min(per) as u32;
        let src = if self.plan.source_ips.is_empty() {
            None
        } else {
            Some(self.plan.source_ips[c % self.plan.source_ips.len()])
        };
        let now = Instant::now();
        self.sess[first as usize].intended = intended;
        let mut conn = Conn {
            stream: None,
            proto: ClientConn::new(),
            out: Vec::with_capacity(256),
            out_pos: 0,
            inbuf: Vec::new(),
            first,
            count,
            cur: 0,
            connected: false,
            step_start: intended,
            sent_at: now,
            done: false,
            handed_over: false,
            end: None,
        };
        match net::connect(self.plan.target, src) {
            Ok(mut s) => {
                poll.registry()
                    .register(&mut s, Token(c), Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| Fatal(format!("cannot register a socket: {e}")))?;
                let guid = client_guid(c as u64);
                conn.proto.negotiate(&self.plan.client, guid, &mut conn.out);
                conn.stream = Some(s);
                self.conns.push(conn);
            }
            Err(e) => {
                let msg = net::describe_connect_error(&e, self.plan.target);
                if e.raw_os_error() == Some(24) || e.kind() == io::ErrorKind::AddrNotAvailable {
                    return Err(Fatal(msg));
                }
                self.conns.push(conn);
                self.fail(poll, c, msg);
            }
        }
        Ok(())
    }

    /// Opens every session. Returns when each has reached IPC$ or failed.
    pub fn open(&mut self, progress: &mut Progress) -> Result<(), Fatal> {
        let mut poll = Poll::new().map_err(|e| Fatal(format!("epoll: {e}")))?;
        let mut events = Events::with_capacity(1024);
        let nconns = self.plan.connections() as usize;
        self.conns.reserve(nconns);
        let t0 = Instant::now();
        self.t0 = t0;
        self.open_start = Some((t0, SystemTime::now()));
        let rate = self.plan.rate.filter(|r| *r > 0.0);
        let due = |i: u64| -> Instant {
            match rate {
                Some(r) => t0 + Duration::from_secs_f64(i as f64 / r),
                None => t0,
            }
        };
        let per = u64::from(self.plan.per_conn.max(1));
        let mut waiting: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
        let mut inflight = 0usize;
        let mut finished = 0usize;
        progress.phase("opening", self.plan.sessions);
        while finished < nconns {
            let now = Instant::now();
            while self.conns.len() < nconns {
                let c = self.conns.len();
                let intended = match rate {
                    Some(_) => due(c as u64 * per),
                    None => now,
                };
                if (rate.is_some() && intended > now)
                    || (rate.is_none() && inflight >= self.plan.concurrency.max(1))
                {
                    break;
                }
                self.open_conn(&poll, c, intended)?;
                if self.conns[c].done {
                    finished += 1;
                } else {
                    inflight += 1;
                }
            }
            while let Some(Reverse((t, c))) = waiting.peek().copied() {
                if t > now {
                    break;
                }
                waiting.pop();
                self.start_session(c, t);
                self.flush_conn(&poll, c)?;
            }
            let mut next = None::<Instant>;
            if rate.is_some() && self.conns.len() < nconns {
                next = Some(due(self.conns.len() as u64 * per));
            }
            if let Some(Reverse((t, _))) = waiting.peek() {
                next = Some(next.map_or(*t, |n| n.min(*t)));
            }
            let timeout = next
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(Fatal(format!("epoll_wait: {e}")));
                }
            }
            for ev in events.iter() {
                let c = ev.token().0;
                if c >= self.conns.len() || self.conns[c].done {
                    continue;
                }
                let was_done = self.conns[c].done;
                let r = self.on_event(&poll, c, Readiness::of(ev), &mut waiting)?;
                if !was_done && self.conns[c].done {
                    finished += 1;
                    inflight -= 1;
                }
                if let Some(f) = r {
                    return Err(f);
                }
            }
            progress.set(self.opened);
        }
        let end = Instant::now();
        self.open_end = Some((end, SystemTime::now()));
        progress.set(self.opened);
        progress.finish();
        Ok(())
    }

    /// The planned start of session `i` under `--rate`.
    fn due(&self, i: u64) -> Option<Instant> {
        let r = self.plan.rate.filter(|r| *r > 0.0)?;
        Some(self.t0 + Duration::from_secs_f64(i as f64 / r))
    }

    fn start_session(&mut self, c: usize, intended: Instant) {
        let conn = &mut self.conns[c];
        let idx = (conn.first + u64::from(conn.cur)) as usize;
        self.sess[idx].intended = intended;
        conn.step_start = intended;
        conn.proto.begin_session(&self.plan.client, &mut conn.out);
        conn.sent_at = Instant::now();
    }

    fn flush_conn(&mut self, poll: &Poll, c: usize) -> Result<(), Fatal> {
        let conn = &mut self.conns[c];
        if !conn.connected {
            return Ok(());
        }
        if let Some(s) = conn.stream.as_mut() {
            if let Err(e) = net::flush(s, &mut conn.out, &mut conn.out_pos) {
                let msg = format!("sending to {}: {e}", self.plan.target);
                self.fail(poll, c, msg);
            }
        }
        Ok(())
    }

    fn on_event(
        &mut self,
        poll: &Poll,
        c: usize,
        ready: Readiness,
        waiting: &mut BinaryHeap<Reverse<(Instant, usize)>>,
    ) -> Result<Option<Fatal>, Fatal> {
        let target = self.plan.target;
        // Connect completion.
        if !self.conns[c].connected {
            let conn = &mut self.conns[c];
            let Some(s) = conn.stream.as_mut() else {
                return Ok(None);
            };
            match net::connect_done(s, ready) {
                Ok(true) => {
                    conn.connected = true;
                    conn.sent_at = Instant::now();
                }
                Ok(false) => return Ok(None),
                Err(e) => {
                    let msg = net::describe_connect_error(&e, target);
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        return Err(Fatal(msg));
                    }
                    self.fail(poll, c, msg);
                    return Ok(None);
                }
            }
        }
        self.flush_conn(poll, c)?;
        if self.conns[c].done {
            return Ok(None);
        }
        let read = {
            let conn = &mut self.conns[c];
            match conn.stream.as_mut() {
                Some(s) => net::read_available(s, &mut conn.inbuf, MAX_BUFFER, ready),
                None => return Ok(None),
            }
        };
        let eof = match read {
            Ok(ReadOutcome::Open) => false,
            Ok(ReadOutcome::Eof) => true,
            Err(e) => {
                let msg = format!("connection to {target} failed during setup: {e}");
                self.fail(poll, c, msg);
                return Ok(None);
            }
        };
        let mut used = 0usize;
        loop {
            let now = Instant::now();
            let conn = &mut self.conns[c];
            let frame = match split_frame(&conn.inbuf[used..], MAX_FRAME) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let msg = format!("bad framing from {target}: {e}");
                    self.fail(poll, c, msg);
                    return Ok(None);
                }
            };
            let (range, n) = frame;
            let start = used;
            used += n;
            let msg_range = start + range.start..start + range.end;
            let Conn {
                proto, inbuf, out, ..
            } = conn;
            let ev = proto.handle(&inbuf[msg_range], &self.plan.client, out);
            let step_lat = us(now.saturating_duration_since(conn.step_start));
            match ev {
                Ok(Event::Negotiated { dialect }) => {
                    if self.dialect == 0 {
                        self.dialect = dialect;
                    }
                    stats::record(&mut self.hists.setup[0], step_lat);
                    let intended = conn.step_start.max(self.sess[conn.first as usize].intended);
                    // The first session's SS1 counts from the negotiate response.
                    let _ = intended;
                    conn.step_start = now;
                    conn.proto.begin_session(&self.plan.client, &mut conn.out);
                    conn.sent_at = Instant::now();
                }
                Ok(Event::Continue { step, .. }) => {
                    let i = match step {
                        Step::SessionSetup1 => 1,
                        Step::SessionSetup2 => 2,
                        _ => 3,
                    };
                    stats::record(&mut self.hists.setup[i], step_lat);
                    conn.step_start = now;
                    conn.sent_at = Instant::now();
                }
                Ok(Event::SessionReady { session_id, .. }) => {
                    stats::record(&mut self.hists.setup[3], step_lat);
                    let idx = (conn.first + u64::from(conn.cur)) as usize;
                    let s = &mut self.sess[idx];
                    s.state = SessState::Ready;
                    s.last_send = conn.sent_at;
                    s.last_recv = now;
                    s.session_id = session_id;
                    stats::record(&mut self.hists.setup[4], us(now - s.intended));
                    stats::record(&mut self.hists.error_bound, us(now - conn.sent_at));
                    self.opened += 1;
                    conn.cur += 1;
                    if conn.cur < conn.count {
                        let next_idx = conn.first + u64::from(conn.cur);
                        let intended = self.due(next_idx).unwrap_or(now);
                        if intended <= now {
                            self.start_session(c, intended);
                        } else {
                            waiting.push(Reverse((intended, c)));
                        }
                    } else {
                        // All sessions ready: hand the connection to the observer.
                        conn.done = true;
                        conn.handed_over = true;
                        // It stays in this thread's epoll set, which ignores it from now
                        // on (the connection is done) and is closed when the opening
                        // ends; the observer's close takes it out of both.
                        if let Some(s) = conn.stream.take() {
                            let rest = conn.inbuf[used..].to_vec();
                            self.observer.0.watch(c, s, rest, conn.proto.opener());
                        }
                        conn.inbuf.clear();
                        return Ok(None);
                    }
                }
                Ok(Event::SessionClosed { session_id }) => {
                    let (first, count) = (conn.first as usize, conn.count as usize);
                    if let Some(s) = self.sess[first..first + count]
                        .iter_mut()
                        .find(|s| s.session_id == session_id && s.state == SessState::Ready)
                    {
                        s.notified.get_or_insert(now);
                    }
                }
                // Requests this run never sends.
                Ok(
                    Event::PipeOpen
                    | Event::EchoDone
                    | Event::EchoAnswered { .. }
                    | Event::PipeWritten
                    | Event::PipeRead
                    | Event::PipeClosed
                    | Event::LoggedOff
                    | Event::Nothing,
                ) => {}
                Err(e) => {
                    let fatal = e.is_auth_failure();
                    let msg = describe_client_error(&e, target);
                    if fatal {
                        return Err(Fatal(msg));
                    }
                    self.fail(poll, c, msg);
                    return Ok(None);
                }
            }
            self.flush_conn(poll, c)?;
            if self.conns[c].done {
                return Ok(None);
            }
        }
        self.conns[c].inbuf.drain(..used);
        if eof {
            let msg = format!("{target} closed the connection during setup");
            self.fail(poll, c, msg);
        }
        Ok(None)
    }

    /// Waits until every opened session's connection has ended or its deadline + hold has
    /// passed; sets the probe phase to REAPING at the first deadline.
    pub fn wait_reaps(&mut self, progress: &mut Progress, phase_flag: Option<&AtomicU8>) {
        let watched: Vec<usize> = (0..self.conns.len())
            .filter(|&c| self.conns[c].handed_over)
            .collect();
        let mut open = watched.len();
        let per_conn_last: Vec<Instant> =
            self.conns.iter().map(|c| self.conn_deadline(c)).collect();
        let last_deadline = watched
            .iter()
            .map(|&c| per_conn_last[c])
            .max()
            .unwrap_or_else(Instant::now);
        let first_deadline = self.first_deadline().unwrap_or_else(Instant::now);
        let bound = last_deadline + self.plan.hold;
        let mut reaped_sessions = 0u64;
        progress.phase("reaping", self.opened);
        let mut reaping_set = false;
        while open > 0 {
            let now = Instant::now();
            if !reaping_set && now >= first_deadline {
                reaping_set = true;
                if let Some(p) = phase_flag {
                    p.store(phase::REAPING, Ordering::SeqCst);
                }
            }
            if now >= bound {
                break;
            }
            let wait = bound
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            match self.observer.0.events.recv_timeout(wait) {
                Ok(ObsEvent::End(c, t, kind)) => {
                    let conn = &mut self.conns[c];
                    if conn.end.is_none() {
                        conn.end = Some((t, kind));
                        open -= 1;
                        reaped_sessions += u64::from(conn.count);
                    }
                }
                Ok(ObsEvent::Notified(c, sid, t)) => {
                    let (first, count) =
                        (self.conns[c].first as usize, self.conns[c].count as usize);
                    if let Some(s) = self.sess[first..first + count]
                        .iter_mut()
                        .find(|s| s.session_id == sid)
                    {
                        s.notified.get_or_insert(t);
                    }
                }
                Err(_) => {}
            }
            progress.set(reaped_sessions.min(self.opened));
        }
        // Drain what already arrived.
        while let Ok(ev) = self.observer.0.events.try_recv() {
            if let ObsEvent::End(c, t, kind) = ev {
                if t <= bound && self.conns[c].end.is_none() {
                    self.conns[c].end = Some((t, kind));
                }
            }
        }
        if let Some(p) = phase_flag {
            p.store(phase::REAPING, Ordering::SeqCst);
        }
        progress.finish();
        self.observer.0.stop();
    }

    /// The recv-based deadline of a connection's last ready session.
    fn conn_deadline(&self, c: &Conn) -> Instant {
        let first = c.first as usize;
        self.sess[first..first + c.count as usize]
            .iter()
            .filter(|s| s.state == SessState::Ready)
            .map(|s| s.last_recv + self.plan.autodisconnect)
            .max()
            .unwrap_or_else(Instant::now)
    }

    /// Computes the figures.
    pub fn result(&self) -> RunResult {
        let ad = self.plan.autodisconnect;
        let mut hists = self.hists.clone();
        let mut r = RunResult {
            sessions: self.plan.sessions,
            connections: self.conns.len() as u64,
            opened: self.opened,
            setup_failed: self.failed + (self.plan.sessions - self.sess.len() as u64),
            first_error: self.first_error.clone(),
            dialect: self.dialect,
            ..Default::default()
        };
        if let (Some((s, sw)), Some((e, ew))) = (self.open_start, self.open_end) {
            r.open_secs = (e - s).as_secs_f64();
            r.open_start_unix_us = unix_us(sw);
            r.open_end_unix_us = unix_us(ew).max(unix_us(sw) + 1);
        }
        for c in self.conns.iter().filter(|c| c.handed_over) {
            let first = c.first as usize;
            let ss = &self.sess[first..first + c.count as usize];
            let mut conn_early = false;
            for s in ss.iter().filter(|s| s.state == SessState::Ready) {
                let end = s.notified.or(c.end.map(|e| e.0));
                match end {
                    None => r.never_reaped += 1,
                    Some(t) => {
                        r.reaped += 1;
                        let earliest = s.last_send + ad;
                        if t < earliest {
                            r.reaped_early += 1;
                            r.worst_early_us = r.worst_early_us.max(us(earliest - t));
                            conn_early = true;
                        }
                        if s.notified.is_some() {
                            r.ends_notification += 1;
                        } else if let Some((_, k)) = c.end {
                            match k {
                                EndKind::Eof => r.ends_eof += 1,
                                EndKind::Rst => r.ends_rst += 1,
                            }
                        }
                    }
                }
            }
            // One lateness sample per connection: its last session's deadline.
            let last = ss
                .iter()
                .filter(|s| s.state == SessState::Ready)
                .max_by_key(|s| s.last_recv);
            if let (Some((t, _)), Some(last), false) = (c.end, last, conn_early) {
                let deadline = last.last_recv + ad;
                let signed = if t >= deadline {
                    us(t - deadline) as i64
                } else {
                    -(us(deadline - t) as i64)
                };
                r.lateness_us.push(signed);
                stats::record(
                    &mut hists.lateness_upper,
                    us(t.saturating_duration_since(last.last_send + ad)),
                );
            }
        }
        r.hists = hists.encode();
        r
    }
}

/// A per-connection ClientGuid.
fn client_guid(c: u64) -> [u8; 16] {
    let mut g = *b"smb-loadgen\0\0\0\0\0";
    g[8..].copy_from_slice(&c.to_le_bytes());
    g
}

/// Describes a protocol error for a person.
pub fn describe_client_error(e: &ClientError, target: SocketAddr) -> String {
    if e.is_auth_failure() {
        format!("authentication against {target} failed: {e}")
    } else {
        format!("{target}: {e}")
    }
}
