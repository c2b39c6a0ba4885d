//! SMB2 CREATE request and response with create contexts listed, not interpreted (MS-SMB2
//! 2.2.13, 2.2.13.2, 2.2.14).

use super::{buffer, fixed, no_overlap, pad_body, var_offset, EmitBody, FileId};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u32_at, u64_at};
use crate::utf16;
use crate::writer::{u16_len, u32_len, LeWrite};

/// Checks a create context chain (2.2.13.2): each entry has Next (u32, 8-aligned, strictly
/// forward, 0 for the last), NameOffset/NameLength, DataOffset/DataLength relative to the entry.
fn check_create_contexts(list: &[u8]) -> Result<(), WireError> {
    let what = "CreateContexts";
    let mut rest = list;
    loop {
        let e = parse_entry(rest).ok_or(WireError::BadLength { what })?;
        if e.next == 0 {
            return Ok(());
        }
        let next = e.next as usize;
        if next % 8 != 0 {
            return Err(WireError::Misaligned { what });
        }
        if next < e.end || next >= rest.len() {
            return Err(WireError::BadOffset { what });
        }
        rest = &rest[next..];
    }
}

struct Entry<'a> {
    next: u32,
    end: usize,
    name: &'a [u8],
    data: &'a [u8],
}

fn parse_entry(e: &[u8]) -> Option<Entry<'_>> {
    let h: &[u8; 16] = e.get(..16)?.try_into().ok()?;
    let next = u32_at(h, 0);
    let name_off = usize::from(u16::from_le_bytes([h[4], h[5]]));
    let name_len = usize::from(u16::from_le_bytes([h[6], h[7]]));
    let data_off = usize::from(u16::from_le_bytes([h[10], h[11]]));
    let data_len = u32_at(h, 12) as usize;
    if name_len == 0 || name_off < 16 {
        return None;
    }
    let name = e.get(name_off..name_off.checked_add(name_len)?)?;
    let mut end = name_off + name_len;
    let data = if data_len == 0 {
        &[][..]
    } else {
        if data_off < end {
            return None;
        }
        end = data_off.checked_add(data_len)?;
        e.get(data_off..end)?
    };
    if next != 0 && (next as usize) < end {
        return None;
    }
    Some(Entry {
        next,
        end,
        name,
        data,
    })
}

/// One create context: its name (e.g. `b"MxAc"`) and data, both raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateContext<'a> {
    /// Name.
    pub name: &'a [u8],
    /// Data.
    pub data: &'a [u8],
}

/// Iterator over a checked create context chain.
#[derive(Debug, Clone)]
pub struct CreateContexts<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for CreateContexts<'a> {
    type Item = CreateContext<'a>;
    fn next(&mut self) -> Option<CreateContext<'a>> {
        let e = parse_entry(self.rest)?;
        self.rest = if e.next == 0 {
            &[]
        } else {
            self.rest.get(e.next as usize..).unwrap_or(&[])
        };
        Some(CreateContext {
            name: e.name,
            data: e.data,
        })
    }
}

/// Appends a create context chain starting 8-aligned relative to `msg_start`; returns the
/// (offset, length) to store in the CREATE body, or (0, 0) when empty.
fn emit_create_contexts(
    ctxs: &[CreateContext<'_>],
    msg_start: usize,
    out: &mut Vec<u8>,
) -> (u32, u32) {
    if ctxs.is_empty() {
        return (0, 0);
    }
    out.pad_to(msg_start, 8);
    let first = out.len();
    for (i, c) in ctxs.iter().enumerate() {
        let start = out.len();
        out.put_u32_le(0);
        out.put_u16_le(16);
        out.put_u16_le(u16_len(c.name.len()));
        out.put_u16_le(0);
        let data_off = (16 + c.name.len() + 7) & !7;
        out.put_u16_le(if c.data.is_empty() {
            0
        } else {
            u16_len(data_off)
        });
        out.put_u32_le(u32_len(c.data.len()));
        out.put_bytes(c.name);
        if !c.data.is_empty() {
            out.pad_to(start, 8);
            out.put_bytes(c.data);
        }
        if i + 1 < ctxs.len() {
            out.pad_to(start, 8);
            let next = u32_len(out.len() - start);
            out.patch_u32_le(start, next);
        }
    }
    (u32_len(first - msg_start), u32_len(out.len() - first))
}

/// View of an SMB2 CREATE request (MS-SMB2 2.2.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateRequest<'a> {
    fixed: &'a [u8; 56],
    name: &'a [u8],
    contexts: &'a [u8],
}

impl<'a> CreateRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 57;

    /// Parses the whole message (header + body); the name and the context chain are checked.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<56>(msg, Command::Create, 57)?;
        let min = var_offset(56);
        let nlen = usize::from(super::reader_u16(fixed, 46));
        if nlen % 2 != 0 {
            return Err(WireError::BadLength { what: "NameLength" });
        }
        let (name, nr) = buffer(
            msg,
            min,
            usize::from(super::reader_u16(fixed, 44)),
            nlen,
            "CREATE Name",
        )?;
        let (contexts, cr) = buffer(
            msg,
            min,
            u32_at(fixed, 48) as usize,
            u32_at(fixed, 52) as usize,
            "CREATE CreateContexts",
        )?;
        no_overlap(&nr, &cr, "CREATE Name and CreateContexts")?;
        if !contexts.is_empty() {
            check_create_contexts(contexts)?;
        }
        Ok(CreateRequest {
            fixed,
            name,
            contexts,
        })
    }

    /// SecurityFlags.
    pub fn security_flags(&self) -> u8 {
        self.fixed[2]
    }
    /// RequestedOplockLevel.
    pub fn requested_oplock_level(&self) -> u8 {
        self.fixed[3]
    }
    /// ImpersonationLevel.
    pub fn impersonation_level(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// SmbCreateFlags.
    pub fn smb_create_flags(&self) -> u64 {
        u64_at(self.fixed, 8)
    }
    /// DesiredAccess.
    pub fn desired_access(&self) -> u32 {
        u32_at(self.fixed, 24)
    }
    /// FileAttributes.
    pub fn file_attributes(&self) -> u32 {
        u32_at(self.fixed, 28)
    }
    /// ShareAccess.
    pub fn share_access(&self) -> u32 {
        u32_at(self.fixed, 32)
    }
    /// CreateDisposition.
    pub fn create_disposition(&self) -> u32 {
        u32_at(self.fixed, 36)
    }
    /// CreateOptions.
    pub fn create_options(&self) -> u32 {
        u32_at(self.fixed, 40)
    }
    /// The file (or pipe) name, raw UTF-16LE, relative to the share.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }
    /// `true` when the name equals `ascii` ignoring ASCII case (e.g. `"srvsvc"`).
    pub fn name_is(&self, ascii: &str) -> bool {
        utf16::eq_ignore_ascii_case(self.name, ascii)
    }
    /// The raw create context chain.
    pub fn contexts_raw(&self) -> &'a [u8] {
        self.contexts
    }
    /// The create contexts.
    pub fn contexts(&self) -> CreateContexts<'a> {
        CreateContexts {
            rest: self.contexts,
        }
    }
    /// The fixed fields and name as a Repr; contexts are written into `ctx_buf`.
    pub fn repr<'c>(&self, ctx_buf: &'c mut [CreateContext<'a>]) -> CreateRequestRepr<'c>
    where
        'a: 'c,
    {
        let mut n = 0;
        for (slot, c) in ctx_buf.iter_mut().zip(self.contexts()) {
            *slot = c;
            n += 1;
        }
        CreateRequestRepr {
            security_flags: self.security_flags(),
            requested_oplock_level: self.requested_oplock_level(),
            impersonation_level: self.impersonation_level(),
            smb_create_flags: self.smb_create_flags(),
            desired_access: self.desired_access(),
            file_attributes: self.file_attributes(),
            share_access: self.share_access(),
            create_disposition: self.create_disposition(),
            create_options: self.create_options(),
            name: self.name,
            contexts: &ctx_buf[..n],
        }
    }
}

/// Emits an SMB2 CREATE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateRequestRepr<'a> {
    /// SecurityFlags.
    pub security_flags: u8,
    /// RequestedOplockLevel.
    pub requested_oplock_level: u8,
    /// ImpersonationLevel.
    pub impersonation_level: u32,
    /// SmbCreateFlags.
    pub smb_create_flags: u64,
    /// DesiredAccess.
    pub desired_access: u32,
    /// FileAttributes.
    pub file_attributes: u32,
    /// ShareAccess.
    pub share_access: u32,
    /// CreateDisposition.
    pub create_disposition: u32,
    /// CreateOptions.
    pub create_options: u32,
    /// Name, UTF-16LE.
    pub name: &'a [u8],
    /// Create contexts.
    pub contexts: &'a [CreateContext<'a>],
}

impl EmitBody for CreateRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        let body = out.len();
        out.put_u16_le(57);
        out.put_u8(self.security_flags);
        out.put_u8(self.requested_oplock_level);
        out.put_u32_le(self.impersonation_level);
        out.put_u64_le(self.smb_create_flags);
        out.put_u64_le(0);
        out.put_u32_le(self.desired_access);
        out.put_u32_le(self.file_attributes);
        out.put_u32_le(self.share_access);
        out.put_u32_le(self.create_disposition);
        out.put_u32_le(self.create_options);
        out.put_u16_le(u16_len(HEADER_LEN + 56));
        out.put_u16_le(u16_len(self.name.len()));
        out.put_u32_le(0);
        out.put_u32_le(0);
        out.put_bytes(self.name);
        let (off, len) = emit_create_contexts(self.contexts, msg_start, out);
        out.patch_u32_le(body + 48, off);
        out.patch_u32_le(body + 52, len);
        pad_body(out, msg_start, 57);
    }
}

/// View of an SMB2 CREATE response (MS-SMB2 2.2.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateResponse<'a> {
    fixed: &'a [u8; 88],
    contexts: &'a [u8],
}

impl<'a> CreateResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 89;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<88>(msg, Command::Create, 89)?;
        let (contexts, _) = buffer(
            msg,
            var_offset(88),
            u32_at(fixed, 80) as usize,
            u32_at(fixed, 84) as usize,
            "CREATE CreateContexts",
        )?;
        if !contexts.is_empty() {
            check_create_contexts(contexts)?;
        }
        Ok(CreateResponse { fixed, contexts })
    }

    /// OplockLevel.
    pub fn oplock_level(&self) -> u8 {
        self.fixed[2]
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.fixed[3]
    }
    /// CreateAction.
    pub fn create_action(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// CreationTime, LastAccessTime, LastWriteTime, ChangeTime (FILETIME).
    pub fn times(&self) -> [u64; 4] {
        [
            u64_at(self.fixed, 8),
            u64_at(self.fixed, 16),
            u64_at(self.fixed, 24),
            u64_at(self.fixed, 32),
        ]
    }
    /// AllocationSize.
    pub fn allocation_size(&self) -> u64 {
        u64_at(self.fixed, 40)
    }
    /// EndofFile.
    pub fn end_of_file(&self) -> u64 {
        u64_at(self.fixed, 48)
    }
    /// FileAttributes.
    pub fn file_attributes(&self) -> u32 {
        u32_at(self.fixed, 56)
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 64)
    }
    /// The create contexts.
    pub fn contexts(&self) -> CreateContexts<'a> {
        CreateContexts {
            rest: self.contexts,
        }
    }
    /// The fields as a Repr; contexts are written into `ctx_buf`.
    pub fn repr<'c>(&self, ctx_buf: &'c mut [CreateContext<'a>]) -> CreateResponseRepr<'c>
    where
        'a: 'c,
    {
        let mut n = 0;
        for (slot, c) in ctx_buf.iter_mut().zip(self.contexts()) {
            *slot = c;
            n += 1;
        }
        CreateResponseRepr {
            oplock_level: self.oplock_level(),
            flags: self.flags(),
            create_action: self.create_action(),
            times: self.times(),
            allocation_size: self.allocation_size(),
            end_of_file: self.end_of_file(),
            file_attributes: self.file_attributes(),
            file_id: self.file_id(),
            contexts: &ctx_buf[..n],
        }
    }
}

/// Emits an SMB2 CREATE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateResponseRepr<'a> {
    /// OplockLevel.
    pub oplock_level: u8,
    /// Flags.
    pub flags: u8,
    /// CreateAction.
    pub create_action: u32,
    /// CreationTime, LastAccessTime, LastWriteTime, ChangeTime.
    pub times: [u64; 4],
    /// AllocationSize.
    pub allocation_size: u64,
    /// EndofFile.
    pub end_of_file: u64,
    /// FileAttributes.
    pub file_attributes: u32,
    /// FileId.
    pub file_id: FileId,
    /// Create contexts.
    pub contexts: &'a [CreateContext<'a>],
}

impl EmitBody for CreateResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        let body = out.len();
        out.put_u16_le(89);
        out.put_u8(self.oplock_level);
        out.put_u8(self.flags);
        out.put_u32_le(self.create_action);
        for t in self.times {
            out.put_u64_le(t);
        }
        out.put_u64_le(self.allocation_size);
        out.put_u64_le(self.end_of_file);
        out.put_u32_le(self.file_attributes);
        out.put_u32_le(0);
        self.file_id.emit(out);
        out.put_u32_le(0);
        out.put_u32_le(0);
        let (off, len) = emit_create_contexts(self.contexts, msg_start, out);
        out.patch_u32_le(body + 80, off);
        out.patch_u32_le(body + 84, len);
        pad_body(out, msg_start, 89);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16, set32};

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        utf16::encode_into(s, &mut v);
        v
    }

    const CTXS: [CreateContext<'static>; 3] = [
        CreateContext {
            name: b"MxAc",
            data: &[],
        },
        CreateContext {
            name: b"QFid",
            data: &[],
        },
        CreateContext {
            name: b"DH2Q",
            data: &[1; 32],
        },
    ];

    fn request(ctxs: &[CreateContext<'_>]) -> Vec<u8> {
        let name = w("srvsvc");
        let r = CreateRequestRepr {
            impersonation_level: 2,
            desired_access: 0x0012_019F,
            share_access: 3,
            create_disposition: 1,
            create_options: 0x40,
            name: &name,
            contexts: ctxs,
            ..Default::default()
        };
        message(Command::Create, false, &r)
    }

    #[test]
    fn request_round_trip() {
        for n in 0..=3 {
            let m = request(&CTXS[..n]);
            let v = CreateRequest::parse(&m).unwrap();
            assert!(v.name_is("SRVSVC"));
            assert_eq!(v.desired_access(), 0x0012_019F);
            let mut buf = [CTXS[0]; 4];
            let r = v.repr(&mut buf);
            assert_eq!(r.contexts, &CTXS[..n]);
            assert_eq!(r.name, &w("srvsvc")[..]);
        }
    }

    #[test]
    fn request_bad_inputs() {
        let m = request(&CTXS);
        let ctx_off = u32::from_le_bytes(m[64 + 48..64 + 52].try_into().unwrap()) as usize;
        // Context chain: Next pointing backwards, misaligned, past the end; name out of entry.
        for (at, v) in [(0usize, 8u32), (0, 20), (0, 0x1000)] {
            let mut b = m.clone();
            b[ctx_off + at..ctx_off + at + 4].copy_from_slice(&v.to_le_bytes());
            assert!(CreateRequest::parse(&b).is_err(), "next {v}");
        }
        let mut b = m.clone();
        b[ctx_off + 6..ctx_off + 8].copy_from_slice(&200u16.to_le_bytes());
        assert!(CreateRequest::parse(&b).is_err());
        // Name and contexts overlapping.
        let mut b = m.clone();
        set32(&mut b, 48, 120);
        assert!(CreateRequest::parse(&b).is_err());
        // Odd NameLength, lying lengths, name in the fixed part.
        let mut b = m.clone();
        set16(&mut b, 46, 11);
        assert!(matches!(
            CreateRequest::parse(&b),
            Err(WireError::BadLength { .. })
        ));
        let mut b = m.clone();
        set32(&mut b, 52, 10_000);
        assert!(matches!(
            CreateRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        set16(&mut b, 44, 70);
        assert!(matches!(
            CreateRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        assert!(matches!(
            CreateRequest::parse(&raw(Command::Create, &[56, 0])),
            Err(WireError::BadStructureSize { got: 56, .. })
        ));
    }

    #[test]
    fn response_round_trip() {
        let r = CreateResponseRepr {
            oplock_level: 0,
            create_action: 1,
            times: [1, 2, 3, 4],
            end_of_file: 4096,
            file_attributes: 0x80,
            file_id: FileId {
                persistent: 5,
                volatile: 6,
            },
            contexts: &CTXS[2..],
            ..Default::default()
        };
        let m = message(Command::Create, true, &r);
        let v = CreateResponse::parse(&m).unwrap();
        let mut buf = [CTXS[0]; 2];
        assert_eq!(v.repr(&mut buf), r);
        assert!(CreateResponse::parse(&m[..64 + 80]).is_err());
    }
}
