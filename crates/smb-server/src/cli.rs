//! The `smbcore` command line: `serve`, `ctl` and `dump`. The binary in the
//! root package calls [`main`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Source;
use crate::ctl::{self, CtlCommand};
use crate::{default_admin_socket, ServeOptions, Server, DEFAULT_LISTEN};
use clap::{Args, Parser, Subcommand};

/// smbcore: an SMB2/SMB3 session server with exact, live autodisconnect.
#[derive(Parser, Debug)]
#[command(name = "smbcore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (listens on 127.0.0.1:4450 by default; port 445 needs privileges).
    Serve(Box<ServeArgs>),
    /// Administer a running server over its admin socket.
    Ctl(CtlArgs),
    /// Decode captured SMB byte streams (NBSS frames), one line per message.
    Dump {
        /// Files holding raw direct-TCP SMB streams.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// TOML config file (keys as in `ctl config show`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Shards (threads); default one per core.
    #[arg(long)]
    threads: Option<String>,
    /// Idle time before a session is reaped: minutes (-1 = never) or 250ms, 30s, 5m, 2h.
    #[arg(long, allow_hyphen_values = true)]
    autodisconnect: Option<String>,
    /// Time a new connection has to authenticate (e.g. 30s).
    #[arg(long)]
    pre_auth_timeout: Option<String>,
    /// How long the answer to a failed logon is held back: 0 (off) to 10s
    /// in steps of 100ms (default 2s, as Windows Server 2025).
    #[arg(long)]
    auth_failure_delay: Option<String>,
    /// Users file (TOML: [[user]] name, password or nt_hash, admin; a
    /// Kerberos principal `user@REALM` with admin and no password).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Keytab for Kerberos logons (default $KRB5_KTNAME; loaded into memory).
    #[arg(long)]
    keytab: Option<String>,
    /// Service principal Kerberos tickets must name (default cifs/<host name>).
    #[arg(long)]
    kerberos_service: Option<String>,
    /// Admin socket path.
    #[arg(long)]
    admin_socket: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP on this address.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Connections accepted at once.
    #[arg(long)]
    max_connections: Option<String>,
    /// Lowest dialect (2.0.2, 2.1, 3.0, 3.0.2, 3.1.1).
    #[arg(long)]
    min_dialect: Option<String>,
    /// Highest dialect.
    #[arg(long)]
    max_dialect: Option<String>,
    /// Require every session to sign.
    #[arg(long)]
    require_signing: bool,
    /// SMB3 encryption of every session: off, desired or required.
    #[arg(long)]
    encryption: Option<String>,
    /// SMB3 encryption of IPC$: off, desired or required.
    #[arg(long)]
    ipc_encryption: Option<String>,
    /// Ciphers offered, in preference order (auto, none, or a list such as
    /// aes-256-gcm,aes-128-gcm).
    #[arg(long)]
    ciphers: Option<String>,
    /// Map unknown users to guest.
    #[arg(long)]
    allow_guest: bool,
    /// Steer each connection to the shard of the CPU that received it
    /// (SO_REUSEPORT CBPF); shards are pinned to CPUs. Use with --threads = CPUs.
    #[arg(long)]
    cpu_steering: bool,
    /// SO_BUSY_POLL microseconds on the listeners (0 = off).
    #[arg(long)]
    busy_poll: Option<String>,
    /// Transport: auto (io_uring where the kernel allows it, else mio),
    /// io-uring, mio, or xdp (AF_XDP and TCP in user space on
    /// --xdp-interface).
    #[arg(long)]
    transport: Option<String>,
    /// The network interface the xdp transport attaches to.
    #[arg(long)]
    xdp_interface: Option<String>,
    /// io_uring SQPOLL idle time in milliseconds (0 = off).
    #[arg(long)]
    io_uring_sqpoll: Option<String>,
    /// io_uring: microseconds a wait waits for a batch of completions
    /// (0 = off; Linux 6.12+).
    #[arg(long)]
    io_uring_min_wait: Option<String>,
}

#[derive(Args, Debug)]
struct CtlArgs {
    /// Admin socket of the server.
    #[arg(long)]
    admin_socket: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

/// Run the `smbcore` command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Ctl(args) => {
            let path = args
                .admin_socket
                .unwrap_or_else(|| default_admin_socket(DEFAULT_LISTEN.parse().ok()));
            ctl::run(&path, args.command)
        }
        Command::Dump { files } => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match crate::dump::dump_files(&files, &mut out) {
                Ok(summary) if summary.errors == 0 => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("smbcore dump: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    crate::init_logging();
    let mut opts = ServeOptions::new(args.listen);
    let cli_values = [
        ("threads", args.threads),
        ("autodisconnect", args.autodisconnect),
        ("pre-auth-timeout", args.pre_auth_timeout),
        ("auth-failure-delay", args.auth_failure_delay),
        ("max-connections", args.max_connections),
        ("min-dialect", args.min_dialect),
        ("max-dialect", args.max_dialect),
        (
            "require-signing",
            args.require_signing.then(|| "true".into()),
        ),
        ("allow-guest", args.allow_guest.then(|| "true".into())),
        ("encryption", args.encryption),
        ("ipc-encryption", args.ipc_encryption),
        ("ciphers", args.ciphers),
        ("cpu-steering", args.cpu_steering.then(|| "true".into())),
        ("transport", args.transport),
        ("io-uring-sqpoll", args.io_uring_sqpoll),
        ("io-uring-min-wait", args.io_uring_min_wait),
        ("xdp-interface", args.xdp_interface),
        ("busy-poll", args.busy_poll),
        ("keytab", args.keytab),
        ("kerberos-service", args.kerberos_service),
    ];
    if let Some(path) = &args.config {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return fail(format!("cannot read config file {}: {e}", path.display())),
        };
        if let Err(e) = opts.settings.load_toml(&text) {
            return fail(format!("config file {}: {e}", path.display()));
        }
    }
    for (key, value) in cli_values {
        if let Some(v) = value {
            if let Err(e) = opts.settings.set(Source::CommandLine, key, &v) {
                return fail(format!("--{key}: {e}"));
            }
        }
    }
    if let Some(path) = &args.users {
        match crate::users::UserFile::load(path) {
            Ok(u) => opts.users = std::sync::Arc::new(u),
            Err(e) => return fail(e),
        }
    }
    opts.admin_socket = Some(
        args.admin_socket
            .unwrap_or_else(|| default_admin_socket(Some(args.listen))),
    );
    opts.metrics = args.metrics;
    // SIGINT and SIGTERM are caught from before the server starts: once
    // its admin socket exists a script may stop it, and a signal that came
    // before the handler would kill the process without a shutdown.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot catch signals: {e}")),
    };
    let server = match Server::start(opts) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    tracing::info!(
        listen = %server.local_addr(),
        admin_socket = %server.admin_socket().map(|p| p.display().to_string()).unwrap_or_default(),
        "smbcore serving"
    );
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "shutting down");
    }
    server.shutdown();
    ExitCode::SUCCESS
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("smbcore: {msg}");
    ExitCode::from(2)
}
