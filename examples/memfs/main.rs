//! memfs: a complete SMB2/SMB3 file server serving one in-memory share,
//! built only on smbcore's public API (the runtime, the share backend
//! interface and the wire crate's information-class writers).
//!
//! ```sh
//! cargo run --release --example memfs -- --listen 127.0.0.1:4460 --user alice:secret
//! smbclient //127.0.0.1/mem -p 4460 -U alice%secret
//! ```
//!
//! The files live in `fs.rs` ([`fs::MemFs`]); this file is the command line.

mod fs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use smbcore::server::config::Source;
use smbcore::server::users::UserFile;
use smbcore::server::{ServeOptions, Server};
use smbcore::session::engine::StaticShares;

/// Serve an in-memory share over SMB2/SMB3.
#[derive(Parser, Debug)]
#[command(name = "memfs")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4460")]
    listen: SocketAddr,
    /// Share name.
    #[arg(long, default_value = "mem")]
    share: String,
    /// Users file (TOML, as `smbcore serve --users`).
    #[arg(long)]
    users: Option<PathBuf>,
    /// A user, NAME:PASSWORD (repeatable; NAME:PASSWORD:admin for an administrator).
    #[arg(long = "user")]
    user: Vec<String>,
    /// Most file data held, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    max_bytes: u64,
    /// Shards (threads). With more than one, no oplocks are granted (a
    /// break reaches another shard only when that shard next wakes).
    #[arg(long, default_value = "1")]
    threads: String,
    /// auto, io-uring, mio or xdp.
    #[arg(long)]
    transport: Option<String>,
    /// The interface the xdp transport attaches to.
    #[arg(long)]
    xdp_interface: Option<String>,
    /// Require signed requests.
    #[arg(long)]
    require_signing: bool,
    /// Let unknown users in as guests.
    #[arg(long)]
    allow_guest: bool,
    /// Lowest dialect offered (2.0.2, 2.1, 3.0, 3.0.2, 3.1.1).
    #[arg(long)]
    min_dialect: Option<String>,
    /// Highest dialect offered.
    #[arg(long)]
    max_dialect: Option<String>,
    /// Admin socket for `smbcore ctl` (none by default).
    #[arg(long)]
    admin_socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    smbcore::server::init_logging();
    let args = Args::parse();
    let mut opts = ServeOptions::new(args.listen);
    let settings = [
        ("threads", Some(args.threads.clone())),
        ("transport", args.transport.clone()),
        ("xdp-interface", args.xdp_interface.clone()),
        (
            "require-signing",
            args.require_signing.then(|| "true".into()),
        ),
        ("allow-guest", args.allow_guest.then(|| "true".into())),
        ("min-dialect", args.min_dialect.clone()),
        ("max-dialect", args.max_dialect.clone()),
    ];
    for (key, value) in settings {
        if let Some(v) = value {
            if let Err(e) = opts.settings.set(Source::CommandLine, key, &v) {
                return fail(format!("--{key}: {e}"));
            }
        }
    }
    let mut users = match &args.users {
        Some(path) => match UserFile::load(path) {
            Ok(u) => u,
            Err(e) => return fail(e),
        },
        None => UserFile::default(),
    };
    for u in &args.user {
        let mut it = u.splitn(3, ':');
        match (it.next(), it.next(), it.next()) {
            (Some(name), Some(pw), admin) if !name.is_empty() => {
                users.add(name, pw, admin == Some("admin"))
            }
            _ => return fail(format!("--user {u}: expected NAME:PASSWORD")),
        }
    }
    opts.users = Arc::new(users);
    let memfs = fs::MemFs::new(args.max_bytes).with_oplocks(args.threads == "1");
    opts.shares = Arc::new(StaticShares(vec![memfs.share(&args.share)]));
    opts.admin_socket = args.admin_socket;
    let server = match Server::start(opts) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    tracing_log(&server, &args.share);
    server.wait_for_signal();
    server.shutdown();
    ExitCode::SUCCESS
}

fn tracing_log(server: &Server, share: &str) {
    eprintln!(
        "memfs: serving \\\\{}\\{share} (port {})",
        server.local_addr().ip(),
        server.local_addr().port()
    );
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("memfs: {msg}");
    ExitCode::from(2)
}
