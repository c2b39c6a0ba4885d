//! Little-endian appends and back-patching for encoders.
//!
//! Encoders append to a caller-owned `Vec<u8>`; offsets that are only known after a later part
//! is written are reserved first and patched afterwards.

/// Little-endian append and patch operations on a growable byte buffer.
pub trait LeWrite {
    /// Appends one byte.
    fn put_u8(&mut self, v: u8);
    /// Appends a little-endian `u16`.
    fn put_u16_le(&mut self, v: u16);
    /// Appends a little-endian `u32`.
    fn put_u32_le(&mut self, v: u32);
    /// Appends a little-endian `u64`.
    fn put_u64_le(&mut self, v: u64);
    /// Appends raw bytes.
    fn put_bytes(&mut self, b: &[u8]);
    /// Appends `n` zero bytes.
    fn put_zeros(&mut self, n: usize);
    /// Appends zeros until `(len - start)` is a multiple of `align` (a power of two).
    fn pad_to(&mut self, start: usize, align: usize);
    /// Overwrites a little-endian `u16` at `pos` (which must already be written).
    fn patch_u16_le(&mut self, pos: usize, v: u16);
    /// Overwrites a little-endian `u32` at `pos`.
    fn patch_u32_le(&mut self, pos: usize, v: u32);
}

impl LeWrite for Vec<u8> {
    #[inline]
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    #[inline]
    fn put_u16_le(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn put_u32_le(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn put_u64_le(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn put_bytes(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    #[inline]
    fn put_zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
    #[inline]
    fn pad_to(&mut self, start: usize, align: usize) {
        let rel = self.len().saturating_sub(start);
        let pad = (align - rel % align) % align;
        self.put_zeros(pad);
    }
    #[inline]
    fn patch_u16_le(&mut self, pos: usize, v: u16) {
        self[pos..pos + 2].copy_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn patch_u32_le(&mut self, pos: usize, v: u32) {
        self[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
    }
}

/// Saturating conversion used for length fields an encoder writes (values that do not fit are
/// clamped; callers keep buffers within protocol limits).
pub(crate) fn u16_len(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// As [`u16_len`] for 32-bit fields.
pub(crate) fn u32_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_little_endian_and_patches() {
        let mut v = vec![0xAA];
        v.put_u16_le(0x0102);
        v.put_u32_le(0x0304_0506);
        v.put_u64_le(1);
        assert_eq!(&v[..7], &[0xAA, 0x02, 0x01, 0x06, 0x05, 0x04, 0x03]);
        assert_eq!(v.len(), 15);
        v.patch_u16_le(1, 0xBEEF);
        assert_eq!(&v[1..3], &[0xEF, 0xBE]);
        v.patch_u32_le(3, 0x1122_3344);
        assert_eq!(&v[3..7], &[0x44, 0x33, 0x22, 0x11]);
    }

    #[test]
    fn pads_relative_to_start() {
        let mut v = vec![0u8; 3];
        v.pad_to(1, 8);
        assert_eq!(v.len(), 9);
        v.pad_to(1, 8);
        assert_eq!(v.len(), 9);
        v.put_u8(1);
        v.pad_to(0, 4);
        assert_eq!(v.len(), 12);
    }
}
