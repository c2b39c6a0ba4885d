//! NDR (Network Data Representation) marshalling: the transfer syntaxes NDR 2.0
//! (C706 chapter 14) and NDR64 (MS-RPCE 2.2.5), little-endian only.
//!
//! This is a small hand-driven codec: the caller writes or reads each field in
//! IDL order and is responsible for deferring pointees the way C706 14.3.12
//! requires (embedded pointees follow the outermost structure or array). The
//! differences between the two syntaxes are confined to [`Syntax`]:
//!
//! | item                          | NDR 2.0     | NDR64       |
//! |-------------------------------|-------------|-------------|
//! | pointer / referent id         | 4 bytes, align 4 | 8 bytes, align 8 |
//! | conformance, offset, variance | u32, align 4 | u64, align 8 |
//!
//! Every reader method checks bounds and returns [`NdrError`]; counts read from
//! the wire are checked against the bytes left before anything is allocated,
//! so hostile input can neither panic nor allocate beyond the input's size.

use std::fmt;

/// NDR 2.0 transfer syntax identifier: 8a885d04-1ceb-11c9-9fe8-08002b104860 v2.
pub const NDR20_UUID: Uuid = Uuid::from_fields(
    0x8a88_5d04,
    0x1ceb,
    0x11c9,
    [0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60],
);
/// NDR 2.0 transfer syntax version.
pub const NDR20_VERSION: u32 = 2;
/// NDR64 transfer syntax identifier: 71710533-beba-4937-8319-b5dbef9ccc36 v1.
pub const NDR64_UUID: Uuid = Uuid::from_fields(
    0x7171_0533,
    0xbeba,
    0x4937,
    [0x83, 0x19, 0xb5, 0xdb, 0xef, 0x9c, 0xcc, 0x36],
);
/// NDR64 transfer syntax version.
pub const NDR64_VERSION: u32 = 1;

/// A DCE UUID kept in its wire (little-endian fields) byte order (MS-RPCE 2.2.2.14 / C706 A).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Builds a UUID from the textual field values `d1-d2-d3-d4[0..2]-d4[2..8]`.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Uuid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Uuid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

/// The negotiated transfer syntax of a presentation context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// NDR 2.0 (C706 chapter 14).
    Ndr20,
    /// NDR64 (MS-RPCE 2.2.5).
    Ndr64,
}

impl Syntax {
    /// Size and alignment of a pointer (referent id) in this syntax.
    pub const fn ptr_size(self) -> usize {
        match self {
            Syntax::Ndr20 => 4,
            Syntax::Ndr64 => 8,
        }
    }

    /// The transfer syntax identifier and version.
    pub const fn id(self) -> (Uuid, u32) {
        match self {
            Syntax::Ndr20 => (NDR20_UUID, NDR20_VERSION),
            Syntax::Ndr64 => (NDR64_UUID, NDR64_VERSION),
        }
    }
}

/// The referent id written for every non-null NDR64 unique pointer.
pub const NDR64_UNIQUE_REFERENT: u64 = 0x0002_0000;

/// A malformed or truncated NDR stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NdrError {
    /// The stub ended before the value.
    Truncated,
    /// A count is larger than the data that could hold it, or inconsistent.
    BadCount,
    /// A `[string]` is not null-terminated or has a nonzero offset.
    BadString,
    /// A `[ref]` pointer was null, or a required pointer missing.
    NullRef,
    /// A union discriminant names no arm this implementation knows.
    BadTag(u32),
    /// Bytes were left over where none are allowed.
    Trailing,
}

impl fmt::Display for NdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NdrError::Truncated => f.write_str("NDR data truncated"),
            NdrError::BadCount => f.write_str("NDR count out of range"),
            NdrError::BadString => f.write_str("malformed NDR string"),
            NdrError::NullRef => f.write_str("null reference pointer"),
            NdrError::BadTag(t) => write!(f, "unknown union discriminant {t}"),
            NdrError::Trailing => f.write_str("trailing NDR data"),
        }
    }
}

impl std::error::Error for NdrError {}

/// NDR encoder into an owned buffer. Alignment is relative to the start of the buffer,
/// which must be the start of the stub data.
#[derive(Debug)]
pub struct NdrWriter {
    buf: Vec<u8>,
    syntax: Syntax,
    next_referent: u32,
}

impl NdrWriter {
    /// A new, empty writer for `syntax`.
    pub fn new(syntax: Syntax) -> NdrWriter {
        NdrWriter {
            buf: Vec::new(),
            syntax,
            next_referent: 0x0002_0000,
        }
    }

    /// The transfer syntax in use.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded stub.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Pads with zeros to a multiple of `n` (a power of two).
    pub fn align(&mut self, n: usize) {
        while self.buf.len() % n != 0 {
            self.buf.push(0);
        }
    }

    /// A raw byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// An aligned `unsigned short`.
    pub fn u16(&mut self, v: u16) {
        self.align(2);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An aligned `unsigned long` / DWORD.
    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An aligned hyper.
    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A conformance, offset or variance count (u32 in NDR 2.0, u64 in NDR64).
    pub fn count(&mut self, v: usize) {
        match self.syntax {
            Syntax::Ndr20 => self.u32(v as u32),
            Syntax::Ndr64 => self.u64(v as u64),
        }
    }

    /// Aligns to the pointer size (the alignment of any structure holding a pointer).
    pub fn align_ptr(&mut self) {
        self.align(self.syntax.ptr_size());
    }

    /// A unique or full pointer: a fresh nonzero referent id, or 0 when `present` is false.
    /// The caller marshals the pointee later, at its deferred position.
    ///
    /// NDR64 writes the constant referent id 0x20000 for every unique
    /// pointer, as Windows does: any non-zero value is valid NDR, but some
    /// readers (smb-rs) insist on that one.
    pub fn ptr(&mut self, present: bool) {
        match (self.syntax, present) {
            (_, false) => match self.syntax {
                Syntax::Ndr20 => self.u32(0),
                Syntax::Ndr64 => self.u64(0),
            },
            (Syntax::Ndr20, true) => {
                let id = self.next_referent;
                self.next_referent = self.next_referent.wrapping_add(4).max(4);
                self.u32(id)
            }
            (Syntax::Ndr64, true) => self.u64(NDR64_UNIQUE_REFERENT),
        }
    }

    /// A conformant varying `[string] wchar_t*` pointee: counts then UTF-16LE with a
    /// terminating NUL (C706 14.3.4.2, MS-RPCE 2.2.5.3.4.2).
    pub fn wstring(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
        self.count(units.len());
        self.count(0);
        self.count(units.len());
        for u in units {
            self.buf.extend_from_slice(&u.to_le_bytes());
        }
    }

    /// A unique pointer to a string with its pointee written immediately
    /// (valid for top-level parameters, whose pointees are not deferred further).
    pub fn unique_wstring(&mut self, s: Option<&str>) {
        self.ptr(s.is_some());
        if let Some(s) = s {
            self.wstring(s);
        }
    }

    /// Raw bytes, already in wire form.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}

/// NDR decoder over a borrowed stub. Alignment is relative to the start of the stub.
#[derive(Debug, Clone)]
pub struct NdrReader<'a> {
    data: &'a [u8],
    pos: usize,
    syntax: Syntax,
}

impl<'a> NdrReader<'a> {
    /// A reader over `data` (the stub) in `syntax`.
    pub fn new(data: &'a [u8], syntax: Syntax) -> NdrReader<'a> {
        NdrReader {
            data,
            pos: 0,
            syntax,
        }
    }

    /// The transfer syntax in use.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Current offset in the stub.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], NdrError> {
        if self.remaining() < n {
            return Err(NdrError::Truncated);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Skips padding to a multiple of `n`.
    pub fn align(&mut self, n: usize) -> Result<(), NdrError> {
        let pad = (n - self.pos % n) % n;
        self.take(pad).map(|_| ())
    }

    /// Aligns to the pointer size.
    pub fn align_ptr(&mut self) -> Result<(), NdrError> {
        self.align(self.syntax.ptr_size())
    }

    /// A raw byte.
    pub fn u8(&mut self) -> Result<u8, NdrError> {
        Ok(self.take(1)?[0])
    }

    /// An aligned `unsigned short`.
    pub fn u16(&mut self) -> Result<u16, NdrError> {
        self.align(2)?;
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// An aligned `unsigned long`.
    pub fn u32(&mut self) -> Result<u32, NdrError> {
        self.align(4)?;
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An aligned hyper.
    pub fn u64(&mut self) -> Result<u64, NdrError> {
        self.align(8)?;
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A conformance, offset or variance count, bounded to `usize`.
    pub fn count(&mut self) -> Result<usize, NdrError> {
        let v = match self.syntax {
            Syntax::Ndr20 => u64::from(self.u32()?),
            Syntax::Ndr64 => self.u64()?,
        };
        usize::try_from(v).map_err(|_| NdrError::BadCount)
    }

    /// A pointer's referent id; `true` when non-null.
    pub fn ptr(&mut self) -> Result<bool, NdrError> {
        Ok(match self.syntax {
            Syntax::Ndr20 => self.u32()? != 0,
            Syntax::Ndr64 => self.u64()? != 0,
        })
    }

    /// The conformance of an array of elements at least `min_elem_size` bytes each,
    /// checked against the bytes left so that a lying count cannot drive allocation.
    pub fn array_count(&mut self, min_elem_size: usize) -> Result<usize, NdrError> {
        let n = self.count()?;
        if n.saturating_mul(min_elem_size.max(1)) > self.remaining() {
            return Err(NdrError::BadCount);
        }
        Ok(n)
    }

    /// A conformant varying `[string] wchar_t*` pointee, returned without its NUL.
    /// Unpaired surrogates are replaced (U+FFFD), as Windows would not produce them.
    pub fn wstring(&mut self) -> Result<String, NdrError> {
        let max = self.count()?;
        let offset = self.count()?;
        let actual = self.count()?;
        if offset != 0 || actual > max || actual == 0 {
            return Err(NdrError::BadString);
        }
        let bytes = actual.checked_mul(2).ok_or(NdrError::BadCount)?;
        let raw = self.take(bytes)?;
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let (last, body) = units.split_last().ok_or(NdrError::BadString)?;
        if *last != 0 {
            return Err(NdrError::BadString);
        }
        Ok(String::from_utf16_lossy(body))
    }

    /// A unique pointer to a string whose pointee follows at once (top-level parameter).
    pub fn unique_wstring(&mut self) -> Result<Option<String>, NdrError> {
        if self.ptr()? {
            Ok(Some(self.wstring()?))
        } else {
            Ok(None)
        }
    }

    /// `len` raw bytes.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], NdrError> {
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text_round_trip() {
        assert_eq!(
            NDR20_UUID.to_string(),
            "8a885d04-1ceb-11c9-9fe8-08002b104860"
        );
        assert_eq!(
            NDR64_UUID.to_string(),
            "71710533-beba-4937-8319-b5dbef9ccc36"
        );
        assert_eq!(&NDR20_UUID.0[..4], &[0x04, 0x5d, 0x88, 0x8a]);
    }

    #[test]
    fn ndr20_string_layout() {
        let mut w = NdrWriter::new(Syntax::Ndr20);
        w.u8(1);
        w.unique_wstring(Some("ab"));
        let b = w.into_bytes();
        // 1 byte, 3 pad, referent, max=3, off=0, act=3, "a" "b" NUL
        assert_eq!(b.len(), 4 + 4 + 12 + 6);
        assert_eq!(&b[8..20], &[3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&b[20..], &[b'a', 0, b'b', 0, 0, 0]);
        let mut r = NdrReader::new(&b, Syntax::Ndr20);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.unique_wstring().unwrap().as_deref(), Some("ab"));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn ndr64_counts_are_eight_bytes() {
        let mut w = NdrWriter::new(Syntax::Ndr64);
        w.u32(7);
        w.unique_wstring(Some("x"));
        let b = w.into_bytes();
        // u32, pad 4, ptr 8, 3 counts x 8, 2 units x 2
        assert_eq!(b.len(), 8 + 8 + 24 + 4);
        let mut r = NdrReader::new(&b, Syntax::Ndr64);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.unique_wstring().unwrap().as_deref(), Some("x"));
    }

    #[test]
    fn bad_strings_are_errors() {
        // not terminated
        let b = [2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', 0];
        assert_eq!(
            NdrReader::new(&b, Syntax::Ndr20).wstring(),
            Err(NdrError::BadString)
        );
        // actual > max
        let b = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, b'a', 0, 0, 0];
        assert_eq!(
            NdrReader::new(&b, Syntax::Ndr20).wstring(),
            Err(NdrError::BadString)
        );
        // huge count, truncated data
        let b = [0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(
            NdrReader::new(&b, Syntax::Ndr20).wstring(),
            Err(NdrError::Truncated)
        );
    }

    #[test]
    fn array_count_is_bounded_by_input() {
        let b = [0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4];
        assert_eq!(
            NdrReader::new(&b, Syntax::Ndr20).array_count(4),
            Err(NdrError::BadCount)
        );
        let b = [1, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(NdrReader::new(&b, Syntax::Ndr20).array_count(4), Ok(1));
    }
}
