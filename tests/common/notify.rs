//! A blocking driver of `smb-client`'s connection state machine over one
//! TCP connection, for tests that need a real dialect negotiation (3.1.1
//! with its preauth hash and signing) and several sessions on one
//! connection, and that watch what the server sends unasked
//! (SMB2_SERVER_TO_CLIENT_NOTIFICATION).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use smb_client::{Auth, ClientConfig, ClientConn, Event};
use smb_wire::frame::split_frame;

/// One connection driven by [`ClientConn`].
#[derive(Debug)]
pub struct Driver {
    stream: TcpStream,
    conn: ClientConn,
    buf: Vec<u8>,
    /// Notifications seen so far: the sessions they named.
    pub closed: Vec<u64>,
}

impl Driver {
    /// Connect and NEGOTIATE, offering `dialects`; returns the dialect.
    pub fn connect(addr: SocketAddr, dialects: &[u16]) -> (Driver, u16) {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut d = Driver {
            stream,
            conn: ClientConn::new(),
            buf: Vec::new(),
            closed: Vec::new(),
        };
        let cfg = Self::cfg(dialects, "NEGOTIATE");
        let mut out = Vec::new();
        d.conn.negotiate(&cfg, [0x42; 16], &mut out);
        d.send(&out);
        match d.next(&cfg, Duration::from_secs(10)) {
            Some(Event::Negotiated { dialect }) => (d, dialect),
            other => panic!("negotiate: {other:?}"),
        }
    }

    fn cfg(dialects: &[u16], workstation: &str) -> ClientConfig {
        Self::cfg_for(dialects, workstation, super::USER)
    }

    fn cfg_for(dialects: &[u16], workstation: &str, who: (&str, &str)) -> ClientConfig {
        ClientConfig::new("127.0.0.1", dialects.to_vec(), Auth::user(who.0, who.1))
            .with_workstation(workstation)
    }

    fn send(&mut self, out: &[u8]) {
        if !out.is_empty() {
            self.stream.write_all(out).expect("send");
        }
    }

    /// The next event that is not a setup step's continuation (whose next
    /// request is sent), or `None` when nothing came within `wait`.
    fn next(&mut self, cfg: &ClientConfig, wait: Duration) -> Option<Event> {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some((range, used))) = split_frame(&self.buf, 16 << 20) {
                let msg = self.buf[range].to_vec();
                self.buf.drain(..used);
                let mut out = Vec::new();
                let ev = self
                    .conn
                    .handle(&msg, cfg, &mut out)
                    .unwrap_or_else(|e| panic!("client: {e}"));
                self.send(&out);
                match ev {
                    Event::Continue { .. } | Event::Nothing => continue,
                    Event::SessionClosed { session_id } => {
                        self.closed.push(session_id);
                        return Some(ev);
                    }
                    other => return Some(other),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => panic!("the server closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Log a new session on (as `who`, from `workstation`: the server keeps
    /// the last one as the connection's computer name) and connect IPC$ on
    /// it; returns its SessionId.
    pub fn session(&mut self, workstation: &str, who: (&str, &str)) -> u64 {
        let cfg = Self::cfg_for(&[self.conn.dialect()], workstation, who);
        let mut out = Vec::new();
        self.conn.begin_session(&cfg, &mut out);
        self.send(&out);
        match self.next(&cfg, Duration::from_secs(10)) {
            Some(Event::SessionReady { session_id, .. }) => session_id,
            other => panic!("session setup: {other:?}"),
        }
    }

    /// ECHO on the last session set up; panics unless it is answered.
    pub fn echo(&mut self) {
        let cfg = Self::cfg(&[self.conn.dialect()], "ECHO");
        let mut out = Vec::new();
        self.conn.echo(&mut out);
        self.send(&out);
        loop {
            match self.next(&cfg, Duration::from_secs(10)) {
                Some(Event::EchoDone) => return,
                Some(Event::SessionClosed { .. }) => continue,
                other => panic!("echo: {other:?}"),
            }
        }
    }

    /// Every notification that arrives within `wait` (nothing else may).
    pub fn notifications(&mut self, wait: Duration) -> Vec<u64> {
        let cfg = Self::cfg(&[self.conn.dialect()], "WAIT");
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.closed.clone();
            }
            match self.next(&cfg, left) {
                None | Some(Event::SessionClosed { .. }) => {}
                Some(other) => panic!("unasked: {other:?}"),
            }
        }
    }
}
