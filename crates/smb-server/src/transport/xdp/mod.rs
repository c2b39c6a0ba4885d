//! The AF_XDP transport (issue 14): frames go from a NIC queue into shard
//! memory through an AF_XDP socket, TCP runs in the shard on smoltcp
//! (`smb-usertcp`, ARCHITECTURE.md "User-space TCP"), and a connection
//! costs no file descriptor.
//!
//! - `bpf`: the XDP program that redirects IPv4 TCP for the listen
//!   address and port into the XSKMAP slot of the receiving queue and
//!   passes everything else (ARP, ICMP, other ports) to the kernel, loaded
//!   and attached with bpf(2) through a BPF link.
//! - `xsk`: one AF_XDP socket per shard, on queue *i* for shard *i*, with
//!   its own UMEM and rings (copy mode, which every driver offers).
//! - `XdpShard`: the shard loop. Each received frame goes to
//!   `TcpStack::ingress`; a connection that reaches ESTABLISHED is admitted
//!   to the engine like an accepted socket (`ShardCore::admit`, so
//!   max-connections and the per-client limit apply); bytes the socket
//!   received are fed with `ShardCore::feed` exactly as the mio transport
//!   does, and the engine's output for a connection goes into that
//!   connection's socket only (`Engine::poll_transmit`).
//!
//! - `keepalive`: TCP keep-alive with the configured idle time, interval
//!   and count (smoltcp alone has one period).
//!
//! The kernel never sees the redirected segments, so it sends no RST for
//! them. TCP's timers (retransmission, delayed ACK, keep-alive, TIME-WAIT,
//! the half-open limit) are filed in the shard's own timer wheel, beside
//! the sessions' autodisconnect deadlines (`Engine::schedule_transport`),
//! so the wait, a `ppoll` on the AF_XDP socket and the shard's eventfd, is
//! bounded by that one wheel's next deadline.
//!
//! Each shard publishes its drop counters (the socket's `XDP_STATISTICS`
//! and the TCP stack's [`StackStats`]) when it is woken (an admin query
//! wakes it), for `ctl stats` and `/metrics`.

pub(crate) mod bpf;
mod keepalive;
mod xsk;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smb_session::engine::{EndReason, Engine};
use smb_session::ids::ConnId;
use smb_usertcp::smoltcp::socket::tcp::State;
use smb_usertcp::smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smb_usertcp::{
    Egress, FlowId, Ingress, LinkAddr, StackConfig, StackStats, TcpStack, TimerHost,
};

use super::eventfd::EventFd;
use crate::shard::{Fed, ShardCore, ShardHandle, ShardWaker, SocketIo, OUTPUT_HIGH_WATER};
use crate::Shared;
use keepalive::KeepAliveWatch;
pub use xsk::XskCounters;
use xsk::XskPort;

/// Receive and send buffer of each TCP connection (each way).
pub const TCP_BUFFER: usize = 4096;

/// A connection idle this long has its TCP socket and buffers parked
/// (freed; rebuilt at its next segment or write, `smb-usertcp`), so an
/// idle connection costs a few hundred bytes of TCP state.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// The interface facts the transport needs.
#[derive(Debug, Clone)]
pub struct XdpOptions {
    /// Interface name.
    pub interface: String,
    /// The address TCP answers on (the listen address).
    pub addr: SocketAddrV4,
    /// TCP keep-alive: idle time before the first probe.
    pub keep_alive: Option<Duration>,
    /// TCP keep-alive: time between probes.
    pub keep_alive_interval: Duration,
    /// Drop a connection whose peer acknowledged nothing this long.
    pub timeout: Option<Duration>,
    /// Most connections a shard holds in TCP (half-open and closing
    /// included).
    pub max_flows: usize,
}

/// One shard's drop and refusal counters (`ctl stats` "xdp", `/metrics`
/// `smbcore_xdp_*`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpCounters {
    /// The AF_XDP socket's.
    pub xsk: XskCounters,
    /// The TCP stack's.
    pub tcp: StackStats,
    /// TCP connections held (half-open and closing included).
    pub flows: usize,
    /// Of those, half-open.
    pub half_open: usize,
    /// Of those, parked (idle: socket and buffers freed).
    pub parked: usize,
    /// Of those, in TIME-WAIT (socket and buffers freed).
    pub time_wait: usize,
}

/// The shard's timer wheel (the engine's) as the TCP stack's
/// [`TimerHost`]: the stack's instants are microseconds since `epoch`.
struct ShardTimers<'a> {
    engine: &'a mut Engine,
    epoch: Instant,
}

impl keepalive::Wheel for ShardTimers<'_> {
    fn insert(&mut self, at: Instant) -> u64 {
        self.engine
            .schedule_transport(at, keepalive::KEEPALIVE_TOKEN)
    }

    fn cancel(&mut self, key: u64) {
        self.engine.cancel_transport(key);
    }
}

impl TimerHost for ShardTimers<'_> {
    fn insert(&mut self, at: SmolInstant, token: u32) -> u64 {
        let at = self.epoch + Duration::from_micros(at.total_micros().max(0) as u64);
        self.engine.schedule_transport(at, token)
    }

    fn cancel(&mut self, key: u64) {
        self.engine.cancel_transport(key);
    }
}

/// The program, its map and its attachment; dropping it detaches the
/// program (the link closes) and frees the map.
#[derive(Debug)]
pub struct Attachment {
    map: OwnedFd,
    prog: OwnedFd,
    link: Option<OwnedFd>,
    ifindex: u32,
    /// `native` or `generic`, once attached.
    pub mode: &'static str,
}

/// The number of receive queues of `ifname` (one shard each at most).
pub fn rx_queues(ifname: &str) -> io::Result<u32> {
    let dir = format!("/sys/class/net/{ifname}/queues");
    let n = std::fs::read_dir(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("interface {ifname}: {e}")))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(u32::try_from(n).unwrap_or(u32::MAX).max(1))
}

fn mac_of(ifname: &str) -> io::Result<LinkAddr> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
        .map_err(|e| io::Error::new(e.kind(), format!("interface {ifname}: {e}")))?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = parts
            .next()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| io::Error::other(format!("interface {ifname}: no MAC address")))?;
    }
    Ok(mac)
}

fn ifindex(ifname: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
    // SAFETY: `c` is a live NUL-terminated string for the whole call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {ifname}: {e}")));
    }
    Ok(i)
}

impl Attachment {
    /// Create the XSKMAP and load the program for `addr` (not attached
    /// yet: the shards' sockets go into the map first).
    pub fn load(ifname: &str, addr: SocketAddrV4) -> io::Result<Attachment> {
        let ifindex = ifindex(ifname)?;
        let queues = rx_queues(ifname)?;
        let map = bpf::xskmap(queues)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create the XSKMAP: {e}")))?;
        let prog = bpf::load(&bpf::program(*addr.ip(), addr.port(), map.as_raw_fd()))?;
        Ok(Attachment {
            map,
            prog,
            link: None,
            ifindex,
            mode: "",
        })
    }

    /// Attach in native (driver) mode, or generic mode where the driver
    /// has none.
    pub fn attach(&mut self) -> io::Result<()> {
        match bpf::attach(&self.prog, self.ifindex, bpf::XDP_FLAGS_DRV_MODE) {
            Ok(link) => {
                self.link = Some(link);
                self.mode = "native";
            }
            Err(native) => {
                let link = bpf::attach(&self.prog, self.ifindex, bpf::XDP_FLAGS_SKB_MODE).map_err(
                    |e| {
                        io::Error::new(
                            e.kind(),
                            format!(
                                "cannot attach the XDP program (native: {native}; generic: {e})"
                            ),
                        )
                    },
                )?;
                self.link = Some(link);
                self.mode = "generic";
            }
        }
        Ok(())
    }
}

/// What the runtime keeps per connection beside its TCP state.
#[derive(Debug)]
struct XConn {
    conn: ConnId,
    /// Bytes of a frame not yet complete (empty, unallocated, when idle).
    partial: Vec<u8>,
    /// Reading stopped: the engine holds more unsent output than the
    /// high-water mark (the TCP window closes meanwhile).
    paused: bool,
}

/// A shard on the AF_XDP transport.
pub(crate) struct XdpShard {
    core: ShardCore,
    port: XskPort,
    stack: TcpStack<Option<XConn>>,
    by_conn: HashMap<ConnId, FlowId>,
    eventfd: Arc<EventFd>,
    epoch: Instant,
    pin_cpu: Option<usize>,
    to_close: Vec<ConnId>,
    fired: Vec<FlowId>,
    /// Transport timers the engine's wheel handed back (token, key).
    due: Vec<(u32, u64)>,
    touched: Vec<FlowId>,
    /// Frames wait in the receive ring for transmit frames to come back.
    starved: bool,
    /// Keep-alive of the established connections (`None`: off).
    keepalive: Option<KeepAliveWatch<FlowId>>,
    probe: Vec<FlowId>,
}

impl XdpShard {
    /// A shard on queue `id` of the interface, its socket put in the
    /// program's map.
    pub(crate) fn new(
        id: u16,
        opts: &XdpOptions,
        attachment: &Attachment,
        engine: Engine,
        shared: Arc<Shared>,
        max_frame: usize,
        pin_cpu: Option<usize>,
    ) -> io::Result<(XdpShard, ShardHandle)> {
        let mac = mac_of(&opts.interface)?;
        let port = XskPort::open(&opts.interface, u32::from(id), mac)?;
        bpf::xskmap_set(&attachment.map, u32::from(id), port.fd())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot fill the XSKMAP: {e}")))?;
        let epoch = Instant::now();
        let seed: [u8; 8] = crate::rng::os_random()?;
        let mut cfg = StackConfig::new(
            vec![*opts.addr.ip()],
            Some(opts.addr.port()),
            u64::from_ne_bytes(seed),
        );
        cfg.rx_buffer = TCP_BUFFER;
        cfg.tx_buffer = TCP_BUFFER;
        cfg.max_flows = opts.max_flows;
        // A SYN flood holds at most a quarter of the slots (RFC 4987).
        cfg.max_half_open = (opts.max_flows / 4).max(1);
        cfg.isn_secret = crate::rng::os_random()?;
        cfg.own_timers = false;
        cfg.park_after = Some(SmolDuration::from_micros(PARK_AFTER.as_micros() as u64));
        // smoltcp's keep-alive is started by the watch (keepalive.rs).
        cfg.keep_alive = None;
        cfg.timeout = opts
            .timeout
            .map(|d| SmolDuration::from_micros(d.as_micros() as u64));
        let stack = TcpStack::new(cfg, SmolInstant::from_micros(0)).map_err(io::Error::other)?;
        let eventfd = Arc::new(EventFd::new(true)?);
        let waker: Arc<dyn ShardWaker> = eventfd.clone();
        let (core, handle) = ShardCore::new(id, engine, shared, max_frame, waker);
        Ok((
            XdpShard {
                core,
                port,
                stack,
                by_conn: HashMap::new(),
                eventfd,
                epoch,
                pin_cpu,
                to_close: Vec::new(),
                fired: Vec::new(),
                due: Vec::new(),
                touched: Vec::new(),
                starved: false,
                keepalive: opts
                    .keep_alive
                    .map(|idle| KeepAliveWatch::new(idle, opts.keep_alive_interval)),
                probe: Vec::new(),
            },
            handle,
        ))
    }

    fn smol(&self, now: Instant) -> SmolInstant {
        SmolInstant::from_micros(now.saturating_duration_since(self.epoch).as_micros() as i64)
    }

    /// File the TCP timers the stack asked for in the shard's wheel.
    fn file_timers(&mut self) {
        let mut host = ShardTimers {
            engine: &mut self.core.engine,
            epoch: self.epoch,
        };
        self.stack.file_timers(&mut host);
    }

    /// Publish the drop counters for `ctl stats` and `/metrics`.
    fn publish_counters(&self) {
        let xsk = self.port.counters().unwrap_or_default();
        let c = XdpCounters {
            xsk,
            tcp: self.stack.stats(),
            flows: self.stack.len(),
            half_open: self.stack.half_open(),
            parked: self.stack.parked(),
            time_wait: self.stack.time_wait(),
        };
        self.core.shared.xdp_counters.lock().insert(self.core.id, c);
    }

    /// How long to wait: until the shard's wheel (sessions and TCP timers
    /// alike) is next due.
    fn timeout(&self, now: Instant) -> Duration {
        let mut t = self.core.wait_timeout(now);
        if self.stack.has_blocked() || self.starved {
            // Waiting for transmit frames to come back: the completion
            // ring wakes nobody, so look again soon.
            t = t.min(Duration::from_millis(1));
        }
        t
    }

    /// Wait for frames, a wake-up or the timeout; `true` when the eventfd
    /// fired.
    fn wait(&mut self, timeout: Duration) -> bool {
        if self.port.rx.available() > 0 && !self.starved {
            return self.drain_eventfd();
        }
        let mut fds = [
            libc::pollfd {
                fd: self.port.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.eventfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `fds` and `ts` are live for the call and their sizes are
        // what is passed; a null signal mask leaves the mask alone.
        let _ = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        self.drain_eventfd()
    }

    fn drain_eventfd(&mut self) -> bool {
        self.eventfd.drain()
    }

    /// Run until a shutdown command arrives.
    pub(crate) fn run(mut self) {
        self.core.tune_thread(self.pin_cpu);
        tracing::debug!(shard = self.core.id, transport = "xdp", "shard started");
        self.publish_counters();
        while !self.core.stopping {
            self.file_timers();
            let timeout = self.timeout(Instant::now());
            let woken = self.wait(timeout);
            // Dated after the wait: a read is never dated before it arrived.
            let now = Instant::now();
            if woken {
                // Fresh counters before an admin query is answered.
                self.publish_counters();
                crate::shard::drain_commands(&mut self, now);
            }
            self.receive();
            // One wheel: sessions' deadlines and TCP's timers come due
            // together.
            let now = Instant::now();
            self.core.engine.handle_timeout(now);
            let snow = self.smol(now);
            let mut due = std::mem::take(&mut self.due);
            let mut fired = std::mem::take(&mut self.fired);
            self.core.engine.take_transport_timers(&mut due);
            let mut probe = std::mem::take(&mut self.probe);
            for (token, key) in due.drain(..) {
                if token == keepalive::KEEPALIVE_TOKEN {
                    if let Some(k) = &mut self.keepalive {
                        let mut wheel = ShardTimers {
                            engine: &mut self.core.engine,
                            epoch: self.epoch,
                        };
                        k.fired(key, now, &mut wheel, &mut probe);
                    }
                    continue;
                }
                self.stack
                    .timer_fired(snow, token, key, &mut self.port.tx, &mut fired);
            }
            self.probe = probe;
            for id in fired.drain(..) {
                self.service(id, now);
            }
            self.due = due;
            self.fired = fired;
            self.start_probes(now);
            crate::shard::drain_engine_events(&mut self);
            self.flush_tx();
        }
        self.shutdown();
    }

    /// Every frame waiting in the receive ring through TCP, then the
    /// connections they touched through the engine, a batch at a time.
    /// Each batch is dated after it was taken off the ring, so no frame is
    /// dated before it arrived.
    fn receive(&mut self) {
        loop {
            // Every segment may need an answer: take a batch only when a
            // batch of answers can go out, else leave the frames on the
            // ring (the kernel drops what comes when it is full, and TCP
            // backs off, as for a full NIC queue).
            if self.port.tx.free_frames() < xsk::BATCH as usize {
                self.flush_tx();
                if self.port.tx.free_frames() < xsk::BATCH as usize {
                    self.starved = true;
                    break;
                }
            }
            self.starved = false;
            let n = self.port.rx.take_batch();
            if n == 0 {
                break;
            }
            let now = Instant::now();
            let snow = self.smol(now);
            for frame in self.port.rx.frames() {
                let Some((link, packet)) = xsk::ipv4_payload(frame) else {
                    continue;
                };
                match self
                    .stack
                    .ingress(snow, link, packet, &mut self.port.tx, || None)
                {
                    Ingress::Flow(id) | Ingress::New(id) => self.touched.push(id),
                    Ingress::NoFlow | Ingress::Dropped => {}
                }
            }
            self.port.rx.refill();
            let mut touched = std::mem::take(&mut self.touched);
            for id in touched.drain(..) {
                self.heard(id, now);
                self.service(id, now);
            }
            self.touched = touched;
            self.flush_tx();
            if n < xsk::BATCH {
                break;
            }
        }
    }

    /// Send what TCP produced: copy mode sends at most 32 frames per
    /// `sendto`, so kick until the kernel took every descriptor (bounded),
    /// taking completed frames back as it goes.
    fn flush_tx(&mut self) {
        for _ in 0..256 {
            self.port.tx.flush();
            self.port.rx.complete(&mut self.port.tx);
            if self.stack.has_blocked() && self.port.tx.has_room() {
                // Frames came back: what TCP held for want of them goes.
                let snow = self.smol(Instant::now());
                self.stack.poll_blocked(snow, &mut self.port.tx);
                continue;
            }
            if self.port.tx.unsent() == 0 {
                break;
            }
        }
    }

    /// Bring a connection up to date after TCP touched it: admit it once
    /// established, feed what it received, write what the engine has for
    /// it, close it when TCP did.
    fn service(&mut self, id: FlowId, now: Instant) {
        let Some(flow) = self.stack.flow_mut(id) else {
            return;
        };
        let state = flow.state();
        if flow.user.is_none() {
            match state {
                State::Closed => {
                    self.stack.remove(id);
                }
                State::Established => {
                    let peer = SocketAddr::V4(flow.key().remote);
                    match self.core.admit(peer, now) {
                        Some(conn) => {
                            self.core.count_socket(true);
                            self.by_conn.insert(conn, id);
                            if let Some(k) = &mut self.keepalive {
                                let mut wheel = ShardTimers {
                                    engine: &mut self.core.engine,
                                    epoch: self.epoch,
                                };
                                k.watch(id, now, &mut wheel);
                            }
                            if let Some(f) = self.stack.flow_mut(id) {
                                f.user = Some(XConn {
                                    conn,
                                    partial: Vec::new(),
                                    paused: false,
                                });
                            }
                            self.read(id, now);
                        }
                        None => {
                            // Refused: reset, as the kernel path closes.
                            flow.socket_mut().abort();
                            let snow = self.smol(now);
                            self.stack.poll(snow, id, &mut self.port.tx);
                            self.stack.remove(id);
                        }
                    }
                }
                State::FinWait1 | State::FinWait2 if flow.socket().can_recv() => {
                    // Data after we closed: nobody will read it. Reset, as
                    // the kernel does (RFC 1122 section 4.2.2.13), so that a
                    // peer that goes on sending holds no flow.
                    flow.socket_mut().abort();
                    let snow = self.smol(now);
                    self.stack.poll(snow, id, &mut self.port.tx);
                    self.stack.remove(id);
                }
                _ => {}
            }
            return;
        }
        if state == State::Closed {
            // Reset by the peer, or timed out (counted apart in the
            // stack's stats).
            let conn = flow.user.as_ref().map(|x| x.conn);
            if let Some(conn) = conn {
                tracing::debug!(shard = self.core.id, peer = %flow.key().remote, "connection lost in TCP");
                self.core.mark(conn, EndReason::DeadTransport);
                self.detach(conn, now);
            }
            self.stack.remove(id);
            return;
        }
        self.read(id, now);
    }

    /// Feed what the connection's socket received, answer, and write.
    fn read(&mut self, id: FlowId, now: Instant) {
        for _ in 0..64 {
            let Some(flow) = self.stack.flow_mut(id) else {
                return;
            };
            let (sock, user) = flow.parts_mut();
            let Some(x) = user.as_mut() else {
                return;
            };
            let conn = x.conn;
            if x.paused {
                if self.core.engine.transmit_len(conn) > OUTPUT_HIGH_WATER {
                    self.write(id, now);
                    return;
                }
                x.paused = false;
            }
            // Take what arrived (the socket's buffer is a ring: up to two
            // pieces).
            let mut got = false;
            while sock.can_recv() {
                let n = sock
                    .recv(|data| {
                        x.partial.extend_from_slice(data);
                        (data.len(), data.len())
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                got = true;
            }
            let eof = !sock.may_recv();
            let mut data = std::mem::take(&mut x.partial);
            let fed = if data.is_empty() {
                Fed::Used {
                    used: 0,
                    stopped: false,
                }
            } else {
                self.core.feed(conn, &mut data, now)
            };
            let Some(x) = self.stack.flow_mut(id).and_then(|f| f.user.as_mut()) else {
                return;
            };
            x.partial = data;
            match fed {
                Fed::Close => {
                    // The engine drops the connection (a protocol error, a
                    // limit): what it had not yet handed out goes unsent,
                    // as on the other transports.
                    self.close(conn, false, now);
                    return;
                }
                Fed::Used { used, stopped } => {
                    x.partial.drain(..used);
                    if x.partial.is_empty() {
                        x.partial = Vec::new();
                    }
                    x.paused = stopped;
                }
            }
            self.write(id, now);
            crate::shard::drain_engine_events(self);
            if eof {
                // The peer sent FIN: it asks nothing more. Answer what it
                // left, then close our side.
                if self.by_conn.contains_key(&conn) {
                    self.close(conn, true, now);
                }
                return;
            }
            if !got {
                return;
            }
        }
    }

    /// Move the engine's output for the connection into its socket (as
    /// much as the send buffer takes) and let TCP send it.
    fn write(&mut self, id: FlowId, now: Instant) {
        let snow = self.smol(now);
        let Some(flow) = self.stack.flow_mut(id) else {
            return;
        };
        if let Some(conn) = flow.user.as_ref().map(|x| x.conn) {
            let sock = flow.socket_mut();
            loop {
                let bytes = self.core.engine.poll_transmit(conn);
                if bytes.is_empty() {
                    break;
                }
                match sock.send_slice(bytes) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => self.core.engine.transmitted(conn, n),
                }
            }
        }
        self.stack.poll(snow, id, &mut self.port.tx);
    }

    /// The engine's side of a connection is gone; TCP finishes on its own.
    fn detach(&mut self, conn: ConnId, now: Instant) {
        if let Some(id) = self.by_conn.remove(&conn) {
            if let Some(k) = &mut self.keepalive {
                let mut wheel = ShardTimers {
                    engine: &mut self.core.engine,
                    epoch: self.epoch,
                };
                k.forget(id, &mut wheel);
            }
            if let Some(u) = self.stack.user_mut(id) {
                *u = None;
            }
            self.core.count_socket(false);
            self.core.closed(conn, now);
        }
    }

    fn close(&mut self, conn: ConnId, last_answers: bool, now: Instant) {
        let Some(&id) = self.by_conn.get(&conn) else {
            return;
        };
        if last_answers {
            self.write(id, now);
        }
        self.detach(conn, now);
        let snow = self.smol(now);
        if let Some(f) = self.stack.flow_mut(id) {
            // FIN after what is queued (RFC 9293 section 3.10.4).
            f.socket_mut().close();
        }
        self.stack.poll(snow, id, &mut self.port.tx);
        if self
            .stack
            .flow(id)
            .is_some_and(|f| f.state() == State::Closed)
        {
            self.stack.remove(id);
        }
    }

    /// The peer of `id` was heard from: stop probing it if it was.
    fn heard(&mut self, id: FlowId, now: Instant) {
        let mut wheel = ShardTimers {
            engine: &mut self.core.engine,
            epoch: self.epoch,
        };
        if self
            .keepalive
            .as_mut()
            .is_some_and(|k| k.heard(id, now, &mut wheel))
        {
            if let Some(f) = self.stack.flow_mut(id) {
                f.socket_mut().set_keep_alive(None);
            }
        }
    }

    /// Connections silent for the keep-alive idle time (their watch's
    /// timers came due on the wheel this turn): smoltcp probes each at once
    /// and then every interval, and its timeout (idle + interval x count of
    /// silence) ends it if nothing answers. A probing socket is not parked
    /// (`smb-usertcp`'s park rules), so its probes go on.
    fn start_probes(&mut self, now: Instant) {
        let Some(k) = &self.keepalive else {
            return;
        };
        let every = SmolDuration::from_micros(k.interval().as_micros() as u64);
        let mut probe = std::mem::take(&mut self.probe);
        let snow = self.smol(now);
        for id in probe.drain(..) {
            if let Some(f) = self.stack.flow_mut(id) {
                f.socket_mut().set_keep_alive(Some(every));
                self.stack.poll(snow, id, &mut self.port.tx);
            }
        }
        self.probe = probe;
    }

    fn shutdown(&mut self) {
        let now = Instant::now();
        let snow = self.smol(now);
        let conns: Vec<(ConnId, FlowId)> = self.by_conn.iter().map(|(c, f)| (*c, *f)).collect();
        for (conn, id) in conns {
            self.core.mark(conn, EndReason::Shutdown);
            self.detach(conn, now);
            if let Some(f) = self.stack.flow_mut(id) {
                f.socket_mut().abort();
            }
            self.stack.poll(snow, id, &mut self.port.tx);
        }
        self.flush_tx();
        self.file_timers();
        self.publish_counters();
        tracing::info!(shard = self.core.id, xsk = %self.port.statistics(), "shard stopped");
    }
}

impl SocketIo for XdpShard {
    fn core(&mut self) -> &mut ShardCore {
        &mut self.core
    }

    fn flush_conn(&mut self, conn: ConnId) {
        if let Some(&id) = self.by_conn.get(&conn) {
            let now = Instant::now();
            self.write(id, now);
            // Output drained below the high-water mark: read again.
            self.read(id, now);
        }
    }

    fn close_conn(&mut self, conn: ConnId, last_answers: bool, now: Instant) {
        self.close(conn, last_answers, now);
    }

    fn close_list(&mut self) -> &mut Vec<ConnId> {
        &mut self.to_close
    }
}

/// The IPv4 address TCP answers on: the listen address, which must be
/// one of the interface's (the XDP program matches it).
pub fn listen_addr(listen: SocketAddr) -> io::Result<SocketAddrV4> {
    match listen {
        SocketAddr::V4(a) if !a.ip().is_unspecified() => Ok(a),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the xdp transport needs the interface's IPv4 address in --listen (e.g. --listen 198.18.0.1:445)",
        )),
    }
}
