//! The client half of a connection-oriented association (C706 12.6, MS-RPCE 3.3.3),
//! enough for tests and the load generator's probes: build a bind, read the
//! bind_ack, fragment requests, reassemble responses, surface faults.
//! No I/O: the caller moves the PDUs over its own pipe.

use std::fmt;

use crate::ndr::{Syntax, Uuid};
use crate::pdu::{
    self, parse_bind_nak, result, Bind, BindAck, ContextElem, Fault, Header, PType, PduError,
    Response, SyntaxId, BIND_TIME_FEATURE_PREFIX, PFC_FIRST_FRAG, PFC_LAST_FRAG,
};

/// Why a client exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The PDU was malformed.
    Pdu(PduError),
    /// The server sent bind_nak with this reason.
    BindNak(u16),
    /// No proposed context was accepted.
    NoContextAccepted,
    /// The server sent a fault with this status.
    Fault(u32),
    /// A PDU of an unexpected type, call id or order.
    Unexpected,
    /// The reassembled response exceeded the client's limit.
    TooLarge,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Pdu(e) => write!(f, "{e}"),
            ClientError::BindNak(r) => write!(f, "bind_nak, reason {r}"),
            ClientError::NoContextAccepted => f.write_str("no presentation context accepted"),
            ClientError::Fault(s) => write!(f, "fault 0x{s:08x}"),
            ClientError::Unexpected => f.write_str("unexpected PDU"),
            ClientError::TooLarge => f.write_str("response too large"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<PduError> for ClientError {
    fn from(e: PduError) -> ClientError {
        ClientError::Pdu(e)
    }
}

/// Largest response stub the client reassembles.
pub const MAX_RESPONSE_STUB: usize = 64 * 1024 * 1024;

/// Client association state for one interface.
#[derive(Debug)]
pub struct RpcClient {
    interface: SyntaxId,
    offered: Vec<Syntax>,
    max_frag: u16,
    next_call_id: u32,
    bound: Option<(u16, Syntax)>,
    max_xmit: u16,
    pending: Option<(u32, Vec<u8>)>,
    /// The last bind_ack received.
    pub bind_ack: Option<BindAck>,
}

impl RpcClient {
    /// A client for `interface` that will offer `syntaxes` (one context each, ids 0..)
    /// and announce `max_frag` for both directions.
    pub fn new(interface: SyntaxId, syntaxes: &[Syntax], max_frag: u16) -> RpcClient {
        RpcClient {
            interface,
            offered: syntaxes.to_vec(),
            max_frag,
            next_call_id: 1,
            bound: None,
            max_xmit: max_frag,
            pending: None,
            bind_ack: None,
        }
    }

    /// The accepted (context id, transfer syntax), after the bind_ack.
    pub fn accepted(&self) -> Option<(u16, Syntax)> {
        self.bound
    }

    /// The bind PDU; with `feature_negotiation`, a last context proposes bind time
    /// feature negotiation bits 0x3 as Windows clients do (MS-RPCE 3.3.1.5.3).
    pub fn bind(&mut self, feature_negotiation: bool) -> Vec<u8> {
        let mut contexts: Vec<ContextElem> = self
            .offered
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (uuid, version) = s.id();
                ContextElem {
                    context_id: i as u16,
                    abstract_syntax: self.interface,
                    transfer_syntaxes: vec![SyntaxId { uuid, version }],
                }
            })
            .collect();
        if feature_negotiation {
            let mut u = [0u8; 16];
            u[..8].copy_from_slice(&BIND_TIME_FEATURE_PREFIX);
            u[8] = 0x03;
            contexts.push(ContextElem {
                context_id: contexts.len() as u16,
                abstract_syntax: self.interface,
                transfer_syntaxes: vec![SyntaxId {
                    uuid: Uuid(u),
                    version: 1,
                }],
            });
        }
        let b = Bind {
            max_xmit_frag: self.max_frag,
            max_recv_frag: self.max_frag,
            assoc_group_id: 0,
            contexts,
        };
        let id = self.call_id();
        b.encode(PType::Bind, id)
    }

    fn call_id(&mut self) -> u32 {
        let id = self.next_call_id;
        self.next_call_id = self.next_call_id.wrapping_add(1).max(1);
        id
    }

    /// Reads the bind_ack (or bind_nak) and picks the first accepted context.
    pub fn handle_bind_response(&mut self, pdu: &[u8]) -> Result<(u16, Syntax), ClientError> {
        let h = Header::parse(pdu)?;
        let body = h.body(pdu)?;
        match h.ptype() {
            Some(PType::BindAck) => {}
            Some(PType::BindNak) => return Err(ClientError::BindNak(parse_bind_nak(body)?)),
            _ => return Err(ClientError::Unexpected),
        }
        let ack = BindAck::parse(body)?;
        self.max_xmit = ack.max_recv_frag.min(self.max_frag);
        let accepted = ack
            .results
            .iter()
            .enumerate()
            .take(self.offered.len())
            .find(|(_, r)| r.result == result::ACCEPTANCE)
            .map(|(i, _)| (i as u16, self.offered[i]));
        self.bind_ack = Some(ack);
        self.bound = accepted;
        accepted.ok_or(ClientError::NoContextAccepted)
    }

    /// The request fragments for one call on the accepted context.
    pub fn request(&mut self, opnum: u16, stub: &[u8]) -> Result<Vec<Vec<u8>>, ClientError> {
        let (ctx, _) = self.bound.ok_or(ClientError::NoContextAccepted)?;
        let id = self.call_id();
        self.pending = Some((id, Vec::new()));
        Ok(pdu::encode_request(id, ctx, opnum, stub, self.max_xmit))
    }

    /// Feeds one response (or fault) fragment; returns the whole stub after the last one.
    pub fn handle_response(&mut self, pdu: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let h = Header::parse(pdu)?;
        let body = h.body(pdu)?;
        let Some((id, mut stub)) = self.pending.take() else {
            return Err(ClientError::Unexpected);
        };
        if h.call_id != id {
            return Err(ClientError::Unexpected);
        }
        match h.ptype() {
            Some(PType::Fault) => Err(ClientError::Fault(Fault::parse(body)?.status)),
            Some(PType::Response) => {
                let r = Response::parse(body)?;
                if (h.flags & PFC_FIRST_FRAG != 0) != stub.is_empty() && !r.stub.is_empty() {
                    return Err(ClientError::Unexpected);
                }
                if stub.len() + r.stub.len() > MAX_RESPONSE_STUB {
                    return Err(ClientError::TooLarge);
                }
                stub.extend_from_slice(r.stub);
                if h.flags & PFC_LAST_FRAG != 0 {
                    Ok(Some(stub))
                } else {
                    self.pending = Some((id, stub));
                    Ok(None)
                }
            }
            _ => Err(ClientError::Unexpected),
        }
    }
}
