//! The churn scenario (`smb-loadgen churn`): sessions opened at a steady rate for a given
//! time, each on a new TCP connection, each meeting a *fate* that ends it one of the ways a
//! server has to clean up after. It is what `scripts/soak` drives a server with while watching
//! its memory, descriptors and session counts. (`--scenario churn`, [`crate::session_churn`],
//! is another load: sessions set up and logged off as fast as possible, to measure the rate.)
//!
//! # Fates
//!
//! Every connection negotiates, sets up an anonymous (or `--user`) session and connects to
//! IPC$, then plays its fate out ([`next_step`] is the script):
//!
//! | fate | what the client does | how the connection ends |
//! |---|---|---|
//! | `idle` | nothing | the server reaps the session at its autodisconnect deadline and closes |
//! | `logoff` | LOGOFF | the server closes the session-less connection once it has idled for the autodisconnect value |
//! | `reopen` | LOGOFF, then a second session + IPC$ on the same connection | reaped like `idle` |
//! | `pipe` | CREATE `srvsvc`, WRITE a DCE/RPC bind, READ the bind_ack, CLOSE | reaped like `idle` (idle from the CLOSE) |
//! | `pipe-unread` | CREATE `srvsvc`, WRITE a bind, CLOSE with the bind_ack never read | reaped like `idle` |
//! | `drop` | closes the TCP connection (FIN, or RST on every other one) | at once |
//! | `abort` | closes the TCP connection after the first SESSION_SETUP response, the session half set up (FIN or RST) | at once |
//!
//! Fates are dealt in a fixed, evenly interleaved order from the weights of `--mix`
//! ([`FateCycle`], smooth weighted round robin), so any stretch of the run has the mix's
//! proportions and two runs deal the same fates.
//!
//! # Rate and timing
//!
//! Open loop: `--rate` counts sessions *started* (a SESSION_SETUP begun). Connection `k` is
//! planned at `t0 + (sessions started by connections 0..k) / rate`, a re-opening connection
//! counting two; a generator or server that falls behind does not slow the schedule, it shows
//! as lag (`behind_schedule_ms`) and as setup latency, which is measured from the plan
//! (coordinated omission corrected). Sessions are only started during `--duration`; the run
//! then waits for the last connections to end, at most `--autodisconnect + --hold` more.
//!
//! A connection waiting to be reaped has its deadline at *last request sent + autodisconnect*
//! at the earliest (it ended earlier: **reaped early**, a server bug) and is expected by *last
//! response + autodisconnect*; its lateness is its end minus the latter. One still open at that
//! deadline + `--hold` is **not reaped**: the generator closes it itself and counts it.
//!
//! The generator keeps no per-session record: its memory is bounded by the connections open at
//! once, so it can run for hours.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};
use slab::Slab;
use smb_rpc::client::RpcClient;
use smb_rpc::ndr::Syntax;
use smb_rpc::Interface;
use smb_wire::frame::split_frame;

use crate::cli::ChurnArgs;
use crate::net::{self, ReadOutcome, Readiness};
use crate::proto::{ClientConfig, ClientConn, ClientError, Event, Step};
use crate::stats::{self, new_hist};

/// The mix `smb-loadgen churn` uses unless `--mix` says otherwise.
pub const DEFAULT_MIX: &str = "idle=3,logoff=2,reopen=2,pipe=1,pipe-unread=1,drop=2,abort=1";

/// Largest frame the client accepts.
const MAX_FRAME: usize = 1 << 20;
/// Most bytes buffered per connection.
const MAX_BUFFER: usize = 1 << 20;
/// Largest DCE/RPC fragment the pipe fates announce and read.
const RPC_MAX_FRAG: u16 = 4280;
/// Most connections started in one turn of the event loop when behind schedule.
const BURST: usize = 64;

/// How a connection ends; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fate {
    /// Left idle until the server reaps it.
    Idle,
    /// LOGOFF, then left for the server to close.
    Logoff,
    /// LOGOFF and a second session on the same connection, then left idle.
    Reopen,
    /// srvsvc pipe opened, bound, read and closed, then left idle.
    Pipe,
    /// srvsvc pipe opened, bound and closed with the response unread, then left idle.
    PipeUnread,
    /// TCP connection closed by the client after TREE_CONNECT.
    Drop,
    /// TCP connection closed by the client in the middle of SESSION_SETUP.
    Abort,
}

impl Fate {
    /// Every fate, in `--mix` order.
    pub const ALL: [Fate; 7] = [
        Fate::Idle,
        Fate::Logoff,
        Fate::Reopen,
        Fate::Pipe,
        Fate::PipeUnread,
        Fate::Drop,
        Fate::Abort,
    ];

    /// The name used in `--mix` and the report.
    pub fn name(self) -> &'static str {
        match self {
            Fate::Idle => "idle",
            Fate::Logoff => "logoff",
            Fate::Reopen => "reopen",
            Fate::Pipe => "pipe",
            Fate::PipeUnread => "pipe-unread",
            Fate::Drop => "drop",
            Fate::Abort => "abort",
        }
    }

    /// Sessions a connection with this fate starts (SESSION_SETUPs begun).
    pub fn sessions(self) -> u64 {
        match self {
            Fate::Reopen => 2,
            _ => 1,
        }
    }

    /// Sessions a connection with this fate brings to IPC$.
    pub fn sessions_opened(self) -> u64 {
        match self {
            Fate::Reopen => 2,
            Fate::Abort => 0,
            _ => 1,
        }
    }

    /// `true` when the server is expected to end the connection (autodisconnect).
    pub fn awaits_reap(self) -> bool {
        !matches!(self, Fate::Drop | Fate::Abort)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Fates and their weights (`--mix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 7],
}

impl Mix {
    /// Parses `name=weight,...` (names from [`Fate::name`]; fates left out weigh 0).
    pub fn parse(s: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 7];
        let mut seen = [false; 7];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' in --mix is not NAME=WEIGHT"))?;
            let fate = Fate::ALL
                .into_iter()
                .find(|f| f.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Fate::ALL.iter().map(|f| f.name()).collect();
                    format!(
                        "unknown fate '{}' in --mix (one of {})",
                        name.trim(),
                        names.join(", ")
                    )
                })?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| format!("bad weight '{}' for {} in --mix", w.trim(), fate.name()))?;
            if w > 1_000_000 {
                return Err(format!("weight {w} for {} is above 1000000", fate.name()));
            }
            if std::mem::replace(&mut seen[fate.index()], true) {
                return Err(format!("{} appears twice in --mix", fate.name()));
            }
            weights[fate.index()] = w;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err("--mix gives no fate a weight above 0".into());
        }
        Ok(Mix { weights })
    }

    /// The weight of `fate`.
    pub fn weight(&self, fate: Fate) -> u32 {
        self.weights[fate.index()]
    }

    /// The fates in dealing order, forever.
    pub fn cycle(&self) -> FateCycle {
        FateCycle {
            weights: self.weights.map(i64::from),
            current: [0; 7],
            total: self.weights.iter().map(|&w| i64::from(w)).sum(),
        }
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix::parse(DEFAULT_MIX).expect("the default mix parses")
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for fate in Fate::ALL.into_iter().filter(|x| self.weight(*x) > 0) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}={}", fate.name(), self.weight(fate))?;
        }
        Ok(())
    }
}

/// Deals fates in proportion to their weights, evenly interleaved (smooth weighted round
/// robin, as nginx balances upstreams): each turn every fate gains its weight, the fate with
/// the most credit (the first on a tie) is dealt and pays the total weight back. Every
/// `total weight` turns each fate has been dealt exactly its weight.
#[derive(Debug, Clone)]
pub struct FateCycle {
    weights: [i64; 7],
    current: [i64; 7],
    total: i64,
}

impl Iterator for FateCycle {
    type Item = Fate;

    fn next(&mut self) -> Option<Fate> {
        let mut best = 0;
        for i in 0..self.weights.len() {
            self.current[i] += self.weights[i];
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        Some(Fate::ALL[best])
    }
}

/// What a connection does next in its fate's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing to add (the client already queued the next request of the setup, or the
    /// message needs nothing).
    Nothing,
    /// Begin a session (first SESSION_SETUP).
    BeginSession,
    /// LOGOFF the session.
    Logoff,
    /// CREATE the srvsvc pipe.
    OpenPipe,
    /// WRITE a DCE/RPC bind to the pipe.
    WriteBind,
    /// READ the bind_ack from the pipe.
    ReadPipe,
    /// CLOSE the pipe.
    ClosePipe,
    /// The fate is played out: wait for the server to end the connection.
    AwaitReap,
    /// Close the TCP connection now.
    Hangup,
}

/// The script of every fate: what a connection with `fate` does after the client reported
/// `ev`, `ready` being the sessions that have reached IPC$ on it so far (the one `ev`
/// announces included).
pub fn next_step(fate: Fate, ready: u32, ev: Event) -> Next {
    match ev {
        Event::Negotiated { .. } => Next::BeginSession,
        Event::Continue {
            step: Step::SessionSetup1,
            ..
        } if fate == Fate::Abort => Next::Hangup,
        Event::Continue { .. } => Next::Nothing,
        Event::SessionReady { .. } => match fate {
            Fate::Idle => Next::AwaitReap,
            Fate::Logoff => Next::Logoff,
            Fate::Reopen if ready < 2 => Next::Logoff,
            Fate::Reopen => Next::AwaitReap,
            Fate::Pipe | Fate::PipeUnread => Next::OpenPipe,
            Fate::Drop | Fate::Abort => Next::Hangup,
        },
        Event::LoggedOff if fate == Fate::Reopen && ready < 2 => Next::BeginSession,
        Event::LoggedOff => Next::AwaitReap,
        Event::PipeOpen => Next::WriteBind,
        Event::PipeWritten if fate == Fate::Pipe => Next::ReadPipe,
        Event::PipeWritten => Next::ClosePipe,
        Event::PipeRead => Next::ClosePipe,
        Event::PipeClosed => Next::AwaitReap,
        Event::EchoDone
        | Event::EchoAnswered { .. }
        | Event::SessionClosed { .. }
        | Event::Nothing => Next::Nothing,
    }
}

/// What to churn and how.
#[derive(Debug, Clone)]
pub struct ChurnPlan {
    /// The server.
    pub target: SocketAddr,
    /// Sessions started per second.
    pub rate: f64,
    /// How long sessions are started.
    pub duration: Duration,
    /// The server's idle timeout.
    pub autodisconnect: Duration,
    /// Grace past each reap deadline.
    pub hold: Duration,
    /// Longest wait for a response.
    pub request_timeout: Duration,
    /// The fates.
    pub mix: Mix,
    /// Protocol settings.
    pub client: ClientConfig,
    /// A progress line on stderr this often.
    pub progress_every: Option<Duration>,
}

/// Counts of one fate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FateCounts {
    /// Connections dealt this fate.
    pub started: u64,
    /// Connections that played it out and ended as expected (reaped by the server, or hung
    /// up by the client).
    pub completed: u64,
    /// Connections that failed on the way (error, timeout, unexpected close, reaped early,
    /// not reaped).
    pub failed: u64,
}

/// What a churn run measured.
#[derive(Debug, Clone)]
pub struct ChurnResult {
    /// Connections opened.
    pub connections: u64,
    /// SESSION_SETUPs begun.
    pub sessions_started: u64,
    /// Sessions that reached IPC$.
    pub sessions_opened: u64,
    /// Connections that failed (any reason but reaped early / not reaped).
    pub failed: u64,
    /// Failures by kind (`STEP: cause`).
    pub failures: BTreeMap<String, u64>,
    /// The first failure, in full.
    pub first_error: Option<String>,
    /// Per fate, in [`Fate::ALL`] order.
    pub fates: [FateCounts; 7],
    /// Waiting connections the server ended.
    pub reaped: u64,
    /// ... before their last request + autodisconnect.
    pub reaped_early: u64,
    /// The earliest of those, in µs before the deadline.
    pub worst_early_us: u64,
    /// Waiting connections still open at their deadline + hold (closed by the generator).
    pub not_reaped: u64,
    /// Ends seen as FIN.
    pub ends_eof: u64,
    /// Ends seen as a reset or error.
    pub ends_rst: u64,
    /// Connections the client closed with FIN / with RST (drop and abort fates).
    pub hangups_fin: u64,
    /// See `hangups_fin`.
    pub hangups_rst: u64,
    /// Most connections open at once.
    pub max_open_connections: u64,
    /// Most a connection started behind its planned time, µs.
    pub max_behind_us: u64,
    /// Seconds sessions were started for.
    pub open_secs: f64,
    /// Seconds of the whole run.
    pub total_secs: f64,
    /// First session of each connection, planned start to TREE_CONNECT response, µs.
    pub setup: Histogram<u64>,
    /// Second session of a re-opening connection, first SESSION_SETUP to TREE_CONNECT
    /// response, µs.
    pub reopen: Histogram<u64>,
    /// Reaped connections: end - (last response + autodisconnect), clamped at 0, µs.
    pub lateness: Histogram<u64>,
}

impl Default for ChurnResult {
    fn default() -> Self {
        ChurnResult {
            connections: 0,
            sessions_started: 0,
            sessions_opened: 0,
            failed: 0,
            failures: BTreeMap::new(),
            first_error: None,
            fates: [FateCounts::default(); 7],
            reaped: 0,
            reaped_early: 0,
            worst_early_us: 0,
            not_reaped: 0,
            ends_eof: 0,
            ends_rst: 0,
            hangups_fin: 0,
            hangups_rst: 0,
            max_open_connections: 0,
            max_behind_us: 0,
            open_secs: 0.0,
            total_secs: 0.0,
            setup: new_hist(),
            reopen: new_hist(),
            lateness: new_hist(),
        }
    }
}

impl ChurnResult {
    /// `true` when sessions were opened and nothing failed, was reaped early or was left.
    pub fn ok(&self) -> bool {
        self.sessions_opened > 0
            && self.failed == 0
            && self.reaped_early == 0
            && self.not_reaped == 0
    }

    /// Sessions started per second while starting.
    pub fn start_rate(&self) -> f64 {
        if self.open_secs > 0.0 {
            self.sessions_started as f64 / self.open_secs
        } else {
            0.0
        }
    }

    /// Every figure as JSON.
    pub fn json(&self) -> Value {
        let fates: serde_json::Map<String, Value> = Fate::ALL
            .iter()
            .map(|f| {
                let c = self.fates[f.index()];
                (
                    f.name().to_string(),
                    json!({"started": c.started, "completed": c.completed, "failed": c.failed}),
                )
            })
            .collect();
        json!({
            "connections": self.connections,
            "sessions_started": self.sessions_started,
            "sessions_opened": self.sessions_opened,
            "start_rate": (self.start_rate() * 10.0).round() / 10.0,
            "failed": self.failed,
            "failures": self.failures,
            "first_error": self.first_error,
            "fates": fates,
            "reaped": self.reaped,
            "reaped_early": self.reaped_early,
            "worst_early_ms": self.worst_early_us as f64 / 1000.0,
            "not_reaped": self.not_reaped,
            "ends": {"eof": self.ends_eof, "rst": self.ends_rst},
            "hangups": {"fin": self.hangups_fin, "rst": self.hangups_rst},
            "max_open_connections": self.max_open_connections,
            "behind_schedule_ms": self.max_behind_us as f64 / 1000.0,
            "open_seconds": self.open_secs,
            "total_seconds": self.total_secs,
            "setup_ms": stats::summary_ms(&self.setup),
            "reopen_ms": stats::summary_ms(&self.reopen),
            "lateness_ms": stats::summary_ms(&self.lateness),
            "ok": self.ok(),
        })
    }

    /// A summary for a person.
    pub fn text(&self) -> String {
        let ms = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0)
            }
        };
        let max = |h: &Histogram<u64>| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2}", h.max() as f64 / 1000.0)
            }
        };
        let mut s = String::new();
        s += &format!(
            "sessions started      {} in {:.1} s ({:.1}/s), {} reached IPC$, on {} connections\n",
            self.sessions_started,
            self.open_secs,
            self.start_rate(),
            self.sessions_opened,
            self.connections
        );
        s += &format!(
            "failed connections    {}{}\n",
            self.failed,
            match &self.first_error {
                Some(e) => format!(" (first: {e})"),
                None => String::new(),
            }
        );
        for (k, n) in &self.failures {
            s += &format!("  {n:>8}  {k}\n");
        }
        s += "fates                 ";
        let parts: Vec<String> = Fate::ALL
            .iter()
            .filter(|f| self.fates[f.index()].started > 0)
            .map(|f| {
                let c = self.fates[f.index()];
                format!(
                    "{} {}/{}{}",
                    f.name(),
                    c.completed,
                    c.started,
                    if c.failed > 0 {
                        format!(" ({} failed)", c.failed)
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        s += &parts.join(", ");
        s += "  (completed/started)\n";
        s += &format!(
            "reaped by the server  {} (FIN {}, RST {}); early {}{}; not reaped {}\n",
            self.reaped,
            self.ends_eof,
            self.ends_rst,
            self.reaped_early,
            if self.reaped_early > 0 {
                format!(" (worst {:.2} ms)", self.worst_early_us as f64 / 1000.0)
            } else {
                String::new()
            },
            self.not_reaped
        );
        s += &format!(
            "hung up by the client {} (FIN {}, RST {})\n",
            self.hangups_fin + self.hangups_rst,
            self.hangups_fin,
            self.hangups_rst
        );
        s += &format!(
            "setup ms (from plan)  p50 {} p99 {} max {}; re-open p50 {} p99 {} max {}\n",
            ms(&self.setup, 0.5),
            ms(&self.setup, 0.99),
            max(&self.setup),
            ms(&self.reopen, 0.5),
            ms(&self.reopen, 0.99),
            max(&self.reopen)
        );
        s += &format!(
            "reap lateness ms      p50 {} p99 {} max {}\n",
            ms(&self.lateness, 0.5),
            ms(&self.lateness, 0.99),
            max(&self.lateness)
        );
        s += &format!(
            "most connections open {}; most behind schedule {:.1} ms\n",
            self.max_open_connections,
            self.max_behind_us as f64 / 1000.0
        );
        s += &format!(
            "result                {}\n",
            if self.ok() { "ok" } else { "FAILED" }
        );
        s
    }
}

/// A churn run that cannot go on (the server refused a connection, out of descriptors or
/// local ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

/// How a connection ended.
#[derive(Debug)]
enum Outcome {
    /// The server ended a waiting connection at `at` (`rst`: by a reset or error).
    Reaped { at: Instant, rst: bool },
    /// A waiting connection outlived its deadline + hold.
    NotReaped,
    /// The client hung up as its fate says.
    HungUp { rst: bool },
    /// Something went wrong: the key for the failure table, and the full message.
    Failed { kind: String, msg: String },
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// A request is outstanding, sent at this instant.
    Busy { sent: Instant },
    /// Played out; waiting for the server: last request sent, last response received.
    Waiting {
        last_sent: Instant,
        last_recv: Instant,
    },
}

#[derive(Debug)]
struct Conn {
    serial: u64,
    stream: TcpStream,
    proto: ClientConn,
    fate: Fate,
    connected: bool,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    /// Planned start of the connection.
    planned: Instant,
    /// When the session being set up was begun (for a re-open).
    session_begun: Instant,
    /// Sessions that reached IPC$ on this connection.
    ready: u32,
    phase: Phase,
    /// The timer that counts for this connection (request timeout or reap deadline + hold).
    deadline: Instant,
    rpc: Option<RpcClient>,
    /// Hang up with a reset rather than a FIN (every other connection of a fate).
    rst: bool,
}

/// A churn run in progress.
#[derive(Debug)]
pub struct Churn {
    plan: ChurnPlan,
    poll: Poll,
    conns: Slab<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    fates: FateCycle,
    next_serial: u64,
    res: ChurnResult,
}

impl Churn {
    /// Prepares a run.
    pub fn new(plan: ChurnPlan) -> Result<Churn, Fatal> {
        if !(plan.rate > 0.0 && plan.rate.is_finite()) {
            return Err(Fatal(
                "--rate must be a positive number of sessions per second".into(),
            ));
        }
        let poll = Poll::new().map_err(|e| Fatal(format!("epoll: {e}")))?;
        let fates = plan.mix.cycle();
        Ok(Churn {
            plan,
            poll,
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            fates,
            next_serial: 0,
            res: ChurnResult::default(),
        })
    }

    /// Runs the churn to its end and returns what it measured.
    pub fn run(mut self) -> Result<ChurnResult, Fatal> {
        let mut events = Events::with_capacity(1024);
        let t0 = Instant::now();
        let stop_at = t0 + self.plan.duration;
        let mut slot = 0u64;
        let mut next_fate = self.fates.next().unwrap_or(Fate::Idle);
        let mut opening = true;
        let mut next_progress = self.plan.progress_every.map(|p| t0 + p);
        let mut last_progress = (t0, 0u64);
        loop {
            let now = Instant::now();
            // Start what is due.
            let mut started = 0;
            while opening {
                let planned = t0 + Duration::from_secs_f64(slot as f64 / self.plan.rate);
                if planned >= stop_at {
                    opening = false;
                    self.res.open_secs = now.duration_since(t0).as_secs_f64();
                    break;
                }
                if planned > now || started >= BURST {
                    break;
                }
                self.start(next_fate, planned, now)?;
                slot += next_fate.sessions();
                next_fate = self.fates.next().unwrap_or(Fate::Idle);
                started += 1;
            }
            self.fire_timers(now);
            if !opening && self.conns.is_empty() {
                break;
            }
            if let Some(at) = next_progress.filter(|&at| now >= at) {
                self.progress(now - t0, now, &mut last_progress);
                next_progress = self.plan.progress_every.map(|p| at + p);
            }
            // Sleep until the next start, timer or progress line.
            let mut wake = self.timers.peek().map(|Reverse((t, _, _))| *t);
            if opening {
                let planned = t0 + Duration::from_secs_f64(slot as f64 / self.plan.rate);
                wake = Some(wake.map_or(planned, |w| w.min(planned)));
            }
            if let Some(p) = next_progress {
                wake = Some(wake.map_or(p, |w| w.min(p)));
            }
            let timeout = if started >= BURST {
                Some(Duration::ZERO)
            } else {
                wake.map(|w| w.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(Fatal(format!("epoll_wait: {e}")));
                }
            }
            for ev in events.iter() {
                self.on_ready(ev.token().0, Readiness::of(ev))?;
            }
        }
        self.res.total_secs = t0.elapsed().as_secs_f64();
        Ok(self.res)
    }

    fn progress(&self, elapsed: Duration, now: Instant, last: &mut (Instant, u64)) {
        let r = &self.res;
        let secs = now.duration_since(last.0).as_secs_f64();
        let rate = if secs > 0.0 {
            (r.sessions_started - last.1) as f64 / secs
        } else {
            0.0
        };
        *last = (now, r.sessions_started);
        eprintln!(
            "churn {:>6.0}s: started {} ({rate:.0}/s), at IPC$ {}, open connections {}, \
             reaped {}, hung up {}, failed {}, early {}, not reaped {}",
            elapsed.as_secs_f64(),
            r.sessions_started,
            r.sessions_opened,
            self.conns.len(),
            r.reaped,
            r.hangups_fin + r.hangups_rst,
            r.failed,
            r.reaped_early,
            r.not_reaped
        );
    }

    /// Opens connection with `fate`, planned at `planned`.
    fn start(&mut self, fate: Fate, planned: Instant, now: Instant) -> Result<(), Fatal> {
        let target = self.plan.target;
        self.res.connections += 1;
        self.res.fates[fate.index()].started += 1;
        let rst = self.res.fates[fate.index()].started % 2 == 0;
        self.res.max_behind_us = self
            .res
            .max_behind_us
            .max(us(now.saturating_duration_since(planned)));
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut stream = match net::connect(target, None) {
            Ok(s) => s,
            Err(e) => {
                let msg = net::describe_connect_error(&e, target);
                if e.raw_os_error() == Some(24) || e.kind() == io::ErrorKind::AddrNotAvailable {
                    return Err(Fatal(msg));
                }
                self.count_failure(fate, "connect".into(), msg);
                return Ok(());
            }
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| Fatal(format!("cannot register a socket: {e}")))?;
        let mut proto = ClientConn::new();
        let mut out = Vec::with_capacity(256);
        proto.negotiate(&self.plan.client, client_guid(serial), &mut out);
        let deadline = now + self.plan.request_timeout;
        entry.insert(Conn {
            serial,
            stream,
            proto,
            fate,
            connected: false,
            out,
            out_pos: 0,
            inbuf: Vec::new(),
            planned,
            session_begun: planned,
            ready: 0,
            phase: Phase::Busy { sent: now },
            deadline,
            rpc: None,
            rst,
        });
        self.timers.push(Reverse((deadline, key, serial)));
        self.res.max_open_connections = self.res.max_open_connections.max(self.conns.len() as u64);
        Ok(())
    }

    /// Handles the timers due: request timeouts and reap deadlines.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, key, serial))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get(key) else {
                continue;
            };
            if c.serial != serial || c.deadline != t {
                continue; // a timer replaced by a later one
            }
            let outcome = match c.phase {
                Phase::Waiting { .. } => Outcome::NotReaped,
                Phase::Busy { .. } => {
                    let step = c
                        .proto
                        .outstanding()
                        .map_or("connect", |s| s.command().name());
                    Outcome::Failed {
                        kind: format!("{step}: no response"),
                        msg: format!(
                            "{}: no response to {step} within {:?}",
                            self.plan.target, self.plan.request_timeout
                        ),
                    }
                }
            };
            self.finish(key, outcome);
        }
    }

    fn count_failure(&mut self, fate: Fate, kind: String, msg: String) {
        self.res.failed += 1;
        self.res.fates[fate.index()].failed += 1;
        *self.res.failures.entry(kind).or_insert(0) += 1;
        if self.res.first_error.is_none() {
            self.res.first_error = Some(msg);
        }
    }

    /// Ends connection `key` with `outcome` and closes its socket.
    fn finish(&mut self, key: usize, outcome: Outcome) {
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.stream);
        let fate = c.fate;
        match outcome {
            Outcome::Reaped { at, rst } => {
                let Phase::Waiting {
                    last_sent,
                    last_recv,
                } = c.phase
                else {
                    unreachable!("only waiting connections are reaped")
                };
                self.res.reaped += 1;
                if rst {
                    self.res.ends_rst += 1;
                } else {
                    self.res.ends_eof += 1;
                }
                let earliest = last_sent + self.plan.autodisconnect;
                if at < earliest {
                    self.res.reaped_early += 1;
                    self.res.worst_early_us = self.res.worst_early_us.max(us(earliest - at));
                    self.res.fates[fate.index()].failed += 1;
                } else {
                    let expected = last_recv + self.plan.autodisconnect;
                    stats::record(
                        &mut self.res.lateness,
                        us(at.saturating_duration_since(expected)),
                    );
                    self.res.fates[fate.index()].completed += 1;
                }
            }
            Outcome::NotReaped => {
                self.res.not_reaped += 1;
                self.res.fates[fate.index()].failed += 1;
            }
            Outcome::HungUp { rst } => {
                if rst {
                    // SO_LINGER 0: close() sends RST and skips TIME_WAIT.
                    let _ = socket2::SockRef::from(&c.stream).set_linger(Some(Duration::ZERO));
                    self.res.hangups_rst += 1;
                } else {
                    self.res.hangups_fin += 1;
                }
                self.res.fates[fate.index()].completed += 1;
            }
            Outcome::Failed { kind, msg } => self.count_failure(fate, kind, msg),
        }
        // Dropping the stream closes the socket.
    }

    /// Handles readiness of connection `key`.
    fn on_ready(&mut self, key: usize, r: Readiness) -> Result<(), Fatal> {
        let target = self.plan.target;
        let Some(c) = self.conns.get_mut(key) else {
            return Ok(());
        };
        if !c.connected {
            match net::connect_done(&c.stream, r) {
                Ok(true) => c.connected = true,
                Ok(false) => return Ok(()),
                Err(e) => {
                    let msg = net::describe_connect_error(&e, target);
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        return Err(Fatal(msg));
                    }
                    self.finish(
                        key,
                        Outcome::Failed {
                            kind: "connect".into(),
                            msg,
                        },
                    );
                    return Ok(());
                }
            }
        }
        if let Err(e) = net::flush(&mut c.stream, &mut c.out, &mut c.out_pos) {
            let msg = format!("sending to {target}: {e}");
            let kind = format!("{}: send failed", step_name(c));
            self.finish(key, Outcome::Failed { kind, msg });
            return Ok(());
        }
        let read = net::read_available(&mut c.stream, &mut c.inbuf, MAX_BUFFER, r);
        let now = Instant::now();
        let end = match read {
            Ok(ReadOutcome::Open) => None,
            Ok(ReadOutcome::Eof) => Some(false),
            Err(_) => Some(true),
        };
        let mut used = 0;
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return Ok(()); // finished while handling a message
            };
            let (range, n) = match split_frame(&c.inbuf[used..], MAX_FRAME) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let msg = format!("bad framing from {target}: {e}");
                    self.finish(
                        key,
                        Outcome::Failed {
                            kind: "framing".into(),
                            msg,
                        },
                    );
                    return Ok(());
                }
            };
            let msg = used + range.start..used + range.end;
            used += n;
            self.on_message(key, msg, now);
        }
        let Some(c) = self.conns.get_mut(key) else {
            return Ok(());
        };
        c.inbuf.drain(..used);
        if let Some(rst) = end {
            let outcome = match c.phase {
                Phase::Waiting { .. } => Outcome::Reaped { at: now, rst },
                Phase::Busy { .. } => {
                    let step = step_name(c);
                    Outcome::Failed {
                        kind: format!("{step}: connection closed by the server"),
                        msg: format!("{target} closed the connection while {step} was outstanding"),
                    }
                }
            };
            self.finish(key, outcome);
        }
        Ok(())
    }

    /// Handles one message of connection `key` (`msg` is its range in the input buffer).
    fn on_message(&mut self, key: usize, msg: std::ops::Range<usize>, now: Instant) {
        let plan = &self.plan;
        let c = &mut self.conns[key];
        let fate = c.fate;
        let queued = c.out.len();
        let Conn {
            proto, inbuf, out, ..
        } = c;
        let ev = match proto.handle(&inbuf[msg], &plan.client, out) {
            Ok(ev) => ev,
            Err(e) => {
                let kind = failure_kind(&e, c);
                let msg = crate::run::describe_client_error(&e, plan.target);
                self.finish(key, Outcome::Failed { kind, msg });
                return;
            }
        };
        if let Event::SessionReady { .. } = ev {
            c.ready += 1;
            self.res.sessions_opened += 1;
            if c.ready == 1 {
                stats::record(
                    &mut self.res.setup,
                    us(now.saturating_duration_since(c.planned)),
                );
            } else {
                stats::record(
                    &mut self.res.reopen,
                    us(now.saturating_duration_since(c.session_begun)),
                );
            }
        }
        let last_sent = match c.phase {
            Phase::Busy { sent } => sent,
            Phase::Waiting { last_sent, .. } => last_sent,
        };
        let next = next_step(fate, c.ready, ev);
        let cfg = &plan.client;
        match next {
            Next::Nothing => {}
            Next::BeginSession => {
                c.session_begun = now;
                self.res.sessions_started += 1;
                c.proto.begin_session(cfg, &mut c.out);
            }
            Next::Logoff => c.proto.logoff(&mut c.out),
            Next::OpenPipe => c.proto.open_pipe(&mut c.out),
            Next::WriteBind => {
                let mut rpc = RpcClient::new(
                    Interface::Srvsvc.syntax_id(),
                    &[Syntax::Ndr20],
                    RPC_MAX_FRAG,
                );
                let bind = rpc.bind(false);
                c.proto.write_pipe(&bind, &mut c.out);
                c.rpc = Some(rpc);
            }
            Next::ReadPipe => c.proto.read_pipe(u32::from(RPC_MAX_FRAG), &mut c.out),
            Next::ClosePipe => {
                if let Some(mut rpc) = c.rpc.take() {
                    if ev == Event::PipeRead {
                        if let Err(e) = rpc.handle_bind_response(c.proto.pipe_data()) {
                            let msg = format!("{}: srvsvc bind refused: {e}", plan.target);
                            self.finish(
                                key,
                                Outcome::Failed {
                                    kind: "READ: bad bind_ack".into(),
                                    msg,
                                },
                            );
                            return;
                        }
                    }
                }
                c.proto.close_pipe(&mut c.out);
            }
            Next::AwaitReap => {
                c.phase = Phase::Waiting {
                    last_sent,
                    last_recv: now,
                };
                c.deadline = now + plan.autodisconnect + plan.hold;
                self.timers.push(Reverse((c.deadline, key, c.serial)));
                return;
            }
            Next::Hangup => {
                let rst = c.rst;
                self.finish(key, Outcome::HungUp { rst });
                return;
            }
        }
        if c.out.len() > queued {
            // A request was queued (by the client itself or for the fate): send it, time it.
            let sent = Instant::now();
            c.phase = Phase::Busy { sent };
            c.deadline = sent + plan.request_timeout;
            self.timers.push(Reverse((c.deadline, key, c.serial)));
            if c.connected {
                if let Err(e) = net::flush(&mut c.stream, &mut c.out, &mut c.out_pos) {
                    let msg = format!("sending to {}: {e}", plan.target);
                    let kind = format!("{}: send failed", step_name(c));
                    self.finish(key, Outcome::Failed { kind, msg });
                }
            }
        }
    }
}

/// A finished churn run: what the generator measured and, with the embedded server, the
/// server's own figures once everything was reaped.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    /// The command line.
    pub command_line: Vec<String>,
    /// The server churned.
    pub target: SocketAddr,
    /// `true` when the server was the embedded one.
    pub embedded: bool,
    /// What was asked for.
    pub plan: ChurnPlan,
    /// What the generator measured.
    pub result: ChurnResult,
    /// The embedded server's `stats` after the run, once its connections, sessions and trees
    /// returned to zero or [`DRAIN_GRACE`] past the run's end.
    pub server_after: Option<Value>,
}

/// How long past the run the embedded server may take to drop its last connections.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The server counts that must return to zero once the churn has stopped.
pub const DRAINED_COUNTS: [&str; 5] = [
    "connections",
    "sessions",
    "trees",
    "logons_waiting",
    "client_memory_bytes",
];

impl ChurnReport {
    /// `true` when the generator saw no failure and the embedded server (if any) drained.
    pub fn ok(&self) -> bool {
        self.result.ok() && self.server_drained() != Some(false)
    }

    /// Whether the embedded server's counts returned to zero (`None` for an external server:
    /// `scripts/soak` checks that one).
    pub fn server_drained(&self) -> Option<bool> {
        let s = self.server_after.as_ref()?;
        Some(
            DRAINED_COUNTS
                .iter()
                .all(|k| s.get(*k).and_then(Value::as_u64) == Some(0)),
        )
    }

    /// Every figure as JSON.
    pub fn json(&self) -> Value {
        let mut v = self.result.json();
        let p = &self.plan;
        let extra = json!({
            "tool": "smb-loadgen churn",
            "version": env!("CARGO_PKG_VERSION"),
            "command_line": self.command_line,
            "target": self.target.to_string(),
            "embedded_server": self.embedded,
            "config": {
                "rate": p.rate,
                "duration_s": p.duration.as_secs_f64(),
                "autodisconnect_ms": p.autodisconnect.as_secs_f64() * 1000.0,
                "hold_ms": p.hold.as_secs_f64() * 1000.0,
                "request_timeout_ms": p.request_timeout.as_secs_f64() * 1000.0,
                "mix": p.mix.to_string(),
                "dialects": p.client.dialects,
            },
            "server_after": self.server_after,
            "server_drained": self.server_drained(),
            "ok": self.ok(),
        });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    /// A summary for a person.
    pub fn text(&self) -> String {
        let mut s = format!(
            "smb-loadgen churn against {}{}: {:.0} sessions/s for {:?}, autodisconnect {:?}, mix {}\n",
            self.target,
            if self.embedded { " (embedded smbcore)" } else { "" },
            self.plan.rate,
            self.plan.duration,
            self.plan.autodisconnect,
            self.plan.mix
        );
        let r = self.result.text();
        if let Some(a) = &self.server_after {
            let counts: Vec<String> = DRAINED_COUNTS
                .iter()
                .map(|k| format!("{k} {}", a.get(*k).unwrap_or(&Value::Null)))
                .collect();
            s += &r.replace(
                "result  ",
                &format!("server after the run  {}\nresult  ", counts.join(", ")),
            );
        } else {
            s += &r;
        }
        if self.result.ok() && !self.ok() {
            s += "(the embedded server did not return to zero)\n";
        }
        s
    }
}

/// Runs `smb-loadgen churn`: the plan from `args`, against `--target` or an embedded server.
pub fn run(args: &ChurnArgs) -> Result<ChurnReport, String> {
    let user = args.user.as_deref().zip(args.password.as_deref());
    let server = match args.target {
        Some(_) => None,
        None => Some(crate::start_embedded_server(
            Some(args.autodisconnect),
            2,
            args.server_threads,
            user,
            args.encrypt,
        )?),
    };
    let target = match (&server, args.target) {
        (Some(s), _) => s.local_addr(),
        (None, Some(t)) => t,
        (None, None) => unreachable!("no target means an embedded server"),
    };
    let dialects = crate::cli::parse_dialects(&args.dialect)?;
    let auth = crate::cli::auth_for(args.kerberos, &args.kerberos_service, user, &args.domain)?;
    let ciphers = crate::cli::ciphers_for(args.encrypt, args.cipher, &dialects)?;
    let plan = ChurnPlan {
        target,
        rate: args.rate,
        duration: args.duration,
        autodisconnect: args.autodisconnect,
        hold: args.hold,
        request_timeout: args.request_timeout,
        mix: args.mix.clone(),
        client: ClientConfig::new(&target.ip().to_string(), dialects, auth)
            .with_workstation("LOADGEN")
            .with_encryption(&ciphers, args.encrypt),
        progress_every: Some(args.progress_every).filter(|d| !d.is_zero()),
    };
    let result = Churn::new(plan.clone()).and_then(Churn::run);
    let server_after = server.as_ref().map(|s| {
        let until = Instant::now() + DRAIN_GRACE;
        loop {
            let st = smb_server::admin::stats_json(s.shared());
            let drained = DRAINED_COUNTS
                .iter()
                .all(|k| st.get(*k).and_then(Value::as_u64) == Some(0));
            if drained || Instant::now() >= until {
                break st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    if let Some(s) = server {
        s.shutdown();
    }
    let result = result.map_err(|e| e.0)?;
    let report = ChurnReport {
        command_line: std::env::args().collect(),
        target,
        embedded: args.target.is_none(),
        plan,
        result,
        server_after,
    };
    crate::report::write_file(args.json.as_deref(), |p| {
        crate::report::write_json(p, &report.json())
    })?;
    Ok(report)
}

/// `smb-loadgen churn`: exit status 0 when every connection met its fate and (embedded) the
/// server drained, 1 when some did not, 2 on usage or fatal errors.
pub fn main(args: &ChurnArgs) -> ExitCode {
    crate::report::exit_with(run(args).map(|r| (r.text(), r.ok())), "smb-loadgen churn")
}

/// The command of the request outstanding on `c`, for failure messages.
fn step_name(c: &Conn) -> &'static str {
    c.proto
        .outstanding()
        .map_or("connect", |s| s.command().name())
}

/// The failure-table key of a protocol error: `STEP: STATUS_NAME` or `STEP: what`.
fn failure_kind(e: &ClientError, c: &Conn) -> String {
    match e {
        ClientError::Status { step, status } => format!("{}: {status}", step.command().name()),
        ClientError::Wire(_) => format!("{}: malformed response", step_name(c)),
        ClientError::Auth(_) => "SESSION_SETUP: authentication".into(),
        ClientError::Unexpected(_) => format!("{}: unexpected response", step_name(c)),
        ClientError::BadDialect(_) => "NEGOTIATE: dialect not offered".into(),
        _ => format!("{}: {e}", step_name(c)),
    }
}

/// A per-connection ClientGuid.
fn client_guid(serial: u64) -> [u8; 16] {
    let mut g = *b"smb-churn\0\0\0\0\0\0\0";
    g[8..].copy_from_slice(&serial.to_le_bytes());
    g
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_prints_and_refuses_nonsense() {
        let m = Mix::parse(DEFAULT_MIX).unwrap();
        assert_eq!(m.to_string(), DEFAULT_MIX);
        assert_eq!(m.weight(Fate::Reopen), 2);
        let m = Mix::parse(" drop=1 , idle=4").unwrap();
        assert_eq!(m.to_string(), "idle=4,drop=1");
        assert_eq!(m.weight(Fate::Logoff), 0);
        for bad in [
            "",
            "idle=0",
            "idle",
            "idle=x",
            "nap=1",
            "idle=1,idle=2",
            "idle=-1",
        ] {
            assert!(Mix::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(Mix::parse("nap=1").unwrap_err().contains("pipe-unread"));
    }

    #[test]
    fn fates_are_dealt_in_proportion_and_interleaved() {
        let m = Mix::parse(DEFAULT_MIX).unwrap();
        let total: u32 = Fate::ALL.iter().map(|f| m.weight(*f)).sum();
        let dealt: Vec<Fate> = m.cycle().take(total as usize * 10).collect();
        for f in Fate::ALL {
            let n = dealt.iter().filter(|&&d| d == f).count() as u32;
            assert_eq!(n, m.weight(f) * 10, "{}", f.name());
        }
        // Every window of one period holds each fate exactly its weight.
        for w in dealt.windows(total as usize).step_by(total as usize) {
            for f in Fate::ALL {
                assert_eq!(w.iter().filter(|&&d| d == f).count() as u32, m.weight(f));
            }
        }
        // Interleaved, not in blocks: idle (weight 3 of 12) is in every 6 fates in a row.
        assert!(dealt.windows(6).all(|w| w.contains(&Fate::Idle)));
        // A single fate is dealt every time.
        let only: Vec<Fate> = Mix::parse("drop=5").unwrap().cycle().take(4).collect();
        assert_eq!(only, vec![Fate::Drop; 4]);
    }

    /// Plays a fate's script against the events a well-behaved server produces, the way the
    /// driver does, and returns the steps taken.
    fn play(fate: Fate) -> Vec<Next> {
        let ready_ev = Event::SessionReady {
            session_id: 1,
            tree_id: 1,
        };
        let ss1 = Event::Continue {
            step: Step::SessionSetup1,
            next: Step::SessionSetup2,
        };
        let ss2 = Event::Continue {
            step: Step::SessionSetup2,
            next: Step::TreeConnect,
        };
        let mut ready = 0;
        let mut steps = Vec::new();
        let mut ev = Event::Negotiated { dialect: 0x311 };
        for _ in 0..32 {
            if ev == ready_ev {
                ready += 1;
            }
            let next = next_step(fate, ready, ev);
            steps.push(next);
            ev = match next {
                Next::BeginSession => ss1,
                Next::Nothing if ev == ss1 => ss2,
                Next::Nothing if ev == ss2 => ready_ev,
                Next::Logoff => Event::LoggedOff,
                Next::OpenPipe => Event::PipeOpen,
                Next::WriteBind => Event::PipeWritten,
                Next::ReadPipe => Event::PipeRead,
                Next::ClosePipe => Event::PipeClosed,
                Next::AwaitReap | Next::Hangup => return steps,
                Next::Nothing => panic!("stuck after {ev:?}"),
            };
        }
        panic!("{} never ends: {steps:?}", fate.name())
    }

    #[test]
    fn every_fate_plays_out_as_documented() {
        use Next::*;
        let setup = [BeginSession, Nothing, Nothing];
        let with = |rest: &[Next]| [&setup[..], rest].concat();
        assert_eq!(play(Fate::Idle), with(&[AwaitReap]));
        assert_eq!(play(Fate::Logoff), with(&[Logoff, AwaitReap]));
        assert_eq!(
            play(Fate::Reopen),
            with(&[Logoff, BeginSession, Nothing, Nothing, AwaitReap])
        );
        assert_eq!(
            play(Fate::Pipe),
            with(&[OpenPipe, WriteBind, ReadPipe, ClosePipe, AwaitReap])
        );
        assert_eq!(
            play(Fate::PipeUnread),
            with(&[OpenPipe, WriteBind, ClosePipe, AwaitReap])
        );
        assert_eq!(play(Fate::Drop), with(&[Hangup]));
        assert_eq!(play(Fate::Abort), vec![BeginSession, Hangup]);
        for f in Fate::ALL {
            let steps = play(f);
            let begun = steps.iter().filter(|&&s| s == BeginSession).count() as u64;
            assert_eq!(begun, f.sessions(), "{}", f.name());
            assert_eq!(
                *steps.last().unwrap() == AwaitReap,
                f.awaits_reap(),
                "{}",
                f.name()
            );
        }
    }
}
