//! The command line of `smb-loadgen`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::proto::Cipher;

/// Loads an SMB2/3 server and measures it. `--scenario idle` (the default) opens thousands of
/// IPC$ sessions, lets them sit idle, and measures how precisely the server reaps them
/// (autodisconnect); `--scenario echo` measures ECHO requests/s and latency on --connections
/// connections with --queue-depth requests in flight each; `--scenario churn` measures
/// sessions/s and per-step latency of SESSION_SETUP + TREE_CONNECT IPC$ + LOGOFF in a loop. With
/// no --target it starts an embedded smbcore server on loopback and benchmarks that. The
/// `smb-loadgen churn` subcommand is another load: sessions meeting a mix of fates at a fixed
/// rate, for soaks (see `smb-loadgen churn --help`).
#[derive(Debug, Clone, Parser)]
#[command(name = "smb-loadgen", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Another scenario than the default one.
    #[command(subcommand)]
    pub scenario: Option<Scenario>,

    /// What to measure: `idle` (sessions opened and left idle until reaped), `echo` (ECHO
    /// throughput and latency) or `churn` (session setup + LOGOFF in a loop).
    #[arg(long = "scenario", value_enum, default_value_t = ScenarioKind::Idle, value_name = "NAME")]
    pub scenario_kind: ScenarioKind,

    /// Server to load (ADDR:PORT). Without it an embedded smbcore server is started on
    /// 127.0.0.1 (idle: with --autodisconnect; echo and churn: with autodisconnect off).
    #[arg(long, value_name = "ADDR:PORT")]
    pub target: Option<SocketAddr>,

    /// idle: IPC$ sessions to open (default 2000). churn: sessions to set up and log off in
    /// all (default: as many as --duration allows).
    #[arg(long, value_name = "N")]
    pub sessions: Option<u64>,

    /// echo, churn: TCP connections (default 100). churn: with --new-connection-each-time,
    /// the sessions in progress at once.
    #[arg(long, value_name = "C")]
    pub connections: Option<u32>,

    /// echo: ECHO requests in flight per connection (default 4), as far as the credits the
    /// server grants allow.
    #[arg(long, value_name = "Q")]
    pub queue_depth: Option<u32>,

    /// echo, churn: how long to send (default 10s unless --requests or --sessions bounds the
    /// run; with both, whichever ends first). `5s`, `2m`.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,

    /// echo: ECHO requests to send in all.
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,

    /// churn: a new TCP connection for every session (connect, NEGOTIATE, SESSION_SETUP x2,
    /// TREE_CONNECT IPC$, LOGOFF, close) instead of sessions one after another on kept
    /// connections.
    #[arg(long)]
    pub new_connection_each_time: bool,

    /// echo, churn: longest wait for a response before it counts as an error (default 10s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,

    /// echo, churn without --rate (closed loop): the expected interval between two requests
    /// of one in-flight slot for the coordinated-omission correction (HdrHistogram
    /// record_correct). Default: the median latency measured.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub expected_interval: Option<Duration>,

    /// Sessions per TCP connection (SMB2 allows many; one process then goes past the
    /// open-files limit).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub sessions_per_connection: u32,

    /// Open loop: idle: sessions opened per second; echo: ECHO requests per second (all
    /// connections together); churn: sessions per second. Latency is then measured from each
    /// one's planned start. Default: as fast as possible (closed loop).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Connections being set up at once (idle: when no --rate is given; echo and churn: before
    /// the measurement starts).
    #[arg(long, default_value_t = 64, value_name = "C")]
    pub concurrency: usize,

    /// Local source addresses to spread connections over: `127.0.0.2-127.0.0.9` or a
    /// comma-separated list.
    #[arg(long, value_name = "RANGE", value_parser = parse_ip_range)]
    pub source_ips: Option<IpList>,

    /// Worker processes holding the client side (each its own connections and file
    /// descriptors; echo and churn split --connections, --rate, --requests and --sessions
    /// over them).
    #[arg(long, default_value_t = 1, value_name = "W")]
    pub workers: u32,

    /// The server's autodisconnect (idle timeout) the deadlines are computed from; also what
    /// the embedded server is configured with. `500ms`, `3s`, `1m`.
    #[arg(long, default_value = "3s", value_parser = parse_duration, value_name = "DURATION")]
    pub autodisconnect: Duration,

    /// How long past each session's deadline to wait before counting it as never reaped.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub hold: Duration,

    /// Log in with Kerberos (SPNEGO, one leg): tickets from the default ccache
    /// (KRB5CCNAME), or with --user/--password from the KDC (kept in memory). The server
    /// must be named as its service principal says (--kerberos-service).
    #[arg(long)]
    pub kerberos: bool,

    /// The service principal for --kerberos: `cifs/<host>`.
    #[arg(long, default_value = "cifs/localhost", value_name = "SPN")]
    pub kerberos_service: String,

    /// Log in as this user (NTLMv2) instead of anonymously.
    #[arg(long, value_name = "U", requires = "password")]
    pub user: Option<String>,

    /// Password for --user.
    #[arg(long, value_name = "P")]
    pub password: Option<String>,

    /// Domain for --user.
    #[arg(long, default_value = "", value_name = "D")]
    pub domain: String,

    /// Encrypt every request after SESSION_SETUP into TRANSFORM messages and open the
    /// encrypted responses (MS-SMB2 3.1.4.3, 3.2.5.1.1.1): needs --user (an anonymous
    /// session has no keys) and a 3.x dialect. A response in the clear fails the connection.
    #[arg(long, requires = "user")]
    pub encrypt: bool,

    /// The one cipher to offer with --encrypt: aes-128-ccm, aes-128-gcm, aes-256-ccm or
    /// aes-256-gcm (default: all four, AES-128-GCM first). 3.0 and 3.0.2 have AES-128-CCM only.
    #[arg(long, value_name = "NAME", requires = "encrypt", value_parser = parse_cipher)]
    pub cipher: Option<Cipher>,

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

    /// Write an SVG percentile plot to FILE (idle: reaping lateness; echo: ECHO latency;
    /// churn: session latency and its steps).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Plain progress lines instead of a progress bar.
    #[arg(long)]
    pub no_progress: bool,

    /// Internal: run as worker I of a multi-process run and print raw results as JSON.
    #[arg(long, hide = true, value_name = "I")]
    pub worker_index: Option<u32>,

    /// Internal: the first global session (idle) or connection (echo, churn) index of this
    /// worker.
    #[arg(long, hide = true, default_value_t = 0)]
    pub worker_first: u64,
}

/// The scenarios of `--scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScenarioKind {
    /// Open sessions, let them idle, measure the reaping (the default).
    #[default]
    Idle,
    /// ECHO requests on kept connections: requests/s and latency.
    Echo,
    /// SESSION_SETUP + TREE_CONNECT IPC$ + LOGOFF in a loop: sessions/s and step latency.
    Churn,
}

impl ScenarioKind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Idle => "idle",
            ScenarioKind::Echo => "echo",
            ScenarioKind::Churn => "churn",
        }
    }
}

/// The default of `--sessions` for the idle scenario.
pub const DEFAULT_SESSIONS: u64 = 2000;
/// The default of `--connections`.
pub const DEFAULT_CONNECTIONS: u32 = 100;
/// The default of `--queue-depth`.
pub const DEFAULT_QUEUE_DEPTH: u32 = 4;
/// The default of `--duration` when no count bounds the run.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// The default of `--request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of the idle scenario only (clap ids), refused with another scenario when given.
pub const IDLE_ONLY: [&str; 6] = [
    "sessions_per_connection",
    "autodisconnect",
    "hold",
    "probes",
    "probe_rate",
    "baseline",
];

impl Args {
    /// Sessions of the idle scenario (`--sessions`, default 2000).
    pub fn sessions(&self) -> u64 {
        self.sessions.unwrap_or(DEFAULT_SESSIONS)
    }

    /// Checks that the options given fit `--scenario`, and their values. `given(id)` says
    /// whether an option with a default value was given on the command line (the binary
    /// asks clap; a library caller that built `Args` itself may answer `false`).
    pub fn check_scenario(&self, given: &dyn Fn(&str) -> bool) -> Result<(), String> {
        let kind = self.scenario_kind;
        let flag = |id: &str| format!("--{}", id.replace('_', "-"));
        let only = |id: &str, set: bool, who: &[ScenarioKind]| -> Result<(), String> {
            if set && !who.contains(&kind) {
                let names: Vec<&str> = who.iter().map(|k| k.name()).collect();
                return Err(format!(
                    "{} applies to --scenario {} only (this is --scenario {})",
                    flag(id),
                    names.join(" and "),
                    kind.name()
                ));
            }
            Ok(())
        };
        use ScenarioKind::{Churn, Echo, Idle};
        only("connections", self.connections.is_some(), &[Echo, Churn])?;
        only("duration", self.duration.is_some(), &[Echo, Churn])?;
        only(
            "request_timeout",
            self.request_timeout.is_some(),
            &[Echo, Churn],
        )?;
        only(
            "expected_interval",
            self.expected_interval.is_some(),
            &[Echo, Churn],
        )?;
        only("queue_depth", self.queue_depth.is_some(), &[Echo])?;
        only("requests", self.requests.is_some(), &[Echo])?;
        only(
            "new_connection_each_time",
            self.new_connection_each_time,
            &[Churn],
        )?;
        only("sessions", self.sessions.is_some(), &[Idle, Churn])?;
        for id in IDLE_ONLY {
            only(id, given(id), &[Idle])?;
        }
        if kind == Idle {
            return Ok(());
        }
        if self.connections == Some(0) {
            return Err("--connections must be at least 1".into());
        }
        if self.queue_depth == Some(0) {
            return Err("--queue-depth must be at least 1".into());
        }
        if self.queue_depth.is_some_and(|q| q > 8192) {
            return Err("--queue-depth is at most 8192 (the credits a server grants)".into());
        }
        if self.requests == Some(0) || (kind == Churn && self.sessions == Some(0)) {
            return Err("a run of 0 requests measures nothing".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err("--duration must be above 0".into());
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err("--rate must be a positive number per second".into());
        }
        if self.rate.is_some() && self.expected_interval.is_some() {
            return Err(
                "--expected-interval corrects the closed loop; with --rate latency is \
                        measured from each request's planned send time instead"
                    .into(),
            );
        }
        Ok(())
    }
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

    /// Log in with Kerberos (SPNEGO, one leg): tickets from the default ccache
    /// (KRB5CCNAME), or with --user/--password from the KDC (kept in memory). The server
    /// must be named as its service principal says (--kerberos-service).
    #[arg(long)]
    pub kerberos: bool,

    /// The service principal for --kerberos: `cifs/<host>`.
    #[arg(long, default_value = "cifs/localhost", value_name = "SPN")]
    pub kerberos_service: String,

    /// Log in as this user (NTLMv2) instead of anonymously.
    #[arg(long, value_name = "U", requires = "password")]
    pub user: Option<String>,

    /// Password for --user.
    #[arg(long, value_name = "P")]
    pub password: Option<String>,

    /// Domain for --user.
    #[arg(long, default_value = "", value_name = "D")]
    pub domain: String,

    /// Encrypt every request after SESSION_SETUP into TRANSFORM messages and open the
    /// encrypted responses (MS-SMB2 3.1.4.3, 3.2.5.1.1.1): needs --user (an anonymous
    /// session has no keys) and a 3.x dialect. A response in the clear fails the connection.
    #[arg(long, requires = "user")]
    pub encrypt: bool,

    /// The one cipher to offer with --encrypt: aes-128-ccm, aes-128-gcm, aes-256-ccm or
    /// aes-256-gcm (default: all four, AES-128-GCM first). 3.0 and 3.0.2 have AES-128-CCM only.
    #[arg(long, value_name = "NAME", requires = "encrypt", value_parser = parse_cipher)]
    pub cipher: Option<Cipher>,

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

/// The login: Kerberos (`--kerberos`, with `user` obtaining a ticket when given),
/// NTLMv2 as `user`, or anonymous.
pub fn auth_for(
    kerberos: bool,
    service: &str,
    user: Option<(&str, &str)>,
    domain: &str,
) -> Result<smb_client::Auth, String> {
    use smb_client::Auth;
    if kerberos {
        return kerberos_auth(service, user);
    }
    Ok(match user {
        Some((name, password)) => Auth::User {
            name: name.into(),
            domain: domain.into(),
            password: password.into(),
        },
        None => Auth::Anonymous,
    })
}

#[cfg(feature = "kerberos")]
fn kerberos_auth(service: &str, user: Option<(&str, &str)>) -> Result<smb_client::Auth, String> {
    let init = smb_krb5::GssInitiator::new(service, user)?;
    Ok(smb_client::Auth::Kerberos(smb_client::KerberosClient(
        std::sync::Arc::new(init),
    )))
}

#[cfg(not(feature = "kerberos"))]
fn kerberos_auth(_: &str, _: Option<(&str, &str)>) -> Result<smb_client::Auth, String> {
    Err("--kerberos: this smb-loadgen was built without the `kerberos` feature".into())
}

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

/// Parses a duration with a unit (`250us`, `500ms`, `3s`, `2m`, `1h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Some(n) = t.strip_suffix("us").or_else(|| t.strip_suffix("µs")) {
        if let Ok(n) = n.parse::<u64>() {
            return Ok(Duration::from_micros(n));
        }
    }
    smb_server::config::parse_duration(s).map_err(|e| format!("{} (or microseconds: 250us)", e.0))
}

/// A `--cipher` name.
pub fn parse_cipher(s: &str) -> Result<Cipher, String> {
    Cipher::from_name(s).ok_or_else(|| {
        format!("unknown cipher '{s}' (aes-128-ccm, aes-128-gcm, aes-256-ccm, aes-256-gcm)")
    })
}

/// The ciphers to offer for `--encrypt` / `--cipher` with `dialects` (empty without
/// --encrypt): the one named, or all four, preferring AES-128-GCM (the fastest where AES-NI
/// and carry-less multiply are there), then AES-128-CCM (all 3.0 / 3.0.2 have), then 256.
pub fn ciphers_for(
    encrypt: bool,
    cipher: Option<Cipher>,
    dialects: &[u16],
) -> Result<Vec<Cipher>, String> {
    if !encrypt {
        return Ok(Vec::new());
    }
    if !dialects.iter().any(|&d| d >= 0x0300) {
        return Err("--encrypt needs a 3.x dialect (3.0, 3.0.2, 3.1.1 or all)".into());
    }
    Ok(match cipher {
        Some(c) => vec![c],
        None => vec![
            Cipher::Aes128Gcm,
            Cipher::Aes128Ccm,
            Cipher::Aes256Gcm,
            Cipher::Aes256Ccm,
        ],
    })
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
    fn durations() {
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("xus").is_err());
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
        assert_eq!(a.sessions(), 2000);
        assert_eq!(a.scenario_kind, ScenarioKind::Idle);
        assert_eq!(a.autodisconnect, Duration::from_secs(3));
        assert!(Args::try_parse_from(["smb-loadgen", "--user", "u"]).is_err());
        let a = Args::try_parse_from(["smb-loadgen", "--autodisconnect", "500ms"]).unwrap();
        assert_eq!(a.autodisconnect, Duration::from_millis(500));
        assert!(a.scenario.is_none());
    }

    fn parse(v: &[&str]) -> Args {
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn scenario_options_are_checked() {
        let none = |_: &str| false;
        let a = parse(&["smb-loadgen", "--scenario", "echo", "--connections", "4"]);
        assert_eq!(a.scenario_kind, ScenarioKind::Echo);
        assert!(a.check_scenario(&none).is_ok());
        // Options of another scenario are refused with a clear message.
        let e = parse(&["smb-loadgen", "--queue-depth", "3"])
            .check_scenario(&none)
            .unwrap_err();
        assert!(
            e.contains("--queue-depth applies to --scenario echo only"),
            "{e}"
        );
        let e = parse(&["smb-loadgen", "--scenario", "echo", "--sessions", "3"])
            .check_scenario(&none)
            .unwrap_err();
        assert!(e.contains("--sessions"), "{e}");
        let e = parse(&[
            "smb-loadgen",
            "--scenario",
            "echo",
            "--new-connection-each-time",
        ])
        .check_scenario(&none)
        .unwrap_err();
        assert!(e.contains("churn only"), "{e}");
        let a = parse(&["smb-loadgen", "--scenario", "churn", "--probes", "1"]);
        let e = a.check_scenario(&|id| id == "probes").unwrap_err();
        assert!(
            e.contains("--probes applies to --scenario idle only"),
            "{e}"
        );
        // Values.
        for bad in [
            &["smb-loadgen", "--scenario", "echo", "--connections", "0"][..],
            &["smb-loadgen", "--scenario", "echo", "--queue-depth", "0"],
            &["smb-loadgen", "--scenario", "echo", "--requests", "0"],
            &["smb-loadgen", "--scenario", "echo", "--rate=-5"],
            &["smb-loadgen", "--scenario", "churn", "--duration", "0s"],
            &[
                "smb-loadgen",
                "--scenario",
                "churn",
                "--rate",
                "10",
                "--expected-interval",
                "1ms",
            ],
        ] {
            assert!(parse(bad).check_scenario(&none).is_err(), "{bad:?}");
        }
        assert!(Args::try_parse_from(["smb-loadgen", "--scenario", "nap"]).is_err());
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
