//! Identifiers for connections, sessions and tree connects.
//!
//! MS-SMB2 2.2.1.2 (SessionId, TreeId in the SMB2 header), 3.3.1.8 (Session.SessionId),
//! 3.3.1.10 (TreeConnect.TreeId).
//!
//! A [`SessionId`] carries everything needed to find its session in O(1) and to
//! refuse a stale id (the "ABA guard" h2 uses for stream keys):
//!
//! ```text
//!  63          48 47                  24 23                   0
//! +--------------+----------------------+----------------------+
//! | shard (u16)  | generation (24 bits) | slab index (24 bits) |
//! +--------------+----------------------+----------------------+
//! ```
//!
//! The generation is never 0, so an id is never 0; the index is never
//! `0xFF_FFFF`, so an id is never `u64::MAX`. Both values are reserved by SMB2
//! (0 = no session, `0xFFFF_FFFF_FFFF_FFFF` = related compound "same session").

use std::fmt;

const INDEX_BITS: u32 = 24;
const GEN_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// Largest session slab index a [`SessionId`] can carry (exclusive bound).
///
/// A table never holds more than this many sessions per shard (16 777 214).
pub const MAX_SESSION_INDEX: u32 = INDEX_MASK as u32;

/// An SMB2 SessionId minted by a shard's session table (MS-SMB2 2.2.1.2).
///
/// Encodes shard, slab index and generation; see the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// Builds an id from its parts.
    ///
    /// Returns `None` when `index >= MAX_SESSION_INDEX`, when `generation` is 0
    /// or does not fit in 24 bits.
    pub fn new(shard: u16, index: u32, generation: u32) -> Option<Self> {
        if index >= MAX_SESSION_INDEX || generation == 0 || u64::from(generation) > GEN_MASK {
            return None;
        }
        Some(SessionId(
            (u64::from(shard) << (INDEX_BITS + GEN_BITS))
                | (u64::from(generation) << INDEX_BITS)
                | u64::from(index),
        ))
    }

    /// Interprets a value received on the wire. Returns `None` for the reserved
    /// values 0 and `u64::MAX` and for values this scheme never mints.
    pub fn from_raw(raw: u64) -> Option<Self> {
        let index = (raw & INDEX_MASK) as u32;
        let generation = ((raw >> INDEX_BITS) & GEN_MASK) as u32;
        let shard = (raw >> (INDEX_BITS + GEN_BITS)) as u16;
        SessionId::new(shard, index, generation)
    }

    /// The value carried in the SMB2 header.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The shard that owns this session (O(1): the top 16 bits).
    pub fn shard(self) -> u16 {
        (self.0 >> (INDEX_BITS + GEN_BITS)) as u16
    }

    /// The slot in the owning shard's session slab.
    pub fn index(self) -> u32 {
        (self.0 & INDEX_MASK) as u32
    }

    /// The generation that guards the slot against reuse (1..2^24).
    pub fn generation(self) -> u32 {
        ((self.0 >> INDEX_BITS) & GEN_MASK) as u32
    }

    /// The generation that follows `generation`, wrapping within 24 bits and
    /// skipping 0.
    pub(crate) fn next_generation(generation: u32) -> u32 {
        let next = (generation + 1) & GEN_MASK as u32;
        if next == 0 {
            1
        } else {
            next
        }
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SessionId({:#018x}: shard {}, index {}, gen {})",
            self.0,
            self.shard(),
            self.index(),
            self.generation()
        )
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

/// A connection handle within one shard: slab index plus generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// Builds a handle from its parts.
    pub fn new(index: u32, generation: u32) -> Self {
        ConnId { index, generation }
    }

    /// The slot in the shard's connection slab.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The generation that guards the slot against reuse.
    pub fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}.{}", self.index, self.generation)
    }
}

/// An SMB2 TreeId (MS-SMB2 2.2.1.2), unique within its session.
///
/// Never 0 and never `0xFFFF_FFFF` (reserved for related compounds).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TreeId(u32);

impl TreeId {
    /// The first id a session hands out.
    pub const FIRST: TreeId = TreeId(1);

    /// Interprets a value received on the wire; `None` for the reserved 0 and
    /// `0xFFFF_FFFF`.
    pub fn new(raw: u32) -> Option<Self> {
        if raw == 0 || raw == u32::MAX {
            None
        } else {
            Some(TreeId(raw))
        }
    }

    /// The value carried in the SMB2 header.
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// The id after this one within a session, wrapping and skipping the
    /// reserved values.
    pub(crate) fn next(self) -> TreeId {
        match self.0.wrapping_add(1) {
            0 | u32::MAX => TreeId(1),
            n => TreeId(n),
        }
    }
}

impl fmt::Display for TreeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_round_trips_parts() {
        let id = SessionId::new(0xBEEF, 0x12_3456, 0xAB_CDEF).unwrap();
        assert_eq!(id.shard(), 0xBEEF);
        assert_eq!(id.index(), 0x12_3456);
        assert_eq!(id.generation(), 0xAB_CDEF);
        assert_eq!(SessionId::from_raw(id.as_u64()), Some(id));
    }

    #[test]
    fn session_id_never_reserved() {
        assert_eq!(SessionId::from_raw(0), None);
        assert_eq!(SessionId::from_raw(u64::MAX), None);
        assert_eq!(SessionId::new(0, 0, 0), None);
        assert_eq!(SessionId::new(u16::MAX, MAX_SESSION_INDEX, 1), None);
        assert_eq!(SessionId::new(0, 0, 1 << 24), None);
        let max = SessionId::new(u16::MAX, MAX_SESSION_INDEX - 1, (1 << 24) - 1).unwrap();
        assert_ne!(max.as_u64(), u64::MAX);
        let min = SessionId::new(0, 0, 1).unwrap();
        assert_ne!(min.as_u64(), 0);
    }

    #[test]
    fn generation_wraps_skipping_zero() {
        assert_eq!(SessionId::next_generation(1), 2);
        assert_eq!(SessionId::next_generation((1 << 24) - 1), 1);
    }

    #[test]
    fn tree_id_reserved_values() {
        assert_eq!(TreeId::new(0), None);
        assert_eq!(TreeId::new(u32::MAX), None);
        assert_eq!(TreeId::new(7).unwrap().as_u32(), 7);
        assert_eq!(TreeId(u32::MAX - 1).next(), TreeId(1));
        assert_eq!(TreeId(1).next(), TreeId(2));
    }
}
