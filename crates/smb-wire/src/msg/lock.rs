//! SMB2 LOCK request with its SMB2_LOCK_ELEMENT array, and the LOCK response (MS-SMB2 2.2.26,
//! 2.2.26.1, 2.2.27).

use super::{fixed, EmitBody, FileId};
use crate::error::WireError;
use crate::header::{Command, HEADER_LEN};
use crate::reader::{u16_at, u32_at, u64_at};
use crate::writer::{u16_len, LeWrite};

/// SMB2_LOCK_ELEMENT Flags (MS-SMB2 2.2.26.1).
pub mod flags {
    /// SMB2_LOCKFLAG_SHARED_LOCK.
    pub const SHARED_LOCK: u32 = 0x0000_0001;
    /// SMB2_LOCKFLAG_EXCLUSIVE_LOCK.
    pub const EXCLUSIVE_LOCK: u32 = 0x0000_0002;
    /// SMB2_LOCKFLAG_UNLOCK.
    pub const UNLOCK: u32 = 0x0000_0004;
    /// SMB2_LOCKFLAG_FAIL_IMMEDIATELY.
    pub const FAIL_IMMEDIATELY: u32 = 0x0000_0010;
}

/// Size of one SMB2_LOCK_ELEMENT on the wire.
pub const LOCK_ELEMENT_LEN: usize = 24;

/// Bytes of the LOCK request before the Locks array.
const FIXED_LEN: usize = 24;

/// One SMB2_LOCK_ELEMENT (MS-SMB2 2.2.26.1): a byte range and what to do with it. The
/// Reserved field is not kept (written as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockElement {
    /// Offset: the first byte of the range.
    pub offset: u64,
    /// Length of the range in bytes.
    pub length: u64,
    /// Flags ([`flags`]).
    pub flags: u32,
}

impl LockElement {
    fn from_wire(c: &[u8; LOCK_ELEMENT_LEN]) -> LockElement {
        LockElement {
            offset: u64_at(c, 0),
            length: u64_at(c, 8),
            flags: u32_at(c, 16),
        }
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.put_u64_le(self.offset);
        out.put_u64_le(self.length);
        out.put_u32_le(self.flags);
        out.put_u32_le(0);
    }
}

/// The Locks array, either as checked wire bytes (from a parse) or as native values (to
/// emit). Equality compares the elements.
#[derive(Debug, Clone, Copy)]
pub enum LockElements<'a> {
    /// Wire bytes, a whole number of 24-byte elements (a partial tail is ignored).
    Wire(&'a [u8]),
    /// Native values.
    Native(&'a [LockElement]),
}

impl<'a> LockElements<'a> {
    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = LockElement> + 'a {
        let (wire, native): (&'a [u8], &'a [LockElement]) = match *self {
            LockElements::Wire(b) => (b, &[]),
            LockElements::Native(n) => (&[], n),
        };
        wire.chunks_exact(LOCK_ELEMENT_LEN)
            .filter_map(|c| c.try_into().ok().map(LockElement::from_wire))
            .chain(native.iter().copied())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            LockElements::Wire(b) => b.len() / LOCK_ELEMENT_LEN,
            LockElements::Native(n) => n.len(),
        }
    }

    /// `true` when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for LockElements<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}
impl Eq for LockElements<'_> {}

impl Default for LockElements<'_> {
    fn default() -> Self {
        LockElements::Native(&[])
    }
}

/// View of an SMB2 LOCK request (MS-SMB2 2.2.26). StructureSize is 48: the 24-byte fixed part
/// plus one lock element. LockCount must be at least 1 (MS-SMB2 3.3.5.14) and the message must
/// hold LockCount elements; bytes after them (compound padding) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRequest<'a> {
    fixed: &'a [u8; FIXED_LEN],
    locks: &'a [u8],
}

impl<'a> LockRequest<'a> {
    /// StructureSize.
    pub const STRUCTURE_SIZE: u16 = 48;

    /// Parses the whole message (header + body) and checks LockCount against it.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        // StructureSize counts the first element, so it must be there.
        fixed::<{ FIXED_LEN + LOCK_ELEMENT_LEN }>(msg, Command::Lock, 48)?;
        let fixed = fixed::<FIXED_LEN>(msg, Command::Lock, 48)?;
        let count = usize::from(u16_at(fixed, 2));
        if count == 0 {
            return Err(WireError::BadLength {
                what: "LOCK LockCount",
            });
        }
        let start = HEADER_LEN + FIXED_LEN;
        let locks =
            msg.get(start..start + count * LOCK_ELEMENT_LEN)
                .ok_or(WireError::BadLength {
                    what: "LOCK LockCount",
                })?;
        Ok(LockRequest { fixed, locks })
    }
    /// LockCount (at least 1, and that many elements are present).
    pub fn lock_count(&self) -> u16 {
        u16_at(self.fixed, 2)
    }
    /// LockSequenceNumber (low 4 bits) and LockSequenceIndex (high 28 bits) as one field
    /// (Reserved in SMB 2.0.2).
    pub fn lock_sequence(&self) -> u32 {
        u32_at(self.fixed, 4)
    }
    /// LockSequenceNumber (4 bits).
    pub fn lock_sequence_number(&self) -> u8 {
        (self.lock_sequence() & 0xF) as u8
    }
    /// LockSequenceIndex (28 bits; MS-SMB2 3.3.5.14 uses 1 to 64).
    pub fn lock_sequence_index(&self) -> u32 {
        self.lock_sequence() >> 4
    }
    /// FileId.
    pub fn file_id(&self) -> FileId {
        FileId::at(self.fixed, 8)
    }
    /// The lock elements.
    pub fn locks(&self) -> LockElements<'a> {
        LockElements::Wire(self.locks)
    }
    /// The fields as a Repr.
    pub fn repr(&self) -> LockRequestRepr<'a> {
        LockRequestRepr {
            lock_sequence: self.lock_sequence(),
            file_id: self.file_id(),
            locks: self.locks(),
        }
    }
}

/// Emits an SMB2 LOCK request. LockCount is the number of `locks`; a request must carry at
/// least one (an empty list is emitted with one zeroed element so that StructureSize holds, and
/// LockCount 0, which receivers reject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockRequestRepr<'a> {
    /// LockSequenceNumber | LockSequenceIndex << 4.
    pub lock_sequence: u32,
    /// FileId.
    pub file_id: FileId,
    /// The lock elements.
    pub locks: LockElements<'a>,
}

impl EmitBody for LockRequestRepr<'_> {
    fn emit_body(&self, _msg_start: usize, out: &mut Vec<u8>) {
        out.put_u16_le(48);
        out.put_u16_le(u16_len(self.locks.len()));
        out.put_u32_le(self.lock_sequence);
        self.file_id.emit(out);
        if self.locks.is_empty() {
            LockElement::default().emit(out);
        }
        for l in self.locks.iter() {
            l.emit(out);
        }
    }
}

crate::msg::simple4!(
    LockResponse,
    LockResponseRepr,
    Command::Lock,
    "SMB2 LOCK response (MS-SMB2 2.2.27)"
);

#[cfg(test)]
mod response {
    use super::*;
    crate::msg::simple4_tests!(LockResponse, LockResponseRepr, Command::Lock);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::testutil::{message, raw, set16};

    const LOCKS: [LockElement; 3] = [
        LockElement {
            offset: 0,
            length: 10,
            flags: flags::EXCLUSIVE_LOCK | flags::FAIL_IMMEDIATELY,
        },
        LockElement {
            offset: u64::MAX,
            length: 1,
            flags: flags::SHARED_LOCK,
        },
        LockElement {
            offset: 5,
            length: 5,
            flags: flags::UNLOCK,
        },
    ];

    #[test]
    fn round_trip() {
        let r = LockRequestRepr {
            lock_sequence: 3 | (17 << 4),
            file_id: FileId {
                persistent: 7,
                volatile: 8,
            },
            locks: LockElements::Native(&LOCKS),
        };
        let m = message(Command::Lock, false, &r);
        assert_eq!(m.len(), 64 + 24 + 3 * 24);
        let v = LockRequest::parse(&m).unwrap();
        assert_eq!(v.repr(), r);
        assert_eq!(v.lock_count(), 3);
        assert_eq!(v.lock_sequence_number(), 3);
        assert_eq!(v.lock_sequence_index(), 17);
        assert_eq!(v.locks().iter().nth(1), Some(LOCKS[1]));
        // Trailing compound padding is not an element.
        let mut padded = m.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(LockRequest::parse(&padded).unwrap().locks().len(), 3);
    }

    #[test]
    fn bad_input() {
        let r = LockRequestRepr {
            locks: LockElements::Native(&LOCKS[..2]),
            ..Default::default()
        };
        let m = message(Command::Lock, false, &r);
        for n in 0..m.len() {
            assert!(LockRequest::parse(&m[..n]).is_err(), "{n}");
        }
        // LockCount larger than the elements present.
        let mut b = m.clone();
        set16(&mut b, 2, 3);
        assert_eq!(
            LockRequest::parse(&b),
            Err(WireError::BadLength {
                what: "LOCK LockCount"
            })
        );
        set16(&mut b, 2, u16::MAX);
        assert!(LockRequest::parse(&b).is_err());
        // LockCount 0.
        let mut b = m.clone();
        set16(&mut b, 2, 0);
        assert_eq!(
            LockRequest::parse(&b),
            Err(WireError::BadLength {
                what: "LOCK LockCount"
            })
        );
        // StructureSize counts the first element: 24 bytes alone do not do.
        let mut body = vec![48, 0, 1, 0];
        body.resize(24, 0);
        assert!(matches!(
            LockRequest::parse(&raw(Command::Lock, &body)),
            Err(WireError::Truncated { .. })
        ));
        let mut b = m.clone();
        set16(&mut b, 0, 24);
        assert!(matches!(
            LockRequest::parse(&b),
            Err(WireError::BadStructureSize { got: 24, .. })
        ));
        // The empty Repr still emits a parseable-size body, which is rejected for LockCount 0.
        let m = message(Command::Lock, false, &LockRequestRepr::default());
        assert_eq!(m.len(), 64 + 48);
        assert!(LockRequest::parse(&m).is_err());
    }
}
