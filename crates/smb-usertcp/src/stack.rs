//! [`TcpStack`]: smoltcp sockets reached through a 4-tuple hash, one
//! single-socket `SocketSet` per connection, with the connections' TCP
//! timers in a timer wheel (the shard's, through [`TimerHost`]) and the
//! half-open connections in a table of their own.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use slab::Slab;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use crate::device::{capabilities, Discard, OnePacket, Sent};
use crate::flow::{FlowKey, SegmentInfo, SynOptions};
use crate::timers::{OwnTimers, TimerHost};
use crate::{Egress, LinkAddr};

mod park;
mod time_wait;

pub use time_wait::TIME_WAIT;
use time_wait::{TimeWait, TimeWaitSegment};

/// How a stack is set up.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// This host's addresses (one or two: smoltcp's default interface
    /// holds two).
    pub addrs: Vec<Ipv4Addr>,
    /// The port SYNs may open connections on (`None`: no listening, e.g. a
    /// client).
    pub listen_port: Option<u16>,
    /// Receive buffer per connection, which is also the largest window it
    /// advertises (RFC 9293 section 3.8.6).
    pub rx_buffer: usize,
    /// Send buffer per connection.
    pub tx_buffer: usize,
    /// Most connections at once, half-open ones included; a SYN beyond it
    /// is dropped as by a full listen backlog (after evicting the oldest
    /// half-open connection, if there is one).
    pub max_flows: usize,
    /// Most half-open connections (SYN received, handshake not done) at
    /// once, the bound of the half-open table (RFC 4987 section 3.2,
    /// "Increasing backlog" with "Recycling the oldest half-open TCB"): a
    /// SYN that finds it full evicts the oldest half-open connection, so
    /// a flood of spoofed SYNs holds at most this many of the `max_flows`
    /// slots and cannot lock real clients out.
    pub max_half_open: usize,
    /// Receive and send buffer of a half-open connection (at most
    /// `rx_buffer` / `tx_buffer`): its SYN-ACK advertises this window, and
    /// the connection gets full-size buffers once established (the same
    /// replay that restores a parked one), so a SYN flood's connections
    /// cost a few KiB less each.
    pub half_open_buffer: usize,
    /// A half-open connection still not established this long after its
    /// SYN is dropped (its SYN-ACKs were not answered; RFC 4987 section
    /// 3.3, "Reducing SYN-RECEIVED timer").
    pub half_open_timeout: Duration,
    /// 128-bit secret of the initial sequence numbers (RFC 6528 section
    /// 3); the runtime gives it OS randomness.
    pub isn_secret: [u8; 16],
    /// Park a connection idle this long (ESTABLISHED, nothing unsent,
    /// unacknowledged or unread, every byte received acknowledged): its
    /// smoltcp socket and both buffers are freed, and the few numbers
    /// needed to rebuild it are kept ([`TcpStack::flow_mut`] and the next
    /// segment restore it). `None`: never.
    pub park_after: Option<Duration>,
    /// File TCP timers in a wheel of the stack's own ([`TcpStack::poll_timers`],
    /// [`TcpStack::next_deadline`]); `false`: the runtime's wheel, through
    /// [`TcpStack::file_timers`] and [`TcpStack::timer_fired`].
    pub own_timers: bool,
    /// The IP MTU of the link (the MSS follows from it).
    pub mtu: usize,
    /// Seed of smoltcp's generator (initial sequence numbers, ports); the
    /// runtime gives it OS randomness.
    pub seed: u64,
    /// TCP keep-alive interval of every connection (`None`: off).
    pub keep_alive: Option<Duration>,
    /// A connection whose peer acknowledges nothing (data, keep-alives)
    /// for this long is dropped (`None`: never).
    pub timeout: Option<Duration>,
}

impl StackConfig {
    /// A configuration with the given addresses, 4 KiB buffers each way,
    /// 1,000,000 flows at most, an MTU of 1500.
    pub fn new(addrs: Vec<Ipv4Addr>, listen_port: Option<u16>, seed: u64) -> StackConfig {
        StackConfig {
            addrs,
            listen_port,
            rx_buffer: 4096,
            tx_buffer: 4096,
            max_flows: 1_000_000,
            max_half_open: 65_536,
            half_open_buffer: 1024,
            half_open_timeout: Duration::from_secs(30),
            isn_secret: secret_from(seed),
            own_timers: true,
            park_after: None,
            mtu: 1500,
            seed,
            keep_alive: None,
            timeout: None,
        }
    }
}

/// A 128-bit secret spread from a 64-bit seed (splitmix64), for
/// configurations that give none of their own.
fn secret_from(seed: u64) -> [u8; 16] {
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&next().to_le_bytes());
    out[8..].copy_from_slice(&next().to_le_bytes());
    out
}

/// What the stack dropped or refused, counted since it started (per
/// shard in `ctl stats` and `/metrics`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StackStats {
    /// Not an IPv4 TCP segment the stack takes: lengths that lie, options
    /// past the header, a fragment, a source no host may use.
    pub malformed: u64,
    /// A bad IPv4 header or TCP checksum.
    pub bad_checksum: u64,
    /// Not addressed to this stack, or from one of its own addresses.
    pub not_ours: u64,
    /// Out of the window: a RST outside it (dropped), data past its edge
    /// (trimmed), an ACK of data never sent (challenge ACK).
    pub out_of_window: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// SYNs dropped: `max_flows` connections held and none half-open.
    pub flows_full: u64,
    /// Half-open connections evicted for a new SYN (the half-open table or
    /// `max_flows` was full).
    pub half_open_evicted: u64,
    /// Half-open connections dropped after `half_open_timeout`.
    pub half_open_expired: u64,
    /// Segments of no connection (answered with a RST, or a RST ignored).
    pub no_flow: u64,
    /// Idle connections parked (socket and buffers freed).
    pub parks: u64,
    /// Parked connections restored (a segment, a write, a keep-alive).
    pub restores: u64,
    /// Connections the peer reset: a RST accepted at RCV.NXT in a
    /// synchronized state (RFC 9293 section 3.10.7.4) closed them.
    pub reset_by_peer: u64,
    /// Connections TCP gave up on: data, a FIN or keep-alive probes went
    /// unanswered for the timeout ([`StackConfig::timeout`]).
    pub timed_out: u64,
    /// Connections in TIME-WAIT ended by a SYN that opened a new one on
    /// the same 4-tuple (RFC 6191).
    pub time_wait_reopened: u64,
}

/// How a poll ended a connection other than by the close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aborted {
    /// A RST from the peer.
    Reset,
    /// smoltcp's timeout: the peer stayed silent.
    TimedOut,
}

impl StackStats {
    fn count(&mut self, aborted: Option<Aborted>) {
        match aborted {
            Some(Aborted::Reset) => self.reset_by_peer += 1,
            Some(Aborted::TimedOut) => self.timed_out += 1,
            None => {}
        }
    }
}

/// Names a flow; stale once the flow is gone (its slot may be reused under
/// another generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId {
    index: usize,
    gen: u32,
}

/// One connection: its socket in a set of its own.
#[derive(Debug)]
pub struct Flow<T> {
    set: SocketSet<'static>,
    handle: SocketHandle,
    key: FlowKey,
    link: LinkAddr,
    gen: u32,
    /// The timer filed (deadline in micros, the host's key), if any.
    timer: Option<(i64, u64)>,
    /// The deadline smoltcp asked for, when earlier than the one filed.
    want: Option<i64>,
    /// Waiting in the stack's list of timers to file.
    dirty: bool,
    /// Opened by a SYN and not yet established (in the half-open table).
    half_open: bool,
    /// When the flow was made (micros); in TIME-WAIT without a socket,
    /// when that ends (`stack/time_wait.rs`).
    born: i64,
    /// The socket is parked: freed with its buffers, `set` empty.
    parked: bool,
    /// In TIME-WAIT with its socket freed (`set` empty), or past it.
    time_wait: TimeWait,
    /// What the peer's SYN offered (flows opened by a SYN; only those
    /// are parked).
    syn: Option<SynOptions>,
    /// SEG.WND of the last segment the peer sent (unscaled).
    peer_wnd: u16,
    /// When the caller or the peer last touched the flow (micros).
    touched: i64,
    /// A keep-alive probe of a parked flow is unanswered: the flow stays
    /// restored (smoltcp's keep-alive and timeout run) until the peer
    /// sends something.
    probing: bool,
    /// Waiting in `blocked` for room to send.
    blocked: bool,
    /// What the connection last sent (for challenge ACKs).
    sent: Sent,
    /// RCV.NXT (RFC 9293 section 3.3.1), followed from the segments sent
    /// and received, which smoltcp does not expose; `None` until the first
    /// ACK is sent.
    rcv_nxt: Option<u32>,
    /// When the last challenge ACK went out (micros), for the rate limit of
    /// RFC 5961 section 7.
    challenged: Option<i64>,
    /// The peer's SYN offered window scaling (so the shift in our SYN or
    /// SYN-ACK is in force, RFC 7323 section 2.2).
    peer_ws: bool,
    /// The caller's state for this connection.
    pub user: T,
}

impl<T> Flow<T> {
    /// The connection's 4-tuple.
    pub fn key(&self) -> FlowKey {
        self.key
    }

    /// The peer's link address, as of its last segment.
    pub fn link(&self) -> LinkAddr {
        self.link
    }

    /// The smoltcp socket.
    ///
    /// # Panics
    /// On a parked flow ([`StackConfig::park_after`]) or one in TIME-WAIT
    /// without its socket ([`TIME_WAIT`]); a flow from
    /// [`TcpStack::flow_mut`] has a socket, and [`Flow::state`] answers
    /// for every flow.
    pub fn socket(&self) -> &tcp::Socket<'static> {
        self.set.get(self.handle)
    }

    /// The TCP state (a parked flow is ESTABLISHED; one whose TIME-WAIT
    /// holds no socket is TIME-WAIT, then CLOSED).
    pub fn state(&self) -> tcp::State {
        match (self.parked, self.time_wait) {
            (true, _) => tcp::State::Established,
            (_, TimeWait::Waiting) => tcp::State::TimeWait,
            (_, TimeWait::Over) => tcp::State::Closed,
            (false, TimeWait::No) => self.socket().state(),
        }
    }

    /// The socket is parked.
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// The smoltcp socket, to read, write or close it; call
    /// [`TcpStack::poll`] afterwards so that what it queued goes out.
    pub fn socket_mut(&mut self) -> &mut tcp::Socket<'static> {
        self.set.get_mut(self.handle)
    }

    /// The right edge of the receive window last advertised (SEG.ACK +
    /// SEG.WND << shift of the last ACK sent, RFC 9293 section 3.3.1 / RFC
    /// 7323 section 2.3), as smoltcp remembers it; with window scaling,
    /// one unit lower, since rounding can move a later edge back by less
    /// than that.
    fn rcv_edge(&self) -> Option<u32> {
        let ack = self.sent.ack?;
        let shift = if self.peer_ws {
            self.sent.ws.unwrap_or(0).min(14)
        } else {
            0
        };
        let edge = ack.wrapping_add(u32::from(self.sent.wnd) << shift);
        Some(if shift > 0 {
            edge.wrapping_sub(1 << shift)
        } else {
            edge
        })
    }

    /// The deadline of the timer filed (micros), for tests.
    #[cfg(test)]
    pub(crate) fn timer_at(&self) -> Option<i64> {
        self.timer.map(|(at, _)| at)
    }

    /// (RCV.NXT, SND.NXT) as the stack follows them, for tests.
    #[cfg(test)]
    pub(crate) fn tcb(&self) -> (Option<u32>, Option<u32>) {
        (self.rcv_nxt, self.sent.snd_nxt)
    }

    /// The socket and the caller's state at once.
    pub fn parts_mut(&mut self) -> (&mut tcp::Socket<'static>, &mut T) {
        (self.set.get_mut(self.handle), &mut self.user)
    }
}

/// What became of one incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// It went to this existing connection: check its socket (data,
    /// FIN, reset).
    Flow(FlowId),
    /// A SYN made this new (half-open) connection.
    New(FlowId),
    /// It belonged to no connection and was answered (a RST, RFC 9293
    /// section 3.10.7.1) or ignored (a RST) by smoltcp.
    NoFlow,
    /// Not an IPv4 TCP segment this stack takes (malformed, a fragment, a
    /// bad checksum, a source address no host may use, not addressed to
    /// this stack, a SYN past `max_flows`, a RST outside a connection's
    /// receive window): dropped without an answer (counted in
    /// [`StackStats`]).
    Dropped,
}

/// TCP for many connections: a segment reaches its connection through a
/// hash of its 4-tuple and a poll of that connection's own socket set, so
/// its cost does not grow with the number of connections.
pub struct TcpStack<T> {
    cfg: StackConfig,
    iface: Interface,
    flows: Slab<Flow<T>>,
    by_key: HashMap<FlowKey, usize>,
    /// Polled for segments of no connection, so smoltcp answers them.
    empty: SocketSet<'static>,
    /// The stack's own timer wheel (with [`StackConfig::own_timers`]).
    own: Option<OwnTimers>,
    /// Flows whose timer is to be filed (index, generation).
    dirty: Vec<(usize, u32)>,
    /// Keys of timers to cancel (of flows gone).
    dead: Vec<u64>,
    /// Half-open flows, oldest first; an entry whose flow is gone or
    /// established is skipped (and dropped past twice the live count).
    half_open: VecDeque<FlowId>,
    /// Flows in the half-open table.
    half_open_len: usize,
    stats: StackStats,
    /// Flows parked.
    parked_len: usize,
    /// Flows in TIME-WAIT without a socket.
    time_wait_len: usize,
    /// The latest instant the stack was given (to restore a parked flow
    /// in [`TcpStack::flow_mut`]).
    last_now: Instant,
    scratch: Vec<u8>,
    /// Flows that may have had more to send when the egress ran out of
    /// room.
    blocked: Vec<FlowId>,
    /// A segment trimmed to the receive window.
    trimmed: Vec<u8>,
    next_gen: u32,
    next_port: u16,
}

impl<T> std::fmt::Debug for TcpStack<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStack")
            .field("cfg", &self.cfg)
            .field("flows", &self.flows.len())
            .field("half_open", &self.half_open_len)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Poll one flow's socket set (with the segment received, if any) and
/// follow RCV.NXT: an ACK sent carries it; else it moved by the in-order
/// bytes the segment added to the receive queue and by one for a FIN taken
/// (RFC 9293 section 3.4; the application cannot read during a poll, and
/// its reads move smoltcp's `remote_seq_no` and the queue by the same
/// amount, so their sum, RCV.NXT, changes only here).
///
/// Returns how the poll ended the connection when it was neither the
/// caller (an abort closes at once, before the poll) nor the close
/// handshake: a RST from the peer, or smoltcp's timeout.
fn poll_flow<T, E: Egress>(
    iface: &mut Interface,
    flow: &mut Flow<T>,
    now: Instant,
    packet: Option<&[u8]>,
    egress: &mut E,
    scratch: &mut Vec<u8>,
    mtu: usize,
) -> Option<Aborted> {
    let (q0, st0, acks0) = {
        let sock = flow.set.get::<tcp::Socket<'_>>(flow.handle);
        (sock.recv_queue(), sock.state(), flow.sent.acks)
    };
    if let (tcp::State::Listen | tcp::State::SynSent, Some(p)) = (st0, packet) {
        if let Some(seg) = SegmentInfo::parse(p).filter(SegmentInfo::syn) {
            flow.peer_ws = seg.window_scale(p).is_some();
        }
    }
    let mut dev = OnePacket {
        rx: packet,
        egress,
        link: flow.link,
        scratch,
        mtu,
        sent: Some(&mut flow.sent),
    };
    iface.poll(now, &mut dev, &mut flow.set);
    let st1 = flow.set.get::<tcp::Socket<'_>>(flow.handle).state();
    if flow.sent.acks != acks0 {
        flow.rcv_nxt = flow.sent.ack;
    } else if let Some(n) = flow.rcv_nxt {
        let sock = flow.set.get::<tcp::Socket<'_>>(flow.handle);
        let fin = matches!(
            st0,
            tcp::State::SynReceived
                | tcp::State::Established
                | tcp::State::FinWait1
                | tcp::State::FinWait2
        ) && matches!(
            st1,
            tcp::State::CloseWait | tcp::State::Closing | tcp::State::TimeWait
        );
        let grew = sock.recv_queue().saturating_sub(q0) as u32;
        flow.rcv_nxt = Some(n.wrapping_add(grew).wrapping_add(u32::from(fin)));
    }
    let open = !matches!(
        st0,
        tcp::State::Closed | tcp::State::Listen | tcp::State::SynSent | tcp::State::TimeWait
    );
    if !open || st1 != tcp::State::Closed {
        return None;
    }
    match packet.and_then(SegmentInfo::parse) {
        Some(seg) if seg.rst() => Some(Aborted::Reset),
        // LAST-ACK ends at the ACK of our FIN (RFC 9293 section 3.10.7.4).
        Some(_) if st0 == tcp::State::LastAck => None,
        _ => Some(Aborted::TimedOut),
    }
}

/// Send a segment of headers only (no options, no data) on `key`'s
/// connection: an ACK or a RST this crate must build because smoltcp does
/// not send it.
fn bare_segment<E: Egress>(
    egress: &mut E,
    link: LinkAddr,
    key: &FlowKey,
    seq: u32,
    ack: u32,
    flags: u8,
    wnd: u16,
) {
    let Some(p) = egress.buffer(link, 40) else {
        return;
    };
    if p.len() != 40 {
        return;
    }
    p.fill(0);
    write_ip_tcp(p, key.local, key.remote, seq, ack, flags, wnd, &[]);
    egress.commit(link, 40);
}

/// Write an IPv4 header (RFC 791, DF, TTL 64) and a TCP header (RFC 9293
/// section 3.1) with `opts` from `src` to `dst` into the zeroed `p`
/// (`40 + opts.len()` bytes, `opts` a multiple of 4), checksums included:
/// the segments this crate builds itself (bare ACKs and RSTs, the replayed
/// handshake of a parked flow).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_ip_tcp(
    p: &mut [u8],
    src: std::net::SocketAddrV4,
    dst: std::net::SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    wnd: u16,
    opts: &[u8],
) {
    let len = 40 + opts.len();
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.ip().octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[28..32].copy_from_slice(&ack.to_be_bytes());
    p[32] = ((20 + opts.len()) as u8 / 4) << 4;
    p[33] = flags;
    p[34..36].copy_from_slice(&wnd.to_be_bytes());
    p[40..len].copy_from_slice(opts);
    checksum_ip_tcp(&mut p[..len]);
}

/// Fill in the IPv4 header checksum (RFC 791 section 3.1) and the TCP
/// checksum (RFC 9293 section 3.1) of a 20-byte IPv4 header and a TCP
/// segment (an even length).
fn checksum_ip_tcp(p: &mut [u8]) {
    fn sum(data: &[u8], mut acc: u32) -> u32 {
        for c in data.chunks_exact(2) {
            acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        acc
    }
    fn fold(mut acc: u32) -> [u8; 2] {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        (!(acc as u16)).to_be_bytes()
    }
    let ip = fold(sum(&p[..20], 0));
    p[10..12].copy_from_slice(&ip);
    let pseudo = sum(&p[12..20], 6 + (p.len() as u32 - 20));
    let tcp = fold(sum(&p[20..], pseudo));
    p[36..38].copy_from_slice(&tcp);
}

/// smoltcp's interface for the stack's addresses, its generator seeded
/// with `seed` (the stack builds one afresh before each new connection, so
/// that the ISN smoltcp draws is RFC 6528's, `crate::isn`). Building one
/// allocates nothing.
fn make_iface(cfg: &StackConfig, seed: u64, now: Instant) -> Interface {
    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = seed;
    let mut dev = OnePacket {
        rx: None,
        egress: &mut Discard,
        link: [0; 6],
        scratch: &mut Vec::new(),
        mtu: cfg.mtu,
        sent: None,
    };
    let mut iface = Interface::new(config, &mut dev, now);
    iface.update_ip_addrs(|a| {
        for ip in &cfg.addrs {
            // At most IFACE_MAX_ADDR_COUNT: checked in `TcpStack::new`.
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(*ip), 32));
        }
    });
    iface
}

impl<T> TcpStack<T> {
    /// A stack with no connections.
    ///
    /// # Errors
    /// More addresses than smoltcp's interface holds, or none.
    pub fn new(cfg: StackConfig, now: Instant) -> Result<TcpStack<T>, String> {
        if cfg.addrs.is_empty() {
            return Err("a TCP stack needs an address".into());
        }
        if cfg.addrs.len() > smoltcp::config::IFACE_MAX_ADDR_COUNT {
            return Err(format!(
                "at most {} addresses per TCP stack",
                smoltcp::config::IFACE_MAX_ADDR_COUNT
            ));
        }
        let iface = make_iface(&cfg, cfg.seed, now);
        let seed_port = (cfg.seed as u16 % 16384) + 49152;
        let _ = capabilities(cfg.mtu);
        Ok(TcpStack {
            own: cfg.own_timers.then(OwnTimers::default),
            cfg,
            iface,
            flows: Slab::new(),
            by_key: HashMap::new(),
            empty: SocketSet::new(Vec::new()),
            dirty: Vec::new(),
            dead: Vec::new(),
            half_open: VecDeque::new(),
            half_open_len: 0,
            stats: StackStats::default(),
            parked_len: 0,
            time_wait_len: 0,
            last_now: now,
            scratch: Vec::new(),
            blocked: Vec::new(),
            trimmed: Vec::new(),
            next_gen: 1,
            next_port: seed_port,
        })
    }

    /// Connections held (half-open, established and closing).
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// No connection held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flow `id`, if it still exists.
    pub fn flow(&self, id: FlowId) -> Option<&Flow<T>> {
        self.flows.get(id.index).filter(|f| f.gen == id.gen)
    }

    /// The flow `id`, if it still exists; a parked flow's socket is
    /// restored first (so its socket can be read, written or closed), and
    /// one in TIME-WAIT without its socket gets a CLOSED placeholder
    /// ([`Flow::state`] still says TIME-WAIT).
    pub fn flow_mut(&mut self, id: FlowId) -> Option<&mut Flow<T>> {
        let flow = self.flow(id)?;
        if flow.parked {
            self.unpark(id.index, self.last_now);
        } else if flow.time_wait != TimeWait::No && flow.set.iter().next().is_none() {
            self.time_wait_placeholder(id.index);
        }
        self.flows.get_mut(id.index).filter(|f| f.gen == id.gen)
    }

    /// The caller's state of flow `id` (a parked flow stays parked).
    pub fn user_mut(&mut self, id: FlowId) -> Option<&mut T> {
        self.flows
            .get_mut(id.index)
            .filter(|f| f.gen == id.gen)
            .map(|f| &mut f.user)
    }

    /// Flows parked ([`StackConfig::park_after`]).
    pub fn parked(&self) -> usize {
        self.parked_len
    }

    /// Flows in TIME-WAIT, their sockets freed ([`TIME_WAIT`]).
    pub fn time_wait(&self) -> usize {
        self.time_wait_len
    }

    /// The flow of a 4-tuple.
    pub fn find(&self, key: &FlowKey) -> Option<FlowId> {
        let &index = self.by_key.get(key)?;
        Some(FlowId {
            index,
            gen: self.flows[index].gen,
        })
    }

    /// The earliest TCP timer (retransmission, delayed ACK, keep-alive,
    /// TIME-WAIT) in the stack's own wheel; it may be early, never late.
    /// `None` as well when the timers are filed in the runtime's wheel
    /// ([`StackConfig::own_timers`] off).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.own.as_ref()?.next_deadline()
    }

    /// What the stack dropped or refused so far.
    pub fn stats(&self) -> StackStats {
        self.stats
    }

    /// Connections in the half-open table (SYN received, not established).
    pub fn half_open(&self) -> usize {
        self.half_open_len
    }

    fn new_socket(&self) -> tcp::Socket<'static> {
        self.socket_with(self.cfg.rx_buffer, self.cfg.tx_buffer)
    }

    fn socket_with(&self, rx: usize, tx: usize) -> tcp::Socket<'static> {
        let rx = tcp::SocketBuffer::new(vec![0; rx]);
        let tx = tcp::SocketBuffer::new(vec![0; tx]);
        let mut s = tcp::Socket::new(rx, tx);
        // SMB answers each request at once; Nagle would hold the answer
        // back for the client's delayed ACK.
        s.set_nagle_enabled(false);
        s.set_keep_alive(self.cfg.keep_alive);
        s.set_timeout(self.cfg.timeout);
        s
    }

    fn insert(
        &mut self,
        key: FlowKey,
        link: LinkAddr,
        sock: tcp::Socket<'static>,
        user: T,
    ) -> FlowId {
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let handle = set.add(sock);
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let index = self.flows.insert(Flow {
            set,
            handle,
            key,
            link,
            gen,
            timer: None,
            want: None,
            dirty: false,
            half_open: false,
            born: 0,
            parked: false,
            time_wait: TimeWait::No,
            syn: None,
            peer_wnd: 0,
            touched: 0,
            probing: false,
            blocked: false,
            sent: Sent::default(),
            rcv_nxt: None,
            challenged: None,
            peer_ws: false,
            user,
        });
        self.by_key.insert(key, index);
        FlowId { index, gen }
    }

    /// Note the flow's next TCP timer; remember it as blocked when the
    /// egress ran out of room while it was polled; take it out of the
    /// half-open table once its handshake is over.
    ///
    /// A timer filed earlier than smoltcp's next deadline is left (when it
    /// fires, the flow is polled, finds nothing due, and files the later
    /// one), so most polls touch the wheel not at all; an earlier deadline
    /// cancels the filed timer and files a new one (both O(1)).
    fn arm(&mut self, index: usize, now: Instant, room: bool) {
        let flow = &mut self.flows[index];
        if !room && !flow.blocked {
            flow.blocked = true;
            self.blocked.push(FlowId {
                index,
                gen: flow.gen,
            });
        }
        if flow.time_wait != TimeWait::No || self.enter_time_wait(index, now) {
            // No socket: its one timer is TIME-WAIT's end.
            return;
        }
        let flow = &mut self.flows[index];
        let state = flow.socket().state();
        if flow.half_open && state != tcp::State::SynReceived {
            flow.half_open = false;
            self.half_open_len -= 1;
            if state == tcp::State::Established {
                self.regrow(index, now);
            }
        }
        let flow = &mut self.flows[index];
        let mut want = self.iface.poll_at(now, &flow.set).map(|t| t.total_micros());
        if let (true, Some(after)) = (self.parkable(&self.flows[index]), self.cfg.park_after) {
            // Parking is a deadline of its own.
            let flow = &self.flows[index];
            let at = flow.touched.saturating_add(after.total_micros() as i64);
            want = Some(want.map_or(at, |w| w.min(at)));
        }
        let flow = &mut self.flows[index];
        if flow.half_open {
            // The half-open limit is a deadline of its own.
            let limit = flow
                .born
                .saturating_add(self.cfg.half_open_timeout.total_micros() as i64);
            want = Some(want.map_or(limit, |w| w.min(limit)));
        }
        let Some(want) = want else {
            return;
        };
        if flow.timer.is_some_and(|(at, _)| at <= want) || flow.want.is_some_and(|w| w <= want) {
            return;
        }
        self.want_timer(index, want);
    }

    /// Ask for flow `index`'s timer at `at` (micros): filed in the host's
    /// wheel at the next [`TcpStack::file_timers`] (at once with the
    /// stack's own).
    fn want_timer(&mut self, index: usize, at: i64) {
        let flow = &mut self.flows[index];
        flow.want = Some(at);
        if !flow.dirty {
            flow.dirty = true;
            self.dirty.push((index, flow.gen));
        }
        if let Some(mut own) = self.own.take() {
            self.file_timers(&mut own);
            self.own = Some(own);
        }
    }

    /// File the timers the flows asked for since the last call in `host`
    /// (the shard's wheel), and cancel those of flows gone. The runtime
    /// calls it before it computes how long to sleep; with
    /// [`StackConfig::own_timers`] the stack does it itself.
    pub fn file_timers<H: TimerHost>(&mut self, host: &mut H) {
        for key in self.dead.drain(..) {
            host.cancel(key);
        }
        for (index, gen) in self.dirty.drain(..) {
            let Some(flow) = self.flows.get_mut(index).filter(|f| f.gen == gen) else {
                continue;
            };
            flow.dirty = false;
            let Some(want) = flow.want.take() else {
                continue;
            };
            if let Some((at, key)) = flow.timer {
                if at <= want {
                    continue;
                }
                host.cancel(key);
            }
            let key = host.insert(Instant::from_micros(want), index as u32);
            flow.timer = Some((want, key));
        }
    }

    /// A timer filed through [`TimerHost::insert`] came due: poll its flow
    /// (TCP does what is due: retransmits, ACKs, probes, ends TIME-WAIT)
    /// and push it to `fired` for the caller to check (a connection may
    /// have timed out). A half-open flow past its limit is dropped instead
    /// (without a word: its peer may not exist). A key that is not the
    /// flow's timer any more is ignored.
    pub fn timer_fired<E: Egress>(
        &mut self,
        now: Instant,
        token: u32,
        key: u64,
        egress: &mut E,
        fired: &mut Vec<FlowId>,
    ) {
        let index = token as usize;
        let Some(flow) = self.flows.get_mut(index) else {
            return;
        };
        if flow.timer.map(|(_, k)| k) != Some(key) {
            return;
        }
        flow.timer = None;
        let id = FlowId {
            index,
            gen: flow.gen,
        };
        self.last_now = now;
        if flow.time_wait != TimeWait::No {
            self.time_wait_fired(index, now, fired);
            return;
        }
        if flow.half_open
            && now.total_micros().saturating_sub(flow.born)
                >= self.cfg.half_open_timeout.total_micros() as i64
        {
            self.stats.half_open_expired += 1;
            self.remove(id);
            return;
        }
        if flow.parked {
            // Keep-alive of a parked flow: restore it and probe (RFC 9293
            // section 3.8.4: SEG.SEQ = SND.NXT - 1); smoltcp's own
            // keep-alive and timeout run from here.
            self.unpark(index, now);
            let idle = Duration::from_micros(
                now.total_micros().saturating_sub(self.flows[index].touched) as u64,
            );
            let flow = &mut self.flows[index];
            flow.probing = true;
            if let Some(t) = self.cfg.timeout {
                // The peer has been silent `idle` already: what is left of
                // the timeout, as on a socket that was never parked.
                let left = if t > idle {
                    t - idle
                } else {
                    Duration::from_millis(1)
                };
                flow.socket_mut().set_timeout(Some(left));
            }
            if let (Some(snd_nxt), Some(rcv_nxt)) = (flow.sent.snd_nxt, flow.rcv_nxt) {
                let wnd = flow.sent.wnd;
                bare_segment(
                    egress,
                    flow.link,
                    &flow.key,
                    snd_nxt.wrapping_sub(1),
                    rcv_nxt,
                    0x10,
                    wnd,
                );
            }
            self.poll_inner(now, id, egress, false);
            fired.push(id);
            return;
        }
        let due = self.cfg.park_after.is_some_and(|after| {
            now.total_micros().saturating_sub(flow.touched) >= after.total_micros() as i64
        });
        if due && self.parkable(&self.flows[index]) {
            self.park(index, now);
            return;
        }
        self.poll_inner(now, id, egress, false);
        fired.push(id);
    }

    /// TCP timers filed: in the stack's own wheel, those there; else the
    /// flows that hold one in the runtime's. Never more than the flows.
    pub fn timer_entries(&self) -> usize {
        match &self.own {
            Some(own) => own.len(),
            None => self.flows.iter().filter(|(_, f)| f.timer.is_some()).count(),
        }
    }

    /// The most TCP timers filed at once: one per flow.
    pub fn timer_bound(&self) -> usize {
        self.flows.len()
    }

    /// Every flow held, in no particular order.
    pub fn flow_ids(&self) -> impl Iterator<Item = FlowId> + '_ {
        self.flows
            .iter()
            .map(|(index, f)| FlowId { index, gen: f.gen })
    }

    /// Answer a segment the flow must not act on with a challenge ACK
    /// (RFC 5961 section 3.2 / 4.2, as RFC 9293 section 3.10.7.4 requires):
    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` with the window last
    /// advertised, at most one a second per flow (RFC 5961 section 7).
    /// smoltcp has no call that sends one, so it is built here.
    fn challenge_ack<E: Egress>(
        flow: &mut Flow<T>,
        now: Instant,
        egress: &mut E,
        challenges: &mut u64,
    ) {
        let (Some(ack), Some(seq)) = (flow.rcv_nxt, flow.sent.snd_nxt) else {
            return;
        };
        let now = now.total_micros();
        if flow
            .challenged
            .is_some_and(|t| now.saturating_sub(t) < 1_000_000)
        {
            return;
        }
        flow.challenged = Some(now);
        *challenges += 1;
        bare_segment(egress, flow.link, &flow.key, seq, ack, 0x10, flow.sent.wnd);
    }

    /// Hand one incoming IPv4 packet from `link` to its connection. What
    /// smoltcp answers goes to `egress` at once.
    ///
    /// Hostile input is decided here before smoltcp sees it (table in
    /// ARCHITECTURE.md, "Hostile input"): malformed headers, fragments, bad
    /// checksums and impossible addresses are dropped
    /// ([`SegmentInfo::parse`], RFC 791 section 3.1, RFC 1122 section
    /// 3.2.1.3); in a synchronized state a RST not at RCV.NXT, a SYN, or an
    /// ACK past SND.NXT gets a challenge ACK or is dropped (RFC 9293
    /// section 3.10.7.4, RFC 5961 sections 3.2, 4.2, 5.2), and data past
    /// the window last advertised is trimmed off.
    pub fn ingress<E: Egress>(
        &mut self,
        now: Instant,
        link: LinkAddr,
        packet: &[u8],
        egress: &mut E,
        user: impl FnOnce() -> T,
    ) -> Ingress {
        let Some(seg) = SegmentInfo::parse(packet) else {
            self.stats.malformed += 1;
            return Ingress::Dropped;
        };
        // Not for us, from us (a spoofed "land" segment), or damaged.
        if !self.cfg.addrs.contains(seg.key.local.ip())
            || self.cfg.addrs.contains(seg.key.remote.ip())
        {
            self.stats.not_ours += 1;
            return Ingress::Dropped;
        }
        if !seg.checksums_ok(packet) {
            self.stats.bad_checksum += 1;
            return Ingress::Dropped;
        }
        self.last_now = now;
        let mut known = self.by_key.get(&seg.key).copied();
        if let Some(index) = known.filter(|&i| self.flows[i].time_wait != TimeWait::No) {
            match self.time_wait_segment(index, &seg, link, now, egress) {
                TimeWaitSegment::Done(ingress) => return ingress,
                // Gone: the SYN opens a new connection below.
                TimeWaitSegment::Reopen => known = None,
            }
        }
        if let Some(index) = known {
            if self.flows[index].parked {
                self.unpark(index, now);
            }
            let flow = &mut self.flows[index];
            flow.touched = now.total_micros();
            let id = FlowId {
                index,
                gen: flow.gen,
            };
            let state = flow.socket().state();
            let synchronized = !matches!(
                state,
                tcp::State::Listen | tcp::State::SynSent | tcp::State::Closed
            );
            if let (true, Some(rcv_nxt)) = (synchronized, flow.rcv_nxt) {
                if seg.rst() {
                    // RFC 9293 section 3.10.7.4, second check (RFC 5961
                    // section 3.2): a RST resets only at exactly RCV.NXT;
                    // elsewhere in the window it gets a challenge ACK, and
                    // outside it is dropped. smoltcp resets on any RST in
                    // the window and ACKs one outside it.
                    let sock = flow.socket();
                    let wnd = sock.recv_capacity().saturating_sub(sock.recv_queue());
                    let off = seg.seq.wrapping_sub(rcv_nxt);
                    if off != 0 {
                        if (off as usize) < wnd {
                            Self::challenge_ack(flow, now, egress, &mut self.stats.challenge_acks);
                            return Ingress::Flow(id);
                        }
                        self.stats.out_of_window += 1;
                        return Ingress::Dropped;
                    }
                } else if let (true, Some(snd_nxt), false) = (
                    seg.flags & 0x10 != 0,
                    flow.sent.snd_nxt,
                    seg.syn() || state == tcp::State::SynReceived,
                ) {
                    // Fifth check: an ACK of something not yet sent (SEG.ACK
                    // > SND.NXT) gets an ACK and the segment is dropped
                    // (RFC 5961 section 5.2 makes it a challenge ACK).
                    // smoltcp takes ACKs up to the end of its send buffer,
                    // sent or not, and would drop queued data unsent.
                    let ack = seg.ack();
                    if ack.wrapping_sub(snd_nxt) as i32 > 0 {
                        self.stats.out_of_window += 1;
                        Self::challenge_ack(flow, now, egress, &mut self.stats.challenge_acks);
                        return Ingress::Flow(id);
                    }
                }
                if seg.syn() && state != tcp::State::SynReceived && !seg.rst() {
                    // Fourth check (RFC 5961 section 4.2): a SYN in a
                    // synchronized state, in the window or not, gets a
                    // challenge ACK and changes nothing. smoltcp ignores
                    // one in the window without an answer.
                    Self::challenge_ack(flow, now, egress, &mut self.stats.challenge_acks);
                    return Ingress::Flow(id);
                }
            }
            let mut packet = packet;
            if let (
                tcp::State::SynReceived
                | tcp::State::Established
                | tcp::State::FinWait1
                | tcp::State::FinWait2,
                Some(edge),
                1..,
            ) = (state, flow.rcv_edge(), seg.data_len())
            {
                // Data past the window edge advertised is trimmed off (RFC
                // 9293 section 3.10.7.4: only the part in the window is
                // taken). smoltcp takes anything that fits its buffer, and
                // then panics computing its next window
                // (`last_scaled_window` subtracts past the edge: a peer
                // could send a window probe after the application read, or
                // simply more than the window, and crash the process).
                let end = seg.seq.wrapping_add(seg.data_len() as u32);
                if end.wrapping_sub(edge) as i32 > 0 {
                    self.stats.out_of_window += 1;
                    let keep = edge.wrapping_sub(seg.seq);
                    let keep = if (keep as i32) > 0 { keep as usize } else { 0 };
                    let cut = seg.tcp_start + seg.header_len + keep;
                    self.trimmed.clear();
                    self.trimmed.extend_from_slice(&packet[..cut]);
                    self.trimmed[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
                    // A FIN lies past the data, so past the edge too.
                    self.trimmed[seg.tcp_start + 13] &= !0x01;
                    packet = &self.trimmed;
                }
            }
            flow.link = link;
            if flow.probing {
                flow.probing = false;
                // The peer answered: the full timeout again.
                let timeout = self.cfg.timeout;
                flow.socket_mut().set_timeout(timeout);
            }
            if !seg.rst() && seg.flags & 0x10 != 0 {
                // The peer's window, for a parked flow's restoration.
                flow.peer_wnd = seg.window_field(packet);
            }
            let aborted = poll_flow(
                &mut self.iface,
                flow,
                now,
                Some(packet),
                egress,
                &mut self.scratch,
                self.cfg.mtu,
            );
            self.stats.count(aborted);
            if flow.socket().state() == tcp::State::Listen {
                // A RST in SYN-RECEIVED sends smoltcp's socket back to
                // LISTEN (RFC 9293 section 3.10.7.4); here a flow is one
                // connection, so the half-open connection is over: closed,
                // for the caller to remove, not left holding a slot with
                // no timer to ever free it.
                flow.socket_mut().abort();
            }
            self.arm(index, now, egress.has_room());
            return Ingress::Flow(id);
        }
        let local = seg.key.local;
        if seg.opens
            && Some(local.port()) == self.cfg.listen_port
            && self.cfg.addrs.contains(local.ip())
        {
            // The half-open table is bounded apart from the established
            // connections (RFC 4987 section 3.2): a SYN that finds it, or
            // every slot, full evicts the oldest half-open connection.
            let max_half_open = self.cfg.max_half_open.min(self.cfg.max_flows).max(1);
            if (self.half_open_len >= max_half_open || self.flows.len() >= self.cfg.max_flows)
                && self.evict_oldest_half_open()
            {
                self.stats.half_open_evicted += 1;
            }
            if self.flows.len() >= self.cfg.max_flows {
                self.stats.flows_full += 1;
                return Ingress::Dropped;
            }
            // Small buffers while half-open (a flood's connections cost
            // less); full ones once established (`regrow`).
            let mut sock = self.socket_with(
                self.cfg.half_open_buffer.min(self.cfg.rx_buffer),
                self.cfg.half_open_buffer.min(self.cfg.tx_buffer),
            );
            let endpoint = IpListenEndpoint {
                addr: Some(IpAddress::Ipv4(*local.ip())),
                port: local.port(),
            };
            if sock.listen(endpoint).is_err() {
                return Ingress::Dropped;
            }
            // RFC 6528: smoltcp draws the ISN when the SYN reaches the
            // listening socket, from an interface seeded to give this one.
            let isn = crate::isn::isn(&self.cfg.isn_secret, &seg.key, now.total_micros());
            self.iface = make_iface(&self.cfg, crate::isn::seed_for(isn), now);
            let id = self.insert(seg.key, link, sock, user());
            let flow = &mut self.flows[id.index];
            flow.half_open = true;
            flow.born = now.total_micros();
            flow.touched = flow.born;
            flow.syn = Some(seg.syn_options(packet));
            self.half_open_len += 1;
            self.half_open.push_back(id);
            if self.half_open.len() > 2 * self.half_open_len + 1024 {
                // Entries of flows gone or established are skipped when
                // met; past twice the live ones they are dropped, so churn
                // cannot grow the queue (amortized O(1)).
                let flows = &self.flows;
                self.half_open.retain(|id| {
                    flows
                        .get(id.index)
                        .is_some_and(|f| f.gen == id.gen && f.half_open)
                });
            }
            let flow = &mut self.flows[id.index];
            poll_flow(
                &mut self.iface,
                flow,
                now,
                Some(packet),
                egress,
                &mut self.scratch,
                self.cfg.mtu,
            );
            if flow.socket().state() == tcp::State::Listen {
                // smoltcp did not take the SYN (a bad checksum, say).
                self.remove(id);
                return Ingress::Dropped;
            }
            self.arm(id.index, now, egress.has_room());
            return Ingress::New(id);
        }
        if seg.flags & (0x02 | 0x04 | 0x10) == 0 {
            // Neither SYN, RST nor ACK: RFC 9293 section 3.10.7.1 answers
            // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; smoltcp would send
            // a bare RST with no ACK, which the peer cannot match.
            let len = (seg.data_len() as u32).wrapping_add(u32::from(seg.flags & 0x01));
            let ack = seg.seq.wrapping_add(len);
            bare_segment(egress, link, &seg.key, 0, ack, 0x14, 0);
            self.stats.no_flow += 1;
            return Ingress::NoFlow;
        }
        self.stats.no_flow += 1;
        let mut dev = OnePacket {
            rx: Some(packet),
            egress,
            link,
            scratch: &mut self.scratch,
            mtu: self.cfg.mtu,
            sent: None,
        };
        self.iface.poll(now, &mut dev, &mut self.empty);
        Ingress::NoFlow
    }

    /// Open a connection from `local` (one of this stack's addresses; port
    /// 0 picks one) to `remote`, reached at `link`.
    ///
    /// # Errors
    /// The address is not this stack's, or smoltcp refuses the endpoints.
    pub fn connect<E: Egress>(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        link: LinkAddr,
        egress: &mut E,
        user: T,
    ) -> Result<FlowId, String> {
        if !self.cfg.addrs.contains(local.ip()) {
            return Err(format!("{} is not an address of this stack", local.ip()));
        }
        let mut local = local;
        if local.port() == 0 {
            // The next free port of the dynamic range (RFC 6335).
            for _ in 0..16384 {
                self.next_port = if self.next_port == u16::MAX {
                    49152
                } else {
                    self.next_port + 1
                };
                let key = FlowKey {
                    remote,
                    local: SocketAddrV4::new(*local.ip(), self.next_port),
                };
                if !self.by_key.contains_key(&key) {
                    local.set_port(self.next_port);
                    break;
                }
            }
            if local.port() == 0 {
                return Err("no free local port".into());
            }
        }
        let key = FlowKey { remote, local };
        if self.by_key.contains_key(&key) {
            return Err(format!("{local} -> {remote} exists"));
        }
        let mut sock = self.new_socket();
        let r = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
        let l = IpEndpoint::new(IpAddress::Ipv4(*local.ip()), local.port());
        // RFC 6528, as for a SYN taken in `ingress`.
        let isn = crate::isn::isn(&self.cfg.isn_secret, &key, now.total_micros());
        self.iface = make_iface(&self.cfg, crate::isn::seed_for(isn), now);
        sock.connect(self.iface.context(), r, l)
            .map_err(|e| format!("connect {local} -> {remote}: {e}"))?;
        let id = self.insert(key, link, sock, user);
        self.poll(now, id, egress);
        Ok(id)
    }

    /// Send what the flow's socket has queued (after a write or a close)
    /// and file its next timer.
    pub fn poll<E: Egress>(&mut self, now: Instant, id: FlowId, egress: &mut E) {
        self.poll_inner(now, id, egress, true);
    }

    /// [`TcpStack::poll`]; `touch`: the caller's doing (when it sends
    /// something, it defers parking), not a timer's.
    fn poll_inner<E: Egress>(&mut self, now: Instant, id: FlowId, egress: &mut E, touch: bool) {
        self.last_now = now;
        let Some(flow) = self.flows.get_mut(id.index).filter(|f| f.gen == id.gen) else {
            return;
        };
        if flow.parked || flow.time_wait != TimeWait::No {
            // Nothing queued: writing to a parked flow restores it first;
            // one in TIME-WAIT sends only its ACKs.
            return;
        }
        let sent = flow.sent;
        let aborted = poll_flow(
            &mut self.iface,
            flow,
            now,
            None,
            egress,
            &mut self.scratch,
            self.cfg.mtu,
        );
        self.stats.count(aborted);
        if touch && flow.sent != sent {
            // The caller's poll sent something (a write, a close): the
            // flow was busy. A poll that sends nothing (a runtime that
            // polls every flow whose timer fired) does not defer parking.
            flow.touched = now.total_micros();
        }
        self.arm(id.index, now, egress.has_room());
    }

    /// Flows are waiting for room to send ([`TcpStack::poll_blocked`]).
    pub fn has_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Poll the flows that ran out of room, while the egress has room.
    pub fn poll_blocked<E: Egress>(&mut self, now: Instant, egress: &mut E) {
        let blocked = std::mem::take(&mut self.blocked);
        let mut rest = blocked.into_iter();
        for id in rest.by_ref() {
            if !egress.has_room() {
                self.blocked.push(id);
                break;
            }
            if let Some(f) = self.flow_mut(id) {
                f.blocked = false;
                self.poll(now, id, egress);
            }
        }
        self.blocked.extend(rest);
    }

    /// Run the TCP timers of the stack's own wheel due at `now`
    /// ([`StackConfig::own_timers`]; nothing otherwise); the flows polled
    /// are pushed to `fired` (the caller checks them: a connection may
    /// have timed out).
    pub fn poll_timers<E: Egress>(
        &mut self,
        now: Instant,
        egress: &mut E,
        fired: &mut Vec<FlowId>,
    ) {
        let Some(own) = self.own.as_mut() else {
            return;
        };
        let mut due = Vec::new();
        own.due(now, &mut due);
        for (token, key) in due {
            self.timer_fired(now, token, key, egress, fired);
        }
    }

    /// Drop the oldest half-open flow, without a word (its peer may be a
    /// spoofed address); `false` when there is none.
    fn evict_oldest_half_open(&mut self) -> bool {
        while let Some(id) = self.half_open.pop_front() {
            if self.flow(id).is_some_and(|f| f.half_open) {
                self.remove(id);
                return true;
            }
        }
        false
    }

    /// Forget a flow (after its socket closed, or to drop it without a
    /// word: call `abort` on its socket and [`TcpStack::poll`] first to send
    /// a RST). Returns the caller's state.
    pub fn remove(&mut self, id: FlowId) -> Option<T> {
        self.flow(id)?;
        let flow = self.flows.remove(id.index);
        self.by_key.remove(&flow.key);
        if flow.parked {
            self.parked_len -= 1;
        }
        if flow.time_wait == TimeWait::Waiting {
            self.time_wait_len -= 1;
        }
        if let Some((_, key)) = flow.timer {
            match self.own.as_mut() {
                Some(own) => own.cancel(key),
                None => self.dead.push(key),
            }
        }
        if flow.half_open {
            self.half_open_len -= 1;
        }
        Some(flow.user)
    }

    /// All flows into one smoltcp `SocketSet` polled by one `Interface`,
    /// the way smoltcp is used out of the box; kept for the benchmark that
    /// compares it with the hash (`benches/tcp_stack.rs`).
    #[doc(hidden)]
    pub fn into_single_set(self) -> SingleSet {
        let mut set = SocketSet::new(Vec::with_capacity(self.flows.len()));
        let mut handles = HashMap::with_capacity(self.flows.len());
        for (_, mut flow) in self.flows {
            if flow.parked {
                continue;
            }
            let smoltcp::socket::Socket::Tcp(sock) = flow.set.remove(flow.handle);
            handles.insert(flow.key, set.add(sock));
        }
        SingleSet {
            iface: self.iface,
            set,
            handles,
            scratch: Vec::new(),
            mtu: self.cfg.mtu,
        }
    }
}

/// smoltcp used out of the box: every connection in one `SocketSet`
/// (benchmark only).
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct SingleSet {
    iface: Interface,
    set: SocketSet<'static>,
    handles: HashMap<FlowKey, SocketHandle>,
    scratch: Vec<u8>,
    mtu: usize,
}

impl SingleSet {
    /// One packet through `Interface::poll` over the whole set.
    pub fn ingress<E: Egress>(&mut self, now: Instant, packet: &[u8], egress: &mut E) {
        let mut dev = OnePacket {
            rx: Some(packet),
            egress,
            link: [0; 6],
            scratch: &mut self.scratch,
            mtu: self.mtu,
            sent: None,
        };
        self.iface.poll(now, &mut dev, &mut self.set);
    }

    /// The socket of a 4-tuple.
    pub fn socket(&mut self, key: &FlowKey) -> Option<&mut tcp::Socket<'static>> {
        let h = *self.handles.get(key)?;
        Some(self.set.get_mut(h))
    }
}
