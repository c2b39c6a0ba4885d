//! One open named-pipe instance carrying connection-oriented DCE/RPC
//! (MS-RPCE 2.1.1.2 `ncacn_np`, C706 chapter 12): the server half of an
//! association, fed with the bytes of SMB2 WRITE / FSCTL_PIPE_TRANSCEIVE and
//! drained by SMB2 READ.
//!
//! The pipe is in message mode for reads: each queued PDU is one message; a
//! read returns at most one message and reports `more` when the reader's
//! buffer was too small (SMB2 maps this to STATUS_BUFFER_OVERFLOW). Writes
//! are treated as a byte stream and cut at `frag_length`, so a PDU may arrive
//! in several writes and one write may hold several PDUs.
//!
//! Error policy (modelled on Samba's `dcesrv_fault_disconnect`):
//! - call-level problems (unknown context, unknown opnum, undecodable stub,
//!   unsupported transfer syntax or data representation in a bind) are
//!   answered on the wire with a fault or bind_nak and the pipe lives on;
//! - stream-level problems (bad version, impossible `frag_length`, fragment
//!   sequence errors, a request over the size limit, PDU types a client never
//!   sends) make [`RpcPipe::write`] return [`PipeError::Protocol`] and break
//!   the pipe; a fault may have been queued first and can still be read.
//!
//! Memory is bounded by [`PipeLimits`]: the partial-PDU buffer never exceeds one
//! fragment (at most 64 KiB), reassembly is capped at `max_request_stub`, and
//! no new request is processed while `max_queued_output` bytes wait unread.

use std::collections::VecDeque;
use std::fmt;

use crate::ndr::{Syntax, NDR20_UUID, NDR20_VERSION, NDR64_UUID, NDR64_VERSION};
use crate::pdu::{
    self, encode_bind_nak, encode_response, nak_reason, reason, result, status, Bind, BindAck,
    ContextResult, Fault, Header, PType, PduError, Request, SyntaxId, HEADER_LEN,
    MUST_RECV_FRAG_SIZE, PFC_FIRST_FRAG, PFC_LAST_FRAG,
};
use crate::srvsvc::{self, SrvsvcBackend, SRVSVC_UUID, SRVSVC_VERSION};

/// The RPC interface served on a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interface {
    /// MS-SRVS on `\PIPE\srvsvc`.
    Srvsvc,
}

impl Interface {
    /// The pipe's secondary address as sent in bind_ack.
    pub fn sec_addr(self) -> &'static str {
        match self {
            Interface::Srvsvc => "\\PIPE\\srvsvc",
        }
    }

    /// The abstract syntax (interface UUID and `major | minor << 16`).
    pub fn syntax_id(self) -> SyntaxId {
        match self {
            Interface::Srvsvc => SyntaxId {
                uuid: SRVSVC_UUID,
                version: SRVSVC_VERSION,
            },
        }
    }
}

/// Resource limits of one pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeLimits {
    /// Largest reassembled request stub (larger: fault access denied, pipe broken, as Samba).
    pub max_request_stub: usize,
    /// Unread output above which new writes are refused with [`PipeError::OutputFull`];
    /// a single response that would exceed it is replaced by a fault.
    pub max_queued_output: usize,
    /// The largest fragment this server sends or announces (bind_ack max_xmit/max_recv).
    pub max_frag: u16,
}

impl Default for PipeLimits {
    fn default() -> PipeLimits {
        PipeLimits {
            max_request_stub: 256 * 1024,
            max_queued_output: 16 * 1024 * 1024,
            max_frag: 4280,
        }
    }
}

/// Result of [`RpcPipe::read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes were appended; `more` when the current message did not fit (STATUS_BUFFER_OVERFLOW).
    Data {
        /// The rest of the message is waiting.
        more: bool,
    },
    /// Nothing to read.
    Empty,
}

/// A pipe-level failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipeError {
    /// The PDU stream was invalid; the pipe is now broken (a fault may be queued).
    Protocol(PduError),
    /// A fragment arrived out of sequence, or a request exceeded the size limit; broken.
    BadSequence,
    /// The pipe broke earlier and takes no more writes.
    Broken,
    /// Too much unread output; read first.
    OutputFull,
    /// Transceive while unread data is queued (MS-FSCC 2.3.51 STATUS_PIPE_BUSY).
    Busy,
}

impl PipeError {
    /// A suggested NTSTATUS for the SMB2 reply to the WRITE / IOCTL that failed.
    pub fn ntstatus(self) -> u32 {
        match self {
            PipeError::Protocol(_) | PipeError::BadSequence | PipeError::Broken => 0xC000_00B0, // STATUS_PIPE_DISCONNECTED
            PipeError::OutputFull => 0xC000_009A, // STATUS_INSUFFICIENT_RESOURCES
            PipeError::Busy => 0xC000_00AE,       // STATUS_PIPE_BUSY
        }
    }
}

impl fmt::Display for PipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipeError::Protocol(e) => write!(f, "RPC protocol error: {e}"),
            PipeError::BadSequence => f.write_str("RPC fragment sequence error"),
            PipeError::Broken => f.write_str("RPC pipe broken"),
            PipeError::OutputFull => f.write_str("RPC output queue full"),
            PipeError::Busy => f.write_str("RPC pipe has unread data"),
        }
    }
}

impl std::error::Error for PipeError {}

impl From<PduError> for PipeError {
    fn from(e: PduError) -> PipeError {
        PipeError::Protocol(e)
    }
}

#[derive(Debug, Clone)]
struct Reassembly {
    call_id: u32,
    context_id: u16,
    opnum: u16,
    stub: Vec<u8>,
}

/// Server state of one open pipe instance.
#[derive(Debug, Clone)]
pub struct RpcPipe {
    interface: Interface,
    limits: PipeLimits,
    assoc_group_id: u32,
    bound: bool,
    /// Accepted presentation contexts: (p_cont_id, transfer syntax).
    contexts: Vec<(u16, Syntax)>,
    /// Largest fragment we may send (client's max_recv_frag, clamped).
    max_xmit: u16,
    /// Bytes of an incomplete PDU (< one fragment).
    partial: Vec<u8>,
    reasm: Option<Reassembly>,
    out: VecDeque<Vec<u8>>,
    out_pos: usize,
    out_bytes: usize,
    broken: bool,
}

/// Default association group id handed to clients that ask for a new one.
pub const DEFAULT_ASSOC_GROUP: u32 = 0x0001_53f0;

impl RpcPipe {
    /// A new unbound pipe for `interface` with default limits.
    pub fn new(interface: Interface) -> RpcPipe {
        RpcPipe::with_limits(interface, PipeLimits::default(), DEFAULT_ASSOC_GROUP)
    }

    /// A new pipe with explicit limits and the association group id to assign.
    pub fn with_limits(interface: Interface, limits: PipeLimits, assoc_group_id: u32) -> RpcPipe {
        RpcPipe {
            interface,
            limits,
            assoc_group_id,
            bound: false,
            contexts: Vec::new(),
            max_xmit: MUST_RECV_FRAG_SIZE,
            partial: Vec::new(),
            reasm: None,
            out: VecDeque::new(),
            out_pos: 0,
            out_bytes: 0,
            broken: false,
        }
    }

    /// Change the unread-output bound (the server narrows it to the room
    /// its memory budget leaves before each call).
    pub fn set_max_queued_output(&mut self, bytes: usize) {
        self.limits.max_queued_output = bytes;
    }

    /// True once a bind was acknowledged.
    pub fn is_bound(&self) -> bool {
        self.bound
    }

    /// True after a stream-level error.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Unread output bytes.
    pub fn pending_output(&self) -> usize {
        self.out_bytes - self.out_pos
    }

    /// The largest fragment this pipe sends, as negotiated in bind.
    pub fn max_xmit_frag(&self) -> u16 {
        self.max_xmit
    }

    /// Bytes held for incomplete input (partial PDU plus reassembly).
    pub fn buffered_input(&self) -> usize {
        self.partial.len() + self.reasm.as_ref().map_or(0, |r| r.stub.len())
    }

    /// Consumes one client write. Complete PDUs are processed at once and their
    /// responses queued for [`RpcPipe::read`].
    pub fn write(&mut self, data: &[u8], backend: &mut dyn SrvsvcBackend) -> Result<(), PipeError> {
        if self.broken {
            return Err(PipeError::Broken);
        }
        if self.pending_output() > self.limits.max_queued_output {
            return Err(PipeError::OutputFull);
        }
        let r = self.write_inner(data, backend);
        if r.is_err() {
            self.broken = true;
            self.partial = Vec::new();
            self.reasm = None;
        }
        r
    }

    fn write_inner(
        &mut self,
        mut data: &[u8],
        backend: &mut dyn SrvsvcBackend,
    ) -> Result<(), PipeError> {
        // Complete a PDU started by an earlier write.
        if !self.partial.is_empty() {
            let need = frame_len(&self.partial, data)?;
            match need {
                Some(total) => {
                    let take = total - self.partial.len();
                    if data.len() < take {
                        self.partial.extend_from_slice(data);
                        return Ok(());
                    }
                    self.partial.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let pdu = std::mem::take(&mut self.partial);
                    self.handle_pdu(&pdu, backend)?;
                }
                None => {
                    self.partial.extend_from_slice(data);
                    return Ok(());
                }
            }
        }
        // Whole PDUs straight from the caller's buffer.
        while !data.is_empty() {
            match frame_len(data, &[])? {
                Some(total) if data.len() >= total => {
                    let (pdu, rest) = data.split_at(total);
                    self.handle_pdu(pdu, backend)?;
                    data = rest;
                }
                _ => {
                    self.partial.extend_from_slice(data);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Copies at most `max` bytes of the current output message to `out`.
    pub fn read(&mut self, max: usize, out: &mut Vec<u8>) -> ReadOutcome {
        let Some(front) = self.out.front() else {
            return ReadOutcome::Empty;
        };
        let n = max.min(front.len() - self.out_pos);
        out.extend_from_slice(&front[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        if self.out_pos == front.len() {
            self.out_bytes -= front.len();
            self.out_pos = 0;
            self.out.pop_front();
            ReadOutcome::Data { more: false }
        } else {
            ReadOutcome::Data { more: true }
        }
    }

    /// FSCTL_PIPE_TRANSCEIVE (MS-FSCC 2.3.51): writes `input`, then reads one message of
    /// at most `max_out` bytes into `out`. Returns whether more of that message remains.
    pub fn transceive(
        &mut self,
        input: &[u8],
        max_out: usize,
        backend: &mut dyn SrvsvcBackend,
        out: &mut Vec<u8>,
    ) -> Result<bool, PipeError> {
        if self.pending_output() != 0 {
            return Err(PipeError::Busy);
        }
        self.write(input, backend)?;
        Ok(matches!(
            self.read(max_out, out),
            ReadOutcome::Data { more: true }
        ))
    }

    fn queue(&mut self, pdu: Vec<u8>) {
        self.out_bytes += pdu.len();
        self.out.push_back(pdu);
    }

    fn fault(&mut self, call_id: u32, context_id: u16, st: u32) {
        let f = Fault {
            context_id,
            status: st,
        };
        self.queue(f.encode(call_id, true));
    }

    fn handle_pdu(&mut self, pdu: &[u8], backend: &mut dyn SrvsvcBackend) -> Result<(), PipeError> {
        let h = match Header::parse(pdu) {
            Ok(h) => h,
            Err(PduError::UnsupportedDrep(_)) => {
                // Framed correctly (frame_len read the length in the sender's byte order):
                // refuse politely.
                let call_id = u32::from_be_bytes([pdu[12], pdu[13], pdu[14], pdu[15]]);
                if pdu[2] == PType::Bind.to_u8() {
                    self.queue(encode_bind_nak(call_id, nak_reason::USER_DATA_NOT_READABLE));
                } else {
                    self.fault(call_id, 0, status::NCA_S_PROTO_ERROR);
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        match h.ptype() {
            Some(PType::Bind) => self.handle_bind(&h, pdu, false),
            Some(PType::AlterContext) => self.handle_bind(&h, pdu, true),
            Some(PType::Request) => self.handle_request(&h, pdu, backend),
            Some(PType::Auth3) => Ok(()),
            Some(PType::CoCancel) => Ok(()),
            Some(PType::Orphaned) => {
                if self.reasm.as_ref().is_some_and(|r| r.call_id == h.call_id) {
                    self.reasm = None;
                }
                Ok(())
            }
            _ => {
                self.fault(h.call_id, 0, status::NCA_S_PROTO_ERROR);
                Err(PipeError::Protocol(PduError::UnknownPType(h.ptype)))
            }
        }
    }

    fn handle_bind(&mut self, h: &Header, pdu: &[u8], alter: bool) -> Result<(), PipeError> {
        let nak = |me: &mut RpcPipe, why| {
            if alter {
                me.fault(h.call_id, 0, status::NCA_S_PROTO_ERROR);
            } else {
                me.queue(encode_bind_nak(h.call_id, why));
            }
        };
        if alter != self.bound {
            // bind twice, or alter_context before bind.
            nak(self, nak_reason::NOT_SPECIFIED);
            return Ok(());
        }
        if h.auth_length != 0 {
            nak(self, nak_reason::AUTHENTICATION_TYPE_NOT_RECOGNIZED);
            return Ok(());
        }
        let bind = match h.body(pdu).and_then(Bind::parse) {
            Ok(b) => b,
            Err(_) => {
                nak(self, nak_reason::NOT_SPECIFIED);
                return Ok(());
            }
        };
        if !alter {
            self.max_xmit = bind.max_recv_frag.clamp(
                MUST_RECV_FRAG_SIZE,
                self.limits.max_frag.max(MUST_RECV_FRAG_SIZE),
            );
            if bind.assoc_group_id != 0 {
                self.assoc_group_id = bind.assoc_group_id;
            }
        }
        let want = self.interface.syntax_id();
        let mut results = Vec::with_capacity(bind.contexts.len());
        for ctx in &bind.contexts {
            let first = &ctx.transfer_syntaxes[0];
            let r = if ctx.transfer_syntaxes.len() == 1 && first.is_bind_time_feature() {
                ContextResult {
                    result: result::NEGOTIATE_ACK,
                    reason: first.bind_time_features()
                        & (pdu::BTFN_SECURITY_CONTEXT_MULTIPLEXING
                            | pdu::BTFN_KEEP_CONNECTION_ON_ORPHAN),
                    transfer_syntax: SyntaxId::default(),
                }
            } else if ctx.abstract_syntax.uuid != want.uuid
                || ctx.abstract_syntax.major() != want.major()
                || ctx.abstract_syntax.minor() > want.minor()
            {
                reject(reason::ABSTRACT_SYNTAX_NOT_SUPPORTED)
            } else if let Some((ts, syn)) = ctx
                .transfer_syntaxes
                .iter()
                .find_map(|t| transfer_syntax(t).map(|s| (*t, s)))
            {
                if let Some(slot) = self.contexts.iter_mut().find(|c| c.0 == ctx.context_id) {
                    slot.1 = syn;
                } else if self.contexts.len() < pdu::MAX_CONTEXTS {
                    self.contexts.push((ctx.context_id, syn));
                }
                ContextResult {
                    result: result::ACCEPTANCE,
                    reason: 0,
                    transfer_syntax: ts,
                }
            } else {
                reject(reason::PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED)
            };
            results.push(r);
        }
        let ack = BindAck {
            max_xmit_frag: self.max_xmit,
            max_recv_frag: self.max_xmit,
            assoc_group_id: self.assoc_group_id,
            sec_addr: if alter {
                String::new()
            } else {
                self.interface.sec_addr().to_string()
            },
            results,
        };
        let ptype = if alter {
            PType::AlterContextResp
        } else {
            PType::BindAck
        };
        self.queue(ack.encode(ptype, h.call_id));
        self.bound = true;
        Ok(())
    }

    fn handle_request(
        &mut self,
        h: &Header,
        pdu: &[u8],
        backend: &mut dyn SrvsvcBackend,
    ) -> Result<(), PipeError> {
        let req = h.body(pdu).and_then(|b| Request::parse(h, b))?;
        let first = h.flags & PFC_FIRST_FRAG != 0;
        let last = h.flags & PFC_LAST_FRAG != 0;
        if first {
            if self.reasm.is_some() {
                self.fault(h.call_id, req.context_id, status::NCA_S_PROTO_ERROR);
                return Err(PipeError::BadSequence);
            }
            if last {
                return self.execute(h, req.context_id, req.opnum, req.stub, backend);
            }
            if req.alloc_hint as usize > self.limits.max_request_stub
                || req.stub.len() > self.limits.max_request_stub
            {
                self.fault(h.call_id, req.context_id, status::NCA_S_FAULT_ACCESS_DENIED);
                return Err(PipeError::BadSequence);
            }
            // alloc_hint is only a hint: never reserve more than the limit, and
            // not more than a few fragments ahead of data actually received.
            let reserve = (req.alloc_hint as usize).min(4 * usize::from(self.limits.max_frag));
            let mut stub = Vec::with_capacity(reserve.max(req.stub.len()));
            stub.extend_from_slice(req.stub);
            self.reasm = Some(Reassembly {
                call_id: h.call_id,
                context_id: req.context_id,
                opnum: req.opnum,
                stub,
            });
            return Ok(());
        }
        let Some(mut r) = self.reasm.take() else {
            self.fault(h.call_id, req.context_id, status::NCA_S_PROTO_ERROR);
            return Err(PipeError::BadSequence);
        };
        if r.call_id != h.call_id {
            self.fault(h.call_id, req.context_id, status::NCA_S_PROTO_ERROR);
            return Err(PipeError::BadSequence);
        }
        if r.stub.len() + req.stub.len() > self.limits.max_request_stub {
            self.fault(h.call_id, r.context_id, status::NCA_S_FAULT_ACCESS_DENIED);
            return Err(PipeError::BadSequence);
        }
        r.stub.extend_from_slice(req.stub);
        if last {
            self.execute(h, r.context_id, r.opnum, &r.stub, backend)
        } else {
            self.reasm = Some(r);
            Ok(())
        }
    }

    fn execute(
        &mut self,
        h: &Header,
        context_id: u16,
        opnum: u16,
        stub: &[u8],
        backend: &mut dyn SrvsvcBackend,
    ) -> Result<(), PipeError> {
        if h.auth_length != 0 {
            self.fault(h.call_id, context_id, status::NCA_S_FAULT_ACCESS_DENIED);
            return Ok(());
        }
        let Some(&(_, syntax)) = self.contexts.iter().find(|c| c.0 == context_id) else {
            self.fault(h.call_id, context_id, status::NCA_S_UNK_IF);
            return Ok(());
        };
        let result = match self.interface {
            Interface::Srvsvc => srvsvc::dispatch(opnum, stub, syntax, backend),
        };
        match result {
            Ok(resp) => {
                if self.pending_output() + resp.len() > self.limits.max_queued_output {
                    self.fault(h.call_id, context_id, status::NCA_S_FAULT_REMOTE_NO_MEMORY);
                    return Ok(());
                }
                let call_id = h.call_id;
                let max = self.max_xmit;
                let mut frags = Vec::new();
                encode_response(call_id, context_id, &resp, max, |f| frags.push(f));
                for f in frags {
                    self.queue(f);
                }
            }
            Err(st) => self.fault(h.call_id, context_id, st),
        }
        Ok(())
    }
}

fn reject(why: u16) -> ContextResult {
    ContextResult {
        result: result::PROVIDER_REJECTION,
        reason: why,
        transfer_syntax: SyntaxId::default(),
    }
}

fn transfer_syntax(t: &SyntaxId) -> Option<Syntax> {
    if t.uuid == NDR20_UUID && t.version == NDR20_VERSION {
        Some(Syntax::Ndr20)
    } else if t.uuid == NDR64_UUID && t.version == NDR64_VERSION {
        Some(Syntax::Ndr64)
    } else {
        None
    }
}

/// The total length of the PDU that starts with `a ++ b`, once known:
/// `Ok(None)` while fewer than 16 bytes are present. The length is read in the
/// sender's integer representation, so a big-endian PDU is framed correctly
/// before it is refused.
fn frame_len(a: &[u8], b: &[u8]) -> Result<Option<usize>, PipeError> {
    let mut hdr = [0u8; HEADER_LEN];
    let have = a.len().min(HEADER_LEN);
    hdr[..have].copy_from_slice(&a[..have]);
    let more = (HEADER_LEN - have).min(b.len());
    hdr[have..have + more].copy_from_slice(&b[..more]);
    if have + more < HEADER_LEN {
        // Check what we have early, so that garbage is refused without waiting.
        if have + more >= 2 && (hdr[0] != pdu::RPC_VERS || hdr[1] > 1) {
            return Err(PduError::BadVersion(hdr[0], hdr[1]).into());
        }
        return Ok(None);
    }
    if hdr[0] != pdu::RPC_VERS || hdr[1] > 1 {
        return Err(PduError::BadVersion(hdr[0], hdr[1]).into());
    }
    let len = if hdr[4] >> 4 == 0 {
        u16::from_be_bytes([hdr[8], hdr[9]])
    } else {
        u16::from_le_bytes([hdr[8], hdr[9]])
    };
    if usize::from(len) < HEADER_LEN {
        return Err(PduError::BadFragLength(len).into());
    }
    Ok(Some(usize::from(len)))
}

#[cfg(test)]
mod tests;
