//! The report: plain text for a person, JSON for scripts, an HdrHistogram interval log, and an
//! SVG percentile plot of the reaping lateness.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::process::ExitCode;

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::run::phase;
use crate::stats::{quantile_sorted, signed_summary_ms, summary_ms, Hists, RunResult, SETUP_STEPS};

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// The command line.
    pub command_line: Vec<String>,
    /// Server address.
    pub target: String,
    /// Whether the embedded server was used.
    pub embedded: bool,
    /// Run settings, as JSON (see `config` in the JSON output).
    pub config: Value,
    /// Sessions per connection.
    pub per_conn: u32,
    /// Autodisconnect in ms.
    pub autodisconnect_ms: f64,
    /// Merged result.
    pub result: RunResult,
    /// Decoded histograms of `result`.
    pub hists: Hists,
    /// Probe ECHO latency by phase (index = `run::phase`), if probes ran.
    pub probes: Option<Vec<Histogram<u64>>>,
    /// Probe reconnects.
    pub probe_reconnects: u64,
    /// The embedded server's own stats (`smb_server::admin::stats_json`).
    pub server: Option<Value>,
}

/// The name of a dialect (`none` for 0).
pub(crate) fn dialect_name(d: u16) -> String {
    match d {
        0 => "none".into(),
        d => smb_server::config::dialect_name(d).to_string(),
    }
}

/// The `machine` object of the JSON reports.
pub(crate) fn machine() -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": cpu_model,
        "open_files_limit": crate::net::open_files_limit(),
    })
}

impl Report {
    /// `true` when every session opened, none was reaped early, and all were reaped.
    pub fn ok(&self) -> bool {
        let r = &self.result;
        r.opened == r.sessions && r.setup_failed == 0 && r.reaped_early == 0 && r.never_reaped == 0
    }

    /// The unit of the lateness samples.
    pub fn lateness_unit(&self) -> &'static str {
        if self.per_conn > 1 {
            "connection"
        } else {
            "session"
        }
    }

    /// The JSON document (`--json`).
    pub fn json(&self) -> Value {
        let r = &self.result;
        let mut setup = serde_json::Map::new();
        for (name, h) in SETUP_STEPS.iter().zip(&self.hists.setup) {
            setup.insert((*name).to_string(), summary_ms(h));
        }
        let lateness = signed_summary_ms(&r.lateness_us);
        let probes = self.probes.as_ref().map(|p| {
            json!({
                "baseline": summary_ms(&p[usize::from(phase::BASELINE)]),
                "opening": summary_ms(&p[usize::from(phase::OPENING)]),
                "idle": summary_ms(&p[usize::from(phase::IDLE)]),
                "reaping": summary_ms(&p[usize::from(phase::REAPING)]),
            })
        });
        json!({
            "tool": "smb-loadgen",
            "version": env!("CARGO_PKG_VERSION"),
            "command_line": self.command_line,
            "machine": machine(),
            "clock": "CLOCK_MONOTONIC (std::time::Instant); ends are timestamped when the observer thread's epoll_wait returns",
            "target": self.target,
            "embedded_server": self.embedded,
            "dialect": dialect_name(r.dialect),
            "config": self.config,
            "sessions": r.sessions,
            "connections": r.connections,
            "opened": r.opened,
            "setup_failed": r.setup_failed,
            "first_error": r.first_error,
            "open_seconds": r.open_secs,
            "setup_per_sec": r.setup_per_sec(),
            "setup_ms": setup,
            "lateness_unit": self.lateness_unit(),
            "lateness_ms": lateness,
            "lateness_upper_ms": summary_ms(&self.hists.lateness_upper),
            "error_bound_ms": summary_ms(&self.hists.error_bound),
            "reaped": r.reaped,
            "reaped_early": r.reaped_early,
            "worst_early_ms": if r.reaped_early > 0 { json!(r.worst_early_us as f64 / 1000.0) } else { Value::Null },
            "never_reaped": r.never_reaped,
            "ends": {"eof": r.ends_eof, "rst": r.ends_rst, "notification": r.ends_notification},
            "probe_ms": probes,
            "probe_reconnects": self.probe_reconnects,
            "server": self.server,
            "ok": self.ok(),
        })
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
        let _ = writeln!(
            s,
            "smb-loadgen: {} IPC$ sessions against {who}, dialect {}",
            r.sessions,
            dialect_name(r.dialect)
        );
        let _ = writeln!(
            s,
            "  autodisconnect {} ms, {} session(s) per connection, {} connection(s)",
            self.autodisconnect_ms, self.per_conn, r.connections
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "open:     {}/{} sessions in {:.3} s = {:.0} sessions/s ({} failed)",
            r.opened,
            r.sessions,
            r.open_secs,
            r.setup_per_sec(),
            r.setup_failed
        );
        if let Some(e) = &r.first_error {
            let _ = writeln!(s, "          first error: {e}");
        }
        let head = table_head;
        let row = table_row;
        head(&mut s, "setup latency (ms)");
        let names = [
            "connect + NEGOTIATE",
            "SESSION_SETUP 1",
            "SESSION_SETUP 2",
            "TREE_CONNECT IPC$",
            "whole session (from plan)",
        ];
        for (n, h) in names.iter().zip(&self.hists.setup) {
            row(&mut s, n, h);
        }
        let _ = writeln!(s);
        head(
            &mut s,
            &format!("reaping lateness (ms, per {})", self.lateness_unit()),
        );
        let mut sorted = r.lateness_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            let _ = writeln!(s, "  {:<32}{:>9}", "end - (last response + timeout)", "-");
        } else {
            let q = |x: f64| quantile_sorted(&sorted, x).unwrap_or(0) as f64 / 1000.0;
            let _ = writeln!(
                s,
                "  {:<32}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>9}",
                "end - (last response + timeout)",
                q(0.5),
                q(0.9),
                q(0.99),
                q(0.999),
                q(1.0),
                sorted.len()
            );
        }
        row(
            &mut s,
            "end - (last request sent + timeout)",
            &self.hists.lateness_upper,
        );
        row(
            &mut s,
            "error bound (RTT of last request)",
            &self.hists.error_bound,
        );
        let _ = writeln!(
            s,
            "  (the true lateness lies between the first two rows; smallest sample {:+.3} ms)",
            sorted.first().copied().unwrap_or(0) as f64 / 1000.0
        );
        let _ = writeln!(
            s,
            "reaped {} of {}: early {}{}, never reaped {} (EOF {}, RST {}, notification {})",
            r.reaped,
            r.opened,
            r.reaped_early,
            if r.reaped_early > 0 {
                format!(
                    " (worst {:.3} ms before the deadline)",
                    r.worst_early_us as f64 / 1000.0
                )
            } else {
                String::new()
            },
            r.never_reaped,
            r.ends_eof,
            r.ends_rst,
            r.ends_notification,
        );
        if self.per_conn > 1 {
            let _ = writeln!(
                s,
                "  (with several sessions per connection only the connection's close is visible: one \
                 lateness sample per connection, at its last session's deadline)"
            );
        }
        if let Some(p) = &self.probes {
            let _ = writeln!(s);
            head(&mut s, "probe ECHO latency (ms)");
            row(
                &mut s,
                "baseline (no idle sessions)",
                &p[usize::from(phase::BASELINE)],
            );
            row(&mut s, "while opening", &p[usize::from(phase::OPENING)]);
            row(
                &mut s,
                &format!("idle ({} sessions open)", r.opened),
                &p[usize::from(phase::IDLE)],
            );
            row(&mut s, "while reaping", &p[usize::from(phase::REAPING)]);
            if self.probe_reconnects > 0 {
                let _ = writeln!(s, "  probe reconnects: {}", self.probe_reconnects);
            }
        }
        if let Some(v) = &self.server {
            let l = &v["lateness_us"];
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "server's own view: {} sessions timed out; its reap lateness p50 {} us, p99 {} us, max {} us",
                v["sessions_timed_out"], l["p50"], l["p99"], l["max"]
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "result: {}",
            if self.ok() {
                "OK (every session opened, none reaped early, all reaped)"
            } else {
                "FAILURES (see above)"
            }
        );
        s
    }

    /// Writes the HdrHistogram interval log (`--hist`): one interval per histogram, tagged, in
    /// microseconds (the max column in milliseconds).
    pub fn write_hist_log(&self, path: &Path) -> io::Result<()> {
        let mut f = io::BufWriter::new(std::fs::File::create(path)?);
        let mut ser = V2DeflateSerializer::new();
        let now = std::time::SystemTime::now();
        let span = std::time::Duration::from_secs_f64(self.result.open_secs.max(0.001));
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("smb-loadgen histograms; values in microseconds")
            .with_start_time(now)
            .with_base_time(now)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut f, &mut ser)?;
        let mut put = |tag: &str, h: &Histogram<u64>| -> io::Result<()> {
            let t = Tag::new(tag).ok_or_else(|| io::Error::other("bad tag"))?;
            w.write_histogram(h, std::time::Duration::ZERO, span, Some(t))
                .map_err(|e| io::Error::other(format!("{e:?}")))
        };
        put("lateness_upper", &self.hists.lateness_upper)?;
        put("error_bound", &self.hists.error_bound)?;
        for (n, h) in SETUP_STEPS.iter().zip(&self.hists.setup) {
            put(&format!("setup_{n}"), h)?;
        }
        if let Some(p) = &self.probes {
            put("probe_baseline", &p[usize::from(phase::BASELINE)])?;
            put("probe_idle", &p[usize::from(phase::IDLE)])?;
        }
        drop(w);
        io::Write::flush(&mut f)
    }

    /// Writes the SVG percentile plot (`--plot`).
    pub fn write_plot(&self, path: &Path) -> io::Result<()> {
        let title = format!(
            "smb-loadgen: reaping lateness, {} sessions, autodisconnect {} ms ({})",
            self.result.opened, self.autodisconnect_ms, self.target
        );
        let mut sorted = self.result.lateness_us.clone();
        sorted.sort_unstable();
        let mut series = vec![
            Series {
                name: "lateness: end - (last response + timeout)".into(),
                points: sorted_points(&sorted),
                color: "#c0392b",
            },
            Series {
                name: "upper bound: end - (last request sent + timeout)".into(),
                points: hist_points(&self.hists.lateness_upper),
                color: "#e67e22",
            },
        ];
        if let Some(p) = &self.probes {
            series.push(Series {
                name: "probe ECHO latency while idle".into(),
                points: hist_points(&p[usize::from(phase::IDLE)]),
                color: "#2980b9",
            });
        }
        std::fs::write(path, percentile_svg(&title, &series))
    }
}

/// The head line of a latency table (`title`, then p50 p90 p99 p99.9 max count).
pub(crate) fn table_head(s: &mut String, title: &str) {
    let _ = writeln!(
        s,
        "{title:<34}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "p50", "p90", "p99", "p99.9", "max", "count"
    );
}

/// A row of a latency table: the percentiles of a µs histogram in milliseconds.
pub(crate) fn table_row(s: &mut String, name: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        let _ = writeln!(s, "  {name:<32}{:>9}", "-");
        return;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let _ = writeln!(
        s,
        "  {name:<32}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>9}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        h.len()
    );
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One line of a percentile plot: (quantile, milliseconds) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (quantile in 0..=1, value in ms), ascending.
    pub points: Vec<(f64, f64)>,
    /// SVG colour.
    pub color: &'static str,
}

/// Points of sorted µs samples, log-spaced in 1/(1-q), ending at the maximum.
pub fn sorted_points(sorted: &[i64]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let mut pts = Vec::new();
    let mut last_idx = usize::MAX;
    for k in 0..=250 {
        let q = 1.0 - 10f64.powf(-(k as f64) / 50.0);
        let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        if idx != last_idx {
            pts.push((q, sorted[idx] as f64 / 1000.0));
            last_idx = idx;
        }
    }
    pts.push((1.0, sorted[n - 1] as f64 / 1000.0));
    pts
}

/// Points of a µs histogram.
pub fn hist_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(4)
        .map(|v| {
            (
                v.quantile_iterated_to(),
                h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
            )
        })
        .collect();
    pts.push((1.0, h.max() as f64 / 1000.0));
    pts
}

/// An SVG percentile plot (x: percentile on a log scale of 1/(1-q), y: milliseconds).
pub fn percentile_svg(title: &str, series: &[Series]) -> String {
    let (w, h) = (900.0_f64, 500.0_f64);
    let (l, r, t, b) = (70.0, 30.0, 50.0, 60.0);
    let max_x = 5.0_f64; // 99.999 %
    let vals = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let max_ms = vals.clone().fold(0.001_f64, f64::max);
    let min_ms = vals.fold(0.0_f64, f64::min);
    let y_top = nice_ceiling(max_ms);
    let y_bot = if min_ms < 0.0 {
        -nice_ceiling(-min_ms)
    } else {
        0.0
    };
    let px = |x: f64| l + (x / max_x).clamp(0.0, 1.0) * (w - l - r);
    let py = |ms: f64| h - b - ((ms - y_bot) / (y_top - y_bot)).clamp(0.0, 1.0) * (h - t - b);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="25" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    for (i, lab) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = px(i as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{lab}</text>"##,
            h - b,
            h - b + 18.0
        );
    }
    for i in 0..=6 {
        let v = y_bot + (y_top - y_bot) * f64::from(i) / 6.0;
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            w - r,
            l - 6.0,
            y + 4.0,
            fmt_ms(v)
        );
    }
    if y_bot < 0.0 {
        let y = py(0.0);
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#888"/>"##,
            w - r
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        (l + w - r) / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">milliseconds</text>"#,
        (t + h - b) / 2.0,
        (t + h - b) / 2.0
    );
    for (k, se) in series.iter().enumerate() {
        if se.points.is_empty() {
            continue;
        }
        let mut pts = String::new();
        for &(q, ms) in &se.points {
            let x = if q >= 1.0 - 1e-9 {
                max_x
            } else {
                (1.0 / (1.0 - q)).log10()
            };
            let _ = write!(pts, "{:.1},{:.1} ", px(x), py(ms));
        }
        let color = se.color;
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>"#
        );
        let p99 = se.points.iter().find(|p| p.0 >= 0.99).map_or(0.0, |p| p.1);
        let max = se.points.last().map_or(0.0, |p| p.1);
        let ly = t + 18.0 * k as f64 + 10.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{} (p99 {} ms, max {} ms)</text>"#,
            l + 10.0,
            l + 35.0,
            l + 40.0,
            ly + 4.0,
            esc(&se.name),
            fmt_ms(p99),
            fmt_ms(max)
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{l}" y="{t}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
        w - l - r,
        h - t - b
    );
    s.push_str("</svg>\n");
    s
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// Writes a file the command line asked for with `write`, if it asked (`path`); the error
/// names the file.
pub(crate) fn write_file(
    path: Option<&Path>,
    write: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), String> {
    match path {
        Some(p) => write(p).map_err(|e| format!("cannot write {}: {e}", p.display())),
        None => Ok(()),
    }
}

/// Writes `v` to `path` as pretty JSON with a final newline (`--json`).
pub(crate) fn write_json(path: &Path, v: &Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// Prints the outcome of a run, its report's text and whether it passed (`Ok`), and returns
/// the exit status: 0 when it passed, 1 when it saw failures; or prints the error
/// (`who: error: ...`) and returns 2.
pub(crate) fn exit_with(run: Result<(String, bool), String>, who: &str) -> ExitCode {
    match run {
        Ok((text, ok)) => {
            print!("{text}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("{who}: error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_hist, record};

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.5), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(20.0), 20.0);
    }

    #[test]
    fn svg_is_well_formed_enough() {
        let mut h = new_hist();
        for i in 1..1000 {
            record(&mut h, i * 10);
        }
        let series = [
            Series {
                name: "h".into(),
                points: hist_points(&h),
                color: "red",
            },
            Series {
                name: "v".into(),
                points: sorted_points(&[-500, 100, 2000]),
                color: "blue",
            },
        ];
        let svg = percentile_svg("a <title>", &series);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("&lt;title&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(sorted_points(&[-500, 100, 2000]).last(), Some(&(1.0, 2.0)));
        assert_eq!(svg.matches("<svg").count(), 1);
    }
}
