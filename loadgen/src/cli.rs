//! The command line of `smb-loadgen`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Opens thousands of SMB2/3 IPC$ sessions against a server, lets them sit idle, and measures
/// how precisely the server reaps them (autodisconnect). With no --target it starts an embedded
/// smbcore server on loopback and benchmarks that. `smb-loadgen churn` runs the churn scenario
/// instead (see `smb-loadgen churn --help`).
#[derive(Debug, Clone, Parser)]
#[command(name = "smb-loadgen", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Another scenario than the default one.
    #[command(subcommand)]
    pub scenario: Option<Scenario>,

    /// Server to load (ADDR:PORT). Without it an embedded smbcore server is started on
    /// 127.0.0.1 with --autodisconnect.
    #[arg(long, value_name = "ADDR:PORT")]
    pub target: Option<SocketAddr>,

    /// Number of idle IPC$ sessions to open.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub sessions: u64,

    /// Sessions per TCP connection (SMB2 allows many; one process then goes past the
    /// open-files limit).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub sessions_per_connection: u32,

    /// Target opening rate in sessions per second (open loop; setup latency is measured from
    /// each session's planned start). Default: as fast as possible with --concurrency
    /// connections in flight.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Connections being set up at once when no --rate is given.
    #[arg(long, default_value_t = 64, value_name = "C")]
    pub concurrency: usize,

    /// Local source addresses to spread connections over: `127.0.0.2-127.0.0.9` or a
    /// comma-separated list.
    #[arg(long, value_name = "RANGE", value_parser = parse_ip_range)]
    pub source_ips: Option<IpList>,

    /// Worker processes opening sessions (each holds its own connections and file
    /// descriptors).
    #[arg(long, default_value_t = 1, value_name = "W")]
    pub workers: u32,

    /// The server's autodisconnect (idle timeout) the deadlines are computed from; also what
    /// the embedded server is configured with. `500ms`, `3s`, `1m`.
    #[arg(long, default_value = "3s", value_parser = parse_duration, value_name = "DURATION")]
    pub autodisconnect: Duration,

    /// How long past each session's deadline to wait before counting it as never reaped.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub hold: Duration,

    /// Log in as this user (NTLMv2) instead of anonymously.
    #[arg(long, value_name = "U", requires = "password")]
    pub user: Option<String>,

    /// Password for --user.
    #[arg(long, value_name = "P")]
    pub password: Option<String>,

    /// Domain for --user.
    #[arg(long, default_value = "", value_name = "D")]
    pub domain: String,

    /// Probe connections that send ECHO at --probe-rate while the sessions sit idle (each
    /// holds the srvsvc pipe open so it is never reaped itself).
    #[arg(long, default_value_t = 2, value_name = "P")]
    pub probes: u32,

    /// ECHOs per second per probe.
    #[arg(long, default_value_t = 100.0, value_name = "R")]
    pub probe_rate: f64,

    /// How long the probes run before any session is opened (the "without idle sessions"
    /// baseline).
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub baseline: Duration,

    /// Dialect to offer: 2.0.2, 2.1, 3.0, 3.0.2, 3.1.1, or `all`.
    #[arg(long, default_value = "all", value_name = "D")]
    pub dialect: String,

    /// Shard threads of the embedded server (default: its automatic value).
    #[arg(long, value_name = "T")]
    pub server_threads: Option<usize>,

    /// Write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the histograms as an HdrHistogram interval log to FILE.
    #[arg(long, value_name = "FILE")]
    pub hist: Option<PathBuf>,

    /// Write an SVG percentile plot of the reaping lateness to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Plain progress lines instead of a progress bar.
    #[arg(long)]
    pub no_progress: bool,

    /// Internal: run as worker I of a multi-process run and print raw results as JSON.
    #[arg(long, hide = true, value_name = "I")]
    pub worker_index: Option<u32>,

    /// Internal: the first global session index of this worker.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_first: u64,
}

/// The scenarios besides the default one.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// Churn sessions for a while at a steady rate: each new connection opens an anonymous (or
    /// --user) IPC$ session and meets a fate from --mix (idle until reaped, LOGOFF, LOGOFF and
    /// re-open, srvsvc pipe opened and closed, TCP dropped, setup abandoned).
    Churn(ChurnArgs),
}

/// The command line of `smb-loadgen churn`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Server to load (ADDR:PORT). Without it an embedded smbcore server is started on
    /// 127.0.0.1 with --autodisconnect.
    #[arg(long, value_name = "ADDR:PORT")]
    pub target: Option<SocketAddr>,

    /// Sessions started per second (open loop; a re-opening connection starts two).
    #[arg(long, default_value_t = 200.0, value_name = "R")]
    pub rate: f64,

    /// How long to start new connections; the run then waits for the last ones to meet
    /// their fate (at most --autodisconnect + --hold more). `90s`, `30m`.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,

    /// The server's autodisconnect (idle timeout), from which the waiting connections'
    /// deadlines are computed; also what the embedded server is configured with.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub autodisconnect: Duration,

    /// How long past its deadline a waiting connection may stay open before it counts as
    /// not reaped (the generator then closes it itself).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub hold: Duration,

    /// How long a request may wait for its response before the connection counts as failed.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,

    /// The fates and their weights, e.g. `idle=3,logoff=2,reopen=2,pipe=1,pipe-unread=1,drop=2,abort=1`
    /// (fates left out get weight 0; they are dealt in a fixed interleaved order).
    #[arg(long, default_value = crate::churn::DEFAULT_MIX, value_parser = crate::churn::Mix::parse, value_name = "MIX")]
    pub mix: crate::churn::Mix,

    /// Log in as this user (NTLMv2) instead of anonymously.
    #[arg(long, value_name = "U", requires = "password")]
    pub user: Option<String>,

    /// Password for --user.
    #[arg(long, value_name = "P")]
    pub password: Option<String>,

    /// Domain for --user.
    #[arg(long, default_value = "", value_name = "D")]
    pub domain: String,

    /// Dialect to offer: 2.0.2, 2.1, 3.0, 3.0.2, 3.1.1, or `all`.
    #[arg(long, default_value = "all", value_name = "D")]
    pub dialect: String,

    /// Shard threads of the embedded server (default: its automatic value).
    #[arg(long, value_name = "T")]
    pub server_threads: Option<usize>,

    /// A progress line on stderr this often (`0s`: none).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub progress_every: Duration,

    /// Write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// A list of IPv4 source addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpList(pub Vec<Ipv4Addr>);

/// Parses `a.b.c.d-e.f.g.h` (inclusive, at most 1024 addresses) or `a,b,c`.
pub fn parse_ip_range(s: &str) -> Result<IpList, String> {
    let bad = |x: &str| format!("bad address '{x}' in --source-ips '{s}'");
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|_| bad(a))?;
            let b: Ipv4Addr = b.trim().parse().map_err(|_| bad(b))?;
            let (lo, hi) = (u32::from(a), u32::from(b));
            if hi < lo {
                return Err(format!("empty range '{part}' in --source-ips"));
            }
            if hi - lo >= 1024 {
                return Err(format!("range '{part}' has more than 1024 addresses"));
            }
            out.extend((lo..=hi).map(Ipv4Addr::from));
        } else {
            out.push(part.parse().map_err(|_| bad(part))?);
        }
    }
    if out.is_empty() {
        return Err("--source-ips names no address".into());
    }
    Ok(IpList(out))
}

/// Parses a duration with a unit (`500ms`, `3s`, `2m`, `1h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    smb_server::config::parse_duration(s).map_err(|e| e.0)
}

/// The dialects `--dialect` names, ascending.
pub fn parse_dialects(s: &str) -> Result<Vec<u16>, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(crate::proto::ALL_DIALECTS.to_vec());
    }
    let d = smb_server::config::parse_dialect(s).map_err(|e| e.0)?;
    Ok(vec![d])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_range_and_list() {
        let r = parse_ip_range("127.0.0.2-127.0.0.4").unwrap();
        assert_eq!(
            r.0,
            vec![
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 3),
                Ipv4Addr::new(127, 0, 0, 4)
            ]
        );
        let r = parse_ip_range("127.0.0.9, 127.0.1.1").unwrap();
        assert_eq!(r.0.len(), 2);
        assert!(parse_ip_range("127.0.0.5-127.0.0.4").is_err());
        assert!(parse_ip_range("127.0.0.1-127.0.255.255").is_err());
        assert!(parse_ip_range("nonsense").is_err());
        assert!(parse_ip_range(",").is_err());
    }

    #[test]
    fn dialects() {
        assert_eq!(parse_dialects("3.1.1").unwrap(), vec![0x0311]);
        assert_eq!(parse_dialects("ALL").unwrap().len(), 5);
        assert!(parse_dialects("4.0").is_err());
    }

    #[test]
    fn defaults_parse() {
        let a = Args::try_parse_from(["smb-loadgen"]).unwrap();
        assert_eq!(a.sessions, 2000);
        assert_eq!(a.autodisconnect, Duration::from_secs(3));
        assert!(Args::try_parse_from(["smb-loadgen", "--user", "u"]).is_err());
        let a = Args::try_parse_from(["smb-loadgen", "--autodisconnect", "500ms"]).unwrap();
        assert_eq!(a.autodisconnect, Duration::from_millis(500));
        assert!(a.scenario.is_none());
    }

    #[test]
    fn churn_subcommand() {
        let a = Args::try_parse_from(["smb-loadgen", "churn", "--rate", "50", "--duration", "5m"])
            .unwrap();
        let Some(Scenario::Churn(c)) = a.scenario else {
            panic!("not churn")
        };
        assert_eq!(c.rate, 50.0);
        assert_eq!(c.duration, Duration::from_secs(300));
        assert_eq!(c.autodisconnect, Duration::from_secs(2));
        assert_eq!(c.mix.to_string(), crate::churn::DEFAULT_MIX);
        // The default scenario's options do not mix with a subcommand.
        assert!(Args::try_parse_from(["smb-loadgen", "--sessions", "5", "churn"]).is_err());
        assert!(Args::try_parse_from(["smb-loadgen", "churn", "--mix", "idle=1,nap=2"]).is_err());
    }
}
