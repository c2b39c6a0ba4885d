//! Probe connections: each logs in, connects to IPC$, opens the `srvsvc` pipe (an open handle,
//! so the server never idle-reaps it) and sends ECHO at a fixed rate. Latency is measured from
//! each ECHO's planned send time, so a stalled server is charged for every ECHO it delayed
//! (coordinated omission corrected); samples go to the histogram of the phase the ECHO was
//! planned in (baseline without idle sessions, opening, idle, reaping).
//!
//! At the end each probe closes as a client should: it waits for the answer to the ECHO it has
//! outstanding, sends FIN (`shutdown(Write)`) and reads to the server's EOF, all within
//! `CLOSE_WAIT`. Dropping a socket with an answer still on its way would make the kernel answer
//! it with a RST, and the server would count the probe's connection as a dead transport.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use smb_wire::frame::split_frame;

use crate::net::{self, ReadOutcome};
use crate::proto::{ClientConfig, ClientConn, Event};
use crate::run::phase;
use crate::stats;

/// How long the probes take at most to close cleanly once stopped (an ECHO answer that a lost
/// segment holds up comes one retransmission later).
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// What the probes measured.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// ECHO latency per phase (index = `run::phase` value), µs.
    pub by_phase: Vec<Histogram<u64>>,
    /// Probe connections that had to be re-established.
    pub reconnects: u64,
    /// The first probe error.
    pub first_error: Option<String>,
}

#[derive(Debug)]
struct Probe {
    stream: Option<mio::net::TcpStream>,
    proto: ClientConn,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    ready: bool,
    connected: bool,
    /// Planned send time of the ECHO outstanding, and its phase.
    outstanding: Option<(Instant, u8)>,
    /// Planned time of the next ECHO.
    next: Instant,
    /// FIN sent (stopping): reading to the server's EOF.
    shut: bool,
}

/// A running set of probes.
#[derive(Debug)]
pub struct Probes {
    thread: Option<JoinHandle<ProbeResult>>,
    /// The phase samples are filed under (the main thread moves it along).
    pub phase: Arc<AtomicU8>,
}

impl Probes {
    /// Starts `count` probes against `target`, each sending `rate` ECHOs per second.
    pub fn start(target: SocketAddr, cfg: ClientConfig, count: u32, rate: f64) -> Probes {
        let phase = Arc::new(AtomicU8::new(phase::WARMUP));
        let p2 = phase.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-probes".into())
            .spawn(move || run(target, cfg, count, rate, p2))
            .ok();
        Probes { thread, phase }
    }

    /// Waits until every probe is ready (or `timeout` passes).
    pub fn set_phase(&self, p: u8) {
        self.phase.store(p, Ordering::SeqCst);
    }

    /// Stops the probes and returns their figures.
    pub fn stop(mut self) -> Option<ProbeResult> {
        self.phase.store(phase::STOP, Ordering::SeqCst);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

fn connect(p: &mut Probe, poll: &Poll, i: usize, target: SocketAddr, cfg: &ClientConfig) -> bool {
    match net::connect(target, None) {
        Ok(mut s) => {
            if poll
                .registry()
                .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                return false;
            }
            p.proto = ClientConn::new();
            p.out.clear();
            p.out_pos = 0;
            p.inbuf.clear();
            p.ready = false;
            p.connected = false;
            p.outstanding = None;
            p.proto.negotiate(cfg, [0x50; 16], &mut p.out);
            p.stream = Some(s);
            true
        }
        Err(_) => false,
    }
}

fn run(
    target: SocketAddr,
    cfg: ClientConfig,
    count: u32,
    rate: f64,
    ph: Arc<AtomicU8>,
) -> ProbeResult {
    let mut res = ProbeResult {
        by_phase: (0..=phase::STOP).map(|_| stats::new_hist()).collect(),
        reconnects: 0,
        first_error: None,
    };
    let Ok(mut poll) = Poll::new() else {
        res.first_error = Some("epoll".into());
        return res;
    };
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let start = Instant::now();
    let mut probes: Vec<Probe> = (0..count as usize)
        .map(|i| Probe {
            stream: None,
            proto: ClientConn::new(),
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            ready: false,
            connected: false,
            outstanding: None,
            next: start + interval.mul_f64(i as f64 / count.max(1) as f64),
            shut: false,
        })
        .collect();
    for (i, p) in probes.iter_mut().enumerate() {
        if !connect(p, &poll, i, target, &cfg) {
            res.first_error
                .get_or_insert_with(|| format!("probe cannot connect to {target}"));
        }
    }
    let mut events = Events::with_capacity(64);
    let mut stop_by: Option<Instant> = None;
    loop {
        let cur = ph.load(Ordering::SeqCst);
        let now = Instant::now();
        if cur == phase::STOP {
            let by = *stop_by.get_or_insert(now + CLOSE_WAIT);
            // Close each probe once it has no answer outstanding; done when every one
            // has seen the server's EOF (or the time is up).
            for p in probes.iter_mut() {
                let Some(s) = p.stream.as_ref() else { continue };
                if !p.shut && (p.outstanding.is_none() || !p.ready) {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    p.shut = true;
                }
            }
            if now >= by || probes.iter().all(|p| p.stream.is_none()) {
                return res;
            }
        }
        let stopping = stop_by.is_some();
        // Send due ECHOs (none once stopping).
        for p in probes.iter_mut().filter(|_| !stopping) {
            if !p.ready {
                // Not measuring yet: keep the schedule moving.
                while p.next <= now {
                    p.next += interval;
                }
                continue;
            }
            if p.outstanding.is_none() && p.next <= now {
                p.outstanding = Some((p.next, cur));
                p.next += interval;
                p.proto.echo(&mut p.out);
                if let Some(s) = p.stream.as_mut() {
                    let _ = net::flush(s, &mut p.out, &mut p.out_pos);
                }
            }
        }
        let next = probes
            .iter()
            .filter(|p| p.ready && p.outstanding.is_none())
            .map(|p| p.next)
            .min();
        let timeout = next
            .filter(|_| !stopping)
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(20))
            .min(Duration::from_millis(20));
        let _ = poll.poll(&mut events, Some(timeout));
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(p) = probes.get_mut(i) else { continue };
            let Some(s) = p.stream.as_mut() else { continue };
            let r = net::Readiness::of(ev);
            if !p.connected {
                match net::connect_done(s, r) {
                    Ok(true) => p.connected = true,
                    Ok(false) => continue,
                    Err(_) => {
                        p.stream = None;
                        continue;
                    }
                }
            }
            let mut dead = !p.shut && net::flush(s, &mut p.out, &mut p.out_pos).is_err();
            match net::read_available(s, &mut p.inbuf, 1 << 20, r) {
                Ok(ReadOutcome::Open) => {}
                _ => dead = true,
            }
            let mut used = 0;
            while let Ok(Some((range, n))) = split_frame(&p.inbuf[used..], 1 << 20) {
                let r = range.start + used..range.end + used;
                used += n;
                let now = Instant::now();
                match p.proto.handle(&p.inbuf[r], &cfg, &mut p.out) {
                    Ok(Event::Negotiated { .. }) => p.proto.begin_session(&cfg, &mut p.out),
                    Ok(Event::SessionReady { .. }) => p.proto.open_pipe(&mut p.out),
                    Ok(Event::PipeOpen) => p.ready = true,
                    Ok(Event::EchoDone) => {
                        if let Some((planned, phz)) = p.outstanding.take() {
                            let lat = now.saturating_duration_since(planned).as_micros() as u64;
                            stats::record(&mut res.by_phase[usize::from(phz)], lat);
                        }
                        // Catch up on ECHOs planned while this one was outstanding.
                        if p.next <= now && !stopping {
                            let cur = ph.load(Ordering::SeqCst);
                            p.outstanding = Some((p.next, cur));
                            p.next += interval;
                            p.proto.echo(&mut p.out);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        res.first_error.get_or_insert_with(|| format!("probe: {e}"));
                        dead = true;
                        break;
                    }
                }
            }
            p.inbuf.drain(..used.min(p.inbuf.len()));
            if p.shut {
                // Nothing more goes after our FIN.
                p.out.clear();
                p.out_pos = 0;
            } else if let Some(s) = p.stream.as_mut() {
                if net::flush(s, &mut p.out, &mut p.out_pos).is_err() {
                    dead = true;
                }
            }
            if dead {
                if let Some(mut s) = p.stream.take() {
                    let _ = poll.registry().deregister(&mut s);
                }
                if stopping {
                    // Closed (the server's EOF after our FIN): no reconnect.
                    continue;
                }
                res.reconnects += 1;
                if res.reconnects < 1000 {
                    connect(p, &poll, i, target, &cfg);
                }
            }
        }
    }
}
