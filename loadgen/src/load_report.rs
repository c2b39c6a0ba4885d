//! The report of the echo and churn scenarios: plain text for a person, JSON for scripts
//! (`--json`), an HdrHistogram interval log (`--hist`) and an SVG percentile plot (`--plot`).

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cli::ScenarioKind;
use crate::report::{
    dialect_name, hist_points, machine, percentile_svg, table_head, table_row, Series,
};
use crate::scenario::{correct, Correction, LoadResult, NamedHists, SETUP_STEPS};
use crate::session_churn::SESSION_STEPS;
use crate::stats::summary_ms;

/// Everything an echo or churn report shows.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// `Echo` or `Churn`.
    pub kind: ScenarioKind,
    /// The command line.
    pub command_line: Vec<String>,
    /// Server address.
    pub target: String,
    /// Whether the embedded server was used.
    pub embedded: bool,
    /// Run settings, as JSON (`config` in the JSON output).
    pub config: Value,
    /// Connections (churn with a new connection each time: slots) asked for.
    pub connections: u32,
    /// ECHOs in flight per connection (echo).
    pub queue_depth: u32,
    /// Churn: a new connection per session.
    pub new_connection: bool,
    /// Worker processes.
    pub workers: u32,
    /// How the main latency is corrected for coordinated omission.
    pub correction: Correction,
    /// Merged result.
    pub result: LoadResult,
    /// Its histograms, decoded.
    pub hists: NamedHists,
    /// The main latency (echo: per ECHO; churn: per session), corrected.
    pub latency: Histogram<u64>,
    /// The main latency uncorrected (echo: response - send; churn: begin to LOGOFF response).
    pub raw: Histogram<u64>,
    /// The main latency per second of the measurement, corrected like `latency`.
    pub timeline: Vec<Histogram<u64>>,
    /// The embedded server's own stats after the run.
    pub server: Option<Value>,
}

impl LoadReport {
    /// A report of `result`; `rate` (open loop) or `expected_interval` (closed loop) choose
    /// the correction.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: ScenarioKind,
        target: String,
        embedded: bool,
        config: Value,
        connections: u32,
        queue_depth: u32,
        new_connection: bool,
        workers: u32,
        rate: Option<f64>,
        expected_interval: Option<Duration>,
        result: LoadResult,
        server: Option<Value>,
    ) -> Result<LoadReport, String> {
        let hists = result.named_hists()?;
        let raw_name = if kind == ScenarioKind::Echo {
            "service"
        } else {
            "session"
        };
        let raw = hists.or_empty(raw_name);
        let planned = hists.or_empty("planned");
        let correction = Correction::choose(rate, expected_interval, &raw);
        let latency = correction.apply(&raw, &planned);
        let timeline = result
            .timeline_hists()?
            .iter()
            .map(|h| match correction {
                Correction::PlannedSendTime { .. } => h.clone(),
                Correction::ExpectedInterval { interval_us, .. } => correct(h, interval_us),
            })
            .collect();
        Ok(LoadReport {
            kind,
            command_line: std::env::args().collect(),
            target,
            embedded,
            config,
            connections,
            queue_depth,
            new_connection,
            workers,
            correction,
            result,
            hists,
            latency,
            raw,
            timeline,
            server,
        })
    }

    /// The embedded server's `sessions_logged_off`, if known.
    pub fn server_logged_off(&self) -> Option<u64> {
        self.server.as_ref()?.get("sessions_logged_off")?.as_u64()
    }

    /// `true` when something was measured and nothing failed: every connection set up, every
    /// request answered or session logged off, and (churn, embedded server) the server
    /// counted as many LOGOFFs.
    pub fn ok(&self) -> bool {
        let r = &self.result;
        let base = r.done > 0
            && r.failed == 0
            && r.setup_failed == 0
            && r.errors.is_empty()
            && r.done == r.sent;
        match self.kind {
            ScenarioKind::Churn => base && self.server_logged_off().map_or(true, |n| n == r.done),
            _ => base,
        }
    }

    fn step_json(&self, names: &[&str], prefix: &str) -> Value {
        let mut m = serde_json::Map::new();
        for n in names {
            m.insert(
                (*n).to_string(),
                summary_ms(&self.hists.or_empty(&format!("{prefix}{n}"))),
            );
        }
        Value::Object(m)
    }

    /// The JSON document (`--json`).
    pub fn json(&self) -> Value {
        let r = &self.result;
        let mut v = json!({
            "tool": "smb-loadgen",
            "version": env!("CARGO_PKG_VERSION"),
            "scenario": self.kind.name(),
            "command_line": self.command_line,
            "machine": machine(),
            "clock": "CLOCK_MONOTONIC (std::time::Instant); a response is timestamped when epoll_wait returns its readiness",
            "target": self.target,
            "embedded_server": self.embedded,
            "dialect": dialect_name(r.dialect),
            "config": self.config,
            "workers": self.workers,
            "connections": self.connections,
            "connections_opened": r.connections,
            "connections_ready": r.connections_ready,
            "setup_failed": r.setup_failed,
            "setup_ms": self.step_json(&SETUP_STEPS, "setup_"),
            "loop": self.correction.loop_kind(),
            "correction": self.correction.json(),
            "seconds": r.span_secs(),
            "errors": r.failed,
            "errors_by_kind": r.errors,
            "first_error": r.first_error,
            "server": self.server,
            "ok": self.ok(),
        });
        let extra = match self.kind {
            ScenarioKind::Echo => json!({
                "queue_depth": self.queue_depth,
                "requests_sent": r.sent,
                "requests_answered": r.done,
                "requests_per_sec": r.per_sec(),
                "latency_ms": summary_ms(&self.latency),
                "latency_uncorrected_ms": summary_ms(&self.raw),
                "send_lag_ms": summary_ms(&self.hists.or_empty("lag")),
                "credit_waits": r.credit_waits,
                "max_credits_held": r.max_credits,
            }),
            _ => json!({
                "mode": if self.new_connection { "new-connection" } else { "kept-connection" },
                "sessions_started": r.sent,
                "sessions_completed": r.done,
                "sessions_failed": r.failed,
                "sessions_per_sec": r.per_sec(),
                "step_ms": self.step_json(&SESSION_STEPS, ""),
                "session_ms": summary_ms(&self.latency),
                "session_uncorrected_ms": summary_ms(&self.raw),
                "begin_lag_ms": summary_ms(&self.hists.or_empty("lag")),
                "server_sessions_logged_off": self.server_logged_off(),
            }),
        };
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    /// The plain-text report.
    pub fn text(&self) -> String {
        let r = &self.result;
        let mut s = String::new();
        let who = if self.embedded {
            format!("embedded smbcore at {}", self.target)
        } else {
            self.target.clone()
        };
        let what = match (self.kind, self.new_connection) {
            (ScenarioKind::Echo, _) => format!(
                "{} connections x queue depth {}",
                self.connections, self.queue_depth
            ),
            (_, false) => format!(
                "{} kept connections (sessions one after another on each)",
                self.connections
            ),
            (_, true) => format!("{} slots, a new connection per session", self.connections),
        };
        let _ = writeln!(
            s,
            "smb-loadgen {}: {what} against {who}, dialect {}",
            self.kind.name(),
            dialect_name(r.dialect)
        );
        let _ = writeln!(
            s,
            "  {}; {} worker(s)",
            self.correction.describe(),
            self.workers
        );
        let _ = writeln!(s);
        if self.kind == ScenarioKind::Echo || !self.new_connection {
            let _ = writeln!(
                s,
                "setup:    {}/{} connections ready ({} failed)",
                r.connections_ready, self.connections, r.setup_failed
            );
            table_head(&mut s, "setup latency (ms)");
            let names = [
                "connect + NEGOTIATE",
                "SESSION_SETUP 1",
                "SESSION_SETUP 2",
                "TREE_CONNECT IPC$",
                "whole setup",
            ];
            let steps = if self.kind == ScenarioKind::Echo {
                5
            } else {
                1
            };
            for (n, step) in names.iter().zip(SETUP_STEPS).take(steps) {
                table_row(&mut s, n, &self.hists.or_empty(&format!("setup_{step}")));
            }
            let _ = writeln!(s);
        }
        let loop_note = match self.correction {
            Correction::PlannedSendTime { .. } => "corrected (from plan)",
            Correction::ExpectedInterval { .. } => "corrected (record_correct)",
        };
        let lag = self.hists.or_empty("lag");
        if self.kind == ScenarioKind::Echo {
            let _ = writeln!(
                s,
                "echo:     {} answered of {} sent in {:.3} s = {:.0} requests/s; {} failed",
                r.done,
                r.sent,
                r.span_secs(),
                r.per_sec(),
                r.failed
            );
            let _ = writeln!(
                s,
                "          credits: most held by a connection {}; a request waited for one {} times",
                r.max_credits, r.credit_waits
            );
            table_head(&mut s, "ECHO latency (ms)");
            table_row(&mut s, loop_note, &self.latency);
            table_row(&mut s, "uncorrected (response - send)", &self.raw);
            if !lag.is_empty() {
                table_row(&mut s, "generator lag (send - plan)", &lag);
            }
        } else {
            let _ = writeln!(
                s,
                "sessions: {} logged off of {} begun in {:.3} s = {:.0} sessions/s; {} failed{}",
                r.done,
                r.sent,
                r.span_secs(),
                r.per_sec(),
                r.failed,
                if self.new_connection {
                    format!(" ({} connections)", r.connections)
                } else {
                    String::new()
                }
            );
            table_head(&mut s, "session latency (ms)");
            let names = [
                "connect + NEGOTIATE",
                "SESSION_SETUP 1",
                "SESSION_SETUP 2",
                "TREE_CONNECT IPC$",
                "LOGOFF",
            ];
            let skip = usize::from(!self.new_connection);
            for (n, step) in names.iter().zip(SESSION_STEPS).skip(skip) {
                table_row(&mut s, n, &self.hists.or_empty(step));
            }
            let corrected = match self.correction {
                Correction::PlannedSendTime { .. } => "session (from plan)",
                Correction::ExpectedInterval { .. } => "session (record_correct)",
            };
            table_row(&mut s, corrected, &self.latency);
            table_row(&mut s, "session, uncorrected", &self.raw);
            if !lag.is_empty() {
                table_row(&mut s, "begin lag (begin - plan)", &lag);
            }
            let _ = writeln!(
                s,
                "  (each step from the previous response, the first from the session's plan)"
            );
        }
        if !r.errors.is_empty() {
            let _ = writeln!(s, "errors:");
            for (k, n) in &r.errors {
                let _ = writeln!(s, "  {n:>8}  {k}");
            }
            if let Some(e) = &r.first_error {
                let _ = writeln!(s, "  first: {e}");
            }
        }
        if let Some(v) = &self.server {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "server's own view: transport {}, sessions_logged_off {}, protocol_errors {}, connections now {}",
                v["transport"], v["sessions_logged_off"], v["protocol_errors"], v["connections"]
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "result: {}",
            match (self.ok(), self.kind) {
                (true, ScenarioKind::Echo) => "OK (every connection set up, every ECHO answered)",
                (true, _) => "OK (every session set up and logged off)",
                (false, _) => "FAILURES (see above)",
            }
        );
        s
    }

    /// Writes the HdrHistogram interval log (`--hist`), values in µs: the main latency per
    /// second of the measurement (tag `latency` for echo, `session` for churn, corrected), then
    /// one interval over the whole run per other histogram (tags `uncorrected`, `setup_*`,
    /// `lag`, churn's steps).
    pub fn write_hist_log(&self, path: &Path) -> io::Result<()> {
        let mut f = io::BufWriter::new(std::fs::File::create(path)?);
        let mut ser = V2DeflateSerializer::new();
        let now = std::time::SystemTime::now();
        let span = Duration::from_secs_f64(self.result.span_secs().max(0.001));
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "smb-loadgen --scenario {}; values in microseconds; {}",
                self.kind.name(),
                self.correction.describe()
            ))
            .with_start_time(now)
            .with_base_time(now)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut f, &mut ser)?;
        let mut put = |tag: &str, start: Duration, len: Duration, h: &Histogram<u64>| {
            let t = Tag::new(tag).ok_or_else(|| io::Error::other("bad tag"))?;
            w.write_histogram(h, start, len, Some(t))
                .map_err(|e| io::Error::other(format!("{e:?}")))
        };
        let main = if self.kind == ScenarioKind::Echo {
            "latency"
        } else {
            "session"
        };
        for (i, h) in self.timeline.iter().enumerate() {
            put(
                main,
                Duration::from_secs(i as u64),
                Duration::from_secs(1),
                h,
            )?;
        }
        put("uncorrected", Duration::ZERO, span, &self.raw)?;
        for (name, h) in &self.hists.0 {
            let step = name.starts_with("setup_")
                || name == "lag"
                || SESSION_STEPS.contains(&name.as_str());
            if step && !h.is_empty() {
                put(name, Duration::ZERO, span, h)?;
            }
        }
        drop(w);
        io::Write::flush(&mut f)
    }

    /// Writes the SVG percentile plot (`--plot`).
    pub fn write_plot(&self, path: &Path) -> io::Result<()> {
        let title = match self.kind {
            ScenarioKind::Echo => format!(
                "smb-loadgen echo: {} connections x {} in flight, {:.0} requests/s ({})",
                self.connections,
                self.queue_depth,
                self.result.per_sec(),
                self.target
            ),
            _ => format!(
                "smb-loadgen churn ({}): {:.0} sessions/s ({})",
                if self.new_connection {
                    "new connection each time"
                } else {
                    "kept connections"
                },
                self.result.per_sec(),
                self.target
            ),
        };
        let mut series = vec![
            Series {
                name: format!("corrected ({} loop)", self.correction.loop_kind()),
                points: hist_points(&self.latency),
                color: "#c0392b",
            },
            Series {
                name: "uncorrected".into(),
                points: hist_points(&self.raw),
                color: "#e67e22",
            },
        ];
        if self.kind == ScenarioKind::Churn {
            let colors = ["#2980b9", "#27ae60", "#8e44ad", "#16a085", "#7f8c8d"];
            for (step, color) in SESSION_STEPS.iter().zip(colors) {
                let h = self.hists.or_empty(step);
                if !h.is_empty() {
                    series.push(Series {
                        name: (*step).to_string(),
                        points: hist_points(&h),
                        color,
                    });
                }
            }
        }
        std::fs::write(path, percentile_svg(&title, &series))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::record_timeline;
    use crate::stats::hist_to_hex;

    fn result(kind: ScenarioKind) -> LoadResult {
        let mut h = NamedHists::default();
        let raw = if kind == ScenarioKind::Echo {
            "service"
        } else {
            "session"
        };
        for v in [100u64, 110, 120, 130, 5_000] {
            h.record(raw, v);
        }
        h.record("setup_connect_negotiate", 300);
        h.record("logoff", 40);
        let mut r = LoadResult {
            connections: 4,
            connections_ready: 4,
            sent: 5,
            done: 5,
            dialect: 0x311,
            start_unix_us: 1_000_000,
            end_unix_us: 2_000_000,
            secs: 1.0,
            ..Default::default()
        };
        r.put_hists(&h);
        let mut t = Vec::new();
        record_timeline(&mut t, 0, 5_000);
        r.timeline = t.iter().map(hist_to_hex).collect();
        r
    }

    fn report(kind: ScenarioKind, server: Option<Value>) -> LoadReport {
        LoadReport::new(
            kind,
            "127.0.0.1:445".into(),
            server.is_some(),
            json!({}),
            4,
            2,
            false,
            1,
            None,
            None,
            result(kind),
            server,
        )
        .unwrap()
    }

    #[test]
    fn echo_report_has_the_documented_keys_and_correction() {
        let r = report(ScenarioKind::Echo, None);
        // Closed loop: the median (120 µs) is the expected interval; 5000 µs adds 40 samples.
        assert_eq!(r.latency.len(), 5 + 40);
        assert_eq!(r.raw.len(), 5);
        assert_eq!(r.timeline[0].len(), 41);
        assert!(r.ok());
        let v = r.json();
        for k in [
            "tool",
            "scenario",
            "command_line",
            "machine",
            "target",
            "config",
            "requests_sent",
            "requests_answered",
            "requests_per_sec",
            "latency_ms",
            "latency_uncorrected_ms",
            "errors",
            "errors_by_kind",
            "loop",
            "correction",
            "setup_ms",
            "credit_waits",
            "ok",
        ] {
            assert!(v.get(k).is_some(), "no {k}");
        }
        assert_eq!(v["scenario"], "echo");
        assert_eq!(v["loop"], "closed");
        assert_eq!(v["correction"]["method"], "record_correct");
        assert_eq!(v["correction"]["expected_interval_ms"], 0.12);
        assert_eq!(v["requests_per_sec"], 5.0);
        for q in ["p50", "p90", "p99", "p99_9", "max"] {
            assert!(v["latency_ms"][q].is_number(), "{q}");
        }
        let t = r.text();
        assert!(t.contains("requests/s"), "{t}");
        assert!(t.contains("record_correct"), "{t}");
        assert!(t.contains("result: OK"), "{t}");
    }

    #[test]
    fn churn_report_checks_the_servers_logoff_count() {
        let good = report(
            ScenarioKind::Churn,
            Some(json!({"sessions_logged_off": 5, "transport": "mio"})),
        );
        assert!(good.ok());
        let v = good.json();
        for k in [
            "mode",
            "sessions_started",
            "sessions_completed",
            "sessions_per_sec",
            "step_ms",
            "session_ms",
            "session_uncorrected_ms",
            "server_sessions_logged_off",
        ] {
            assert!(v.get(k).is_some(), "no {k}");
        }
        assert_eq!(v["mode"], "kept-connection");
        assert_eq!(v["step_ms"]["logoff"]["count"], 1);
        assert!(good.text().contains("sessions/s"));
        let bad = report(ScenarioKind::Churn, Some(json!({"sessions_logged_off": 4})));
        assert!(!bad.ok());
        assert!(bad.text().contains("FAILURES"));
    }

    #[test]
    fn hist_log_and_plot_are_written() {
        let r = report(ScenarioKind::Churn, None);
        let d = std::env::temp_dir().join(format!("lg-load-report-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        r.write_hist_log(&d.join("h.hlog")).unwrap();
        r.write_plot(&d.join("p.svg")).unwrap();
        let log = std::fs::read_to_string(d.join("h.hlog")).unwrap();
        assert!(log.contains("Tag=session"), "{log}");
        assert!(log.contains("Tag=logoff"), "{log}");
        let svg = std::fs::read_to_string(d.join("p.svg")).unwrap();
        assert!(svg.contains("logoff"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
