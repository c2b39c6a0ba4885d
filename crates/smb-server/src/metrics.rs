//! Prometheus metrics over HTTP (`--metrics ADDR:PORT`, path `/metrics`).
//!
//! The figures are those of `smbcore ctl stats`, in the Prometheus text
//! exposition format (version 0.0.4). The endpoint is a tiny HTTP/1.0
//! responder: one GET per connection, then close. Each client is served on a
//! thread of its own (at most [`MAX_CLIENTS`] at once; more get 503) with
//! [`IO_TIMEOUT`] to send its request and take the answer, so a slow client
//! holds up only itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client_slots::ClientSlots;
use crate::Shared;

/// Metrics clients served at once.
pub const MAX_CLIENTS: usize = 8;
/// Time a client has to send its request, and to take the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

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
        (
            "logons_failed",
            "counter",
            "Failed logons (wrong password, unknown user, malformed or refused authentication).",
        ),
        (
            "kerberos_logons",
            "counter",
            "Successful Kerberos logons and re-authentications.",
        ),
        (
            "kerberos_refused_replay",
            "counter",
            "Kerberos AP-REQs refused as replays.",
        ),
        (
            "kerberos_refused_skew",
            "counter",
            "Kerberos AP-REQs refused for clock skew.",
        ),
        (
            "kerberos_refused_wrong_service",
            "counter",
            "Kerberos AP-REQs refused for naming another service.",
        ),
        (
            "kerberos_tickets_expired",
            "counter",
            "Kerberos sessions whose ticket ended.",
        ),
        (
            "session_expired_requests",
            "counter",
            "Requests answered STATUS_NETWORK_SESSION_EXPIRED.",
        ),
        (
            "logons_delayed",
            "counter",
            "Failed logons whose answer was held back by auth-failure-delay.",
        ),
        (
            "logons_waiting",
            "gauge",
            "Answers to failed logons waiting out auth-failure-delay now.",
        ),
        (
            "connections_refused",
            "counter",
            "Connections refused at max-connections.",
        ),
        (
            "client_memory_bytes",
            "gauge",
            "Bytes clients make the server hold in pipe buffers, all shards.",
        ),
        (
            "output_queued_bytes",
            "gauge",
            "Bytes of output waiting for peers that have not read them.",
        ),
        (
            "memory_budget_bytes",
            "gauge",
            "The memory-budget setting in force.",
        ),
        ("connections", "gauge", "Open connections."),
        (
            "sockets",
            "gauge",
            "Sockets the transports hold open, closing ones included.",
        ),
        (
            "connections_refused_per_client",
            "counter",
            "Connections refused at max-connections-per-client.",
        ),
        (
            "client_addresses",
            "gauge",
            "Client addresses with live connections.",
        ),
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
    for (what, key) in [
        ("sessions", "sessions_ended"),
        ("connections", "connections_ended"),
    ] {
        if let Some(m) = stats[key].as_object() {
            out.push_str(&format!(
                "# HELP smbcore_{what}_ended_total {what} ended, by reason.\n# TYPE smbcore_{what}_ended_total counter\n"
            ));
            for (reason, v) in m {
                out.push_str(&format!(
                    "smbcore_{what}_ended_total{{reason=\"{reason}\"}} {}\n",
                    v.as_u64().unwrap_or(0)
                ));
            }
        }
    }
    if let Some(m) = stats["lateness_us_by_reason"].as_object() {
        out.push_str(
            "# HELP smbcore_reap_lateness_by_reason_seconds Reap time minus deadline, by reason.\n# TYPE smbcore_reap_lateness_by_reason_seconds summary\n",
        );
        for (reason, l) in m {
            for (q, key) in [("0.5", "p50"), ("0.99", "p99"), ("1", "max")] {
                let us = l[key].as_u64().unwrap_or(0);
                out.push_str(&format!(
                    "smbcore_reap_lateness_by_reason_seconds{{reason=\"{reason}\",quantile=\"{q}\"}} {}\n",
                    us as f64 / 1e6
                ));
            }
            out.push_str(&format!(
                "smbcore_reap_lateness_by_reason_seconds_count{{reason=\"{reason}\"}} {}\n",
                l["count"].as_u64().unwrap_or(0)
            ));
        }
    }
    if let Some(shards) = stats["xdp"].as_array().filter(|a| !a.is_empty()) {
        // Per xdp shard: gauges of the flows held, parks and restores, then every drop counter
        // (the AF_XDP socket's XDP_STATISTICS and the TCP stack's) as one
        // counter family with a `reason` label.
        out.push_str("# HELP smbcore_xdp_flows TCP connections an xdp shard holds (half-open included).\n# TYPE smbcore_xdp_flows gauge\n");
        for sh in shards {
            let id = sh["shard"].as_u64().unwrap_or(0);
            out.push_str(&format!(
                "smbcore_xdp_flows{{shard=\"{id}\"}} {}\nsmbcore_xdp_flows{{shard=\"{id}\",state=\"half_open\"}} {}\nsmbcore_xdp_flows{{shard=\"{id}\",state=\"parked\"}} {}\nsmbcore_xdp_flows{{shard=\"{id}\",state=\"time_wait\"}} {}\n",
                sh["flows"].as_u64().unwrap_or(0),
                sh["half_open"].as_u64().unwrap_or(0),
                sh["parked"].as_u64().unwrap_or(0),
                sh["time_wait"].as_u64().unwrap_or(0)
            ));
        }
        out.push_str("# HELP smbcore_xdp_parks_total Idle TCP connections parked (socket and buffers freed) and restored.\n# TYPE smbcore_xdp_parks_total counter\n");
        for sh in shards {
            let id = sh["shard"].as_u64().unwrap_or(0);
            out.push_str(&format!(
                "smbcore_xdp_parks_total{{shard=\"{id}\",event=\"park\"}} {}\nsmbcore_xdp_parks_total{{shard=\"{id}\",event=\"restore\"}} {}\n",
                sh["tcp_parks"].as_u64().unwrap_or(0),
                sh["tcp_restores"].as_u64().unwrap_or(0)
            ));
        }
        out.push_str("# HELP smbcore_xdp_aborted_total TCP connections an xdp shard lost other than by the close handshake: reset by the peer, or timed out (retransmissions or keep-alive probes unanswered).\n# TYPE smbcore_xdp_aborted_total counter\n");
        for sh in shards {
            let id = sh["shard"].as_u64().unwrap_or(0);
            out.push_str(&format!(
                "smbcore_xdp_aborted_total{{shard=\"{id}\",reason=\"reset_by_peer\"}} {}\nsmbcore_xdp_aborted_total{{shard=\"{id}\",reason=\"timed_out\"}} {}\n",
                sh["tcp_reset_by_peer"].as_u64().unwrap_or(0),
                sh["tcp_timed_out"].as_u64().unwrap_or(0)
            ));
        }
        out.push_str("# HELP smbcore_xdp_dropped_total Frames and segments an xdp shard dropped, refused or answered without acting on them (challenge ACKs, RSTs to no connection), by reason.\n# TYPE smbcore_xdp_dropped_total counter\n");
        for sh in shards {
            let id = sh["shard"].as_u64().unwrap_or(0);
            if let Some(m) = sh.as_object() {
                for (reason, v) in m {
                    if matches!(
                        reason.as_str(),
                        "shard"
                            | "flows"
                            | "half_open"
                            | "parked"
                            | "time_wait"
                            | "tcp_time_wait_reopened"
                            | "tcp_parks"
                            | "tcp_restores"
                            | "tcp_reset_by_peer"
                            | "tcp_timed_out"
                    ) {
                        continue;
                    }
                    out.push_str(&format!(
                        "smbcore_xdp_dropped_total{{shard=\"{id}\",reason=\"{reason}\"}} {}\n",
                        v.as_u64().unwrap_or(0)
                    ));
                }
            }
        }
    }
    if let Some(t) = stats["transport"].as_str() {
        out.push_str(
            "# HELP smbcore_shard_info The transport each shard runs.\n# TYPE smbcore_shard_info gauge\n",
        );
        for shard in 0..stats["shards"].as_u64().unwrap_or(0) {
            out.push_str(&format!(
                "smbcore_shard_info{{shard=\"{shard}\",transport=\"{t}\"}} 1\n"
            ));
        }
    }
    out
}

/// Bind the metrics endpoint (served by [`spawn`] once the server starts).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot serve metrics on {addr}: {e}")))
}

/// Serve `/metrics` on `listener` (each client on a thread of its own), until
/// `shared.stopping` is set and a connection wakes the thread.
pub(crate) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("smbcore-metrics".into())
        .spawn(move || {
            let slots = ClientSlots::new(MAX_CLIENTS);
            for stream in listener.incoming() {
                if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = stream else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = s.set_write_timeout(Some(IO_TIMEOUT));
                let Some(slot) = slots.acquire() else {
                    respond(&mut s, "503 Service Unavailable", "text/plain", "busy\n");
                    continue;
                };
                let shared = shared.clone();
                if let Err(e) =
                    slot.spawn("smbcore-metrics-client", move || serve_client(s, &shared))
                {
                    tracing::warn!(error = %e, "cannot start a metrics client thread");
                }
            }
        })
}

fn serve_client(mut s: TcpStream, shared: &Shared) {
    // The request line, however it is split, within IO_TIMEOUT.
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while n < buf.len() && !buf[..n].contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    if buf[..n].starts_with(b"GET /metrics") {
        let body = render(&crate::admin::stats_json(shared));
        respond(&mut s, "200 OK", "text/plain; version=0.0.4", &body);
    } else {
        respond(&mut s, "404 Not Found", "text/plain", "try /metrics\n");
    }
}

fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
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

    #[test]
    fn renders_the_xdp_shards_drop_counters() {
        let c = crate::transport::xdp::XdpCounters {
            xsk: crate::transport::xdp::XskCounters {
                rx_ring_full: 5,
                ..Default::default()
            },
            tcp: smb_usertcp::StackStats {
                bad_checksum: 3,
                half_open_evicted: 9,
                reset_by_peer: 4,
                ..Default::default()
            },
            flows: 12,
            half_open: 2,
            parked: 7,
            time_wait: 3,
        };
        let v = serde_json::json!({ "xdp": [crate::admin::xdp_json(1, &c)] });
        let text = render(&v);
        for line in [
            "smbcore_xdp_flows{shard=\"1\"} 12\n",
            "smbcore_xdp_flows{shard=\"1\",state=\"half_open\"} 2\n",
            "smbcore_xdp_flows{shard=\"1\",state=\"parked\"} 7\n",
            "smbcore_xdp_flows{shard=\"1\",state=\"time_wait\"} 3\n",
            "smbcore_xdp_parks_total{shard=\"1\",event=\"park\"} 0\n",
            "smbcore_xdp_dropped_total{shard=\"1\",reason=\"rx_ring_full\"} 5\n",
            "smbcore_xdp_dropped_total{shard=\"1\",reason=\"tcp_bad_checksum\"} 3\n",
            "smbcore_xdp_dropped_total{shard=\"1\",reason=\"tcp_half_open_evicted\"} 9\n",
            "smbcore_xdp_dropped_total{shard=\"1\",reason=\"rx_dropped\"} 0\n",
            "smbcore_xdp_aborted_total{shard=\"1\",reason=\"reset_by_peer\"} 4\n",
            "smbcore_xdp_aborted_total{shard=\"1\",reason=\"timed_out\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        // Connections lost are not counted as drops.
        assert!(!text.contains("reason=\"tcp_reset_by_peer\""), "{text}");
        // Nothing of the kind on the other transports.
        assert!(!render(&serde_json::json!({ "xdp": [] })).contains("smbcore_xdp"));
    }
}
