//! The stack's defences (issue 14): a bounded half-open table against SYN
//! floods (RFC 4987), RFC 6528 initial sequence numbers, TCP timers filed
//! in a runtime's wheel, and the drop counters.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use smb_session::wheel::{TimerKey, TimerWheel};
use smoltcp::socket::tcp::State;
use smoltcp::time::{Duration, Instant};

use super::{fix_checksums, received, seq_of, Pair, Wire, CLIENT, SERVER};
use crate::{FlowKey, Ingress, StackConfig, TcpStack, TimerHost};

/// A SYN from `src:port` to the server's port 445 (RFC 9293 section 3.1),
/// with an MSS option, checksums right.
fn syn_from(src: Ipv4Addr, port: u16, seq: u32) -> Vec<u8> {
    let mut p = vec![0u8; 44];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&44u16.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&SERVER.octets());
    p[20..22].copy_from_slice(&port.to_be_bytes());
    p[22..24].copy_from_slice(&445u16.to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[32] = 0x60;
    p[33] = 0x02;
    p[34..36].copy_from_slice(&64240u16.to_be_bytes());
    p[40..44].copy_from_slice(&[2, 4, 0x05, 0xb4]);
    fix_checksums(&mut p);
    p
}

/// The n-th spoofed source: 198.19.0.0/16 (the benchmarking range), a
/// different address and port each time.
fn spoofed(n: u32) -> (Ipv4Addr, u16) {
    let a = Ipv4Addr::new(198, 19, (n >> 8) as u8, n as u8);
    (a, 1024 + (n % 60000) as u16)
}

fn small_server(now: Instant, max_flows: usize, max_half_open: usize) -> TcpStack<u32> {
    TcpStack::new(
        StackConfig {
            max_flows,
            max_half_open,
            ..StackConfig::new(vec![SERVER], Some(445), 2)
        },
        now,
    )
    .unwrap()
}

#[test]
fn a_syn_flood_holds_only_the_half_open_table_and_real_handshakes_complete() {
    let mut p = Pair::new();
    p.server = small_server(p.now, 1000, 100);
    // One real connection before the flood.
    let (c0, s0) = p.connect(40000);
    let mut sink = Wire::default();
    let mut n = 0u32;
    let mut flood = |p: &mut Pair, count: u32, sink: &mut Wire, established: usize| {
        for _ in 0..count {
            let (a, port) = spoofed(n);
            let syn = syn_from(a, port, n.wrapping_mul(2_654_435_761));
            let ev = p.server.ingress(p.now, [9; 6], &syn, sink, || 0);
            assert!(matches!(ev, Ingress::New(_)), "{ev:?}");
            n += 1;
            // SYN-ACKs to the spoofed addresses go nowhere.
            sink.packets.clear();
            assert!(p.server.half_open() <= 100);
            assert!(p.server.len() <= 100 + established);
        }
    };
    flood(&mut p, 5000, &mut sink, 1);
    assert_eq!(p.server.half_open(), 100);
    // A real client's handshake in the middle of the flood (the flood goes
    // on while its SYN-ACK is on the way, at fewer SYNs than the table
    // holds in one round trip).
    let c1 = p.start_connect(40001);
    for syn in std::mem::take(&mut p.to_server.packets) {
        p.server
            .ingress(p.now, [1; 6], &syn, &mut p.to_client, || 7);
    }
    flood(&mut p, 50, &mut sink, 2);
    p.run();
    assert_eq!(
        p.client.flow(c1).unwrap().socket().state(),
        State::Established
    );
    let key = FlowKey {
        remote: SocketAddrV4::new(CLIENT, 40001),
        local: SocketAddrV4::new(SERVER, 445),
    };
    let s1 = p.server.find(&key).expect("the real client's flow");
    assert_eq!(
        p.server.flow(s1).unwrap().socket().state(),
        State::Established
    );
    // Half-open flows hold small buffers; established ones full ones.
    let cfg = StackConfig::new(vec![SERVER], Some(445), 2);
    assert_eq!(
        p.server.flow(s1).unwrap().socket().recv_capacity(),
        cfg.rx_buffer
    );
    for id in p.server.flow_ids().collect::<Vec<_>>() {
        let f = p.server.flow(id).unwrap();
        if f.state() == State::SynReceived {
            assert_eq!(f.socket().recv_capacity(), cfg.half_open_buffer);
        }
    }
    flood(&mut p, 5000, &mut sink, 2);
    // Memory stays bounded: the established connections and at most the
    // half-open table, one timer each at most.
    assert_eq!(p.server.half_open(), 100);
    assert_eq!(p.server.len(), 102);
    assert!(p.server.timer_entries() <= p.server.timer_bound());
    let st = p.server.stats();
    assert_eq!(st.half_open_evicted, 10_050 - 100 - 1 + 1);
    assert_eq!(st.flows_full, 0);
    // Both real connections still carry bytes.
    for (c, s) in [(c0, s0), (c1, s1)] {
        p.client
            .flow_mut(c)
            .unwrap()
            .socket_mut()
            .send_slice(b"hi")
            .unwrap();
        p.client.poll(p.now, c, &mut p.to_server);
        p.run();
        assert_eq!(p.server.flow(s).unwrap().socket().recv_queue(), 2);
    }
}

#[test]
fn with_every_slot_established_a_syn_is_dropped_and_counted() {
    let mut p = Pair::new();
    p.server = small_server(p.now, 2, 2);
    p.connect(40000);
    p.connect(40001);
    let ev = p.server.ingress(
        p.now,
        [9; 6],
        &syn_from(Ipv4Addr::new(198, 19, 0, 1), 5000, 1),
        &mut Wire::default(),
        || 0,
    );
    assert_eq!(ev, Ingress::Dropped);
    assert_eq!(p.server.stats().flows_full, 1);
    assert_eq!(p.server.len(), 2);
}

#[test]
fn a_half_open_connection_goes_at_its_limit_not_before() {
    let mut p = Pair::new();
    p.server = small_server(p.now, 1000, 100);
    let start = p.now;
    let mut sink = Wire::default();
    for i in 0..10 {
        let (a, port) = spoofed(i);
        p.server
            .ingress(p.now, [9; 6], &syn_from(a, port, i), &mut sink, || 0);
    }
    assert_eq!(p.server.half_open(), 10);
    let limit = StackConfig::new(vec![SERVER], None, 0).half_open_timeout;
    let mut fired = Vec::new();
    // SYN-ACK retransmissions fire on the way; the flows stay.
    while p.now < start + limit - Duration::from_micros(1) {
        // The wheel's next deadline may be early (a slot to cascade),
        // never late.
        let next = p.server.next_deadline().expect("a timer is filed");
        let next = if next > p.now {
            next
        } else {
            p.now + Duration::from_micros(1)
        };
        p.now = next.min(start + limit - Duration::from_micros(1));
        p.server.poll_timers(p.now, &mut sink, &mut fired);
    }
    assert_eq!(p.server.len(), 10, "not one early");
    assert!(sink.packets.len() >= 10, "SYN-ACKs were retransmitted");
    p.now = start + limit;
    p.server.poll_timers(p.now, &mut sink, &mut fired);
    assert_eq!(p.server.len(), 0);
    assert_eq!(p.server.half_open(), 0);
    assert_eq!(p.server.stats().half_open_expired, 10);
    assert_eq!(p.server.timer_entries(), 0);
}

/// The SYN-ACK seq the server answers a SYN of `port` with.
fn syn_ack_isn(server: &mut TcpStack<u32>, now: Instant, port: u16) -> u32 {
    let mut out = Wire::default();
    let ev = server.ingress(now, [1; 6], &syn_from(CLIENT, port, 7), &mut out, || 0);
    assert!(matches!(ev, Ingress::New(_)));
    assert_eq!(out.packets.len(), 1);
    assert_eq!(out.packets[0][33], 0x12, "a SYN-ACK");
    seq_of(&out.packets[0])
}

#[test]
fn initial_sequence_numbers_are_rfc_6528s() {
    let now = Instant::from_secs(1000);
    let secret = [0x5a; 16];
    let cfg = StackConfig {
        isn_secret: secret,
        ..StackConfig::new(vec![SERVER], Some(445), 2)
    };
    let mut server: TcpStack<u32> = TcpStack::new(cfg.clone(), now).unwrap();
    // Exactly M + F(4-tuple, secret) (RFC 6528 section 3).
    let key = |port| FlowKey {
        remote: SocketAddrV4::new(CLIENT, port),
        local: SocketAddrV4::new(SERVER, 445),
    };
    let mut isns = Vec::new();
    for port in 20000..21000u16 {
        let isn = syn_ack_isn(&mut server, now, port);
        assert_eq!(
            isn,
            crate::isn::isn(&secret, &key(port), now.total_micros())
        );
        isns.push(isn);
    }
    // Unpredictable across flows: no two alike, no common step, every bit
    // about half the time.
    assert_eq!(isns.iter().collect::<HashSet<_>>().len(), 1000);
    let steps: HashSet<u32> = isns.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    assert!(steps.len() > 990, "{} distinct steps", steps.len());
    for bit in 0..32 {
        let ones = isns.iter().filter(|i| *i >> bit & 1 == 1).count();
        assert!(
            (400..600).contains(&ones),
            "bit {bit} set {ones} times of 1000"
        );
    }
    // The same 4-tuple later: M moved on (one every 4 us), F did not, so a
    // new incarnation starts past the old one's numbers.
    let mut later: TcpStack<u32> = TcpStack::new(cfg, now).unwrap();
    let isn = syn_ack_isn(&mut later, now + Duration::from_millis(4), 20000);
    assert_eq!(isn, isns[0].wrapping_add(1000));
    // Another secret (another stack, another boot): unrelated numbers.
    let mut other: TcpStack<u32> = TcpStack::new(
        StackConfig {
            isn_secret: [0xa5; 16],
            ..StackConfig::new(vec![SERVER], Some(445), 2)
        },
        now,
    )
    .unwrap();
    let same = (20000..20100u16)
        .filter(|&port| syn_ack_isn(&mut other, now, port) == isns[usize::from(port - 20000)])
        .count();
    assert_eq!(same, 0);
}

/// A wheel like the shard's: 1 ms ticks, deadlines rounded up.
#[derive(Default)]
struct MsWheel {
    wheel: TimerWheel<u32>,
    inserts: usize,
    cancels: usize,
}

impl TimerHost for MsWheel {
    fn insert(&mut self, at: Instant, token: u32) -> u64 {
        self.inserts += 1;
        let tick = (at.total_micros().max(0) as u64).div_ceil(1000);
        self.wheel.insert(tick, token).to_raw()
    }
    fn cancel(&mut self, key: u64) {
        self.cancels += 1;
        self.wheel.cancel(TimerKey::from_raw(key).unwrap());
    }
}

impl MsWheel {
    fn next(&self) -> Option<Instant> {
        self.wheel
            .next_deadline()
            .map(|t| Instant::from_micros(t as i64 * 1000))
    }
    fn due(&mut self, now: Instant) -> Vec<(u32, u64, u64)> {
        let mut out = Vec::new();
        while let Some(e) = self.wheel.poll_one(now.total_micros() as u64 / 1000) {
            out.push((e.value, e.key.to_raw(), e.deadline));
        }
        out
    }
}

#[test]
fn tcp_timers_go_to_the_runtimes_wheel_and_fire_at_their_deadline_never_before() {
    let mut p = Pair::new();
    p.server = TcpStack::new(
        StackConfig {
            own_timers: false,
            ..StackConfig::new(vec![SERVER], Some(445), 2)
        },
        p.now,
    )
    .unwrap();
    let mut host = MsWheel::default();
    let (_c, s) = p.connect(40000);
    p.server.file_timers(&mut host);
    assert_eq!(p.server.next_deadline(), None, "no wheel of its own");
    // The server sends; the client's ACKs are lost: retransmission.
    p.server
        .flow_mut(s)
        .unwrap()
        .socket_mut()
        .send_slice(b"data")
        .unwrap();
    p.server.poll(p.now, s, &mut p.to_client);
    let first = p.to_client.packets.pop().expect("sent");
    p.server.file_timers(&mut host);
    assert!(p.server.timer_entries() == 1 && host.wheel.len() == 1);
    assert!(host.next().is_some());
    let mut fired = Vec::new();
    let mut retransmitted = false;
    let mut last = Vec::new();
    for _ in 0..20 {
        let asked = p.server.flow(s).unwrap().timer_at().expect("filed");
        assert!(asked > p.now.total_micros());
        // Polled every millisecond up to the deadline: nothing fires early.
        while p.now.total_micros() + 1000 < asked {
            p.now += Duration::from_millis(1);
            assert!(host.due(p.now).is_empty(), "early at {}", p.now);
        }
        // At the first tick at or past the deadline it fires (late by
        // less than the tick).
        p.now = Instant::from_micros((asked as u64).div_ceil(1000) as i64 * 1000);
        last = host.due(p.now);
        assert_eq!(last.len(), 1);
        let (token, key, tick) = last[0];
        assert!(tick * 1000 >= asked as u64 && tick * 1000 < asked as u64 + 1000);
        p.server
            .timer_fired(p.now, token, key, &mut p.to_client, &mut fired);
        p.server.file_timers(&mut host);
        retransmitted = p
            .to_client
            .packets
            .iter()
            .any(|q| seq_of(q) == seq_of(&first) && q.len() == first.len());
        if retransmitted {
            break;
        }
    }
    assert!(retransmitted, "the segment went again on its timer");
    assert!(fired.iter().all(|f| *f == s));
    let fired_keys = last;
    // A stale key (fired already) is ignored.
    let (token, key, _) = fired_keys[0];
    let n = fired.len();
    p.server
        .timer_fired(p.now, token, key, &mut p.to_client, &mut fired);
    assert_eq!(fired.len(), n);
    // Churn: many connections opened and dropped leave one timer per flow
    // at most in the wheel (removed flows cancel theirs).
    for port in 41000..41200 {
        let (_, s) = p.connect(port);
        p.server.file_timers(&mut host);
        p.server.flow_mut(s).unwrap().socket_mut().abort();
        p.server.poll(p.now, s, &mut p.to_client);
        p.server.remove(s);
        p.server.file_timers(&mut host);
        assert!(host.wheel.len() <= p.server.len());
    }
    assert!(host.cancels > 0);
}

#[test]
fn drops_are_counted_by_reason() {
    let mut p = Pair::new();
    let (_c, _s) = p.connect(40000);
    let mut out = Wire::default();
    let mut bad = syn_from(Ipv4Addr::new(198, 19, 0, 1), 5000, 1);
    bad[36] ^= 0x55;
    assert_eq!(
        p.server.ingress(p.now, [9; 6], &bad, &mut out, || 0),
        Ingress::Dropped
    );
    assert_eq!(
        p.server
            .ingress(p.now, [9; 6], &[0x45, 0, 0], &mut out, || 0),
        Ingress::Dropped
    );
    let mut elsewhere = syn_from(Ipv4Addr::new(198, 19, 0, 1), 5000, 1);
    elsewhere[19] = 99;
    fix_checksums(&mut elsewhere);
    assert_eq!(
        p.server.ingress(p.now, [9; 6], &elsewhere, &mut out, || 0),
        Ingress::Dropped
    );
    let st = p.server.stats();
    assert_eq!((st.bad_checksum, st.malformed, st.not_ours), (1, 1, 1));
    assert!(out.packets.is_empty());
}

fn parking_pair(keep_alive: Option<Duration>) -> Pair {
    let mut p = Pair::new();
    p.server = TcpStack::new(
        StackConfig {
            park_after: Some(Duration::from_secs(1)),
            keep_alive,
            ..StackConfig::new(vec![SERVER], Some(445), 2)
        },
        p.now,
    )
    .unwrap();
    p
}

/// Run the server's timers up to `until`, delivering what they send.
fn run_server_timers(p: &mut Pair, until: Instant) {
    let mut fired = Vec::new();
    loop {
        let next = match p.server.next_deadline() {
            Some(t) if t <= until => t.max(p.now),
            _ => break,
        };
        p.now = next;
        p.server.poll_timers(p.now, &mut p.to_client, &mut fired);
        p.run();
        if p.server.next_deadline().is_some_and(|t| t <= p.now) {
            p.now += Duration::from_micros(1);
        }
    }
    p.now = until;
    p.server.poll_timers(p.now, &mut p.to_client, &mut fired);
    p.run();
}

/// Let both sides' timers (delayed ACKs, retransmissions) run for a
/// while in 10 ms steps, delivering what they send.
fn settle(p: &mut Pair, span: Duration) {
    let end = p.now + span;
    let mut fired = Vec::new();
    while p.now < end {
        p.now += Duration::from_millis(10);
        p.server.poll_timers(p.now, &mut p.to_client, &mut fired);
        p.client.poll_timers(p.now, &mut p.to_server, &mut fired);
        p.run();
    }
}

/// Read exactly `n` bytes from flow `id` of `stack` (the peer having
/// sent them already).
fn recv_exactly(stack: &mut TcpStack<u32>, id: crate::FlowId, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    while out.len() < n {
        let got = stack
            .flow_mut(id)
            .unwrap()
            .socket_mut()
            .recv_slice(&mut buf)
            .unwrap();
        assert!(got > 0, "only {} of {n} bytes arrived", out.len());
        out.extend_from_slice(&buf[..got]);
    }
    out
}

#[test]
fn an_idle_connection_is_parked_and_restored_without_its_peer_noticing() {
    let mut p = parking_pair(None);
    let (c, s) = p.connect(40000);
    // Some traffic both ways first, so the numbers are not the ISNs'.
    let mut buf = vec![0u8; 20_000];
    for round in 0..3u8 {
        let data = vec![round; 3000];
        p.client
            .flow_mut(c)
            .unwrap()
            .socket_mut()
            .send_slice(&data)
            .unwrap();
        p.client.poll(p.now, c, &mut p.to_server);
        settle(&mut p, Duration::from_millis(100));
        assert!(recv_exactly(&mut p.server, s, data.len()) == data);
        p.server
            .flow_mut(s)
            .unwrap()
            .socket_mut()
            .send_slice(&data[..1000])
            .unwrap();
        p.server.poll(p.now, s, &mut p.to_client);
        settle(&mut p, Duration::from_millis(100));
        assert!(recv_exactly(&mut p.client, c, 1000) == data[..1000]);
        p.server.poll(p.now, s, &mut p.to_client);
        p.run();
    }
    assert!(!p.server.flow(s).unwrap().is_parked());
    // Idle past park_after: parked, socket and buffers gone, no segment sent.
    let idle = p.now + Duration::from_millis(1500);
    run_server_timers(&mut p, idle);
    assert!(p.server.flow(s).unwrap().is_parked());
    assert_eq!(p.server.parked(), 1);
    assert_eq!(p.server.flow(s).unwrap().state(), State::Established);
    // With no keep-alive a parked flow has no timer and stays parked.
    assert_eq!(p.server.timer_entries(), 0);
    let later = p.now + Duration::from_secs(10);
    run_server_timers(&mut p, later);
    assert!(p.server.flow(s).unwrap().is_parked());
    assert_eq!(p.server.stats().restores, 0);
    // The peer speaks: restored, its bytes taken, answered; the client's
    // socket sees nothing odd (no RST, no retransmission needed).
    p.client
        .flow_mut(c)
        .unwrap()
        .socket_mut()
        .send_slice(b"after parking")
        .unwrap();
    p.client.poll(p.now, c, &mut p.to_server);
    p.run();
    assert_eq!(p.server.stats().challenge_acks, 0);
    assert!(!p.server.flow(s).unwrap().is_parked());
    assert_eq!(p.server.parked(), 0);
    let n = p
        .server
        .flow_mut(s)
        .unwrap()
        .socket_mut()
        .recv_slice(&mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"after parking");
    // A large answer (several windows) goes through the restored socket.
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..10_000 {
        if sent < big.len() {
            sent += p
                .server
                .flow_mut(s)
                .unwrap()
                .socket_mut()
                .send_slice(&big[sent..])
                .unwrap();
        }
        p.server.poll(p.now, s, &mut p.to_client);
        p.run();
        got.extend_from_slice(&received(&mut p.client, c));
        p.client.poll(p.now, c, &mut p.to_server);
        settle(&mut p, Duration::from_millis(20));
        if got.len() == big.len() {
            break;
        }
    }
    assert_eq!(got.len(), big.len());
    assert!(got == big, "bytes in order");
    // Parks again once idle; the caller writing to it restores it.
    let idle = p.now + Duration::from_millis(1500);
    run_server_timers(&mut p, idle);
    assert!(p.server.flow(s).unwrap().is_parked());
    p.server
        .flow_mut(s)
        .unwrap()
        .socket_mut()
        .send_slice(b"push")
        .unwrap();
    p.server.poll(p.now, s, &mut p.to_client);
    p.run();
    assert_eq!(received(&mut p.client, c), b"push");
    assert_eq!(
        p.client.flow(c).unwrap().socket().state(),
        State::Established
    );
    // And closes cleanly from there.
    p.client.flow_mut(c).unwrap().socket_mut().close();
    p.client.poll(p.now, c, &mut p.to_server);
    p.run();
    assert_eq!(p.server.flow(s).unwrap().state(), State::CloseWait);
}

/// Keep-alive 10 s, timeout 30 s; the peer answers until 25 s, then
/// vanishes. Returns when the server's socket gave up, from the start.
fn dead_peer_found_after(park: bool) -> Duration {
    let mut p = Pair::new();
    p.server = TcpStack::new(
        StackConfig {
            park_after: park.then(|| Duration::from_secs(1)),
            keep_alive: Some(Duration::from_secs(10)),
            timeout: Some(Duration::from_secs(30)),
            ..StackConfig::new(vec![SERVER], Some(445), 2)
        },
        p.now,
    )
    .unwrap();
    let (c, s) = p.connect(40000);
    let start = p.now;
    run_server_timers(&mut p, start + Duration::from_secs(2));
    assert_eq!(p.server.flow(s).unwrap().is_parked(), park);
    // The probes go, the live peer answers, the flow parks again.
    run_server_timers(&mut p, start + Duration::from_secs(15));
    assert_eq!(
        p.client.flow(c).unwrap().socket().state(),
        State::Established
    );
    run_server_timers(&mut p, start + Duration::from_secs(25));
    assert_eq!(p.server.flow(s).unwrap().is_parked(), park, "parked again");
    if park {
        assert!(p.server.stats().restores >= 2, "{:?}", p.server.stats());
    }
    // The peer vanishes: probes go unanswered, smoltcp's timeout ends it.
    p.client = TcpStack::new(StackConfig::new(vec![CLIENT], None, 1), p.now).unwrap();
    let mut fired = Vec::new();
    let mut sink = Wire::default();
    for _ in 0..100_000 {
        let Some(t) = p.server.next_deadline() else {
            break;
        };
        p.now = t.max(p.now + Duration::from_micros(1));
        p.server.poll_timers(p.now, &mut sink, &mut fired);
        if p.server.flow(s).is_some_and(|f| f.state() == State::Closed) {
            break;
        }
    }
    assert_eq!(p.server.flow(s).unwrap().state(), State::Closed);
    // Counted as timed out, not as reset.
    let st = p.server.stats();
    assert_eq!((st.timed_out, st.reset_by_peer), (1, 0), "{st:?}");
    p.now - start
}

#[test]
fn a_parked_connection_keeps_its_keep_alive_and_a_dead_peer_is_found_as_if_never_parked() {
    let parked = dead_peer_found_after(true);
    let live = dead_peer_found_after(false);
    // Parking changes when a dead peer is found by less than the time an
    // idle flow waits before it parks.
    let diff = if parked > live {
        parked - live
    } else {
        live - parked
    };
    assert!(
        diff <= Duration::from_secs(1),
        "parked: found after {parked}; never parked: after {live}"
    );
}

#[test]
fn parking_works_on_the_runtimes_wheel_with_a_caller_that_polls_what_fired() {
    let mut p = Pair::new();
    p.server = TcpStack::new(
        StackConfig {
            own_timers: false,
            park_after: Some(Duration::from_secs(1)),
            keep_alive: Some(Duration::from_secs(60)),
            ..StackConfig::new(vec![SERVER], Some(445), 2)
        },
        p.now,
    )
    .unwrap();
    let mut host = MsWheel::default();
    let (c, s) = p.connect(40000);
    // A request and its answer, as the xdp shard does them.
    p.client
        .flow_mut(c)
        .unwrap()
        .socket_mut()
        .send_slice(b"req")
        .unwrap();
    p.client.poll(p.now, c, &mut p.to_server);
    p.run();
    assert_eq!(recv_exactly(&mut p.server, s, 3), b"req");
    p.server
        .flow_mut(s)
        .unwrap()
        .socket_mut()
        .send_slice(b"answer")
        .unwrap();
    p.server.poll(p.now, s, &mut p.to_client);
    p.run();
    p.server.file_timers(&mut host);
    // The runtime's loop: fire what is due, poll what fired (the caller's
    // service), file, for 3 s in 1 ms ticks; the client's timers run too.
    let mut fired = Vec::new();
    let mut cfired = Vec::new();
    let end = p.now + Duration::from_secs(3);
    while p.now < end {
        p.now += Duration::from_millis(1);
        for (token, key, _) in host.due(p.now) {
            p.server
                .timer_fired(p.now, token, key, &mut p.to_client, &mut fired);
        }
        for id in fired.drain(..) {
            p.server.poll(p.now, id, &mut p.to_client);
        }
        p.client.poll_timers(p.now, &mut p.to_server, &mut cfired);
        p.run();
        p.server.file_timers(&mut host);
    }
    assert!(
        p.server.flow(s).unwrap().is_parked(),
        "{:?}",
        p.server.stats()
    );
}
