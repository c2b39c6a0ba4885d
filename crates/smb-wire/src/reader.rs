//! A cursor over borrowed bytes for the variable parts of messages (after rustls's `Reader`).
//!
//! Every `take_*` returns `None` when too few bytes remain, and then consumes nothing.

/// A forward-only cursor over a byte slice. Never allocates, never copies.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// `true` when everything has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// How many bytes have been consumed.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unconsumed bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Consumes and returns the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// Consumes everything left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let r = self.rest();
        self.pos = self.buf.len();
        r
    }

    /// Consumes the next `N` bytes as a fixed-size array reference.
    pub fn take_array<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }

    /// Consumes one byte.
    pub fn take_u8(&mut self) -> Option<u8> {
        self.take_array::<1>().map(|a| a[0])
    }

    /// Consumes a little-endian `u16`.
    pub fn take_u16_le(&mut self) -> Option<u16> {
        self.take_array().map(|a| u16::from_le_bytes(*a))
    }

    /// Consumes a little-endian `u32`.
    pub fn take_u32_le(&mut self) -> Option<u32> {
        self.take_array().map(|a| u32::from_le_bytes(*a))
    }

    /// Consumes a little-endian `u64`.
    pub fn take_u64_le(&mut self) -> Option<u64> {
        self.take_array().map(|a| u64::from_le_bytes(*a))
    }

    /// Consumes `n` bytes and returns a reader over just them.
    pub fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.take(n).map(Reader::new)
    }
}

/// Reads a little-endian `u16` at a constant offset of a fixed-size array (no bounds check at run time).
#[inline(always)]
pub(crate) fn u16_at<const N: usize>(a: &[u8; N], off: usize) -> u16 {
    u16::from_le_bytes([a[off], a[off + 1]])
}

/// Reads a little-endian `u32` at a constant offset of a fixed-size array.
#[inline(always)]
pub(crate) fn u32_at<const N: usize>(a: &[u8; N], off: usize) -> u32 {
    u32::from_le_bytes([a[off], a[off + 1], a[off + 2], a[off + 3]])
}

/// Reads a little-endian `u64` at a constant offset of a fixed-size array.
#[inline(always)]
pub(crate) fn u64_at<const N: usize>(a: &[u8; N], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&a[off..off + 8]);
    u64::from_le_bytes(b)
}

/// Reads a 16-byte field at a constant offset of a fixed-size array.
#[inline(always)]
pub(crate) fn arr16_at<const N: usize>(a: &[u8; N], off: usize) -> [u8; 16] {
    let mut b = [0u8; 16];
    b.copy_from_slice(&a[off..off + 16]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_in_order_and_stops_at_end() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut r = Reader::new(&data);
        assert_eq!(r.take_u8(), Some(1));
        assert_eq!(r.take_u16_le(), Some(0x0302));
        assert_eq!(r.take_u32_le(), Some(0x0706_0504));
        assert_eq!(r.position(), 7);
        assert_eq!(r.take_u64_le(), Some(0x0f0e_0d0c_0b0a_0908));
        assert!(r.is_empty());
        assert_eq!(r.take_u8(), None);
        assert_eq!(r.take(0), Some(&[][..]));
    }

    #[test]
    fn failed_take_consumes_nothing() {
        let data = [1u8, 2, 3];
        let mut r = Reader::new(&data);
        assert_eq!(r.take_u32_le(), None);
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.take(usize::MAX), None);
        assert_eq!(r.take_array::<3>(), Some(&[1, 2, 3]));
    }

    #[test]
    fn sub_reader_is_bounded() {
        let data = [1u8, 2, 3, 4, 5];
        let mut r = Reader::new(&data);
        let mut s = r.sub(2).unwrap();
        assert_eq!(s.take_u16_le(), Some(0x0201));
        assert_eq!(s.take_u8(), None);
        assert_eq!(r.rest(), &[3, 4, 5]);
        assert!(r.sub(4).is_none());
        assert_eq!(r.take_rest(), &[3, 4, 5]);
    }
}
