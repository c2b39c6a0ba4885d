//! Connection-oriented DCE/RPC PDUs: C706 chapter 12.6 with the MS-RPCE 2.2.2
//! extensions (bind time feature negotiation, `negotiate_ack`).
//!
//! Parsing borrows from the input; encoders append to a `Vec<u8>`. Only the
//! little-endian / ASCII / IEEE data representation is supported
//! ([`DREP_LE_ASCII_IEEE`]); [`Header::parse`] reports any other as
//! [`PduError::UnsupportedDrep`] so that the caller can answer with a
//! `bind_nak` or a fault.

use std::fmt;

use crate::ndr::Uuid;

/// Length of the common header (C706 12.6.3.1).
pub const HEADER_LEN: usize = 16;
/// `rpc_vers` (C706 12.6.3.1).
pub const RPC_VERS: u8 = 5;
/// Length of the request / response / fault headers before the stub (common header included).
pub const REQUEST_HEADER_LEN: usize = 24;
/// Length of a fault PDU without stub data.
pub const FAULT_LEN: usize = 32;
/// The smallest fragment every implementation must accept (C706 12.6.3.1 `MustRecvFragSize`).
pub const MUST_RECV_FRAG_SIZE: u16 = 1432;
/// Packed data representation: little-endian integers, ASCII characters, IEEE floats.
pub const DREP_LE_ASCII_IEEE: [u8; 4] = [0x10, 0, 0, 0];

/// `pfc_flags`: first fragment.
pub const PFC_FIRST_FRAG: u8 = 0x01;
/// `pfc_flags`: last fragment.
pub const PFC_LAST_FRAG: u8 = 0x02;
/// `pfc_flags`: cancel was pending at sender (also `PFC_SUPPORT_HEADER_SIGN` in bind, MS-RPCE 2.2.2.3).
pub const PFC_PENDING_CANCEL: u8 = 0x04;
/// `pfc_flags`: concurrent multiplexing supported.
pub const PFC_CONC_MPX: u8 = 0x10;
/// `pfc_flags`: the call did not execute (fault).
pub const PFC_DID_NOT_EXECUTE: u8 = 0x20;
/// `pfc_flags`: an object UUID follows the request header.
pub const PFC_OBJECT_UUID: u8 = 0x80;

/// Bind time feature negotiation prefix, first 8 octets of 6cb71c2c-9812-4540-XXXX (MS-RPCE 3.3.1.5.3).
pub const BIND_TIME_FEATURE_PREFIX: [u8; 8] = [0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45];
/// BindTimeFeatureNegotiationBitmask: SecurityContextMultiplexingSupported (MS-RPCE 2.2.2.14).
pub const BTFN_SECURITY_CONTEXT_MULTIPLEXING: u16 = 0x01;
/// BindTimeFeatureNegotiationBitmask: KeepConnectionOnOrphanSupported (MS-RPCE 2.2.2.14).
pub const BTFN_KEEP_CONNECTION_ON_ORPHAN: u16 = 0x02;

/// `p_cont_def_result_t` (C706 12.6.3.1, MS-RPCE 2.2.2.4 adds `negotiate_ack`).
pub mod result {
    /// The context was accepted.
    pub const ACCEPTANCE: u16 = 0;
    /// The context was rejected by the user.
    pub const USER_REJECTION: u16 = 1;
    /// The context was rejected by the provider; `reason` says why.
    pub const PROVIDER_REJECTION: u16 = 2;
    /// Answer to a bind time feature negotiation context; `reason` carries the bitmask.
    pub const NEGOTIATE_ACK: u16 = 3;
}

/// `p_provider_reason_t` for a rejected context (C706 12.6.3.1).
pub mod reason {
    /// No reason given.
    pub const NOT_SPECIFIED: u16 = 0;
    /// The abstract syntax (interface) is not supported.
    pub const ABSTRACT_SYNTAX_NOT_SUPPORTED: u16 = 1;
    /// None of the proposed transfer syntaxes is supported.
    pub const PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED: u16 = 2;
    /// A local limit was exceeded.
    pub const LOCAL_LIMIT_EXCEEDED: u16 = 3;
}

/// `p_reject_reason_t` carried by bind_nak (C706 12.6.3.1, MS-RPCE 2.2.2.5).
pub mod nak_reason {
    /// No reason given.
    pub const NOT_SPECIFIED: u16 = 0;
    /// Temporary congestion.
    pub const TEMPORARY_CONGESTION: u16 = 1;
    /// A local limit was exceeded.
    pub const LOCAL_LIMIT_EXCEEDED: u16 = 2;
    /// The protocol version is not supported.
    pub const PROTOCOL_VERSION_NOT_SUPPORTED: u16 = 4;
    /// The data representation could not be read.
    pub const USER_DATA_NOT_READABLE: u16 = 6;
    /// The authentication type is not recognized (MS-RPCE).
    pub const AUTHENTICATION_TYPE_NOT_RECOGNIZED: u16 = 8;
}

/// Fault status codes (C706 appendix E, MS-RPCE 2.2.2.11 / 3.3.1.5.x).
pub mod status {
    /// The operation number is out of range for the interface.
    pub const NCA_S_OP_RNG_ERROR: u32 = 0x1C01_0002;
    /// Unknown interface / presentation context.
    pub const NCA_S_UNK_IF: u32 = 0x1C01_0003;
    /// Protocol error.
    pub const NCA_S_PROTO_ERROR: u32 = 0x1C01_000B;
    /// Context mismatch.
    pub const NCA_S_FAULT_CONTEXT_MISMATCH: u32 = 0x1C00_001A;
    /// The union discriminant is invalid.
    pub const NCA_S_FAULT_INVALID_TAG: u32 = 0x1C00_0006;
    /// The server ran out of memory (used for an over-limit response).
    pub const NCA_S_FAULT_REMOTE_NO_MEMORY: u32 = 0x1C00_001B;
    /// Access denied (MS-RPCE: Windows error 5); also used for over-limit requests, as Samba.
    pub const NCA_S_FAULT_ACCESS_DENIED: u32 = 0x0000_0005;
    /// Stub data could not be unmarshalled (RPC_X_BAD_STUB_DATA, MS-RPCE `nca_s_fault_ndr`).
    pub const NCA_S_FAULT_NDR: u32 = 0x0000_06F7;
    /// Unsupported authentication level / type (MS-RPCE).
    pub const NCA_S_UNSUPPORTED_AUTHN_LEVEL: u32 = 0x1C00_001D;
}

/// `PTYPE` values (C706 12.6.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PType {
    /// request (0)
    Request,
    /// response (2)
    Response,
    /// fault (3)
    Fault,
    /// bind (11)
    Bind,
    /// bind_ack (12)
    BindAck,
    /// bind_nak (13)
    BindNak,
    /// alter_context (14)
    AlterContext,
    /// alter_context_resp (15)
    AlterContextResp,
    /// auth3 (16, MS-RPCE)
    Auth3,
    /// shutdown (17)
    Shutdown,
    /// co_cancel (18)
    CoCancel,
    /// orphaned (19)
    Orphaned,
}

impl PType {
    /// The connection-oriented type for a wire value, if any.
    pub fn from_u8(v: u8) -> Option<PType> {
        Some(match v {
            0 => PType::Request,
            2 => PType::Response,
            3 => PType::Fault,
            11 => PType::Bind,
            12 => PType::BindAck,
            13 => PType::BindNak,
            14 => PType::AlterContext,
            15 => PType::AlterContextResp,
            16 => PType::Auth3,
            17 => PType::Shutdown,
            18 => PType::CoCancel,
            19 => PType::Orphaned,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            PType::Request => 0,
            PType::Response => 2,
            PType::Fault => 3,
            PType::Bind => 11,
            PType::BindAck => 12,
            PType::BindNak => 13,
            PType::AlterContext => 14,
            PType::AlterContextResp => 15,
            PType::Auth3 => 16,
            PType::Shutdown => 17,
            PType::CoCancel => 18,
            PType::Orphaned => 19,
        }
    }
}

/// A malformed PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PduError {
    /// Fewer bytes than the header or `frag_length` announce.
    Truncated,
    /// `rpc_vers` / `rpc_vers_minor` other than 5.0 or 5.1.
    BadVersion(u8, u8),
    /// `frag_length` smaller than the PDU type requires, or `auth_length` past it.
    BadFragLength(u16),
    /// Data representation other than little-endian ASCII IEEE.
    UnsupportedDrep([u8; 4]),
    /// A `PTYPE` that is not connection-oriented (or not expected here).
    UnknownPType(u8),
    /// The body is inconsistent (counts past the end, etc.).
    BadBody,
}

impl fmt::Display for PduError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PduError::Truncated => f.write_str("PDU truncated"),
            PduError::BadVersion(a, b) => write!(f, "unsupported RPC version {a}.{b}"),
            PduError::BadFragLength(l) => write!(f, "bad frag_length {l}"),
            PduError::UnsupportedDrep(d) => write!(f, "unsupported data representation {d:02x?}"),
            PduError::UnknownPType(t) => write!(f, "unknown PDU type {t}"),
            PduError::BadBody => f.write_str("malformed PDU body"),
        }
    }
}

impl std::error::Error for PduError {}

/// The common header of every connection-oriented PDU (C706 12.6.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Raw `PTYPE`.
    pub ptype: u8,
    /// `pfc_flags`.
    pub flags: u8,
    /// `packed_drep`.
    pub drep: [u8; 4],
    /// Total length of this fragment, header included.
    pub frag_length: u16,
    /// Length of the auth_value (not counting the 8-byte sec_trailer).
    pub auth_length: u16,
    /// Call identifier.
    pub call_id: u32,
}

impl Header {
    /// Builds a little-endian header.
    pub fn new(ptype: PType, flags: u8, frag_length: u16, call_id: u32) -> Header {
        Header {
            ptype: ptype.to_u8(),
            flags,
            drep: DREP_LE_ASCII_IEEE,
            frag_length,
            auth_length: 0,
            call_id,
        }
    }

    /// Reads the `frag_length` of a header prefix without validating anything else;
    /// `None` if fewer than 10 bytes are present.
    pub fn peek_frag_length(b: &[u8]) -> Option<u16> {
        if b.len() < 10 {
            return None;
        }
        Some(u16::from_le_bytes([b[8], b[9]]))
    }

    /// Parses and validates a header: version 5.0/5.1, little-endian ASCII IEEE data
    /// representation, `frag_length >= 16`, `auth_length` within the fragment.
    pub fn parse(b: &[u8]) -> Result<Header, PduError> {
        if b.len() < HEADER_LEN {
            return Err(PduError::Truncated);
        }
        if b[0] != RPC_VERS || b[1] > 1 {
            return Err(PduError::BadVersion(b[0], b[1]));
        }
        let drep = [b[4], b[5], b[6], b[7]];
        let frag_length = u16::from_le_bytes([b[8], b[9]]);
        let auth_length = u16::from_le_bytes([b[10], b[11]]);
        let h = Header {
            ptype: b[2],
            flags: b[3],
            drep,
            frag_length,
            auth_length,
            call_id: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        };
        if drep[0] != DREP_LE_ASCII_IEEE[0] || drep[1] != 0 {
            return Err(PduError::UnsupportedDrep(drep));
        }
        if usize::from(frag_length) < HEADER_LEN {
            return Err(PduError::BadFragLength(frag_length));
        }
        if auth_length != 0 && usize::from(auth_length) + 8 + HEADER_LEN > usize::from(frag_length)
        {
            return Err(PduError::BadFragLength(frag_length));
        }
        Ok(h)
    }

    /// The PDU type, if it is a known connection-oriented one.
    pub fn ptype(&self) -> Option<PType> {
        PType::from_u8(self.ptype)
    }

    /// Appends the 16-byte header.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[RPC_VERS, 0, self.ptype, self.flags]);
        out.extend_from_slice(&self.drep);
        out.extend_from_slice(&self.frag_length.to_le_bytes());
        out.extend_from_slice(&self.auth_length.to_le_bytes());
        out.extend_from_slice(&self.call_id.to_le_bytes());
    }

    /// The PDU body between the header and the auth trailer (`pdu` is exactly one fragment).
    pub fn body<'a>(&self, pdu: &'a [u8]) -> Result<&'a [u8], PduError> {
        let end = usize::from(self.frag_length);
        if pdu.len() < end {
            return Err(PduError::Truncated);
        }
        let trailer = if self.auth_length == 0 {
            0
        } else {
            usize::from(self.auth_length) + 8
        };
        Ok(&pdu[HEADER_LEN..end - trailer])
    }
}

/// A small bounds-checked little-endian reader over a PDU body.
#[derive(Debug)]
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    /// Offset of `b[0]` from the start of the PDU, for PDU-relative alignment.
    base: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8], base: usize) -> Cursor<'a> {
        Cursor { b, pos: 0, base }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], PduError> {
        if self.b.len() - self.pos < n {
            return Err(PduError::Truncated);
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, PduError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PduError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, PduError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uuid(&mut self) -> Result<Uuid, PduError> {
        let mut u = [0u8; 16];
        u.copy_from_slice(self.take(16)?);
        Ok(Uuid(u))
    }
    fn align4(&mut self) -> Result<(), PduError> {
        let pad = (4 - (self.base + self.pos) % 4) % 4;
        self.take(pad).map(|_| ())
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.pos..];
        self.pos = self.b.len();
        s
    }
}

/// A presentation syntax identifier: interface or transfer syntax UUID and version
/// (`p_syntax_id_t`; the version is `major | minor << 16` as on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SyntaxId {
    /// The UUID.
    pub uuid: Uuid,
    /// `if_version` as read from the wire (major in the low 16 bits).
    pub version: u32,
}

impl SyntaxId {
    /// The major version (low 16 bits).
    pub fn major(&self) -> u16 {
        self.version as u16
    }
    /// The minor version (high 16 bits).
    pub fn minor(&self) -> u16 {
        (self.version >> 16) as u16
    }
    /// True for a bind time feature negotiation transfer syntax (MS-RPCE 3.3.1.5.3).
    pub fn is_bind_time_feature(&self) -> bool {
        self.uuid.0[..8] == BIND_TIME_FEATURE_PREFIX
    }
    /// The bitmask carried by a bind time feature negotiation syntax (first two octets after the prefix).
    pub fn bind_time_features(&self) -> u16 {
        u16::from_le_bytes([self.uuid.0[8], self.uuid.0[9]])
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.uuid.0);
        out.extend_from_slice(&self.version.to_le_bytes());
    }
}

/// One element of a presentation context list (`p_cont_elem_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextElem {
    /// `p_cont_id`.
    pub context_id: u16,
    /// The interface.
    pub abstract_syntax: SyntaxId,
    /// Proposed transfer syntaxes, in the client's order of preference.
    pub transfer_syntaxes: Vec<SyntaxId>,
}

/// bind or alter_context body (C706 12.6.4.3 / 12.6.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// Largest fragment the client will send.
    pub max_xmit_frag: u16,
    /// Largest fragment the client can receive.
    pub max_recv_frag: u16,
    /// Association group, 0 for a new one.
    pub assoc_group_id: u32,
    /// The presentation context list.
    pub contexts: Vec<ContextElem>,
}

/// At most this many presentation contexts are parsed from one bind (the wire allows 255).
pub const MAX_CONTEXTS: usize = 64;

impl Bind {
    /// Parses the body of a bind / alter_context fragment.
    pub fn parse(body: &[u8]) -> Result<Bind, PduError> {
        let mut c = Cursor::new(body, HEADER_LEN);
        let max_xmit_frag = c.u16()?;
        let max_recv_frag = c.u16()?;
        let assoc_group_id = c.u32()?;
        let n = usize::from(c.u8()?);
        c.take(3)?;
        if n > MAX_CONTEXTS {
            return Err(PduError::BadBody);
        }
        let mut contexts = Vec::with_capacity(n);
        for _ in 0..n {
            let context_id = c.u16()?;
            let nts = usize::from(c.u8()?);
            c.u8()?;
            let abstract_syntax = SyntaxId {
                uuid: c.uuid()?,
                version: c.u32()?,
            };
            if nts == 0 || nts * 20 > body.len() {
                return Err(PduError::BadBody);
            }
            let mut transfer_syntaxes = Vec::with_capacity(nts);
            for _ in 0..nts {
                transfer_syntaxes.push(SyntaxId {
                    uuid: c.uuid()?,
                    version: c.u32()?,
                });
            }
            contexts.push(ContextElem {
                context_id,
                abstract_syntax,
                transfer_syntaxes,
            });
        }
        Ok(Bind {
            max_xmit_frag,
            max_recv_frag,
            assoc_group_id,
            contexts,
        })
    }

    /// Encodes a whole bind (or alter_context, by `ptype`) PDU.
    pub fn encode(&self, ptype: PType, call_id: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(72);
        Header::new(ptype, PFC_FIRST_FRAG | PFC_LAST_FRAG, 0, call_id).write(&mut out);
        out.extend_from_slice(&self.max_xmit_frag.to_le_bytes());
        out.extend_from_slice(&self.max_recv_frag.to_le_bytes());
        out.extend_from_slice(&self.assoc_group_id.to_le_bytes());
        out.extend_from_slice(&[self.contexts.len() as u8, 0, 0, 0]);
        for ctx in &self.contexts {
            out.extend_from_slice(&ctx.context_id.to_le_bytes());
            out.extend_from_slice(&[ctx.transfer_syntaxes.len() as u8, 0]);
            ctx.abstract_syntax.write(&mut out);
            for t in &ctx.transfer_syntaxes {
                t.write(&mut out);
            }
        }
        set_frag_length(&mut out);
        out
    }
}

/// One entry of a bind_ack result list (`p_result_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextResult {
    /// One of [`result`].
    pub result: u16,
    /// One of [`reason`] for a rejection; the feature bitmask for `negotiate_ack`.
    pub reason: u16,
    /// The accepted transfer syntax, zero otherwise.
    pub transfer_syntax: SyntaxId,
}

/// bind_ack / alter_context_resp body (C706 12.6.4.4 / 12.6.4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindAck {
    /// Largest fragment the server will send.
    pub max_xmit_frag: u16,
    /// Largest fragment the server can receive.
    pub max_recv_frag: u16,
    /// The association group.
    pub assoc_group_id: u32,
    /// Secondary address, e.g. `\PIPE\srvsvc` (empty in alter_context_resp).
    pub sec_addr: String,
    /// One result per proposed context, in order.
    pub results: Vec<ContextResult>,
}

impl BindAck {
    /// Encodes a bind_ack (or alter_context_resp, by `ptype`) PDU.
    pub fn encode(&self, ptype: PType, call_id: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 24 * self.results.len());
        Header::new(ptype, PFC_FIRST_FRAG | PFC_LAST_FRAG, 0, call_id).write(&mut out);
        out.extend_from_slice(&self.max_xmit_frag.to_le_bytes());
        out.extend_from_slice(&self.max_recv_frag.to_le_bytes());
        out.extend_from_slice(&self.assoc_group_id.to_le_bytes());
        if self.sec_addr.is_empty() {
            out.extend_from_slice(&0u16.to_le_bytes());
        } else {
            let addr = self.sec_addr.as_bytes();
            out.extend_from_slice(&((addr.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(addr);
            out.push(0);
        }
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(&[self.results.len() as u8, 0, 0, 0]);
        for r in &self.results {
            out.extend_from_slice(&r.result.to_le_bytes());
            out.extend_from_slice(&r.reason.to_le_bytes());
            r.transfer_syntax.write(&mut out);
        }
        set_frag_length(&mut out);
        out
    }

    /// Parses the body of a bind_ack / alter_context_resp.
    pub fn parse(body: &[u8]) -> Result<BindAck, PduError> {
        let mut c = Cursor::new(body, HEADER_LEN);
        let max_xmit_frag = c.u16()?;
        let max_recv_frag = c.u16()?;
        let assoc_group_id = c.u32()?;
        let len = usize::from(c.u16()?);
        let addr = c.take(len)?;
        let addr = addr.strip_suffix(&[0]).unwrap_or(addr);
        let sec_addr = String::from_utf8_lossy(addr).into_owned();
        c.align4()?;
        let n = usize::from(c.u8()?);
        c.take(3)?;
        let mut results = Vec::with_capacity(n.min(body.len() / 24));
        for _ in 0..n {
            let result = c.u16()?;
            let reason = c.u16()?;
            let transfer_syntax = SyntaxId {
                uuid: c.uuid()?,
                version: c.u32()?,
            };
            results.push(ContextResult {
                result,
                reason,
                transfer_syntax,
            });
        }
        Ok(BindAck {
            max_xmit_frag,
            max_recv_frag,
            assoc_group_id,
            sec_addr,
            results,
        })
    }
}

/// Encodes a bind_nak PDU offering protocol version 5.0 (C706 12.6.4.5).
pub fn encode_bind_nak(call_id: u32, reason: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    Header::new(PType::BindNak, PFC_FIRST_FRAG | PFC_LAST_FRAG, 0, call_id).write(&mut out);
    out.extend_from_slice(&reason.to_le_bytes());
    out.extend_from_slice(&[1, RPC_VERS, 0]);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    set_frag_length(&mut out);
    out
}

/// Reads the reject reason of a bind_nak body.
pub fn parse_bind_nak(body: &[u8]) -> Result<u16, PduError> {
    Cursor::new(body, HEADER_LEN).u16()
}

/// A request fragment (C706 12.6.4.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Total stub length the client expects to send (a hint; never trusted for allocation).
    pub alloc_hint: u32,
    /// Presentation context.
    pub context_id: u16,
    /// Operation number.
    pub opnum: u16,
    /// Object UUID if `PFC_OBJECT_UUID` was set.
    pub object: Option<Uuid>,
    /// This fragment's stub data.
    pub stub: &'a [u8],
}

impl<'a> Request<'a> {
    /// Parses a request body (after the common header).
    pub fn parse(h: &Header, body: &'a [u8]) -> Result<Request<'a>, PduError> {
        let mut c = Cursor::new(body, HEADER_LEN);
        let alloc_hint = c.u32()?;
        let context_id = c.u16()?;
        let opnum = c.u16()?;
        let object = if h.flags & PFC_OBJECT_UUID != 0 {
            Some(c.uuid()?)
        } else {
            None
        };
        let stub = c.rest();
        Ok(Request {
            alloc_hint,
            context_id,
            opnum,
            object,
            stub,
        })
    }
}

/// A response fragment (C706 12.6.4.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// Remaining stub length from this fragment on.
    pub alloc_hint: u32,
    /// Presentation context.
    pub context_id: u16,
    /// Cancels received.
    pub cancel_count: u8,
    /// This fragment's stub data.
    pub stub: &'a [u8],
}

impl<'a> Response<'a> {
    /// Parses a response body (after the common header).
    pub fn parse(body: &'a [u8]) -> Result<Response<'a>, PduError> {
        let mut c = Cursor::new(body, HEADER_LEN);
        let alloc_hint = c.u32()?;
        let context_id = c.u16()?;
        let cancel_count = c.u8()?;
        c.u8()?;
        Ok(Response {
            alloc_hint,
            context_id,
            cancel_count,
            stub: c.rest(),
        })
    }
}

/// A fault (C706 12.6.4.7, MS-RPCE 2.2.2.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Presentation context of the failed call.
    pub context_id: u16,
    /// The status, see [`status`].
    pub status: u32,
}

impl Fault {
    /// Encodes a fault PDU; `did_not_execute` sets `PFC_DID_NOT_EXECUTE`.
    pub fn encode(&self, call_id: u32, did_not_execute: bool) -> Vec<u8> {
        let mut flags = PFC_FIRST_FRAG | PFC_LAST_FRAG;
        if did_not_execute {
            flags |= PFC_DID_NOT_EXECUTE;
        }
        let mut out = Vec::with_capacity(FAULT_LEN);
        Header::new(PType::Fault, flags, FAULT_LEN as u16, call_id).write(&mut out);
        out.extend_from_slice(&0u32.to_le_bytes()); // alloc_hint
        out.extend_from_slice(&self.context_id.to_le_bytes());
        out.extend_from_slice(&[0, 0]); // cancel_count, reserved/flags
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // reserved
        out
    }

    /// Parses a fault body (after the common header).
    pub fn parse(body: &[u8]) -> Result<Fault, PduError> {
        let mut c = Cursor::new(body, HEADER_LEN);
        c.u32()?;
        let context_id = c.u16()?;
        c.take(2)?;
        let status = c.u32()?;
        Ok(Fault { context_id, status })
    }
}

fn set_frag_length(out: &mut [u8]) {
    let len = (out.len() as u16).to_le_bytes();
    out[8] = len[0];
    out[9] = len[1];
}

/// Stub bytes that fit one fragment of `max_frag` bytes: a multiple of 8, at least 8.
pub fn stub_per_fragment(max_frag: u16) -> usize {
    (usize::from(max_frag).saturating_sub(REQUEST_HEADER_LEN) & !7).max(8)
}

/// Encodes the response fragments for `stub` (C706 12.6.4.10), each at most `max_frag`
/// bytes (bounded below so that every fragment carries stub data), passing each to `emit`.
/// `alloc_hint` of each fragment is the stub length remaining from it on, as Windows does.
pub fn encode_response(
    call_id: u32,
    context_id: u16,
    stub: &[u8],
    max_frag: u16,
    mut emit: impl FnMut(Vec<u8>),
) {
    encode_fragments(
        PType::Response,
        call_id,
        context_id,
        0,
        stub,
        max_frag,
        &mut emit,
    );
}

/// Encodes request fragments for `stub` (client side), each at most `max_frag` bytes.
pub fn encode_request(
    call_id: u32,
    context_id: u16,
    opnum: u16,
    stub: &[u8],
    max_frag: u16,
) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    encode_fragments(
        PType::Request,
        call_id,
        context_id,
        opnum,
        stub,
        max_frag,
        &mut |f| v.push(f),
    );
    v
}

fn encode_fragments(
    ptype: PType,
    call_id: u32,
    context_id: u16,
    opnum: u16,
    stub: &[u8],
    max_frag: u16,
    emit: &mut dyn FnMut(Vec<u8>),
) {
    let per = stub_per_fragment(max_frag);
    let mut off = 0;
    loop {
        let n = per.min(stub.len() - off);
        let mut flags = 0;
        if off == 0 {
            flags |= PFC_FIRST_FRAG;
        }
        if off + n == stub.len() {
            flags |= PFC_LAST_FRAG;
        }
        let mut f = Vec::with_capacity(REQUEST_HEADER_LEN + n);
        Header::new(ptype, flags, (REQUEST_HEADER_LEN + n) as u16, call_id).write(&mut f);
        f.extend_from_slice(&((stub.len() - off) as u32).to_le_bytes());
        f.extend_from_slice(&context_id.to_le_bytes());
        if ptype == PType::Request {
            f.extend_from_slice(&opnum.to_le_bytes());
        } else {
            f.extend_from_slice(&[0, 0]);
        }
        f.extend_from_slice(&stub[off..off + n]);
        emit(f);
        off += n;
        if off >= stub.len() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ndr::{NDR20_UUID, NDR64_UUID};

    fn srvsvc() -> SyntaxId {
        SyntaxId {
            uuid: crate::srvsvc::SRVSVC_UUID,
            version: 3,
        }
    }

    #[test]
    fn bind_round_trip() {
        let b = Bind {
            max_xmit_frag: 4280,
            max_recv_frag: 4280,
            assoc_group_id: 0,
            contexts: vec![ContextElem {
                context_id: 0,
                abstract_syntax: srvsvc(),
                transfer_syntaxes: vec![SyntaxId {
                    uuid: NDR20_UUID,
                    version: 2,
                }],
            }],
        };
        let pdu = b.encode(PType::Bind, 1);
        assert_eq!(pdu.len(), 72);
        let h = Header::parse(&pdu).unwrap();
        assert_eq!(h.frag_length, 72);
        assert_eq!(h.ptype(), Some(PType::Bind));
        assert_eq!(Bind::parse(h.body(&pdu).unwrap()).unwrap(), b);
    }

    #[test]
    fn bind_ack_layout_pads_sec_addr() {
        let a = BindAck {
            max_xmit_frag: 4280,
            max_recv_frag: 4280,
            assoc_group_id: 0x1234,
            sec_addr: "\\PIPE\\srvsvc".into(),
            results: vec![
                ContextResult {
                    result: result::ACCEPTANCE,
                    reason: 0,
                    transfer_syntax: SyntaxId {
                        uuid: NDR20_UUID,
                        version: 2,
                    },
                },
                ContextResult {
                    result: result::PROVIDER_REJECTION,
                    reason: reason::PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED,
                    transfer_syntax: SyntaxId::default(),
                },
            ],
        };
        let pdu = a.encode(PType::BindAck, 7);
        // 16 + 8 + 2 + 13 = 39, padded to 40, + 4 + 2*24
        assert_eq!(pdu.len(), 92);
        assert_eq!(pdu[26..39], *b"\\PIPE\\srvsvc\0");
        assert_eq!(pdu[40], 2);
        let h = Header::parse(&pdu).unwrap();
        assert_eq!(BindAck::parse(h.body(&pdu).unwrap()).unwrap(), a);
        let _ = NDR64_UUID;
    }

    #[test]
    fn header_rejects_bad_input() {
        let mut pdu = encode_bind_nak(1, 0);
        assert_eq!(Header::parse(&pdu[..10]), Err(PduError::Truncated));
        pdu[0] = 4;
        assert_eq!(Header::parse(&pdu), Err(PduError::BadVersion(4, 0)));
        pdu[0] = 5;
        pdu[8] = 3;
        pdu[9] = 0;
        assert_eq!(Header::parse(&pdu), Err(PduError::BadFragLength(3)));
        pdu[4] = 0x00; // big-endian
        assert!(matches!(
            Header::parse(&pdu),
            Err(PduError::UnsupportedDrep(_))
        ));
    }

    #[test]
    fn fragments_cover_stub_exactly() {
        let stub: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let frags = encode_request(3, 0, 15, &stub, 1432);
        assert!(frags.len() > 3);
        let mut joined = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 1432);
            let h = Header::parse(f).unwrap();
            assert_eq!(h.flags & PFC_FIRST_FRAG != 0, i == 0);
            assert_eq!(h.flags & PFC_LAST_FRAG != 0, i == frags.len() - 1);
            let r = Request::parse(&h, h.body(f).unwrap()).unwrap();
            assert_eq!(r.opnum, 15);
            assert_eq!(r.alloc_hint as usize, stub.len() - joined.len());
            joined.extend_from_slice(r.stub);
        }
        assert_eq!(joined, stub);
    }

    #[test]
    fn fault_round_trip() {
        let f = Fault {
            context_id: 0,
            status: status::NCA_S_OP_RNG_ERROR,
        };
        let pdu = f.encode(9, true);
        assert_eq!(pdu.len(), FAULT_LEN);
        let h = Header::parse(&pdu).unwrap();
        assert_eq!(h.flags & PFC_DID_NOT_EXECUTE, PFC_DID_NOT_EXECUTE);
        assert_eq!(Fault::parse(h.body(&pdu).unwrap()).unwrap(), f);
    }
}
