//! Drives the sans-IO engine with arbitrary frame sequences on up to two
//! victim connections (each optionally after a real anonymous login) beside
//! a logged-in bystander connection, with the clock moving forward (by
//! milliseconds per frame and by jumps of up to 68 minutes, so held answers
//! of failed logons are released, pre-auth deadlines pass and idle sessions
//! are reaped), victim sockets closing and reconnecting, and the bystander
//! sending ECHOs in between.
//!
//! Checks that nothing panics, that every output is well-framed, that every
//! byte produced goes to the connection that caused it (the bystander only
//! ever receives answers to its own requests; each victim response answers
//! a MessageId that this incarnation of that victim connection sent; output
//! of a closed connection never reaches the connection that reuses its
//! slot), that a frame answered with `Close` queued nothing, and that junk
//! on the victims never disturbs the bystander's authenticated session
//! (never closed before its idle time is up, and still answering at the
//! end). Output is never cleared between frames: each connection's queue is
//! drained the way a socket drains it, so output left behind by a failed
//! frame would be seen.
//!
//! Input: one flag byte (bit 0: victim 0 negotiates first, bit 1: and logs
//! in; bits 2 and 3: the same for victim 1), then steps, each a
//! little-endian u16 `w` (`op = w >> 12`, `arg = w & 0xfff`):
//!
//! - op 0..=7: the next `arg` bytes are a frame from victim 0, sent as is;
//! - op 8, 9: the same, sent the way a client would: the SessionId, TreeId
//!   and FileId fields (when set and not the related-operation 0xFF..)
//!   replaced by the last ones the server gave victim 0;
//! - op 10: a frame from victim 1, as is; op 11: the same as a client;
//! - op 12: the clock jumps `arg` seconds;
//! - op 13: victim `arg & 1`'s socket goes away (a frame to a closed victim
//!   opens a fresh connection);
//! - op 14: a frame from victim 0 carrying the bystander's SessionId;
//! - op 15: the bystander sends an ECHO.
//!
//! Frames also move the clock by their first byte in milliseconds.
//!
//! A fresh engine is built for every input. The bystander's (and victims')
//! NEGOTIATE and SESSION_SETUP requests are recorded once from a real
//! `mem_client` login and replayed (with the session id patched in): the
//! engine's random source is deterministic and an anonymous NTLM
//! AUTHENTICATE does not depend on the challenge, so the engine sees the
//! same requests as with a live client, without the client-side cost.
//!
//! Run (one job; the engine crates forbid `unsafe`, so `-s none` loses
//! little and is about ten times faster than ASan):
//!
//! ```text
//! cd fuzz && python3 engine_seeds.py
//! cargo +nightly fuzz run engine -s none -- -runs=10000000 -max_len=8192 -print_final_stats=1
//! ```
#![no_main]

#[path = "../../benches/support/mem_client.rs"]
mod mem_client;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mem_client::{engine, first_response, Four, MemConn, HDR};
use smb_session::engine::{Engine, EngineEvent, FrameOutcome};
use smb_session::ids::ConnId;
use smb_wire::compound::Compound;
use smb_wire::frame::Frames;
use smb_wire::header::{Command, Header};
use smb_wire::NtStatus;

/// Where every connection comes from.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 50000);

/// The autodisconnect `mem_client::engine` configures.
const IDLE_REAP: Duration = Duration::from_secs(15 * 60);

/// Request payloads recorded from a real client.
struct Script {
    /// NEGOTIATE (MessageId 0).
    negotiate: Vec<u8>,
    /// SESSION_SETUP with the SPNEGO/NTLM NEGOTIATE token (MessageId 1).
    setup1: Vec<u8>,
    /// SESSION_SETUP with the anonymous AUTHENTICATE (MessageId 2).
    setup2: Vec<u8>,
    /// ECHO (MessageId 3).
    echo: Vec<u8>,
    /// TREE_CONNECT \\127.0.0.1\IPC$ (MessageId 4).
    tree_connect: Vec<u8>,
}

fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        let start = Instant::now();
        let mut e = engine(start);
        let mut c = MemConn::accept(&mut e, start);
        c.log = Some(Vec::new());
        c.negotiate(&mut e);
        let sid = c.anonymous_login(&mut e);
        c.build(Command::Echo, sid, 0, &Four);
        c.send(&mut e);
        assert_eq!(first_response(&c.out).0, NtStatus::SUCCESS);
        c.build_tree_connect_ipc(sid);
        c.send(&mut e);
        assert_eq!(first_response(&c.out).0, NtStatus::SUCCESS);
        let mut log = c.log.take().expect("recorded").into_iter();
        let mut next = || log.next().expect("five requests");
        Script {
            negotiate: next(),
            setup1: next(),
            setup2: next(),
            echo: next(),
            tree_connect: next(),
        }
    })
}

/// `req` with MessageId `mid` and SessionId `sid`.
fn patched(req: &[u8], mid: u64, sid: u64) -> Vec<u8> {
    let mut r = req.to_vec();
    r[24..32].copy_from_slice(&mid.to_le_bytes());
    r[40..48].copy_from_slice(&sid.to_le_bytes());
    r
}

/// Send `req` on `conn`, take what is queued for it; (status, session id)
/// of the single response.
fn exchange(e: &mut Engine, conn: ConnId, req: &[u8], now: Instant) -> (NtStatus, u64) {
    assert_eq!(e.handle_frame(conn, req, now), FrameOutcome::Continue);
    let mut out = Vec::new();
    e.drain_transmit(conn, &mut out);
    let (status, sid, _, range) = first_response(&out);
    assert_eq!(range.end, out.len(), "one response frame");
    (status, sid)
}

/// NEGOTIATE and, when `login`, an anonymous login on `conn`, as replayed
/// from the script; the session id (0 without login).
fn setup(e: &mut Engine, conn: ConnId, login: bool, now: Instant) -> u64 {
    let s = script();
    assert_eq!(exchange(e, conn, &s.negotiate, now).0, NtStatus::SUCCESS);
    if !login {
        return 0;
    }
    let (st, sid) = exchange(e, conn, &s.setup1, now);
    assert_eq!(st, NtStatus::MORE_PROCESSING_REQUIRED);
    let (st, sid2) = exchange(e, conn, &patched(&s.setup2, 2, sid), now);
    assert_eq!((st, sid2), (NtStatus::SUCCESS, sid));
    sid
}

/// One victim connection slot; a frame for a closed one opens a new one.
#[derive(Default)]
struct Victim {
    conn: Option<ConnId>,
    /// MessageIds this connection (this incarnation) sent.
    sent_ids: Vec<u64>,
    /// What its socket took.
    received: Vec<u8>,
    /// The SessionId, TreeId and FileId the server last gave it.
    sid: Option<u64>,
    tid: Option<u32>,
    fid: Option<[u8; 16]>,
}

impl Victim {
    fn open(&mut self, e: &mut Engine, now: Instant) -> ConnId {
        *self.conn.get_or_insert_with(|| {
            self.sent_ids.clear();
            self.received.clear();
            (self.sid, self.tid, self.fid) = (None, None, None);
            e.accept(PEER, now)
        })
    }

    /// Take what is queued for this connection, as its socket would, and
    /// check that it is whole frames answering this connection's requests.
    fn drain(&mut self, e: &mut Engine) {
        let Some(conn) = self.conn else { return };
        let from = self.received.len();
        e.drain_transmit(conn, &mut self.received);
        let mut frames = Frames::new(&self.received[from..], 16 << 20);
        for f in frames.by_ref() {
            let f = f.expect("engine emitted a broken frame");
            for m in Compound::new(f) {
                let m = m.expect("engine emitted a broken compound");
                let h = Header::new_checked(m).expect("response header");
                let id = h.message_id();
                let ok = !h.status().is_error();
                match h.command() {
                    Command::SessionSetup
                        if ok || h.status() == NtStatus::MORE_PROCESSING_REQUIRED =>
                    {
                        self.sid = Some(h.session_id())
                    }
                    Command::TreeConnect if ok => self.tid = h.tree_id(),
                    Command::Create if ok => {
                        self.fid = m.get(HDR + 64..HDR + 80).and_then(|f| f.try_into().ok())
                    }
                    _ => {}
                }
                assert!(
                    self.sent_ids.contains(&id),
                    "response to a MessageId this connection never sent"
                );
            }
        }
        assert!(
            frames.remainder().is_empty(),
            "engine emitted a partial frame"
        );
        if self.received.len() > 1 << 20 {
            self.received.clear();
        }
    }

    /// The socket went away (after taking what was queued).
    fn close(&mut self, e: &mut Engine, now: Instant) {
        if let Some(conn) = self.conn {
            self.drain(e);
            e.connection_closed(conn, now);
            assert!(e.poll_transmit(conn).is_empty());
            self.conn = None;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let s = script();
    let start = Instant::now();
    let mut e = engine(start);
    // A bystander with an authenticated session that must survive.
    let good = e.accept(PEER, start);
    let good_sid = setup(&mut e, good, true, start);
    let mut good_open = true;
    let mut good_mid = 3u64;
    let mut victims: [Victim; 2] = Default::default();
    for (i, v) in victims.iter_mut().enumerate() {
        let f = flags >> (2 * i);
        if f & 1 == 1 {
            let conn = v.open(&mut e, start);
            setup(&mut e, conn, f & 2 == 2, start);
        }
    }
    let mut now = start;
    while rest.len() >= 2 {
        let w = u16::from_le_bytes([rest[0], rest[1]]);
        rest = &rest[2..];
        let (op, arg) = (w >> 12, usize::from(w & 0xfff));
        match op {
            12 => now += Duration::from_secs(arg as u64),
            13 => victims[arg & 1].close(&mut e, now),
            15 => {
                if good_open {
                    let echo = patched(&s.echo, good_mid, good_sid);
                    good_mid += 1;
                    assert_eq!(e.handle_frame(good, &echo, now), FrameOutcome::Continue);
                    let mut out = Vec::new();
                    e.drain_transmit(good, &mut out);
                    let (st, _, _, range) = first_response(&out);
                    assert_eq!(st, NtStatus::SUCCESS);
                    assert_eq!(range.end, out.len(), "one response frame");
                    let id = Header::new_checked(&out[range])
                        .expect("header")
                        .message_id();
                    assert_eq!(id, good_mid - 1, "the bystander got someone else's answer");
                    for v in &victims {
                        if let Some(c) = v.conn {
                            assert!(
                                e.poll_transmit(c).is_empty(),
                                "bystander's answer queued for a victim"
                            );
                        }
                    }
                }
            }
            _ => {
                let v = &mut victims[usize::from(op == 10 || op == 11)];
                let take = arg.min(rest.len());
                let (raw, tail) = rest.split_at(take);
                rest = tail;
                now += Duration::from_millis(u64::from(raw.first().copied().unwrap_or(0)));
                let conn = v.open(&mut e, now);
                let mut frame = std::borrow::Cow::Borrowed(raw);
                match op {
                    8 | 9 | 11 => frame = as_client(raw, v.sid, v.tid, v.fid).into(),
                    14 => frame = as_client(raw, Some(good_sid), None, None).into(),
                    _ => {}
                }
                v.sent_ids.extend(message_ids(&frame));
                let outcome = e.handle_frame(conn, &frame, now);
                if outcome == FrameOutcome::Close {
                    assert!(
                        e.poll_transmit(conn).is_empty(),
                        "a frame answered with Close queued output"
                    );
                    v.close(&mut e, now);
                }
            }
        }
        // Nothing a victim caused is queued for the bystander.
        assert!(
            e.poll_transmit(good).is_empty(),
            "a victim's frame queued output for the bystander"
        );
        e.handle_timeout(now);
        while let Some(ev) = e.poll_event() {
            match ev {
                EngineEvent::Transmit(c) => {
                    assert!(c != good, "output announced for the bystander");
                }
                EngineEvent::CloseConnection(c) if c == good => {
                    assert!(
                        now.duration_since(start) >= IDLE_REAP,
                        "bystander closed before its session was idle for long enough"
                    );
                    e.connection_closed(good, now);
                    good_open = false;
                }
                EngineEvent::CloseConnection(c) => {
                    if let Some(v) = victims.iter_mut().find(|v| v.conn == Some(c)) {
                        v.close(&mut e, now);
                    }
                }
                EngineEvent::Admin { conn, .. } => {
                    assert!(conn != good, "srvsvc call announced for the bystander");
                }
            }
        }
        assert!(e.poll_transmit(good).is_empty());
        for v in &mut victims {
            v.drain(&mut e);
        }
    }
    // The bystander's session still answers (unless it could have been
    // reaped for idleness).
    if now.duration_since(start) < IDLE_REAP {
        assert!(good_open, "bystander closed");
        let echo = patched(&s.echo, good_mid, good_sid);
        assert_eq!(exchange(&mut e, good, &echo, now).0, NtStatus::SUCCESS);
        let tc = patched(&s.tree_connect, good_mid + 1, good_sid);
        assert_eq!(exchange(&mut e, good, &tc, now).0, NtStatus::SUCCESS);
    }
});

/// `payload` with the SessionId, TreeId and FileId of each message of its
/// chain that sets one (nonzero, not the related-operation all-ones)
/// replaced by `sid`, `tid`, `fid` where given, as a client that uses the
/// ids the server handed out.
fn as_client(payload: &[u8], sid: Option<u64>, tid: Option<u32>, fid: Option<[u8; 16]>) -> Vec<u8> {
    fn settable(field: &[u8]) -> bool {
        field.iter().any(|&b| b != 0) && field.iter().any(|&b| b != 0xff)
    }
    let mut p = payload.to_vec();
    let mut at = 0usize;
    while p.len() >= at + HDR && p[at..].starts_with(b"\xfeSMB") {
        let m = &mut p[at..];
        if let Some(sid) = sid.filter(|_| settable(&m[40..48])) {
            m[40..48].copy_from_slice(&sid.to_le_bytes());
        }
        let is_async = m[16] & 2 != 0;
        if let Some(tid) = tid.filter(|_| !is_async && settable(&m[36..40])) {
            m[36..40].copy_from_slice(&tid.to_le_bytes());
        }
        // FileId offsets in the request bodies (MS-SMB2 2.2.14, 2.2.15,
        // 2.2.19, 2.2.21, 2.2.31, 2.2.37).
        let fid_at = match u16::from_le_bytes([m[12], m[13]]) {
            0x06 | 0x0b => Some(8),  // CLOSE, IOCTL
            0x08 | 0x09 => Some(16), // READ, WRITE
            0x10 => Some(24),        // QUERY_INFO
            _ => None,
        };
        if let (Some(fid), Some(off)) = (fid, fid_at) {
            if let Some(field) = m.get_mut(HDR + off..HDR + off + 16) {
                if settable(field) {
                    field.copy_from_slice(&fid);
                }
            }
        }
        let next = u32::from_le_bytes([m[20], m[21], m[22], m[23]]) as usize;
        if next == 0 {
            break;
        }
        at += next;
    }
    p
}

/// MessageIds of a request payload (0 for an SMB1 NEGOTIATE).
fn message_ids(payload: &[u8]) -> Vec<u64> {
    if payload.starts_with(b"\xffSMB") {
        return vec![0];
    }
    Compound::new(payload)
        .map_while(Result::ok)
        .filter_map(|m| Header::new_checked(m).ok().map(|h| h.message_id()))
        .collect()
}
