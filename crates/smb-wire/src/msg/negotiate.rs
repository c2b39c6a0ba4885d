//! SMB2 NEGOTIATE request and response with negotiate contexts (MS-SMB2 2.2.3, 2.2.3.1,
//! 2.2.4, 2.2.4.1).

use super::{buffer, fixed, no_overlap, pad_body, rel, tail, var_offset, EmitBody, U16s};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{arr16_at, u16_at, u32_at, u64_at, Reader};
use crate::writer::{u16_len, u32_len, LeWrite};

/// Dialect revision codes (MS-SMB2 2.2.3).
pub mod dialect {
    /// SMB 2.0.2.
    pub const SMB202: u16 = 0x0202;
    /// SMB 2.1.
    pub const SMB210: u16 = 0x0210;
    /// SMB 3.0.
    pub const SMB300: u16 = 0x0300;
    /// SMB 3.0.2.
    pub const SMB302: u16 = 0x0302;
    /// SMB 3.1.1.
    pub const SMB311: u16 = 0x0311;
    /// SMB2 wildcard revision: answer to an SMB1 multi-protocol negotiate offering "SMB 2.???".
    pub const WILDCARD: u16 = 0x02FF;
}

/// SecurityMode bits (MS-SMB2 2.2.3).
pub mod security_mode {
    /// SMB2_NEGOTIATE_SIGNING_ENABLED.
    pub const SIGNING_ENABLED: u16 = 0x0001;
    /// SMB2_NEGOTIATE_SIGNING_REQUIRED.
    pub const SIGNING_REQUIRED: u16 = 0x0002;
}

/// Capabilities bits (MS-SMB2 2.2.3).
pub mod capabilities {
    /// SMB2_GLOBAL_CAP_DFS.
    pub const DFS: u32 = 0x0000_0001;
    /// SMB2_GLOBAL_CAP_LEASING.
    pub const LEASING: u32 = 0x0000_0002;
    /// SMB2_GLOBAL_CAP_LARGE_MTU.
    pub const LARGE_MTU: u32 = 0x0000_0004;
    /// SMB2_GLOBAL_CAP_MULTI_CHANNEL.
    pub const MULTI_CHANNEL: u32 = 0x0000_0008;
    /// SMB2_GLOBAL_CAP_PERSISTENT_HANDLES.
    pub const PERSISTENT_HANDLES: u32 = 0x0000_0010;
    /// SMB2_GLOBAL_CAP_DIRECTORY_LEASING.
    pub const DIRECTORY_LEASING: u32 = 0x0000_0020;
    /// SMB2_GLOBAL_CAP_ENCRYPTION.
    pub const ENCRYPTION: u32 = 0x0000_0040;
    /// SMB2_GLOBAL_CAP_NOTIFICATIONS (3.1.1).
    pub const NOTIFICATIONS: u32 = 0x0000_0080;
}

/// Negotiate context types (MS-SMB2 2.2.3.1).
pub mod context_type {
    /// SMB2_PREAUTH_INTEGRITY_CAPABILITIES.
    pub const PREAUTH_INTEGRITY_CAPABILITIES: u16 = 0x0001;
    /// SMB2_ENCRYPTION_CAPABILITIES.
    pub const ENCRYPTION_CAPABILITIES: u16 = 0x0002;
    /// SMB2_COMPRESSION_CAPABILITIES.
    pub const COMPRESSION_CAPABILITIES: u16 = 0x0003;
    /// SMB2_NETNAME_NEGOTIATE_CONTEXT_ID.
    pub const NETNAME_NEGOTIATE_CONTEXT_ID: u16 = 0x0005;
    /// SMB2_TRANSPORT_CAPABILITIES.
    pub const TRANSPORT_CAPABILITIES: u16 = 0x0006;
    /// SMB2_RDMA_TRANSFORM_CAPABILITIES.
    pub const RDMA_TRANSFORM_CAPABILITIES: u16 = 0x0007;
    /// SMB2_SIGNING_CAPABILITIES.
    pub const SIGNING_CAPABILITIES: u16 = 0x0008;
}

/// Algorithm identifiers used in negotiate contexts (MS-SMB2 2.2.3.1.1 to 2.2.3.1.7).
pub mod algorithm {
    /// Preauth hash SHA-512.
    pub const SHA512: u16 = 0x0001;
    /// Cipher AES-128-CCM.
    pub const AES128_CCM: u16 = 0x0001;
    /// Cipher AES-128-GCM.
    pub const AES128_GCM: u16 = 0x0002;
    /// Cipher AES-256-CCM.
    pub const AES256_CCM: u16 = 0x0003;
    /// Cipher AES-256-GCM.
    pub const AES256_GCM: u16 = 0x0004;
    /// Signing HMAC-SHA256.
    pub const HMAC_SHA256: u16 = 0x0000;
    /// Signing AES-CMAC.
    pub const AES_CMAC: u16 = 0x0001;
    /// Signing AES-GMAC.
    pub const AES_GMAC: u16 = 0x0002;
}

const CTX_HEADER: usize = 8;

/// Checks a list of `count` contexts (ContextType u16, DataLength u16, Reserved u32, Data),
/// each starting 8-byte aligned relative to `list`'s start.
pub(crate) fn check_contexts(
    list: &[u8],
    count: u16,
    what: &'static str,
) -> Result<usize, WireError> {
    let mut pos = 0usize;
    for i in 0..count {
        if i > 0 {
            pos = (pos + 7) & !7;
        }
        let h = list
            .get(pos..pos + CTX_HEADER)
            .ok_or(WireError::Truncated { what })?;
        let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
        pos += CTX_HEADER;
        if list.len() - pos < len {
            return Err(WireError::BadLength { what });
        }
        pos += len;
    }
    Ok(pos)
}

/// Iterator over checked negotiate (or tree connect) contexts.
#[derive(Debug, Clone)]
pub struct Contexts<'a> {
    list: &'a [u8],
    pos: usize,
    left: u16,
}

impl<'a> Contexts<'a> {
    pub(crate) fn new(list: &'a [u8], count: u16) -> Self {
        Contexts {
            list,
            pos: 0,
            left: count,
        }
    }
}

impl<'a> Iterator for Contexts<'a> {
    type Item = NegotiateContext<'a>;

    fn next(&mut self) -> Option<NegotiateContext<'a>> {
        if self.left == 0 {
            return None;
        }
        let mut r = Reader::new(self.list.get(self.pos..)?);
        let context_type = r.take_u16_le()?;
        let len = r.take_u16_le()?;
        r.skip(4)?;
        let data = r.take(usize::from(len))?;
        self.left -= 1;
        self.pos = (self.pos + CTX_HEADER + data.len() + 7) & !7;
        Some(NegotiateContext { context_type, data })
    }
}

/// One negotiate context: its type and raw data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiateContext<'a> {
    /// ContextType.
    pub context_type: u16,
    /// Data (DataLength bytes).
    pub data: &'a [u8],
}

impl<'a> NegotiateContext<'a> {
    /// Decodes the data of the context types this crate knows.
    pub fn decode(&self) -> Result<NegotiateContextRepr<'a>, WireError> {
        let mut r = Reader::new(self.data);
        let tr = |what| WireError::Truncated { what };
        Ok(match self.context_type {
            context_type::PREAUTH_INTEGRITY_CAPABILITIES => {
                let what = "PREAUTH_INTEGRITY_CAPABILITIES";
                let n = r.take_u16_le().ok_or(tr(what))?;
                let salt_len = r.take_u16_le().ok_or(tr(what))?;
                let hashes = r.take(usize::from(n) * 2).ok_or(tr(what))?;
                let salt = r.take(usize::from(salt_len)).ok_or(tr(what))?;
                NegotiateContextRepr::PreauthIntegrity {
                    hash_algorithms: U16s::Le(hashes),
                    salt,
                }
            }
            context_type::ENCRYPTION_CAPABILITIES => {
                let what = "ENCRYPTION_CAPABILITIES";
                let n = r.take_u16_le().ok_or(tr(what))?;
                let c = r.take(usize::from(n) * 2).ok_or(tr(what))?;
                NegotiateContextRepr::Encryption {
                    ciphers: U16s::Le(c),
                }
            }
            context_type::SIGNING_CAPABILITIES => {
                let what = "SIGNING_CAPABILITIES";
                let n = r.take_u16_le().ok_or(tr(what))?;
                let c = r.take(usize::from(n) * 2).ok_or(tr(what))?;
                NegotiateContextRepr::Signing {
                    algorithms: U16s::Le(c),
                }
            }
            context_type::NETNAME_NEGOTIATE_CONTEXT_ID => NegotiateContextRepr::NetName(self.data),
            t => NegotiateContextRepr::Raw {
                context_type: t,
                data: self.data,
            },
        })
    }
}

/// A negotiate context to emit (or a decoded one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegotiateContextRepr<'a> {
    /// SMB2_PREAUTH_INTEGRITY_CAPABILITIES (2.2.3.1.1).
    PreauthIntegrity {
        /// HashAlgorithms.
        hash_algorithms: U16s<'a>,
        /// Salt.
        salt: &'a [u8],
    },
    /// SMB2_ENCRYPTION_CAPABILITIES (2.2.3.1.2).
    Encryption {
        /// Ciphers.
        ciphers: U16s<'a>,
    },
    /// SMB2_SIGNING_CAPABILITIES (2.2.3.1.7).
    Signing {
        /// SigningAlgorithms.
        algorithms: U16s<'a>,
    },
    /// SMB2_NETNAME_NEGOTIATE_CONTEXT_ID (2.2.3.1.4): UTF-16LE server name.
    NetName(&'a [u8]),
    /// Any other context, kept raw.
    Raw {
        /// ContextType.
        context_type: u16,
        /// Data.
        data: &'a [u8],
    },
}

impl NegotiateContextRepr<'_> {
    /// The ContextType written for this context.
    pub fn context_type(&self) -> u16 {
        match self {
            NegotiateContextRepr::PreauthIntegrity { .. } => {
                context_type::PREAUTH_INTEGRITY_CAPABILITIES
            }
            NegotiateContextRepr::Encryption { .. } => context_type::ENCRYPTION_CAPABILITIES,
            NegotiateContextRepr::Signing { .. } => context_type::SIGNING_CAPABILITIES,
            NegotiateContextRepr::NetName(_) => context_type::NETNAME_NEGOTIATE_CONTEXT_ID,
            NegotiateContextRepr::Raw { context_type, .. } => *context_type,
        }
    }

    /// Appends the context (8-byte header and data, no trailing padding).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16_le(self.context_type());
        let len_at = out.len();
        out.put_u16_le(0);
        out.put_u32_le(0);
        let start = out.len();
        match self {
            NegotiateContextRepr::PreauthIntegrity {
                hash_algorithms,
                salt,
            } => {
                out.put_u16_le(u16_len(hash_algorithms.len()));
                out.put_u16_le(u16_len(salt.len()));
                hash_algorithms.emit(out);
                out.put_bytes(salt);
            }
            NegotiateContextRepr::Encryption { ciphers: l }
            | NegotiateContextRepr::Signing { algorithms: l } => {
                out.put_u16_le(u16_len(l.len()));
                l.emit(out);
            }
            NegotiateContextRepr::NetName(d) | NegotiateContextRepr::Raw { data: d, .. } => {
                out.put_bytes(d)
            }
        }
        let len = u16_len(out.len() - start);
        out.patch_u16_le(len_at, len);
    }
}

/// Emits contexts 8-byte aligned relative to `msg_start`; returns the offset of the first.
fn emit_contexts(ctxs: &[NegotiateContextRepr<'_>], msg_start: usize, out: &mut Vec<u8>) -> u32 {
    out.pad_to(msg_start, 8);
    let first = rel(out, msg_start);
    for (i, c) in ctxs.iter().enumerate() {
        if i > 0 {
            out.pad_to(msg_start, 8);
        }
        c.emit(out);
    }
    u32_len(first)
}

/// View of an SMB2 NEGOTIATE request (MS-SMB2 2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiateRequest<'a> {
    fixed: &'a [u8; 36],
    dialects: &'a [u8],
    contexts: &'a [u8],
    context_count: u16,
}

impl<'a> NegotiateRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 36;

    /// Parses the whole message (header + body). DialectCount 0 is refused (MS-SMB2 3.3.5.4).
    /// Negotiate contexts are read only when 3.1.1 is offered.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<36>(msg, Command::Negotiate, 36)?;
        let n = usize::from(u16_at(fixed, 2));
        if n == 0 {
            return Err(WireError::BadLength {
                what: "DialectCount",
            });
        }
        let start = var_offset(36);
        let dialects = msg.get(start..start + n * 2).ok_or(WireError::Truncated {
            what: "NEGOTIATE Dialects",
        })?;
        let mut v = NegotiateRequest {
            fixed,
            dialects,
            contexts: &[],
            context_count: 0,
        };
        let count = u16_at(fixed, 32);
        if v.offers(dialect::SMB311) && count > 0 {
            let off = u32_at(fixed, 28) as usize;
            if off % 8 != 0 {
                return Err(WireError::Misaligned {
                    what: "NegotiateContextOffset",
                });
            }
            let what = "NegotiateContextList";
            let list = tail(msg, start + n * 2, off, what)?;
            let used = check_contexts(list, count, what)?;
            v.contexts = &list[..used];
            v.context_count = count;
        }
        Ok(v)
    }

    /// DialectCount.
    pub fn dialect_count(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// SecurityMode.
    pub fn security_mode(&self) -> u16 {
        u16_at(self.fixed, 4)
    }
    /// Capabilities.
    pub fn capabilities(&self) -> u32 {
        u32_at(self.fixed, 8)
    }
    /// ClientGuid.
    pub fn client_guid(&self) -> [u8; 16] {
        arr16_at(self.fixed, 12)
    }
    /// ClientStartTime (the bytes at 28..36 when 3.1.1 is not offered).
    pub fn client_start_time(&self) -> u64 {
        u64_at(self.fixed, 28)
    }
    /// The offered dialects.
    pub fn dialects(&self) -> U16s<'a> {
        U16s::Le(self.dialects)
    }
    /// `true` when `dialect` is offered.
    pub fn offers(&self, dialect: u16) -> bool {
        self.dialects().contains(dialect)
    }
    /// The negotiate contexts (empty unless 3.1.1 is offered).
    pub fn contexts(&self) -> Contexts<'a> {
        Contexts::new(self.contexts, self.context_count)
    }
    /// NegotiateContextCount as checked (0 when contexts are not in use).
    pub fn context_count(&self) -> u16 {
        self.context_count
    }
    /// The fields as a Repr (undecodable contexts are kept raw).
    pub fn repr<'c>(&self, contexts: &'c mut [NegotiateContextRepr<'a>]) -> NegotiateRequestRepr<'c>
    where
        'a: 'c,
    {
        let mut n = 0;
        for (slot, c) in contexts.iter_mut().zip(self.contexts()) {
            *slot = c.decode().unwrap_or(NegotiateContextRepr::Raw {
                context_type: c.context_type,
                data: c.data,
            });
            n += 1;
        }
        NegotiateRequestRepr {
            security_mode: self.security_mode(),
            capabilities: self.capabilities(),
            client_guid: self.client_guid(),
            client_start_time: if self.context_count > 0 {
                0
            } else {
                self.client_start_time()
            },
            dialects: self.dialects(),
            contexts: &contexts[..n],
        }
    }
}

/// Emits an SMB2 NEGOTIATE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiateRequestRepr<'a> {
    /// SecurityMode.
    pub security_mode: u16,
    /// Capabilities.
    pub capabilities: u32,
    /// ClientGuid.
    pub client_guid: [u8; 16],
    /// ClientStartTime, used only when `contexts` is empty.
    pub client_start_time: u64,
    /// Dialects.
    pub dialects: U16s<'a>,
    /// Negotiate contexts (sent when non-empty; offer 3.1.1 with them).
    pub contexts: &'a [NegotiateContextRepr<'a>],
}

impl EmitBody for NegotiateRequestRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        let body = out.len();
        out.put_u16_le(36);
        out.put_u16_le(u16_len(self.dialects.len()));
        out.put_u16_le(self.security_mode);
        out.put_u16_le(0);
        out.put_u32_le(self.capabilities);
        out.put_bytes(&self.client_guid);
        out.put_u64_le(self.client_start_time);
        self.dialects.emit(out);
        if !self.contexts.is_empty() {
            let off = emit_contexts(self.contexts, msg_start, out);
            out.patch_u32_le(body + 28, off);
            out.patch_u16_le(body + 32, u16_len(self.contexts.len()));
            out.patch_u16_le(body + 34, 0);
        }
    }
}

/// View of an SMB2 NEGOTIATE response (MS-SMB2 2.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiateResponse<'a> {
    fixed: &'a [u8; 64],
    security_buffer: &'a [u8],
    contexts: &'a [u8],
    context_count: u16,
}

impl<'a> NegotiateResponse<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 65;

    /// Parses the whole message (header + body). Contexts are read when the dialect is 3.1.1.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let fixed = fixed::<64>(msg, Command::Negotiate, 65)?;
        let min = var_offset(64);
        let (security_buffer, sr) = buffer(
            msg,
            min,
            usize::from(u16_at(fixed, 56)),
            usize::from(u16_at(fixed, 58)),
            "NEGOTIATE SecurityBuffer",
        )?;
        let mut v = NegotiateResponse {
            fixed,
            security_buffer,
            contexts: &[],
            context_count: 0,
        };
        let count = u16_at(fixed, 6);
        if v.dialect_revision() == dialect::SMB311 && count > 0 {
            let off = u32_at(fixed, 60) as usize;
            if off % 8 != 0 {
                return Err(WireError::Misaligned {
                    what: "NegotiateContextOffset",
                });
            }
            let what = "NegotiateContextList";
            let list = tail(msg, min, off, what)?;
            let used = check_contexts(list, count, what)?;
            no_overlap(
                &sr,
                &(off..off + used),
                "SecurityBuffer and NegotiateContextList",
            )?;
            v.contexts = &list[..used];
            v.context_count = count;
        }
        Ok(v)
    }

    /// SecurityMode.
    pub fn security_mode(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// DialectRevision.
    pub fn dialect_revision(&self) -> u16 {
        u16_at(self.fixed, 4)
    }
    /// ServerGuid.
    pub fn server_guid(&self) -> [u8; 16] {
        arr16_at(self.fixed, 8)
    }
    /// Capabilities.
    pub fn capabilities(&self) -> u32 {
        u32_at(self.fixed, 24)
    }
    /// MaxTransactSize.
    pub fn max_transact_size(&self) -> u32 {
        u32_at(self.fixed, 28)
    }
    /// MaxReadSize.
    pub fn max_read_size(&self) -> u32 {
        u32_at(self.fixed, 32)
    }
    /// MaxWriteSize.
    pub fn max_write_size(&self) -> u32 {
        u32_at(self.fixed, 36)
    }
    /// SystemTime (FILETIME).
    pub fn system_time(&self) -> u64 {
        u64_at(self.fixed, 40)
    }
    /// ServerStartTime (FILETIME).
    pub fn server_start_time(&self) -> u64 {
        u64_at(self.fixed, 48)
    }
    /// The security buffer (SPNEGO token).
    pub fn security_buffer(&self) -> &'a [u8] {
        self.security_buffer
    }
    /// Negotiate contexts (3.1.1).
    pub fn contexts(&self) -> Contexts<'a> {
        Contexts::new(self.contexts, self.context_count)
    }
    /// The fields as a Repr; decoded contexts are written into `contexts`.
    pub fn repr<'c>(
        &self,
        contexts: &'c mut [NegotiateContextRepr<'a>],
    ) -> NegotiateResponseRepr<'c>
    where
        'a: 'c,
    {
        let mut n = 0;
        for (slot, c) in contexts.iter_mut().zip(self.contexts()) {
            *slot = c.decode().unwrap_or(NegotiateContextRepr::Raw {
                context_type: c.context_type,
                data: c.data,
            });
            n += 1;
        }
        NegotiateResponseRepr {
            security_mode: self.security_mode(),
            dialect_revision: self.dialect_revision(),
            server_guid: self.server_guid(),
            capabilities: self.capabilities(),
            max_transact_size: self.max_transact_size(),
            max_read_size: self.max_read_size(),
            max_write_size: self.max_write_size(),
            system_time: self.system_time(),
            server_start_time: self.server_start_time(),
            security_buffer: self.security_buffer,
            contexts: &contexts[..n],
        }
    }
}

/// Emits an SMB2 NEGOTIATE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiateResponseRepr<'a> {
    /// SecurityMode.
    pub security_mode: u16,
    /// DialectRevision.
    pub dialect_revision: u16,
    /// ServerGuid.
    pub server_guid: [u8; 16],
    /// Capabilities.
    pub capabilities: u32,
    /// MaxTransactSize.
    pub max_transact_size: u32,
    /// MaxReadSize.
    pub max_read_size: u32,
    /// MaxWriteSize.
    pub max_write_size: u32,
    /// SystemTime.
    pub system_time: u64,
    /// ServerStartTime.
    pub server_start_time: u64,
    /// SecurityBuffer (SPNEGO NegTokenInit).
    pub security_buffer: &'a [u8],
    /// Negotiate contexts (only with dialect 3.1.1).
    pub contexts: &'a [NegotiateContextRepr<'a>],
}

impl EmitBody for NegotiateResponseRepr<'_> {
    fn emit_body(&self, msg_start: usize, out: &mut Vec<u8>) {
        let body = out.len();
        out.put_u16_le(65);
        out.put_u16_le(self.security_mode);
        out.put_u16_le(self.dialect_revision);
        out.put_u16_le(u16_len(self.contexts.len()));
        out.put_bytes(&self.server_guid);
        out.put_u32_le(self.capabilities);
        out.put_u32_le(self.max_transact_size);
        out.put_u32_le(self.max_read_size);
        out.put_u32_le(self.max_write_size);
        out.put_u64_le(self.system_time);
        out.put_u64_le(self.server_start_time);
        out.put_u16_le(u16_len(HEADER_LEN + 64));
        out.put_u16_le(u16_len(self.security_buffer.len()));
        out.put_u32_le(0);
        out.put_bytes(self.security_buffer);
        if !self.contexts.is_empty() {
            let off = emit_contexts(self.contexts, msg_start, out);
            out.patch_u32_le(body + 60, off);
        }
        pad_body(out, msg_start, 65);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16, set32};

    const DIALECTS: &[u16] = &[0x0202, 0x0210, 0x0300, 0x0302, 0x0311];

    fn ctxs() -> [NegotiateContextRepr<'static>; 4] {
        [
            NegotiateContextRepr::PreauthIntegrity {
                hash_algorithms: U16s::Native(&[algorithm::SHA512]),
                salt: &[7; 32],
            },
            NegotiateContextRepr::Encryption {
                ciphers: U16s::Native(&[algorithm::AES128_GCM, algorithm::AES128_CCM]),
            },
            NegotiateContextRepr::NetName(b"h\0o\0s\0t\0"),
            NegotiateContextRepr::Signing {
                algorithms: U16s::Native(&[algorithm::AES_GMAC, algorithm::AES_CMAC]),
            },
        ]
    }

    fn request(dialects: &'static [u16]) -> Vec<u8> {
        let c = ctxs();
        let r = NegotiateRequestRepr {
            security_mode: 1,
            capabilities: 0x7F,
            client_guid: [9; 16],
            client_start_time: 0,
            dialects: U16s::Native(dialects),
            contexts: if dialects.contains(&0x0311) { &c } else { &[] },
        };
        message(Command::Negotiate, false, &r)
    }

    #[test]
    fn request_round_trip_with_contexts() {
        let m = request(DIALECTS);
        let v = NegotiateRequest::parse(&m).unwrap();
        assert_eq!(v.dialect_count(), 5);
        assert!(v.offers(dialect::SMB311) && v.offers(dialect::SMB202));
        assert!(!v.offers(dialect::WILDCARD));
        assert_eq!(v.contexts().count(), 4);
        let mut buf = [NegotiateContextRepr::NetName(&[]); 8];
        let r = v.repr(&mut buf);
        assert_eq!(r.contexts, &ctxs()[..]);
        assert_eq!(r.dialects, U16s::Native(DIALECTS));
        assert_eq!(r.client_guid, [9; 16]);
        // Second and later contexts start 8-aligned relative to the header.
        let off = u32::from_le_bytes(m[64 + 28..64 + 32].try_into().unwrap()) as usize;
        assert_eq!(off % 8, 0);
        assert_eq!(&m[off..off + 2], &[1, 0]);
    }

    #[test]
    fn request_without_311_ignores_context_fields() {
        let mut m = request(&[0x0202, 0x0210]);
        set32(&mut m, 28, 0xFFFF_FFF8);
        set16(&mut m, 32, 3);
        let v = NegotiateRequest::parse(&m).unwrap();
        assert_eq!(v.contexts().count(), 0);
        assert_eq!(
            v.dialects().iter().collect::<Vec<_>>(),
            vec![0x0202, 0x0210]
        );
    }

    #[test]
    fn request_bad_inputs() {
        let m = request(DIALECTS);
        // Truncated dialect list.
        assert!(matches!(
            NegotiateRequest::parse(&m[..64 + 36 + 3]),
            Err(WireError::Truncated { .. })
        ));
        // DialectCount 0.
        let mut z = m.clone();
        set16(&mut z, 2, 0);
        assert_eq!(
            NegotiateRequest::parse(&z).unwrap_err(),
            WireError::BadLength {
                what: "DialectCount"
            }
        );
        // Lying DialectCount.
        let mut l = m.clone();
        set16(&mut l, 2, 5000);
        assert!(NegotiateRequest::parse(&l).is_err());
        // Context offset out of bounds / misaligned / inside the dialects.
        let mut o = m.clone();
        set32(&mut o, 28, 0x10000);
        assert!(matches!(
            NegotiateRequest::parse(&o),
            Err(WireError::BadOffset { .. })
        ));
        let mut o = m.clone();
        set32(&mut o, 28, 0x6C);
        assert!(matches!(
            NegotiateRequest::parse(&o),
            Err(WireError::Misaligned { .. })
        ));
        let mut o = m.clone();
        set32(&mut o, 28, 0x68);
        assert!(matches!(
            NegotiateRequest::parse(&o),
            Err(WireError::BadOffset { .. })
        ));
        // Context count larger than the list.
        let mut c = m.clone();
        set16(&mut c, 32, 5);
        assert!(matches!(
            NegotiateRequest::parse(&c),
            Err(WireError::Truncated { .. })
        ));
        // A context whose DataLength runs past the message.
        let off = u32::from_le_bytes(m[64 + 28..64 + 32].try_into().unwrap()) as usize;
        let mut d = m.clone();
        d[off + 2..off + 4].copy_from_slice(&0x4000u16.to_le_bytes());
        assert!(matches!(
            NegotiateRequest::parse(&d),
            Err(WireError::BadLength { .. })
        ));
        // Bad StructureSize.
        assert_eq!(
            NegotiateRequest::parse(&raw(Command::Negotiate, &[37, 0])).unwrap_err(),
            WireError::BadStructureSize {
                command: Command::Negotiate,
                got: 37
            }
        );
    }

    #[test]
    fn context_decode_rejects_lying_counts() {
        let c = NegotiateContext {
            context_type: context_type::ENCRYPTION_CAPABILITIES,
            data: &[5, 0, 2, 0],
        };
        assert!(matches!(c.decode(), Err(WireError::Truncated { .. })));
        let c = NegotiateContext {
            context_type: context_type::PREAUTH_INTEGRITY_CAPABILITIES,
            data: &[1, 0, 32, 0, 1, 0],
        };
        assert!(c.decode().is_err());
    }

    fn response(dialect: u16, sec: &'static [u8]) -> Vec<u8> {
        let c = ctxs();
        let r = NegotiateResponseRepr {
            security_mode: 1,
            dialect_revision: dialect,
            server_guid: [3; 16],
            capabilities: 0x45,
            max_transact_size: 8 << 20,
            max_read_size: 8 << 20,
            max_write_size: 8 << 20,
            system_time: 132_000_000_000_000_000,
            server_start_time: 0,
            security_buffer: sec,
            contexts: if dialect == 0x0311 { &c[..2] } else { &[] },
        };
        message(Command::Negotiate, true, &r)
    }

    #[test]
    fn response_round_trip() {
        for d in [0x0202, 0x02FF, 0x0300, 0x0311] {
            for sec in [&b""[..], &b"\x60\x28spnego-init-token"[..]] {
                let m = response(d, sec);
                let v = NegotiateResponse::parse(&m).unwrap();
                assert_eq!(v.dialect_revision(), d);
                assert_eq!(v.security_buffer(), sec);
                assert_eq!(v.max_read_size(), 8 << 20);
                assert_eq!(v.contexts().count(), if d == 0x0311 { 2 } else { 0 });
                let mut buf = [NegotiateContextRepr::NetName(&[]); 4];
                let r = v.repr(&mut buf);
                assert_eq!(r.server_guid, [3; 16]);
                assert!(m.len() >= 64 + 65);
            }
        }
    }

    #[test]
    fn response_bad_inputs() {
        let m = response(0x0311, b"token-bytes");
        // Security buffer pointing into the fixed part.
        let mut b = m.clone();
        set16(&mut b, 56, 64 + 10);
        assert!(matches!(
            NegotiateResponse::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        // Lying security buffer length.
        let mut b = m.clone();
        set16(&mut b, 58, 0xFFFF);
        assert!(matches!(
            NegotiateResponse::parse(&b),
            Err(WireError::BadOffset { .. })
        ));
        // Contexts overlapping the security buffer.
        let mut b = m.clone();
        set32(&mut b, 60, 128);
        assert!(NegotiateResponse::parse(&b).is_err());
        // Truncated fixed part.
        assert!(matches!(
            NegotiateResponse::parse(&m[..64 + 40]),
            Err(WireError::Truncated { .. })
        ));
    }
}
