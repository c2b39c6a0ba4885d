//! One client connection's state machine, as the load generator drives it.
//!
//! It does no I/O and reads no clock: the caller hands it whole SMB2 messages (frame payloads)
//! and sends the framed bytes it appends to an output buffer. The sequence is the one a
//! redirector follows to reach IPC$ (MS-SMB2 3.2.4.2):
//!
//! 1. NEGOTIATE (MS-SMB2 2.2.3 / 2.2.4; 3.1.1 with a preauth integrity context, 2.2.3.1.1),
//! 2. per session: SESSION_SETUP twice (MS-SMB2 2.2.5 / 2.2.6; SPNEGO + NTLMSSP, anonymous or
//!    a user, from smb-auth), then TREE_CONNECT `\\server\IPC$` (MS-SMB2 2.2.9 / 2.2.10),
//!    signed when the session has a key (MS-SMB2 3.2.4.1.1, 3.1.4.1),
//! 3. optionally CREATE of the `srvsvc` pipe (MS-SMB2 2.2.13), which keeps a probe session
//!    alive (a session with an open handle is not idle-reaped), and ECHO (MS-SMB2 2.2.28);
//! 4. for the churn scenario (smb-loadgen's churn scenario): WRITE and READ on the pipe (MS-SMB2 2.2.21,
//!    2.2.19), CLOSE of the pipe (MS-SMB2 2.2.15) and LOGOFF (MS-SMB2 2.2.7), after which
//!    another session may be set up on the same connection.
//!
//! During setup requests go one at a time on a connection (each waits for its response), so
//! one credit is always enough; the client still asks for more. The echo scenario
//! (smb-loadgen's echo scenario) then keeps several ECHOs in flight with [`ClientConn::echo_pipelined`],
//! which sends only while the server has granted credits: [`Credits`] keeps the client's side
//! of the MessageId window (MS-SMB2 3.2.4.1.5: a request with CreditCharge `c` takes the next
//! `c` MessageIds, 0 counting as 1; 3.2.5.1.4: every response, interim ones included, adds its
//! CreditResponse to the window).

use core::fmt;

use smb_auth::encryption::{
    open, seal, Cipher, CipherKey, NonceCounter, SessionCipher, TRANSFORM_HEADER_LEN,
    TRANSFORM_MAGIC,
};
use smb_auth::preauth::PreauthHash;
use smb_auth::signing::SigningKey;
use smb_auth::AuthError;
use smb_wire::header::{Command, HeaderRepr};
use smb_wire::msg::close::CloseRequestRepr;
use smb_wire::msg::create::CreateRequestRepr;
use smb_wire::msg::echo::EchoRequestRepr;
use smb_wire::msg::logoff::LogoffRequestRepr;
use smb_wire::msg::negotiate::dialect;
use smb_wire::msg::read::ReadRequestRepr;
use smb_wire::msg::session_setup::SessionSetupResponse;
use smb_wire::msg::tree_connect::TreeConnectRequestRepr;
use smb_wire::msg::write::WriteRequestRepr;
use smb_wire::msg::{parse_response, EmitBody, FileId, Response};
use smb_wire::transform::TransformHeader;
use smb_wire::{NtStatus, WireError};

use crate::credits::Credits;
use crate::negotiate::{Negotiated, Offer};
use crate::request::emit_request;
use crate::setup::{setup_request, Auth, SessionSetup};
use crate::utf16;

/// SMB2_SESSION_FLAG_ENCRYPT_DATA (MS-SMB2 2.2.6).
const SESSION_FLAG_ENCRYPT_DATA: u16 = 0x0004;

/// Encrypts the framed message at `msg` (its range in `out`, the 4-byte RFC 1002 header
/// right before it) into a TRANSFORM message in place (MS-SMB2 3.1.4.3, 2.2.41): 52 bytes
/// are inserted for the TRANSFORM header, the frame length grows by as much, and the
/// message is sealed with the session's next nonce. Returns the new range of the whole
/// TRANSFORM message.
fn seal_in_place(
    keys: &SessionCipher,
    nonces: &mut NonceCounter,
    session_id: u64,
    msg: core::ops::Range<usize>,
    out: &mut Vec<u8>,
) -> core::ops::Range<usize> {
    out.splice(msg.start..msg.start, [0u8; TRANSFORM_HEADER_LEN]);
    let end = msg.end + TRANSFORM_HEADER_LEN;
    let len = u32::try_from(end - msg.start).unwrap_or(u32::MAX);
    out[msg.start - 4..msg.start].copy_from_slice(&len.to_be_bytes());
    // A client sends far fewer than 2^64 requests per session; a spent counter would be a
    // bug, not a condition to recover from.
    let nonce = nonces.next_nonce().expect("nonce counter spent");
    seal(&keys.encrypt, &nonce, session_id, &mut out[msg.start..end]);
    msg.start..end
}

/// The dialects offered by default (every SMB2/3 dialect).
pub const ALL_DIALECTS: &[u16] = &[
    dialect::SMB202,
    dialect::SMB210,
    dialect::SMB300,
    dialect::SMB302,
    dialect::SMB311,
];

/// What every connection of a run shares.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Dialects to offer, ascending.
    pub dialects: Vec<u16>,
    /// The login.
    pub auth: Auth,
    /// `\\server\IPC$` as UTF-16LE.
    pub ipc_path: Vec<u8>,
    /// The workstation name the NTLM messages carry.
    pub workstation: String,
    /// Cipher ids to offer, preferred first (MS-SMB2 2.2.3.1.2; empty: encryption is not
    /// offered). See [`ClientConfig::with_encryption`].
    pub ciphers: Vec<u16>,
    /// Encrypt every request of a session once it is set up, whether or not the server asks
    /// for it (MS-SMB2 3.2.4.1.8); a session that cannot (no cipher negotiated, anonymous)
    /// fails with [`ClientError::NoEncryption`]. Without it a session still encrypts when
    /// the server sets SMB2_SESSION_FLAG_ENCRYPT_DATA and a cipher was negotiated.
    pub encrypt: bool,
}

impl ClientConfig {
    /// A configuration for `server` (the name or address put in the tree path).
    pub fn new(server: &str, dialects: Vec<u16>, auth: Auth) -> Self {
        ClientConfig {
            dialects,
            auth,
            ipc_path: utf16(&format!("\\\\{server}\\IPC$")),
            workstation: "SMB-CLIENT".into(),
            ciphers: Vec::new(),
            encrypt: false,
        }
    }

    /// The same offering `ciphers` (ids, preferred first) and, when `require`, encrypting
    /// every request after SESSION_SETUP (see [`ClientConfig::encrypt`]).
    pub fn with_encryption(mut self, ciphers: &[Cipher], require: bool) -> Self {
        self.ciphers = ciphers.iter().map(|c| c.id()).collect();
        self.encrypt = require;
        self
    }

    /// The same with `name` as the NTLM workstation name.
    pub fn with_workstation(mut self, name: &str) -> Self {
        self.workstation = name.into();
        self
    }
}

/// The request a connection is waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// NEGOTIATE.
    Negotiate,
    /// First SESSION_SETUP (NTLM NEGOTIATE in a SPNEGO NegTokenInit).
    SessionSetup1,
    /// Second SESSION_SETUP (NTLM AUTHENTICATE).
    SessionSetup2,
    /// TREE_CONNECT to IPC$.
    TreeConnect,
    /// CREATE of the srvsvc pipe (probes and churn).
    OpenPipe,
    /// ECHO (probes; the echo scenario sends them pipelined, see [`ClientConn::echo_pipelined`]).
    Echo,
    /// WRITE to the open pipe (churn).
    WritePipe,
    /// READ from the open pipe (churn).
    ReadPipe,
    /// CLOSE of the open pipe (churn).
    ClosePipe,
    /// LOGOFF of the last ready session (churn).
    Logoff,
}

impl Step {
    /// The command this step sends.
    pub fn command(self) -> Command {
        match self {
            Step::Negotiate => Command::Negotiate,
            Step::SessionSetup1 | Step::SessionSetup2 => Command::SessionSetup,
            Step::TreeConnect => Command::TreeConnect,
            Step::OpenPipe => Command::Create,
            Step::Echo => Command::Echo,
            Step::WritePipe => Command::Write,
            Step::ReadPipe => Command::Read,
            Step::ClosePipe => Command::Close,
            Step::Logoff => Command::Logoff,
        }
    }
}

/// A failure on one connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered a step with an error status.
    Status {
        /// The step.
        step: Step,
        /// The NTSTATUS.
        status: NtStatus,
    },
    /// A response could not be parsed.
    Wire(WireError),
    /// SPNEGO / NTLMSSP refused the server's token.
    Auth(String),
    /// A response that does not fit the state (wrong command, no request outstanding).
    Unexpected(&'static str),
    /// The server picked a dialect we did not offer.
    BadDialect(u16),
    /// Encryption was required ([`ClientConfig::encrypt`], or the server set
    /// SMB2_SESSION_FLAG_ENCRYPT_DATA) but the session has no cipher keys: no cipher was
    /// negotiated, or the session is anonymous.
    NoEncryption,
    /// A response in the clear for a session whose requests are encrypted.
    Unencrypted,
    /// A TRANSFORM message that does not open with the session's keys (bad tag,
    /// OriginalMessageSize that does not match, another SessionId; MS-SMB2 3.2.5.1.1.1).
    Decrypt,
}

impl ClientError {
    /// `true` for an authentication failure (bad password, anonymous refused).
    pub fn is_auth_failure(&self) -> bool {
        match self {
            ClientError::Status { step, status } => {
                matches!(step, Step::SessionSetup1 | Step::SessionSetup2)
                    || *status == NtStatus::ACCESS_DENIED
                    || *status == NtStatus::LOGON_FAILURE
            }
            ClientError::Auth(_) => true,
            _ => false,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Status { step, status } => write!(
                f,
                "{} failed with {status} (NTSTATUS 0x{:08X})",
                step.command().name(),
                status.0
            ),
            ClientError::Wire(e) => write!(f, "malformed response: {e}"),
            ClientError::Auth(e) => write!(f, "authentication: {e}"),
            ClientError::Unexpected(s) => write!(f, "unexpected response: {s}"),
            ClientError::BadDialect(d) => write!(f, "server chose dialect 0x{d:04X}, not offered"),
            ClientError::NoEncryption => f.write_str(
                "encryption required but the session has no cipher (none negotiated, or anonymous)",
            ),
            ClientError::Unencrypted => {
                f.write_str("a response in the clear on a session that encrypts")
            }
            ClientError::Decrypt => f.write_str("an encrypted response did not decrypt"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        ClientError::Wire(e)
    }
}

impl From<AuthError> for ClientError {
    fn from(e: AuthError) -> Self {
        ClientError::Auth(e.to_string())
    }
}

/// What a response meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `step` completed and the next request (`next`) has been appended to the output.
    Continue {
        /// The step that completed.
        step: Step,
        /// The request now outstanding.
        next: Step,
    },
    /// NEGOTIATE completed with this dialect; nothing is outstanding.
    Negotiated {
        /// The dialect.
        dialect: u16,
    },
    /// A session reached IPC$: its TREE_CONNECT response arrived. Nothing is outstanding.
    SessionReady {
        /// SessionId.
        session_id: u64,
        /// TreeId.
        tree_id: u32,
    },
    /// The srvsvc pipe is open (probe ready). Nothing is outstanding.
    PipeOpen,
    /// An ECHO response arrived. Nothing is outstanding.
    EchoDone,
    /// The response to a pipelined ECHO ([`ClientConn::echo_pipelined`]) arrived (possibly
    /// an error: see `status`).
    EchoAnswered {
        /// Its MessageId.
        message_id: u64,
        /// Its NTSTATUS (SUCCESS, or what the server refused it with).
        status: NtStatus,
    },
    /// The pipe took a WRITE. Nothing is outstanding.
    PipeWritten,
    /// A READ of the pipe returned data, now in [`ClientConn::pipe_data`]. Nothing is
    /// outstanding.
    PipeRead,
    /// The pipe is closed. Nothing is outstanding.
    PipeClosed,
    /// The last ready session is logged off; another may be set up on this connection.
    /// Nothing is outstanding.
    LoggedOff,
    /// The server says a session is gone: SERVER_TO_CLIENT_NOTIFICATION (MS-SMB2 2.2.44.1).
    SessionClosed {
        /// SessionId.
        session_id: u64,
    },
    /// A message that needs nothing (an interim STATUS_PENDING response).
    Nothing,
}

/// One client connection's protocol state.
#[derive(Debug)]
pub struct ClientConn {
    credits: Credits,
    /// CreditRequest of every request.
    credit_request: u16,
    outstanding: Option<Step>,
    /// MessageId of the outstanding step.
    outstanding_mid: u64,
    /// MessageIds of the pipelined ECHOs in flight, oldest first.
    echoes: std::collections::VecDeque<u64>,
    /// What NEGOTIATE offered, then what it settled.
    offer: Option<Offer>,
    negotiated: Option<Negotiated>,
    conn_preauth: PreauthHash,
    setup: Option<SessionSetup>,
    /// Last session ready on this connection: id, tree, signing key.
    last: Option<(u64, u32, Option<SigningKey>)>,
    /// The pipe opened on the last ready session.
    pipe: Option<FileId>,
    /// Data of the last READ of the pipe.
    pipe_data: Vec<u8>,
    /// The last ready session's encryption keys and its nonce counter, when its requests are
    /// encrypted (MS-SMB2 3.2.4.1.8).
    enc: Option<(SessionCipher, NonceCounter)>,
    /// Earlier sessions of this connection that encrypt and were not logged off, with their
    /// keys: the server may still send one of them a sealed SERVER_TO_CLIENT_NOTIFICATION
    /// (MS-SMB2 3.3.4.1.4) when it reaps it. Dropped with the notification.
    earlier: Vec<(u64, SessionCipher)>,
    /// Where a TRANSFORM response is decrypted (reused).
    scratch: Vec<u8>,
}

/// The server-to-client keys of a connection's encrypting sessions ([`ClientConn::opener`]).
#[derive(Debug, Clone, Default)]
pub struct SessionOpener {
    keys: Vec<(u64, CipherKey)>,
    buf: Vec<u8>,
}

impl SessionOpener {
    /// The plaintext of the TRANSFORM message `msg` (MS-SMB2 3.2.5.1.1.1), when it names one
    /// of the sessions and decrypts with its key; `None` otherwise.
    pub fn open(&mut self, msg: &[u8]) -> Option<&[u8]> {
        let sid = TransformHeader::parse(msg).ok()?.session_id();
        let key = &self.keys.iter().find(|k| k.0 == sid)?.1;
        self.buf.clear();
        self.buf.extend_from_slice(msg);
        open(key, &mut self.buf).ok()?;
        Some(&self.buf[TRANSFORM_HEADER_LEN..])
    }
}

impl Default for ClientConn {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientConn {
    /// A connection that has sent nothing yet.
    pub fn new() -> Self {
        ClientConn {
            credits: Credits::new(),
            credit_request: 16,
            outstanding: None,
            outstanding_mid: 0,
            echoes: std::collections::VecDeque::new(),
            offer: None,
            negotiated: None,
            conn_preauth: PreauthHash::new(),
            setup: None,
            last: None,
            pipe: None,
            pipe_data: Vec::new(),
            enc: None,
            earlier: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The cipher the last ready session encrypts with, if it does.
    pub fn encryption(&self) -> Option<Cipher> {
        self.enc.as_ref().map(|e| e.0.cipher())
    }

    /// What opens the messages the server seals for this connection's encrypting sessions
    /// (the last one and the earlier ones not logged off), for a reader that takes the
    /// connection over after setup (e.g. to wait for SmbNotifySessionClosed).
    pub fn opener(&self) -> SessionOpener {
        let mut keys: Vec<(u64, CipherKey)> = self
            .earlier
            .iter()
            .map(|(sid, k)| (*sid, k.decrypt.clone()))
            .collect();
        if let (Some((k, _)), Some(last)) = (self.enc.as_ref(), self.last.as_ref()) {
            keys.push((last.0, k.decrypt.clone()));
        }
        SessionOpener {
            keys,
            buf: Vec::new(),
        }
    }

    /// The negotiated dialect (0 before NEGOTIATE completes).
    pub fn dialect(&self) -> u16 {
        self.negotiated.map_or(0, |n| n.dialect)
    }

    /// The last session that reached IPC$ on this connection (SessionId, TreeId), until its
    /// LOGOFF.
    pub fn session(&self) -> Option<(u64, u32)> {
        self.last.as_ref().map(|l| (l.0, l.1))
    }

    /// The request outstanding, if any.
    pub fn outstanding(&self) -> Option<Step> {
        self.outstanding
    }

    /// The credit window.
    pub fn credits(&self) -> &Credits {
        &self.credits
    }

    /// Sets the CreditRequest of every later request (default 16; at least 1).
    pub fn set_credit_request(&mut self, n: u16) {
        self.credit_request = n.max(1);
    }

    /// Pipelined ECHOs in flight.
    pub fn echoes_in_flight(&self) -> usize {
        self.echoes.len()
    }

    /// The data of the last READ of the pipe ([`Event::PipeRead`]).
    pub fn pipe_data(&self) -> &[u8] {
        &self.pipe_data
    }

    /// Builds one request with MessageId `mid`, signs it with `key`, and appends it framed
    /// to `out`. Returns the range of the message (without framing) in `out`.
    #[allow(clippy::too_many_arguments)]
    fn emit<B: EmitBody>(
        &mut self,
        step: Step,
        mid: u64,
        charge: u16,
        session_id: u64,
        tree_id: u32,
        body: &B,
        key: Option<&SigningKey>,
        out: &mut Vec<u8>,
    ) -> core::ops::Range<usize> {
        let mut hdr = HeaderRepr::request(step.command(), mid, session_id, tree_id);
        hdr.credit = self.credit_request;
        hdr.credit_charge = charge;
        match self.enc.as_mut() {
            Some((keys, nonces))
                if session_id != 0
                    && !matches!(step, Step::SessionSetup1 | Step::SessionSetup2) =>
            {
                // MS-SMB2 3.2.4.1.8: an encrypted request is not signed; the AEAD tag
                // covers it. The keys are the last session's: a new session's SESSION_SETUP
                // (a second one on this connection) goes in the clear, it has no keys yet.
                let r = emit_request(&hdr, body, None, out);
                seal_in_place(keys, nonces, session_id, r, out)
            }
            _ => emit_request(&hdr, body, key, out),
        }
    }

    /// The CreditCharge of a request for `step`: 0 before a dialect is negotiated and in
    /// 2.0.2 (which has no CreditCharge), else 1 (every request here is small).
    fn charge(&self, step: Step) -> u16 {
        let d = self.dialect();
        if d == dialect::SMB202 || step == Step::Negotiate || d == 0 {
            0
        } else {
            1
        }
    }

    /// Builds the one outstanding request of a setup step (see [`Self::emit`]).
    fn push<B: EmitBody>(
        &mut self,
        step: Step,
        session_id: u64,
        tree_id: u32,
        body: &B,
        key: Option<&SigningKey>,
        out: &mut Vec<u8>,
    ) -> core::ops::Range<usize> {
        let charge = self.charge(step);
        let mid = self.credits.take_anyway(charge);
        let r = self.emit(step, mid, charge, session_id, tree_id, body, key, out);
        self.outstanding = Some(step);
        self.outstanding_mid = mid;
        r
    }

    /// Appends the NEGOTIATE request offering `cfg.dialects` (MS-SMB2 2.2.3; with a
    /// random preauth salt when 3.1.1 is offered).
    pub fn negotiate(&mut self, cfg: &ClientConfig, client_guid: [u8; 16], out: &mut Vec<u8>) {
        let salt = smb_auth::random_bytes::<32>().unwrap_or([0x5A; 32]);
        let mut offer = Offer::new(&cfg.dialects, client_guid, salt);
        offer.ciphers = cfg.ciphers.clone();
        let r = self.push(Step::Negotiate, 0, 0, &offer, None, out);
        self.conn_preauth.update(&out[r]);
        self.offer = Some(offer);
    }

    /// Appends the first SESSION_SETUP of a new session (MS-SMB2 2.2.5).
    pub fn begin_session(&mut self, cfg: &ClientConfig, out: &mut Vec<u8>) {
        let mut setup = SessionSetup::new(&cfg.auth, &cfg.workstation, self.conn_preauth);
        let tok = setup.initial_token();
        let r = self.push(Step::SessionSetup1, 0, 0, &setup_request(&tok), None, out);
        setup.sent(&out[r]);
        self.setup = Some(setup);
    }

    /// Appends an ECHO (on the last ready session's connection; ECHO carries no activity).
    pub fn echo(&mut self, out: &mut Vec<u8>) {
        let sid = self.last.as_ref().map_or(0, |l| l.0);
        self.push(Step::Echo, sid, 0, &EchoRequestRepr::default(), None, out);
    }

    /// Appends an ECHO that does not wait for the ones before it, on the last ready session's
    /// connection, if the server has granted a credit for it and no setup step is outstanding.
    /// Returns its MessageId, or `None` (nothing appended) when it must wait for a response.
    /// Its response is [`Event::EchoAnswered`].
    pub fn echo_pipelined(&mut self, out: &mut Vec<u8>) -> Option<u64> {
        if self.outstanding.is_some() {
            return None;
        }
        let charge = self.charge(Step::Echo);
        let mid = self.credits.take(charge)?;
        let sid = self.last.as_ref().map_or(0, |l| l.0);
        self.emit(
            Step::Echo,
            mid,
            charge,
            sid,
            0,
            &EchoRequestRepr::default(),
            None,
            out,
        );
        self.echoes.push_back(mid);
        Some(mid)
    }

    /// Appends a CREATE of `srvsvc` on the last ready session's IPC$ tree.
    pub fn open_pipe(&mut self, out: &mut Vec<u8>) {
        let (sid, tid, key) = self.last.clone().unwrap_or((0, 0, None));
        let name = utf16("srvsvc");
        let body = CreateRequestRepr {
            security_flags: 0,
            requested_oplock_level: 0,
            impersonation_level: 2,
            smb_create_flags: 0,
            desired_access: 0x0012_019F,
            file_attributes: 0,
            share_access: 0x3,
            create_disposition: 1,
            create_options: 0,
            name: &name,
            contexts: &[],
        };
        self.push(Step::OpenPipe, sid, tid, &body, key.as_ref(), out);
    }

    /// Appends a WRITE of `data` to the open pipe (a DCE/RPC PDU for srvsvc).
    pub fn write_pipe(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let (sid, tid, key) = self.last.clone().unwrap_or((0, 0, None));
        let body = WriteRequestRepr {
            file_id: self.pipe.unwrap_or_default(),
            data,
            ..Default::default()
        };
        self.push(Step::WritePipe, sid, tid, &body, key.as_ref(), out);
    }

    /// Appends a READ of at most `length` bytes from the open pipe.
    pub fn read_pipe(&mut self, length: u32, out: &mut Vec<u8>) {
        let (sid, tid, key) = self.last.clone().unwrap_or((0, 0, None));
        let body = ReadRequestRepr {
            padding: 0x50,
            length,
            file_id: self.pipe.unwrap_or_default(),
            ..Default::default()
        };
        self.push(Step::ReadPipe, sid, tid, &body, key.as_ref(), out);
    }

    /// Appends a CLOSE of the open pipe.
    pub fn close_pipe(&mut self, out: &mut Vec<u8>) {
        let (sid, tid, key) = self.last.clone().unwrap_or((0, 0, None));
        let body = CloseRequestRepr {
            flags: 0,
            file_id: self.pipe.unwrap_or_default(),
        };
        self.push(Step::ClosePipe, sid, tid, &body, key.as_ref(), out);
    }

    /// Appends a LOGOFF of the last ready session.
    pub fn logoff(&mut self, out: &mut Vec<u8>) {
        let (sid, _, key) = self.last.clone().unwrap_or((0, 0, None));
        let body = LogoffRequestRepr::default();
        self.push(Step::Logoff, sid, 0, &body, key.as_ref(), out);
    }

    /// Handles one SMB2 message (a frame payload). Requests that follow are appended to `out`.
    pub fn handle(
        &mut self,
        msg: &[u8],
        cfg: &ClientConfig,
        out: &mut Vec<u8>,
    ) -> Result<Event, ClientError> {
        if !msg.starts_with(&TRANSFORM_MAGIC) {
            return self.handle_plain(msg, false, cfg, out);
        }
        // MS-SMB2 3.2.5.1.1.1: a TRANSFORM is opened with the keys of the session it names
        // (the connection's last session, or an earlier one the server tells it closed),
        // into a reused buffer.
        let t = TransformHeader::parse(msg).map_err(|_| ClientError::Decrypt)?;
        let sid = t.session_id();
        let keys = match self.enc.as_ref() {
            Some((keys, _)) if Some(sid) == self.last.as_ref().map(|l| l.0) => keys,
            _ => match self.earlier.iter().find(|e| e.0 == sid) {
                Some((_, keys)) => keys,
                None => return Err(ClientError::Decrypt),
            },
        };
        let mut buf = core::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(msg);
        let r = match open(&keys.decrypt, &mut buf) {
            Ok(_) => self.handle_plain(&buf[TRANSFORM_HEADER_LEN..], true, cfg, out),
            Err(_) => Err(ClientError::Decrypt),
        };
        if let Ok(Event::SessionClosed { session_id }) = r {
            self.earlier.retain(|e| e.0 != session_id);
        }
        self.scratch = buf;
        r
    }

    /// [`ClientConn::handle`] for a message in the clear or just decrypted (`sealed`).
    fn handle_plain(
        &mut self,
        msg: &[u8],
        sealed: bool,
        cfg: &ClientConfig,
        out: &mut Vec<u8>,
    ) -> Result<Event, ClientError> {
        let (h, resp) = parse_response(msg)?;
        // A response in the clear for the session that encrypts is refused: a server that
        // encrypts (MS-SMB2 3.3.4.1.4) seals every response of such a session, and a load
        // generator measuring encryption must not fall back to plaintext unnoticed.
        if !sealed && self.enc.is_some() && Some(h.session_id()) == self.last.as_ref().map(|l| l.0)
        {
            return Err(ClientError::Unencrypted);
        }
        // Every response grants credits, an interim one included (MS-SMB2 3.2.5.1.4).
        if h.is_response() {
            self.credits.grant(h.credit());
        }
        if let Response::Notification(_) = resp {
            return Ok(Event::SessionClosed {
                session_id: h.session_id(),
            });
        }
        if h.is_async() && h.status() == NtStatus::PENDING {
            return Ok(Event::Nothing);
        }
        if h.command() == Command::Echo {
            if let Some(i) = self.echoes.iter().position(|&m| m == h.message_id()) {
                self.echoes.remove(i);
                let status = h.status();
                if status == NtStatus::SUCCESS && !matches!(resp, Response::Echo(_)) {
                    return Err(ClientError::Unexpected("response of the wrong kind"));
                }
                return Ok(Event::EchoAnswered {
                    message_id: h.message_id(),
                    status,
                });
            }
        }
        let Some(step) = self.outstanding else {
            return Err(ClientError::Unexpected(
                "a response with no request outstanding",
            ));
        };
        if h.command() != step.command() || h.message_id() != self.outstanding_mid {
            return Err(ClientError::Unexpected("response to another request"));
        }
        self.outstanding = None;
        let status = h.status();
        match (step, resp) {
            (Step::Negotiate, Response::Negotiate(_)) => {
                let offer = self
                    .offer
                    .as_ref()
                    .ok_or(ClientError::Unexpected("no offer"))?;
                let n = offer.accept(msg)?;
                self.negotiated = Some(n);
                self.conn_preauth.update(msg);
                Ok(Event::Negotiated { dialect: n.dialect })
            }
            (Step::SessionSetup1, Response::SessionSetup(_))
                if status == NtStatus::MORE_PROCESSING_REQUIRED =>
            {
                let setup = self
                    .setup
                    .as_mut()
                    .ok_or(ClientError::Unexpected("no setup"))?;
                let cc = smb_auth::random_bytes::<8>()?;
                let key = smb_auth::random_bytes::<16>()?;
                let tok = setup.challenge(msg, cc, key)?;
                let sid = setup.session_id();
                let r = self.push(Step::SessionSetup2, sid, 0, &setup_request(&tok), None, out);
                if let Some(s) = self.setup.as_mut() {
                    s.sent(&out[r]);
                }
                Ok(Event::Continue {
                    step,
                    next: Step::SessionSetup2,
                })
            }
            // Kerberos finishes on the first leg.
            (Step::SessionSetup1 | Step::SessionSetup2, Response::SessionSetup(_))
                if status == NtStatus::SUCCESS =>
            {
                let mut setup = self
                    .setup
                    .take()
                    .ok_or(ClientError::Unexpected("no setup"))?;
                let negotiated = self
                    .negotiated
                    .ok_or(ClientError::Unexpected("no dialect"))?;
                let key = setup.finish(msg, &negotiated)?;
                let sid = setup.session_id();
                // MS-SMB2 3.2.5.3.1: the session encrypts when the server sets
                // SMB2_SESSION_FLAG_ENCRYPT_DATA; this client also does when told to.
                let asked = SessionSetupResponse::parse(msg)?.session_flags()
                    & SESSION_FLAG_ENCRYPT_DATA
                    != 0;
                // A new session on this connection: the last one's keys stay for a sealed
                // notification that it was closed.
                if let (Some((keys, _)), Some(last)) = (self.enc.take(), self.last.as_ref()) {
                    if last.0 != sid {
                        self.earlier.push((last.0, keys));
                    }
                }
                if cfg.encrypt || asked {
                    let keys = setup
                        .encryption(&negotiated)
                        .ok_or(ClientError::NoEncryption)?;
                    self.enc = Some((keys, NonceCounter::default()));
                }
                let path = cfg.ipc_path.clone();
                self.push(
                    Step::TreeConnect,
                    sid,
                    0,
                    &TreeConnectRequestRepr {
                        flags: 0,
                        path: &path,
                    },
                    key.as_ref(),
                    out,
                );
                self.last = Some((sid, 0, key));
                Ok(Event::Continue {
                    step,
                    next: Step::TreeConnect,
                })
            }
            (Step::TreeConnect, Response::TreeConnect(_)) => {
                let tid = h.tree_id().unwrap_or(0);
                let sid = h.session_id();
                if let Some(l) = self.last.as_mut() {
                    l.1 = tid;
                }
                Ok(Event::SessionReady {
                    session_id: sid,
                    tree_id: tid,
                })
            }
            (Step::OpenPipe, Response::Create(c)) => {
                self.pipe = Some(c.file_id());
                Ok(Event::PipeOpen)
            }
            (Step::Echo, Response::Echo(_)) => Ok(Event::EchoDone),
            (Step::WritePipe, Response::Write(_)) => Ok(Event::PipeWritten),
            (Step::ReadPipe, Response::Read(r)) => {
                self.pipe_data.clear();
                self.pipe_data.extend_from_slice(r.data());
                Ok(Event::PipeRead)
            }
            (Step::ClosePipe, Response::Close(_)) => {
                self.pipe = None;
                Ok(Event::PipeClosed)
            }
            (Step::Logoff, Response::Logoff(_)) => {
                self.last = None;
                self.pipe = None;
                self.enc = None;
                Ok(Event::LoggedOff)
            }
            (step, _) if status != NtStatus::SUCCESS => Err(ClientError::Status { step, status }),
            _ => Err(ClientError::Unexpected("response of the wrong kind")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smb_wire::frame::split_frame;
    use smb_wire::header::flags;
    use smb_wire::msg::emit_message;
    use smb_wire::msg::negotiate::NegotiateResponseRepr;
    use smb_wire::msg::{parse_request, Request};

    fn cfg(dialects: &[u16]) -> ClientConfig {
        ClientConfig::new("127.0.0.1", dialects.to_vec(), Auth::Anonymous)
    }

    fn only_message(out: &[u8]) -> &[u8] {
        let (range, used) = split_frame(out, 1 << 20).unwrap().unwrap();
        assert_eq!(used, out.len(), "exactly one frame");
        &out[range]
    }

    fn negotiate_response(mid: u64, dialect: u16) -> Vec<u8> {
        let mut h = HeaderRepr::request(Command::Negotiate, mid, 0, 0);
        h.flags |= flags::SERVER_TO_REDIR;
        let mut out = Vec::new();
        emit_message(
            &h,
            &NegotiateResponseRepr {
                security_mode: 1,
                dialect_revision: dialect,
                server_guid: [1; 16],
                capabilities: 0,
                max_transact_size: 65536,
                max_read_size: 65536,
                max_write_size: 65536,
                system_time: 0,
                server_start_time: 0,
                security_buffer: &[],
                contexts: &[],
            },
            &mut out,
        );
        out
    }

    #[test]
    fn negotiate_offers_the_dialects_and_a_preauth_context_for_311() {
        let c = cfg(ALL_DIALECTS);
        let mut conn = ClientConn::new();
        let mut out = Vec::new();
        conn.negotiate(&c, [9; 16], &mut out);
        let (h, req) = parse_request(only_message(&out)).unwrap();
        assert_eq!(h.message_id(), 0);
        let Request::Negotiate(n) = req else {
            panic!("not a NEGOTIATE")
        };
        assert_eq!(n.dialects().iter().collect::<Vec<_>>(), ALL_DIALECTS);
        assert_eq!(n.client_guid(), [9; 16]);
        assert_eq!(n.context_count(), 1);
        assert_eq!(conn.outstanding(), Some(Step::Negotiate));

        let c = cfg(&[dialect::SMB210]);
        let mut out = Vec::new();
        ClientConn::new().negotiate(&c, [9; 16], &mut out);
        let (_, Request::Negotiate(n)) = parse_request(only_message(&out)).unwrap() else {
            panic!("not a NEGOTIATE")
        };
        assert_eq!(n.context_count(), 0);
    }

    #[test]
    fn negotiate_then_session_setup_with_increasing_message_ids() {
        let c = cfg(&[dialect::SMB202, dialect::SMB210]);
        let mut conn = ClientConn::new();
        let mut out = Vec::new();
        conn.negotiate(&c, [0; 16], &mut out);
        out.clear();
        let ev = conn
            .handle(&negotiate_response(0, dialect::SMB210), &c, &mut out)
            .unwrap();
        assert_eq!(
            ev,
            Event::Negotiated {
                dialect: dialect::SMB210
            }
        );
        assert_eq!(conn.dialect(), dialect::SMB210);
        assert!(out.is_empty());
        conn.begin_session(&c, &mut out);
        let (h, req) = parse_request(only_message(&out)).unwrap();
        assert_eq!(h.message_id(), 1);
        assert!(matches!(req, Request::SessionSetup(_)));
        assert_eq!(conn.outstanding(), Some(Step::SessionSetup1));
    }

    /// A response to the request `out` holds (one frame), with `body`.
    fn respond<B: EmitBody>(out: &[u8], body: &B) -> Vec<u8> {
        let (h, _) = parse_request(only_message(out)).unwrap();
        let mut r = HeaderRepr::request(h.command(), h.message_id(), h.session_id(), 0);
        r.flags |= flags::SERVER_TO_REDIR;
        let mut msg = Vec::new();
        emit_message(&r, body, &mut msg);
        msg
    }

    #[test]
    fn pipe_write_read_close_and_logoff() {
        use smb_wire::msg::close::CloseResponseRepr;
        use smb_wire::msg::create::CreateResponseRepr;
        use smb_wire::msg::logoff::LogoffResponseRepr;
        use smb_wire::msg::read::ReadResponseRepr;
        use smb_wire::msg::write::WriteResponseRepr;

        let c = cfg(&[dialect::SMB210]);
        let mut conn = ClientConn::new();
        let fid = FileId {
            persistent: 7,
            volatile: 0x1234,
        };
        let mut out = Vec::new();
        conn.open_pipe(&mut out);
        let resp = respond(
            &out,
            &CreateResponseRepr {
                file_id: fid,
                ..Default::default()
            },
        );
        out.clear();
        assert_eq!(conn.handle(&resp, &c, &mut out), Ok(Event::PipeOpen));

        conn.write_pipe(b"bind pdu", &mut out);
        let Request::Write(w) = parse_request(only_message(&out)).unwrap().1 else {
            panic!("not a WRITE")
        };
        assert_eq!((w.file_id(), w.data()), (fid, &b"bind pdu"[..]));
        let resp = respond(
            &out,
            &WriteResponseRepr {
                count: 8,
                remaining: 0,
            },
        );
        out.clear();
        assert_eq!(conn.handle(&resp, &c, &mut out), Ok(Event::PipeWritten));

        conn.read_pipe(4280, &mut out);
        let Request::Read(r) = parse_request(only_message(&out)).unwrap().1 else {
            panic!("not a READ")
        };
        assert_eq!((r.file_id(), r.length()), (fid, 4280));
        let resp = respond(
            &out,
            &ReadResponseRepr {
                data: b"bind_ack",
                ..Default::default()
            },
        );
        out.clear();
        assert_eq!(conn.handle(&resp, &c, &mut out), Ok(Event::PipeRead));
        assert_eq!(conn.pipe_data(), b"bind_ack");

        conn.close_pipe(&mut out);
        let Request::Close(cl) = parse_request(only_message(&out)).unwrap().1 else {
            panic!("not a CLOSE")
        };
        assert_eq!(cl.file_id(), fid);
        let resp = respond(&out, &CloseResponseRepr::default());
        out.clear();
        assert_eq!(conn.handle(&resp, &c, &mut out), Ok(Event::PipeClosed));

        conn.logoff(&mut out);
        assert_eq!(conn.outstanding(), Some(Step::Logoff));
        let resp = respond(&out, &LogoffResponseRepr::default());
        out.clear();
        assert_eq!(conn.handle(&resp, &c, &mut out), Ok(Event::LoggedOff));
        assert_eq!(conn.outstanding(), None);
        assert!(out.is_empty());
    }

    /// An ECHO response to `mid` granting `credits`, with `status`.
    fn echo_response(mid: u64, credits: u16, status: NtStatus) -> Vec<u8> {
        use smb_wire::msg::echo::EchoResponseRepr;
        use smb_wire::msg::error::ErrorResponseRepr;
        let mut h = HeaderRepr::request(Command::Echo, mid, 0, 0);
        h.flags |= flags::SERVER_TO_REDIR;
        h.credit = credits;
        h.status = status;
        let mut out = Vec::new();
        if status == NtStatus::SUCCESS {
            emit_message(&h, &EchoResponseRepr::default(), &mut out);
        } else {
            emit_message(&h, &ErrorResponseRepr::EMPTY, &mut out);
        }
        out
    }

    #[test]
    fn pipelined_echoes_wait_for_credits_and_match_by_message_id() {
        let c = cfg(&[dialect::SMB210]);
        let mut conn = ClientConn::new();
        conn.set_credit_request(64);
        let mut out = Vec::new();
        conn.negotiate(&c, [0; 16], &mut out);
        // Nothing pipelined while a setup step is outstanding.
        assert_eq!(conn.echo_pipelined(&mut out), None);
        out.clear();
        // The NEGOTIATE response grants 1 credit.
        let ev = conn.handle(&negotiate_response(0, dialect::SMB210), &c, &mut out);
        assert!(matches!(ev, Ok(Event::Negotiated { .. })));
        assert_eq!(conn.credits().available(), 1);
        assert_eq!(conn.echo_pipelined(&mut out), Some(1));
        assert_eq!(conn.echo_pipelined(&mut out), None, "no credit left");
        let (h, req) = parse_request(only_message(&out)).unwrap();
        assert!(matches!(req, Request::Echo(_)));
        assert_eq!((h.message_id(), h.credit(), h.credit_charge()), (1, 64, 1));
        out.clear();
        // Its response grants 3: three more go out, with the next MessageIds.
        let ev = conn.handle(&echo_response(1, 3, NtStatus::SUCCESS), &c, &mut out);
        assert_eq!(
            ev,
            Ok(Event::EchoAnswered {
                message_id: 1,
                status: NtStatus::SUCCESS
            })
        );
        let mids: Vec<_> = (0..4).map(|_| conn.echo_pipelined(&mut out)).collect();
        assert_eq!(mids, vec![Some(2), Some(3), Some(4), None]);
        assert_eq!(conn.echoes_in_flight(), 3);
        // Answers may come in any order; an error status is reported with its id.
        let ev = conn.handle(&echo_response(3, 1, NtStatus::SUCCESS), &c, &mut out);
        assert!(matches!(ev, Ok(Event::EchoAnswered { message_id: 3, .. })));
        let ev = conn.handle(&echo_response(2, 1, NtStatus::ACCESS_DENIED), &c, &mut out);
        assert_eq!(
            ev,
            Ok(Event::EchoAnswered {
                message_id: 2,
                status: NtStatus::ACCESS_DENIED
            })
        );
        assert_eq!(conn.credits().available(), 2);
        // An answer to an ECHO never sent (or answered twice) is an error.
        assert!(conn
            .handle(&echo_response(3, 1, NtStatus::SUCCESS), &c, &mut out)
            .is_err());
        assert_eq!(conn.echoes_in_flight(), 1);
    }

    #[test]
    fn wrong_responses_are_typed_errors() {
        let c = cfg(&[dialect::SMB210]);
        let mut conn = ClientConn::new();
        let mut out = Vec::new();
        // Nothing outstanding.
        assert!(matches!(
            conn.handle(&negotiate_response(0, dialect::SMB210), &c, &mut out),
            Err(ClientError::Unexpected(_))
        ));
        conn.negotiate(&c, [0; 16], &mut out);
        // A dialect we did not offer.
        assert_eq!(
            conn.handle(&negotiate_response(0, dialect::SMB311), &c, &mut out),
            Err(ClientError::BadDialect(dialect::SMB311))
        );
        // Garbage.
        let mut conn = ClientConn::new();
        conn.negotiate(&c, [0; 16], &mut out);
        assert!(matches!(
            conn.handle(&[0xFE, b'S', b'M'], &c, &mut out),
            Err(ClientError::Wire(_))
        ));
        // An error status names the step and the NTSTATUS.
        let e = ClientError::Status {
            step: Step::SessionSetup2,
            status: NtStatus::LOGON_FAILURE,
        };
        assert!(e.is_auth_failure());
        assert!(e.to_string().contains("0xC000006D"), "{e}");
    }
}
