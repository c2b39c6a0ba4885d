//! smb-loadgen: loads an SMB2/3 server and measures it. The default (idle) scenario opens
//! thousands of IPC$ sessions, lets them sit idle, and measures how precisely the server reaps
//! them (autodisconnect); `--scenario echo` measures ECHO requests/s and latency, `--scenario
//! churn` sessions/s and the latency of session setup and LOGOFF.
//!
//! It is a real client built on the sans-IO initiator of `smb-client`, so it
//! speaks to smbcore, Samba or Windows alike. With no `--target` it starts an embedded smbcore
//! server on loopback and benchmarks that.
//!
//! Layout:
//! - [`proto`]: the sans-IO client of one connection (NEGOTIATE, SESSION_SETUP, TREE_CONNECT,
//!   CREATE, ECHO), the `smb-client` crate re-exported; the mio loops here drive it.
//! - [`run`](mod@run): the open phase (one mio loop) and the observer thread that timestamps each
//!   connection's end, and the lateness computation (see its docs for what is measured).
//! - [`probe`]: ECHO probes while the sessions sit idle.
//! - [`churn`]: the `smb-loadgen churn` subcommand: sessions opened at a steady rate, each
//!   ended one of several ways (reaped idle, LOGOFF, re-open, pipe, dropped), for soaks.
//! - [`echo`]: `--scenario echo`, pipelined ECHOs within the server's credits.
//! - [`session_churn`]: `--scenario churn`, SESSION_SETUP + TREE_CONNECT + LOGOFF in a loop on
//!   kept connections or a new connection each time.
//! - `driver`: the I/O loop those two share: a connection's socket (`Link`), the setup of kept
//!   connections, and the measurement loop that paces, polls, expires and times them.
//! - [`scenario`], [`load`], [`load_report`]: what else those two share (results,
//!   coordinated-omission correction, workers), running them, and their report.
//! - [`stats`], [`report`]: histograms, the text / JSON / interval-log / SVG outputs.
//! - [`cli`], [`net`], [`progress`]: the command line, sockets and limits, progress display.
//!
//! The library entry points are [`main`] (the binary), [`run()`] (the idle scenario) and
//! [`load::run`] (echo and churn), for tests and embedders.
#![forbid(unsafe_code)]

pub mod churn;
pub mod cli;
mod driver;
pub mod echo;
pub mod load;
pub mod load_report;
pub mod net;
pub mod probe;
pub mod progress;
/// The sans-IO client of one connection, from the `smb-client` crate.
pub use smb_client as proto;
pub mod report;
pub mod run;
pub mod scenario;
pub mod session_churn;
pub mod stats;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use serde_json::json;

pub use cli::Args;
pub use report::Report;
pub use stats::RunResult;

use crate::progress::{Mode, Progress};
use crate::proto::ClientConfig;
use crate::run::{phase, Plan};

/// Descriptors kept free for the process itself (epoll, wakers, stdio, the server's listeners).
const FD_SLACK: u64 = 64;

/// Runs the `smb-loadgen` command line; exit status 0 when every session opened and was
/// reaped on time (echo, churn: nothing failed), 1 when the run saw failures (early, never
/// reaped, setup errors; failed requests or sessions), 2 on a usage or fatal error.
pub fn main() -> ExitCode {
    let parsed = Args::command()
        .try_get_matches()
        .and_then(|m| Args::from_arg_matches(&m).map(|a| (a, m)));
    let (args, matches) = match parsed {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Some(cli::Scenario::Churn(c)) = &args.scenario {
        return churn::main(c);
    }
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    if let Err(e) = args.check_scenario(&given) {
        eprintln!("smb-loadgen: error: {e}");
        return ExitCode::from(2);
    }
    if args.scenario_kind != cli::ScenarioKind::Idle {
        return if args.worker_index.is_some() {
            load::worker_main(&args)
        } else {
            load::main(&args)
        };
    }
    if args.worker_index.is_some() {
        return worker_main(&args);
    }
    report::exit_with(run(&args).map(|r| (r.text(), r.ok())), "smb-loadgen")
}

fn worker_main(args: &Args) -> ExitCode {
    let plan = match plan_for(args, args.target.unwrap_or(([127, 0, 0, 1], 445).into())) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("smb-loadgen worker: {e}");
            return ExitCode::from(2);
        }
    };
    let mut progress = Progress::new(Mode::Quiet);
    let mut r = match run::Run::new(plan) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = r.open(&mut progress) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    println!("opened {}", r.opened());
    r.wait_reaps(&mut progress, None);
    match serde_json::to_string(&r.result()) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn plan_for(args: &Args, target: SocketAddr) -> Result<Plan, String> {
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
    if args.sessions() == 0 {
        return Err("--sessions must be at least 1".into());
    }
    if args.sessions_per_connection == 0 {
        return Err("--sessions-per-connection must be at least 1".into());
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be a positive number of sessions per second".into());
    }
    Ok(Plan {
        target,
        sessions: args.sessions(),
        per_conn: args.sessions_per_connection,
        rate: args.rate,
        concurrency: args.concurrency.max(1),
        source_ips: args.source_ips.clone().map(|l| l.0).unwrap_or_default(),
        client: ClientConfig::new(&target.ip().to_string(), dialects, auth)
            .with_workstation("LOADGEN")
            .with_encryption(&ciphers, args.encrypt),
        autodisconnect: args.autodisconnect,
        hold: args.hold,
    })
}

/// Checks that the connections fit the open-files limit; explains what would fit otherwise.
pub fn check_fd_budget(args: &Args, embedded: bool, limit: u64) -> Result<(), String> {
    let k = u64::from(args.sessions_per_connection.max(1));
    let conns = args.sessions().div_ceil(k);
    let workers = u64::from(args.workers.max(1));
    let probes = u64::from(args.probes);
    let usable = limit.saturating_sub(FD_SLACK);
    // The embedded server holds one descriptor per connection in this process.
    let server_fds = if embedded { conns + probes } else { 0 };
    let client_fds_here = if workers == 1 { conns + probes } else { probes };
    let per_worker = conns.div_ceil(workers);
    let here = server_fds + client_fds_here;
    if here <= usable && (workers == 1 || per_worker <= usable) {
        return Ok(());
    }
    let mut why = format!(
        "{} sessions at {} per connection need {conns} connections; ",
        args.sessions(),
        k
    );
    if embedded {
        why += &format!(
            "with the embedded server this process would hold {here} descriptors (client and \
             server side) but the open-files limit is {limit}. "
        );
        let max_conns = usable.saturating_sub(probes);
        let k_server = args.sessions().div_ceil(max_conns.max(1));
        let k_alone = args
            .sessions()
            .div_ceil((usable / 2).saturating_sub(probes).max(1));
        why += &format!(
            "Use --sessions-per-connection {k_server} with --workers 2 or more (the workers hold \
             the client side), or --sessions-per-connection {k_alone} in one process, or run the \
             server separately and give --target."
        );
    } else {
        let w = conns.div_ceil(usable.max(1));
        let k_fit = args
            .sessions()
            .div_ceil(usable.saturating_sub(probes).max(1));
        why += &format!(
            "one process may hold {limit} descriptors. Use --workers {w} or \
             --sessions-per-connection {k_fit}."
        );
    }
    Err(why)
}

/// Starts the embedded smbcore server for the default scenario.
fn start_embedded(args: &Args) -> Result<smb_server::Server, String> {
    let user = args.user.as_deref().zip(args.password.as_deref());
    start_embedded_server(
        Some(args.autodisconnect),
        args.sessions_per_connection,
        args.server_threads,
        user,
        args.encrypt,
    )
}

/// Starts an embedded smbcore server on `127.0.0.1:0` with `autodisconnect` (`None`: off), room for
/// `per_conn` sessions per connection (at least the server's usual 1024), `threads` shards
/// (default: automatic) and `user` (name, password) as a known non-admin user; with
/// `encrypt` (`--encrypt`) under `encryption = required`, so that a request in the clear
/// after SESSION_SETUP would be refused and the run proves every request was sealed.
pub(crate) fn start_embedded_server(
    autodisconnect: Option<Duration>,
    per_conn: u32,
    threads: Option<usize>,
    user: Option<(&str, &str)>,
    encrypt: bool,
) -> Result<smb_server::Server, String> {
    use smb_server::config::Source;
    let mut o = smb_server::ServeOptions::new(([127, 0, 0, 1], 0).into());
    let set = |o: &mut smb_server::ServeOptions, k: &str, v: &str| {
        o.settings
            .set(Source::CommandLine, k, v)
            .map_err(|e| format!("embedded server setting {k}={v}: {}", e.0))
    };
    let ad = autodisconnect.map_or_else(|| "-1".into(), smb_server::config::format_duration);
    set(&mut o, "autodisconnect", &ad)?;
    let k = per_conn.max(1024).to_string();
    set(&mut o, "max-sessions-per-connection", &k)?;
    if let Some(t) = threads {
        set(&mut o, "threads", &t.to_string())?;
    }
    if encrypt {
        set(&mut o, "encryption", "required")?;
    }
    if let Some((u, p)) = user {
        let mut users = smb_server::users::UserFile::default();
        users.add(u, p, false);
        o.users = std::sync::Arc::new(users);
    }
    smb_server::Server::start(o).map_err(|e| format!("cannot start the embedded server: {e}"))
}

/// Runs the idle scenario described by `args` (progress on stderr) and returns its report;
/// also writes `--json`, `--hist` and `--plot` when given. The echo and churn scenarios are
/// [`load::run`].
pub fn run(args: &Args) -> Result<Report, String> {
    if args.scenario_kind != cli::ScenarioKind::Idle {
        return Err(format!(
            "--scenario {} is run by smb_loadgen::load::run",
            args.scenario_kind.name()
        ));
    }
    let embedded = args.target.is_none();
    let limit = net::open_files_limit().unwrap_or(1024);
    check_fd_budget(args, embedded, limit)?;
    let server = if embedded {
        Some(start_embedded(args)?)
    } else {
        None
    };
    let target = match (&server, args.target) {
        (Some(s), _) => s.local_addr(),
        (None, Some(t)) => t,
        (None, None) => unreachable!("embedded is !target"),
    };
    let plan = plan_for(args, target)?;
    let mut progress = Progress::new(Mode::detect(args.no_progress));

    // Probes: a baseline before any session exists.
    let probes = (args.probes > 0)
        .then(|| probe::Probes::start(target, plan.client.clone(), args.probes, args.probe_rate));
    if let Some(p) = &probes {
        std::thread::sleep(Duration::from_millis(200));
        p.set_phase(phase::BASELINE);
        progress.note(&format!(
            "probes: {} x {} ECHO/s, baseline for {:?}",
            args.probes, args.probe_rate, args.baseline
        ));
        std::thread::sleep(args.baseline);
        p.set_phase(phase::OPENING);
    }
    let phase_flag = probes.as_ref().map(|p| p.phase.clone());

    let result = if args.workers <= 1 {
        let mut r = run::Run::new(plan.clone()).map_err(|e| e.0)?;
        let opened = r.open(&mut progress);
        if let Err(e) = opened {
            if let Some(p) = probes {
                p.stop();
            }
            if let Some(s) = server {
                s.shutdown();
            }
            return Err(e.0);
        }
        if let Some(p) = &phase_flag {
            p.store(phase::IDLE, Ordering::SeqCst);
        }
        r.wait_reaps(&mut progress, phase_flag.as_deref());
        r.result()
    } else {
        run_workers(args, target, &mut progress, phase_flag.as_deref())?
    };

    let probe_res = probes.and_then(|p| p.stop());
    let server_stats = server
        .as_ref()
        .map(|s| smb_server::admin::stats_json(s.shared()));
    if let Some(s) = server {
        s.shutdown();
    }
    let hists = stats::Hists::decode(&result.hists)?;
    let report = Report {
        command_line: std::env::args().collect(),
        target: target.to_string(),
        embedded,
        config: json!({
            "sessions": args.sessions(),
            "sessions_per_connection": args.sessions_per_connection,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "source_ips": args.source_ips.as_ref().map(|l| l.0.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
            "workers": args.workers,
            "autodisconnect_ms": args.autodisconnect.as_secs_f64() * 1000.0,
            "hold_ms": args.hold.as_secs_f64() * 1000.0,
            "dialect": args.dialect,
            "user": args.user.clone().unwrap_or_default(),
            "anonymous": args.user.is_none(),
            "probes": args.probes,
            "probe_rate": args.probe_rate,
            "baseline_ms": args.baseline.as_secs_f64() * 1000.0,
            "open_files_limit": limit,
        }),
        per_conn: args.sessions_per_connection.max(1),
        autodisconnect_ms: args.autodisconnect.as_secs_f64() * 1000.0,
        hists,
        probes: probe_res.as_ref().map(|p| p.by_phase.clone()),
        probe_reconnects: probe_res.as_ref().map_or(0, |p| p.reconnects),
        server: server_stats,
        result,
    };
    report::write_file(args.json.as_deref(), |p| {
        report::write_json(p, &report.json())
    })?;
    report::write_file(args.hist.as_deref(), |p| report.write_hist_log(p))?;
    report::write_file(args.plot.as_deref(), |p| report.write_plot(p))?;
    Ok(report)
}

/// Spreads the sessions over worker processes (this executable with `--worker-index`), and
/// merges what they measured.
fn run_workers(
    args: &Args,
    target: SocketAddr,
    progress: &mut Progress,
    phase_flag: Option<&std::sync::atomic::AtomicU8>,
) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my executable: {e}"))?;
    let w = u64::from(args.workers);
    let k = u64::from(args.sessions_per_connection.max(1));
    // Whole connections per worker.
    let conns = args.sessions().div_ceil(k);
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let started = Instant::now();
    let mut children = Vec::new();
    let mut first = 0u64;
    for i in 0..w {
        let my_conns = conns / w + u64::from(i < conns % w);
        let n = (my_conns * k).min(args.sessions() - first);
        if n == 0 {
            continue;
        }
        let mut cmd = Command::new(&exe);
        cmd.args(["--target", &target.to_string()])
            .args(["--sessions", &n.to_string()])
            .args(["--sessions-per-connection", &k.to_string()])
            .args([
                "--concurrency",
                &(args.concurrency as u64 / w).max(1).to_string(),
            ])
            .args(["--autodisconnect", &ms(args.autodisconnect)])
            .args(["--hold", &ms(args.hold)])
            .args(["--dialect", &args.dialect])
            .args(["--probes", "0", "--no-progress"])
            .args(["--worker-index", &i.to_string()])
            .args(["--worker-first", &first.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(r) = args.rate {
            cmd.args(["--rate", &(r / w as f64).to_string()]);
        }
        if let (Some(u), Some(p)) = (&args.user, &args.password) {
            cmd.args(["--user", u, "--password", p, "--domain", &args.domain]);
        }
        if args.encrypt {
            cmd.arg("--encrypt");
        }
        if let Some(c) = args.cipher {
            cmd.args(["--cipher", c.name()]);
        }
        if let Some(l) = &args.source_ips {
            let list: Vec<String> = l.0.iter().map(|a| a.to_string()).collect();
            cmd.args(["--source-ips", &list.join(",")]);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start worker {i} ({}): {e}", exe.display()))?;
        children.push(child);
        first += n;
    }
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, String)>();
    let mut readers = Vec::new();
    for (i, c) in children.iter_mut().enumerate() {
        let out = c.stdout.take().ok_or("worker without stdout")?;
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((i, line));
            }
        }));
    }
    drop(tx);
    progress.phase("workers opening", children.len() as u64);
    let mut opened_workers = 0u64;
    let mut merged = RunResult::default();
    let mut results = 0usize;
    let mut reaping = false;
    loop {
        if !reaping && started.elapsed() >= args.autodisconnect {
            reaping = true;
            if let Some(p) = phase_flag {
                p.store(phase::REAPING, Ordering::SeqCst);
            }
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((_, line)) if line.starts_with("opened ") => {
                opened_workers += 1;
                progress.set(opened_workers);
                if opened_workers == children.len() as u64 {
                    progress.finish();
                    progress.phase("workers watching reaps", children.len() as u64);
                    if let (Some(p), false) = (phase_flag, reaping) {
                        p.store(phase::IDLE, Ordering::SeqCst);
                    }
                }
            }
            Ok((_, line)) => {
                let r: RunResult =
                    serde_json::from_str(&line).map_err(|e| format!("bad worker output: {e}"))?;
                merged.merge(&r)?;
                results += 1;
                progress.set(results as u64);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    progress.finish();
    for mut c in children {
        let _ = c.wait();
    }
    for r in readers {
        let _ = r.join();
    }
    if results == 0 {
        return Err("no worker produced a result (see the errors above)".into());
    }
    if merged.hists.is_empty() {
        merged.hists = stats::Hists::default().encode();
    }
    let missing = args.sessions().saturating_sub(merged.sessions);
    merged.sessions += missing;
    merged.setup_failed += missing;
    if missing > 0 && merged.first_error.is_none() {
        merged.first_error = Some(format!(
            "{missing} sessions belonged to workers that failed"
        ));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["smb-loadgen"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn fd_budget_explains_what_fits() {
        let a = args(&["--sessions", "10000"]);
        assert!(check_fd_budget(&a, false, 20000).is_ok());
        let e = check_fd_budget(&a, true, 20000).unwrap_err();
        assert!(e.contains("open-files limit is 20000"), "{e}");
        assert!(e.contains("--sessions-per-connection"), "{e}");
        let a = args(&["--sessions", "10000", "--workers", "2"]);
        assert!(check_fd_budget(&a, true, 20000).is_ok());
        let a = args(&["--sessions", "50000", "--target", "127.0.0.1:445"]);
        let e = check_fd_budget(&a, false, 20000).unwrap_err();
        assert!(e.contains("--workers 3"), "{e}");
        let a = args(&["--sessions", "100000", "--sessions-per-connection", "10"]);
        assert!(check_fd_budget(&a, false, 20000).is_ok());
    }

    #[test]
    fn plan_rejects_nonsense() {
        let t: SocketAddr = "127.0.0.1:445".parse().unwrap();
        assert!(plan_for(&args(&["--sessions", "0"]), t).is_err());
        assert!(plan_for(&args(&["--rate=-1"]), t).is_err());
        assert!(plan_for(&args(&["--dialect", "9"]), t).is_err());
        let p = plan_for(
            &args(&["--sessions", "10", "--sessions-per-connection", "3"]),
            t,
        )
        .unwrap();
        assert_eq!(p.connections(), 4);
    }
}
