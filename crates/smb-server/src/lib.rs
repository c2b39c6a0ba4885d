//! smb-server: the smbcore runtime.
//!
//! It drives the sans-IO engine of `smb-session` over real sockets: one
//! shard thread per core, each with its own mio `Poll`, SO_REUSEPORT
//! listener, connections, sessions and timer wheel ([`shard`]); an admin
//! socket and the `smbcore ctl` client ([`admin`], [`ctl`]); layered, live
//! configuration ([`config`]); Prometheus metrics ([`metrics`]); and the
//! `smbcore dump` decoder ([`dump`]).
//!
//! Embedding: [`Server::start`] with [`ServeOptions`] returns a running
//! server; [`Server::shutdown`] stops it.
//!
//! `unsafe` is denied everywhere but in [`transport`], the raw socket and
//! thread tuning calls, each with its `SAFETY:` argument.
#![deny(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod dump;
pub mod metrics;
pub mod rng;
mod shard;
#[allow(unsafe_code)]
pub mod transport;
pub mod users;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use smb_session::engine::{Engine, EngineConfig};

use crate::config::{Effective, MachineFacts, Settings};
use crate::shard::{Shard, ShardHandle};
use crate::users::UserFile;

/// Where `smbcore serve` listens when not told otherwise. Port 445 needs
/// privileges (CAP_NET_BIND_SERVICE); 4450 does not.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4450";

/// Largest NBSS frame accepted (1 MiB of payload plus headers): what the
/// negotiated MaxTransact/Read/Write sizes allow, checked before buffering.
pub const MAX_FRAME: usize = 1024 * 1024 + 4096;

/// The default admin socket for a server listening on `listen`: in
/// `$XDG_RUNTIME_DIR/smbcore/`, else `/run/smbcore/` for root, else `/tmp`,
/// named after the port so that servers on different ports do not collide.
pub fn default_admin_socket(listen: Option<SocketAddr>) -> PathBuf {
    let port = listen.map(|a| a.port()).unwrap_or(4450);
    let dir = if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(d).join("smbcore")
    } else if Path::new("/run").is_dir() && is_root() {
        PathBuf::from("/run/smbcore")
    } else {
        std::env::temp_dir().join("smbcore")
    };
    dir.join(format!("admin-{port}.sock"))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Set up `tracing` from `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// What to start a server with.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Layered settings (automatic values plus explicit layers).
    pub settings: Settings,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Known users.
    pub users: UserFile,
    /// Admin socket to serve, if any.
    pub admin_socket: Option<PathBuf>,
    /// Prometheus endpoint, if any.
    pub metrics: Option<SocketAddr>,
}

impl ServeOptions {
    /// Defaults tuned from this machine, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        ServeOptions {
            settings: Settings::new(MachineFacts::detect()),
            listen,
            users: UserFile::default(),
            admin_socket: None,
            metrics: None,
        }
    }
}

/// Counters the runtime keeps beside the engines' own.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    /// Connections refused at max-connections.
    pub refused_connections: AtomicU64,
    /// accept() failures (EMFILE, ...).
    pub accept_errors: AtomicU64,
    /// Connections dropped for broken framing.
    pub protocol_errors: AtomicU64,
}

/// State shared by the shards, the admin socket and the metrics endpoint.
#[derive(Debug)]
pub struct Shared {
    pub(crate) shards: OnceLock<Vec<ShardHandle>>,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) engine_config: Mutex<Arc<EngineConfig>>,
    pub(crate) users: Arc<UserFile>,
    pub(crate) max_connections: AtomicU64,
    pub(crate) open_connections: AtomicU64,
    pub(crate) stats: RuntimeStats,
    pub(crate) started: Instant,
    pub(crate) stopping: AtomicBool,
}

impl Shared {
    /// Handles of every shard (empty only while the server starts).
    pub(crate) fn shards(&self) -> &[ShardHandle] {
        self.shards.get().map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
    admin_socket: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Build the engine configuration from the settings in force.
pub(crate) fn engine_config(
    eff: &Effective,
    users: &Arc<UserFile>,
    server_guid: [u8; 16],
) -> EngineConfig {
    let mut cfg = EngineConfig::new(server_guid);
    cfg.autodisconnect = eff.autodisconnect;
    cfg.pre_auth_timeout = eff.pre_auth_timeout;
    cfg.max_sessions_per_connection = eff.max_sessions_per_connection as usize;
    cfg.credit_cap = eff.credit_cap;
    cfg.require_signing = eff.require_signing;
    cfg.allow_anonymous = eff.allow_anonymous;
    cfg.allow_guest = eff.allow_guest;
    cfg.min_dialect = eff.min_dialect;
    cfg.max_dialect = eff.max_dialect;
    cfg.server_comment = eff.server_comment.clone();
    cfg.users = users.clone();
    cfg.clustered = eff.threads > 1;
    cfg
}

impl Server {
    /// Bind, start one shard per thread, the admin socket and metrics.
    pub fn start(opts: ServeOptions) -> io::Result<Server> {
        let eff = opts
            .settings
            .effective()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let first = bind_reuseport(opts.listen).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", opts.listen))
        })?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..eff.threads {
            listeners.push(bind_reuseport(local_addr)?);
        }
        if eff.busy_poll_us > 0 {
            for l in &listeners {
                transport::set_busy_poll(l, eff.busy_poll_us)?;
            }
        }
        if eff.cpu_steering {
            transport::attach_cpu_steering(&listeners[0]).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot attach the CPU steering program: {e}"),
                )
            })?;
        }
        let guid: [u8; 16] = rng::os_random()?;
        let users = Arc::new(opts.users);
        let ecfg = Arc::new(engine_config(&eff, &users, guid));
        let epoch = Instant::now();
        let wall = SystemTime::now();
        let shared = Arc::new(Shared {
            shards: OnceLock::new(),
            settings: Mutex::new(opts.settings.clone()),
            engine_config: Mutex::new(ecfg.clone()),
            users,
            max_connections: AtomicU64::new(eff.max_connections),
            open_connections: AtomicU64::new(0),
            stats: RuntimeStats::default(),
            started: epoch,
            stopping: AtomicBool::new(false),
        });
        let mut shards = Vec::new();
        let mut handles = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let engine = Engine::new(
                i as u16,
                ecfg.clone(),
                epoch,
                wall,
                rng::ShardRng::from_os(i as u16)?.into_random_source(),
            );
            let pin = eff.cpu_steering.then_some(i);
            let (shard, handle) = Shard::new(i as u16, l, engine, shared.clone(), MAX_FRAME, pin)?;
            shards.push(shard);
            handles.push(handle);
        }
        let _ = shared.shards.set(handles);
        let mut threads = Vec::new();
        for (i, shard) in shards.into_iter().enumerate() {
            threads.push(
                std::thread::Builder::new()
                    .name(format!("smbcore-shard-{i}"))
                    .spawn(move || shard.run())?,
            );
        }
        let admin_socket = match opts.admin_socket {
            Some(path) => {
                threads.push(admin::serve_socket(&path, shared.clone())?);
                Some(path)
            }
            None => None,
        };
        let metrics_addr = match opts.metrics {
            Some(addr) => {
                let (t, bound) = metrics::serve(addr, shared.clone())?;
                threads.push(t);
                Some(bound)
            }
            None => None,
        };
        Ok(Server {
            shared,
            threads,
            local_addr,
            admin_socket,
            metrics_addr,
        })
    }
}

impl Server {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin socket path, if one is served.
    pub fn admin_socket(&self) -> Option<&Path> {
        self.admin_socket.as_deref()
    }

    /// The metrics address, if served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Shared state (for in-process administration).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Block until SIGINT or SIGTERM.
    pub fn wait_for_signal(&self) {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "shutting down");
        }
    }

    /// Stop accepting, log every session off, close, and join the threads.
    pub fn shutdown(self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for s in self.shared.shards() {
            s.send(admin::ShardCmd::Shutdown);
        }
        // The admin and metrics threads block in accept(): wake them so
        // they see `stopping`.
        if let Some(p) = &self.admin_socket {
            let _ = std::os::unix::net::UnixStream::connect(p);
        }
        if let Some(a) = self.metrics_addr {
            let _ = std::net::TcpStream::connect(a);
        }
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(p) = &self.admin_socket {
            let _ = std::fs::remove_file(p);
        }
        tracing::info!("smbcore stopped");
    }
}
