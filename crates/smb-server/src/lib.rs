//! smb-server: the smbcore runtime.
//!
//! It drives the sans-IO engine of `smb-session` over real sockets: one
//! shard thread per core, each with its own mio `Poll`, SO_REUSEPORT
//! listener, connections, sessions and timer wheel (`shard`), on an address
//! that one process serves at a time (`listeners`); an admin socket and the
//! `smbcore ctl` client ([`admin`], [`admin_socket`], [`ctl`]); layered, live
//! configuration ([`config`]); Prometheus metrics ([`metrics`]); and the
//! `smbcore dump` decoder ([`dump`]).
//!
//! Embedding: [`Server::start`] with [`ServeOptions`] returns a running
//! server; [`Server::shutdown`] stops it.
//!
//! ```
//! use std::sync::Arc;
//! use smb_server::{ServeOptions, Server};
//! use smb_server::users::UserFile;
//!
//! let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap());
//! let mut users = UserFile::default();
//! users.add("alice", "wonderland", false);
//! opts.users = Arc::new(users);
//! let server = Server::start(opts).expect("start");
//! let addr = server.local_addr();
//! assert!(addr.port() != 0);
//! // Clients can connect to `addr` now.
//! std::net::TcpStream::connect(addr).expect("connect");
//! server.shutdown();
//! ```
//! A start either succeeds whole or
//! leaves nothing behind: every resource (address claim, listeners, admin
//! socket, metrics listener) is claimed before the first thread starts.
//!
//! `unsafe` is denied everywhere but in [`transport`], the raw socket and
//! thread tuning calls, each with its `SAFETY:` argument.
#![deny(unsafe_code)]

pub mod admin;
pub mod admin_socket;
#[cfg(feature = "cli")]
pub mod cli;
mod client_slots;
pub mod config;
#[cfg(feature = "cli")]
pub mod ctl;
pub mod dump;
mod kerberos;
mod listeners;
pub mod metrics;
mod per_client;
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
use smb_auth::ntlm::CredentialStore;
use smb_session::engine::budget::MemoryBudget;
use smb_session::engine::{Engine, EngineConfig, NoShares, ShareRegistry};

use crate::admin_socket::AdminSocket;
use crate::config::{Effective, MachineFacts, Settings};
use crate::listeners::{AddressClaim, ShardListeners};
use crate::shard::mio::MioShard;
use crate::shard::ShardHandle;
use crate::users::UserFile;

/// Where `smbcore serve` listens when not told otherwise. Port 445 needs
/// privileges (CAP_NET_BIND_SERVICE); 4450 does not.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4450";

/// Largest NBSS frame accepted (1 MiB of payload plus headers): what the
/// negotiated MaxTransact/Read/Write sizes allow, checked before buffering.
pub const MAX_FRAME: usize = 1024 * 1024 + 4096;

/// The default admin socket for a server listening on `listen`: in
/// `$XDG_RUNTIME_DIR/smbcore/`, else `/run/smbcore/` for root, else
/// `smbcore-UID/` in the temp dir (a directory per user: one that another
/// user made there first is refused, see [`admin_socket`]), named after the
/// port so that servers on different ports do not collide.
pub fn default_admin_socket(listen: Option<SocketAddr>) -> PathBuf {
    let port = listen.map(|a| a.port()).unwrap_or(4450);
    let uid = transport::effective_uid();
    let dir = if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(d).join("smbcore")
    } else if Path::new("/run").is_dir() && uid == 0 {
        PathBuf::from("/run/smbcore")
    } else {
        std::env::temp_dir().join(format!("smbcore-{uid}"))
    };
    dir.join(format!("admin-{port}.sock"))
}

/// Set up `tracing` from `RUST_LOG` (default `info`). An embedding server
/// sets up its own subscriber instead.
#[cfg(feature = "cli")]
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// What to start a server with. Start from [`ServeOptions::new`] and set
/// fields (more may be added in later versions).
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Layered settings (automatic values plus explicit layers).
    pub settings: Settings,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Where logons are checked: the authentication provider, which gives
    /// the NT hash and the administrator flag of a user in a domain
    /// ([`CredentialStore`]). The bundled server loads a
    /// [`users file`](crate::users::UserFile); an embedder may plug in a
    /// directory or a database. Default: nobody (anonymous logons only).
    pub users: Arc<dyn CredentialStore + Send + Sync>,
    /// The disk shares served besides IPC$ ([`ShareRegistry`]). Default:
    /// none.
    pub shares: Arc<dyn ShareRegistry>,
    /// A Kerberos acceptor of the embedder's; when set it is used instead
    /// of the `keytab` setting. Default: none (the `keytab` setting, and
    /// NTLMSSP only when that is empty).
    pub kerberos: Option<Arc<dyn smb_auth::kerberos::KerberosAcceptor>>,
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
            users: Arc::new(UserFile::default()),
            shares: Arc::new(NoShares),
            kerberos: None,
            admin_socket: None,
            metrics: None,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("settings", &self.settings)
            .field("listen", &self.listen)
            .field("shares", &self.shares)
            .field("admin_socket", &self.admin_socket)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// Counters the runtime keeps beside the engines' own.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    /// Connections refused at max-connections or max-connections-per-client.
    pub refused_connections: AtomicU64,
    /// Of those, refused at max-connections-per-client.
    pub refused_per_client: AtomicU64,
    /// accept() failures (EMFILE, ...).
    pub accept_errors: AtomicU64,
    /// Connections dropped for broken framing.
    pub protocol_errors: AtomicU64,
    /// Sockets the transports hold open (descriptors on mio, direct
    /// descriptors on io_uring, which /proc/PID/fd does not show), closing
    /// ones included: what a leak check counts.
    pub sockets: AtomicU64,
}

/// State shared by the shards, the admin socket and the metrics endpoint.
pub struct Shared {
    pub(crate) shards: OnceLock<Vec<ShardHandle>>,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) engine_config: Mutex<Arc<EngineConfig>>,
    pub(crate) users: Arc<dyn CredentialStore + Send + Sync>,
    pub(crate) shares: Arc<dyn ShareRegistry>,
    pub(crate) kerberos: kerberos::KerberosSlot,
    pub(crate) max_connections: AtomicU64,
    pub(crate) open_connections: AtomicU64,
    /// Live connections per client address, and their limit.
    pub(crate) per_client: per_client::PerClient,
    pub(crate) stats: RuntimeStats,
    pub(crate) started: Instant,
    pub(crate) stopping: AtomicBool,
    /// The transport every shard runs (`mio` or `io_uring`).
    pub(crate) transport: &'static str,
    /// Drop counters of each xdp shard, by shard id (published by the
    /// shards; empty on the other transports).
    pub(crate) xdp_counters: Mutex<std::collections::BTreeMap<u16, transport::xdp::XdpCounters>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("transport", &self.transport)
            .field("shares", &self.shares)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
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
    /// Set once the admin thread runs (it removes the socket when it ends).
    admin_socket: Option<PathBuf>,
    /// A second handle on the admin socket, to wake its thread at stop.
    admin_waker: Option<std::os::unix::net::UnixListener>,
    /// Set once the metrics thread runs.
    metrics_addr: Option<SocketAddr>,
    /// The XDP program's attachment (xdp transport): detached on drop,
    /// after the shards stopped.
    _xdp: Option<transport::xdp::Attachment>,
    /// This process's claim on `local_addr`, held until the server is gone.
    _claim: AddressClaim,
}

/// Build the engine configuration from the settings in force.
///
/// `memory` is the server's one budget (shared by every shard and kept
/// across configuration changes); its limit is set from `eff` here.
pub(crate) fn engine_config(
    eff: &Effective,
    users: &Arc<dyn CredentialStore + Send + Sync>,
    shares: &Arc<dyn ShareRegistry>,
    server_guid: [u8; 16],
    memory: &Arc<MemoryBudget>,
) -> EngineConfig {
    let mut cfg = EngineConfig::new(server_guid);
    memory.set_limit(usize::try_from(eff.memory_budget).unwrap_or(usize::MAX));
    cfg.memory = memory.clone();
    cfg.autodisconnect = eff.autodisconnect;
    cfg.pre_auth_timeout = eff.pre_auth_timeout;
    cfg.connection_idle_timeout = Some(eff.connection_idle_timeout);
    cfg.auth_failure_delay = eff.auth_failure_delay;
    cfg.max_sessions_per_connection = eff.max_sessions_per_connection as usize;
    cfg.credit_cap = eff.credit_cap;
    cfg.require_signing = eff.require_signing;
    cfg.encryption = eff.encryption;
    cfg.ipc_encryption = eff.ipc_encryption;
    cfg.ciphers = eff.ciphers.clone();
    cfg.allow_anonymous = eff.allow_anonymous;
    cfg.allow_guest = eff.allow_guest;
    cfg.min_dialect = eff.min_dialect;
    cfg.max_dialect = eff.max_dialect;
    cfg.server_comment = eff.server_comment.clone();
    cfg.users = users.clone();
    cfg.shares = shares.clone();
    cfg.clustered = eff.threads > 1;
    cfg
}

impl Server {
    /// Claim the listen address, bind every listener and the admin socket,
    /// then start one shard per thread, the admin socket and metrics.
    ///
    /// Nothing runs before everything is claimed: on any error, whatever was
    /// made so far is closed (and the admin socket removed) before this
    /// returns, and the error is one line that says what failed.
    pub fn start(opts: ServeOptions) -> io::Result<Server> {
        let mut eff = opts
            .settings
            .effective()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let transport_kind = choose_transport(&eff)?;
        // AF_XDP: one shard per receive queue, TCP in user space on
        // the listen address; the program is loaded now and attached once
        // every shard's socket is in its map.
        let mut xdp = None;
        if transport_kind == TransportKind::Xdp {
            let addr = transport::xdp::listen_addr(opts.listen)?;
            // One shard per receive queue, exactly: an AF_XDP socket takes
            // frames of its own queue only, and a queue without one would
            // pass the port's segments to the kernel, which has no socket
            // for them and answers with RSTs.
            let queues = transport::xdp::rx_queues(&eff.xdp_interface)?.max(1) as usize;
            if eff.threads != queues {
                tracing::debug!(
                    interface = %eff.xdp_interface,
                    queues,
                    threads = eff.threads,
                    "xdp: one shard per receive queue of the interface, whatever `threads` says \
                     (`ethtool -L IFACE combined N` changes the queues)"
                );
            }
            eff.threads = queues;
            xdp = Some((
                addr,
                transport::xdp::Attachment::load(&eff.xdp_interface, addr)?,
            ));
        }
        let ShardListeners {
            claim,
            mut listeners,
            local_addr,
        } = listeners::bind(opts.listen, eff.threads.max(1))?;
        if xdp.is_some() {
            // The kernel's listeners only claimed the address and port; the
            // program takes the port's segments before the kernel sees them.
            listeners.truncate(0);
        }
        if let Some(idle) = eff.tcp_keepalive.filter(|_| xdp.is_none()) {
            for l in &listeners {
                transport::set_keepalive(
                    l,
                    idle,
                    eff.tcp_keepalive_interval,
                    eff.tcp_keepalive_count,
                )
                .map_err(|e| io::Error::new(e.kind(), format!("cannot set TCP keepalive: {e}")))?;
            }
        }
        if eff.busy_poll_us > 0 && xdp.is_none() {
            for l in &listeners {
                transport::set_busy_poll(l, eff.busy_poll_us).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot set SO_BUSY_POLL: {e}"))
                })?;
            }
        }
        if eff.cpu_steering && xdp.is_none() {
            transport::attach_cpu_steering(&listeners[0]).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot attach the CPU steering program: {e}"),
                )
            })?;
        }

        let guid: [u8; 16] = rng::os_random()?;
        let users = opts.users.clone();
        let shares = opts.shares.clone();
        let memory = MemoryBudget::new(usize::MAX);
        let krb = kerberos::KerberosSlot::new(opts.kerberos.clone());
        let mut ecfg = engine_config(&eff, &users, &shares, guid, &memory);
        ecfg.transport = transport_kind.name();
        ecfg.kerberos = krb
            .acceptor(&eff, false)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let ecfg = Arc::new(ecfg);
        let epoch = Instant::now();
        let wall = SystemTime::now();
        let shared = Arc::new(Shared {
            shards: OnceLock::new(),
            settings: Mutex::new(opts.settings.clone()),
            engine_config: Mutex::new(ecfg.clone()),
            users,
            shares,
            kerberos: krb,
            max_connections: AtomicU64::new(eff.max_connections),
            open_connections: AtomicU64::new(0),
            per_client: per_client::PerClient::new(eff.max_connections_per_client),
            stats: RuntimeStats::default(),
            started: epoch,
            stopping: AtomicBool::new(false),
            transport: transport_kind.name(),
            xdp_counters: Mutex::new(std::collections::BTreeMap::new()),
        });
        let mut shards = Vec::new();
        let mut handles = Vec::new();
        let mut listeners: Vec<Option<std::net::TcpListener>> =
            listeners.into_iter().map(Some).collect();
        if xdp.is_some() {
            listeners.resize_with(eff.threads.max(1), || None);
        }
        for (i, l) in listeners.into_iter().enumerate() {
            let engine = Engine::new(
                i as u16,
                ecfg.clone(),
                epoch,
                wall,
                rng::ShardRng::from_os(i as u16)?.into_random_source(),
            );
            let pin = eff.cpu_steering.then_some(i);
            let (shard, handle) = match (transport_kind, l) {
                (TransportKind::Xdp, _) => {
                    let Some((addr, attachment)) = xdp.as_ref() else {
                        return Err(io::Error::other("xdp transport without its program"));
                    };
                    let options = transport::xdp::XdpOptions {
                        interface: eff.xdp_interface.clone(),
                        addr: *addr,
                        keep_alive: eff.tcp_keepalive,
                        keep_alive_interval: eff.tcp_keepalive_interval,
                        timeout: eff.tcp_keepalive.map(|idle| {
                            idle + eff.tcp_keepalive_interval * eff.tcp_keepalive_count
                        }),
                        max_flows: usize::try_from(eff.max_connections)
                            .unwrap_or(usize::MAX)
                            .saturating_add(1024),
                    };
                    let (s, h) = transport::xdp::XdpShard::new(
                        i as u16,
                        &options,
                        attachment,
                        engine,
                        shared.clone(),
                        MAX_FRAME,
                        pin,
                    )?;
                    (AnyShard::Xdp(Box::new(s)), h)
                }
                (_, None) => return Err(io::Error::other("a shard without its listener")),
                (TransportKind::Mio, Some(l)) => {
                    let (s, h) =
                        MioShard::new(i as u16, l, engine, shared.clone(), MAX_FRAME, pin)?;
                    (AnyShard::Mio(s), h)
                }
                (TransportKind::IoUring, Some(l)) => {
                    // Direct descriptors count against the open-file limit,
                    // and each shard's table is checked against it alone.
                    let files = u32::try_from(
                        eff.max_connections
                            .min(config::MachineFacts::detect().open_files),
                    )
                    .unwrap_or(u32::MAX)
                    .max(16);
                    let options = transport::uring::UringOptions {
                        sqpoll_idle_ms: (eff.io_uring_sqpoll_ms > 0)
                            .then_some(eff.io_uring_sqpoll_ms),
                        files,
                        min_wait_us: (eff.io_uring_min_wait_us > 0)
                            .then_some(eff.io_uring_min_wait_us),
                    };
                    let (s, h) = transport::uring::UringShard::new(
                        i as u16,
                        l,
                        engine,
                        shared.clone(),
                        MAX_FRAME,
                        pin,
                        options,
                    )?;
                    (AnyShard::Uring(s), h)
                }
            };
            shards.push(shard);
            handles.push(handle);
        }
        let _ = shared.shards.set(handles);
        if let Some((_, attachment)) = xdp.as_mut() {
            attachment.attach()?;
        }
        // The admin socket comes last: once it exists, everything is bound
        // and the XDP program (if any) attached (scripts and tests wait for
        // it).
        let metrics = opts.metrics.map(metrics::bind).transpose()?;
        let admin = opts
            .admin_socket
            .as_deref()
            .map(AdminSocket::bind)
            .transpose()?;
        // Said once everything is claimed: a start refused for want of a
        // resource says one line, its error (and detaches the program).
        if let Some((_, attachment)) = xdp.as_ref() {
            tracing::info!(
                interface = %eff.xdp_interface,
                mode = attachment.mode,
                shards = eff.threads,
                "XDP program attached"
            );
        }

        let mut server = Server {
            shared,
            threads: Vec::new(),
            local_addr,
            admin_socket: None,
            admin_waker: None,
            metrics_addr: None,
            _xdp: xdp.map(|(_, a)| a),
            _claim: claim,
        };
        if let Err(e) = server.spawn_threads(shards, admin, metrics) {
            server.stop();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot start a server thread: {e}"),
            ));
        }
        Ok(server)
    }

    /// Start every thread; on error, those already started are stopped by
    /// the caller and what was not started yet is dropped (closed).
    fn spawn_threads(
        &mut self,
        shards: Vec<AnyShard>,
        admin: Option<AdminSocket>,
        metrics: Option<std::net::TcpListener>,
    ) -> io::Result<()> {
        for (i, shard) in shards.into_iter().enumerate() {
            self.threads.push(
                std::thread::Builder::new()
                    .name(format!("smbcore-shard-{i}"))
                    .spawn(move || shard.run())?,
            );
        }
        if let Some(admin) = admin {
            let path = admin.path().to_path_buf();
            let waker = admin.waker()?;
            self.threads.push(admin.spawn(self.shared.clone())?);
            self.admin_socket = Some(path);
            self.admin_waker = Some(waker);
        }
        if let Some(listener) = metrics {
            let addr = listener.local_addr()?;
            self.threads
                .push(metrics::spawn(listener, self.shared.clone())?);
            self.metrics_addr = Some(addr);
        }
        Ok(())
    }
}

/// The transport the shards run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// epoll through mio.
    Mio,
    /// One io_uring per shard.
    IoUring,
    /// AF_XDP with TCP in user space.
    Xdp,
}

impl TransportKind {
    /// As `ctl stats` and `/metrics` name it.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Mio => "mio",
            TransportKind::IoUring => "io_uring",
            TransportKind::Xdp => "xdp",
        }
    }
}

/// `transport = auto` takes io_uring when the kernel allows it and says in
/// one log line why not otherwise; `io-uring` refuses to start without it.
fn choose_transport(eff: &Effective) -> io::Result<TransportKind> {
    match eff.transport {
        config::TransportChoice::Mio => Ok(TransportKind::Mio),
        config::TransportChoice::Xdp if eff.xdp_interface.is_empty() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the xdp transport needs an interface (--xdp-interface IFACE)",
        )),
        config::TransportChoice::Xdp => Ok(TransportKind::Xdp),
        config::TransportChoice::IoUring => match transport::uring::probe() {
            Ok(()) => Ok(TransportKind::IoUring),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("the io_uring transport is not available here: {e}"),
            )),
        },
        config::TransportChoice::Auto => match transport::uring::probe() {
            Ok(()) => Ok(TransportKind::IoUring),
            Err(e) => {
                tracing::info!(error = %e, "io_uring is not available; using the mio transport");
                Ok(TransportKind::Mio)
            }
        },
    }
}

/// A shard on either transport.
pub(crate) enum AnyShard {
    Mio(MioShard),
    Uring(transport::uring::UringShard),
    Xdp(Box<transport::xdp::XdpShard>),
}

impl AnyShard {
    fn run(self) {
        match self {
            AnyShard::Mio(s) => s.run(),
            AnyShard::Uring(s) => s.run(),
            AnyShard::Xdp(s) => s.run(),
        }
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
        self.stop();
        tracing::info!("smbcore stopped");
    }

    fn stop(self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for s in self.shared.shards() {
            s.send(admin::ShardCmd::Shutdown);
        }
        // The admin and metrics threads block in accept(): wake them so
        // they see `stopping` (the admin socket through its listening
        // socket, not its path, which an operator may have removed).
        if let Some(w) = &self.admin_waker {
            admin_socket::stop_waker(w);
        }
        if let Some(a) = self.metrics_addr {
            let _ = std::net::TcpStream::connect(a);
        }
        // The admin thread removes its socket as it ends.
        for t in self.threads {
            let _ = t.join();
        }
    }
}
