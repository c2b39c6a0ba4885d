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
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use smb_wire::NtStatus;

use crate::driver::{self, Goal, Link, LinkError, Pace, Recorder, Scenario, Schedule, SetupPlan};
use crate::net::{ReadOutcome, Readiness};
use crate::progress::Progress;
use crate::proto::{ClientConfig, ClientConn, Event};
use crate::run::{describe_client_error, Fatal};
use crate::scenario::{us, LoadResult};

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
}

/// An echo run: set up ([`Echo::setup`]), then measure ([`Echo::measure`]).
#[derive(Debug)]
pub struct Echo {
    plan: EchoPlan,
    rec: Recorder,
    conns: Vec<Conn>,
}

impl Echo {
    /// Prepares a run.
    pub fn new(plan: EchoPlan) -> Result<Echo, Fatal> {
        Ok(Echo {
            plan,
            rec: Recorder::new()?,
            conns: Vec::new(),
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
        let opened = self.rec.open(&setup, progress)?;
        let credit_request = u16::try_from(p.queue_depth.max(16)).unwrap_or(u16::MAX);
        for (link, mut proto) in opened.into_iter().flatten() {
            proto.set_credit_request(credit_request);
            self.conns.push(Conn {
                link: Some(link),
                proto,
                inflight: VecDeque::new(),
            });
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
        let schedule = Schedule {
            duration: self.plan.duration,
            count: self.plan.requests,
            rate: self.plan.rate,
            phases: ["echo requests", "echo seconds", "echo"],
        };
        driver::measure(self, &schedule, progress)
    }

    /// Handles readiness of connection `c`; `true` when an ECHO was answered.
    fn handle_ready(&mut self, c: usize, r: Readiness, t0: Instant, now: Instant) -> bool {
        let target = self.plan.target;
        let open = self.plan.rate.is_some();
        let conn = &mut self.conns[c];
        let Some(link) = conn.link.as_mut() else {
            return false;
        };
        let read = match link.ready(r) {
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
                        self.rec.res.fail(
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
                    let service = us(now.saturating_duration_since(sent));
                    let planned = open.then_some(planned);
                    self.rec.record_done(t0, now, "service", service, planned);
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
        self.rec.res.max_credits = self
            .rec
            .res
            .max_credits
            .max(conn.proto.credits().available());
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
            l.close(self.rec.poll.registry());
        }
        if n > 0 {
            self.rec.res.fail(n, kind, msg);
        } else {
            self.rec.res.note_error(kind, msg);
        }
    }

    /// Fails the connections whose oldest ECHO waits longer than the request timeout.
    fn fail_late(&mut self, now: Instant) {
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
    pub fn result(self) -> LoadResult {
        self.rec.into_result(&["service", "planned"])
    }
}

impl Scenario for Echo {
    fn recorder(&mut self) -> &mut Recorder {
        &mut self.rec
    }

    fn slots(&self) -> usize {
        self.conns.len()
    }

    fn live(&self, c: usize) -> bool {
        self.conns[c].link.is_some()
    }

    fn busy(&self, c: usize) -> bool {
        self.live(c) && !self.conns[c].inflight.is_empty()
    }

    fn link(&mut self, c: usize) -> &mut Option<Link> {
        &mut self.conns[c].link
    }

    /// Sends what connection `c` may send now.
    fn pump(&mut self, c: usize, pace: &mut Pace) -> Result<bool, Fatal> {
        let q = self.plan.queue_depth as usize;
        let conn = &mut self.conns[c];
        let Some(link) = conn.link.as_mut() else {
            return Ok(false);
        };
        let mut any = false;
        while conn.inflight.len() < q {
            let Some(planned) = pace.next(c) else {
                break;
            };
            let Some(mid) = conn.proto.echo_pipelined(&mut link.out) else {
                self.rec.res.credit_waits += 1;
                break;
            };
            let sent = Instant::now();
            if pace.open_loop() {
                self.rec
                    .hists
                    .record("lag", us(sent.saturating_duration_since(planned)));
            }
            conn.inflight.push_back((mid, planned, sent));
            pace.begin(c);
            self.rec.res.sent += 1;
            any = true;
        }
        if any {
            if let Err(e) = link.flush() {
                let msg = format!("sending to {}: {e}", self.plan.target);
                self.lose(c, "ECHO: send failed".into(), msg);
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
        Ok(self.handle_ready(c, r, t0, now))
    }

    fn expire(&mut self, now: Instant, _touched: &mut Vec<usize>) {
        self.fail_late(now);
    }

    fn lost_unbegun(&mut self, n: u64) {
        self.rec.res.fail(
            n,
            "ECHO: not sent (connection lost)".into(),
            format!("{n} ECHOs planned on a lost connection were not sent"),
        );
    }
}
