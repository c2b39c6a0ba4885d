//! A minimal DER reader and writer (ITU-T X.690) for SPNEGO tokens.
//!
//! Only single-byte tags and definite lengths of up to four bytes are
//! accepted. Readers never recurse on their own: callers walk a fixed shape,
//! so nesting depth is bounded by the code, not by the input.

use crate::error::AuthError;

/// One TLV: its tag, its content and the whole encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet.
    pub tag: u8,
    /// The contents octets.
    pub content: &'a [u8],
    /// Tag, length and contents.
    pub raw: &'a [u8],
}

/// Reads consecutive TLVs from a borrowed buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Reads the next TLV.
    pub fn read(&mut self) -> Result<Tlv<'a>, AuthError> {
        let b = self.buf;
        let tag = *b.first().ok_or(AuthError::Malformed("DER: missing tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(AuthError::Malformed("DER: multi-byte tag"));
        }
        let first = *b
            .get(1)
            .ok_or(AuthError::Malformed("DER: missing length"))?;
        let (len, hdr) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return Err(AuthError::Malformed("DER: unsupported length form"));
            }
            let bytes = b
                .get(2..2 + n)
                .ok_or(AuthError::Malformed("DER: truncated length"))?;
            (
                bytes.iter().fold(0usize, |a, &x| (a << 8) | x as usize),
                2 + n,
            )
        };
        let end = hdr
            .checked_add(len)
            .ok_or(AuthError::Malformed("DER: length overflow"))?;
        let raw = b
            .get(..end)
            .ok_or(AuthError::Malformed("DER: truncated value"))?;
        self.buf = &b[end..];
        Ok(Tlv {
            tag,
            content: &raw[hdr..],
            raw,
        })
    }

    /// Reads the next TLV and checks its tag.
    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, AuthError> {
        let t = self.read()?;
        if t.tag != tag {
            return Err(AuthError::Malformed("DER: unexpected tag"));
        }
        Ok(t)
    }
}

/// Appends a TLV with a minimal definite length.
pub fn write(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// A TLV as a new vector.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(content.len() + 6);
    write(&mut v, tag, content);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for n in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![0x5a; n];
            let enc = tlv(0x04, &content);
            let mut r = Reader::new(&enc);
            let t = r.read().unwrap();
            assert_eq!((t.tag, t.content.len(), t.raw.len()), (0x04, n, enc.len()));
            assert!(r.is_empty());
        }
    }

    #[test]
    fn bad_encodings_are_errors() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x82, 0x01],
            &[0x30, 0x03, 1],
            &[0x1f, 0],
        ] {
            assert!(Reader::new(bad).read().is_err(), "{bad:?}");
        }
        assert!(Reader::new(&[0x30, 0]).expect(0x04).is_err());
    }
}
