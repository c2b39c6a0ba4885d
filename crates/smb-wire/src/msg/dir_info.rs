//! Directory information classes returned by QUERY_DIRECTORY (MS-FSCC 2.4): a writer that
//! chains entries (NextEntryOffset, each entry 8-byte aligned) within the client's
//! OutputBufferLength, and a checked reader for the same buffers.
//!
//! Supported classes and the offset of FileName in each:
//!
//! | class | value | MS-FSCC | FileName at |
//! |---|---|---|---|
//! | FileDirectoryInformation | 0x01 | 2.4.10 | 64 |
//! | FileFullDirectoryInformation | 0x02 | 2.4.14 | 68 |
//! | FileBothDirectoryInformation | 0x03 | 2.4.8 | 94 |
//! | FileNamesInformation | 0x0C | 2.4.28 | 12 |
//! | FileIdBothDirectoryInformation | 0x25 | 2.4.17 | 104 |
//! | FileIdFullDirectoryInformation | 0x26 | 2.4.18 | 80 |

use crate::error::WireError;
use crate::writer::{u32_len, LeWrite};

/// FileInformationClass values of the supported classes (MS-FSCC 2.4).
pub mod class {
    /// FileDirectoryInformation.
    pub const DIRECTORY: u8 = 0x01;
    /// FileFullDirectoryInformation.
    pub const FULL_DIRECTORY: u8 = 0x02;
    /// FileBothDirectoryInformation.
    pub const BOTH_DIRECTORY: u8 = 0x03;
    /// FileNamesInformation.
    pub const NAMES: u8 = 0x0C;
    /// FileIdBothDirectoryInformation.
    pub const ID_BOTH_DIRECTORY: u8 = 0x25;
    /// FileIdFullDirectoryInformation.
    pub const ID_FULL_DIRECTORY: u8 = 0x26;
}

/// Alignment of every entry after the first, relative to the start of the buffer.
pub const ENTRY_ALIGN: usize = 8;

/// Capacity of the ShortName field of the Both classes, in bytes (12 UTF-16 code units).
pub const SHORT_NAME_CAPACITY: usize = 24;

/// A directory information class this module writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirectoryInfoClass {
    /// FileDirectoryInformation (MS-FSCC 2.4.10).
    Directory,
    /// FileFullDirectoryInformation (MS-FSCC 2.4.14): adds EaSize.
    FullDirectory,
    /// FileBothDirectoryInformation (MS-FSCC 2.4.8): adds EaSize and the 8.3 short name.
    BothDirectory,
    /// FileNamesInformation (MS-FSCC 2.4.28): FileIndex and the name only.
    Names,
    /// FileIdBothDirectoryInformation (MS-FSCC 2.4.17): Both plus the 64-bit FileId.
    IdBothDirectory,
    /// FileIdFullDirectoryInformation (MS-FSCC 2.4.18): Full plus the 64-bit FileId.
    IdFullDirectory,
}

impl DirectoryInfoClass {
    /// Every supported class.
    pub const ALL: [DirectoryInfoClass; 6] = [
        DirectoryInfoClass::Directory,
        DirectoryInfoClass::FullDirectory,
        DirectoryInfoClass::BothDirectory,
        DirectoryInfoClass::Names,
        DirectoryInfoClass::IdBothDirectory,
        DirectoryInfoClass::IdFullDirectory,
    ];

    /// The class for a QUERY_DIRECTORY FileInformationClass, or `None` for one this module
    /// does not write (the server answers STATUS_INVALID_INFO_CLASS, MS-SMB2 3.3.5.18).
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            class::DIRECTORY => DirectoryInfoClass::Directory,
            class::FULL_DIRECTORY => DirectoryInfoClass::FullDirectory,
            class::BOTH_DIRECTORY => DirectoryInfoClass::BothDirectory,
            class::NAMES => DirectoryInfoClass::Names,
            class::ID_BOTH_DIRECTORY => DirectoryInfoClass::IdBothDirectory,
            class::ID_FULL_DIRECTORY => DirectoryInfoClass::IdFullDirectory,
            _ => return None,
        })
    }

    /// The FileInformationClass value.
    pub const fn to_u8(self) -> u8 {
        match self {
            DirectoryInfoClass::Directory => class::DIRECTORY,
            DirectoryInfoClass::FullDirectory => class::FULL_DIRECTORY,
            DirectoryInfoClass::BothDirectory => class::BOTH_DIRECTORY,
            DirectoryInfoClass::Names => class::NAMES,
            DirectoryInfoClass::IdBothDirectory => class::ID_BOTH_DIRECTORY,
            DirectoryInfoClass::IdFullDirectory => class::ID_FULL_DIRECTORY,
        }
    }

    /// Offset of FileName in an entry: the size of the entry's fixed part.
    pub const fn name_offset(self) -> usize {
        match self {
            DirectoryInfoClass::Directory => 64,
            DirectoryInfoClass::FullDirectory => 68,
            DirectoryInfoClass::BothDirectory => 94,
            DirectoryInfoClass::Names => 12,
            DirectoryInfoClass::IdBothDirectory => 104,
            DirectoryInfoClass::IdFullDirectory => 80,
        }
    }

    const fn has_attributes(self) -> bool {
        !matches!(self, DirectoryInfoClass::Names)
    }

    const fn has_ea_size(self) -> bool {
        !matches!(
            self,
            DirectoryInfoClass::Names | DirectoryInfoClass::Directory
        )
    }

    const fn has_short_name(self) -> bool {
        matches!(
            self,
            DirectoryInfoClass::BothDirectory | DirectoryInfoClass::IdBothDirectory
        )
    }

    /// Offset of the 64-bit FileId, for the Id classes.
    const fn file_id_offset(self) -> Option<usize> {
        match self {
            DirectoryInfoClass::IdBothDirectory => Some(96),
            DirectoryInfoClass::IdFullDirectory => Some(72),
            _ => None,
        }
    }

    /// Offset of FileNameLength.
    const fn name_length_offset(self) -> usize {
        match self {
            DirectoryInfoClass::Names => 8,
            _ => 60,
        }
    }

    /// Bytes `e` takes in this class, without the padding that may follow it.
    pub fn entry_len(self, e: &DirectoryEntry<'_>) -> usize {
        self.name_offset() + e.name.len()
    }
}

/// One directory entry, with the union of the fields of the supported classes. Times are
/// FILETIME values (100 ns since 1601), names UTF-16LE. Writing ignores the fields a class
/// does not carry; reading leaves them zero / empty (see [`DirectoryEntry::for_class`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectoryEntry<'a> {
    /// FileIndex (0 where the file system has no stable index).
    pub file_index: u32,
    /// CreationTime, LastAccessTime, LastWriteTime, ChangeTime.
    pub times: [u64; 4],
    /// EndOfFile.
    pub end_of_file: u64,
    /// AllocationSize.
    pub allocation_size: u64,
    /// FileAttributes (MS-FSCC 2.6).
    pub file_attributes: u32,
    /// EaSize (Full and Both classes; for a reparse point the reparse tag, MS-FSCC 2.4.14).
    pub ea_size: u32,
    /// The 8.3 short name, UTF-16LE, at most [`SHORT_NAME_CAPACITY`] bytes (Both classes;
    /// a longer one is cut to that when written).
    pub short_name: &'a [u8],
    /// FileId (Id classes).
    pub file_id: u64,
    /// FileName, UTF-16LE.
    pub name: &'a [u8],
}

impl<'a> DirectoryEntry<'a> {
    /// This entry with the fields `class` does not carry cleared: what reading it back
    /// from a buffer of that class yields.
    pub fn for_class(&self, class: DirectoryInfoClass) -> DirectoryEntry<'a> {
        let mut e = *self;
        if !class.has_attributes() {
            e.times = [0; 4];
            e.end_of_file = 0;
            e.allocation_size = 0;
            e.file_attributes = 0;
        }
        if !class.has_ea_size() {
            e.ea_size = 0;
        }
        if class.has_short_name() {
            e.short_name = short_name_field(e.short_name);
        } else {
            e.short_name = &[];
        }
        if class.file_id_offset().is_none() {
            e.file_id = 0;
        }
        e
    }
}

fn short_name_field(s: &[u8]) -> &[u8] {
    &s[..s.len().min(SHORT_NAME_CAPACITY)]
}

/// Appends entries of one class to a buffer, chaining them with NextEntryOffset and aligning
/// each to 8 bytes from the start of the buffer, and never letting the buffer grow past the
/// client's OutputBufferLength. The last entry's NextEntryOffset is 0 and no padding follows
/// it.
#[derive(Debug)]
pub struct DirectoryInfoWriter<'o> {
    out: &'o mut Vec<u8>,
    class: DirectoryInfoClass,
    start: usize,
    max_len: usize,
    last: Option<usize>,
    count: usize,
}

impl<'o> DirectoryInfoWriter<'o> {
    /// A writer that appends to `out` from its current end, at most `max_len` bytes.
    pub fn new(out: &'o mut Vec<u8>, class: DirectoryInfoClass, max_len: u32) -> Self {
        let start = out.len();
        DirectoryInfoWriter {
            out,
            class,
            start,
            max_len: max_len as usize,
            last: None,
            count: 0,
        }
    }

    /// The class being written.
    pub fn class(&self) -> DirectoryInfoClass {
        self.class
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len() - self.start
    }

    /// `true` before the first entry.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entries written so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `true` when `e` would fit after the entries already written.
    pub fn fits(&self, e: &DirectoryEntry<'_>) -> bool {
        let at = if self.count == 0 {
            0
        } else {
            align_up(self.len(), ENTRY_ALIGN)
        };
        at.saturating_add(self.class.entry_len(e)) <= self.max_len
    }

    /// Appends `e` and returns `true`, or returns `false` and writes nothing when it does
    /// not fit in what is left of the output length (the caller keeps it for the next
    /// QUERY_DIRECTORY; a first entry that does not fit is STATUS_BUFFER_OVERFLOW / _TOO_SMALL,
    /// MS-SMB2 3.3.5.18).
    pub fn push(&mut self, e: &DirectoryEntry<'_>) -> bool {
        if !self.fits(e) {
            return false;
        }
        let class = self.class;
        if let Some(prev) = self.last {
            self.out.pad_to(self.start, ENTRY_ALIGN);
            let next = u32_len(self.out.len() - prev);
            self.out.patch_u32_le(prev, next);
        }
        let entry = self.out.len();
        let out = &mut *self.out;
        out.put_u32_le(0); // NextEntryOffset, patched when another entry follows
        out.put_u32_le(e.file_index);
        if class == DirectoryInfoClass::Names {
            out.put_u32_le(u32_len(e.name.len()));
        } else {
            for t in e.times {
                out.put_u64_le(t);
            }
            out.put_u64_le(e.end_of_file);
            out.put_u64_le(e.allocation_size);
            out.put_u32_le(e.file_attributes);
            out.put_u32_le(u32_len(e.name.len()));
            if class.has_ea_size() {
                out.put_u32_le(e.ea_size);
            }
            if class.has_short_name() {
                let s = short_name_field(e.short_name);
                out.put_u8(s.len() as u8);
                out.put_u8(0);
                out.put_bytes(s);
                out.put_zeros(SHORT_NAME_CAPACITY - s.len());
            }
            match class {
                DirectoryInfoClass::IdBothDirectory => {
                    out.put_u16_le(0); // Reserved2
                    out.put_u64_le(e.file_id);
                }
                DirectoryInfoClass::IdFullDirectory => {
                    out.put_u32_le(0); // Reserved
                    out.put_u64_le(e.file_id);
                }
                _ => {}
            }
        }
        debug_assert_eq!(out.len() - entry, class.name_offset(), "{class:?}");
        out.put_bytes(e.name);
        self.last = Some(entry);
        self.count += 1;
        true
    }

    /// Ends the list; returns the bytes written (the OutputBufferLength to report).
    pub fn finish(self) -> usize {
        self.len()
    }

    /// Ends the list and gives the buffer back, for a caller that patches a length after it.
    pub(crate) fn into_inner(self) -> (&'o mut Vec<u8>, usize) {
        let n = self.len();
        (self.out, n)
    }
}

const fn align_up(n: usize, a: usize) -> usize {
    (n + a - 1) & !(a - 1)
}

/// A checked list of directory entries of one class (as found in a QUERY_DIRECTORY response's
/// output buffer). Creating it walks the whole chain once; iterating cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryEntries<'a> {
    class: DirectoryInfoClass,
    rest: &'a [u8],
}

const WHAT: &str = "directory information";

/// Checks the entry at the start of `e` and returns (NextEntryOffset, the entry).
fn read_entry(
    class: DirectoryInfoClass,
    e: &[u8],
) -> Result<(usize, DirectoryEntry<'_>), WireError> {
    let n = class.name_offset();
    let fixed = e.get(..n).ok_or(WireError::Truncated { what: WHAT })?;
    let u32_at = |off: usize| {
        u32::from_le_bytes([fixed[off], fixed[off + 1], fixed[off + 2], fixed[off + 3]])
    };
    let u64_at = |off: usize| u64::from(u32_at(off)) | (u64::from(u32_at(off + 4)) << 32);
    let next = u32_at(0) as usize;
    let name_len = u32_at(class.name_length_offset()) as usize;
    if name_len % 2 != 0 {
        return Err(WireError::BadLength { what: WHAT });
    }
    let end = if next == 0 { e.len() } else { next };
    let name = n
        .checked_add(name_len)
        .filter(|&name_end| name_end <= end)
        .and_then(|name_end| e.get(n..name_end))
        .ok_or(WireError::BadLength { what: WHAT })?;
    let mut d = DirectoryEntry {
        file_index: u32_at(4),
        name,
        ..DirectoryEntry::default()
    };
    if class.has_attributes() {
        d.times = [u64_at(8), u64_at(16), u64_at(24), u64_at(32)];
        d.end_of_file = u64_at(40);
        d.allocation_size = u64_at(48);
        d.file_attributes = u32_at(56);
    }
    if class.has_ea_size() {
        d.ea_size = u32_at(64);
    }
    if class.has_short_name() {
        let len = usize::from(fixed[68]);
        if len > SHORT_NAME_CAPACITY || len % 2 != 0 {
            return Err(WireError::BadLength { what: WHAT });
        }
        d.short_name = &fixed[70..70 + len];
    }
    if let Some(off) = class.file_id_offset() {
        d.file_id = u64_at(off);
    }
    Ok((next, d))
}

impl<'a> DirectoryEntries<'a> {
    /// Checks every entry of `buf`: each fixed part present, FileNameLength even and inside
    /// the entry, ShortNameLength at most 24, and each NextEntryOffset a multiple of 8 that
    /// lands inside the buffer. An empty buffer is an empty list.
    pub fn parse(class: DirectoryInfoClass, buf: &'a [u8]) -> Result<Self, WireError> {
        let mut rest = buf;
        while !rest.is_empty() {
            let (next, _) = read_entry(class, rest)?;
            if next == 0 {
                break;
            }
            if next % ENTRY_ALIGN != 0 {
                return Err(WireError::Misaligned { what: WHAT });
            }
            rest = rest
                .get(next..)
                .filter(|r| !r.is_empty())
                .ok_or(WireError::BadOffset { what: WHAT })?;
        }
        Ok(DirectoryEntries { class, rest: buf })
    }

    /// The class of the entries.
    pub fn class(&self) -> DirectoryInfoClass {
        self.class
    }
}

impl<'a> Iterator for DirectoryEntries<'a> {
    type Item = DirectoryEntry<'a>;
    fn next(&mut self) -> Option<DirectoryEntry<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (next, e) = read_entry(self.class, self.rest).ok()?;
        self.rest = if next == 0 {
            &[]
        } else {
            self.rest.get(next..).unwrap_or(&[])
        };
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::utf16::encode_into;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        encode_into(s, &mut v);
        v
    }

    fn entry<'a>(name: &'a [u8], short: &'a [u8], i: u32) -> DirectoryEntry<'a> {
        DirectoryEntry {
            file_index: i,
            times: [1, 2, 3, 4 + u64::from(i)],
            end_of_file: 100,
            allocation_size: 4096,
            file_attributes: 0x20,
            ea_size: 9,
            short_name: short,
            file_id: 0xABCD_0000 + u64::from(i),
            name,
        }
    }

    #[test]
    fn writes_each_class_and_reads_it_back() {
        let names = [w("."), w(".."), w("a long file name.txt"), w("x")];
        let short = w("ALONGF~1.TXT");
        for class in DirectoryInfoClass::ALL {
            assert_eq!(DirectoryInfoClass::from_u8(class.to_u8()), Some(class));
            let mut out = vec![0xEE; 5];
            let mut wr = DirectoryInfoWriter::new(&mut out, class, 4096);
            let es: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, n)| entry(n, &short, i as u32))
                .collect();
            for e in &es {
                assert!(wr.push(e));
            }
            assert_eq!(wr.count(), 4);
            let n = wr.finish();
            let buf = &out[5..];
            assert_eq!(buf.len(), n);
            // Chained, 8-aligned, last entry 0 and unpadded.
            let mut off = 0;
            for (i, e) in es.iter().enumerate() {
                let next = u32::from_le_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                if i + 1 == es.len() {
                    assert_eq!(next, 0);
                    assert_eq!(off + class.entry_len(e), buf.len(), "{class:?}");
                } else {
                    assert_eq!(next % 8, 0);
                    assert!(next >= class.entry_len(e));
                    assert!(next < class.entry_len(e) + 8);
                }
                off += next;
            }
            let got: Vec<_> = DirectoryEntries::parse(class, buf).unwrap().collect();
            let want: Vec<_> = es.iter().map(|e| e.for_class(class)).collect();
            assert_eq!(got, want, "{class:?}");
        }
        assert_eq!(DirectoryInfoClass::from_u8(0x3C), None);
    }

    #[test]
    fn known_layout_of_id_both() {
        let name = w("f");
        let short = w("F");
        let mut out = Vec::new();
        let mut wr = DirectoryInfoWriter::new(&mut out, DirectoryInfoClass::IdBothDirectory, 200);
        assert!(wr.push(&entry(&name, &short, 7)));
        wr.finish();
        assert_eq!(out.len(), 104 + 2);
        assert_eq!(&out[60..64], &2u32.to_le_bytes()); // FileNameLength
        assert_eq!(&out[64..68], &9u32.to_le_bytes()); // EaSize
        assert_eq!(out[68], 2); // ShortNameLength
        assert_eq!(&out[70..72], b"F\0");
        assert_eq!(&out[96..104], &0xABCD_0007u64.to_le_bytes());
        assert_eq!(&out[104..], b"f\0");
    }

    #[test]
    fn stops_at_the_output_length() {
        let name = w("abc"); // Directory: 64 + 6 = 70 bytes, next at 72
        let e = entry(&name, &[], 0);
        let mut out = Vec::new();
        let mut wr = DirectoryInfoWriter::new(&mut out, DirectoryInfoClass::Directory, 72 + 70);
        assert!(wr.push(&e));
        assert!(wr.push(&e));
        assert!(!wr.push(&e));
        assert_eq!(wr.count(), 2);
        assert_eq!(wr.finish(), 142);
        let mut out = Vec::new();
        let mut wr = DirectoryInfoWriter::new(&mut out, DirectoryInfoClass::Directory, 69);
        assert!(!wr.fits(&e));
        assert!(!wr.push(&e));
        assert!(wr.is_empty());
        assert_eq!(wr.finish(), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn long_short_name_is_cut() {
        let long = [b'A', 0].repeat(20);
        let name = w("n");
        let e = entry(&name, &long, 0);
        let mut out = Vec::new();
        let mut wr = DirectoryInfoWriter::new(&mut out, DirectoryInfoClass::BothDirectory, 999);
        assert!(wr.push(&e));
        wr.finish();
        let got = DirectoryEntries::parse(DirectoryInfoClass::BothDirectory, &out)
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(got.short_name.len(), 24);
        assert_eq!(got, e.for_class(DirectoryInfoClass::BothDirectory));
    }

    #[test]
    fn rejects_bad_chains() {
        let name = w("name");
        let mut out = Vec::new();
        let mut wr = DirectoryInfoWriter::new(&mut out, DirectoryInfoClass::FullDirectory, 999);
        assert!(wr.push(&entry(&name, &[], 0)));
        assert!(wr.push(&entry(&name, &[], 1)));
        wr.finish();
        let class = DirectoryInfoClass::FullDirectory;
        assert_eq!(DirectoryEntries::parse(class, &out).unwrap().count(), 2);
        assert_eq!(DirectoryEntries::parse(class, &[]).unwrap().count(), 0);
        // Every truncation fails: the chain then points past the end or an entry is cut.
        for n in 1..out.len() {
            assert!(DirectoryEntries::parse(class, &out[..n]).is_err(), "{n}");
        }
        let patch = |off: usize, v: u32| {
            let mut b = out.clone();
            b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            DirectoryEntries::parse(class, &b).map(|d| d.count())
        };
        // NextEntryOffset misaligned, past the end, or into the entry's own name.
        assert_eq!(patch(0, 76), Err(WireError::Misaligned { what: WHAT }));
        assert_eq!(patch(0, 800), Err(WireError::BadOffset { what: WHAT }));
        assert_eq!(patch(0, 72), Err(WireError::BadLength { what: WHAT }));
        assert_eq!(patch(0, 8), Err(WireError::BadLength { what: WHAT }));
        assert_eq!(
            patch(0, 0xFFFF_FFF8),
            Err(WireError::BadOffset { what: WHAT })
        );
        // FileNameLength odd, past the entry, or huge.
        assert_eq!(patch(60, 7), Err(WireError::BadLength { what: WHAT }));
        assert_eq!(patch(60, 10).unwrap(), 2); // into the padding is still inside the entry
        assert_eq!(patch(60, 14), Err(WireError::BadLength { what: WHAT }));
        assert_eq!(
            patch(60, u32::MAX - 1),
            Err(WireError::BadLength { what: WHAT })
        );
        // A second entry's fixed part cut short.
        assert!(matches!(
            DirectoryEntries::parse(class, &out[..80 + 20]),
            Err(WireError::Truncated { .. })
        ));
        // ShortNameLength over 24 in a Both class.
        let mut b = Vec::new();
        let mut wr = DirectoryInfoWriter::new(&mut b, DirectoryInfoClass::BothDirectory, 999);
        assert!(wr.push(&entry(&name, &[], 0)));
        wr.finish();
        b[68] = 26;
        assert!(DirectoryEntries::parse(DirectoryInfoClass::BothDirectory, &b).is_err());
        b[68] = 3;
        assert!(DirectoryEntries::parse(DirectoryInfoClass::BothDirectory, &b).is_err());
    }
}
