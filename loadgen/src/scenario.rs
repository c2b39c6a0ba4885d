//! What the echo ([`crate::echo`]) and churn ([`crate::session_churn`]) scenarios share
//! besides their I/O loop (the `driver` module): the mergeable result of one process
//! ([`LoadResult`]), the coordinated-omission correction ([`Correction`]), and worker
//! processes (`WorkerSet`).
//!
//! # Coordinated omission
//!
//! A generator that waits for a response before sending the next request stops sending while
//! the server stalls, so it records one slow sample where a steady stream of users would have
//! seen many: its percentiles omit exactly the bad moments. Two remedies, one per loop:
//!
//! - **Open loop** (`--rate R`): request `i` is planned at `t0 + i / R` before the run, and its
//!   latency is measured from that planned time, not from when it could actually be sent. A
//!   request held back by a stalled server (or a full queue, or a busy generator) is charged
//!   for the wait. Nothing is added afterwards.
//! - **Closed loop** (no `--rate`): every in-flight slot sends its next request when the last
//!   one is answered. Latency is measured from the send, and corrected as HdrHistogram's
//!   `record_correct(value, expected_interval)` does: a sample `v` above the expected interval
//!   `e` adds the samples `v - e`, `v - 2e`, ... down to `e` (the requests a steady slot would
//!   have sent meanwhile). `e` is `--expected-interval`, or by default the median latency of
//!   the run (a slot's interval between requests when the server does not stall). The
//!   uncorrected figures are reported beside the corrected ones.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::progress::Progress;
use crate::stats::{self, hist_from_hex, hist_to_hex, new_hist};

/// The setup steps of a kept connection, as histogram names (`setup_` + name in
/// [`LoadResult::hists`]).
pub const SETUP_STEPS: [&str; 5] = [
    "connect_negotiate",
    "session_setup_1",
    "session_setup_2",
    "tree_connect",
    "total",
];

/// Microseconds of a duration.
pub(crate) fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Now as Unix microseconds.
pub(crate) fn unix_us_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, us)
}

/// A per-connection ClientGuid.
pub(crate) fn client_guid(tag: &[u8; 8], serial: u64) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[..8].copy_from_slice(tag);
    g[8..].copy_from_slice(&serial.to_le_bytes());
    g
}

/// What one process of an echo or churn run measured; merged across workers. Counts are of
/// requests (echo) or sessions (churn).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LoadResult {
    /// Connections opened (churn with a new connection each time: one per session).
    pub connections: u64,
    /// Kept connections set up before the measurement.
    pub connections_ready: u64,
    /// Kept connections whose setup failed.
    pub setup_failed: u64,
    /// Requests sent (echo) or sessions begun (churn).
    pub sent: u64,
    /// Requests answered with success (echo) or sessions logged off (churn).
    pub done: u64,
    /// Requests or sessions that failed (error status, no response, connection lost).
    pub failed: u64,
    /// Failures by kind (`STEP: STATUS` or `STEP: what happened`).
    pub errors: BTreeMap<String, u64>,
    /// The first failure, in full.
    pub first_error: Option<String>,
    /// The negotiated dialect (of the first connection).
    pub dialect: u16,
    /// Times a request had room in the queue but no credit (echo).
    pub credit_waits: u64,
    /// Most credits a connection held after a response (echo).
    pub max_credits: u64,
    /// Wall clock (Unix µs) when the measurement started.
    pub start_unix_us: u64,
    /// Wall clock (Unix µs) of the last response measured.
    pub end_unix_us: u64,
    /// Measurement length on the monotonic clock, seconds (max over workers).
    pub secs: f64,
    /// Histograms by name, µs, hex V2 (see each scenario for the names).
    pub hists: BTreeMap<String, String>,
    /// The main latency per second of the measurement (index = second), hex V2: from the plan
    /// in the open loop, uncorrected in the closed loop.
    pub timeline: Vec<String>,
}

impl LoadResult {
    /// Counts a failure of `n` requests or sessions.
    pub fn fail(&mut self, n: u64, kind: String, msg: String) {
        if n == 0 {
            return;
        }
        self.failed += n;
        *self.errors.entry(kind).or_insert(0) += n;
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }

    /// Counts an error that is not one request's or session's (a kept connection's setup).
    pub fn note_error(&mut self, kind: String, msg: String) {
        *self.errors.entry(kind).or_insert(0) += 1;
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }

    /// Stores decoded histograms.
    pub fn put_hists(&mut self, hists: &NamedHists) {
        for (k, h) in &hists.0 {
            self.hists.insert(k.clone(), hist_to_hex(h));
        }
    }

    /// The histograms, decoded.
    pub fn named_hists(&self) -> Result<NamedHists, String> {
        let mut out = NamedHists::default();
        for (k, v) in &self.hists {
            out.0.insert(k.clone(), hist_from_hex(v)?);
        }
        Ok(out)
    }

    /// The timeline, decoded.
    pub fn timeline_hists(&self) -> Result<Vec<Histogram<u64>>, String> {
        self.timeline.iter().map(|s| hist_from_hex(s)).collect()
    }

    /// Merges another process's result into this one.
    pub fn merge(&mut self, o: &LoadResult) -> Result<(), String> {
        let mut h = self.named_hists()?;
        h.add(&o.named_hists()?);
        self.put_hists(&h);
        let mut t = self.timeline_hists()?;
        for (i, x) in o.timeline_hists()?.into_iter().enumerate() {
            if i < t.len() {
                let _ = t[i].add(&x);
            } else {
                t.push(x);
            }
        }
        self.timeline = t.iter().map(hist_to_hex).collect();
        self.connections += o.connections;
        self.connections_ready += o.connections_ready;
        self.setup_failed += o.setup_failed;
        self.sent += o.sent;
        self.done += o.done;
        self.failed += o.failed;
        for (k, n) in &o.errors {
            *self.errors.entry(k.clone()).or_insert(0) += n;
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
        if self.dialect == 0 {
            self.dialect = o.dialect;
        }
        self.credit_waits += o.credit_waits;
        self.max_credits = self.max_credits.max(o.max_credits);
        if o.start_unix_us != 0 && (self.start_unix_us == 0 || o.start_unix_us < self.start_unix_us)
        {
            self.start_unix_us = o.start_unix_us;
        }
        self.end_unix_us = self.end_unix_us.max(o.end_unix_us);
        self.secs = self.secs.max(o.secs);
        Ok(())
    }

    /// Seconds of the measurement: from the first start to the last response over all
    /// workers (wall clock), or the monotonic length of a single process.
    pub fn span_secs(&self) -> f64 {
        let span = self.end_unix_us.saturating_sub(self.start_unix_us);
        if span > 0 && self.secs > 0.0 {
            (span as f64 / 1e6).max(self.secs)
        } else {
            self.secs
        }
    }

    /// Completed requests or sessions per second.
    pub fn per_sec(&self) -> f64 {
        let s = self.span_secs();
        if s > 0.0 {
            self.done as f64 / s
        } else {
            0.0
        }
    }
}

/// Histograms by name (µs).
#[derive(Debug, Clone, Default)]
pub struct NamedHists(pub BTreeMap<String, Histogram<u64>>);

impl NamedHists {
    /// The histogram `name`, created empty on first use.
    pub fn get(&mut self, name: &str) -> &mut Histogram<u64> {
        self.0.entry(name.to_string()).or_insert_with(new_hist)
    }

    /// Records `us` into `name`.
    pub fn record(&mut self, name: &str, us: u64) {
        stats::record(self.get(name), us);
    }

    /// The histogram `name`, or an empty one.
    pub fn or_empty(&self, name: &str) -> Histogram<u64> {
        self.0.get(name).cloned().unwrap_or_else(new_hist)
    }

    /// Adds `other` into `self`, name by name.
    pub fn add(&mut self, other: &NamedHists) {
        for (k, h) in &other.0 {
            let _ = self.get(k).add(h);
        }
    }
}

/// Records `us` into the histogram of second `sec` of a timeline.
pub(crate) fn record_timeline(t: &mut Vec<Histogram<u64>>, sec: usize, us: u64) {
    let sec = sec.min(86_400);
    while t.len() <= sec {
        t.push(new_hist());
    }
    stats::record(&mut t[sec], us);
}

/// How the main latency of a run is corrected for coordinated omission (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Correction {
    /// Open loop: measured from each request's planned send time at this rate per second.
    PlannedSendTime {
        /// Requests (or sessions) per second.
        rate: f64,
    },
    /// Closed loop: `record_correct` with this expected interval.
    ExpectedInterval {
        /// The interval, µs.
        interval_us: u64,
        /// `true` when it came from `--expected-interval`, `false` for the median.
        given: bool,
    },
}

impl Correction {
    /// The correction of a run: open loop with `rate`, else closed loop with `given` or the
    /// median of `raw`.
    pub fn choose(rate: Option<f64>, given: Option<Duration>, raw: &Histogram<u64>) -> Self {
        match (rate, given) {
            (Some(rate), _) => Correction::PlannedSendTime { rate },
            (None, Some(d)) => Correction::ExpectedInterval {
                interval_us: us(d).max(1),
                given: true,
            },
            (None, None) => Correction::ExpectedInterval {
                interval_us: if raw.is_empty() {
                    0
                } else {
                    raw.value_at_quantile(0.5).max(1)
                },
                given: false,
            },
        }
    }

    /// `"open"` or `"closed"`.
    pub fn loop_kind(&self) -> &'static str {
        match self {
            Correction::PlannedSendTime { .. } => "open",
            Correction::ExpectedInterval { .. } => "closed",
        }
    }

    /// The main latency histogram: `planned` as it is in the open loop, `raw` corrected in
    /// the closed loop.
    pub fn apply(&self, raw: &Histogram<u64>, planned: &Histogram<u64>) -> Histogram<u64> {
        match *self {
            Correction::PlannedSendTime { .. } => planned.clone(),
            Correction::ExpectedInterval { interval_us, .. } => correct(raw, interval_us),
        }
    }

    /// One line for a person.
    pub fn describe(&self) -> String {
        match *self {
            Correction::PlannedSendTime { rate } => format!(
                "open loop at {rate} per second: latency measured from each one's planned send \
                 time (coordinated omission corrected by the schedule)"
            ),
            Correction::ExpectedInterval { interval_us, given } => format!(
                "closed loop: latency measured from the send and corrected as HdrHistogram's \
                 record_correct does, expected interval {:.3} ms ({})",
                interval_us as f64 / 1000.0,
                if given {
                    "--expected-interval"
                } else {
                    "the median latency"
                }
            ),
        }
    }

    /// As JSON: `method`, `expected_interval_ms`, `expected_interval_from`, `rate`.
    pub fn json(&self) -> serde_json::Value {
        match *self {
            Correction::PlannedSendTime { rate } => serde_json::json!({
                "method": "planned-send-time",
                "rate": rate,
                "expected_interval_ms": null,
                "expected_interval_from": null,
            }),
            Correction::ExpectedInterval { interval_us, given } => serde_json::json!({
                "method": "record_correct",
                "rate": null,
                "expected_interval_ms": interval_us as f64 / 1000.0,
                "expected_interval_from": if given { "--expected-interval" } else { "median" },
            }),
        }
    }
}

/// `raw` corrected for coordinated omission with `interval_us` (0: no correction): HdrHistogram's
/// post-recording correction (`add_correct`, Java's `copyCorrectedForCoordinatedOmission`),
/// which adds for each recorded value `v` above the interval the values `v - interval`,
/// `v - 2 interval`, ... down to the interval, as `record_correct(v, interval)` would have at
/// recording time, the values taken at the histogram's precision (3 significant digits). It
/// is applied after the run because the default interval, the median, is known only then.
pub fn correct(raw: &Histogram<u64>, interval_us: u64) -> Histogram<u64> {
    if interval_us == 0 {
        return raw.clone();
    }
    let mut out = new_hist();
    if out.add_correct(raw, interval_us).is_err() {
        return raw.clone();
    }
    out
}

/// Worker processes of an echo or churn run: each is this executable re-run with
/// `--worker-index`; it sets its connections up, prints `ready`, waits for `go` on its stdin,
/// measures, and prints its [`LoadResult`] as one JSON line. The parent starts every worker's
/// measurement at once.
#[derive(Debug)]
pub(crate) struct WorkerSet {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    rx: crossbeam_channel::Receiver<(usize, Option<String>)>,
    readers: Vec<JoinHandle<()>>,
    ended: Vec<bool>,
}

impl WorkerSet {
    /// Starts one worker per argument list.
    pub fn spawn(per_worker: Vec<Vec<String>>) -> Result<WorkerSet, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find my executable: {e}"))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut set = WorkerSet {
            children: Vec::new(),
            stdins: Vec::new(),
            rx,
            readers: Vec::new(),
            ended: Vec::new(),
        };
        for (i, args) in per_worker.into_iter().enumerate() {
            let mut child = Command::new(&exe)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start worker {i} ({}): {e}", exe.display()))?;
            let out = child.stdout.take().ok_or("worker without stdout")?;
            set.stdins.push(child.stdin.take());
            set.children.push(child);
            set.ended.push(false);
            let tx = tx.clone();
            set.readers.push(std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send((i, Some(line)));
                }
                let _ = tx.send((i, None));
            }));
        }
        Ok(set)
    }

    /// Waits until every worker printed `ready`. A worker that ended first fails the run (its
    /// error is on stderr); the others are then told to stop (their stdin closes).
    pub fn wait_ready(&mut self, progress: &mut Progress) -> Result<(), String> {
        let n = self.children.len();
        let mut ready = vec![false; n];
        progress.phase("workers setting up", n as u64);
        while ready.iter().any(|r| !r) {
            match self.rx.recv() {
                Ok((i, Some(line))) if line == "ready" => {
                    ready[i] = true;
                    progress.set(ready.iter().filter(|r| **r).count() as u64);
                }
                Ok((_, Some(_))) => {}
                Ok((i, None)) => {
                    self.ended[i] = true;
                    progress.finish();
                    self.stdins.clear();
                    return Err(format!(
                        "worker {i} ended before its connections were set up (see its error above)"
                    ));
                }
                Err(_) => return Err("the workers' output ended".into()),
            }
        }
        progress.finish();
        Ok(())
    }

    /// Starts every worker's measurement.
    pub fn go(&mut self) {
        for s in self.stdins.iter_mut().flatten() {
            let _ = s.write_all(b"go\n");
            let _ = s.flush();
        }
    }

    /// Collects each worker's result, calling `tick` about ten times a second meanwhile.
    pub fn results(mut self, mut tick: impl FnMut()) -> Result<Vec<LoadResult>, String> {
        let n = self.children.len();
        let mut results: Vec<Option<LoadResult>> = (0..n).map(|_| None).collect();
        while self.ended.iter().any(|e| !e) {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok((i, Some(line))) if line.starts_with('{') => {
                    let r: LoadResult = serde_json::from_str(&line)
                        .map_err(|e| format!("bad output from worker {i}: {e}"))?;
                    results[i] = Some(r);
                }
                Ok((_, Some(_))) => {}
                Ok((i, None)) => self.ended[i] = true,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => tick(),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.stdins.clear();
        for c in &mut self.children {
            let _ = c.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.ok_or_else(|| format!("worker {i} produced no result (see above)")))
            .collect()
    }
}

/// The worker's side of [`WorkerSet`]: prints `ready` and waits for `go`. `false` when the
/// parent went away instead.
pub(crate) fn worker_ready_wait_go() -> bool {
    println!("ready");
    let _ = io::stdout().flush();
    let mut line = String::new();
    matches!(io::stdin().read_line(&mut line), Ok(n) if n > 0 && line.trim() == "go")
}

/// Splits `total` into `parts` shares as even as possible (the first ones get the remainder).
pub(crate) fn split(total: u64, parts: u64) -> Vec<u64> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correction_matches_record_correct() {
        let samples = [100u64, 120, 95, 110, 2_000, 105, 50_000, 101];
        let interval = 100;
        let mut at_recording = new_hist();
        let mut raw = new_hist();
        for &s in &samples {
            at_recording.record_correct(s, interval).unwrap();
            raw.record(s).unwrap();
        }
        let got = correct(&raw, interval);
        // 2000 adds 1900..=100 (19 samples), 50000 adds 49900..=100 (499): 8 + 19 + 499.
        assert_eq!(got.len(), 8 + 19 + 499);
        assert_eq!(got.len(), at_recording.len());
        // The same as recording with record_correct, at the histogram's precision.
        for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let (a, b) = (got.value_at_quantile(q), at_recording.value_at_quantile(q));
            assert!(a.abs_diff(b) <= b / 500 + 1, "q {q}: {a} vs {b}");
        }
        // And exactly HdrHistogram's own post-correction.
        let reference = raw.clone_correct(interval);
        assert_eq!(got.len(), reference.len());
        assert_eq!(got.value_at_quantile(0.5), reference.value_at_quantile(0.5));
        // No interval: nothing added.
        assert_eq!(correct(&raw, 0).len(), 8);
    }

    #[test]
    fn correction_choice() {
        let mut raw = new_hist();
        for v in [10u64, 20, 30, 40, 1000] {
            raw.record(v).unwrap();
        }
        let c = Correction::choose(None, None, &raw);
        assert_eq!(
            c,
            Correction::ExpectedInterval {
                interval_us: 30,
                given: false
            }
        );
        assert_eq!(c.loop_kind(), "closed");
        assert!(c.apply(&raw, &new_hist()).len() > raw.len());
        let c = Correction::choose(None, Some(Duration::from_millis(2)), &raw);
        assert_eq!(
            c,
            Correction::ExpectedInterval {
                interval_us: 2000,
                given: true
            }
        );
        assert_eq!(
            c.apply(&raw, &new_hist()).len(),
            raw.len(),
            "nothing above 2 ms"
        );
        let mut planned = new_hist();
        planned.record(5).unwrap();
        let c = Correction::choose(Some(100.0), None, &raw);
        assert_eq!(c.loop_kind(), "open");
        assert_eq!(
            c.apply(&raw, &planned).len(),
            1,
            "the planned histogram as it is"
        );
        assert_eq!(c.json()["method"], "planned-send-time");
        assert!(c.describe().contains("planned send time"));
        assert_eq!(
            Correction::choose(None, None, &new_hist()),
            Correction::ExpectedInterval {
                interval_us: 0,
                given: false
            }
        );
    }

    #[test]
    fn results_merge() {
        let mut h = NamedHists::default();
        h.record("service", 100);
        let mut a = LoadResult {
            sent: 10,
            done: 9,
            start_unix_us: 1_000_000,
            end_unix_us: 2_000_000,
            secs: 1.0,
            ..Default::default()
        };
        a.fail(1, "ECHO: no response".into(), "first".into());
        a.put_hists(&h);
        let mut t = Vec::new();
        record_timeline(&mut t, 0, 50);
        a.timeline = t.iter().map(hist_to_hex).collect();
        let mut b = LoadResult {
            sent: 5,
            done: 5,
            start_unix_us: 1_500_000,
            end_unix_us: 3_000_000,
            secs: 1.5,
            ..Default::default()
        };
        b.fail(0, "nothing".into(), "never".into());
        b.put_hists(&h);
        let mut t = Vec::new();
        record_timeline(&mut t, 2, 70);
        b.timeline = t.iter().map(hist_to_hex).collect();
        a.merge(&b).unwrap();
        assert_eq!((a.sent, a.done, a.failed), (15, 14, 1));
        assert_eq!(a.errors.len(), 1);
        assert_eq!(a.first_error.as_deref(), Some("first"));
        assert_eq!(a.named_hists().unwrap().or_empty("service").len(), 2);
        let tl = a.timeline_hists().unwrap();
        assert_eq!(tl.len(), 3);
        assert_eq!((tl[0].len(), tl[1].len(), tl[2].len()), (1, 0, 1));
        assert_eq!(a.span_secs(), 2.0);
        assert_eq!(a.per_sec(), 7.0);
    }

    #[test]
    fn shares() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(5, 0), vec![5]);
    }
}
