//! SMB2 QUERY_DIRECTORY request and response (MS-SMB2 2.2.33, 2.2.34). The entries of the
//! response are written with [`super::dir_info`].

use super::dir_info::{DirectoryInfoClass, DirectoryInfoWriter};
use super::{buffer, fixed, pad_body, var_offset, EmitBody, FileId};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u16_at, u32_at};
use crate::writer::{u16_len, u32_len, LeWrite};

/// QUERY_DIRECTORY Flags (MS-SMB2 2.2.33).
pub mod flags {
    /// SMB2_RESTART_SCANS: restart the enumeration from the beginning.
    pub const RESTART_SCANS: u8 = 0x01;
    /// SMB2_RETURN_SINGLE_ENTRY: return at most one entry.
    pub const RETURN_SINGLE_ENTRY: u8 = 0x02;
    /// SMB2_INDEX_SPECIFIED: resume at FileIndex.
    pub const INDEX_SPECIFIED: u8 = 0x04;
    /// SMB2_REOPEN: restart, possibly with a new search pattern.
    pub const REOPEN: u8 = 0x10;
}

/// View of an SMB2 QUERY_DIRECTORY request (MS-SMB2 2.2.33). The search pattern (FileName)
/// must lie after the 32-byte fixed part, inside the message, and have an even length; an
/// empty pattern is accepted (its offset is then ignored) and left to the share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryDirectoryRequest<'a> {
    fixed: &'a [u8; 32],
    file_name: &'a [u8],
}

impl<'a> QueryDirectoryRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 33;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<32>(msg, Command::QueryDirectory, 33)?;
        let len = usize::from(u16_at(fixed, 26));
        if len % 2 != 0 {
            return Err(WireError::BadLength {
                what: "QUERY_DIRECTORY FileNameLength",
            });
        }
        let (file_name, _) = buffer(
            msg,
            var_offset(32),
            usize::from(u16_at(fixed, 24)),
            len,
            "QUERY_DIRECTORY FileName",
        )?;
        Ok(QueryDirectoryRequest { fixed, file_name })
    }
    /// FileInformationClass (raw; see [`Self::info_class`]).
    pub fn file_information_class(&self) -> u8 {
        self.fixed[2]
    }
    /// FileInformationClass, when it is one [`super::dir_info`] writes.
    pub fn info_class(&self) -> Option<DirectoryInfoClass> {
        DirectoryInfoClass::from_u8(self.file_information_class())
    }
    /// Flags ([`flags`]).
    pub fn flags(&self) -> u8 {
        self.fixed[3]
    }
    /// FileIndex (meaningful with [`flags::INDEX_SPECIFIED`]).
    pub fn file_index(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// FileId of the directory.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 8)
    }
    /// FileNameOffset (from the start of the header).
    pub fn file_name_offset(&self) -> u16 {
        u16_at(self.fixed, 24)
    }
    /// The search pattern, UTF-16LE (may contain wildcards, MS-FSA 2.1.4.4).
    pub fn file_name(&self) -> &'a [u8] {
        self.file_name
    }
    /// OutputBufferLength: the most bytes of entries the client accepts.
    pub fn output_buffer_length(&self) -> u32 {
        u32_at(self.fixed, 28)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> QueryDirectoryRequestRepr<'a> {
        QueryDirectoryRequestRepr {
            file_information_class: self.file_information_class(),
            flags: self.flags(),
            file_index: self.file_index(),
            file_id: self.file_id(),
            file_name: self.file_name,
            output_buffer_length: self.output_buffer_length(),
        }
    }
}

/// Emits an SMB2 QUERY_DIRECTORY request; the pattern follows the fixed part (offset 96).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryDirectoryRequestRepr<'a> {
    /// FileInformationClass.
    pub file_information_class: u8,
    /// Flags.
    pub flags: u8,
    /// FileIndex.
    pub file_index: u32,
    /// FileId.
    pub file_id: FileId,
    /// Search pattern, UTF-16LE.
    pub file_name: &'a [u8],
    /// OutputBufferLength.
    pub output_buffer_length: u32,
}

impl EmitBody for QueryDirectoryRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(33);
        out.put_u8(self.file_information_class);
        out.put_u8(self.flags);
        out.put_u32_le(self.file_index);
        self.file_id.emit(out);
        out.put_u16_le(u16_len(HEADER_LEN + 32));
        out.put_u16_le(u16_len(self.file_name.len()));
        out.put_u32_le(self.output_buffer_length);
        out.put_bytes(self.file_name);
        pad_body(out, msg_start, 33);
    }
}

/// View of an SMB2 QUERY_DIRECTORY response (MS-SMB2 2.2.34). The output buffer is checked
/// against the message; its entries can be read with [`super::dir_info::DirectoryEntries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryDirectoryResponse<'a> {
    fixed: &'a [u8; 8],
    output: &'a [u8],
}

impl<'a> QueryDirectoryResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 9;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, output) =
            super::parse_output_response(msg, Command::QueryDirectory, "QUERY_DIRECTORY Output")?;
        Ok(QueryDirectoryResponse { fixed, output })
    }
    /// OutputBufferOffset.
    pub fn output_buffer_offset(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// The output buffer (directory entries of the requested class).
    pub fn output(&self) -> &'a [u8] {
        self.output
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> QueryDirectoryResponseRepr<'a> {
        QueryDirectoryResponseRepr {
            output: self.output,
        }
    }
}

/// Emits an SMB2 QUERY_DIRECTORY response from an already built output buffer (offset 72,
/// 8-byte aligned). To build the entries in place instead, use
/// [`QueryDirectoryResponseWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryDirectoryResponseRepr<'a> {
    /// Output buffer.
    pub output: &'a [u8],
}

impl EmitBody for QueryDirectoryResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        super::emit_output_response(self.output, msg_start, out);
    }
}

/// Writes a QUERY_DIRECTORY response body straight into the output: the fixed part first,
/// then the entries (no intermediate buffer), then OutputBufferLength patched by
/// [`finish`](Self::finish). The header must already be in `out` at `msg_start`.
///
/// ```
/// use smb_wire::header::{flags, Command, HeaderRepr};
/// use smb_wire::msg::dir_info::{DirectoryEntry, DirectoryInfoClass};
/// use smb_wire::msg::query_directory::{QueryDirectoryResponse, QueryDirectoryResponseWriter};
///
/// let mut out = Vec::new();
/// let mut h = HeaderRepr::request(Command::QueryDirectory, 1, 2, 3);
/// h.flags |= flags::SERVER_TO_REDIR;
/// h.emit(&mut out);
/// let mut w = QueryDirectoryResponseWriter::begin(0, &mut out, DirectoryInfoClass::Names, 1024);
/// assert!(w.push(&DirectoryEntry { name: b".\0", ..Default::default() }));
/// assert!(w.push(&DirectoryEntry { name: b".\0.\0", ..Default::default() }));
/// assert_eq!(w.finish(), 2);
/// let v = QueryDirectoryResponse::parse(&out).unwrap();
/// assert_eq!(v.output().len(), 16 + 16); // "." (14 bytes) padded to 16, then ".." (16)
/// ```
#[derive(Debug)]
pub struct QueryDirectoryResponseWriter<'o> {
    msg_start: usize,
    body_start: usize,
    entries: DirectoryInfoWriter<'o>,
}

impl<'o> QueryDirectoryResponseWriter<'o> {
    /// Appends the fixed part of the body and returns a writer for entries of `class`, at
    /// most `output_buffer_length` bytes of them (the request's OutputBufferLength, already
    /// bounded by the connection's MaxTransactSize).
    pub fn begin(
        msg_start: usize,
        out: &'o mut Vec<u8>,
        class: DirectoryInfoClass,
        output_buffer_length: u32,
    ) -> Self {
        let body_start = out.len();
        out.put_u16_le(9);
        out.put_u16_le(u16_len(HEADER_LEN + 8));
        out.put_u32_le(0); // OutputBufferLength, patched by finish
        QueryDirectoryResponseWriter {
            msg_start,
            body_start,
            entries: DirectoryInfoWriter::new(out, class, output_buffer_length),
        }
    }

    /// Appends one entry; `false` (nothing written) when it does not fit.
    pub fn push(&mut self, e: &super::dir_info::DirectoryEntry<'_>) -> bool {
        self.entries.push(e)
    }

    /// The entry writer (to ask what fits, or how much was written).
    pub fn entries(&self) -> &DirectoryInfoWriter<'o> {
        &self.entries
    }

    /// Patches OutputBufferLength and returns the number of entries written. With none,
    /// the body is still well formed (one zero byte of buffer), though a server answers an
    /// exhausted enumeration with STATUS_NO_MORE_FILES instead (MS-SMB2 3.3.5.18).
    pub fn finish(self) -> usize {
        let count = self.entries.count();
        let (out, len) = self.entries.into_inner();
        out.patch_u32_le(self.body_start + 4, u32_len(len));
        pad_body(out, self.msg_start, 9);
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{flags as hflags, HeaderRepr};
    use crate::msg::dir_info::{DirectoryEntries, DirectoryEntry};
    use crate::msg::testutil::{message, raw, set16, set32};
    use crate::utf16::encode_into;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        encode_into(s, &mut v);
        v
    }

    #[test]
    fn request_round_trip() {
        let pat = w("*.txt");
        let r = QueryDirectoryRequestRepr {
            file_information_class: 0x25,
            flags: flags::RESTART_SCANS,
            file_index: 0,
            file_id: FileId {
                persistent: 1,
                volatile: 2,
            },
            file_name: &pat,
            output_buffer_length: 65536,
        };
        let m = message(Command::QueryDirectory, false, &r);
        let v = QueryDirectoryRequest::parse(&m).unwrap();
        assert_eq!(v.repr(), r);
        assert_eq!(v.info_class(), Some(DirectoryInfoClass::IdBothDirectory));
        assert_eq!(v.file_name_offset(), 96);
        let r = QueryDirectoryRequestRepr {
            file_name: &[],
            ..r
        };
        let m = message(Command::QueryDirectory, false, &r);
        assert_eq!(m.len(), 64 + 33);
        assert_eq!(QueryDirectoryRequest::parse(&m).unwrap().repr(), r);
    }

    #[test]
    fn request_bad() {
        let pat = w("*");
        let r = QueryDirectoryRequestRepr {
            file_name: &pat,
            output_buffer_length: 100,
            ..Default::default()
        };
        let m = message(Command::QueryDirectory, false, &r);
        assert_eq!(m.len(), 98);
        for n in 0..m.len() {
            assert!(QueryDirectoryRequest::parse(&m[..n]).is_err(), "{n}");
        }
        let with = |off: u16, len: u16| {
            let mut b = m.clone();
            set16(&mut b, 24, off);
            set16(&mut b, 26, len);
            QueryDirectoryRequest::parse(&b).map(|v| v.file_name().len())
        };
        let e = Err(WireError::BadOffset {
            what: "QUERY_DIRECTORY FileName",
        });
        assert_eq!(with(94, 2), e); // inside the fixed part
        assert_eq!(with(0, 2), e);
        assert_eq!(with(96, 4), e); // past the end
        assert_eq!(with(u16::MAX, 2), e);
        assert_eq!(with(96, u16::MAX - 1), e);
        assert_eq!(
            with(96, 1),
            Err(WireError::BadLength {
                what: "QUERY_DIRECTORY FileNameLength"
            })
        );
        assert_eq!(with(0, 0), Ok(0));
        assert!(matches!(
            QueryDirectoryRequest::parse(&raw(Command::QueryDirectory, &[9, 0])),
            Err(WireError::BadStructureSize { got: 9, .. })
        ));
    }

    #[test]
    fn response_writer_matches_repr_and_reads_back() {
        let names = [w("."), w(".."), w("file.bin")];
        let es: Vec<_> = names
            .iter()
            .map(|n| DirectoryEntry {
                name: n,
                end_of_file: 3,
                file_attributes: 0x10,
                ..Default::default()
            })
            .collect();
        let class = DirectoryInfoClass::FullDirectory;
        // In place, after a header at a non-zero start.
        let mut out = vec![0xEE; 3];
        let mut h = HeaderRepr::request(Command::QueryDirectory, 7, 0x55, 3);
        h.flags |= hflags::SERVER_TO_REDIR;
        h.emit(&mut out);
        let mut wr = QueryDirectoryResponseWriter::begin(3, &mut out, class, 4096);
        for e in &es {
            assert!(wr.push(e));
        }
        assert_eq!(wr.entries().count(), 3);
        assert_eq!(wr.finish(), 3);
        let m = &out[3..];
        let v = QueryDirectoryResponse::parse(m).unwrap();
        assert_eq!(v.output_buffer_offset(), 72);
        let got: Vec<_> = DirectoryEntries::parse(class, v.output())
            .unwrap()
            .collect();
        assert_eq!(got, es);
        // The same bytes as the Repr with a prebuilt buffer.
        let again = message(Command::QueryDirectory, true, &v.repr());
        assert_eq!(&again[64..], &m[64..]);
        // No entries: still a valid body (StructureSize 9, one pad byte).
        let mut out = Vec::new();
        h.emit(&mut out);
        let wr = QueryDirectoryResponseWriter::begin(0, &mut out, class, 0);
        assert_eq!(wr.finish(), 0);
        assert_eq!(out.len(), 64 + 9);
        assert_eq!(
            QueryDirectoryResponse::parse(&out).unwrap().output(),
            &[] as &[u8]
        );
    }

    #[test]
    fn response_bad() {
        let m = message(
            Command::QueryDirectory,
            true,
            &QueryDirectoryResponseRepr { output: &[1; 16] },
        );
        for n in 0..m.len() {
            assert!(QueryDirectoryResponse::parse(&m[..n]).is_err(), "{n}");
        }
        let with = |off: u16, len: u32| {
            let mut b = m.clone();
            set16(&mut b, 2, off);
            set32(&mut b, 4, len);
            QueryDirectoryResponse::parse(&b).map(|v| v.output().len())
        };
        let e = Err(WireError::BadOffset {
            what: "QUERY_DIRECTORY Output",
        });
        assert_eq!(with(71, 16), e);
        assert_eq!(with(72, 17), e);
        assert_eq!(with(73, 16), e);
        assert_eq!(with(72, u32::MAX), e);
        assert!(with(72, 15).is_ok());
    }
}
