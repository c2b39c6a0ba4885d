//! The I/O side of the echo and churn scenarios: a client connection's socket and buffers
//! ([`Link`]), the setup of kept connections ([`open_connections`]), and the measurement loop
//! ([`measure`]) that paces requests or sessions over many connections, polls them with mio,
//! expires what waits too long, reports progress and times the run. Each scenario supplies
//! only what happens on one connection ([`Scenario`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use smb_wire::frame::split_frame;

use crate::net::{self, ReadOutcome, Readiness};
use crate::progress::Progress;
use crate::proto::{ClientConfig, ClientConn, ClientError, Event, Step};
use crate::run::{describe_client_error, Fatal};
use crate::scenario::{client_guid, record_timeline, unix_us_now, us, LoadResult, NamedHists};
use crate::stats::hist_to_hex;

/// Largest frame the client accepts.
pub(crate) const MAX_FRAME: usize = 1 << 20;
/// Most bytes buffered per connection.
pub(crate) const MAX_BUFFER: usize = 2 << 20;

/// A client connection's socket and buffers.
#[derive(Debug)]
pub(crate) struct Link {
    /// The socket (non-blocking, registered READABLE | WRITABLE).
    pub stream: TcpStream,
    /// The connect completed.
    pub connected: bool,
    /// Bytes to send; `out[out_pos..]` is still unsent.
    pub out: Vec<u8>,
    /// See `out`.
    pub out_pos: usize,
    /// Bytes received and not yet handled.
    pub inbuf: Vec<u8>,
}

/// Why a [`Link`] failed.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// The connect failed.
    Connect(io::Error),
    /// A send or receive failed (a reset, most often).
    Io(io::Error),
}

impl Link {
    /// Starts a connect to `target` from `source` and registers it as `token`.
    pub fn open(
        target: SocketAddr,
        source: Option<Ipv4Addr>,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Link> {
        let mut stream = net::connect(target, source)?;
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Link {
            stream,
            connected: false,
            out: Vec::with_capacity(256),
            out_pos: 0,
            inbuf: Vec::new(),
        })
    }

    /// On readiness: completes the connect, sends what waits, reads what arrived. `None`
    /// while the connect is still in progress.
    pub fn ready(&mut self, r: Readiness) -> Result<Option<ReadOutcome>, LinkError> {
        if !self.finish_connect(r).map_err(LinkError::Connect)? {
            return Ok(None);
        }
        self.flush().map_err(LinkError::Io)?;
        self.read(r).map(Some).map_err(LinkError::Io)
    }

    /// Completes the connect on readiness: `false` while it is still in progress, an error
    /// when it failed.
    pub fn finish_connect(&mut self, r: Readiness) -> io::Result<bool> {
        if !self.connected {
            self.connected = net::connect_done(&self.stream, r)?;
        }
        Ok(self.connected)
    }

    /// Reads what arrived into `inbuf` ([`net::read_available`]).
    pub fn read(&mut self, r: Readiness) -> io::Result<ReadOutcome> {
        net::read_available(&mut self.stream, &mut self.inbuf, MAX_BUFFER, r)
    }

    /// Sends as much of `out` as the socket takes (nothing before the connect completes).
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.connected {
            return Ok(());
        }
        net::flush(&mut self.stream, &mut self.out, &mut self.out_pos)
    }

    /// The next whole frame in `inbuf[*used..]`: the message's range in `inbuf`, and `used`
    /// moved past it.
    pub fn next_frame(&self, used: &mut usize) -> Result<Option<std::ops::Range<usize>>, String> {
        match split_frame(&self.inbuf[*used..], MAX_FRAME) {
            Ok(Some((range, n))) => {
                let r = *used + range.start..*used + range.end;
                *used += n;
                Ok(Some(r))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(format!("bad framing: {e}")),
        }
    }

    /// Deregisters and closes the socket (FIN).
    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }
}

/// A protocol error while `step` was outstanding: fatal when authentication failed (no
/// later attempt can succeed), else the failure's kind (`STEP: error`) and message.
pub(crate) fn client_failure(
    e: &ClientError,
    step: &str,
    target: SocketAddr,
) -> Result<(String, String), Fatal> {
    let msg = describe_client_error(e, target);
    if e.is_auth_failure() {
        return Err(Fatal(msg));
    }
    Ok((format!("{step}: {e}"), msg))
}

/// How far [`open_connections`] takes each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goal {
    /// NEGOTIATE done.
    Negotiated,
    /// A session at IPC$ (NEGOTIATE, SESSION_SETUP x2, TREE_CONNECT).
    SessionReady,
}

/// What [`open_connections`] needs.
#[derive(Debug, Clone)]
pub(crate) struct SetupPlan<'a> {
    pub target: SocketAddr,
    pub connections: usize,
    pub first_serial: u64,
    pub guid_tag: &'a [u8; 8],
    pub source_ips: &'a [Ipv4Addr],
    pub client: &'a ClientConfig,
    pub concurrency: usize,
    pub timeout: Duration,
    pub goal: Goal,
}

struct Pending {
    link: Link,
    proto: ClientConn,
    started: Instant,
    step_start: Instant,
}

/// Opens `plan.connections` connections registered in `poll` as tokens `0..n`, at most
/// `plan.concurrency` in setup at once, and takes each to `plan.goal`. Step latencies go to
/// `hists` as `setup_STEP` ([`crate::scenario::SETUP_STEPS`]: each step from the previous response, `total`
/// from the connect); failures to `res` (`setup_failed`). Returns each connection, `None` for
/// the failed ones. Fatal: the target refused the connection, authentication failed, no
/// descriptor or local port left.
pub(crate) fn open_connections(
    plan: &SetupPlan<'_>,
    poll: &mut Poll,
    hists: &mut NamedHists,
    res: &mut LoadResult,
    progress: &mut Progress,
) -> Result<Vec<Option<(Link, ClientConn)>>, Fatal> {
    let n = plan.connections;
    let target = plan.target;
    let mut out: Vec<Option<(Link, ClientConn)>> = (0..n).map(|_| None).collect();
    let mut pending: Vec<Option<Pending>> = (0..n).map(|_| None).collect();
    let mut events = Events::with_capacity(1024);
    let (mut started, mut finished, mut inflight) = (0usize, 0usize, 0usize);
    let mut last_check = Instant::now();
    progress.phase("setup", n as u64);
    let fail = |res: &mut LoadResult, kind: &str, msg: String| {
        res.setup_failed += 1;
        res.note_error(format!("setup: {kind}"), msg);
    };
    while finished < n {
        while started < n && inflight < plan.concurrency.max(1) {
            let c = started;
            started += 1;
            let src =
                (!plan.source_ips.is_empty()).then(|| plan.source_ips[c % plan.source_ips.len()]);
            match Link::open(target, src, poll.registry(), Token(c)) {
                Ok(mut link) => {
                    let mut proto = ClientConn::new();
                    let guid = client_guid(plan.guid_tag, plan.first_serial + c as u64);
                    proto.negotiate(plan.client, guid, &mut link.out);
                    let now = Instant::now();
                    pending[c] = Some(Pending {
                        link,
                        proto,
                        started: now,
                        step_start: now,
                    });
                    res.connections += 1;
                    inflight += 1;
                }
                Err(e) => {
                    let msg = net::describe_connect_error(&e, target);
                    if e.raw_os_error() == Some(24) || e.kind() == io::ErrorKind::AddrNotAvailable {
                        return Err(Fatal(msg));
                    }
                    fail(res, "connect", msg);
                    finished += 1;
                }
            }
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Fatal(format!("epoll_wait: {e}")));
            }
        }
        let now = Instant::now();
        for ev in events.iter() {
            let c = ev.token().0;
            let Some(p) = pending.get_mut(c).and_then(Option::as_mut) else {
                continue;
            };
            let step = |p: &Pending| {
                p.proto
                    .outstanding()
                    .map_or("connect", |s| s.command().name())
            };
            let read = match p.link.ready(Readiness::of(ev)) {
                Ok(None) => continue,
                Ok(Some(r)) => r,
                Err(LinkError::Connect(e)) => {
                    let msg = net::describe_connect_error(&e, target);
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        return Err(Fatal(msg));
                    }
                    fail(res, "connect", msg);
                    if let Some(p) = pending[c].take() {
                        p.link.close(poll.registry());
                    }
                    finished += 1;
                    inflight -= 1;
                    continue;
                }
                Err(LinkError::Io(e)) => {
                    let kind = format!("{}: {e}", step(p));
                    fail(res, &kind, format!("{target}: {e} during setup"));
                    if let Some(p) = pending[c].take() {
                        p.link.close(poll.registry());
                    }
                    finished += 1;
                    inflight -= 1;
                    continue;
                }
            };
            let mut used = 0;
            let mut done = false;
            let mut error: Option<(String, String)> = None;
            loop {
                let range = match p.link.next_frame(&mut used) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(("framing".into(), format!("{target}: {e}")));
                        break;
                    }
                };
                let Link { inbuf, out, .. } = &mut p.link;
                let ev = p.proto.handle(&inbuf[range], plan.client, out);
                let lat = us(now.saturating_duration_since(p.step_start));
                match ev {
                    Ok(Event::Negotiated { dialect }) => {
                        if res.dialect == 0 {
                            res.dialect = dialect;
                        }
                        hists.record("setup_connect_negotiate", lat);
                        p.step_start = now;
                        if plan.goal == Goal::Negotiated {
                            done = true;
                            break;
                        }
                        p.proto.begin_session(plan.client, &mut p.link.out);
                    }
                    Ok(Event::Continue { step, .. }) => {
                        let name = match step {
                            Step::SessionSetup1 => "setup_session_setup_1",
                            _ => "setup_session_setup_2",
                        };
                        hists.record(name, lat);
                        p.step_start = now;
                    }
                    Ok(Event::SessionReady { .. }) => {
                        hists.record("setup_tree_connect", lat);
                        hists.record("setup_total", us(now - p.started));
                        done = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        error = Some(client_failure(&e, step(p), target)?);
                        break;
                    }
                }
            }
            if error.is_none() && !done && read == ReadOutcome::Eof {
                let s = step(p);
                error = Some((
                    format!("{s}: connection closed by the server"),
                    format!("{target} closed the connection while {s} was outstanding"),
                ));
            }
            if error.is_none() {
                if let Err(e) = p.link.flush() {
                    error = Some((
                        format!("{}: send failed", step(p)),
                        format!("sending to {target}: {e}"),
                    ));
                }
            }
            if let Some((kind, msg)) = error {
                fail(res, &kind, msg);
                if let Some(p) = pending[c].take() {
                    p.link.close(poll.registry());
                }
                finished += 1;
                inflight -= 1;
            } else if done {
                if let Some(mut p) = pending[c].take() {
                    p.link.inbuf.drain(..used);
                    out[c] = Some((p.link, p.proto));
                    res.connections_ready += 1;
                }
                finished += 1;
                inflight -= 1;
            } else {
                p.link.inbuf.drain(..used);
            }
        }
        // Setup steps that never get an answer.
        if now.duration_since(last_check) >= Duration::from_millis(100) {
            last_check = now;
            for slot in &mut pending {
                let late = slot
                    .as_ref()
                    .is_some_and(|p| now.duration_since(p.step_start) > plan.timeout);
                if late {
                    if let Some(p) = slot.take() {
                        let s = p
                            .proto
                            .outstanding()
                            .map_or("connect", |s| s.command().name());
                        fail(
                            res,
                            &format!("{s}: no response"),
                            format!("{target}: no response to {s} within {:?}", plan.timeout),
                        );
                        p.link.close(poll.registry());
                        finished += 1;
                        inflight -= 1;
                    }
                }
            }
        }
        progress.set(res.connections_ready);
    }
    progress.finish();
    Ok(out)
}

/// What a scenario records while it runs: its poll instance (its connections are registered
/// there with their index as token), the histograms by name, the main latency per second and
/// the counts.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// The connections' poll instance.
    pub poll: Poll,
    /// Histograms by name (µs).
    pub hists: NamedHists,
    /// The main latency per second of the measurement.
    pub timeline: Vec<Histogram<u64>>,
    /// Counts, errors and timing.
    pub res: LoadResult,
}

impl Recorder {
    /// An empty recorder with a new poll instance.
    pub fn new() -> Result<Recorder, Fatal> {
        let poll = Poll::new().map_err(|e| Fatal(format!("epoll: {e}")))?;
        Ok(Recorder {
            poll,
            hists: NamedHists::default(),
            timeline: Vec::new(),
            res: LoadResult::default(),
        })
    }

    /// Opens and sets up the kept connections of `setup` ([`open_connections`]). Fatal when
    /// none could be set up.
    pub fn open(
        &mut self,
        setup: &SetupPlan<'_>,
        progress: &mut Progress,
    ) -> Result<Vec<Option<(Link, ClientConn)>>, Fatal> {
        let opened = open_connections(
            setup,
            &mut self.poll,
            &mut self.hists,
            &mut self.res,
            progress,
        )?;
        if opened.iter().all(Option::is_none) {
            return Err(Fatal(format!(
                "no connection could be set up: {}",
                self.res
                    .first_error
                    .as_deref()
                    .unwrap_or("no connection was asked for")
            )));
        }
        Ok(opened)
    }

    /// Records a request or session completed at `now`: `raw_us` as `raw_name`, and in the
    /// open loop (`planned` given) its latency from the plan as `planned`; the timeline gets
    /// the latter in the open loop, `raw_us` in the closed loop.
    pub fn record_done(
        &mut self,
        t0: Instant,
        now: Instant,
        raw_name: &str,
        raw_us: u64,
        planned: Option<Instant>,
    ) {
        self.hists.record(raw_name, raw_us);
        let main = match planned {
            Some(p) => {
                let p = us(now.saturating_duration_since(p));
                self.hists.record("planned", p);
                p
            }
            None => raw_us,
        };
        let sec = now.saturating_duration_since(t0).as_secs() as usize;
        record_timeline(&mut self.timeline, sec, main);
        self.res.done += 1;
    }

    /// What was measured, with the histograms `always` present even when empty.
    pub fn into_result(mut self, always: &[&str]) -> LoadResult {
        for n in always {
            self.hists.get(n);
        }
        self.res.put_hists(&self.hists);
        self.res.timeline = self.timeline.iter().map(hist_to_hex).collect();
        self.res
    }
}

/// What the measurement loop runs: how long, how many, how fast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// How long to begin requests or sessions (`None`: until `count` were begun).
    pub duration: Option<Duration>,
    /// Requests or sessions to begin in all (`None`: until `duration` has passed).
    pub count: Option<u64>,
    /// Open loop: requests or sessions per second over all live connections.
    pub rate: Option<f64>,
    /// Progress phase names: with a count, with a duration, with neither.
    pub phases: [&'static str; 3],
}

/// The pacing of a measurement, as the scenario sees it while it sends on connection `c`
/// ([`Pace::next`], [`Pace::begin`]).
///
/// Open loop (`rate` R): request or session `i` is planned at `t0 + i / R` on the live
/// connection `i mod L`, so the `k`-th one of the connection at position `p` is
/// `k * L + p`. Closed loop: each connection begins its next one as soon as it may, while the
/// run is in time and under its count.
#[derive(Debug)]
pub(crate) struct Pace {
    /// Start of the measurement.
    pub t0: Instant,
    rate: Option<f64>,
    end: Option<Instant>,
    limit: u64,
    /// The connections taking part, in round-robin order.
    live: Vec<usize>,
    /// Position of each connection in `live`.
    pos: Vec<u64>,
    /// Planned on each connection so far (open loop).
    due: Vec<u64>,
    /// Begun on each connection.
    begun: Vec<u64>,
    /// Open loop: the next one to plan. Closed loop: begun so far.
    next_i: u64,
    now: Instant,
}

impl Pace {
    fn new(t0: Instant, s: &Schedule, live: Vec<usize>, slots: usize) -> Pace {
        let mut pos = vec![0; slots];
        for (p, &c) in live.iter().enumerate() {
            pos[c] = p as u64;
        }
        Pace {
            t0,
            rate: s.rate,
            end: s.duration.map(|d| t0 + d),
            limit: s.count.unwrap_or(u64::MAX),
            live,
            pos,
            due: vec![0; slots],
            begun: vec![0; slots],
            next_i: 0,
            now: t0,
        }
    }

    /// Open loop: the planned time of the `i`-th one.
    fn planned(&self, i: u64) -> Instant {
        self.t0 + Duration::from_secs_f64(i as f64 / self.rate.unwrap_or(1.0))
    }

    fn in_time(&self, t: Instant) -> bool {
        self.end.map_or(true, |e| t < e)
    }

    /// The open loop is in use.
    pub fn open_loop(&self) -> bool {
        self.rate.is_some()
    }

    /// The planned start of connection `c`'s next request or session when it may begin one
    /// now (open loop: its time has come; closed loop: the run is in time and under its
    /// count); the loop's current time in the closed loop.
    pub fn next(&self, c: usize) -> Option<Instant> {
        match self.rate {
            Some(r) => (self.begun[c] < self.due[c]).then(|| {
                let i = self.begun[c] * self.live.len() as u64 + self.pos[c];
                self.t0 + Duration::from_secs_f64(i as f64 / r)
            }),
            None => (self.in_time(self.now) && self.next_i < self.limit).then_some(self.now),
        }
    }

    /// Counts connection `c`'s next request or session as begun.
    pub fn begin(&mut self, c: usize) {
        self.begun[c] += 1;
        if self.rate.is_none() {
            self.next_i += 1;
        }
    }

    /// Open loop: plans what is due by `now` on its connections, which go to `touched`.
    fn plan_due(&mut self, touched: &mut Vec<usize>) {
        if self.rate.is_none() {
            return;
        }
        while self.next_i < self.limit
            && self.planned(self.next_i) <= self.now
            && self.in_time(self.planned(self.next_i))
        {
            let c = self.live[(self.next_i % self.live.len() as u64) as usize];
            self.due[c] += 1;
            touched.push(c);
            self.next_i += 1;
        }
    }

    /// More is to be begun later.
    fn more_planned(&self) -> bool {
        if self.rate.is_some() {
            self.next_i < self.limit && self.in_time(self.planned(self.next_i))
        } else {
            self.next_i < self.limit && self.in_time(self.now)
        }
    }

    /// Open loop: connection `c` has been planned more than it has begun.
    fn owes(&self, c: usize) -> bool {
        self.rate.is_some() && self.begun[c] < self.due[c]
    }
}

/// What a scenario does on its connections while [`measure`] drives them. Connection `c` is
/// registered in the recorder's poll as token `c`.
pub(crate) trait Scenario {
    /// The recorder.
    fn recorder(&mut self) -> &mut Recorder;
    /// Connections (slots), live or not.
    fn slots(&self) -> usize;
    /// Slot `c` still takes part (its kept connection is not lost).
    fn live(&self, c: usize) -> bool;
    /// Slot `c` waits for a response.
    fn busy(&self, c: usize) -> bool;
    /// Slot `c`'s socket, if open (closed at the end of the run).
    fn link(&mut self, c: usize) -> &mut Option<Link>;
    /// Begins what slot `c` may begin now ([`Pace::next`], [`Pace::begin`]); `true` when it
    /// should be tried again at once.
    fn pump(&mut self, c: usize, pace: &mut Pace) -> Result<bool, Fatal>;
    /// Handles readiness of slot `c`; `true` when a request or session completed.
    fn on_ready(
        &mut self,
        c: usize,
        r: Readiness,
        t0: Instant,
        now: Instant,
    ) -> Result<bool, Fatal>;
    /// Fails what waits longer than the request timeout; slots to pump again go to `touched`.
    fn expire(&mut self, now: Instant, touched: &mut Vec<usize>);
    /// Counts `n` planned on a slot that was lost, never begun.
    fn lost_unbegun(&mut self, n: u64);
}

/// Runs the measurement of `s`: begins requests or sessions as `schedule` says, on its live
/// slots (at once, in every worker, after the setup), until the duration has passed or the
/// count was begun, and waits for those in progress. Records the start, the time of the last
/// completion and the progress; closes every connection at the end.
pub(crate) fn measure(
    s: &mut impl Scenario,
    schedule: &Schedule,
    progress: &mut Progress,
) -> Result<(), Fatal> {
    let mut events = Events::with_capacity(1024);
    let t0 = Instant::now();
    s.recorder().res.start_unix_us = unix_us_now();
    let live: Vec<usize> = (0..s.slots()).filter(|&c| s.live(c)).collect();
    let mut touched = live.clone();
    let mut pace = Pace::new(t0, schedule, live, s.slots());
    let [by_count, by_time, neither] = schedule.phases;
    match (schedule.count, schedule.duration) {
        (Some(n), _) => progress.phase(by_count, n),
        (None, Some(d)) => progress.phase(by_time, d.as_secs()),
        (None, None) => progress.phase(neither, 0),
    }
    let count_mode = schedule.count.is_some();
    let mut last_done = t0;
    let mut last_check = t0;
    loop {
        let now = Instant::now();
        pace.now = now;
        pace.plan_due(&mut touched);
        touched.sort_unstable();
        touched.dedup();
        let mut retry = Vec::new();
        for c in std::mem::take(&mut touched) {
            if s.pump(c, &mut pace)? {
                retry.push(c);
            }
        }
        touched = retry;
        let more_planned = pace.more_planned();
        let busy = (0..s.slots()).any(|c| s.busy(c) || (s.live(c) && pace.owes(c)));
        let any_live = (0..s.slots()).any(|c| s.live(c));
        if (!more_planned && !busy) || !any_live {
            break;
        }
        if now.duration_since(last_check) >= Duration::from_millis(100) {
            last_check = now;
            s.expire(now, &mut touched);
            let done = s.recorder().res.done;
            progress.set(if count_mode {
                done
            } else {
                now.duration_since(t0).as_secs()
            });
        }
        let mut wake = now + Duration::from_millis(100);
        if !touched.is_empty() {
            wake = now;
        }
        if pace.open_loop() && more_planned {
            wake = wake.min(pace.planned(pace.next_i));
        }
        if let Some(e) = pace.end.filter(|e| *e > now) {
            wake = wake.min(e);
        }
        let timeout = wake.saturating_duration_since(Instant::now());
        if let Err(e) = s.recorder().poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Fatal(format!("epoll_wait: {e}")));
            }
        }
        let now = Instant::now();
        for ev in events.iter() {
            let c = ev.token().0;
            if c < s.slots() {
                if s.on_ready(c, Readiness::of(ev), t0, now)? {
                    last_done = now;
                }
                touched.push(c);
            }
        }
    }
    // Open loop: what was planned for connections that were lost was never begun.
    for c in 0..s.slots() {
        if !s.live(c) && pace.due[c] > pace.begun[c] {
            s.lost_unbegun(pace.due[c] - pace.begun[c]);
        }
    }
    let done = s.recorder().res.done;
    progress.set(if count_mode {
        done
    } else {
        t0.elapsed().as_secs()
    });
    progress.finish();
    let res = &mut s.recorder().res;
    res.secs = last_done.duration_since(t0).as_secs_f64();
    res.end_unix_us = res.start_unix_us + us(last_done.duration_since(t0));
    for c in 0..s.slots() {
        if let Some(l) = s.link(c).take() {
            l.close(s.recorder().poll.registry());
        }
    }
    Ok(())
}
