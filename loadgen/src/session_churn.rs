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

use hdrhistogram::Histogram;
use mio::{Events, Poll, Token};

use crate::net::{self, ReadOutcome};
use crate::progress::Progress;
use crate::proto::{ClientConfig, ClientConn, Event, Step};
use crate::run::{describe_client_error, Fatal};
use crate::scenario::{
    client_guid, open_connections, record_timeline, unix_us_now, us, Goal, Link, LinkError,
    LoadResult, NamedHists, SetupPlan,
};
use crate::stats::hist_to_hex;

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
    /// Position among the slots (open loop: this slot's sessions are `k * slots + pos`).
    pos: u64,
    /// Sessions due on this slot so far (open loop), and begun.
    due: u64,
    begun: u64,
}

/// A churn run: set up ([`SessionChurn::setup`]), then measure ([`SessionChurn::measure`]).
#[derive(Debug)]
pub struct SessionChurn {
    plan: SessionChurnPlan,
    poll: Poll,
    slots: Vec<Slot>,
    hists: NamedHists,
    timeline: Vec<Histogram<u64>>,
    res: LoadResult,
}

impl SessionChurn {
    /// Prepares a run.
    pub fn new(plan: SessionChurnPlan) -> Result<SessionChurn, Fatal> {
        let poll = Poll::new().map_err(|e| Fatal(format!("epoll: {e}")))?;
        Ok(SessionChurn {
            plan,
            poll,
            slots: Vec::new(),
            hists: NamedHists::default(),
            timeline: Vec::new(),
            res: LoadResult::default(),
        })
    }

    fn slot(link: Option<Link>, proto: ClientConn, pos: u64) -> Slot {
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
            pos,
            due: 0,
            begun: 0,
        }
    }

    /// Kept connections: opens them and NEGOTIATEs (fatal when none could be). With a new
    /// connection each time: prepares the slots.
    pub fn setup(&mut self, progress: &mut Progress) -> Result<(), Fatal> {
        let p = &self.plan;
        if p.new_connection {
            self.slots = (0..u64::from(p.connections))
                .map(|i| Self::slot(None, ClientConn::new(), i))
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
        let opened = open_connections(
            &setup,
            &mut self.poll,
            &mut self.hists,
            &mut self.res,
            progress,
        )?;
        // Tokens are the indexes of the connections asked for; keep them.
        for (i, o) in opened.into_iter().enumerate() {
            let mut s = match o {
                Some((link, proto)) => Self::slot(Some(link), proto, 0),
                None => {
                    let mut s = Self::slot(None, ClientConn::new(), 0);
                    s.dead = true;
                    s
                }
            };
            s.pos = i as u64;
            self.slots.push(s);
        }
        // Open loop: only live connections take sessions.
        let mut pos = 0;
        for s in self.slots.iter_mut().filter(|s| !s.dead) {
            s.pos = pos;
            pos += 1;
        }
        if pos == 0 {
            return Err(Fatal(format!(
                "no connection could be set up: {}",
                self.res
                    .first_error
                    .as_deref()
                    .unwrap_or("no connection was asked for")
            )));
        }
        Ok(())
    }

    /// Runs sessions until the duration has passed or the sessions were begun, and waits
    /// for the last ones to be logged off.
    pub fn measure(&mut self, progress: &mut Progress) -> Result<(), Fatal> {
        let mut events = Events::with_capacity(1024);
        let t0 = Instant::now();
        self.res.start_unix_us = unix_us_now();
        let end = self.plan.duration.map(|d| t0 + d);
        let count_mode = self.plan.sessions.is_some();
        let limit = self.plan.sessions.unwrap_or(u64::MAX);
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|&c| !self.slots[c].dead)
            .collect();
        let rate = self.plan.rate;
        let planned =
            |i: u64| -> Instant { t0 + Duration::from_secs_f64(i as f64 / rate.unwrap_or(1.0)) };
        match (self.plan.sessions, self.plan.duration) {
            (Some(n), _) => progress.phase("sessions", n),
            (None, Some(d)) => progress.phase("churn seconds", d.as_secs()),
            (None, None) => progress.phase("churn", 0),
        }
        let mut next_i = 0u64;
        let mut touched: Vec<usize> = live.clone();
        let mut last_done = t0;
        let mut last_check = t0;
        loop {
            let now = Instant::now();
            let in_time = |t: Instant| end.map_or(true, |e| t < e);
            if rate.is_some() {
                while next_i < limit && planned(next_i) <= now && in_time(planned(next_i)) {
                    let c = live[(next_i % live.len() as u64) as usize];
                    self.slots[c].due += 1;
                    touched.push(c);
                    next_i += 1;
                }
            }
            touched.sort_unstable();
            touched.dedup();
            let mut retry = Vec::new();
            for c in std::mem::take(&mut touched) {
                if self.pump(c, t0, now, in_time(now), limit, &mut next_i)? {
                    retry.push(c);
                }
            }
            touched = retry;
            let more_planned = if rate.is_some() {
                next_i < limit && in_time(planned(next_i))
            } else {
                next_i < limit && in_time(now)
            };
            let busy = self
                .slots
                .iter()
                .any(|s| s.busy || (rate.is_some() && !s.dead && s.begun < s.due));
            let any_live = self.slots.iter().any(|s| !s.dead);
            if (!more_planned && !busy) || !any_live {
                break;
            }
            if now.duration_since(last_check) >= Duration::from_millis(100) {
                last_check = now;
                self.expire(now, &mut touched);
                progress.set(if count_mode {
                    self.res.done
                } else {
                    now.duration_since(t0).as_secs()
                });
            }
            let mut wake = now + Duration::from_millis(100);
            if !touched.is_empty() {
                wake = now;
            }
            if rate.is_some() && more_planned {
                wake = wake.min(planned(next_i));
            }
            if let Some(e) = end.filter(|e| *e > now) {
                wake = wake.min(e);
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(Fatal(format!("epoll_wait: {e}")));
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                let c = ev.token().0;
                if c < self.slots.len() {
                    if self.on_ready(c, t0, now)? {
                        last_done = now;
                    }
                    touched.push(c);
                }
            }
        }
        for s in &self.slots {
            if s.dead && s.due > s.begun {
                let n = s.due - s.begun;
                self.res.fail(
                    n,
                    "not begun (connection lost)".into(),
                    format!("{n} sessions planned on a lost connection were not begun"),
                );
            }
        }
        progress.set(if count_mode {
            self.res.done
        } else {
            t0.elapsed().as_secs()
        });
        progress.finish();
        self.res.secs = last_done.duration_since(t0).as_secs_f64();
        self.res.end_unix_us = self.res.start_unix_us + us(last_done.duration_since(t0));
        for s in &mut self.slots {
            if let Some(l) = s.link.take() {
                l.close(self.poll.registry());
            }
        }
        Ok(())
    }

    /// Begins a session on slot `c` if it may; `true` when it should be tried again soon (a
    /// new connection failed at once).
    fn pump(
        &mut self,
        c: usize,
        t0: Instant,
        now: Instant,
        in_time: bool,
        limit: u64,
        begun_total: &mut u64,
    ) -> Result<bool, Fatal> {
        let live = self.slots.iter().filter(|s| !s.dead).count() as u64;
        let rate = self.plan.rate;
        let s = &mut self.slots[c];
        if s.busy || s.dead {
            return Ok(false);
        }
        let planned = match rate {
            Some(r) => {
                if s.begun >= s.due {
                    return Ok(false);
                }
                t0 + Duration::from_secs_f64((s.begun * live + s.pos) as f64 / r)
            }
            None => {
                if !in_time || *begun_total >= limit {
                    return Ok(false);
                }
                *begun_total += 1;
                now
            }
        };
        s.busy = true;
        s.begun += 1;
        s.planned = planned;
        s.began = Instant::now();
        s.step_start = planned;
        s.step_sent = s.began;
        self.res.sent += 1;
        if rate.is_some() {
            self.hists
                .record("lag", us(s.began.saturating_duration_since(planned)));
        }
        let target = self.plan.target;
        if self.plan.new_connection {
            let src = (!self.plan.source_ips.is_empty())
                .then(|| self.plan.source_ips[c % self.plan.source_ips.len()]);
            match Link::open(target, src, self.poll.registry(), Token(c)) {
                Ok(mut link) => {
                    let serial = self.plan.first_connection + self.res.connections;
                    self.res.connections += 1;
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
    fn on_ready(&mut self, c: usize, t0: Instant, now: Instant) -> Result<bool, Fatal> {
        let target = self.plan.target;
        let open = self.plan.rate.is_some();
        let new_conn = self.plan.new_connection;
        let step = self.step(c);
        let s = &mut self.slots[c];
        let Some(link) = s.link.as_mut() else {
            return Ok(false);
        };
        let read = match link.ready() {
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
                    self.hists.record($name, lat);
                    s.step_start = now;
                    s.step_sent = now;
                }};
            }
            match ev {
                Ok(Event::Negotiated { dialect }) => {
                    if self.res.dialect == 0 {
                        self.res.dialect = dialect;
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
                    self.hists.record("session", whole);
                    let main = if open {
                        let p = us(now.saturating_duration_since(s.planned));
                        self.hists.record("planned", p);
                        p
                    } else {
                        whole
                    };
                    let sec = now.saturating_duration_since(t0).as_secs() as usize;
                    record_timeline(&mut self.timeline, sec, main);
                    self.res.done += 1;
                    s.busy = false;
                    finished = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    let msg = describe_client_error(&e, target);
                    if e.is_auth_failure() {
                        return Err(Fatal(msg));
                    }
                    error = Some((format!("{step}: {e}"), msg));
                    break;
                }
            }
        }
        link.inbuf.drain(..used);
        if finished && new_conn {
            if let Some(l) = s.link.take() {
                l.close(self.poll.registry());
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
            l.close(self.poll.registry());
        }
        if !new_conn {
            s.dead = true;
        }
        if s.busy {
            s.busy = false;
            self.res.fail(1, kind, msg);
        } else {
            self.res.note_error(kind, msg);
        }
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

    /// What was measured. Histograms: `setup_*` (kept connections' connect + NEGOTIATE),
    /// the [`SESSION_STEPS`], `session` (begin to LOGOFF response), `planned` (open loop:
    /// planned begin to LOGOFF response) and `lag` (open loop: begin - planned begin).
    pub fn result(mut self) -> LoadResult {
        for n in SESSION_STEPS.iter().chain(&["session", "planned"]) {
            self.hists.get(n);
        }
        self.res.put_hists(&self.hists);
        self.res.timeline = self.timeline.iter().map(hist_to_hex).collect();
        self.res
    }
}
