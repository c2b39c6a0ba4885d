//! An in-memory client that drives one `smb_session::engine::Engine`
//! connection with real SMB2 frames (built by `smb-client`), no sockets and a
//! fake clock: a thin driver that hands the engine what the client core
//! builds. Shared by the session-establishment benchmark and the allocation
//! tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use smb_auth::preauth::PreauthHash;
use smb_client::{setup_request, share_path, Auth, Offer, Requests, ResponseInfo, SessionSetup};
use smb_session::engine::{Engine, EngineConfig, FrameOutcome};
use smb_session::ids::ConnId;
use smb_wire::frame::split_frame;
use smb_wire::header::{Command, Header, HEADER_LEN};
use smb_wire::msg::tree_connect::TreeConnectRequestRepr;
use smb_wire::msg::EmitBody;
use smb_wire::NtStatus;

/// A four-byte body (ECHO, LOGOFF, TREE_DISCONNECT requests).
pub use smb_client::EmptyBody as Four;

/// A new engine with default configuration and a deterministic RNG.
pub fn engine(start: Instant) -> Engine {
    engine_with(start, |_| {})
}

/// A new engine with default configuration changed by `f`.
pub fn engine_with(start: Instant, f: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut cfg = EngineConfig::new([0x5a; 16]);
    cfg.autodisconnect = "15".parse().expect("15 minutes");
    f(&mut cfg);
    let mut seed = 0x1234_5678_9abc_def0u64;
    Engine::new(
        0,
        Arc::new(cfg),
        start,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        Box::new(move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
        }),
    )
}

/// One in-memory connection.
pub struct MemConn {
    pub conn: ConnId,
    pub now: Instant,
    /// MessageIds, 32 credits asked per request.
    pub requests: Requests,
    pub out: Vec<u8>,
    /// When set, every payload [`MemConn::send`] hands the engine (NBSS
    /// header stripped) is also appended here, to replay later.
    pub log: Option<Vec<Vec<u8>>>,
    frame: Vec<u8>,
}

/// The first response in `out` (status, session id, tree id, message bytes range).
pub fn first_response(out: &[u8]) -> (NtStatus, u64, u32, std::ops::Range<usize>) {
    let (payload, _) = split_frame(out, 16 << 20)
        .expect("valid framing")
        .expect("a whole frame");
    let h = ResponseInfo::parse(&out[payload.clone()]).expect("header");
    (h.status, h.session_id, h.tree_id, payload)
}

impl MemConn {
    /// Accept a connection from 127.0.0.1.
    pub fn accept(engine: &mut Engine, now: Instant) -> MemConn {
        let peer: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        MemConn {
            conn: engine.accept(peer, now),
            now,
            requests: Requests::new(32),
            out: Vec::with_capacity(4096),
            log: None,
            frame: Vec::with_capacity(4096),
        }
    }

    /// Build one request frame into the reusable frame buffer.
    pub fn build<B: EmitBody>(&mut self, command: Command, sid: u64, tree: u32, body: &B) {
        self.frame.clear();
        self.requests
            .emit(command, sid, tree, body, None, &mut self.frame);
    }

    /// Send the built frame; this connection's responses land in
    /// `self.out` (the client's receive buffer, cleared first), taken from
    /// the engine's queue for this connection as a socket would take them.
    pub fn send(&mut self, engine: &mut Engine) -> FrameOutcome {
        self.out.clear();
        if let Some(log) = self.log.as_mut() {
            log.push(self.frame[4..].to_vec());
        }
        let outcome = engine.handle_frame(self.conn, &self.frame[4..], self.now);
        engine.drain_transmit(self.conn, &mut self.out);
        outcome
    }

    /// Re-send the last built frame with the next MessageId (no allocation).
    pub fn resend_next(&mut self, engine: &mut Engine) -> FrameOutcome {
        let mid = self.requests.take_message_id();
        Header::new_unchecked(&mut self.frame[4..4 + HEADER_LEN]).set_message_id(mid);
        self.send(engine)
    }

    /// The frame last built (NBSS header included), to keep and resend
    /// with [`MemConn::send_kept`]; its MessageId is handed back unused.
    pub fn built(&mut self) -> Vec<u8> {
        let mid = self.requests.next_message_id();
        self.requests.set_next_message_id(mid - 1);
        self.frame.clone()
    }

    /// Send a kept frame with the next MessageId (no allocation).
    pub fn send_kept(&mut self, engine: &mut Engine, frame: &mut [u8]) -> FrameOutcome {
        let mid = self.requests.take_message_id();
        Header::new_unchecked(&mut frame[4..4 + HEADER_LEN]).set_message_id(mid);
        self.out.clear();
        let outcome = engine.handle_frame(self.conn, &frame[4..], self.now);
        engine.drain_transmit(self.conn, &mut self.out);
        outcome
    }

    /// NEGOTIATE 2.1.
    pub fn negotiate(&mut self, engine: &mut Engine) {
        self.build(
            Command::Negotiate,
            0,
            0,
            &Offer::new(&[0x0202, 0x0210], [1; 16], [0; 32]),
        );
        assert_eq!(self.send(engine), FrameOutcome::Continue);
        assert_eq!(first_response(&self.out).0, NtStatus::SUCCESS);
    }

    /// Anonymous SESSION_SETUP, two legs; returns the session id.
    pub fn anonymous_login(&mut self, engine: &mut Engine) -> u64 {
        let mut setup = SessionSetup::new(&Auth::Anonymous, "", PreauthHash::new());
        let tok = setup.initial_token();
        self.build(Command::SessionSetup, 0, 0, &setup_request(&tok));
        self.send(engine);
        let (st, sid, _, range) = first_response(&self.out);
        assert_eq!(st, NtStatus::MORE_PROCESSING_REQUIRED);
        let tok = setup
            .challenge(&self.out[range], [3; 8], [9; 16])
            .expect("spnego respond");
        self.build(Command::SessionSetup, sid, 0, &setup_request(&tok));
        self.send(engine);
        assert_eq!(first_response(&self.out).0, NtStatus::SUCCESS);
        sid
    }

    /// TREE_CONNECT \\127.0.0.1\IPC$; returns the tree id.
    pub fn tree_connect_ipc(&mut self, engine: &mut Engine, sid: u64) -> u32 {
        self.build_tree_connect_ipc(sid);
        self.send(engine);
        let (st, _, tree, _) = first_response(&self.out);
        assert_eq!(st, NtStatus::SUCCESS);
        tree
    }

    /// TREE_CONNECT \\127.0.0.1\`share`; returns the tree id.
    pub fn tree_connect(&mut self, engine: &mut Engine, sid: u64, share: &str) -> u32 {
        let path = share_path("127.0.0.1", share);
        self.build(
            Command::TreeConnect,
            sid,
            0,
            &TreeConnectRequestRepr {
                flags: 0,
                path: &path,
            },
        );
        self.send(engine);
        let (st, _, tree, _) = first_response(&self.out);
        assert_eq!(st, NtStatus::SUCCESS, "tree connect {share}");
        tree
    }

    /// Build `msgs` (command, body) as one compound frame, each request
    /// after the first related to the one before (MS-SMB2 3.2.4.1.4).
    pub fn build_related(&mut self, sid: u64, tree: u32, msgs: &[(Command, &dyn EmitBody)]) {
        let mut frame = vec![0u8; 4];
        let mut last = 0;
        for (i, (command, body)) in msgs.iter().enumerate() {
            let mut m = Vec::new();
            self.requests.emit(*command, sid, tree, *body, None, &mut m);
            let mut m = m[4..].to_vec();
            if i > 0 {
                let mut h = Header::new_unchecked(&mut m[..HEADER_LEN]);
                let f = h.flags();
                h.set_flags(f | smb_wire::header::flags::RELATED_OPERATIONS);
                while (frame.len() - 4) % 8 != 0 {
                    frame.push(0);
                }
                let next = (frame.len() - last) as u32;
                Header::new_unchecked(&mut frame[last..last + HEADER_LEN]).set_next_command(next);
            }
            last = frame.len();
            frame.extend_from_slice(&m);
        }
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.frame = frame;
    }

    /// Re-send the built compound frame with fresh MessageIds (no
    /// allocation); `starts` are the offsets of its messages in the frame.
    pub fn resend_compound(&mut self, engine: &mut Engine, starts: &[usize]) -> FrameOutcome {
        for &s in starts {
            let mid = self.requests.take_message_id();
            Header::new_unchecked(&mut self.frame[s..s + HEADER_LEN]).set_message_id(mid);
        }
        self.send(engine)
    }

    /// Offsets of the messages of the built compound frame.
    pub fn compound_starts(&self) -> Vec<usize> {
        let mut v = vec![4];
        let mut at = 4;
        loop {
            let next =
                Header::new_unchecked(&self.frame[at..at + HEADER_LEN]).next_command() as usize;
            if next == 0 {
                return v;
            }
            at += next;
            v.push(at);
        }
    }

    /// Build (not send) a TREE_CONNECT to IPC$.
    pub fn build_tree_connect_ipc(&mut self, sid: u64) {
        let path = share_path("127.0.0.1", "IPC$");
        self.build(
            Command::TreeConnect,
            sid,
            0,
            &TreeConnectRequestRepr {
                flags: 0,
                path: &path,
            },
        );
    }
}

/// The size of a response header, for callers that slice bodies.
pub const HDR: usize = HEADER_LEN;
