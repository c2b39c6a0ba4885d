//! Requests as bytes: the SMB2 header (MS-SMB2 2.2.1.2), the Direct TCP transport frame
//! around it (MS-SMB2 2.1), and signing (MS-SMB2 3.2.4.1.1, 3.1.4.1).

use core::ops::Range;

use smb_auth::signing::{sign, SigningKey};
use smb_wire::frame::FrameMark;
use smb_wire::header::{flags, Command, Header, HeaderRepr, HEADER_LEN};
use smb_wire::msg::{emit_message, EmitBody};

/// A body of StructureSize 4 and nothing else: the ECHO, LOGOFF and TREE_DISCONNECT
/// requests (MS-SMB2 2.2.28, 2.2.7, 2.2.11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmptyBody;

impl EmitBody for EmptyBody {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&[4, 0, 0, 0]);
    }
}

/// Appends `hdr` + `body` to `out` as one Direct TCP frame (MS-SMB2 2.1), signed with `key`
/// when given (the SMB2_FLAGS_SIGNED flag is set first, MS-SMB2 3.2.4.1.1). Returns the range
/// of the message (without its 4-byte frame header) in `out`: what a preauth hash or a log
/// takes.
///
/// # Panics
/// If the message is larger than a frame can carry (an encoder bug: requests are small).
pub fn emit_request<B: EmitBody + ?Sized>(
    hdr: &HeaderRepr,
    body: &B,
    key: Option<&SigningKey>,
    out: &mut Vec<u8>,
) -> Range<usize> {
    let mark = FrameMark::begin(out);
    let range = if let Some(k) = key {
        let mut h = *hdr;
        h.flags |= flags::SIGNED;
        let r = emit_message(&h, body, out);
        sign(k, &mut out[r.clone()]);
        r
    } else {
        emit_message(hdr, body, out)
    };
    mark.finish(out).expect("a request fits in one frame");
    range
}

/// `hdr` + `body` as one message without framing (what a test hands an engine directly, or
/// chains into a compound), signed with `key` when given.
pub fn request_message<B: EmitBody + ?Sized>(
    hdr: &HeaderRepr,
    body: &B,
    key: Option<&SigningKey>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let r = emit_request(hdr, body, key, &mut out);
    out.drain(..r.start);
    out
}

/// Sets SMB2_FLAGS_SIGNED on the message `msg` (header + body, already built) and signs it
/// with `key` (MS-SMB2 3.2.4.1.1). A message shorter than a header is left alone.
pub fn set_signed(key: &SigningKey, msg: &mut [u8]) {
    if msg.len() < HEADER_LEN {
        return;
    }
    let mut h = Header::new_unchecked(&mut msg[..HEADER_LEN]);
    let f = h.flags();
    h.set_flags(f | flags::SIGNED);
    sign(key, msg);
}

/// The MessageId sequence of a connection that sends its requests one at a time, with the
/// CreditRequest every request carries (MS-SMB2 3.2.4.1.3: each request takes the next id;
/// 3.2.4.1.5: a request asks for credits in CreditRequest). CreditCharge is left at 1.
///
/// A caller that pipelines under the server's grants uses [`crate::Credits`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    next_mid: u64,
    credit_request: u16,
}

impl Requests {
    /// A connection that has sent nothing, asking for `credit_request` credits per request.
    pub fn new(credit_request: u16) -> Self {
        Requests {
            next_mid: 0,
            credit_request,
        }
    }

    /// The MessageId the next request gets.
    pub fn next_message_id(&self) -> u64 {
        self.next_mid
    }

    /// Sets the MessageId the next request gets (to go back over an id handed out but never
    /// sent, or to test the server's window).
    pub fn set_next_message_id(&mut self, mid: u64) {
        self.next_mid = mid;
    }

    /// Takes the next MessageId.
    pub fn take_message_id(&mut self) -> u64 {
        let mid = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        mid
    }

    /// The header of the next request for `command` on `session_id` / `tree_id`, taking its
    /// MessageId.
    pub fn header(&mut self, command: Command, session_id: u64, tree_id: u32) -> HeaderRepr {
        let mut hdr = HeaderRepr::request(command, self.take_message_id(), session_id, tree_id);
        hdr.credit = self.credit_request;
        hdr
    }

    /// Appends the next request framed to `out` (see [`emit_request`]); returns the range of
    /// the message in `out`.
    pub fn emit<B: EmitBody + ?Sized>(
        &mut self,
        command: Command,
        session_id: u64,
        tree_id: u32,
        body: &B,
        key: Option<&SigningKey>,
        out: &mut Vec<u8>,
    ) -> Range<usize> {
        let hdr = self.header(command, session_id, tree_id);
        emit_request(&hdr, body, key, out)
    }

    /// The next request as one framed buffer (NBSS header included).
    pub fn frame<B: EmitBody + ?Sized>(
        &mut self,
        command: Command,
        session_id: u64,
        tree_id: u32,
        body: &B,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(command, session_id, tree_id, body, None, &mut out);
        out
    }

    /// The next request as one message without framing, signed with `key` when given.
    pub fn message<B: EmitBody + ?Sized>(
        &mut self,
        command: Command,
        session_id: u64,
        tree_id: u32,
        body: &B,
        key: Option<&SigningKey>,
    ) -> Vec<u8> {
        let hdr = self.header(command, session_id, tree_id);
        request_message(&hdr, body, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smb_auth::signing::{derive_signing_key, verify, SigningAlgorithm};
    use smb_wire::frame::split_frame;
    use smb_wire::msg::{parse_request, Request};

    #[test]
    fn requests_take_consecutive_message_ids_and_frame_them() {
        let mut r = Requests::new(64);
        let mut out = Vec::new();
        let a = r.emit(Command::Echo, 5, 0, &EmptyBody, None, &mut out);
        let b = r.emit(Command::Echo, 5, 0, &EmptyBody, None, &mut out);
        assert_eq!((a.start, b.start), (4, a.end + 4));
        let (p, used) = split_frame(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(p, a);
        let (h, req) = parse_request(&out[p]).unwrap();
        assert!(matches!(req, Request::Echo(_)));
        assert_eq!((h.message_id(), h.credit(), h.session_id()), (0, 64, 5));
        let (h, _) = parse_request(&out[used + 4..]).unwrap();
        assert_eq!(h.message_id(), 1);
        assert_eq!(r.next_message_id(), 2);
    }

    #[test]
    fn signed_requests_verify_and_carry_the_flag() {
        let key = derive_signing_key(0x0210, &[7; 16], None, SigningAlgorithm::HmacSha256);
        let mut r = Requests::new(1);
        let msg = r.message(Command::Echo, 9, 0, &EmptyBody, Some(&key));
        let h = Header::new_checked(&msg[..]).unwrap();
        assert!(h.is_signed());
        assert!(verify(&key, &msg));
        let mut plain = r.message(Command::Echo, 9, 0, &EmptyBody, None);
        assert!(!verify(&key, &plain));
        set_signed(&key, &mut plain);
        assert!(verify(&key, &plain));
    }
}
