//! NTLMSSP messages, MS-NLMP 2.2: NEGOTIATE (2.2.1.1), CHALLENGE (2.2.1.2),
//! AUTHENTICATE (2.2.1.3), AV_PAIR lists (2.2.2.1), VERSION (2.2.2.10) and
//! the negotiate flags (2.2.2.5).
//!
//! Parsing borrows the input and checks every length and offset once, so no
//! accessor can panic; encoders (`*Repr::emit`) build owned messages.

use crate::error::AuthError;

/// The 8-byte signature that starts every NTLMSSP message.
pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// MessageType of a NEGOTIATE_MESSAGE.
pub const MSG_NEGOTIATE: u32 = 1;
/// MessageType of a CHALLENGE_MESSAGE.
pub const MSG_CHALLENGE: u32 = 2;
/// MessageType of an AUTHENTICATE_MESSAGE.
pub const MSG_AUTHENTICATE: u32 = 3;

/// Offset of the MIC field in an AUTHENTICATE_MESSAGE (after Version).
pub const MIC_OFFSET: usize = 72;
/// Length of the AUTHENTICATE_MESSAGE fixed part when Version and MIC are present.
pub const AUTHENTICATE_HEADER_WITH_MIC: usize = 88;

/// NTLMSSP negotiate flags (MS-NLMP 2.2.2.5).
///
/// The constants are plain `u32` bit masks; the newtype offers `has`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NegotiateFlags(pub u32);

impl NegotiateFlags {
    /// A: NTLMSSP_NEGOTIATE_UNICODE.
    pub const UNICODE: u32 = 0x0000_0001;
    /// B: NTLM_NEGOTIATE_OEM.
    pub const OEM: u32 = 0x0000_0002;
    /// C: NTLMSSP_REQUEST_TARGET.
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    /// D: NTLMSSP_NEGOTIATE_SIGN.
    pub const SIGN: u32 = 0x0000_0010;
    /// E: NTLMSSP_NEGOTIATE_SEAL.
    pub const SEAL: u32 = 0x0000_0020;
    /// F: NTLMSSP_NEGOTIATE_DATAGRAM.
    pub const DATAGRAM: u32 = 0x0000_0040;
    /// G: NTLMSSP_NEGOTIATE_LM_KEY.
    pub const LM_KEY: u32 = 0x0000_0080;
    /// H: NTLMSSP_NEGOTIATE_NTLM.
    pub const NTLM: u32 = 0x0000_0200;
    /// J: anonymous connection (NTLMSSP_ANONYMOUS).
    pub const ANONYMOUS: u32 = 0x0000_0800;
    /// K: NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED.
    pub const OEM_DOMAIN_SUPPLIED: u32 = 0x0000_1000;
    /// L: NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED.
    pub const OEM_WORKSTATION_SUPPLIED: u32 = 0x0000_2000;
    /// M: NTLMSSP_NEGOTIATE_ALWAYS_SIGN.
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    /// N: NTLMSSP_TARGET_TYPE_DOMAIN.
    pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
    /// O: NTLMSSP_TARGET_TYPE_SERVER.
    pub const TARGET_TYPE_SERVER: u32 = 0x0002_0000;
    /// P: NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY.
    pub const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
    /// Q: NTLMSSP_NEGOTIATE_IDENTIFY.
    pub const IDENTIFY: u32 = 0x0010_0000;
    /// R: NTLMSSP_REQUEST_NON_NT_SESSION_KEY.
    pub const REQUEST_NON_NT_SESSION_KEY: u32 = 0x0040_0000;
    /// S: NTLMSSP_NEGOTIATE_TARGET_INFO.
    pub const TARGET_INFO: u32 = 0x0080_0000;
    /// T: NTLMSSP_NEGOTIATE_VERSION.
    pub const VERSION: u32 = 0x0200_0000;
    /// U: NTLMSSP_NEGOTIATE_128.
    pub const N128: u32 = 0x2000_0000;
    /// V: NTLMSSP_NEGOTIATE_KEY_EXCH.
    pub const KEY_EXCH: u32 = 0x4000_0000;
    /// W: NTLMSSP_NEGOTIATE_56.
    pub const N56: u32 = 0x8000_0000;

    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u32) -> bool {
        self.0 & mask == mask
    }
}

/// AV_PAIR identifiers (MS-NLMP 2.2.2.1).
pub mod av_id {
    /// MsvAvEOL: end of the list.
    pub const EOL: u16 = 0;
    /// MsvAvNbComputerName.
    pub const NB_COMPUTER_NAME: u16 = 1;
    /// MsvAvNbDomainName.
    pub const NB_DOMAIN_NAME: u16 = 2;
    /// MsvAvDnsComputerName.
    pub const DNS_COMPUTER_NAME: u16 = 3;
    /// MsvAvDnsDomainName.
    pub const DNS_DOMAIN_NAME: u16 = 4;
    /// MsvAvDnsTreeName.
    pub const DNS_TREE_NAME: u16 = 5;
    /// MsvAvFlags (u32).
    pub const FLAGS: u16 = 6;
    /// MsvAvTimestamp (FILETIME u64).
    pub const TIMESTAMP: u16 = 7;
    /// MsvAvSingleHost.
    pub const SINGLE_HOST: u16 = 8;
    /// MsvAvTargetName.
    pub const TARGET_NAME: u16 = 9;
    /// MsvAvChannelBindings.
    pub const CHANNEL_BINDINGS: u16 = 10;
}

/// MsvAvFlags bit: the AUTHENTICATE_MESSAGE carries a MIC.
pub const AV_FLAG_MIC_PRESENT: u32 = 0x0000_0002;

/// Reads a little-endian u16 at `off`, if in bounds.
pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// Reads a little-endian u32 at `off`, if in bounds.
pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a little-endian u64 at `off`, if in bounds.
pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// A `(Len u16, MaxLen u16, BufferOffset u32)` field descriptor at `at`,
/// resolved to its payload. An empty field is valid whatever its offset.
fn payload_field(msg: &[u8], at: usize) -> Result<(&[u8], usize), AuthError> {
    let len = u16_at(msg, at).ok_or(AuthError::Malformed("field truncated"))? as usize;
    let off = u32_at(msg, at + 4).ok_or(AuthError::Malformed("field truncated"))? as usize;
    if len == 0 {
        return Ok((&[], usize::MAX));
    }
    let end = off
        .checked_add(len)
        .ok_or(AuthError::Malformed("field offset"))?;
    let data = msg
        .get(off..end)
        .ok_or(AuthError::Malformed("field outside message"))?;
    Ok((data, off))
}

fn check_header(buf: &[u8], ty: u32, min: usize) -> Result<(), AuthError> {
    if buf.len() < min {
        return Err(AuthError::Malformed("NTLMSSP message truncated"));
    }
    if &buf[..8] != SIGNATURE {
        return Err(AuthError::Malformed("not an NTLMSSP message"));
    }
    if u32_at(buf, 8) != Some(ty) {
        return Err(AuthError::UnexpectedMessage("wrong NTLMSSP message type"));
    }
    Ok(())
}

/// Returns the NTLMSSP MessageType of `buf`, if it looks like NTLMSSP.
pub fn message_type(buf: &[u8]) -> Option<u32> {
    if buf.len() >= 12 && &buf[..8] == SIGNATURE {
        u32_at(buf, 8)
    } else {
        None
    }
}

/// VERSION structure (MS-NLMP 2.2.2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// ProductMajorVersion.
    pub major: u8,
    /// ProductMinorVersion.
    pub minor: u8,
    /// ProductBuild.
    pub build: u16,
    /// NTLMRevisionCurrent (15 = NTLMSSP_REVISION_W2K3).
    pub revision: u8,
}

impl Version {
    /// What this implementation announces: 6.1, build 7600, revision 15.
    pub const DEFAULT: Version = Version {
        major: 6,
        minor: 1,
        build: 7600,
        revision: 15,
    };

    /// Parses the 8 bytes at `off` (the three reserved bytes are ignored).
    pub fn parse_at(b: &[u8], off: usize) -> Option<Version> {
        let s = b.get(off..off.checked_add(8)?)?;
        Some(Version {
            major: s[0],
            minor: s[1],
            build: u16::from_le_bytes([s[2], s[3]]),
            revision: s[7],
        })
    }

    /// The 8-byte wire form.
    pub fn to_bytes(self) -> [u8; 8] {
        let b = self.build.to_le_bytes();
        [self.major, self.minor, b[0], b[1], 0, 0, 0, self.revision]
    }
}

/// A validated AV_PAIR list (MS-NLMP 2.2.2.1), borrowed.
///
/// Validation checks that each pair fits and that the list ends with MsvAvEOL
/// or exactly at the end of the buffer; bytes after MsvAvEOL are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvPairs<'a> {
    buf: &'a [u8],
}

impl<'a> AvPairs<'a> {
    /// Validates `buf` as an AV_PAIR list.
    pub fn parse(buf: &'a [u8]) -> Result<Self, AuthError> {
        Self::scan(buf).map(|(list, _)| list)
    }

    /// Validates `buf` as an AV_PAIR list that ends with MsvAvEOL, as
    /// MS-NLMP 2.2.2.1 requires ("MsvAvEOL MUST be the last item").
    pub fn parse_terminated(buf: &'a [u8]) -> Result<Self, AuthError> {
        match Self::scan(buf)? {
            (list, true) => Ok(list),
            (_, false) => Err(AuthError::Malformed("AV_PAIR list without MsvAvEOL")),
        }
    }

    /// The list and whether it ended with MsvAvEOL.
    fn scan(buf: &'a [u8]) -> Result<(Self, bool), AuthError> {
        let mut pos = 0usize;
        while pos < buf.len() {
            let id = u16_at(buf, pos).ok_or(AuthError::Malformed("AV_PAIR truncated"))?;
            let len = u16_at(buf, pos + 2).ok_or(AuthError::Malformed("AV_PAIR truncated"))?;
            let end = pos + 4 + len as usize;
            if end > buf.len() {
                return Err(AuthError::Malformed("AV_PAIR value outside list"));
            }
            if id == av_id::EOL {
                return Ok((AvPairs { buf: &buf[..end] }, true));
            }
            pos = end;
        }
        Ok((AvPairs { buf }, false))
    }

    /// The list bytes (up to and including MsvAvEOL when present).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Iterates `(AvId, Value)` pairs, MsvAvEOL excluded.
    pub fn iter(&self) -> AvIter<'a> {
        AvIter {
            buf: self.buf,
            pos: 0,
        }
    }

    /// The value of the first pair with `id`.
    pub fn get(&self, id: u16) -> Option<&'a [u8]> {
        self.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }

    /// The MsvAvFlags value, if present and 4 bytes long.
    pub fn flags(&self) -> Option<u32> {
        self.get(av_id::FLAGS).and_then(|v| u32_at(v, 0))
    }

    /// The MsvAvTimestamp value, if present and 8 bytes long.
    pub fn timestamp(&self) -> Option<u64> {
        self.get(av_id::TIMESTAMP).and_then(|v| u64_at(v, 0))
    }
}

/// A structurally valid NTLMv2_RESPONSE (MS-NLMP 2.2.2.8), borrowed:
/// NTProofStr (16 bytes) followed by the NTLMv2_CLIENT_CHALLENGE of
/// MS-NLMP 2.2.2.7 (RespType 1, HiRespType 1, Reserved1, Reserved2,
/// TimeStamp, ChallengeFromClient, Reserved3, then AvPairs ending with
/// MsvAvEOL; bytes after MsvAvEOL, such as the Z(4) of MS-NLMP 3.3.2, are
/// covered by the proof but not parsed).
///
/// Parsing checks the structure only, no key is involved: an acceptor can
/// refuse a malformed response before it looks the user up, as Samba does
/// (Samba bug 14932: STATUS_INVALID_PARAMETER, not STATUS_LOGON_FAILURE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ntlmv2Response<'a> {
    proof: &'a [u8],
    client_challenge: &'a [u8],
    av_pairs: AvPairs<'a>,
}

impl<'a> Ntlmv2Response<'a> {
    /// Length of NTProofStr.
    pub const PROOF_LEN: usize = 16;
    /// Length of the fixed part of NTLMv2_CLIENT_CHALLENGE (before AvPairs).
    pub const CLIENT_CHALLENGE_FIXED_LEN: usize = 28;

    /// Validates an NtChallengeResponse as an NTLMv2_RESPONSE.
    pub fn parse(nt_response: &'a [u8]) -> Result<Self, AuthError> {
        if nt_response.len() < Self::PROOF_LEN + Self::CLIENT_CHALLENGE_FIXED_LEN {
            return Err(AuthError::Malformed("NTLMv2_CLIENT_CHALLENGE truncated"));
        }
        let (proof, client_challenge) = nt_response.split_at(Self::PROOF_LEN);
        // RespType and HiRespType: "MUST be set to 1" (MS-NLMP 2.2.2.7).
        if client_challenge[0] != 1 || client_challenge[1] != 1 {
            return Err(AuthError::Malformed("NTLMv2_CLIENT_CHALLENGE RespType"));
        }
        let av_pairs =
            AvPairs::parse_terminated(&client_challenge[Self::CLIENT_CHALLENGE_FIXED_LEN..])?;
        Ok(Ntlmv2Response {
            proof,
            client_challenge,
            av_pairs,
        })
    }

    /// NTProofStr (16 bytes).
    pub fn nt_proof_str(&self) -> &'a [u8] {
        self.proof
    }

    /// The whole NTLMv2_CLIENT_CHALLENGE ("temp" in MS-NLMP 3.3.2), as the
    /// proof covers it.
    pub fn client_challenge(&self) -> &'a [u8] {
        self.client_challenge
    }

    /// The client's AV pairs (MsvAvFlags, MsvAvTimestamp, ...).
    pub fn av_pairs(&self) -> AvPairs<'a> {
        self.av_pairs
    }
}

/// Iterator over a validated AV_PAIR list.
#[derive(Debug, Clone)]
pub struct AvIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for AvIter<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let id = u16_at(self.buf, self.pos)?;
        let len = u16_at(self.buf, self.pos + 2)? as usize;
        let start = self.pos + 4;
        let value = self.buf.get(start..start + len)?;
        if id == av_id::EOL {
            self.pos = self.buf.len();
            return None;
        }
        self.pos = start + len;
        Some((id, value))
    }
}

/// Builds an AV_PAIR list; `finish` appends MsvAvEOL.
#[derive(Debug, Clone, Default)]
pub struct AvPairsWriter {
    buf: Vec<u8>,
}

impl AvPairsWriter {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a pair with a raw value (truncated to 65535 bytes).
    pub fn push(&mut self, id: u16, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(u16::MAX as usize)];
        self.buf.extend_from_slice(&id.to_le_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(value);
        self
    }

    /// Appends a pair with a UTF-16LE string value.
    pub fn push_str(&mut self, id: u16, value: &str) -> &mut Self {
        self.push(id, &utf16le(value))
    }

    /// Appends MsvAvEOL and returns the list.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf
    }
}

/// Encodes `s` as UTF-16LE.
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Decodes UTF-16LE; odd lengths and unpaired surrogates are errors.
pub fn from_utf16le(b: &[u8]) -> Result<String, AuthError> {
    if b.len() % 2 != 0 {
        return Err(AuthError::Malformed("odd UTF-16 length"));
    }
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| AuthError::Malformed("invalid UTF-16"))
}

/// Decodes a string field as the flags say: UTF-16LE, or OEM (read as Latin-1).
pub fn decode_string(b: &[u8], flags: u32) -> Result<String, AuthError> {
    if flags & NegotiateFlags::UNICODE != 0 {
        from_utf16le(b)
    } else {
        Ok(b.iter().map(|&c| c as char).collect())
    }
}

/// Lays out a message: fixed part of `header_len` bytes, then payloads; each
/// `(descriptor offset, bytes)` gets its `Len/MaxLen/Offset` written.
fn layout(header: Vec<u8>, header_len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
    let mut out = header;
    out.resize(header_len, 0);
    for &(at, data) in fields {
        let off = out.len();
        let len = data.len().min(u16::MAX as usize) as u16;
        out[at..at + 2].copy_from_slice(&len.to_le_bytes());
        out[at + 2..at + 4].copy_from_slice(&len.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&(off as u32).to_le_bytes());
        out.extend_from_slice(&data[..len as usize]);
    }
    out
}

fn start(ty: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(256);
    v.extend_from_slice(SIGNATURE);
    v.extend_from_slice(&ty.to_le_bytes());
    v
}

/// NEGOTIATE_MESSAGE view (MS-NLMP 2.2.1.1).
#[derive(Debug, Clone, Copy)]
pub struct NegotiateMessage<'a> {
    buf: &'a [u8],
    flags: u32,
    domain: &'a [u8],
    workstation: &'a [u8],
    version: Option<Version>,
}

impl<'a> NegotiateMessage<'a> {
    /// Parses and bounds-checks a NEGOTIATE_MESSAGE. Only the signature, type
    /// and flags are required (old clients send 16 bytes); the OEM domain and
    /// workstation fields are checked when their SUPPLIED flags are set.
    pub fn parse(buf: &'a [u8]) -> Result<Self, AuthError> {
        check_header(buf, MSG_NEGOTIATE, 16)?;
        let flags = u32_at(buf, 12).ok_or(AuthError::Malformed("flags"))?;
        let mut domain: &[u8] = &[];
        let mut workstation: &[u8] = &[];
        if buf.len() >= 32 {
            match payload_field(buf, 16) {
                Ok((d, _)) => domain = d,
                Err(e) if flags & NegotiateFlags::OEM_DOMAIN_SUPPLIED != 0 => return Err(e),
                Err(_) => {}
            }
            match payload_field(buf, 24) {
                Ok((w, _)) => workstation = w,
                Err(e) if flags & NegotiateFlags::OEM_WORKSTATION_SUPPLIED != 0 => return Err(e),
                Err(_) => {}
            }
        }
        let version = if flags & NegotiateFlags::VERSION != 0 {
            Version::parse_at(buf, 32)
        } else {
            None
        };
        Ok(NegotiateMessage {
            buf,
            flags,
            domain,
            workstation,
            version,
        })
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// NegotiateFlags.
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// OEM DomainName bytes (usually empty).
    pub fn domain_name(&self) -> &'a [u8] {
        self.domain
    }
    /// OEM Workstation bytes (usually empty).
    pub fn workstation(&self) -> &'a [u8] {
        self.workstation
    }
    /// The VERSION, when the VERSION flag is set and it fits.
    pub fn version(&self) -> Option<Version> {
        self.version
    }
}

/// Owned NEGOTIATE_MESSAGE for encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateRepr {
    /// NegotiateFlags.
    pub flags: u32,
    /// OEM domain name (empty for none).
    pub domain: Vec<u8>,
    /// OEM workstation name (empty for none).
    pub workstation: Vec<u8>,
    /// VERSION (written when `Some`).
    pub version: Option<Version>,
}

impl NegotiateRepr {
    /// Encodes the message (40-byte fixed part: signature, type, flags, two
    /// fields, VERSION or zeroes).
    pub fn emit(&self) -> Vec<u8> {
        let mut h = start(MSG_NEGOTIATE);
        h.extend_from_slice(&self.flags.to_le_bytes());
        h.resize(32, 0);
        h.extend_from_slice(&self.version.map(Version::to_bytes).unwrap_or([0; 8]));
        layout(h, 40, &[(16, &self.domain), (24, &self.workstation)])
    }
}

/// CHALLENGE_MESSAGE view (MS-NLMP 2.2.1.2).
#[derive(Debug, Clone, Copy)]
pub struct ChallengeMessage<'a> {
    buf: &'a [u8],
    flags: u32,
    target_name: &'a [u8],
    server_challenge: [u8; 8],
    target_info: AvPairs<'a>,
    version: Option<Version>,
}

impl<'a> ChallengeMessage<'a> {
    /// Parses and bounds-checks a CHALLENGE_MESSAGE (at least 48 bytes).
    pub fn parse(buf: &'a [u8]) -> Result<Self, AuthError> {
        check_header(buf, MSG_CHALLENGE, 48)?;
        let (target_name, _) = payload_field(buf, 12)?;
        let flags = u32_at(buf, 20).ok_or(AuthError::Malformed("flags"))?;
        let mut server_challenge = [0u8; 8];
        server_challenge.copy_from_slice(&buf[24..32]);
        let (info, info_off) = payload_field(buf, 40)?;
        let target_info = AvPairs::parse(info)?;
        let name_off = payload_field(buf, 12)?.1;
        let version = if flags & NegotiateFlags::VERSION != 0 && name_off.min(info_off) >= 56 {
            Version::parse_at(buf, 48)
        } else {
            None
        };
        Ok(ChallengeMessage {
            buf,
            flags,
            target_name,
            server_challenge,
            target_info,
            version,
        })
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// NegotiateFlags.
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// TargetName bytes (UTF-16LE when UNICODE).
    pub fn target_name(&self) -> &'a [u8] {
        self.target_name
    }
    /// ServerChallenge.
    pub fn server_challenge(&self) -> [u8; 8] {
        self.server_challenge
    }
    /// TargetInfo AV_PAIR list.
    pub fn target_info(&self) -> AvPairs<'a> {
        self.target_info
    }
    /// VERSION, when present.
    pub fn version(&self) -> Option<Version> {
        self.version
    }
}

/// Owned CHALLENGE_MESSAGE for encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRepr {
    /// NegotiateFlags.
    pub flags: u32,
    /// TargetName (already encoded, UTF-16LE).
    pub target_name: Vec<u8>,
    /// ServerChallenge.
    pub server_challenge: [u8; 8],
    /// TargetInfo (an encoded AV_PAIR list ending with MsvAvEOL).
    pub target_info: Vec<u8>,
    /// VERSION (written when `Some`).
    pub version: Option<Version>,
}

impl ChallengeRepr {
    /// Encodes the message (56-byte fixed part, then TargetName, TargetInfo).
    pub fn emit(&self) -> Vec<u8> {
        let mut h = start(MSG_CHALLENGE);
        h.resize(20, 0);
        h.extend_from_slice(&self.flags.to_le_bytes());
        h.extend_from_slice(&self.server_challenge);
        h.resize(48, 0);
        h.extend_from_slice(&self.version.map(Version::to_bytes).unwrap_or([0; 8]));
        layout(h, 56, &[(12, &self.target_name), (40, &self.target_info)])
    }
}

/// AUTHENTICATE_MESSAGE view (MS-NLMP 2.2.1.3).
#[derive(Debug, Clone, Copy)]
pub struct AuthenticateMessage<'a> {
    buf: &'a [u8],
    lm: &'a [u8],
    nt: &'a [u8],
    domain: &'a [u8],
    user: &'a [u8],
    workstation: &'a [u8],
    session_key: &'a [u8],
    flags: u32,
    payload_start: usize,
}

impl<'a> AuthenticateMessage<'a> {
    /// Parses and bounds-checks an AUTHENTICATE_MESSAGE (at least 64 bytes).
    pub fn parse(buf: &'a [u8]) -> Result<Self, AuthError> {
        check_header(buf, MSG_AUTHENTICATE, 64)?;
        let mut start = buf.len();
        let mut field = |at: usize| -> Result<&'a [u8], AuthError> {
            let (d, off) = payload_field(buf, at)?;
            if !d.is_empty() {
                if off < 64 {
                    return Err(AuthError::Malformed("payload overlaps the header"));
                }
                start = start.min(off);
            }
            Ok(d)
        };
        let lm = field(12)?;
        let nt = field(20)?;
        let domain = field(28)?;
        let user = field(36)?;
        let workstation = field(44)?;
        let session_key = field(52)?;
        let flags = u32_at(buf, 60).ok_or(AuthError::Malformed("flags"))?;
        Ok(AuthenticateMessage {
            buf,
            lm,
            nt,
            domain,
            user,
            workstation,
            session_key,
            flags,
            payload_start: start,
        })
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// LmChallengeResponse.
    pub fn lm_response(&self) -> &'a [u8] {
        self.lm
    }
    /// NtChallengeResponse.
    pub fn nt_response(&self) -> &'a [u8] {
        self.nt
    }
    /// DomainName bytes.
    pub fn domain_name(&self) -> &'a [u8] {
        self.domain
    }
    /// UserName bytes.
    pub fn user_name(&self) -> &'a [u8] {
        self.user
    }
    /// Workstation bytes.
    pub fn workstation(&self) -> &'a [u8] {
        self.workstation
    }
    /// EncryptedRandomSessionKey.
    pub fn encrypted_session_key(&self) -> &'a [u8] {
        self.session_key
    }
    /// NegotiateFlags.
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// VERSION, when the flag is set and the payload leaves room for it.
    pub fn version(&self) -> Option<Version> {
        if self.flags & NegotiateFlags::VERSION != 0 && self.payload_start >= MIC_OFFSET {
            Version::parse_at(self.buf, 64)
        } else {
            None
        }
    }
    /// The MIC field, when the payload starts after it (at 88 or later).
    pub fn mic(&self) -> Option<&'a [u8; 16]> {
        if self.payload_start >= AUTHENTICATE_HEADER_WITH_MIC {
            self.buf
                .get(MIC_OFFSET..MIC_OFFSET + 16)
                .and_then(|s| s.try_into().ok())
        } else {
            None
        }
    }
}

/// Owned AUTHENTICATE_MESSAGE for encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateRepr {
    /// LmChallengeResponse.
    pub lm_response: Vec<u8>,
    /// NtChallengeResponse.
    pub nt_response: Vec<u8>,
    /// DomainName (encoded).
    pub domain: Vec<u8>,
    /// UserName (encoded).
    pub user: Vec<u8>,
    /// Workstation (encoded).
    pub workstation: Vec<u8>,
    /// EncryptedRandomSessionKey.
    pub encrypted_session_key: Vec<u8>,
    /// NegotiateFlags.
    pub flags: u32,
    /// VERSION (written when `Some`).
    pub version: Option<Version>,
    /// Reserve a zeroed 16-byte MIC field at offset 72.
    pub with_mic: bool,
}

impl AuthenticateRepr {
    /// Encodes the message; with `with_mic` the fixed part is 88 bytes and
    /// the MIC field is zero (fill it with [`write_mic`]).
    pub fn emit(&self) -> Vec<u8> {
        let mut h = start(MSG_AUTHENTICATE);
        h.resize(60, 0);
        h.extend_from_slice(&self.flags.to_le_bytes());
        h.extend_from_slice(&self.version.map(Version::to_bytes).unwrap_or([0; 8]));
        let header_len = if self.with_mic {
            AUTHENTICATE_HEADER_WITH_MIC
        } else {
            72
        };
        layout(
            h,
            header_len,
            &[
                (28, &self.domain),
                (36, &self.user),
                (44, &self.workstation),
                (12, &self.lm_response),
                (20, &self.nt_response),
                (52, &self.encrypted_session_key),
            ],
        )
    }
}

/// Writes `mic` into the MIC field of an encoded AUTHENTICATE_MESSAGE.
pub fn write_mic(msg: &mut [u8], mic: &[u8; 16]) {
    if let Some(f) = msg.get_mut(MIC_OFFSET..MIC_OFFSET + 16) {
        f.copy_from_slice(mic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn av_pairs_round_trip_and_lookup() {
        let mut w = AvPairsWriter::new();
        w.push_str(av_id::NB_DOMAIN_NAME, "Domain")
            .push_str(av_id::NB_COMPUTER_NAME, "Server")
            .push(av_id::FLAGS, &AV_FLAG_MIC_PRESENT.to_le_bytes())
            .push(av_id::TIMESTAMP, &0x01d2_3456_789a_bcdeu64.to_le_bytes());
        let list = w.finish();
        let pairs = AvPairs::parse(&list).unwrap();
        assert_eq!(
            pairs.get(av_id::NB_COMPUTER_NAME),
            Some(&utf16le("Server")[..])
        );
        assert_eq!(pairs.flags(), Some(AV_FLAG_MIC_PRESENT));
        assert_eq!(pairs.timestamp(), Some(0x01d2_3456_789a_bcde));
        assert_eq!(pairs.iter().count(), 4);
        assert_eq!(pairs.as_bytes().len(), list.len());
    }

    #[test]
    fn av_pairs_reject_overlong_values() {
        assert!(AvPairs::parse(&[1, 0, 9, 0, 1, 2]).is_err());
        assert!(AvPairs::parse(&[1, 0]).is_err());
        // Bytes after MsvAvEOL are not part of the list.
        let p = AvPairs::parse(&[0, 0, 0, 0, 0xff]).unwrap();
        assert_eq!(p.as_bytes().len(), 4);
    }

    #[test]
    fn challenge_round_trip() {
        let repr = ChallengeRepr {
            flags: 0xe28a_8233,
            target_name: utf16le("Server"),
            server_challenge: [1, 2, 3, 4, 5, 6, 7, 8],
            target_info: AvPairsWriter::new().finish(),
            version: Some(Version::DEFAULT),
        };
        let bytes = repr.emit();
        let m = ChallengeMessage::parse(&bytes).unwrap();
        assert_eq!(m.flags(), 0xe28a_8233);
        assert_eq!(m.target_name(), &utf16le("Server")[..]);
        assert_eq!(m.server_challenge(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(m.version(), Some(Version::DEFAULT));
        assert_eq!(m.target_info().iter().count(), 0);
    }

    #[test]
    fn authenticate_round_trip_with_mic() {
        let repr = AuthenticateRepr {
            lm_response: vec![0; 24],
            nt_response: vec![7; 40],
            domain: utf16le("D"),
            user: utf16le("u"),
            workstation: utf16le("W"),
            encrypted_session_key: vec![9; 16],
            flags: NegotiateFlags::UNICODE | NegotiateFlags::VERSION,
            version: Some(Version::DEFAULT),
            with_mic: true,
        };
        let mut bytes = repr.emit();
        write_mic(&mut bytes, &[0xab; 16]);
        let m = AuthenticateMessage::parse(&bytes).unwrap();
        assert_eq!(m.mic(), Some(&[0xab; 16]));
        assert_eq!(m.nt_response(), &[7; 40][..]);
        assert_eq!(m.user_name(), &utf16le("u")[..]);
        assert_eq!(m.encrypted_session_key(), &[9; 16][..]);
        assert_eq!(m.version(), Some(Version::DEFAULT));
    }

    #[test]
    fn lying_offsets_are_errors() {
        let repr = NegotiateRepr {
            flags: NegotiateFlags::UNICODE | NegotiateFlags::OEM_DOMAIN_SUPPLIED,
            domain: b"DOM".to_vec(),
            workstation: vec![],
            version: None,
        };
        let mut bytes = repr.emit();
        assert_eq!(
            NegotiateMessage::parse(&bytes).unwrap().domain_name(),
            b"DOM"
        );
        bytes[20..24].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(NegotiateMessage::parse(&bytes).is_err());
        assert!(ChallengeMessage::parse(&bytes).is_err());
        assert!(AuthenticateMessage::parse(&bytes[..20]).is_err());
    }
}
