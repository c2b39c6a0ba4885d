//! A minimal blocking SMB2 client for server tests: a thin driver that moves the bytes
//! `smb-client` builds over one TCP connection, one request at a time. NEGOTIATE (2.1),
//! SESSION_SETUP (anonymous or NTLMv2 user, with a chosen workstation name), TREE_CONNECT,
//! TREE_DISCONNECT, ECHO, LOGOFF, and raw bytes for the tests that send malformed input.
//! It holds its TCP connection so the session stays on the server.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use smb_auth::preauth::PreauthHash;
use smb_client::{
    setup_request, share_path, Auth, EmptyBody, Offer, Requests, ResponseInfo, SessionSetup,
};
use smb_wire::frame::split_frame;
use smb_wire::header::Command;
use smb_wire::msg::tree_connect::TreeConnectRequestRepr;
use smb_wire::msg::EmitBody;
use smb_wire::NtStatus;

/// CreditRequest of every request the test client sends.
const CREDIT_REQUEST: u16 = 64;

/// One connection with zero or more sessions.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    requests: Requests,
    buf: Vec<u8>,
}

/// A response: status, session id, tree id, whole message.
#[derive(Debug)]
pub struct Resp {
    pub status: NtStatus,
    pub session_id: u64,
    pub tree_id: u32,
    pub msg: Vec<u8>,
}

/// Who logs in.
#[derive(Debug, Clone)]
pub enum Login<'a> {
    Anonymous,
    User(&'a str, &'a str),
}

impl Login<'_> {
    fn auth(&self) -> Auth {
        match self {
            Login::Anonymous => Auth::Anonymous,
            Login::User(u, p) => Auth::user(u, p),
        }
    }
}

/// The NEGOTIATE request body every test client sends (2.0.2 and 2.1).
pub fn negotiate_body() -> Offer {
    Offer::new(&[0x0202, 0x0210], [7; 16], [0; 32])
}

/// One request as a whole NBSS frame (header + body), asking for 64 credits.
pub fn request_frame<B: EmitBody>(
    command: Command,
    message_id: u64,
    session_id: u64,
    tree_id: u32,
    body: &B,
) -> Vec<u8> {
    let mut r = Requests::new(CREDIT_REQUEST);
    r.set_next_message_id(message_id);
    r.frame(command, session_id, tree_id, body)
}

impl Client {
    /// Connect without sending anything.
    pub fn connect_raw(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            requests: Requests::new(CREDIT_REQUEST),
            buf: Vec::new(),
        })
    }

    /// NEGOTIATE dialect 2.1 on a TCP connection made elsewhere (from a
    /// chosen source address, say).
    pub fn from_stream(stream: TcpStream) -> std::io::Result<Client> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            requests: Requests::new(CREDIT_REQUEST),
            buf: Vec::new(),
        };
        let r = c.call(Command::Negotiate, 0, 0, &negotiate_body())?;
        if r.status != NtStatus::SUCCESS {
            return Err(std::io::Error::other(format!("negotiate: {}", r.status)));
        }
        Ok(c)
    }

    /// The MessageId the next [`Client::call`] uses.
    pub fn next_message_id(&self) -> u64 {
        self.requests.next_message_id()
    }

    /// Whether nothing more arrives within `wait` (no bytes, no close).
    pub fn is_silent(&mut self, wait: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut b = [0u8; 1];
        matches!(
            super::read_within(&mut self.stream, &mut b, wait),
            Err(e) if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        )
    }

    /// The underlying stream (for half-close and similar).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Connect and NEGOTIATE dialect 2.1.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let mut c = Client::connect_raw(addr)?;
        let r = c.call(Command::Negotiate, 0, 0, &negotiate_body())?;
        if r.status != NtStatus::SUCCESS {
            return Err(std::io::Error::other(format!("negotiate: {}", r.status)));
        }
        Ok(c)
    }

    /// Send one request and read its response.
    pub fn call<B: EmitBody>(
        &mut self,
        command: Command,
        session_id: u64,
        tree_id: u32,
        body: &B,
    ) -> std::io::Result<Resp> {
        let frame = self.requests.frame(command, session_id, tree_id, body);
        self.stream.write_all(&frame)?;
        self.read_response()
    }

    /// Send raw bytes (already framed or not: the caller decides).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Read one response frame.
    pub fn read_response(&mut self) -> std::io::Result<Resp> {
        loop {
            if let Ok(Some((payload, used))) = split_frame(&self.buf, 16 << 20) {
                let msg = self.buf[payload].to_vec();
                self.buf.drain(..used);
                let h = ResponseInfo::parse(&msg)
                    .map_err(|e| std::io::Error::other(format!("bad response header: {e:?}")))?;
                return Ok(Resp {
                    status: h.status,
                    session_id: h.session_id,
                    tree_id: h.tree_id,
                    msg,
                });
            }
            let mut tmp = [0u8; 65536];
            let n = match self.stream.read(&mut tmp) {
                // Not the peer: see [`super::read_within`].
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Whether the server closed the connection (EOF or reset) within `wait`.
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        super::closed_within(&mut self.stream, wait)
    }

    /// Log a session in; returns its id.
    pub fn login(&mut self, who: Login<'_>, workstation: &str) -> std::io::Result<u64> {
        self.setup(0, who, workstation)
    }

    /// SESSION_SETUP legs on session `sid` (0: a new session; otherwise a
    /// re-authentication, unsigned); returns the session id.
    pub fn setup(&mut self, sid: u64, who: Login<'_>, workstation: &str) -> std::io::Result<u64> {
        // 2.1 only: no preauth hash in effect, no signing key kept.
        let mut setup = SessionSetup::new(&who.auth(), workstation, PreauthHash::new());
        setup.set_session_id(sid);
        let tok = setup.initial_token();
        let r = self.call(Command::SessionSetup, sid, 0, &setup_request(&tok))?;
        if r.status != NtStatus::MORE_PROCESSING_REQUIRED {
            return Err(std::io::Error::other(format!("setup leg 1: {}", r.status)));
        }
        let tok = setup
            .challenge(&r.msg, [3; 8], [9; 16])
            .map_err(|e| std::io::Error::other(format!("{e}")))?;
        let sid = r.session_id;
        let r = self.call(Command::SessionSetup, sid, 0, &setup_request(&tok))?;
        if r.status != NtStatus::SUCCESS {
            return Err(std::io::Error::other(format!("setup leg 2: {}", r.status)));
        }
        Ok(sid)
    }

    /// TREE_CONNECT `\\127.0.0.1\share`; returns the tree id or the status.
    pub fn tree_connect(
        &mut self,
        sid: u64,
        share: &str,
    ) -> std::io::Result<Result<u32, NtStatus>> {
        let path = share_path("127.0.0.1", share);
        let r = self.call(
            Command::TreeConnect,
            sid,
            0,
            &TreeConnectRequestRepr {
                flags: 0,
                path: &path,
            },
        )?;
        Ok(if r.status == NtStatus::SUCCESS {
            Ok(r.tree_id)
        } else {
            Err(r.status)
        })
    }

    /// TREE_DISCONNECT.
    pub fn tree_disconnect(&mut self, sid: u64, tree: u32) -> std::io::Result<NtStatus> {
        Ok(self
            .call(Command::TreeDisconnect, sid, tree, &EmptyBody)?
            .status)
    }

    /// ECHO (with a session id, which must not count as activity).
    pub fn echo(&mut self, sid: u64) -> std::io::Result<NtStatus> {
        Ok(self.call(Command::Echo, sid, 0, &EmptyBody)?.status)
    }

    /// LOGOFF.
    pub fn logoff(&mut self, sid: u64) -> std::io::Result<NtStatus> {
        Ok(self.call(Command::Logoff, sid, 0, &EmptyBody)?.status)
    }

    /// A session-bound request that counts as activity (TREE_CONNECT to a
    /// share that does not exist: STATUS_BAD_NETWORK_NAME, session touched).
    pub fn poke(&mut self, sid: u64) -> std::io::Result<NtStatus> {
        Ok(match self.tree_connect(sid, "NOSUCHSHARE")? {
            Ok(_) => NtStatus::SUCCESS,
            Err(s) => s,
        })
    }
}
