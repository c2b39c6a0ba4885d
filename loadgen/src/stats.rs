//! Histograms (HdrHistogram, microseconds) and the mergeable result of one process's run.

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A latency histogram in microseconds: 1 µs to 1 hour, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Records `us` (clamped into the histogram's range).
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// Serializes a histogram (HdrHistogram V2 format, hex).
pub fn hist_to_hex(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    if V2Serializer::new().serialize(h, &mut buf).is_err() {
        return String::new();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a histogram written by [`hist_to_hex`].
pub fn hist_from_hex(s: &str) -> Result<Histogram<u64>, String> {
    if s.len() % 2 != 0 {
        return Err("odd hex length".into());
    }
    let bytes: Result<Vec<u8>, _> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16))
        .collect();
    let bytes = bytes.map_err(|e| e.to_string())?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("{e:?}"))?;
    let mut out = new_hist();
    out.add(&h).map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

/// Percentiles of a microsecond histogram as milliseconds (JSON object with `count`, `min`,
/// `mean`, `p50`, `p90`, `p99`, `p99_9`, `max`).
pub fn summary_ms(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0, "min": null, "mean": null, "p50": null, "p90": null,
                      "p99": null, "p99_9": null, "max": null});
    }
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "count": h.len(),
        "min": ms(h.min()),
        "mean": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

/// The sample at quantile `q` of sorted values (nearest rank).
pub fn quantile_sorted(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Exact percentiles of signed microsecond samples as milliseconds (same keys as
/// [`summary_ms`]).
pub fn signed_summary_ms(samples: &[i64]) -> Value {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let ms = |q: f64| quantile_sorted(&v, q).map(|x| x as f64 / 1000.0);
    let mean = if v.is_empty() {
        None
    } else {
        Some(
            (v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1000.0 * 1000.0).round()
                / 1000.0,
        )
    };
    json!({
        "count": v.len(),
        "min": ms(0.0),
        "mean": mean,
        "p50": ms(0.5),
        "p90": ms(0.9),
        "p99": ms(0.99),
        "p99_9": ms(0.999),
        "max": ms(1.0),
    })
}

/// Setup step histograms.
pub const SETUP_STEPS: [&str; 5] = [
    "connect_negotiate",
    "session_setup_1",
    "session_setup_2",
    "tree_connect",
    "total",
];

/// What one process measured while opening and watching its sessions. Merged across workers.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunResult {
    /// Sessions this process was asked to open.
    pub sessions: u64,
    /// Connections used.
    pub connections: u64,
    /// Sessions that reached IPC$.
    pub opened: u64,
    /// Sessions that failed during setup.
    pub setup_failed: u64,
    /// The first setup error.
    pub first_error: Option<String>,
    /// Negotiated dialect (of the first connection).
    pub dialect: u16,
    /// Wall clock (Unix µs) of the first connect.
    pub open_start_unix_us: u64,
    /// Wall clock (Unix µs) of the last session ready.
    pub open_end_unix_us: u64,
    /// Open phase length measured on the monotonic clock, seconds (max over workers).
    pub open_secs: f64,
    /// Signed lateness samples, µs: end - (last response + timeout), per session with K = 1,
    /// per connection (its last session) with K > 1. Negative values lie within the error
    /// bound. Every sample is kept (percentiles are exact).
    pub lateness_us: Vec<i64>,
    /// Sessions whose end was observed.
    pub reaped: u64,
    /// Sessions ended before their earliest possible deadline (last request sent + timeout).
    pub reaped_early: u64,
    /// How much before that deadline the worst early end came, µs.
    pub worst_early_us: u64,
    /// Sessions whose end was not seen by their deadline + hold.
    pub never_reaped: u64,
    /// Ends seen as EOF.
    pub ends_eof: u64,
    /// Ends seen as connection reset.
    pub ends_rst: u64,
    /// Ends announced by SERVER_TO_CLIENT_NOTIFICATION.
    pub ends_notification: u64,
    /// Histograms, hex V2: setup steps (in [`SETUP_STEPS`] order), lateness, error bound.
    pub hists: Vec<String>,
}

/// The histograms of a [`RunResult`], decoded.
#[derive(Debug, Clone)]
pub struct Hists {
    /// Setup steps in [`SETUP_STEPS`] order.
    pub setup: Vec<Histogram<u64>>,
    /// Upper bound of the reaping lateness, µs: end - (last request sent + timeout).
    pub lateness_upper: Histogram<u64>,
    /// Error bound per session: RTT of its last request, µs.
    pub error_bound: Histogram<u64>,
}

impl Default for Hists {
    fn default() -> Self {
        Hists {
            setup: (0..SETUP_STEPS.len()).map(|_| new_hist()).collect(),
            lateness_upper: new_hist(),
            error_bound: new_hist(),
        }
    }
}

impl Hists {
    /// Encodes into the `hists` field form.
    pub fn encode(&self) -> Vec<String> {
        let mut v: Vec<String> = self.setup.iter().map(hist_to_hex).collect();
        v.push(hist_to_hex(&self.lateness_upper));
        v.push(hist_to_hex(&self.error_bound));
        v
    }

    /// Decodes the `hists` field form.
    pub fn decode(v: &[String]) -> Result<Hists, String> {
        let n = SETUP_STEPS.len();
        if v.len() != n + 2 {
            return Err(format!("expected {} histograms, got {}", n + 2, v.len()));
        }
        let all: Result<Vec<_>, _> = v.iter().map(|s| hist_from_hex(s)).collect();
        let mut all = all?;
        let error_bound = all.pop().unwrap_or_else(new_hist);
        let lateness_upper = all.pop().unwrap_or_else(new_hist);
        Ok(Hists {
            setup: all,
            lateness_upper,
            error_bound,
        })
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Hists) {
        for (a, b) in self.setup.iter_mut().zip(&other.setup) {
            let _ = a.add(b);
        }
        let _ = self.lateness_upper.add(&other.lateness_upper);
        let _ = self.error_bound.add(&other.error_bound);
    }
}

impl RunResult {
    /// Merges another process's result into this one.
    pub fn merge(&mut self, o: &RunResult) -> Result<(), String> {
        let mut h = Hists::decode(&self.hists).unwrap_or_default();
        h.add(&Hists::decode(&o.hists)?);
        self.hists = h.encode();
        self.sessions += o.sessions;
        self.connections += o.connections;
        self.opened += o.opened;
        self.setup_failed += o.setup_failed;
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
        if self.dialect == 0 {
            self.dialect = o.dialect;
        }
        if o.open_start_unix_us != 0
            && (self.open_start_unix_us == 0 || o.open_start_unix_us < self.open_start_unix_us)
        {
            self.open_start_unix_us = o.open_start_unix_us;
        }
        self.open_end_unix_us = self.open_end_unix_us.max(o.open_end_unix_us);
        self.open_secs = self.open_secs.max(o.open_secs);
        self.lateness_us.extend_from_slice(&o.lateness_us);
        self.reaped += o.reaped;
        self.reaped_early += o.reaped_early;
        self.worst_early_us = self.worst_early_us.max(o.worst_early_us);
        self.never_reaped += o.never_reaped;
        self.ends_eof += o.ends_eof;
        self.ends_rst += o.ends_rst;
        self.ends_notification += o.ends_notification;
        Ok(())
    }

    /// Setup rate over the whole open phase (all workers), sessions per second.
    pub fn setup_per_sec(&self) -> f64 {
        let span_us = self
            .open_end_unix_us
            .saturating_sub(self.open_start_unix_us);
        let secs = if span_us > 0 {
            span_us as f64 / 1e6
        } else {
            self.open_secs
        };
        if secs > 0.0 {
            self.opened as f64 / secs
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_keeps_counts() {
        let mut h = new_hist();
        for v in [5u64, 50, 500, 5000, 5_000_000] {
            record(&mut h, v);
        }
        let back = hist_from_hex(&hist_to_hex(&h)).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.max(), h.max());
        assert!(hist_from_hex("0").is_err());
        assert!(hist_from_hex("zz").is_err());
        assert!(hist_from_hex("00").is_err());
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut hs = Hists::default();
        record(&mut hs.lateness_upper, 1000);
        let a = RunResult {
            opened: 10,
            reaped: 10,
            lateness_us: vec![-20],
            open_start_unix_us: 100,
            open_end_unix_us: 1_000_100,
            hists: hs.encode(),
            ..Default::default()
        };
        let mut b = RunResult {
            opened: 5,
            reaped: 4,
            never_reaped: 1,
            lateness_us: vec![30],
            open_start_unix_us: 50,
            open_end_unix_us: 500,
            hists: hs.encode(),
            ..Default::default()
        };
        b.merge(&a).unwrap();
        assert_eq!(b.opened, 15);
        assert_eq!(b.reaped, 14);
        assert_eq!(b.lateness_us, vec![30, -20]);
        assert_eq!(b.open_start_unix_us, 50);
        assert_eq!(b.open_end_unix_us, 1_000_100);
        assert_eq!(Hists::decode(&b.hists).unwrap().lateness_upper.len(), 2);
        assert!((b.setup_per_sec() - 15.0 / 1.00005).abs() < 0.01);
    }

    #[test]
    fn signed_quantiles_are_exact() {
        let v: Vec<i64> = (1..=1000).collect();
        assert_eq!(quantile_sorted(&v, 0.5), Some(500));
        assert_eq!(quantile_sorted(&v, 0.99), Some(990));
        assert_eq!(quantile_sorted(&v, 1.0), Some(1000));
        assert_eq!(quantile_sorted(&v, 0.0), Some(1));
        assert_eq!(quantile_sorted(&[], 0.5), None);
        let s = signed_summary_ms(&[-2000, 1000, 3000]);
        assert_eq!(s["min"].as_f64(), Some(-2.0));
        assert_eq!(s["p50"].as_f64(), Some(1.0));
        assert_eq!(s["max"].as_f64(), Some(3.0));
        assert_eq!(s["count"].as_u64(), Some(3));
    }

    #[test]
    fn summary_has_the_documented_keys() {
        let mut h = new_hist();
        record(&mut h, 1500);
        let s = summary_ms(&h);
        for k in ["count", "min", "mean", "p50", "p90", "p99", "p99_9", "max"] {
            assert!(s.get(k).is_some(), "{k}");
        }
        assert!((s["p99"].as_f64().unwrap() - 1.5).abs() < 0.01);
    }
}
