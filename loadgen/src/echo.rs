//! The echo scenario (`--scenario echo`): ECHO requests on kept connections, several in flight
//! on each, for requests per second and latency.
//!
//! # What it does
//!
//! 1. Opens `--connections` connections (at most `--concurrency` in setup at once); each does
//!    NEGOTIATE, SESSION_SETUP twice (anonymous or `--user`) and TREE_CONNECT IPC$. Their step
//!    latencies are reported as the setup table. The measurement starts when every connection
//!    is set up (or failed), in every worker at once.
//! 2. Sends ECHO (MS-SMB2 2.2.28) on every connection, up to `--queue-depth` in flight on each,
//!    as far as the credits the server granted allow: a request takes the next MessageId, and
//!    is held back while the client holds no credit ([`crate::proto::Credits`]; such waits are
//!    counted as `credit_waits`). Every request asks for `max(16, queue depth)` credits.
//!    - Closed loop (no `--rate`): a slot sends its next ECHO as soon as its last one is
//!      answered, until `--duration` has passed or `--requests` were sent.
//!    - Open loop (`--rate R`): ECHO `i` is planned at `t0 + i / R` on connection `i mod C`; it
//!      goes out when its time has come and the connection has room (queue depth, credits),
//!      and its latency is measured from its planned time.
//! 3. Waits for the answers in flight (at most `--request-timeout`) and closes the connections.
//!
//! # What is measured
//!
//! - `requests/s`: ECHOs answered with STATUS_SUCCESS divided by the time from the start of
//!   the measurement to the last answer.
//! - Latency, µs in an HdrHistogram (1 µs to 1 h, 3 digits): `service` is response minus
//!   send, per request; `planned` (open loop) is response minus planned send time. The
//!   reported latency is `planned` in the open loop and `service` corrected with
//!   `record_correct` in the closed loop ([`crate::scenario`] explains both). In the open loop
//!   `lag` (send minus planned send time) shows how late the generator itself sent: it sleeps
//!   in `epoll_wait`, whose timeout has millisecond resolution, so at low rates a request can
//!   go out up to 1 ms late (and is charged for it).
//! - Errors: ECHOs answered with an error status, not answered within `--request-timeout`, or
//!   lost with their connection (by kind, with the first in full).
//!
//! ECHO carries no session activity on smbcore (nor on Windows), so a server whose
//! autodisconnect is shorter than the run reaps the sessions and closes the connections: the
//! embedded server runs with autodisconnect off, and an external one needs its autodisconnect
//! above `--duration` (smbcore's default is 15 minutes).

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Poll};
use smb_wire::NtStatus;

use crate::net::ReadOutcome;
use crate::progress::Progress;
use crate::proto::{ClientConfig, ClientConn, Event};
use crate::run::{describe_client_error, Fatal};
use crate::scenario::{
    open_connections, record_timeline, unix_us_now, us, Goal, Link, LinkError, LoadResult,
    NamedHists, SetupPlan,
};
use crate::stats::hist_to_hex;

/// ClientGuid prefix of the echo connections.
const GUID_TAG: &[u8; 8] = b"smb-echo";

/// What to run.
#[derive(Debug, Clone)]
pub struct EchoPlan {
    /// The server.
    pub target: SocketAddr,
    /// Connections.
    pub connections: u32,
    /// ECHOs in flight per connection at most.
    pub queue_depth: u32,
    /// How long to send (`None`: until `requests` were sent).
    pub duration: Option<Duration>,
    /// ECHOs to send in all (`None`: until `duration` has passed).
    pub requests: Option<u64>,
    /// Open loop: ECHOs per second over all connections.
    pub rate: Option<f64>,
    /// Connections in setup at once.
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
struct Conn {
    link: Option<Link>,
    proto: ClientConn,
    /// MessageId, planned send time, send time of the ECHOs in flight, oldest first.
    inflight: VecDeque<(u64, Instant, Instant)>,
    /// Position among the live connections (open loop: this connection's ECHOs are the global
    /// ones `k * live + pos`).
    pos: u64,
    /// ECHOs due on this connection so far (open loop).
    due: u64,
    /// ECHOs sent on this connection.
    sent: u64,
}

/// An echo run: set up ([`Echo::setup`]), then measure ([`Echo::measure`]).
#[derive(Debug)]
pub struct Echo {
    plan: EchoPlan,
    poll: Poll,
    conns: Vec<Conn>,
    hists: NamedHists,
    timeline: Vec<Histogram<u64>>,
    res: LoadResult,
}

impl Echo {
    /// Prepares a run.
    pub fn new(plan: EchoPlan) -> Result<Echo, Fatal> {
        let poll = Poll::new().map_err(|e| Fatal(format!("epoll: {e}")))?;
        Ok(Echo {
            plan,
            poll,
            conns: Vec::new(),
            hists: NamedHists::default(),
            timeline: Vec::new(),
            res: LoadResult::default(),
        })
    }

    /// Opens and sets up every connection. Fatal when none could be set up.
    pub fn setup(&mut self, progress: &mut Progress) -> Result<(), Fatal> {
        let p = &self.plan;
        let setup = SetupPlan {
            target: p.target,
            connections: p.connections as usize,
            first_serial: p.first_connection,
            guid_tag: GUID_TAG,
            source_ips: &p.source_ips,
            client: &p.client,
            concurrency: p.concurrency,
            timeout: p.request_timeout,
            goal: Goal::SessionReady,
        };
        let opened = open_connections(
            &setup,
            &mut self.poll,
            &mut self.hists,
            &mut self.res,
            progress,
        )?;
        let credit_request = u16::try_from(p.queue_depth.max(16)).unwrap_or(u16::MAX);
        for (pos, (link, mut proto)) in opened.into_iter().flatten().enumerate() {
            proto.set_credit_request(credit_request);
            self.conns.push(Conn {
                link: Some(link),
                proto,
                inflight: VecDeque::new(),
                pos: pos as u64,
                due: 0,
                sent: 0,
            });
        }
        if self.conns.is_empty() {
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

    /// Connections set up.
    pub fn ready(&self) -> usize {
        self.conns.len()
    }

    /// Sends ECHOs until the duration has passed or the requests were sent, and waits for
    /// their answers.
    pub fn measure(&mut self, progress: &mut Progress) -> Result<(), Fatal> {
        let mut events = Events::with_capacity(1024);
        let t0 = Instant::now();
        self.res.start_unix_us = unix_us_now();
        let end = self.plan.duration.map(|d| t0 + d);
        let count_mode = self.plan.requests.is_some();
        let limit = self.plan.requests.unwrap_or(u64::MAX);
        let live = self.conns.len() as u64;
        let rate = self.plan.rate;
        let planned =
            |i: u64| -> Instant { t0 + Duration::from_secs_f64(i as f64 / rate.unwrap_or(1.0)) };
        match (self.plan.requests, self.plan.duration) {
            (Some(n), _) => progress.phase("echo requests", n),
            (None, Some(d)) => progress.phase("echo seconds", d.as_secs()),
            (None, None) => progress.phase("echo", 0),
        }
        // Open loop: the next global ECHO to plan. Closed loop: ECHOs sent so far.
        let mut next_i = 0u64;
        let mut touched: Vec<usize> = (0..self.conns.len()).collect();
        let mut last_response = t0;
        let mut last_check = t0;
        loop {
            let now = Instant::now();
            let in_time = |t: Instant| end.map_or(true, |e| t < e);
            if rate.is_some() {
                while next_i < limit && planned(next_i) <= now && in_time(planned(next_i)) {
                    let c = (next_i % live) as usize;
                    self.conns[c].due += 1;
                    touched.push(c);
                    next_i += 1;
                }
            }
            touched.sort_unstable();
            touched.dedup();
            for c in std::mem::take(&mut touched) {
                self.pump(c, t0, now, in_time(now), limit, &mut next_i);
            }
            let more_planned = if rate.is_some() {
                next_i < limit && in_time(planned(next_i))
            } else {
                next_i < limit && in_time(now)
            };
            let busy = self.conns.iter().any(|c| {
                c.link.is_some() && (!c.inflight.is_empty() || (rate.is_some() && c.sent < c.due))
            });
            let any_live = self.conns.iter().any(|c| c.link.is_some());
            if (!more_planned && !busy) || !any_live {
                break;
            }
            if now.duration_since(last_check) >= Duration::from_millis(100) {
                last_check = now;
                self.expire(now);
                progress.set(if count_mode {
                    self.res.done
                } else {
                    now.duration_since(t0).as_secs()
                });
            }
            let mut wake = now + Duration::from_millis(100);
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
                if c < self.conns.len() && self.on_ready(c, t0, now) {
                    last_response = now;
                }
                touched.push(c);
            }
        }
        // Open loop: ECHOs planned for connections that were lost were never sent.
        for c in &self.conns {
            if c.link.is_none() && c.due > c.sent {
                let n = c.due - c.sent;
                self.res.fail(
                    n,
                    "ECHO: not sent (connection lost)".into(),
                    format!("{n} ECHOs planned on a lost connection were not sent"),
                );
            }
        }
        progress.set(if count_mode {
            self.res.done
        } else {
            t0.elapsed().as_secs()
        });
        progress.finish();
        self.res.secs = last_response.duration_since(t0).as_secs_f64();
        self.res.end_unix_us = self.res.start_unix_us + us(last_response.duration_since(t0));
        for c in &mut self.conns {
            if let Some(l) = c.link.take() {
                l.close(self.poll.registry());
            }
        }
        Ok(())
    }

    /// Sends what connection `c` may send now.
    fn pump(
        &mut self,
        c: usize,
        t0: Instant,
        now: Instant,
        in_time: bool,
        limit: u64,
        sent_total: &mut u64,
    ) {
        let open = self.plan.rate;
        let q = self.plan.queue_depth as usize;
        let live = self.conns.len() as u64;
        let conn = &mut self.conns[c];
        let Some(link) = conn.link.as_mut() else {
            return;
        };
        let mut any = false;
        while conn.inflight.len() < q {
            let planned = match open {
                Some(r) => {
                    if conn.sent >= conn.due {
                        break;
                    }
                    let i = conn.sent * live + conn.pos;
                    t0 + Duration::from_secs_f64(i as f64 / r)
                }
                None => {
                    if !in_time || *sent_total >= limit {
                        break;
                    }
                    now
                }
            };
            let Some(mid) = conn.proto.echo_pipelined(&mut link.out) else {
                self.res.credit_waits += 1;
                break;
            };
            let sent = Instant::now();
            if open.is_some() {
                self.hists
                    .record("lag", us(sent.saturating_duration_since(planned)));
            }
            conn.inflight.push_back((mid, planned, sent));
            conn.sent += 1;
            self.res.sent += 1;
            if open.is_none() {
                *sent_total += 1;
            }
            any = true;
        }
        if any {
            if let Err(e) = link.flush() {
                let msg = format!("sending to {}: {e}", self.plan.target);
                self.lose(c, "ECHO: send failed".into(), msg);
            }
        }
    }

    /// Handles readiness of connection `c`; `true` when an ECHO was answered.
    fn on_ready(&mut self, c: usize, t0: Instant, now: Instant) -> bool {
        let target = self.plan.target;
        let open = self.plan.rate.is_some();
        let conn = &mut self.conns[c];
        let Some(link) = conn.link.as_mut() else {
            return false;
        };
        let read = match link.ready() {
            Ok(None) => return false,
            Ok(Some(r)) => r,
            Err(LinkError::Connect(e) | LinkError::Io(e)) => {
                self.lose(
                    c,
                    "ECHO: connection reset".into(),
                    format!("{target}: connection lost: {e}"),
                );
                return false;
            }
        };
        let mut used = 0;
        let mut answered = false;
        let mut lost: Option<(String, String)> = None;
        loop {
            let range = match link.next_frame(&mut used) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    lost = Some(("ECHO: bad framing".into(), format!("{target}: {e}")));
                    break;
                }
            };
            let Link { inbuf, out, .. } = &mut *link;
            match conn.proto.handle(&inbuf[range], &self.plan.client, out) {
                Ok(Event::EchoAnswered { message_id, status }) => {
                    let Some(i) = conn.inflight.iter().position(|e| e.0 == message_id) else {
                        continue;
                    };
                    let Some((_, planned, sent)) = conn.inflight.remove(i) else {
                        continue;
                    };
                    if status != NtStatus::SUCCESS {
                        self.res.fail(
                            1,
                            format!("ECHO: {status}"),
                            format!(
                                "{target}: ECHO failed with {status} (NTSTATUS 0x{:08X})",
                                status.0
                            ),
                        );
                        continue;
                    }
                    answered = true;
                    self.res.done += 1;
                    let service = us(now.saturating_duration_since(sent));
                    self.hists.record("service", service);
                    let main = if open {
                        let p = us(now.saturating_duration_since(planned));
                        self.hists.record("planned", p);
                        p
                    } else {
                        service
                    };
                    let sec = now.saturating_duration_since(t0).as_secs() as usize;
                    record_timeline(&mut self.timeline, sec, main);
                }
                Ok(Event::SessionClosed { .. }) => {
                    lost = Some((
                        "ECHO: session closed by the server".into(),
                        format!("{target} announced the session's end"),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    lost = Some((format!("ECHO: {e}"), describe_client_error(&e, target)));
                    break;
                }
            }
        }
        link.inbuf.drain(..used);
        self.res.max_credits = self.res.max_credits.max(conn.proto.credits().available());
        if lost.is_none() && read == ReadOutcome::Eof {
            lost = Some((
                "ECHO: connection closed by the server".into(),
                format!("{target} closed the connection"),
            ));
        }
        if let Some((kind, msg)) = lost {
            self.lose(c, kind, msg);
        }
        answered
    }

    /// Connection `c` is lost: its ECHOs in flight fail with `kind`.
    fn lose(&mut self, c: usize, kind: String, msg: String) {
        let conn = &mut self.conns[c];
        let n = conn.inflight.len() as u64;
        conn.inflight.clear();
        if let Some(l) = conn.link.take() {
            l.close(self.poll.registry());
        }
        if n > 0 {
            self.res.fail(n, kind, msg);
        } else {
            self.res.note_error(kind, msg);
        }
    }

    /// Fails the connections whose oldest ECHO waits longer than the request timeout.
    fn expire(&mut self, now: Instant) {
        let t = self.plan.request_timeout;
        for c in 0..self.conns.len() {
            let late = self.conns[c]
                .inflight
                .front()
                .is_some_and(|e| now.duration_since(e.2) > t);
            if late && self.conns[c].link.is_some() {
                let msg = format!("{}: no response to ECHO within {t:?}", self.plan.target);
                self.lose(c, "ECHO: no response".into(), msg);
            }
        }
    }

    /// What was measured. Histograms: `setup_*` (see [`crate::scenario::SETUP_STEPS`]),
    /// `service` (response - send), `planned` (open loop: response - planned send time), `lag`
    /// (open loop: send - planned send time, the generator's own delay).
    pub fn result(mut self) -> LoadResult {
        self.hists.get("service");
        self.hists.get("planned");
        self.res.put_hists(&self.hists);
        self.res.timeline = self.timeline.iter().map(hist_to_hex).collect();
        self.res
    }
}
