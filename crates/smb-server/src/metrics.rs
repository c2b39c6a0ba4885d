//! Prometheus metrics over HTTP (`--metrics ADDR:PORT`, path `/metrics`).
//!
//! The figures are those of `smbcore ctl stats`, in the Prometheus text
//! exposition format (version 0.0.4). The endpoint is a tiny blocking HTTP/1.0
//! responder on its own thread: it answers one GET at a time and closes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::Shared;

/// Render the stats JSON of [`crate::admin::stats_json`] as Prometheus text.
pub fn render(stats: &Value) -> String {
    let mut out = String::new();
    let counters = [
        (
            "sessions_timed_out",
            "counter",
            "Sessions reaped by autodisconnect.",
        ),
        (
            "sessions_disconnected_by_admin",
            "counter",
            "Sessions disconnected by an administrator.",
        ),
        (
            "sessions_logged_off",
            "counter",
            "Sessions logged off by clients.",
        ),
        (
            "pre_auth_timeouts",
            "counter",
            "Connections closed for not authenticating in time.",
        ),
        (
            "protocol_errors",
            "counter",
            "Connections dropped for protocol errors.",
        ),
        ("auth_failures", "counter", "Failed authentications."),
        (
            "connections_refused",
            "counter",
            "Connections refused at max-connections.",
        ),
        ("connections", "gauge", "Open connections."),
        ("sessions", "gauge", "Sessions."),
        ("trees", "gauge", "Tree connects."),
    ];
    for (name, kind, help) in counters {
        let v = stats[name].as_u64().unwrap_or(0);
        let suffix = if kind == "counter" { "_total" } else { "" };
        out.push_str(&format!(
            "# HELP smbcore_{name}{suffix} {help}\n# TYPE smbcore_{name}{suffix} {kind}\nsmbcore_{name}{suffix} {v}\n"
        ));
    }
    let l = &stats["lateness_us"];
    out.push_str(
        "# HELP smbcore_reap_lateness_seconds Reap time minus deadline, per reaped session.\n",
    );
    out.push_str("# TYPE smbcore_reap_lateness_seconds summary\n");
    for (q, key) in [
        ("0.5", "p50"),
        ("0.9", "p90"),
        ("0.99", "p99"),
        ("0.999", "p99_9"),
        ("1", "max"),
    ] {
        let us = l[key].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "smbcore_reap_lateness_seconds{{quantile=\"{q}\"}} {}\n",
            us as f64 / 1e6
        ));
    }
    out.push_str(&format!(
        "smbcore_reap_lateness_seconds_count {}\n",
        l["count"].as_u64().unwrap_or(0)
    ));
    out
}

/// Bind the metrics endpoint (served by [`spawn`] once the server starts).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot serve metrics on {addr}: {e}")))
}

/// Serve `/metrics` on `listener`, until `shared.stopping` is set and a
/// connection wakes the thread.
pub(crate) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("smbcore-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let (status, body, ctype) = if req.starts_with("GET /metrics") {
                    (
                        "200 OK",
                        render(&crate::admin::stats_json(&shared)),
                        "text/plain; version=0.0.4",
                    )
                } else {
                    ("404 Not Found", "try /metrics\n".to_string(), "text/plain")
                };
                let _ = write!(
                    s,
                    "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_quantiles() {
        let v = serde_json::json!({
            "sessions_timed_out": 7, "sessions": 3,
            "lateness_us": {"count": 7, "p50": 1500, "p90": 1800, "p99": 2000, "p99_9": 2100, "max": 2500}
        });
        let text = render(&v);
        assert!(
            text.contains("smbcore_sessions_timed_out_total 7\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE smbcore_sessions gauge\nsmbcore_sessions 3\n"));
        assert!(text.contains("smbcore_reap_lateness_seconds{quantile=\"0.99\"} 0.002\n"));
        assert!(text.contains("smbcore_reap_lateness_seconds_count 7\n"));
    }
}
