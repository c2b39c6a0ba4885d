//! The churn scenario (`--scenario churn`): sessions set up and logged off in a loop, for
//! sessions per second and the latency of each step.
//!
//! # What it does
//!
//! - Kept connections (the default): opens `--connections` connections (at most
//!   `--concurrency` in setup at once), each NEGOTIATEs once; then, when all are ready (in
//!   every worker at once), each runs sessions one after another: SESSION_SETUP (NTLM
//!   NEGOTIATE), SESSION_SETUP (NTLM AUTHENTICATE), TREE_CONNECT `\\server\IPC$`, LOGOFF, and
//!   the next session on the same connection.
//! - `--new-connection-each-time`: `--connections` slots, each running sessions one after
//!   another, every session on a new TCP connection: connect, NEGOTIATE, SESSION_SETUP x2,
//!   TREE_CONNECT IPC$, LOGOFF, close (FIN).
//!
//! Closed loop (no `--rate`): a slot begins its next session as soon as the last one is
//! logged off, until `--duration` has passed or `--sessions` were begun. Open loop
//! (`--rate R`): session `i` is planned at `t0 + i / R` on slot `i mod C` and begins when its
//! time has come and its slot is free. Sessions begun are always finished (logged off) before
//! the run ends; the kept connections are then closed.
//!
//! # What is measured
//!
//! - `sessions/s`: sessions logged off divided by the time from the start to the last LOGOFF
//!   response.
//! - Per step (µs, HdrHistogram): `connect_negotiate` (new connection each time; with kept
//!   connections it is in the setup table, once per connection), `session_setup_1`,
//!   `session_setup_2`, `tree_connect`, `logoff`. Each step is timed from the previous
//!   response (when its request went out), the first step of a session from the session's
//!   planned start, as in the idle scenario.
//! - Whole session: `session` from its actual begin to its LOGOFF response, `planned` (open
//!   loop) from its planned start, and `lag` (open loop) the begin minus the plan (the slot was
//!   busy, or the generator late: its `epoll_wait` timeout has millisecond resolution). The reported session latency is `planned` in the open loop
//!   and `session` corrected with `record_correct` in the closed loop ([`crate::scenario`]).
//! - Failed sessions by kind (`STEP: STATUS`, `STEP: no response`, connection lost). A kept
//!   connection that fails is not replaced.
//!
//! It differs from `smb-loadgen churn` ([`crate::churn`], used by `scripts/soak`): that one
//! opens a new connection per session at a fixed rate and gives each a fate (left idle until
//! reaped, LOGOFF, pipe, dropped, ...) to check that a server cleans up after all of them over
//! hours; this one measures how fast a server sets sessions up and logs them off.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::Token;

use crate::driver::{self, Goal, Link, LinkError, Pace, Recorder, Scenario, Schedule, SetupPlan};
use crate::net::{self, ReadOutcome, Readiness};
use crate::progress::Progress;
use crate::proto::{ClientConfig, ClientConn, Event, Step};
use crate::run::Fatal;
use crate::scenario::{client_guid, us, LoadResult};

/// ClientGuid prefix of the churn connections.
const GUID_TAG: &[u8; 8] = b"smb-sess";

/// The step histograms of a session, in order.
pub const SESSION_STEPS: [&str; 5] = [
    "connect_negotiate",
    "session_setup_1",
    "session_setup_2",
    "tree_connect",
    "logoff",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct SessionChurnPlan {
    /// The server.
    pub target: SocketAddr,
    /// Kept connections, or slots with a new connection each time.
    pub connections: u32,
    /// A new TCP connection per session.
    pub new_connection: bool,
    /// How long to begin sessions (`None`: until `sessions` were begun).
    pub duration: Option<Duration>,
    /// Sessions to begin in all (`None`: until `duration` has passed).
    pub sessions: Option<u64>,
    /// Open loop: sessions per second over all slots.
    pub rate: Option<f64>,
    /// Kept connections in setup at once.
    pub concurrency: usize,
    /// Source addresses (round robin), or the kernel's choice.
    pub source_ips: Vec<Ipv4Addr>,
    /// Protocol settings.
    pub client: ClientConfig,
    /// Longest wait for a response.
    pub request_timeout: Duration,
    /// Index of the first connection (ClientGuids are unique across workers).
    pub first_connection: u64,
}

#[derive(Debug)]
struct Slot {
    link: Option<Link>,
    proto: ClientConn,
    /// A session is in progress.
    busy: bool,
    /// A kept connection that was lost.
    dead: bool,
    /// Timing origin of the outstanding step.
    step_start: Instant,
    /// When the outstanding request went out (for the timeout).
    step_sent: Instant,
    /// Planned and actual begin of the session in progress.
    planned: Instant,
    began: Instant,
}

/// A churn run: set up ([`SessionChurn::setup`]), then measure ([`SessionChurn::measure`]).
#[derive(Debug)]
pub struct SessionChurn {
    plan: SessionChurnPlan,
    rec: Recorder,
    slots: Vec<Slot>,
}

impl SessionChurn {
    /// Prepares a run.
    pub fn new(plan: SessionChurnPlan) -> Result<SessionChurn, Fatal> {
        Ok(SessionChurn {
            plan,
            rec: Recorder::new()?,
            slots: Vec::new(),
        })
    }

    fn slot(link: Option<Link>, proto: ClientConn) -> Slot {
        let now = Instant::now();
        Slot {
            link,
            proto,
            busy: false,
            dead: false,
            step_start: now,
            step_sent: now,
            planned: now,
            began: now,
        }
    }

    /// Kept connections: opens them and NEGOTIATEs (fatal when none could be). With a new
    /// connection each time: prepares the slots.
    pub fn setup(&mut self, progress: &mut Progress) -> Result<(), Fatal> {
        let p = &self.plan;
        if p.new_connection {
            self.slots = (0..u64::from(p.connections))
                .map(|_| Self::slot(None, ClientConn::new()))
                .collect();
            return Ok(());
        }
        let setup = SetupPlan {
            target: p.target,
            connections: p.connections as usize,
            first_serial: p.first_connection,
            guid_tag: GUID_TAG,
            source_ips: &p.source_ips,
            client: &p.client,
            concurrency: p.concurrency,
            timeout: p.request_timeout,
            goal: Goal::Negotiated,
        };
        let opened = self.rec.open(&setup, progress)?;
        // Tokens are the indexes of the connections asked for; keep them (only live ones
        // take sessions).
        for o in opened {
            self.slots.push(match o {
                Some((link, proto)) => Self::slot(Some(link), proto),
                None => Slot {
                    dead: true,
                    ..Self::slot(None, ClientConn::new())
                },
            });
        }
        Ok(())
    }

    /// Runs sessions until the duration has passed or the sessions were begun, and waits
    /// for the last ones to be logged off.
    pub fn measure(&mut self, progress: &mut Progress) -> Result<(), Fatal> {
        let schedule = Schedule {
            duration: self.plan.duration,
            count: self.plan.sessions,
            rate: self.plan.rate,
            phases: ["sessions", "churn seconds", "churn"],
        };
        driver::measure(self, &schedule, progress)
    }

    /// The command of the step outstanding on slot `c`.
    fn step(&self, c: usize) -> &'static str {
        let s = &self.slots[c];
        match s.proto.outstanding() {
            Some(st) => st.command().name(),
            None if s.link.as_ref().is_some_and(|l| !l.connected) => "connect",
            None => "NEGOTIATE",
        }
    }

    /// Handles readiness of slot `c`; `true` when a session was logged off.
    fn handle_ready(
        &mut self,
        c: usize,
        r: Readiness,
        t0: Instant,
        now: Instant,
    ) -> Result<bool, Fatal> {
        let target = self.plan.target;
        let open = self.plan.rate.is_some();
        let new_conn = self.plan.new_connection;
        let step = self.step(c);
        let s = &mut self.slots[c];
        let Some(link) = s.link.as_mut() else {
            return Ok(false);
        };
        let read = match link.ready(r) {
            Ok(None) => return Ok(false),
            Ok(Some(r)) => r,
            Err(LinkError::Connect(e)) => {
                let msg = net::describe_connect_error(&e, target);
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    return Err(Fatal(msg));
                }
                self.fail(c, "connect".into(), msg);
                return Ok(false);
            }
            Err(LinkError::Io(e)) => {
                self.fail(
                    c,
                    format!("{step}: connection reset"),
                    format!("{target}: connection lost while {step} was outstanding: {e}"),
                );
                return Ok(false);
            }
        };
        let mut used = 0;
        let mut finished = false;
        let mut error: Option<(String, String)> = None;
        loop {
            let range = match link.next_frame(&mut used) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    error = Some((format!("{step}: bad framing"), format!("{target}: {e}")));
                    break;
                }
            };
            let Link { inbuf, out, .. } = &mut *link;
            let ev = s.proto.handle(&inbuf[range], &self.plan.client, out);
            let lat = us(now.saturating_duration_since(s.step_start));
            // A step answered: its latency, and the next one timed from now.
            macro_rules! step_done {
                ($name:expr) => {{
                    self.rec.hists.record($name, lat);
                    s.step_start = now;
                    s.step_sent = now;
                }};
            }
            match ev {
                Ok(Event::Negotiated { dialect }) => {
                    if self.rec.res.dialect == 0 {
                        self.rec.res.dialect = dialect;
                    }
                    step_done!("connect_negotiate");
                    s.proto.begin_session(&self.plan.client, &mut link.out);
                }
                Ok(Event::Continue { step, .. }) => {
                    let name = match step {
                        Step::SessionSetup1 => "session_setup_1",
                        _ => "session_setup_2",
                    };
                    step_done!(name);
                }
                Ok(Event::SessionReady { .. }) => {
                    step_done!("tree_connect");
                    s.proto.logoff(&mut link.out);
                }
                Ok(Event::LoggedOff) => {
                    step_done!("logoff");
                    let whole = us(now.saturating_duration_since(s.began));
                    let planned = open.then_some(s.planned);
                    self.rec.record_done(t0, now, "session", whole, planned);
                    s.busy = false;
                    finished = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    error = Some(driver::client_failure(&e, step, target)?);
                    break;
                }
            }
        }
        link.inbuf.drain(..used);
        if finished && new_conn {
            if let Some(l) = s.link.take() {
                l.close(self.rec.poll.registry());
            }
            return Ok(true);
        }
        if error.is_none() && read == ReadOutcome::Eof {
            error = Some((
                format!("{step}: connection closed by the server"),
                format!("{target} closed the connection while {step} was outstanding"),
            ));
        }
        if error.is_none() {
            if let Err(e) = link.flush() {
                error = Some((
                    format!("{step}: send failed"),
                    format!("sending to {target}: {e}"),
                ));
            }
        }
        if let Some((kind, msg)) = error {
            self.fail(c, kind, msg);
        }
        Ok(finished)
    }

    /// The session in progress on slot `c` failed: counted, its connection closed (a kept
    /// connection is not replaced).
    fn fail(&mut self, c: usize, kind: String, msg: String) {
        let new_conn = self.plan.new_connection;
        let s = &mut self.slots[c];
        if let Some(l) = s.link.take() {
            l.close(self.rec.poll.registry());
        }
        if !new_conn {
            s.dead = true;
        }
        if s.busy {
            s.busy = false;
            self.rec.res.fail(1, kind, msg);
        } else {
            self.rec.res.note_error(kind, msg);
        }
    }

    /// What was measured. Histograms: `setup_*` (kept connections' connect + NEGOTIATE),
    /// the [`SESSION_STEPS`], `session` (begin to LOGOFF response), `planned` (open loop:
    /// planned begin to LOGOFF response) and `lag` (open loop: begin - planned begin).
    pub fn result(self) -> LoadResult {
        let mut always = SESSION_STEPS.to_vec();
        always.extend(["session", "planned"]);
        self.rec.into_result(&always)
    }
}

impl Scenario for SessionChurn {
    fn recorder(&mut self) -> &mut Recorder {
        &mut self.rec
    }

    fn slots(&self) -> usize {
        self.slots.len()
    }

    fn live(&self, c: usize) -> bool {
        !self.slots[c].dead
    }

    fn busy(&self, c: usize) -> bool {
        self.slots[c].busy
    }

    fn link(&mut self, c: usize) -> &mut Option<Link> {
        &mut self.slots[c].link
    }

    /// Begins a session on slot `c` if it may; `true` when it should be tried again soon (a
    /// new connection failed at once).
    fn pump(&mut self, c: usize, pace: &mut Pace) -> Result<bool, Fatal> {
        let s = &mut self.slots[c];
        if s.busy || s.dead {
            return Ok(false);
        }
        let Some(planned) = pace.next(c) else {
            return Ok(false);
        };
        pace.begin(c);
        s.busy = true;
        s.planned = planned;
        s.began = Instant::now();
        s.step_start = planned;
        s.step_sent = s.began;
        self.rec.res.sent += 1;
        if pace.open_loop() {
            self.rec
                .hists
                .record("lag", us(s.began.saturating_duration_since(planned)));
        }
        let target = self.plan.target;
        if self.plan.new_connection {
            let src = (!self.plan.source_ips.is_empty())
                .then(|| self.plan.source_ips[c % self.plan.source_ips.len()]);
            match Link::open(target, src, self.rec.poll.registry(), Token(c)) {
                Ok(mut link) => {
                    let serial = self.plan.first_connection + self.rec.res.connections;
                    self.rec.res.connections += 1;
                    let mut proto = ClientConn::new();
                    proto.negotiate(
                        &self.plan.client,
                        client_guid(GUID_TAG, serial),
                        &mut link.out,
                    );
                    s.proto = proto;
                    s.link = Some(link);
                }
                Err(e) => {
                    let msg = net::describe_connect_error(&e, target);
                    if e.raw_os_error() == Some(24) || e.kind() == io::ErrorKind::AddrNotAvailable {
                        return Err(Fatal(msg));
                    }
                    self.fail(c, "connect".into(), msg);
                    return Ok(true);
                }
            }
        } else if let Some(link) = s.link.as_mut() {
            s.proto.begin_session(&self.plan.client, &mut link.out);
            if let Err(e) = link.flush() {
                let msg = format!("sending to {target}: {e}");
                self.fail(c, "SESSION_SETUP: send failed".into(), msg);
            }
        }
        Ok(false)
    }

    fn on_ready(
        &mut self,
        c: usize,
        r: Readiness,
        t0: Instant,
        now: Instant,
    ) -> Result<bool, Fatal> {
        self.handle_ready(c, r, t0, now)
    }

    /// Fails the sessions whose step waits longer than the request timeout.
    fn expire(&mut self, now: Instant, touched: &mut Vec<usize>) {
        let t = self.plan.request_timeout;
        for c in 0..self.slots.len() {
            let s = &self.slots[c];
            if s.busy && now.duration_since(s.step_sent) > t {
                let step = self.step(c);
                let msg = format!("{}: no response to {step} within {t:?}", self.plan.target);
                self.fail(c, format!("{step}: no response"), msg);
                touched.push(c);
            }
        }
    }

    fn lost_unbegun(&mut self, n: u64) {
        self.rec.res.fail(
            n,
            "not begun (connection lost)".into(),
            format!("{n} sessions planned on a lost connection were not begun"),
        );
    }
}
