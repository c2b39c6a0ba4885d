//! Compound chains: several SMB2 messages in one frame linked by NextCommand (MS-SMB2 3.2.4.1.4,
//! 3.3.5.2.7).
//!
//! Rules enforced: each message starts with the SMB2 ProtocolId and a full header; a non-zero
//! NextCommand is a multiple of 8, at least the header length (so the chain moves strictly
//! forward and cannot loop) and within the payload; the last message has NextCommand 0 and
//! runs to the end of the payload.

use crate::error::WireError;
use crate::header::HEADER_LEN;
use crate::protocol_id::SMB2_MAGIC;

/// Iterator over the messages of a compound chain; each item is one message (header and body),
/// trimmed to its NextCommand when that is non-zero. After an error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Compound<'a> {
    /// Iterates over the messages in an SMB2 frame payload.
    pub fn new(payload: &'a [u8]) -> Self {
        Compound {
            rest: payload,
            offset: 0,
            done: payload.is_empty(),
        }
    }

    /// Offset, within the payload, of the next message to be yielded.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

/// Splits the first message off `payload`, returning it and the rest (`None` for the last).
pub fn split_message(payload: &[u8]) -> Result<(&[u8], Option<&[u8]>), WireError> {
    let Some(h) = payload.get(..HEADER_LEN) else {
        return Err(WireError::ShortHeader { len: payload.len() });
    };
    if h[..4] != SMB2_MAGIC {
        return Err(WireError::BadProtocolId);
    }
    let next = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
    if next == 0 {
        return Ok((payload, None));
    }
    let n = next as usize;
    if n % 8 != 0 || n < HEADER_LEN || n >= payload.len() {
        return Err(WireError::BadNextCommand { next });
    }
    let (msg, rest) = payload.split_at(n);
    Ok((msg, Some(rest)))
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<&'a [u8], WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match split_message(self.rest) {
            Ok((msg, rest)) => {
                self.offset += msg.len();
                match rest {
                    Some(r) => self.rest = r,
                    None => {
                        self.rest = &[];
                        self.done = true;
                    }
                }
                Some(Ok(msg))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Compound<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{Command, HeaderRepr};

    fn msg(next: u32, body_len: usize) -> Vec<u8> {
        let mut h = HeaderRepr::request(Command::Echo, 1, 0, 0);
        h.next_command = next;
        let mut out = Vec::new();
        h.emit(&mut out);
        out.resize(HEADER_LEN + body_len, 0xAB);
        out
    }

    #[test]
    fn single_message() {
        let m = msg(0, 4);
        let v: Vec<_> = Compound::new(&m).collect();
        assert_eq!(v, vec![Ok(&m[..])]);
    }

    #[test]
    fn chain_of_three() {
        let mut p = msg(72, 8);
        p.extend(msg(80, 16));
        p.extend(msg(0, 5));
        let v: Vec<_> = Compound::new(&p).map(|r| r.unwrap().len()).collect();
        assert_eq!(v, vec![72, 80, 69]);
    }

    #[test]
    fn misaligned_next_command() {
        let mut p = msg(70, 6);
        p.extend(msg(0, 4));
        let v: Vec<_> = Compound::new(&p).collect();
        assert_eq!(v, vec![Err(WireError::BadNextCommand { next: 70 })]);
    }

    #[test]
    fn next_command_past_end_or_backwards() {
        let p = msg(128, 8);
        assert_eq!(
            Compound::new(&p).next(),
            Some(Err(WireError::BadNextCommand { next: 128 }))
        );
        // Pointing at its own end exactly (nothing follows) is also refused.
        let p = msg(72, 8);
        assert_eq!(
            Compound::new(&p).next(),
            Some(Err(WireError::BadNextCommand { next: 72 }))
        );
        // Smaller than a header: would loop or overlap.
        let mut p = msg(8, 8);
        p.extend(msg(0, 0));
        assert_eq!(
            Compound::new(&p).next(),
            Some(Err(WireError::BadNextCommand { next: 8 }))
        );
    }

    #[test]
    fn truncated_second_header_then_stops() {
        let mut p = msg(72, 8);
        p.extend(&msg(0, 0)[..40]);
        let mut it = Compound::new(&p);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next(), Some(Err(WireError::ShortHeader { len: 40 })));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn bad_protocol_in_chain() {
        let mut p = msg(72, 8);
        let mut second = msg(0, 0);
        second[0] = 0xFF;
        p.extend(second);
        let v: Vec<_> = Compound::new(&p).collect();
        assert_eq!(v[1], Err(WireError::BadProtocolId));
    }

    #[test]
    fn empty_payload_yields_nothing() {
        assert_eq!(Compound::new(&[]).next(), None);
    }
}
