//! The SMB1 NEGOTIATE request (MS-CIFS 2.2.4.52.1, MS-SMB 2.2.3.1), enough to recognise a
//! multi-protocol negotiate that offers SMB2 ("SMB 2.002" / "SMB 2.???", MS-SMB2 3.3.5.3).

use crate::error::WireError;
use crate::protocol_id::SMB1_MAGIC;

/// SMB_COM_NEGOTIATE.
pub const COM_NEGOTIATE: u8 = 0x72;
/// Length of the SMB1 header.
pub const SMB1_HEADER_LEN: usize = 32;

/// View of an SMB1 NEGOTIATE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smb1NegotiateRequest<'a> {
    dialect_bytes: &'a [u8],
}

impl<'a> Smb1NegotiateRequest<'a> {
    /// Parses a frame payload holding an SMB1 NEGOTIATE request. Every dialect entry must be a
    /// 0x02 buffer-format byte and a NUL-terminated string inside ByteCount.
    pub fn parse(payload: &'a [u8]) -> Result<Self, WireError> {
        let what = "SMB1 NEGOTIATE";
        let h = payload
            .get(..SMB1_HEADER_LEN + 3)
            .ok_or(WireError::Truncated { what })?;
        if h[..4] != SMB1_MAGIC {
            return Err(WireError::BadProtocolId);
        }
        if h[4] != COM_NEGOTIATE {
            return Err(WireError::BadLength {
                what: "SMB1 command (not NEGOTIATE)",
            });
        }
        let word_count = usize::from(h[SMB1_HEADER_LEN]);
        let bc_at = SMB1_HEADER_LEN + 1 + word_count * 2;
        let bc = payload
            .get(bc_at..bc_at + 2)
            .ok_or(WireError::Truncated { what })?;
        let n = usize::from(u16::from_le_bytes([bc[0], bc[1]]));
        let dialect_bytes = payload
            .get(bc_at + 2..bc_at + 2 + n)
            .ok_or(WireError::BadLength { what: "ByteCount" })?;
        let mut rest = dialect_bytes;
        while let Some((&fmt, tail)) = rest.split_first() {
            if fmt != 0x02 {
                return Err(WireError::BadLength {
                    what: "SMB1 dialect BufferFormat",
                });
            }
            let nul = tail
                .iter()
                .position(|&b| b == 0)
                .ok_or(WireError::Truncated {
                    what: "SMB1 dialect string",
                })?;
            rest = &tail[nul + 1..];
        }
        Ok(Smb1NegotiateRequest { dialect_bytes })
    }

    /// The dialect strings (without the 0x02 prefix and NUL), in order.
    pub fn dialects(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.dialect_bytes;
        core::iter::from_fn(move || {
            let (_, tail) = rest.split_first()?;
            let nul = tail.iter().position(|&b| b == 0)?;
            rest = &tail[nul + 1..];
            Some(&tail[..nul])
        })
    }

    /// `true` when `dialect` (e.g. `"SMB 2.???"`) is offered.
    pub fn offers(&self, dialect: &str) -> bool {
        self.dialects().any(|d| d == dialect.as_bytes())
    }

    /// `true` when SMB 2.002 or the "SMB 2.???" wildcard is offered.
    pub fn offers_smb2(&self) -> bool {
        self.offers("SMB 2.002") || self.offers("SMB 2.???")
    }
}

/// Builds an SMB1 NEGOTIATE request offering `dialects` (for tests and the load generator).
pub fn emit_negotiate_request(dialects: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(&SMB1_MAGIC);
    out.push(COM_NEGOTIATE);
    out.extend_from_slice(&[0; 4]); // Status
    out.push(0x18); // Flags: case-insensitive, canonicalized paths
    out.extend_from_slice(&0xC853u16.to_le_bytes()); // Flags2 (unicode, NT status, ext. security, ...)
    out.extend_from_slice(&[0; 18]); // PIDHigh, SecurityFeatures, Reserved, TID, PIDLow, UID
    out.extend_from_slice(&[0, 0]); // MID
    out.push(0); // WordCount
    let n: usize = dialects.iter().map(|d| d.len() + 2).sum();
    out.extend_from_slice(&(n.min(usize::from(u16::MAX)) as u16).to_le_bytes());
    for d in dialects {
        out.push(0x02);
        out.extend_from_slice(d.as_bytes());
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_dialects_and_offers() {
        let mut p = Vec::new();
        emit_negotiate_request(&["NT LM 0.12", "SMB 2.002", "SMB 2.???"], &mut p);
        let v = Smb1NegotiateRequest::parse(&p).unwrap();
        let d: Vec<_> = v.dialects().collect();
        assert_eq!(d, vec![&b"NT LM 0.12"[..], b"SMB 2.002", b"SMB 2.???"]);
        assert!(v.offers("SMB 2.???") && v.offers_smb2());
        let mut p = Vec::new();
        emit_negotiate_request(&["NT LM 0.12"], &mut p);
        assert!(!Smb1NegotiateRequest::parse(&p).unwrap().offers_smb2());
    }

    #[test]
    fn bad_inputs() {
        let mut p = Vec::new();
        emit_negotiate_request(&["NT LM 0.12", "SMB 2.002"], &mut p);
        assert!(matches!(
            Smb1NegotiateRequest::parse(&p[..20]),
            Err(WireError::Truncated { .. })
        ));
        // ByteCount larger than the payload.
        let mut b = p.clone();
        b[33] = 0xFF;
        assert!(Smb1NegotiateRequest::parse(&b).is_err());
        // Missing NUL terminator.
        let mut b = p.clone();
        let l = b.len();
        b[l - 1] = b'x';
        assert!(Smb1NegotiateRequest::parse(&b).is_err());
        // Bad buffer format, other command, bad magic.
        let mut b = p.clone();
        b[35] = 0x03;
        assert!(Smb1NegotiateRequest::parse(&b).is_err());
        let mut b = p.clone();
        b[4] = 0x73;
        assert!(Smb1NegotiateRequest::parse(&b).is_err());
        let mut b = p.clone();
        b[0] = 0xFE;
        assert_eq!(
            Smb1NegotiateRequest::parse(&b),
            Err(WireError::BadProtocolId)
        );
        // WordCount pushing ByteCount out.
        let mut b = p.clone();
        b[32] = 0xFF;
        assert!(Smb1NegotiateRequest::parse(&b).is_err());
    }
}
