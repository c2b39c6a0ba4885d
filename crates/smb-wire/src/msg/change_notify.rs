//! SMB2 CHANGE_NOTIFY request and response (MS-SMB2 2.2.35, 2.2.36), and the
//! FILE_NOTIFY_INFORMATION entries of the response (MS-FSCC 2.7.1).

use super::{fixed, EmitBody, FileId};
use crate::error::WireError;
use crate::header::Command;
use crate::reader::{u16_at, u32_at};
use crate::writer::{u32_len, LeWrite};

/// CHANGE_NOTIFY Flags (MS-SMB2 2.2.35).
pub mod flags {
    /// SMB2_WATCH_TREE: watch the whole subtree, not just the directory.
    pub const WATCH_TREE: u16 = 0x0001;
}

/// CompletionFilter bits (MS-SMB2 2.2.35).
pub mod filter {
    /// FILE_NOTIFY_CHANGE_FILE_NAME.
    pub const FILE_NAME: u32 = 0x0000_0001;
    /// FILE_NOTIFY_CHANGE_DIR_NAME.
    pub const DIR_NAME: u32 = 0x0000_0002;
    /// FILE_NOTIFY_CHANGE_ATTRIBUTES.
    pub const ATTRIBUTES: u32 = 0x0000_0004;
    /// FILE_NOTIFY_CHANGE_SIZE.
    pub const SIZE: u32 = 0x0000_0008;
    /// FILE_NOTIFY_CHANGE_LAST_WRITE.
    pub const LAST_WRITE: u32 = 0x0000_0010;
    /// FILE_NOTIFY_CHANGE_LAST_ACCESS.
    pub const LAST_ACCESS: u32 = 0x0000_0020;
    /// FILE_NOTIFY_CHANGE_CREATION.
    pub const CREATION: u32 = 0x0000_0040;
    /// FILE_NOTIFY_CHANGE_EA.
    pub const EA: u32 = 0x0000_0080;
    /// FILE_NOTIFY_CHANGE_SECURITY.
    pub const SECURITY: u32 = 0x0000_0100;
    /// FILE_NOTIFY_CHANGE_STREAM_NAME.
    pub const STREAM_NAME: u32 = 0x0000_0200;
    /// FILE_NOTIFY_CHANGE_STREAM_SIZE.
    pub const STREAM_SIZE: u32 = 0x0000_0400;
    /// FILE_NOTIFY_CHANGE_STREAM_WRITE.
    pub const STREAM_WRITE: u32 = 0x0000_0800;
}

/// FILE_NOTIFY_INFORMATION Action values (MS-FSCC 2.7.1).
pub mod action {
    /// FILE_ACTION_ADDED.
    pub const ADDED: u32 = 0x0000_0001;
    /// FILE_ACTION_REMOVED.
    pub const REMOVED: u32 = 0x0000_0002;
    /// FILE_ACTION_MODIFIED.
    pub const MODIFIED: u32 = 0x0000_0003;
    /// FILE_ACTION_RENAMED_OLD_NAME.
    pub const RENAMED_OLD_NAME: u32 = 0x0000_0004;
    /// FILE_ACTION_RENAMED_NEW_NAME.
    pub const RENAMED_NEW_NAME: u32 = 0x0000_0005;
    /// FILE_ACTION_ADDED_STREAM.
    pub const ADDED_STREAM: u32 = 0x0000_0006;
    /// FILE_ACTION_REMOVED_STREAM.
    pub const REMOVED_STREAM: u32 = 0x0000_0007;
    /// FILE_ACTION_MODIFIED_STREAM.
    pub const MODIFIED_STREAM: u32 = 0x0000_0008;
    /// FILE_ACTION_REMOVED_BY_DELETE.
    pub const REMOVED_BY_DELETE: u32 = 0x0000_0009;
}

/// View of an SMB2 CHANGE_NOTIFY request (MS-SMB2 2.2.35): 32 bytes, no variable part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeNotifyRequest<'a> {
    fixed: &'a [u8; 32],
}

impl<'a> ChangeNotifyRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 32;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(ChangeNotifyRequest {
            fixed: fixed::<32>(msg, Command::ChangeNotify, 32)?,
        })
    }
    /// Flags ([`flags`]).
    pub fn flags(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// `true` with SMB2_WATCH_TREE.
    pub fn watch_tree(&self) -> bool {
        self.flags() & flags::WATCH_TREE != 0
    }
    /// OutputBufferLength: the most bytes of FILE_NOTIFY_INFORMATION the client accepts.
    pub fn output_buffer_length(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// FileId of the directory to watch.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 8)
    }
    /// CompletionFilter ([`filter`]).
    pub fn completion_filter(&self) -> u32 {
        u32_at(self.fixed, 24)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> ChangeNotifyRequestRepr {
        ChangeNotifyRequestRepr {
            flags: self.flags(),
            output_buffer_length: self.output_buffer_length(),
            file_id: self.file_id(),
            completion_filter: self.completion_filter(),
        }
    }
}

/// Emits an SMB2 CHANGE_NOTIFY request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeNotifyRequestRepr {
    /// Flags.
    pub flags: u16,
    /// OutputBufferLength.
    pub output_buffer_length: u32,
    /// FileId.
    pub file_id: FileId,
    /// CompletionFilter.
    pub completion_filter: u32,
}

impl EmitBody for ChangeNotifyRequestRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(32);
        out.put_u16_le(self.flags);
        out.put_u32_le(self.output_buffer_length);
        self.file_id.emit(out);
        out.put_u32_le(self.completion_filter);
        out.put_u32_le(0);
    }
}

/// View of an SMB2 CHANGE_NOTIFY response (MS-SMB2 2.2.36). The output buffer is checked
/// against the message; read its entries with [`FileNotifyEntries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeNotifyResponse<'a> {
    fixed: &'a [u8; 8],
    output: &'a [u8],
}

impl<'a> ChangeNotifyResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 9;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let (fixed, output) =
            super::parse_output_response(msg, Command::ChangeNotify, "CHANGE_NOTIFY Output")?;
        Ok(ChangeNotifyResponse { fixed, output })
    }
    /// OutputBufferOffset.
    pub fn output_buffer_offset(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// The output buffer (FILE_NOTIFY_INFORMATION entries).
    pub fn output(&self) -> &'a [u8] {
        self.output
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> ChangeNotifyResponseRepr<'a> {
        ChangeNotifyResponseRepr {
            output: self.output,
        }
    }
}

/// Emits an SMB2 CHANGE_NOTIFY response; the output follows the fixed part (offset 72).
/// Build the output with [`FileNotifyWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeNotifyResponseRepr<'a> {
    /// Output buffer.
    pub output: &'a [u8],
}

impl EmitBody for ChangeNotifyResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        super::emit_output_response(self.output, msg_start, out);
    }
}

/// Alignment of every FILE_NOTIFY_INFORMATION entry after the first (DWORD, as Windows
/// writes them).
pub const NOTIFY_ALIGN: usize = 4;

/// Bytes of a FILE_NOTIFY_INFORMATION entry before FileName.
pub const NOTIFY_FIXED_LEN: usize = 12;

/// One FILE_NOTIFY_INFORMATION entry (MS-FSCC 2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileNotify<'a> {
    /// Action ([`action`]).
    pub action: u32,
    /// FileName, UTF-16LE, relative to the watched directory.
    pub name: &'a [u8],
}

/// Appends FILE_NOTIFY_INFORMATION entries, chained with NextEntryOffset and each aligned
/// to 4 bytes from the start of the buffer, within the client's OutputBufferLength. When the
/// changes do not fit, a server sends STATUS_NOTIFY_ENUM_DIR instead (MS-SMB2 3.3.4.4).
#[derive(Debug)]
pub struct FileNotifyWriter<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    max_len: usize,
    last: Option<usize>,
    count: usize,
}

impl<'o> FileNotifyWriter<'o> {
    /// A writer appending to `out` from its current end, at most `max_len` bytes.
    pub fn new(out: &'o mut Vec<u8>, max_len: u32) -> Self {
        let start = out.len();
        FileNotifyWriter {
            out,
            start,
            max_len: max_len as usize,
            last: None,
            count: 0,
        }
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

    /// Appends `n` and returns `true`, or returns `false` and writes nothing when it does
    /// not fit.
    pub fn push(&mut self, n: &FileNotify<'_>) -> bool {
        let at = if self.count == 0 {
            0
        } else {
            (self.len() + NOTIFY_ALIGN - 1) & !(NOTIFY_ALIGN - 1)
        };
        if at.saturating_add(NOTIFY_FIXED_LEN + n.name.len()) > self.max_len {
            return false;
        }
        if let Some(prev) = self.last {
            self.out.pad_to(self.start, NOTIFY_ALIGN);
            let next = u32_len(self.out.len() - prev);
            self.out.patch_u32_le(prev, next);
        }
        let entry = self.out.len();
        self.out.put_u32_le(0);
        self.out.put_u32_le(n.action);
        self.out.put_u32_le(u32_len(n.name.len()));
        self.out.put_bytes(n.name);
        self.last = Some(entry);
        self.count += 1;
        true
    }

    /// Ends the list; returns the bytes written (the OutputBufferLength to report).
    pub fn finish(self) -> usize {
        self.len()
    }
}

/// A checked list of FILE_NOTIFY_INFORMATION entries. Creating it walks the chain once;
/// iterating cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileNotifyEntries<'a> {
    rest: &'a [u8],
}

const WHAT: &str = "FILE_NOTIFY_INFORMATION";

fn read_notify(e: &[u8]) -> Result<(usize, FileNotify<'_>), WireError> {
    let h: &[u8; NOTIFY_FIXED_LEN] = e
        .get(..NOTIFY_FIXED_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated { what: WHAT })?;
    let next = u32_at(h, 0) as usize;
    let len = u32_at(h, 8) as usize;
    if len % 2 != 0 {
        return Err(WireError::BadLength { what: WHAT });
    }
    let end = if next == 0 { e.len() } else { next };
    let name = NOTIFY_FIXED_LEN
        .checked_add(len)
        .filter(|&name_end| name_end <= end)
        .and_then(|name_end| e.get(NOTIFY_FIXED_LEN..name_end))
        .ok_or(WireError::BadLength { what: WHAT })?;
    Ok((
        next,
        FileNotify {
            action: u32_at(h, 4),
            name,
        },
    ))
}

impl<'a> FileNotifyEntries<'a> {
    /// Checks every entry of `buf`: 12-byte fixed part present, FileNameLength even and inside
    /// the entry, each NextEntryOffset a multiple of 4 landing inside the buffer. An empty
    /// buffer is an empty list.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let mut rest = buf;
        while !rest.is_empty() {
            let (next, _) = read_notify(rest)?;
            if next == 0 {
                break;
            }
            if next % NOTIFY_ALIGN != 0 {
                return Err(WireError::Misaligned { what: WHAT });
            }
            rest = rest
                .get(next..)
                .filter(|r| !r.is_empty())
                .ok_or(WireError::BadOffset { what: WHAT })?;
        }
        Ok(FileNotifyEntries { rest: buf })
    }
}

impl<'a> Iterator for FileNotifyEntries<'a> {
    type Item = FileNotify<'a>;
    fn next(&mut self) -> Option<FileNotify<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (next, n) = read_notify(self.rest).ok()?;
        self.rest = if next == 0 {
            &[]
        } else {
            self.rest.get(next..).unwrap_or(&[])
        };
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16, set32};
    use crate::utf16::encode_into;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        encode_into(s, &mut v);
        v
    }

    #[test]
    fn request_round_trip_and_bad() {
        let r = ChangeNotifyRequestRepr {
            flags: flags::WATCH_TREE,
            output_buffer_length: 4096,
            file_id: FileId {
                persistent: 3,
                volatile: 4,
            },
            completion_filter: filter::FILE_NAME | filter::DIR_NAME | filter::LAST_WRITE,
        };
        let m = message(Command::ChangeNotify, false, &r);
        assert_eq!(m.len(), 64 + 32);
        let v = ChangeNotifyRequest::parse(&m).unwrap();
        assert_eq!(v.repr(), r);
        assert!(v.watch_tree());
        for n in 0..m.len() {
            assert!(ChangeNotifyRequest::parse(&m[..n]).is_err(), "{n}");
        }
        let mut b = m.clone();
        set16(&mut b, 0, 33);
        assert!(matches!(
            ChangeNotifyRequest::parse(&b),
            Err(WireError::BadStructureSize { got: 33, .. })
        ));
    }

    #[test]
    fn notify_entries_round_trip() {
        let a = w("new.txt");
        let b = w("old");
        let c = w("dir\\x");
        let ns = [
            FileNotify {
                action: action::ADDED,
                name: &a,
            },
            FileNotify {
                action: action::RENAMED_OLD_NAME,
                name: &b,
            },
            FileNotify {
                action: action::RENAMED_NEW_NAME,
                name: &c,
            },
        ];
        let mut out = vec![1, 2, 3];
        let mut wr = FileNotifyWriter::new(&mut out, 1000);
        for n in &ns {
            assert!(wr.push(n));
        }
        assert_eq!(wr.count(), 3);
        let len = wr.finish();
        let buf = &out[3..];
        assert_eq!(buf.len(), len);
        // 12 + 14 = 26 -> next at 28; 12 + 6 = 18 -> next at 20; last 12 + 10, unpadded.
        assert_eq!(&buf[0..4], &28u32.to_le_bytes());
        assert_eq!(&buf[28..32], &20u32.to_le_bytes());
        assert_eq!(len, 28 + 20 + 22);
        let got: Vec<_> = FileNotifyEntries::parse(buf).unwrap().collect();
        assert_eq!(got, ns);
        // Through the response.
        let m = message(
            Command::ChangeNotify,
            true,
            &ChangeNotifyResponseRepr { output: buf },
        );
        let v = ChangeNotifyResponse::parse(&m).unwrap();
        assert_eq!(v.output_buffer_offset(), 72);
        assert_eq!(FileNotifyEntries::parse(v.output()).unwrap().count(), 3);
        assert_eq!(v.repr().output, buf);
        // Limit: the second entry needs 28 + 18 bytes.
        let mut out = Vec::new();
        let mut wr = FileNotifyWriter::new(&mut out, 45);
        assert!(wr.push(&ns[0]));
        assert!(!wr.push(&ns[1]));
        assert_eq!(wr.finish(), 26);
        let mut out = Vec::new();
        let mut wr = FileNotifyWriter::new(&mut out, 11);
        assert!(!wr.push(&FileNotify::default()));
        assert!(wr.is_empty());
    }

    #[test]
    fn notify_entries_bad() {
        let a = w("abc");
        let mut out = Vec::new();
        let mut wr = FileNotifyWriter::new(&mut out, 1000);
        wr.push(&FileNotify {
            action: 1,
            name: &a,
        });
        wr.push(&FileNotify {
            action: 2,
            name: &a,
        });
        wr.finish();
        assert_eq!(out.len(), 20 + 18);
        for n in 1..out.len() {
            assert!(FileNotifyEntries::parse(&out[..n]).is_err(), "{n}");
        }
        let patch = |off: usize, v: u32| {
            let mut b = out.clone();
            b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            FileNotifyEntries::parse(&b).map(|d| d.count())
        };
        assert_eq!(patch(0, 18), Err(WireError::Misaligned { what: WHAT }));
        assert_eq!(patch(0, 16), Err(WireError::BadLength { what: WHAT }));
        assert_eq!(patch(0, 40), Err(WireError::BadOffset { what: WHAT }));
        assert_eq!(patch(0, 38), Err(WireError::Misaligned { what: WHAT }));
        assert_eq!(patch(0, 36), Err(WireError::Truncated { what: WHAT }));
        assert_eq!(patch(8, 5), Err(WireError::BadLength { what: WHAT }));
        assert_eq!(patch(8, 10), Err(WireError::BadLength { what: WHAT }));
        assert_eq!(
            patch(8, u32::MAX - 1),
            Err(WireError::BadLength { what: WHAT })
        );
        assert!(patch(0, 0).is_ok()); // one entry with trailing bytes after its name
    }

    #[test]
    fn response_bad() {
        let m = message(
            Command::ChangeNotify,
            true,
            &ChangeNotifyResponseRepr { output: &[0; 12] },
        );
        for n in 0..m.len() {
            assert!(ChangeNotifyResponse::parse(&m[..n]).is_err(), "{n}");
        }
        let with = |off: u16, len: u32| {
            let mut b = m.clone();
            set16(&mut b, 2, off);
            set32(&mut b, 4, len);
            ChangeNotifyResponse::parse(&b).map(|v| v.output().len())
        };
        let e = Err(WireError::BadOffset {
            what: "CHANGE_NOTIFY Output",
        });
        assert_eq!(with(64, 12), e);
        assert_eq!(with(72, 13), e);
        assert_eq!(with(u16::MAX, 1), e);
        assert_eq!(with(72, u32::MAX), e);
        assert_eq!(with(9999, 0), Ok(0));
        assert!(ChangeNotifyResponse::parse(&raw(Command::ChangeNotify, &[32, 0])).is_err());
    }
}
