//! SMB2 TREE_CONNECT request (with the 3.1.1 extension) and response (MS-SMB2 2.2.9,
//! 2.2.9.1, 2.2.9.2, 2.2.10).

use super::negotiate::Contexts;
use super::{buffer, fixed, pad_body, var_offset, EmitBody};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u16_at, u32_at};
use crate::utf16;
use crate::writer::{u16_len, LeWrite};

/// Request Flags (3.1.1, MS-SMB2 2.2.9).
pub mod flags {
    /// SMB2_TREE_CONNECT_FLAG_CLUSTER_RECONNECT.
    pub const CLUSTER_RECONNECT: u16 = 0x0001;
    /// SMB2_TREE_CONNECT_FLAG_REDIRECT_TO_OWNER.
    pub const REDIRECT_TO_OWNER: u16 = 0x0002;
    /// SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT.
    pub const EXTENSION_PRESENT: u16 = 0x0004;
}

/// ShareType (MS-SMB2 2.2.10).
pub mod share_type {
    /// SMB2_SHARE_TYPE_DISK.
    pub const DISK: u8 = 0x01;
    /// SMB2_SHARE_TYPE_PIPE.
    pub const PIPE: u8 = 0x02;
    /// SMB2_SHARE_TYPE_PRINT.
    pub const PRINT: u8 = 0x03;
}

const EXT_LEN: usize = 16;

/// View of an SMB2 TREE_CONNECT request (MS-SMB2 2.2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeConnectRequest<'a> {
    fixed: &'a [u8; 8],
    path: &'a [u8],
    contexts: &'a [u8],
    context_count: u16,
}

impl<'a> TreeConnectRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 9;

    /// Parses the whole message (header + body). With EXTENSION_PRESENT the extension
    /// (2.2.9.1) at the start of Buffer is checked and its contexts listed; PathOffset and
    /// PathLength locate the path in both forms.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<8>(msg, Command::TreeConnect, 9)?;
        let mut min = var_offset(8);
        let mut v = TreeConnectRequest {
            fixed,
            path: &[],
            contexts: &[],
            context_count: 0,
        };
        if v.extension_present() {
            let ext = msg.get(min..min + EXT_LEN).ok_or(WireError::Truncated {
                what: "TREE_CONNECT extension",
            })?;
            let off = u32::from_le_bytes([ext[0], ext[1], ext[2], ext[3]]) as usize;
            let count = u16::from_le_bytes([ext[4], ext[5]]);
            min += EXT_LEN;
            if count > 0 {
                let what = "TreeConnectContexts";
                // The offset counts from the start of the TREE_CONNECT request body.
                let abs = off
                    .checked_add(HEADER_LEN)
                    .ok_or(WireError::BadOffset { what })?;
                let list = super::tail(msg, min, abs, what)?;
                let used = super::negotiate::check_contexts(list, count, what)?;
                v.contexts = &list[..used];
                v.context_count = count;
            }
        }
        let plen = usize::from(u16_at(fixed, 6));
        if plen % 2 != 0 {
            return Err(WireError::BadLength { what: "PathLength" });
        }
        let (path, _) = buffer(
            msg,
            min,
            usize::from(u16_at(fixed, 4)),
            plen,
            "TREE_CONNECT Path",
        )?;
        v.path = path;
        Ok(v)
    }

    /// Flags (3.1.1) / Reserved.
    pub fn flags(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// `true` with SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT.
    pub fn extension_present(&self) -> bool {
        self.flags() & flags::EXTENSION_PRESENT != 0
    }
    /// The share path, raw UTF-16LE (`\\server\share`).
    pub fn path(&self) -> &'a [u8] {
        self.path
    }
    /// The path as UTF-16 code units.
    pub fn path_units(&self) -> impl Iterator<Item = u16> + Clone + 'a {
        utf16::units(self.path)
    }
    /// The share name: the path after its last backslash (raw UTF-16LE).
    pub fn share_name(&self) -> &'a [u8] {
        utf16::last_component(self.path)
    }
    /// `true` when the share name equals `name` ignoring ASCII case (e.g. `"IPC$"`).
    pub fn share_is(&self, name: &str) -> bool {
        utf16::eq_ignore_ascii_case(self.share_name(), name)
    }
    /// `true` for the IPC$ share.
    pub fn is_ipc(&self) -> bool {
        self.share_is("IPC$")
    }
    /// Decodes the path into `buf` as UTF-8 (truncated when `buf` is small).
    pub fn path_into<'b>(&self, buf: &'b mut [u8]) -> &'b str {
        utf16::decode_into(self.path, buf)
    }
    /// Tree connect contexts of the extension (2.2.9.2), raw.
    pub fn contexts(&self) -> Contexts<'a> {
        Contexts::new(self.contexts, self.context_count)
    }
    /// The fields as a Repr (contexts are not carried).
    pub fn repr(&self) -> TreeConnectRequestRepr<'a> {
        TreeConnectRequestRepr {
            flags: self.flags(),
            path: self.path,
        }
    }
}

/// Emits an SMB2 TREE_CONNECT request. With EXTENSION_PRESENT in `flags` an extension with no
/// contexts is written before the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeConnectRequestRepr<'a> {
    /// Flags.
    pub flags: u16,
    /// Path, UTF-16LE.
    pub path: &'a [u8],
}

impl EmitBody for TreeConnectRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(9);
        out.put_u16_le(self.flags);
        let ext = self.flags & flags::EXTENSION_PRESENT != 0;
        let path_off = HEADER_LEN + 8 + if ext { EXT_LEN } else { 0 };
        out.put_u16_le(u16_len(path_off));
        out.put_u16_le(u16_len(self.path.len()));
        if ext {
            out.put_u32_le(0);
            out.put_u16_le(0);
            out.put_zeros(10);
        }
        out.put_bytes(self.path);
        pad_body(out, msg_start, 9);
    }
}

/// View of an SMB2 TREE_CONNECT response (MS-SMB2 2.2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeConnectResponse<'a> {
    fixed: &'a [u8; 16],
}

impl<'a> TreeConnectResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 16;

    /// Parses the whole message (header + body).
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        Ok(TreeConnectResponse {
            fixed: fixed::<16>(msg, Command::TreeConnect, 16)?,
        })
    }
    /// ShareType.
    pub fn share_type(&self) -> u8 {
        self.fixed[2]
    }
    /// ShareFlags.
    pub fn share_flags(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// Capabilities.
    pub fn capabilities(&self) -> u32 {
        u32_at(self.fixed, 8)
    }
    /// MaximalAccess.
    pub fn maximal_access(&self) -> u32 {
        u32_at(self.fixed, 12)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> TreeConnectResponseRepr {
        TreeConnectResponseRepr {
            share_type: self.share_type(),
            share_flags: self.share_flags(),
            capabilities: self.capabilities(),
            maximal_access: self.maximal_access(),
        }
    }
}

/// Emits an SMB2 TREE_CONNECT response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeConnectResponseRepr {
    /// ShareType.
    pub share_type: u8,
    /// ShareFlags.
    pub share_flags: u32,
    /// Capabilities.
    pub capabilities: u32,
    /// MaximalAccess.
    pub maximal_access: u32,
}

impl EmitBody for TreeConnectResponseRepr {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(16);
        out.put_u8(self.share_type);
        out.put_u8(0);
        out.put_u32_le(self.share_flags);
        out.put_u32_le(self.capabilities);
        out.put_u32_le(self.maximal_access);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16};

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        utf16::encode_into(s, &mut v);
        v
    }

    #[test]
    fn request_round_trip_both_forms() {
        let p = w("\\\\127.0.0.1\\ipc$");
        for f in [0, flags::EXTENSION_PRESENT] {
            let r = TreeConnectRequestRepr { flags: f, path: &p };
            let m = message(Command::TreeConnect, false, &r);
            let v = TreeConnectRequest::parse(&m).unwrap();
            assert_eq!(v.repr(), r);
            assert!(v.is_ipc());
            assert!(!v.share_is("C$"));
            assert_eq!(v.extension_present(), f != 0);
            let mut buf = [0u8; 64];
            assert_eq!(v.path_into(&mut buf), "\\\\127.0.0.1\\ipc$");
            assert_eq!(v.path_units().count(), 16);
            assert_eq!(v.contexts().count(), 0);
        }
    }

    #[test]
    fn extension_with_contexts() {
        let p = w("\\\\h\\s");
        let mut body = vec![9, 0, 4, 0];
        body.extend((64u16 + 8 + 16).to_le_bytes());
        body.extend((p.len() as u16).to_le_bytes());
        let ctx_off = 8 + 16 + p.len() as u32; // from the request body start
        body.extend(ctx_off.to_le_bytes());
        body.extend(1u16.to_le_bytes());
        body.extend([0u8; 10]);
        body.extend(&p);
        body.extend([1, 0, 3, 0, 0, 0, 0, 0, 0xA, 0xB, 0xC]);
        let m = raw(Command::TreeConnect, &body);
        let v = TreeConnectRequest::parse(&m).unwrap();
        let c: Vec<_> = v.contexts().collect();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].context_type, 1);
        assert_eq!(c[0].data, &[0xA, 0xB, 0xC]);
        assert!(v.share_is("s"));
        // Lying context count.
        let mut b = m.clone();
        set16(&mut b, 12, 2);
        assert!(TreeConnectRequest::parse(&b).is_err());
        // Extension truncated.
        assert!(matches!(
            TreeConnectRequest::parse(&m[..64 + 8 + 10]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn request_bad_inputs() {
        let p = w("\\\\h\\IPC$");
        let r = TreeConnectRequestRepr { flags: 0, path: &p };
        let m = message(Command::TreeConnect, false, &r);
        let mut b = m.clone();
        set16(&mut b, 6, 200);
        assert!(matches!(
            TreeConnectRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        let mut b = m.clone();
        set16(&mut b, 6, 3);
        assert!(matches!(
            TreeConnectRequest::parse(&b),
            Err(WireError::BadLength { .. })
        ));
        let mut b = m.clone();
        set16(&mut b, 4, 66);
        assert!(matches!(
            TreeConnectRequest::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        assert_eq!(
            TreeConnectRequest::parse(&raw(Command::TreeConnect, &[8, 0, 0, 0, 0, 0, 0, 0]))
                .unwrap_err(),
            WireError::BadStructureSize {
                command: Command::TreeConnect,
                got: 8
            }
        );
    }

    #[test]
    fn response_round_trip() {
        let r = TreeConnectResponseRepr {
            share_type: share_type::PIPE,
            share_flags: 0x30,
            capabilities: 0,
            maximal_access: 0x001F_01FF,
        };
        let m = message(Command::TreeConnect, true, &r);
        assert_eq!(TreeConnectResponse::parse(&m).unwrap().repr(), r);
        assert!(TreeConnectResponse::parse(&m[..64 + 15]).is_err());
    }
}
