//! Running the echo and churn scenarios from the command line: the plan, the embedded server,
//! worker processes, the report and its files.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::{self, Args, ScenarioKind};
use crate::echo::{Echo, EchoPlan};
use crate::load_report::LoadReport;
use crate::progress::{Mode, Progress};
use crate::proto::ClientConfig;
use crate::run::Fatal;
use crate::scenario::{split, worker_ready_wait_go, LoadResult, WorkerSet};
use crate::session_churn::{SessionChurn, SessionChurnPlan};

/// How long after the run the embedded server may take to see the connections closed.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The settings of an echo or churn run, defaults applied.
#[derive(Debug, Clone)]
struct Settings {
    kind: ScenarioKind,
    connections: u32,
    queue_depth: u32,
    duration: Option<Duration>,
    /// `--requests` (echo) or `--sessions` (churn).
    count: Option<u64>,
    request_timeout: Duration,
    client: ClientConfig,
}

fn settings(args: &Args, target: SocketAddr) -> Result<Settings, String> {
    let dialects = cli::parse_dialects(&args.dialect)?;
    let auth = cli::auth_for(
        args.kerberos,
        &args.kerberos_service,
        args.user
            .as_deref()
            .map(|u| (u, args.password.as_deref().unwrap_or_default())),
        &args.domain,
    )?;
    let ciphers = cli::ciphers_for(args.encrypt, args.cipher, &dialects)?;
    let count = match args.scenario_kind {
        ScenarioKind::Echo => args.requests,
        _ => args.sessions,
    };
    Ok(Settings {
        kind: args.scenario_kind,
        connections: args.connections.unwrap_or(cli::DEFAULT_CONNECTIONS),
        queue_depth: args.queue_depth.unwrap_or(cli::DEFAULT_QUEUE_DEPTH),
        duration: args
            .duration
            .or((count.is_none()).then_some(cli::DEFAULT_DURATION)),
        count,
        request_timeout: args.request_timeout.unwrap_or(cli::DEFAULT_REQUEST_TIMEOUT),
        client: ClientConfig::new(&target.ip().to_string(), dialects, auth)
            .with_workstation("LOADGEN")
            .with_encryption(&ciphers, args.encrypt),
    })
}

/// Runs this process's share: `connections` from connection `first`, `count` requests or
/// sessions, `rate` per second; `between` is called after the setup (workers wait for the
/// parent there). `None` from `between` stops before measuring.
fn run_share(
    args: &Args,
    s: &Settings,
    target: SocketAddr,
    share: (u32, Option<u64>, Option<f64>, u64),
    progress: &mut Progress,
    between: impl FnOnce() -> bool,
) -> Result<Option<LoadResult>, Fatal> {
    let (connections, count, rate, first) = share;
    let source_ips = args.source_ips.clone().map(|l| l.0).unwrap_or_default();
    match s.kind {
        ScenarioKind::Echo => {
            let mut e = Echo::new(EchoPlan {
                target,
                connections,
                queue_depth: s.queue_depth,
                duration: s.duration,
                requests: count,
                rate,
                concurrency: args.concurrency,
                source_ips,
                client: s.client.clone(),
                request_timeout: s.request_timeout,
                first_connection: first,
            })?;
            e.setup(progress)?;
            if !between() {
                return Ok(None);
            }
            e.measure(progress)?;
            Ok(Some(e.result()))
        }
        _ => {
            let mut c = SessionChurn::new(SessionChurnPlan {
                target,
                connections,
                new_connection: args.new_connection_each_time,
                duration: s.duration,
                sessions: count,
                rate,
                concurrency: args.concurrency,
                source_ips,
                client: s.client.clone(),
                request_timeout: s.request_timeout,
                first_connection: first,
            })?;
            c.setup(progress)?;
            if !between() {
                return Ok(None);
            }
            c.measure(progress)?;
            Ok(Some(c.result()))
        }
    }
}

/// Checks that the connections fit the open-files limit.
fn check_fd_budget(
    connections: u32,
    workers: u32,
    embedded: bool,
    limit: u64,
) -> Result<(), String> {
    let c = u64::from(connections);
    let w = u64::from(workers.max(1));
    let usable = limit.saturating_sub(crate::FD_SLACK);
    let here = if embedded { c } else { 0 } + if w == 1 { c } else { 0 };
    if here <= usable && c.div_ceil(w) <= usable {
        return Ok(());
    }
    Err(format!(
        "{c} connections need {here} descriptors in this process{} but the open-files limit is \
         {limit}: use --workers {} (the workers hold the client side){}",
        if embedded {
            " (client and embedded server side)"
        } else {
            ""
        },
        (c * 2).div_ceil(usable.max(1)).max(2),
        if embedded {
            ", or run the server separately and give --target"
        } else {
            ""
        }
    ))
}

/// The arguments of worker `i` of `w`.
fn worker_args(
    args: &Args,
    s: &Settings,
    target: SocketAddr,
    i: usize,
    share: (u32, Option<u64>, Option<f64>, u64),
    w: u32,
) -> Vec<String> {
    let (connections, count, rate, first) = share;
    let us = |d: Duration| format!("{}us", d.as_micros());
    let mut v: Vec<String> = vec![
        "--scenario".into(),
        s.kind.name().into(),
        "--target".into(),
        target.to_string(),
        "--connections".into(),
        connections.to_string(),
        "--concurrency".into(),
        (args.concurrency / w as usize).max(1).to_string(),
        "--request-timeout".into(),
        us(s.request_timeout),
        "--dialect".into(),
        args.dialect.clone(),
        "--no-progress".into(),
        "--worker-index".into(),
        i.to_string(),
        "--worker-first".into(),
        first.to_string(),
    ];
    if let Some(d) = s.duration {
        v.extend(["--duration".into(), us(d)]);
    }
    match (s.kind, count) {
        (ScenarioKind::Echo, Some(n)) => v.extend(["--requests".into(), n.to_string()]),
        (_, Some(n)) => v.extend(["--sessions".into(), n.to_string()]),
        _ => {}
    }
    if s.kind == ScenarioKind::Echo {
        v.extend(["--queue-depth".into(), s.queue_depth.to_string()]);
    }
    if let Some(r) = rate {
        v.extend(["--rate".into(), r.to_string()]);
    }
    if args.new_connection_each_time {
        v.push("--new-connection-each-time".into());
    }
    if let (Some(u), Some(p)) = (&args.user, &args.password) {
        v.extend([
            "--user".into(),
            u.clone(),
            "--password".into(),
            p.clone(),
            "--domain".into(),
            args.domain.clone(),
        ]);
    }
    if let Some(l) = &args.source_ips {
        let list: Vec<String> = l.0.iter().map(|a| a.to_string()).collect();
        v.extend(["--source-ips".into(), list.join(",")]);
    }
    if args.encrypt {
        v.push("--encrypt".into());
    }
    if let Some(c) = args.cipher {
        v.extend(["--cipher".into(), c.name().into()]);
    }
    v
}

/// Each worker's share: (connections, count, rate, first connection). Workers with no
/// connection (or nothing to count) are left out.
fn shares(
    s: &Settings,
    rate: Option<f64>,
    workers: u32,
) -> Vec<(u32, Option<u64>, Option<f64>, u64)> {
    let c = u64::from(s.connections);
    let w = u64::from(workers.max(1))
        .min(c)
        .min(s.count.unwrap_or(u64::MAX))
        .max(1);
    let conns = split(c, w);
    let counts = s.count.map(|n| split(n, w));
    let mut first = 0;
    let mut out = Vec::new();
    for (i, &n) in conns.iter().enumerate() {
        let count = counts.as_ref().map(|v| v[i]);
        if n == 0 || count == Some(0) {
            continue;
        }
        let r = rate.map(|r| r * n as f64 / c as f64);
        out.push((n as u32, count, r, first));
        first += n;
    }
    out
}

/// Runs the echo or churn scenario described by `args` (progress on stderr) and returns its
/// report; also writes `--json`, `--hist` and `--plot` when given.
pub fn run(args: &Args) -> Result<LoadReport, String> {
    if args.scenario_kind == ScenarioKind::Idle {
        return Err("the idle scenario is run by smb_loadgen::run".into());
    }
    args.check_scenario(&|_| false)?;
    let embedded = args.target.is_none();
    let limit = crate::net::open_files_limit().unwrap_or(1024);
    let connections = args.connections.unwrap_or(cli::DEFAULT_CONNECTIONS);
    check_fd_budget(connections, args.workers, embedded, limit)?;
    let user = args.user.as_deref().zip(args.password.as_deref());
    let server = if embedded {
        Some(crate::start_embedded_server(
            None,
            1,
            args.server_threads,
            user,
            args.encrypt,
        )?)
    } else {
        None
    };
    let target = match (&server, args.target) {
        (Some(s), _) => s.local_addr(),
        (None, Some(t)) => t,
        (None, None) => unreachable!("embedded is !target"),
    };
    let stop = |server: Option<smb_server::Server>| {
        if let Some(s) = server {
            s.shutdown();
        }
    };
    let s = match settings(args, target) {
        Ok(s) => s,
        Err(e) => {
            stop(server);
            return Err(e);
        }
    };
    let mut progress = Progress::new(Mode::detect(args.no_progress));
    let result = if args.workers <= 1 {
        let share = (s.connections, s.count, args.rate, 0);
        run_share(args, &s, target, share, &mut progress, || true)
            .map(|r| r.unwrap_or_default())
            .map_err(|e| e.0)
    } else {
        run_workers(args, &s, target, &mut progress)
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            stop(server);
            return Err(e);
        }
    };
    let server_stats = server.as_ref().map(|srv| {
        let until = Instant::now() + DRAIN_GRACE;
        loop {
            let st = smb_server::admin::stats_json(srv.shared());
            if st["connections"].as_u64() == Some(0) || Instant::now() >= until {
                break st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    stop(server);
    let config = json!({
        "scenario": s.kind.name(),
        "connections": s.connections,
        "queue_depth": (s.kind == ScenarioKind::Echo).then_some(s.queue_depth),
        "duration_s": s.duration.map(|d| d.as_secs_f64()),
        "requests": (s.kind == ScenarioKind::Echo).then_some(s.count).flatten(),
        "sessions": (s.kind == ScenarioKind::Churn).then_some(s.count).flatten(),
        "new_connection_each_time": args.new_connection_each_time,
        "rate": args.rate,
        "expected_interval_ms": args.expected_interval.map(|d| d.as_secs_f64() * 1000.0),
        "concurrency": args.concurrency,
        "request_timeout_ms": s.request_timeout.as_secs_f64() * 1000.0,
        "source_ips": args.source_ips.as_ref().map(|l| l.0.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
        "workers": args.workers,
        "dialect": args.dialect,
        "user": args.user.clone().unwrap_or_default(),
        "anonymous": args.user.is_none(),
        "embedded_server_autodisconnect": if embedded { Value::from("off") } else { Value::Null },
        "open_files_limit": limit,
    });
    let report = LoadReport::new(
        s.kind,
        target.to_string(),
        embedded,
        config,
        s.connections,
        s.queue_depth,
        args.new_connection_each_time,
        args.workers.max(1),
        args.rate,
        args.expected_interval,
        result,
        server_stats,
    )?;
    crate::report::write_file(args.json.as_deref(), |p| {
        crate::report::write_json(p, &report.json())
    })?;
    crate::report::write_file(args.hist.as_deref(), |p| report.write_hist_log(p))?;
    crate::report::write_file(args.plot.as_deref(), |p| report.write_plot(p))?;
    Ok(report)
}

/// Spreads the connections over worker processes, starts their measurements at once, and
/// merges what they measured.
fn run_workers(
    args: &Args,
    s: &Settings,
    target: SocketAddr,
    progress: &mut Progress,
) -> Result<LoadResult, String> {
    let shares = shares(s, args.rate, args.workers);
    let w = shares.len() as u32;
    let per_worker: Vec<Vec<String>> = shares
        .iter()
        .enumerate()
        .map(|(i, &sh)| worker_args(args, s, target, i, sh, w))
        .collect();
    let mut set = WorkerSet::spawn(per_worker)?;
    set.wait_ready(progress)?;
    set.go();
    let t0 = Instant::now();
    match s.duration {
        Some(d) => progress.phase(&format!("{} seconds", s.kind.name()), d.as_secs()),
        None => progress.phase(s.kind.name(), 0),
    }
    let results = set.results(|| progress.set(t0.elapsed().as_secs()))?;
    progress.finish();
    let mut merged = LoadResult::default();
    for r in &results {
        merged.merge(r)?;
    }
    Ok(merged)
}

/// `smb-loadgen --scenario echo|churn`: exit status 0 when nothing failed, 1 when something
/// did, 2 on usage or fatal errors.
pub fn main(args: &Args) -> ExitCode {
    crate::report::exit_with(run(args).map(|r| (r.text(), r.ok())), "smb-loadgen")
}

/// A worker of an echo or churn run (`--worker-index`): sets its connections up, prints
/// `ready`, waits for `go`, measures, prints its result as one JSON line.
pub fn worker_main(args: &Args) -> ExitCode {
    let Some(target) = args.target else {
        eprintln!("smb-loadgen worker: no --target");
        return ExitCode::from(2);
    };
    let s = match settings(args, target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smb-loadgen worker: {e}");
            return ExitCode::from(2);
        }
    };
    let mut progress = Progress::new(Mode::Quiet);
    let share = (s.connections, s.count, args.rate, args.worker_first);
    match run_share(args, &s, target, share, &mut progress, worker_ready_wait_go) {
        Ok(Some(r)) => match serde_json::to_string(&r) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("smb-loadgen worker: {e}");
                ExitCode::from(2)
            }
        },
        Ok(None) => ExitCode::from(2),
        Err(e) => {
            eprintln!("smb-loadgen worker {}: {e}", args.worker_index.unwrap_or(0));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(v: &[&str]) -> Args {
        let mut all = vec!["smb-loadgen"];
        all.extend_from_slice(v);
        Args::try_parse_from(all).unwrap()
    }

    #[test]
    fn defaults_and_shares() {
        let t: SocketAddr = "127.0.0.1:445".parse().unwrap();
        let s = settings(&args(&["--scenario", "echo"]), t).unwrap();
        assert_eq!((s.connections, s.queue_depth), (100, 4));
        assert_eq!(s.duration, Some(Duration::from_secs(10)));
        assert_eq!(s.count, None);
        // A count alone bounds the run without a duration.
        let s = settings(
            &args(&[
                "--scenario",
                "echo",
                "--requests",
                "10",
                "--connections",
                "3",
            ]),
            t,
        )
        .unwrap();
        assert_eq!(s.duration, None);
        let sh = shares(&s, Some(30.0), 2);
        assert_eq!(
            sh,
            vec![(2, Some(5), Some(20.0), 0), (1, Some(5), Some(10.0), 2)]
        );
        // More workers than connections: one per connection.
        assert_eq!(shares(&s, None, 8).len(), 3);
        let s = settings(&args(&["--scenario", "churn", "--sessions", "7"]), t).unwrap();
        assert_eq!(s.count, Some(7));
        let a = args(&[
            "--scenario",
            "churn",
            "--sessions",
            "7",
            "--new-connection-each-time",
        ]);
        let v = worker_args(&a, &s, t, 1, (50, Some(3), None, 50), 2);
        let joined = v.join(" ");
        assert!(joined.contains("--sessions 3"), "{joined}");
        assert!(joined.contains("--new-connection-each-time"), "{joined}");
        assert!(joined.contains("--worker-first 50"), "{joined}");
        assert!(Args::try_parse_from(std::iter::once("smb-loadgen".to_string()).chain(v)).is_ok());
    }

    #[test]
    fn fd_budget() {
        assert!(check_fd_budget(1000, 1, true, 20000).is_ok());
        let e = check_fd_budget(15000, 1, true, 20000).unwrap_err();
        assert!(e.contains("--workers"), "{e}");
        assert!(check_fd_budget(15000, 2, true, 20000).is_ok());
    }
}
